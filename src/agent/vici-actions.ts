// The VICI half of the datapath reconcile as a pure function: what charon holds (read over VICI, ours only) and what
// this process loaded, against the node plan's tunnels -> the actions, in order. DatapathReconciler.applyVici reads,
// calls this, and executes; as the iproute adapter's diffIpState feeds its batch.
//
// Order: what is ours and no longer wanted goes first (terminate before unload-conn: unload-conn leaves SAs up); then
// per wanted connection its PSK, its config, and its initiation.

import type { IkeSaInfo } from './vici/index.ts';
import type { TunnelPlan } from '../nodeplan/index.ts';
import { saMatchesTunnel, summariseSas } from './conns.ts';

/** A connection the plan wants, with the fingerprints of its config and of its key. */
export interface WantedConn {
  tunnel: TunnelPlan;
  /** connHash of the connection config. */
  hash: string;
  /** Fingerprint of the PSK (never the key). */
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
  tsBackoff: ReadonlyMap<string, TsBackoff>;
}

export type ViciAction =
  | { op: 'terminate'; name: string; why?: 'config changed' }
  /** IKE_SAs to the peer pool's previous gateway, once ours to its new one is up (make before break). */
  | { op: 'terminate'; name: string; why: 'replaced: the peer pool has a new gateway'; ikeIds: string[] }
  /** An SA negotiated with fewer traffic selectors than the plan's: replaced, with the next replacement backed off. */
  | { op: 'terminate'; name: string; why: 'traffic selectors differ from the plan'; backoff: TsBackoff }
  | { op: 'unload-conn'; name: string }
  | { op: 'unload-shared'; id: string }
  | { op: 'load-shared'; id: string }
  | { op: 'load-conn'; name: string }
  /** `replacing`: IKE_SAs to the peer pool's previous gateway, terminated once this initiate has succeeded. */
  | { op: 'initiate'; name: string; replacing?: string[] };

export interface ViciSteps {
  /** Removals, in order, each whatever became of the others. */
  remove: ViciAction[];
  /**
   * Per wanted connection, by name: its steps in order. A failed load-shared or load-conn ends that connection's
   * steps (nothing built on it is tried); a failed terminate or initiate does not.
   */
  connections: Array<{ name: string; steps: ViciAction[]; clearBackoff: boolean }>;
}

/** The first replacement is immediate; a peer that keeps narrowing is retried after 10 s doubling to 5 min. */
const TS_BACKOFF_FIRST_MS = 10_000;
const TS_BACKOFF_MAX_MS = 300_000;

/** The action as the agent logs and reports it (ReconcileResult.viciActions): `load-conn corvid-b`. */
export function describeAction(a: ViciAction): string {
  switch (a.op) {
    case 'terminate':
      return a.why === undefined ? `terminate ${a.name}` : `terminate ${a.name} (${a.why})`;
    case 'unload-shared':
    case 'load-shared':
      return `${a.op} ${a.id}`;
    case 'initiate':
      return a.replacing === undefined ? `initiate ${a.name}` : `initiate ${a.name} (then terminate IKE_SA ${a.replacing.join(', ')} to the previous gateway)`;
    default:
      return `${a.op} ${a.name}`;
  }
}

/** Whether the action can fail because of the peer rather than this node (reported as a warning). */
export function peerProblem(a: ViciAction): boolean {
  return a.op === 'initiate';
}

/** Whether a failure of the action ends its connection's steps. */
export function endsStepsOnFailure(a: ViciAction): boolean {
  return a.op === 'load-shared' || a.op === 'load-conn';
}

/**
 * The actions that make charon hold `want`. `retiring`: a hand-over's predecessor keeps these as they are (the
 * successor's replace them at the peers). `holdInitiate`: load, but start nothing yet. `nowMs` for the backoff only.
 */
export function planViciActions(
  want: ReadonlyMap<string, WantedConn>,
  actual: ViciActual,
  memory: ViciMemory,
  opts: { retiring: readonly string[]; holdInitiate: boolean; nowMs: number },
): ViciSteps {
  const remove: ViciAction[] = [];
  const saNames = new Set(actual.sas.map((s) => s.name));
  const conns = new Set(actual.conns);
  const keys = new Set(actual.keys);
  const retiring = new Set(opts.retiring);
  for (const name of [...new Set([...conns, ...saNames])].sort()) {
    if (want.has(name) || retiring.has(name)) continue;
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
  const connections: ViciSteps['connections'] = [];
  for (const [name, w] of [...want].sort(([a], [b]) => (a < b ? -1 : 1))) {
    const steps: ViciAction[] = [];
    let clearBackoff = false;
    if (!keys.has(name) || memory.loadedKeys.get(name) !== w.fingerprint) steps.push({ op: 'load-shared', id: name });
    const before = memory.loaded.get(name);
    // An initiator's IKE_SAs to another address than the plan's go to the peer pool's previous gateway (a hand-over
    // there): they carry the traffic until ours to the new one is up, then go (make before break). Only ours to the
    // plan's address count as this tunnel.
    const all = sasByName.get(name) ?? [];
    const previous = w.tunnel.role === 'initiator' ? all.filter((sa) => sa.remoteHost !== undefined && sa.remoteHost !== w.tunnel.remoteAddr) : [];
    const current = previous.length === 0 ? all : all.filter((sa) => !previous.includes(sa));
    let summary = summariseSas(current, name);
    if (!conns.has(name) || before !== w.hash) {
      steps.push({ op: 'load-conn', name });
      // An SA built from another config keeps its old traffic selectors: replace it. When this process never loaded
      // the conn (agent restart), judge the SA by its traffic selectors instead of tearing it down blindly.
      const stale = before !== undefined ? before !== w.hash : !saMatchesTunnel(summary, w.tunnel);
      if ((summary.up || summary.pending) && stale) {
        steps.push({ op: 'terminate', name, why: 'config changed' });
        summary = { ...summary, up: false, pending: false };
      }
    }
    const previousIds = previous.map((sa) => sa.uniqueId).sort();
    if (previous.length > 0 && summary.up) steps.push({ op: 'terminate', name, why: 'replaced: the peer pool has a new gateway', ikeIds: previousIds });
    // Steady state too: a CHILD_SA negotiated against the peer's old config (while both ends reloaded) carries fewer
    // traffic selectors and would stay like that. The initiator replaces it; the responder waits for that.
    if (w.tunnel.role === 'initiator' && summary.up && !summary.pending && !saMatchesTunnel(summary, w.tunnel)) {
      const b = memory.tsBackoff.get(name) ?? { count: 0, notBefore: 0 };
      if (opts.nowMs >= b.notBefore) {
        const backoff = { count: b.count + 1, notBefore: opts.nowMs + Math.min(TS_BACKOFF_MAX_MS, TS_BACKOFF_FIRST_MS * 2 ** b.count) };
        steps.push({ op: 'terminate', name, why: 'traffic selectors differ from the plan', backoff });
        summary = { ...summary, up: false, pending: false };
      }
    } else if (summary.up) {
      clearBackoff = true;
    }
    if (w.tunnel.role === 'initiator' && !summary.up && !summary.pending && !opts.holdInitiate) {
      steps.push(previous.length > 0 ? { op: 'initiate', name, replacing: previousIds } : { op: 'initiate', name });
    }
    connections.push({ name, steps, clearBackoff });
  }
  return { remove, connections };
}
