// The member VXLAN device (issue 15): Corvid's own `corvid.vx`, its FDB entries and its neighbour entries.
//
// What this module owns, and the only thing it changes: the link named by the plan (VXLAN_DEVICE), the FDB entries of
// that device that carry a remote address (`dst`), and the neighbour entries on it. Nothing else is read beyond them.
// A link of that name that is not a VXLAN is someone else's: reported, never changed.
//
// Desired vs actual like the route table: read with `ip -json` / `bridge -json`, diff (pure), send only what differs.
// Settings a VXLAN cannot change in place (VNI, port, local address, lower device, learning) recreate the device;
// MTU, MAC, address and up are set in place. Failover changes only the FDB and neighbour entries.
import { runCommand } from '../command.ts';
import type { VxlanPlan } from '../../nodeplan/types.ts';

/** The device as the kernel reports it. */
export interface ActualVxlan {
  kind?: string;
  vni?: number;
  port?: number;
  local?: string;
  learning?: boolean;
  /** The lower device (`dev`). */
  link?: string;
  mtu?: number;
  mac?: string;
  up: boolean;
  /** Its addresses, `addr/len`. */
  addresses: string[];
}

export interface ActualVxlanState {
  /** Undefined: no link of that name. */
  link?: ActualVxlan;
  /** FDB entries with a remote address. */
  fdb: Array<{ mac: string; dst: string; permanent: boolean; via?: string }>;
  neighbours: Array<{ dst: string; lladdr?: string; permanent: boolean }>;
}

/** One command: `ip ...` or `bridge ...` (without the netns option). */
export interface VxlanCommand {
  tool: 'ip' | 'bridge';
  args: string[];
}

export interface VxlanApplyResult {
  changes: string[];
  errors: string[];
}

/** What the reconciler needs; a fake in unit tests, VxlanLink on a node. */
export interface VxlanLinks {
  /**
   * `add`: create or fix the device and add the wanted entries (before routes use them); `prune`: remove the entries
   * no longer wanted, and the device when none is wanted (after routes stopped using them).
   */
  apply(desired: VxlanPlan | undefined, phase: 'add' | 'prune'): Promise<VxlanApplyResult>;
}

// ---------------------------------------------------------------- parsing (pure)

function rows(json: string): Array<Record<string, unknown>> {
  const t = json.trim();
  return t === '' ? [] : (JSON.parse(t) as Array<Record<string, unknown>>);
}

/** `ip -d -json address show dev <name>`. */
export function parseVxlanLink(json: string): ActualVxlan | undefined {
  const r = rows(json)[0];
  if (r === undefined) return undefined;
  const info = (r.linkinfo ?? {}) as { info_kind?: unknown; info_data?: Record<string, unknown> };
  const d = info.info_data ?? {};
  const addresses = (Array.isArray(r.addr_info) ? (r.addr_info as Array<{ local?: unknown; prefixlen?: unknown }>) : [])
    .filter((a) => typeof a.local === 'string' && typeof a.prefixlen === 'number')
    .map((a) => `${a.local as string}/${a.prefixlen as number}`);
  const out: ActualVxlan = { up: Array.isArray(r.flags) && r.flags.includes('UP'), addresses };
  if (typeof info.info_kind === 'string') out.kind = info.info_kind;
  if (typeof d.id === 'number') out.vni = d.id;
  if (typeof d.port === 'number') out.port = d.port;
  if (typeof d.local === 'string') out.local = d.local;
  else if (typeof d.local6 === 'string') out.local = d.local6;
  if (typeof d.learning === 'boolean') out.learning = d.learning;
  if (typeof d.link === 'string') out.link = d.link;
  if (typeof r.mtu === 'number') out.mtu = r.mtu;
  if (typeof r.address === 'string') out.mac = r.address;
  return out;
}

/** `bridge -json fdb show dev <name>`: the entries with a remote address (the device's own multicast ones have none). */
export function parseFdb(json: string): ActualVxlanState['fdb'] {
  return rows(json)
    .filter((r) => typeof r.mac === 'string' && typeof r.dst === 'string')
    .map((r) => ({ mac: r.mac as string, dst: r.dst as string, permanent: r.state === 'permanent', ...(typeof r.viaIf === 'string' ? { via: r.viaIf } : {}) }));
}

/** `ip -json neigh show dev <name>`. */
export function parseNeighbours(json: string): ActualVxlanState['neighbours'] {
  return rows(json)
    .filter((r) => typeof r.dst === 'string')
    .map((r) => {
      const n: ActualVxlanState['neighbours'][number] = { dst: r.dst as string, permanent: Array.isArray(r.state) && r.state.includes('PERMANENT') };
      if (typeof r.lladdr === 'string') n.lladdr = r.lladdr;
      return n;
    });
}

// ---------------------------------------------------------------- diff (pure)

/**
 * The node's own address as a host address on the device: the kernel's reverse-path check refuses, strict or loose,
 * a packet that arrives off its reverse path on a device without an address (a gateway's arrivals from members).
 */
function hostAddress(d: VxlanPlan): VxlanCommand {
  const v6 = d.local.includes(':');
  return { tool: 'ip', args: ['address', 'replace', `${d.local}/${v6 ? 128 : 32}`, 'dev', d.device, ...(v6 ? ['nodad'] : [])] };
}

function createCommands(d: VxlanPlan): VxlanCommand[] {
  const add: VxlanCommand = {
    tool: 'ip',
    args: ['link', 'add', d.device, 'type', 'vxlan', 'id', String(d.vni), 'local', d.local, ...(d.uplink !== undefined ? ['dev', d.uplink] : []), 'dstport', String(d.port), 'nolearning'],
  };
  // No IPv6 link-local address: the device carries only routed traffic to the peers listed.
  const setup: VxlanCommand = { tool: 'ip', args: ['link', 'set', 'dev', d.device, 'addrgenmode', 'none', 'address', d.mac, ...(d.mtu !== undefined ? ['mtu', String(d.mtu)] : [])] };
  return [add, setup, hostAddress(d), { tool: 'ip', args: ['link', 'set', 'dev', d.device, 'up'] }];
}

/** Whether a live link is our device with the settings that cannot change in place. */
function sameDevice(a: ActualVxlan, d: VxlanPlan): boolean {
  return a.kind === 'vxlan' && a.vni === d.vni && a.port === d.port && a.local === d.local && a.learning === false && (d.uplink === undefined || a.link === d.uplink);
}

/**
 * The commands that take `actual` towards `desired` in one phase (see VxlanLinks.apply). A link of the name that is
 * not a VXLAN is not ours: `foreign` is set and nothing is done.
 */
export function diffVxlan(actual: ActualVxlanState, desired: VxlanPlan | undefined, device: string, phase: 'add' | 'prune'): { commands: VxlanCommand[]; foreign: boolean } {
  const link = actual.link;
  if (link !== undefined && link.kind !== 'vxlan') return { commands: [], foreign: true };
  const out: VxlanCommand[] = [];
  if (desired === undefined) {
    if (phase === 'prune' && link !== undefined) out.push({ tool: 'ip', args: ['link', 'del', 'dev', device] });
    return { commands: out, foreign: false };
  }
  let fdb = actual.fdb;
  let neighbours = actual.neighbours;
  if (phase === 'add') {
    if (link === undefined || !sameDevice(link, desired)) {
      if (link !== undefined) out.push({ tool: 'ip', args: ['link', 'del', 'dev', device] });
      out.push(...createCommands(desired));
      fdb = [];
      neighbours = [];
    } else {
      const set: string[] = [];
      if (link.mac !== desired.mac) set.push('address', desired.mac);
      if (desired.mtu !== undefined && link.mtu !== desired.mtu) set.push('mtu', String(desired.mtu));
      if (!link.up) set.push('up');
      if (set.length > 0) out.push({ tool: 'ip', args: ['link', 'set', 'dev', device, ...set] });
      if (!link.addresses.includes(`${desired.local}/${desired.local.includes(':') ? 128 : 32}`)) out.push(hostAddress(desired));
    }
    for (const p of desired.peers) {
      // `via`: the outer lookup of an FDB entry uses its own device, not the link's (vxlan_xmit_one).
      if (!fdb.some((e) => e.mac === p.mac && e.dst === p.address && e.permanent && e.via === desired.uplink)) {
        const via = desired.uplink !== undefined ? ['via', desired.uplink] : [];
        out.push({ tool: 'bridge', args: ['fdb', 'replace', p.mac, 'dev', device, 'dst', p.address, ...via, 'self', 'permanent'] });
      }
      for (const n of p.neighbours) {
        if (!neighbours.some((e) => e.dst === n && e.lladdr === p.mac && e.permanent)) {
          out.push({ tool: 'ip', args: ['neigh', 'replace', n, 'lladdr', p.mac, 'dev', device, 'nud', 'permanent'] });
        }
      }
    }
    return { commands: out, foreign: false };
  }
  if (link === undefined) return { commands: out, foreign: false };
  const fdbWanted = new Set(desired.peers.map((p) => `${p.mac} ${p.address}`));
  for (const e of fdb) {
    // The kernel matches an entry by its `via` too.
    if (!fdbWanted.has(`${e.mac} ${e.dst}`)) out.push({ tool: 'bridge', args: ['fdb', 'del', e.mac, 'dev', device, 'dst', e.dst, ...(e.via !== undefined ? ['via', e.via] : []), 'self'] });
  }
  const neighWanted = new Set(desired.peers.flatMap((p) => p.neighbours));
  for (const e of neighbours) {
    if (!neighWanted.has(e.dst)) out.push({ tool: 'ip', args: ['neigh', 'del', e.dst, 'dev', device] });
  }
  return { commands: out, foreign: false };
}

// ---------------------------------------------------------------- I/O

export interface VxlanLinkOptions {
  device: string;
  /** Run every command with `-n <netns>`; default: the current namespace. */
  netns?: string;
  ipPath?: string;
  bridgePath?: string;
}

export class VxlanLink implements VxlanLinks {
  private readonly o: VxlanLinkOptions;

  constructor(opts: VxlanLinkOptions) {
    this.o = opts;
  }

  private run(tool: 'ip' | 'bridge', args: string[]) {
    const path = tool === 'ip' ? (this.o.ipPath ?? 'ip') : (this.o.bridgePath ?? 'bridge');
    return runCommand(path, this.o.netns !== undefined ? ['-n', this.o.netns, ...args] : args);
  }

  async read(): Promise<ActualVxlanState> {
    const dev = this.o.device;
    const l = await this.run('ip', ['-d', '-json', 'address', 'show', 'dev', dev]);
    if (l.code !== 0) {
      if (/does not exist|Cannot find device/.test(l.stderr)) return { fdb: [], neighbours: [] };
      throw new Error(`ip address show dev ${dev}: ${l.stderr.trim()}`);
    }
    const link = parseVxlanLink(l.stdout);
    if (link === undefined || link.kind !== 'vxlan') return { ...(link ? { link } : {}), fdb: [], neighbours: [] };
    const f = await this.run('bridge', ['-json', 'fdb', 'show', 'dev', dev]);
    if (f.code !== 0) throw new Error(`bridge fdb show dev ${dev}: ${f.stderr.trim()}`);
    const n = await this.run('ip', ['-json', 'neigh', 'show', 'dev', dev]);
    if (n.code !== 0) throw new Error(`ip neigh show dev ${dev}: ${n.stderr.trim()}`);
    return { link, fdb: parseFdb(f.stdout), neighbours: parseNeighbours(n.stdout) };
  }

  async apply(desired: VxlanPlan | undefined, phase: 'add' | 'prune'): Promise<VxlanApplyResult> {
    // Nothing to add without a device (most nodes): spare the reads; the prune phase still removes a leftover.
    if (desired === undefined && phase === 'add') return { changes: [], errors: [] };
    const { commands, foreign } = diffVxlan(await this.read(), desired, this.o.device, phase);
    if (foreign) return { changes: [], errors: [`a link named ${this.o.device} exists and is not a VXLAN; left alone`] };
    const res: VxlanApplyResult = { changes: [], errors: [] };
    for (const c of commands) {
      const line = `${c.tool} ${c.args.join(' ')}`;
      const r = await this.run(c.tool, c.args);
      if (r.code === 0) res.changes.push(line);
      else res.errors.push(`${line}: ${r.stderr.trim() || `exit ${r.code}`}`);
    }
    return res;
  }
}
