// Apply a NodePlan to the node: IKE connections and PSKs over VICI, routes and rules through iproute2, the nftables
// table and rp_filter values for cross-pool traffic.
//
// Ownership: the agent touches only connections, CHILD/IKE SAs and shared keys named `corvid-*`, our routing table
// and the rules that look it up, the nftables table inet corvid, the rp_filter values it loosened (kept to be put
// back), the member VXLAN corvid.vx and the WireGuard interface corvid.wg. It never flushes xfrm state, other tables
// or other rules.
// Order: the devices routes go through (VXLAN, WireGuard) first, then routes and the nftables table together (they
// do not depend on charon), then VICI (the actions computed by planViciActions, src/agent/vici-actions.ts, then
// executed here). rp_filter after. A VXLAN no longer wanted goes after the routes, a
// WireGuard interface no longer wanted after the tunnels.
// The reconciler keeps only a memory of the config fingerprints it loaded; everything else is read back each time,
// so a charon restart (nothing loaded) or a hand-made change (a conn unloaded, a route deleted) is simply drift.

import { createHash } from 'node:crypto';
import type { ViciCommands, IkeSaInfo } from './vici/index.ts';
import type { Iproute } from '../adapters/iproute/iproute.ts';
import type { Nft } from '../adapters/nft/nft.ts';
import type { RpFilter } from '../adapters/sysctl/rpfilter.ts';
import type { VxlanLinks } from '../adapters/iproute/vxlan.ts';
import { wireguardPsk, type ActualPeer, type WireguardConfig, type WireguardLinks } from '../adapters/wireguard/wireguard.ts';
import type { WireguardKeyPair } from '../adapters/wireguard/keyfile.ts';
import { activeConn, endpointHost, looseRpFilterDevices, NO_PACKET_POLICY, WIREGUARD_SESSION_SECONDS, wireguardTunnels, type NodePlan, type WireguardPeerPlan, type WireguardPlan, type PacketPolicy, type TunnelPlan, type VxlanPlan } from '../nodeplan/index.ts';
import type { ConnConfig } from './vici/index.ts';
import { connHash, ours, summariseSas, tunnelConns, type SaSummary } from './conns.ts';
import { describeAction, endsStepsOnFailure, peerProblem, planViciActions, type TsBackoff, type ViciAction, type WantedTunnel } from './vici-actions.ts';
import type { SecretReader } from './secrets.ts';
import type { Logger } from '../shell/log.ts';

export interface TunnelState {
  peer: string;
  conn: string;
  up: boolean;
  pending: boolean;
  bytesIn: number;
  bytesOut: number;
  children: SaSummary['children'];
  /** Where the peer's gateway was found: an up IKE_SA's remote address, a WireGuard peer's current endpoint. */
  remoteAddress?: string;
}

export interface ReconcileResult {
  ok: boolean;
  /** One line per problem; never contains key material. */
  errors: string[];
  /**
   * Problems of the peer rather than of this node (an initiate that did not complete: the peer is down, not yet
   * configured or unreachable). Retried at the next repair; they do not make the agent unready.
   */
  warnings: string[];
  /** Batch lines applied to routes/rules. */
  ipChanges: string[];
  /** Packet filter and sysctl changes: `nft table inet corvid written|deleted`, `rp_filter <dev>=<value>`. */
  packetChanges: string[];
  /** VICI actions taken, e.g. `load-conn corvid-b`, `initiate corvid-b`. */
  viciActions: string[];
  tunnels: TunnelState[];
  /** Routes in our table after the apply (as planned when the apply succeeded). */
  routeCount: number;
  /** False when the VICI part was skipped (no charon and nothing to do there). */
  viciChecked: boolean;
  /** True when the WireGuard peers were read back (the plan has WireGuard links). */
  wireguardChecked: boolean;
  /** Reconcile again within this many ms: a step waits on time (ViciSteps.recheckMs). */
  recheckMs?: number;
}

export interface ReconcilerOptions {
  /** A VICI session (reconnecting); undefined on nodes without charon. */
  vici?: ViciCommands;
  /** Whether charon's socket is there; the VICI part is skipped when it is not and nothing needs charon. */
  viciPresent?: () => boolean;
  iproute: Iproute;
  /** Our nftables table (pod source addresses kept, MSS clamping); undefined: not managed. */
  nft?: Nft;
  /** Loose reverse-path filtering where cross-pool traffic arrives asymmetrically; undefined: not managed. */
  rpFilter?: RpFilter;
  /** The member VXLAN device, its FDB and neighbour entries; undefined: not managed (plans with one are errors). */
  vxlan?: VxlanLinks;
  /** The WireGuard interface; undefined: not managed (plans with WireGuard links are errors). */
  wireguard?: WireguardLinks;
  /** This node's WireGuard key pair; undefined: none could be had (plans with WireGuard links are errors). */
  wireguardKey?: WireguardKeyPair;
  secrets: SecretReader;
  log: Logger;
  /** How long an initiate waits for the SA (charon keeps trying afterwards). Default 5000 ms. */
  initiateTimeoutMs?: number;
  /** Timeout of terminate calls. Default 3000 ms. */
  terminateTimeoutMs?: number;
  /** The clock a WireGuard handshake's age is measured with (default Date.now). */
  nowMs?: () => number;
}

/** A result with nothing done yet. */
export function emptyResult(): ReconcileResult {
  return { ok: true, errors: [], warnings: [], ipChanges: [], packetChanges: [], viciActions: [], tunnels: [], routeCount: 0, viciChecked: false, wireguardChecked: false };
}

/** A terminate timeout that does not wait for the peer's answer to the DELETE (with force: the SA goes at once). */
const NO_WAIT = -1;

/** terminate of an SA that vanished meanwhile (the peer closed it first): the goal is reached. */
function alreadyGone(e: unknown): boolean {
  return /no matching SAs to terminate found/i.test((e as Error)?.message ?? '');
}

/**
 * Terminate all SAs of a connection; an SA that is already gone counts as done. When both ends terminate at once
 * (both agents stopping), charon may answer "terminating SA failed" because the peer's DELETE destroyed the SA
 * meanwhile: what counts is that no SA of the connection is left.
 */
async function terminateAll(vici: ViciCommands, name: string, timeoutMs: number): Promise<void> {
  try {
    await vici.terminate({ ike: name, force: true, timeoutMs });
  } catch (e) {
    if (alreadyGone(e)) return;
    const left = await vici.listSas({ ike: name }).catch(() => undefined);
    if (left !== undefined && !left.some((sa) => sa.name === name)) return;
    throw e;
  }
}

/** Terminate IKE_SAs by unique id, without waiting for the peer's answer; one already gone counts as done. */
async function terminateIds(vici: ViciCommands, ikeIds: readonly string[]): Promise<void> {
  for (const ikeId of ikeIds) {
    try {
      await vici.terminate({ ikeId, force: true, timeoutMs: NO_WAIT });
    } catch (e) {
      if (!alreadyGone(e)) throw e;
    }
  }
}

/** Tunnels in one order whatever their backend: by connection name. */
function byConn(a: TunnelState, b: TunnelState): number {
  return a.conn < b.conn ? -1 : a.conn > b.conn ? 1 : 0;
}

interface Wanted extends WantedTunnel {
  configs: Map<string, ConnConfig>;
  secret: Buffer;
  /** The PSK's owners: this node's identity and every candidate's of the peer pool. */
  owners: string[];
}

export class DatapathReconciler {
  private readonly o: ReconcilerOptions;
  /** Connection name -> fingerprint of the config this process loaded. */
  private readonly loaded = new Map<string, string>();
  /** Shared-key id -> fingerprint of the key this process loaded. */
  private readonly loadedKeys = new Map<string, string>();

  /** Tunnel name -> backoff of replacing SAs with the wrong traffic selectors (planViciActions). */
  private readonly tsBackoff = new Map<string, TsBackoff>();

  constructor(opts: ReconcilerOptions) {
    this.o = opts;
  }

  /**
   * Make the node hold the plan. `holdInitiate`: load the connections but start none yet (a hand-over's successor
   * waits until its predecessor has let go: see Agent). `awaitPeerChild`: a hand-over's successor, whose peers create
   * its CHILD_SAs (planViciActions).
   */
  async reconcile(plan: NodePlan, opts: { holdInitiate?: boolean; awaitPeerChild?: boolean } = {}): Promise<ReconcileResult> {
    const res = emptyResult();
    // The device and its new next hops before the routes that use them; stale entries only after the routes moved.
    await this.applyVxlan(plan.vxlan, 'add', res);
    if (plan.wireguard !== undefined) await this.applyWireguard(plan.wireguard, res, wireguardTunnels(plan));
    // Routes and the packet filter at once: neither reads the other, and both must be there before the tunnels
    // (on a failover every command before the first VICI call is time the pool has no path).
    await Promise.all([this.applyRoutes(plan, res), this.applyNft(plan.packet, res)]);
    await this.applyVxlan(plan.vxlan, 'prune', res);
    await this.applyVici(plan, res, opts.holdInitiate === true, opts.awaitPeerChild === true);
    // An interface no longer wanted goes after the tunnels: its routes are gone already, and a node taking over as an
    // IPsec gateway should not wait for one more command before it loads its connections.
    if (plan.wireguard === undefined) await this.applyWireguard(undefined, res);
    if (plan.wireguard !== undefined && this.o.wireguard !== undefined) {
      try {
        res.tunnels.push(...(await this.readWireguardTunnels(plan, this.o.wireguard)));
        res.tunnels.sort(byConn);
        res.wireguardChecked = true;
      } catch (e) {
        res.errors.push(`wireguard: ${(e as Error).message}`);
      }
    }
    await this.applyRpFilter(plan, res);
    res.ok = res.errors.length === 0;
    return res;
  }

  /**
   * The nftables table, before the tunnels: NAT is decided by a flow's first packet, and a flow masqueraded while the
   * table was missing would stay so for its lifetime.
   */
  private async applyNft(packet: PacketPolicy, res: ReconcileResult): Promise<void> {
    if (this.o.nft === undefined) return;
    try {
      const r = await this.o.nft.apply(packet);
      if (r.error !== undefined) res.errors.push(`nft: ${r.error}`);
      else if (r.changed) res.packetChanges.push(`nft table inet ${this.o.nft.table} ${packet.remote.length > 0 ? 'written' : 'deleted'}`);
    } catch (e) {
      res.errors.push(`nft: ${(e as Error).message}`);
    }
  }

  /**
   * Loose rp_filter on the devices looseRpFilterDevices names, after the tunnels so that a failover is not slowed
   * down: the devices toward the pool depend on the pool, not on the node's role, so a node taking over already has
   * them loose.
   */
  private async applyRpFilter(plan: Parameters<typeof looseRpFilterDevices>[0], res: ReconcileResult): Promise<void> {
    if (this.o.rpFilter !== undefined) {
      try {
        const main = plan.poolNeighbours.length === 0 ? [] : await this.o.iproute.routes('main');
        const r = await this.o.rpFilter.ensure(looseRpFilterDevices(plan, main));
        res.packetChanges.push(...r.changes.map((c) => `rp_filter ${c}`));
        res.errors.push(...r.errors);
      } catch (e) {
        res.errors.push(`rp_filter: ${(e as Error).message}`);
      }
    }
  }

  private async applyVxlan(desired: VxlanPlan | undefined, phase: 'add' | 'prune', res: ReconcileResult): Promise<void> {
    if (this.o.vxlan === undefined) {
      if (desired !== undefined && phase === 'add') res.errors.push('vxlan: the plan has a member VXLAN device but this agent does not manage one');
      return;
    }
    try {
      const r = await this.o.vxlan.apply(desired, phase);
      res.ipChanges.push(...r.changes);
      res.errors.push(...r.errors.map((e) => `vxlan: ${e}`));
    } catch (e) {
      res.errors.push(`vxlan: ${(e as Error).message}`);
    }
  }

  /**
   * The WireGuard interface and its peers (PSKs derived from the links' Secrets); undefined removes it. `tunnels`: the
   * peers that are tunnels (nodeplan's wireguardTunnels); the others are warm sessions.
   */
  private async applyWireguard(desired: WireguardPlan | undefined, res: ReconcileResult, tunnels: readonly WireguardPeerPlan[] = []): Promise<void> {
    const wg = this.o.wireguard;
    if (wg === undefined) {
      if (desired !== undefined) res.errors.push('wireguard: the plan has WireGuard links but this agent does not manage WireGuard');
      return;
    }
    let config: WireguardConfig | undefined;
    if (desired !== undefined) {
      const key = this.o.wireguardKey;
      if (key === undefined) {
        res.errors.push('wireguard: the plan has WireGuard links but this node has no WireGuard key');
        return;
      }
      config = { device: desired.device, listenPort: desired.listenPort, privateKey: key.privateKey, peers: [] };
      if (desired.mtu !== undefined) config.mtu = desired.mtu;
      for (const p of desired.peers) {
        const s = await this.o.secrets.read(p.pskSecretRef);
        if (!s.ok) {
          res.errors.push(`wireguard peer ${p.name}: ${s.reason}`);
          continue;
        }
        config.peers.push({
          name: p.name,
          publicKey: p.publicKey,
          presharedKey: wireguardPsk(s.data),
          allowedIPs: p.allowedIPs,
          persistentKeepalive: p.persistentKeepalive,
          ...(p.endpoint !== undefined ? { endpoint: p.endpoint } : {}),
          ...(tunnels.includes(p) ? {} : { warm: true }),
        });
      }
    }
    try {
      const r = await wg.apply(config);
      res.ipChanges.push(...r.changes);
      res.errors.push(...r.errors.map((e) => `wireguard: ${e}`));
      // A warning has the agent apply again soon (0.5 s, doubling), which re-adds a peer whose first handshake was lost.
      res.warnings.push(...r.awaitingHandshake.map((p) => `wireguard peer ${p}: no handshake yet`));
    } catch (e) {
      res.errors.push(`wireguard: ${(e as Error).message}`);
    }
  }

  private async applyRoutes(plan: NodePlan, res: ReconcileResult): Promise<void> {
    try {
      const r = await this.o.iproute.apply({
        routes: plan.routes.map((x) => ({
          family: x.family,
          dst: x.dst,
          ...(x.via !== undefined ? { via: x.via } : {}),
          ...(x.mtu !== undefined ? { mtu: x.mtu } : {}),
          ...(x.dev !== undefined ? { dev: x.dev } : {}),
        })),
        rules: plan.rules.map((x) => ({ family: x.family, priority: x.priority, table: x.table, ...(x.iif === undefined ? {} : { iif: x.iif }) })),
      });
      res.ipChanges.push(...r.changes.map((c) => c.line));
      res.errors.push(...r.errors.map((e) => `route: ${e}`));
      res.routeCount = plan.routes.length - r.errors.filter((e) => e.startsWith('route replace')).length;
    } catch (e) {
      res.errors.push(`routes: ${(e as Error).message}`);
    }
  }

  private async wanted(plan: NodePlan, res: ReconcileResult): Promise<Map<string, Wanted>> {
    const out = new Map<string, Wanted>();
    for (const t of plan.tunnels) {
      const s = await this.o.secrets.read(t.pskSecretRef);
      if (!s.ok) {
        res.errors.push(`tunnel ${t.name}: ${s.reason}`);
        continue;
      }
      const configs = new Map(tunnelConns(t).map((c) => [c.name, c.conn]));
      const conns = t.peers.map((peer) => ({ peer, hash: connHash(configs.get(peer.conn)!) }));
      const owners = [t.localId, ...t.peers.map((p) => p.id)];
      // The key is loaded again when a candidate comes or goes: its owners are part of what was loaded.
      const fingerprint = `${s.fingerprint}:${createHash('sha256').update(owners.join('\n')).digest('hex').slice(0, 16)}`;
      out.set(t.name, { tunnel: t, conns, configs, secret: s.data, owners, fingerprint });
    }
    return out;
  }

  private async applyVici(plan: NodePlan, res: ReconcileResult, holdInitiate: boolean, awaitPeerChild: boolean): Promise<void> {
    const want = await this.wanted(plan, res);
    const vici = this.o.vici;
    const present = this.o.viciPresent?.() ?? true;
    if (vici === undefined || (!present && plan.tunnels.length === 0 && this.loaded.size === 0)) {
      if (plan.tunnels.length > 0) res.errors.push('vici: this node is an active gateway but no charon VICI socket is available');
      return;
    }
    res.viciChecked = true;
    const log = this.o.log;
    let conns: string[];
    let keys: string[];
    let sas: IkeSaInfo[];
    try {
      conns = (await vici.getConns()).filter(ours);
      keys = (await vici.getShared()).filter(ours);
      sas = (await vici.listSas()).filter((s) => ours(s.name));
    } catch (e) {
      res.errors.push(`vici: cannot read charon state: ${(e as Error).message}`);
      return;
    }
    const steps = planViciActions(want, { conns, keys, sas }, { loaded: this.loaded, loadedKeys: this.loadedKeys, tsBackoff: this.tsBackoff }, {
      retiring: plan.retiring ?? [],
      holdInitiate,
      awaitPeerChild,
      nowMs: Date.now(),
    });
    if (steps.recheckMs !== undefined) res.recheckMs = steps.recheckMs;
    const terminateTimeoutMs = this.o.terminateTimeoutMs ?? 3000;
    const configs = new Map([...want.values()].flatMap((w) => [...w.configs]));
    const configOf = (name: string): ConnConfig => configs.get(name)!;
    const hashes = new Map([...want.values()].flatMap((w) => w.conns.map((c) => [c.peer.conn, c.hash] as const)));
    const execute = async (a: ViciAction): Promise<boolean> => {
      const action = describeAction(a);
      try {
        switch (a.op) {
          case 'terminate':
            // An SA built from another config, or to the peer pool's previous gateway, which may be dead (a
            // failover): its DELETE is sent, not waited for, or the initiate to the new gateway would wait for its
            // retransmits.
            if (a.why === 'replaced: the peer pool has a new gateway') await terminateIds(vici, a.ikeIds);
            else await terminateAll(vici, a.name, a.why === 'config changed' ? NO_WAIT : terminateTimeoutMs);
            break;
          case 'unload-conn':
            await vici.unloadConn(a.name);
            break;
          case 'unload-shared':
            await vici.unloadShared(a.id);
            break;
          case 'load-shared': {
            const w = want.get(a.id)!;
            await vici.loadShared({ id: a.id, type: 'IKE', data: w.secret, owners: w.owners });
            break;
          }
          case 'load-conn':
            await vici.loadConn(a.name, configOf(a.name));
            break;
          case 'initiate':
            await vici.initiate({ ike: a.name, ...(a.child === undefined ? {} : { child: a.child }), timeoutMs: this.o.initiateTimeoutMs ?? 5000 });
            break;
        }
        res.viciActions.push(action);
        log.info('vici', { action });
        return true;
      } catch (e) {
        (peerProblem(a) ? res.warnings : res.errors).push(`vici: ${action}: ${(e as Error).message}`);
        return false;
      }
    };

    // 1. What is ours and no longer wanted: forgotten whatever became of each removal.
    for (const a of steps.remove) {
      await execute(a);
      if (a.op === 'unload-shared') this.loadedKeys.delete(a.id);
      else if (a.op === 'terminate' || a.op === 'unload-conn') this.loaded.delete(a.name);
    }
    for (const name of [...this.tsBackoff.keys()]) if (!want.has(name)) this.tsBackoff.delete(name);
    // 2. Keys, then connections, then initiation; what this process loaded is remembered as it succeeds.
    for (const { name, steps: connSteps, clearBackoff } of steps.connections) {
      const w = want.get(name)!;
      let ended = false;
      for (const a of connSteps) {
        if (a.op === 'terminate' && a.why === 'traffic selectors differ from the plan') this.tsBackoff.set(name, a.backoff);
        const ok = await execute(a);
        if (ok && a.op === 'load-shared') this.loadedKeys.set(name, w.fingerprint);
        if (ok && a.op === 'load-conn') this.loaded.set(a.name, hashes.get(a.name)!);
        if (!ok && endsStepsOnFailure(a)) {
          ended = true;
          break;
        }
      }
      if (!ended && clearBackoff) this.tsBackoff.delete(name);
    }

    // 3. Read back the SAs for status and metrics.
    try {
      res.tunnels.push(...(await this.readIpsecTunnels(plan)));
    } catch (e) {
      res.errors.push(`vici: list-sas: ${(e as Error).message}`);
    }
  }

  /**
   * The state of the plan's tunnels as list-sas and the WireGuard interface report it now (cheap: no change is made).
   * Throws on VICI or wg errors.
   */
  async readTunnels(plan: NodePlan): Promise<TunnelState[]> {
    const out = await this.readIpsecTunnels(plan);
    if (plan.wireguard !== undefined && this.o.wireguard !== undefined) out.push(...(await this.readWireguardTunnels(plan, this.o.wireguard)));
    return out.sort(byConn);
  }

  private async readIpsecTunnels(plan: NodePlan): Promise<TunnelState[]> {
    const vici = this.o.vici;
    if (vici === undefined || plan.tunnels.length === 0) return [];
    const after = (await vici.listSas()).filter((s) => ours(s.name));
    return plan.tunnels.map((t) => {
      const s = summariseSas(after, activeConn(t), t.name);
      const state: TunnelState = { peer: t.peerPool, conn: t.name, up: s.up, pending: s.pending, bytesIn: s.bytesIn, bytesOut: s.bytesOut, children: s.children };
      if (s.remoteHost !== undefined) state.remoteAddress = s.remoteHost;
      return state;
    });
  }

  private async readWireguardTunnels(plan: NodePlan, wg: WireguardLinks): Promise<TunnelState[]> {
    const peers = await wg.peers();
    if (peers === undefined) throw new Error(`${wg.device} is missing`);
    const actual = new Map(peers.map((p) => [p.publicKey, p]));
    const nowS = (this.o.nowMs ?? Date.now)() / 1000;
    return wireguardTunnels(plan).map((p) => wireguardTunnel(p.peerPool, p.name, actual.get(p.publicKey), nowS));
  }

  /** Remove exactly what is ours: SAs and conns named corvid-*, our shared keys, our routes and rules. */
  async teardown(): Promise<ReconcileResult> {
    const res = emptyResult();
    const vici = this.o.vici;
    const present = this.o.viciPresent?.() ?? true;
    if (vici !== undefined && present) {
      res.viciChecked = true;
      try {
        const sas = (await vici.listSas()).filter((s) => ours(s.name));
        for (const name of [...new Set(sas.map((s) => s.name))].sort()) {
          try {
            await terminateAll(vici, name, this.o.terminateTimeoutMs ?? 3000);
            res.viciActions.push(`terminate ${name}`);
          } catch (e) {
            res.errors.push(`vici: terminate ${name}: ${(e as Error).message}`);
          }
        }
        for (const name of (await vici.getConns()).filter(ours).sort()) {
          await vici.unloadConn(name).then(
            () => res.viciActions.push(`unload-conn ${name}`),
            (e: Error) => res.errors.push(`vici: unload-conn ${name}: ${e.message}`),
          );
        }
        for (const id of (await vici.getShared()).filter(ours).sort()) {
          await vici.unloadShared(id).then(
            () => res.viciActions.push(`unload-shared ${id}`),
            (e: Error) => res.errors.push(`vici: unload-shared ${id}: ${e.message}`),
          );
        }
        // A peer may have re-initiated between our terminate and unload-conn (its close_action): sweep once more,
        // now that no conn of ours is left to accept another one.
        for (const name of [...new Set((await vici.listSas()).filter((s) => ours(s.name)).map((s) => s.name))].sort()) {
          await terminateAll(vici, name, this.o.terminateTimeoutMs ?? 3000).then(
            () => res.viciActions.push(`terminate ${name} (late)`),
            (e: Error) => res.errors.push(`vici: terminate ${name}: ${e.message}`),
          );
        }
      } catch (e) {
        res.errors.push(`vici: ${(e as Error).message}`);
      }
      this.loaded.clear();
      this.loadedKeys.clear();
    }
    try {
      const r = await this.o.iproute.removeAll();
      res.ipChanges.push(...r.changes.map((c) => c.line));
      res.errors.push(...r.errors.map((e) => `route: ${e}`));
    } catch (e) {
      res.errors.push(`routes: ${(e as Error).message}`);
    }
    if (this.o.vxlan !== undefined) await this.applyVxlan(undefined, 'prune', res);
    await this.applyWireguard(undefined, res);
    // Routes first: no cross-pool packet may leave with its source rewritten after the exemption is gone.
    await this.applyNft(NO_PACKET_POLICY, res);
    // Nothing loose: every value loosened is put back.
    await this.applyRpFilter({ poolNeighbours: [], role: 'outside' }, res);
    res.ok = res.errors.length === 0;
    return res;
  }
}

/**
 * A WireGuard peer as a tunnel: up while its last handshake is younger than a session may live (every peer sends
 * keepalives, so an idle tunnel still renews it), pending while none happened yet.
 */
export function wireguardTunnel(peer: string, conn: string, a: ActualPeer | undefined, nowS: number): TunnelState {
  const hs = a?.latestHandshake ?? 0;
  const up = hs > 0 && nowS - hs <= WIREGUARD_SESSION_SECONDS;
  const bytesIn = a?.rxBytes ?? 0;
  const bytesOut = a?.txBytes ?? 0;
  // One "child" per peer key: the byte counters restart with the interface, as a CHILD_SA's do with the SA.
  const children = a === undefined ? [] : [{ uniqueId: `wireguard ${a.publicKey}`, bytesIn, bytesOut, localTs: [], remoteTs: [...a.allowedIPs], up }];
  const state: TunnelState = { peer, conn, up, pending: a !== undefined && hs === 0, bytesIn, bytesOut, children };
  const host = a?.endpoint === undefined ? undefined : endpointHost(a.endpoint);
  if (host !== undefined) state.remoteAddress = host;
  return state;
}
