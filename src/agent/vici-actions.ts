// The VICI half of the datapath reconcile as a pure function: what charon holds (read over VICI, ours only) and what
// this process loaded, against the node plan's tunnels -> the actions, in order. DatapathReconciler.applyVici reads,
// calls this, and executes; as the iproute adapter's diffIpState feeds its batch.
//
// Order: what is ours and no longer wanted goes first (terminate before unload-conn: unload-conn leaves SAs up); then
// per wanted connection its PSK, its config, and its initiation.

import type { IkeSaInfo } from './vici/index.ts';
import { activeConn, type IkePeerPlan, type TunnelPlan } from '../nodeplan/index.ts';
import { saMatchesTunnel, summariseSas } from './conns.ts';

/** One IKE connection the plan wants (one per candidate of the peer pool), with the fingerprint of its config. */
export interface WantedConn {
  peer: IkePeerPlan;
  /** connHash of the connection config. */
  hash: string;
}

/** A tunnel the plan wants: its IKE connections, and the fingerprint of its PSK and the PSK's owners. */
export interface WantedTunnel {
  tunnel: TunnelPlan;
  conns: WantedConn[];
  /** Fingerprint of the PSK (never the key) and of its owners. */
  fingerprint: string;
}

/** What charon holds now, ours only (named corvid-*). */
export interface ViciActual {
  conns: readonly string[];
  keys: readonly string[];
  sas: readonly IkeSaInfo[];
}

/** Replacements of an SA with the wrong traffic selectors in a row, and when the next may be (ms). */
export interface TsBackoff {
  count: number;
  notBefore: number;
}

/** What this process remembers between reconciles. */
export interface ViciMemory {
  /** Connection name -> fingerprint of the config this process loaded. */
  loaded: ReadonlyMap<string, string>;
  /** Shared-key id -> fingerprint of the key this process loaded. */
  loadedKeys: ReadonlyMap<string, string>;
  /** By tunnel name. */
  tsBackoff: ReadonlyMap<string, TsBackoff>;
}

export type ViciAction =
  | { op: 'terminate'; name: string; why?: 'config changed' }
  /** IKE_SAs of the peer pool's previous gateway, once the new one's CHILD_SA has carried the tunnel a while. */
  | { op: 'terminate'; name: string; why: 'replaced: the peer pool has a new gateway'; ikeIds: string[] }
  /** An SA negotiated with fewer traffic selectors than the plan's: replaced, with the next replacement backed off. */
  | { op: 'terminate'; name: string; why: 'traffic selectors differ from the plan'; backoff: TsBackoff }
  | { op: 'unload-conn'; name: string }
  | { op: 'unload-shared'; id: string }
  | { op: 'load-shared'; id: string }
  | { op: 'load-conn'; name: string }
  /**
   * Initiate on IKE connection `name`: with `child`, that CHILD_SA (on the connection's IKE_SA when there is one);
   * without, an IKE_SA alone, for the peer to create the CHILD_SA on.
   */
  | { op: 'initiate'; name: string; child?: string };

export interface ViciSteps {
  /** Removals, in order, each whatever became of the others. */
  remove: ViciAction[];
  /**
   * Per wanted tunnel, by name: its steps in order. A failed load-shared or load-conn ends that tunnel's steps
   * (nothing built on it is tried); a failed terminate or initiate does not.
   */
  connections: Array<{ name: string; steps: ViciAction[]; clearBackoff: boolean }>;
  /** Reconcile again within this many ms: something waits on time (the peer's CHILD_SA, a predecessor's grace). */
  recheckMs?: number;
}

/**
 * How long the peer pool's previous gateway keeps its SAs once the new one's CHILD_SA is up: its successor may still
 * send through it until it has seen that we installed ours (the successor's hold), and packets are in flight.
 */
export const PREDECESSOR_GRACE_S = 2;
/**
 * How long a hand-over's successor waits for its peer to create the CHILD_SA on its IKE_SA before it creates it
 * itself (a peer whose agent is stopped, or of a version that does not).
 */
export const PEER_CHILD_WAIT_S = 2;
/** How often a reconcile looks again while it waits on one of the above. */
const RECHECK_MS = 250;

/** The first replacement is immediate; a peer that keeps narrowing is retried after 10 s doubling to 5 min. */
const TS_BACKOFF_FIRST_MS = 10_000;
const TS_BACKOFF_MAX_MS = 300_000;

/** The action as the agent logs and reports it (ReconcileResult.viciActions): `load-conn corvid-b@b-gw`. */
export function describeAction(a: ViciAction): string {
  switch (a.op) {
    case 'terminate':
      if (a.why === 'replaced: the peer pool has a new gateway') return `terminate ${a.name} IKE_SA ${a.ikeIds.join(', ')} (${a.why})`;
      return a.why === undefined ? `terminate ${a.name}` : `terminate ${a.name} (${a.why})`;
    case 'unload-shared':
    case 'load-shared':
      return `${a.op} ${a.id}`;
    case 'initiate':
      return a.child === undefined ? `initiate ${a.name} (IKE_SA only: the peer creates the CHILD_SA)` : `initiate ${a.name} child ${a.child}`;
    default:
      return `${a.op} ${a.name}`;
  }
}

/** Whether the action can fail because of the peer rather than this node (reported as a warning). */
export function peerProblem(a: ViciAction): boolean {
  return a.op === 'initiate';
}

/** Whether a failure of the action ends its tunnel's steps. */
export function endsStepsOnFailure(a: ViciAction): boolean {
  return a.op === 'load-shared' || a.op === 'load-conn';
}

/** Whether IKE connection or key `name` belongs to one of `tunnels` (`corvid-b`, `corvid-b@b-gw`). */
function ofTunnels(name: string, tunnels: ReadonlySet<string>): boolean {
  const at = name.indexOf('@');
  return tunnels.has(at < 0 ? name : name.slice(0, at));
}

/**
 * The actions that make charon hold `want`. `retiring`: a hand-over's predecessor keeps these tunnels as they are
 * (the successor's replace them at the peers). `holdInitiate`: load, but start nothing yet. `awaitPeerChild`: a
 * hand-over's successor, whose IKE_SAs come up without a CHILD_SA for the peer to create (PEER_CHILD_WAIT_S). `nowMs`
 * for the backoff only.
 *
 * A planned hand-over loses nothing only if the side that keeps sending installs last: a CHILD_SA's responder
 * installs before it answers, its initiator when the answer arrives. So the peer that stays creates the CHILD_SA (as
 * the initiator of the pair, or over the successor's childless IKE_SA), and keeps the predecessor's SAs for
 * PREDECESSOR_GRACE_S while the successor moves its traffic over.
 */
export function planViciActions(
  want: ReadonlyMap<string, WantedTunnel>,
  actual: ViciActual,
  memory: ViciMemory,
  opts: { retiring: readonly string[]; holdInitiate: boolean; awaitPeerChild?: boolean; nowMs: number },
): ViciSteps {
  const remove: ViciAction[] = [];
  const saNames = new Set(actual.sas.map((s) => s.name));
  const conns = new Set(actual.conns);
  const keys = new Set(actual.keys);
  const retiring = new Set(opts.retiring);
  const wantedConns = new Set([...want.values()].flatMap((w) => w.conns.map((c) => c.peer.conn)));
  for (const name of [...new Set([...conns, ...saNames])].sort()) {
    if (wantedConns.has(name) || ofTunnels(name, retiring)) continue;
    if (saNames.has(name)) remove.push({ op: 'terminate', name });
    if (conns.has(name)) remove.push({ op: 'unload-conn', name });
  }
  for (const id of [...keys].sort()) {
    if (want.has(id) || retiring.has(id)) continue;
    remove.push({ op: 'unload-shared', id });
  }

  const sasByName = new Map<string, IkeSaInfo[]>();
  for (const sa of actual.sas) {
    const same = sasByName.get(sa.name);
    if (same === undefined) sasByName.set(sa.name, [sa]);
    else same.push(sa);
  }
  let recheck = false;
  const connections: ViciSteps['connections'] = [];
  for (const [name, w] of [...want].sort(([a], [b]) => (a < b ? -1 : 1))) {
    const t = w.tunnel;
    const steps: ViciAction[] = [];
    let clearBackoff = false;
    if (!keys.has(name) || memory.loadedKeys.get(name) !== w.fingerprint) steps.push({ op: 'load-shared', id: name });
    // Each IKE connection: loaded as planned. An SA built from another config keeps its old traffic selectors:
    // replaced. When this process never loaded the conn (agent restart), the SA is judged by its traffic selectors
    // instead of torn down blindly.
    const terminated = new Set<string>();
    for (const c of w.conns) {
      const conn = c.peer.conn;
      const before = memory.loaded.get(conn);
      if (conns.has(conn) && before === c.hash) continue;
      steps.push({ op: 'load-conn', name: conn });
      const s = summariseSas(sasByName.get(conn) ?? [], conn, name);
      const stale = before !== undefined ? before !== c.hash : !saMatchesTunnel(s, t);
      if ((s.up || s.pending) && stale) {
        steps.push({ op: 'terminate', name: conn, why: 'config changed' });
        terminated.add(conn);
      }
    }
    const active = activeConn(t);
    const current = terminated.has(active) ? [] : (sasByName.get(active) ?? []);
    let summary = summariseSas(current, active, name);
    // The peer pool's previous gateway: its SAs carry the traffic its successor still sends through it, until the
    // successor has seen ours installed. They go once the new CHILD_SA has been up PREDECESSOR_GRACE_S.
    // An IKE_SA of another candidate without our CHILD_SA carries nothing and is left alone: it may be a successor's
    // that came up before this node saw its Gateway move.
    const previous = w.conns
      .filter((c) => c.peer.conn !== active && !terminated.has(c.peer.conn))
      .flatMap((c) => sasByName.get(c.peer.conn) ?? [])
      .filter((sa) => sa.children.some((ch) => ch.name === name));
    if (previous.length > 0 && summary.up) {
      const age = Math.max(...current.flatMap((sa) => sa.children.filter((ch) => ch.name === name && ch.state === 'INSTALLED').map((ch) => ch.installTime ?? 0)));
      if (age >= PREDECESSOR_GRACE_S) steps.push({ op: 'terminate', name: active, why: 'replaced: the peer pool has a new gateway', ikeIds: previous.map((sa) => sa.uniqueId).sort() });
      else recheck = true;
    }
    const predecessorWaits = previous.length > 0 && !summary.up;
    // Steady state too: a CHILD_SA negotiated against the peer's old config (while both ends reloaded) carries fewer
    // traffic selectors and would stay like that. The initiator replaces it; the responder waits for that.
    if (t.role === 'initiator' && summary.up && !summary.pending && !saMatchesTunnel(summary, t)) {
      const b = memory.tsBackoff.get(name) ?? { count: 0, notBefore: 0 };
      if (opts.nowMs >= b.notBefore) {
        const backoff = { count: b.count + 1, notBefore: opts.nowMs + Math.min(TS_BACKOFF_MAX_MS, TS_BACKOFF_FIRST_MS * 2 ** b.count) };
        steps.push({ op: 'terminate', name: active, why: 'traffic selectors differ from the plan', backoff });
        summary = { ...summary, up: false, pending: false };
      }
    } else if (summary.up) {
      clearBackoff = true;
    }
    if (!summary.up && !summary.pending) {
      // An established IKE_SA of the active gateway without our CHILD_SA: the one to create it on.
      const bare = summary.up || terminated.has(active) ? [] : current.filter((sa) => sa.state === 'ESTABLISHED');
      if (t.role === 'responder') {
        // The peer's successor brought its IKE_SA up alone: we keep sending, so we create the CHILD_SA and install last.
        if (bare.length > 0) steps.push({ op: 'initiate', name: active, child: name });
      } else if (bare.length === 0) {
        if (!opts.holdInitiate) steps.push(opts.awaitPeerChild === true ? { op: 'initiate', name: active } : { op: 'initiate', name: active, child: name });
      } else if (opts.awaitPeerChild === true && Math.min(...bare.map((sa) => sa.established ?? 0)) < PEER_CHILD_WAIT_S) {
        recheck = true;
      } else {
        steps.push({ op: 'initiate', name: active, child: name });
      }
    }
    // A CHILD_SA being created here next to a predecessor's: come back to retire the predecessor after the grace.
    if (predecessorWaits && steps.some((a) => a.op === 'initiate' && a.child !== undefined)) recheck = true;
    connections.push({ name, steps, clearBackoff });
  }
  return recheck ? { remove, connections, recheckMs: RECHECK_MS } : { remove, connections };
}
