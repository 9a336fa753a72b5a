// The gateway's WireGuard interface (Corvid's own `corvid.wg`): the link, its key, port, MTU and peers.
//
// What this module owns, and the only thing it changes: the link named by the plan. A link of that name that is not
// WireGuard is someone else's: reported, never changed. The kernel's WireGuard where the kernel has it
// (`ip link add ... type wireguard`), else wireguard-go (userspace, over TUN), which exits when its link is deleted.
//
// Desired vs actual like the route table: `wg show <dev> dump` is read and compared in memory, and only a difference
// is written, whole, with `wg syncconf` (which keeps the sessions of unchanged peers). The configuration goes to wg's
// standard input, so no key is ever on a command line, in a file or in a message: changes are reported by peer name.
import { createHash, hkdfSync } from 'node:crypto';
import { runCommand, inNetns, type CommandResult } from '../command.ts';

/** A peer as the interface must hold it. */
export interface WireguardPeerConfig {
  /** Corvid's name for it (`corvid-<pool>`), for reports. */
  name: string;
  publicKey: string;
  /** Base64 of 32 bytes (wireguardPsk()). */
  presharedKey: string;
  endpoint?: string;
  allowedIPs: string[];
  persistentKeepalive: number;
  /** A warm session (a standby's, or with a standby): WireGuard's own retries suffice, it is never re-added. */
  warm?: boolean;
}

export interface WireguardConfig {
  device: string;
  listenPort: number;
  /** Base64 of the private key. */
  privateKey: string;
  mtu?: number;
  peers: WireguardPeerConfig[];
}

/** One peer as `wg show dump` reports it. */
export interface ActualPeer {
  publicKey: string;
  presharedKey?: string;
  endpoint?: string;
  allowedIPs: string[];
  /** Unix seconds of the last handshake; 0: none yet. */
  latestHandshake: number;
  rxBytes: number;
  txBytes: number;
  /** 0: off. */
  persistentKeepalive: number;
}

export interface ActualWireguard {
  privateKey?: string;
  listenPort: number;
  peers: ActualPeer[];
}

export interface WireguardApplyResult {
  changes: string[];
  errors: string[];
  /** Peers we send to (an endpoint is configured) that have had no handshake yet, by Corvid's name: apply again soon. */
  awaitingHandshake: string[];
}

/**
 * How long a peer we send to may wait for its first handshake before it is re-added. WireGuard sends an initiation
 * at once, but retries a lost one only after REKEY_TIMEOUT (5 s) and refuses to send another sooner; the first is
 * lost whenever the peer's interface comes up a moment after ours (a failover to a gateway that is reached, not
 * reaching). A re-added peer is a new peer to WireGuard, which sends its initiation at once, and forgets the one in
 * flight; a handshake takes one round trip, and one slower than this still completes, as the agent applies again
 * after 0.5, 1, 2, 4 s and so on.
 */
export const HANDSHAKE_NUDGE_AFTER_MS = 500;

/**
 * The peers to re-add now: desired with an endpoint (we initiate), not warm, still without a handshake, and waiting since at
 * least `afterMs`. `waitingSince` (public key -> ms) is updated in place: a peer enters when first seen waiting (or
 * when this apply adds it or changes its endpoint) and leaves when it is no longer waiting; a peer returned is entered
 * again at `nowMs`.
 */
export function peersToNudge(actual: ActualWireguard, desired: WireguardConfig, waitingSince: Map<string, number>, nowMs: number, afterMs = HANDSHAKE_NUDGE_AFTER_MS): { nudge: WireguardPeerConfig[]; waiting: WireguardPeerConfig[] } {
  const have = new Map(actual.peers.map((p) => [p.publicKey, p]));
  const waiting = desired.peers.filter((w) => w.warm !== true && w.endpoint !== undefined && (have.get(w.publicKey)?.latestHandshake ?? 0) === 0);
  const keys = new Set(waiting.map((w) => w.publicKey));
  for (const k of [...waitingSince.keys()]) if (!keys.has(k)) waitingSince.delete(k);
  const nudge: WireguardPeerConfig[] = [];
  for (const w of waiting) {
    const a = have.get(w.publicKey);
    const since = waitingSince.get(w.publicKey);
    // Being added, or sent elsewhere, by this very apply: its first initiation goes out now.
    if (since === undefined || a === undefined || a.endpoint !== w.endpoint) waitingSince.set(w.publicKey, nowMs);
    else if (nowMs - since >= afterMs) {
      nudge.push(w);
      waitingSince.set(w.publicKey, nowMs);
    }
  }
  return { nudge, waiting };
}

/** What the reconciler needs; a fake in unit tests, WireguardLink on a node. */
export interface WireguardLinks {
  readonly device: string;
  /** Create or fix the interface and its peers; undefined removes the interface when it is there. */
  apply(desired: WireguardConfig | undefined): Promise<WireguardApplyResult>;
  /** The peers as the interface reports them now; undefined when there is no interface. Throws on read errors. */
  peers(): Promise<ActualPeer[] | undefined>;
}

/**
 * WireGuard's preshared key for a link, from the link's PSK Secret: HKDF-SHA256 to exactly the 32 bytes WireGuard
 * takes, whatever the Secret's length (both ends derive the same key; the Secret itself never reaches wg).
 */
export function wireguardPsk(secret: Buffer): string {
  return Buffer.from(hkdfSync('sha256', secret, Buffer.alloc(0), 'corvid wireguard preshared key v1', 32)).toString('base64');
}

// ---------------------------------------------------------------- parsing and diff (pure)

/** Parse `wg show <dev> dump`: the interface line, then one line per peer, tab-separated. */
export function parseDump(text: string): ActualWireguard {
  const lines = text.split('\n').filter((l) => l.trim() !== '');
  if (lines.length === 0) return { listenPort: 0, peers: [] };
  const [priv, , port] = lines[0].split('\t');
  const out: ActualWireguard = { listenPort: Number(port) || 0, peers: [] };
  if (priv !== undefined && priv !== '(none)') out.privateKey = priv;
  for (const l of lines.slice(1)) {
    const [publicKey, psk, endpoint, allowed, handshake, rx, tx, keepalive] = l.split('\t');
    const p: ActualPeer = {
      publicKey,
      allowedIPs: allowed === undefined || allowed === '(none)' ? [] : allowed.split(',').filter((x) => x !== ''),
      latestHandshake: Number(handshake) || 0,
      rxBytes: Number(rx) || 0,
      txBytes: Number(tx) || 0,
      persistentKeepalive: keepalive === undefined || keepalive === 'off' ? 0 : Number(keepalive) || 0,
    };
    if (psk !== undefined && psk !== '(none)') p.presharedKey = psk;
    if (endpoint !== undefined && endpoint !== '(none)') p.endpoint = endpoint;
    out.peers.push(p);
  }
  return out;
}

/** `wg` prints allowed IPs canonically (`10.0.0.0/24`, `fd00::/64`); ours are canonical too, so sets compare as text. */
function sameSet(a: readonly string[], b: readonly string[]): boolean {
  if (a.length !== b.length) return false;
  const s = new Set(a);
  return b.every((x) => s.has(x));
}

/**
 * What differs between the interface and the config, one line per item, naming peers by Corvid's name (never a key).
 * A peer's endpoint differs only when one is configured: a peer without one (behind NAT) is found where it comes from.
 */
export function diffWireguard(actual: ActualWireguard, desired: WireguardConfig): string[] {
  const out: string[] = [];
  if (actual.privateKey !== desired.privateKey) out.push('private key');
  if (actual.listenPort !== desired.listenPort) out.push(`listen port ${desired.listenPort}`);
  const have = new Map(actual.peers.map((p) => [p.publicKey, p]));
  const wanted = new Set(desired.peers.map((p) => p.publicKey));
  for (const w of desired.peers) {
    const a = have.get(w.publicKey);
    if (a === undefined) {
      out.push(`peer ${w.name} added`);
      continue;
    }
    const what: string[] = [];
    if (a.presharedKey !== w.presharedKey) what.push('preshared key');
    if (!sameSet(a.allowedIPs, w.allowedIPs)) what.push('allowed IPs');
    if (w.endpoint !== undefined && a.endpoint !== w.endpoint) what.push('endpoint');
    if (a.persistentKeepalive !== w.persistentKeepalive) what.push('keepalive');
    if (what.length > 0) out.push(`peer ${w.name} ${what.join(', ')}`);
  }
  const gone = actual.peers.filter((p) => !wanted.has(p.publicKey)).length;
  if (gone > 0) out.push(`${gone} peer${gone === 1 ? '' : 's'} removed`);
  return out;
}

/** The `wg syncconf` text of a config. */
export function configText(c: WireguardConfig): string {
  const lines = ['[Interface]', `PrivateKey = ${c.privateKey}`, `ListenPort = ${c.listenPort}`];
  for (const p of c.peers) {
    lines.push('', '[Peer]', `PublicKey = ${p.publicKey}`, `PresharedKey = ${p.presharedKey}`);
    if (p.allowedIPs.length > 0) lines.push(`AllowedIPs = ${p.allowedIPs.join(', ')}`);
    if (p.endpoint !== undefined) lines.push(`Endpoint = ${p.endpoint}`);
    lines.push(`PersistentKeepalive = ${p.persistentKeepalive}`);
  }
  return `${lines.join('\n')}\n`;
}

/**
 * Why wireguard-go failed, in its own words: its `ERROR:` line (on stdout), else the last line of stderr that is not
 * the box it draws to say the kernel has WireGuard, else the exit code.
 */
export function wireguardGoError(r: CommandResult): string {
  const lines = `${r.stdout}\n${r.stderr}`.split('\n').map((l) => l.trim()).filter((l) => l !== '');
  const error = lines.find((l) => /^ERROR:/.test(l));
  if (error !== undefined) return error.replace(/^ERROR:\s*(\(\S+\)\s*\d{4}\/\d\d\/\d\d \d\d:\d\d:\d\d\s*)?/, '');
  const plain = lines.filter((l) => !/^[┌└│─┐┘]/.test(l)).pop();
  return plain ?? `exit ${r.code}`;
}

// ---------------------------------------------------------------- the node

export type WireguardImplementation = 'auto' | 'kernel' | 'userspace';

export interface WireguardLinkOptions {
  device: string;
  /** auto: the kernel's when `ip link add ... type wireguard` works, else wireguard-go. */
  implementation?: WireguardImplementation;
  netns?: string;
  ipPath?: string;
  wgPath?: string;
  wireguardGoPath?: string;
  /**
   * With netns only (tests: several nodes on one host): a directory bind-mounted over /var/run/wireguard for every
   * wg and wireguard-go this adapter runs, since both use that fixed path for wireguard-go's control socket.
   */
  socketDir?: string;
  /** Clock for the handshake nudge (default Date.now). */
  now?: () => number;
}

interface LinkInfo {
  kind?: string;
  up: boolean;
  mtu?: number;
}

export class WireguardLink implements WireguardLinks {
  readonly device: string;
  private readonly o: WireguardLinkOptions;
  /** Peers we send to that have had no handshake yet: since when (peersToNudge). */
  private readonly waitingSince = new Map<string, number>();

  constructor(o: WireguardLinkOptions) {
    this.o = o;
    this.device = o.device;
  }

  private run(cmd: string, args: string[], input?: string): Promise<CommandResult> {
    if (this.o.netns !== undefined && this.o.socketDir !== undefined && cmd !== (this.o.ipPath ?? 'ip')) {
      // `ip netns exec` gives the command a mount namespace of its own (slave to the host's): the bind stays in it.
      // The mount point is made first: a host where WireGuard never ran has no /var/run/wireguard.
      const script = 'mkdir -p /var/run/wireguard && mount --bind "$0" /var/run/wireguard && exec "$@"';
      return runCommand(this.o.ipPath ?? 'ip', ['netns', 'exec', this.o.netns, 'sh', '-c', script, this.o.socketDir, cmd, ...args], input);
    }
    const [c, full] = inNetns(this.o.netns, cmd, args, this.o.ipPath);
    return runCommand(c, full, input);
  }

  private ip(args: string[]): Promise<CommandResult> {
    const ns = this.o.netns === undefined ? [] : ['-n', this.o.netns];
    return runCommand(this.o.ipPath ?? 'ip', [...ns, ...args]);
  }

  private async link(): Promise<LinkInfo | undefined> {
    const r = await this.ip(['-json', '-details', 'link', 'show', 'dev', this.device]);
    if (r.code !== 0) {
      if (/does not exist|Cannot find device/i.test(r.stderr)) return undefined;
      throw new Error(`ip link show ${this.device}: ${r.stderr.trim()}`);
    }
    const row = (JSON.parse(r.stdout) as Array<Record<string, unknown>>)[0] ?? {};
    const info = row.linkinfo as { info_kind?: unknown } | undefined;
    const flags = Array.isArray(row.flags) ? (row.flags as unknown[]) : [];
    const out: LinkInfo = { up: flags.includes('UP') };
    if (typeof info?.info_kind === 'string') out.kind = info.info_kind;
    if (typeof row.mtu === 'number') out.mtu = row.mtu;
    return out;
  }

  /** wireguard-go's link is a TUN device; the kernel's says `wireguard`. */
  private static isWireguard(l: LinkInfo): boolean {
    return l.kind === 'wireguard' || l.kind === 'tun';
  }

  private async create(): Promise<string> {
    const impl = this.o.implementation ?? 'auto';
    if (impl !== 'userspace') {
      const r = await this.ip(['link', 'add', this.device, 'type', 'wireguard']);
      if (r.code === 0) return `${this.device} created (kernel)`;
      if (impl === 'kernel') throw new Error(`ip link add ${this.device} type wireguard: ${r.stderr.trim()}`);
    }
    // wireguard-go forks a daemon that holds the TUN device and returns once the interface is up.
    const r = await this.run(this.o.wireguardGoPath ?? 'wireguard-go', [this.device]);
    if (r.code !== 0) throw new Error(`wireguard-go ${this.device}: ${wireguardGoError(r)}`);
    return `${this.device} created (wireguard-go)`;
  }

  async peers(): Promise<ActualPeer[] | undefined> {
    const l = await this.link();
    if (l === undefined || !WireguardLink.isWireguard(l)) return undefined;
    return (await this.dump()).peers;
  }

  private async dump(): Promise<ActualWireguard> {
    const r = await this.run(this.o.wgPath ?? 'wg', ['show', this.device, 'dump']);
    if (r.code !== 0) throw new Error(`wg show ${this.device}: ${r.stderr.trim()}`);
    return parseDump(r.stdout);
  }

  /** Write a whole config with `wg syncconf`; false (and an error in res) when wg failed. */
  private async syncconf(c: WireguardConfig, res: WireguardApplyResult): Promise<boolean> {
    // Through `cat |`: Node hands a child's stdin over as a socket, which /dev/stdin cannot open (ENXIO); the shell's
    // pipe can be.
    const r = await this.run('sh', ['-c', 'cat | "$@"', 'sh', this.o.wgPath ?? 'wg', 'syncconf', this.device, '/dev/stdin'], configText(c));
    if (r.code === 0) return true;
    // wg may echo a bad line of its input: report its exit and a digest of the message, never the message.
    res.errors.push(`wg syncconf ${this.device} failed (exit ${r.code}, message digest ${createHash('sha256').update(r.stderr).digest('hex').slice(0, 12)})`);
    return false;
  }

  async apply(desired: WireguardConfig | undefined): Promise<WireguardApplyResult> {
    const res: WireguardApplyResult = { changes: [], errors: [], awaitingHandshake: [] };
    let link = await this.link();
    if (link !== undefined && !WireguardLink.isWireguard(link)) {
      res.errors.push(`a link ${this.device} exists and is not WireGuard (${link.kind ?? 'unknown kind'}); left alone`);
      return res;
    }
    if (desired === undefined) {
      this.waitingSince.clear();
      if (link !== undefined) {
        const r = await this.ip(['link', 'del', this.device]);
        if (r.code === 0) res.changes.push(`${this.device} deleted`);
        else res.errors.push(`ip link del ${this.device}: ${r.stderr.trim()}`);
      }
      return res;
    }
    if (link === undefined) {
      try {
        res.changes.push(await this.create());
      } catch (e) {
        res.errors.push((e as Error).message);
        return res;
      }
      link = await this.link();
      if (link === undefined) {
        res.errors.push(`${this.device} was created but is not there`);
        return res;
      }
    }
    const actual = await this.dump();
    const diff = diffWireguard(actual, desired);
    if (diff.length > 0) {
      if (await this.syncconf(desired, res)) res.changes.push(...diff.map((d) => `${this.device}: ${d}`));
    }
    const { nudge, waiting } = peersToNudge(actual, desired, this.waitingSince, (this.o.now ?? Date.now)());
    res.awaitingHandshake = waiting.map((p) => p.name);
    if (nudge.length > 0) {
      // Out, then in again: both through syncconf, so no key is ever on a command line.
      const out = new Set(nudge.map((p) => p.publicKey));
      if ((await this.syncconf({ ...desired, peers: desired.peers.filter((p) => !out.has(p.publicKey)) }, res)) && (await this.syncconf(desired, res))) {
        res.changes.push(...nudge.map((p) => `${this.device}: peer ${p.name} re-added (no handshake after ${HANDSHAKE_NUDGE_AFTER_MS / 1000} s)`));
      }
    }
    if (desired.mtu !== undefined && link.mtu !== desired.mtu) {
      const r = await this.ip(['link', 'set', 'dev', this.device, 'mtu', String(desired.mtu)]);
      if (r.code === 0) res.changes.push(`${this.device} mtu ${desired.mtu}`);
      else res.errors.push(`ip link set ${this.device} mtu ${desired.mtu}: ${r.stderr.trim()}`);
    }
    if (!link.up) {
      const r = await this.ip(['link', 'set', 'dev', this.device, 'up']);
      if (r.code === 0) res.changes.push(`${this.device} up`);
      else res.errors.push(`ip link set ${this.device} up: ${r.stderr.trim()}`);
    }
    return res;
  }
}
