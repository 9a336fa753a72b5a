// Gateway election for one pool. Pure; the planner feeds it candidate states computed at `now`.
//
// Rules (docs/gateway-annotations.md, "Election"):
// - healthy = Ready, heartbeat seen (when required: PlanInput.requireHeartbeat) and not expired, datapath not reported down by its agent, not reported unreachable by
//   another live candidate of its pool (over their LAN), tunnels not down. Drained
//   candidates are healthy but not electable.
// - mature = healthy, not drained, and healthy for at least minHealthySeconds, where healthy-since is
//   max(readySince, heartbeatSince, lastUnhealthy).
// - sticky: a healthy, undrained active endpoint is kept.
// - preemption (preempt: true, or sticky: false): a kept endpoint yields to a more preferred one, but only once every
//   endpoint of the ideal set (the `replicas` most preferred healthy candidates) is kept or mature; a more preferred
//   candidate still maturing makes it wait instead of hopping through intermediate nodes.
// - new elections pick mature candidates in preference order. When that leaves the pool with no gateway at all, the
//   most preferred healthy candidate is elected anyway (availability beats hysteresis; the reason says so), except
//   that one live for less than FIRST_SHOW_GRACE_SECONDS waits for a more preferred candidate that is Ready but has
//   no heartbeat yet (a first start: the agents start seconds apart).
// - an active endpoint whose agent has not shown itself yet (a Gateway adopted from Raven, whose agents are gone; a
//   first start after the Leases were lost) is not kept, but awaited: the election annotation names it (REASONS.awaited)
//   until the pool has a gateway again, the others wait for it as for a more preferred candidate, and it is elected
//   first once it shows itself. So a migration keeps the gateway Raven had elected.
// - a drained active endpoint is handed over to another healthy candidate (maturity not required: the operator asked
//   for it). With no other healthy candidate and no other active endpoint it is kept, with a finding. A candidate
//   whose agent asks to hand over (handoverWanted: its charon restarted) is treated the same, with no finding.
// - more kept endpoints than replicas: the most preferred survive (upstream picks at random).

import type { ElectionSettings } from '../topology/types.ts';
import type { CandidateHealth, Decision, DecisionKind, Finding, InventoryNode } from './types.ts';
import { parseTime } from './time.ts';

export type Unhealth =
  | 'not ready'
  | 'node unreachable'
  | 'heartbeat released'
  | 'heartbeat expired'
  | 'no heartbeat'
  | 'datapath down'
  | 'unreachable in its pool'
  | 'tunnels down';

export interface CandidateState {
  node: string;
  /** Index in the pool's gateways list (0 = most preferred). */
  rank: number;
  /** Why the candidate is unhealthy; undefined when healthy. */
  unhealthy?: Unhealth;
  drained: boolean;
  /**
   * Its agent asks for its role to go to another candidate, and why (plan/health.ts): treated as a drain, so handed
   * over when another candidate is healthy and kept when none is.
   */
  handoverWanted?: string;
  /** Seconds of continuous health at `now` (Infinity when no time is known; 0 when unhealthy). */
  healthyForSeconds: number;
  /** Seconds since its heartbeat Lease was renewed, when there is one. */
  heartbeatAgeSeconds?: number;
}

export const REASONS = {
  elected: 'elected: most preferred healthy candidate',
  electedForAvailability: (w: number) =>
    `elected: most preferred healthy candidate, healthy for less than ${w}s (no candidate was healthy for ${w}s and the pool had no healthy gateway)`,
  electedForHandover: (w: number) =>
    `elected: most preferred healthy candidate, healthy for less than ${w}s (replaces a drained gateway)`,
  kept: 'kept: still healthy',
  keptCutOff: 'kept: the pool is cut off from the API server, and its peers still reach it',
  keptDrained: 'kept: drained, but no other healthy candidate',
  keptAsked: 'kept: its agent asks to hand over (charon restarted), but no other healthy candidate',
  lost: (why: Unhealth | 'drained') => `lost: ${why}`,
  lostNotCandidate: 'lost: no longer a candidate',
  lostOverReplicas: (r: number) => `lost: more active endpoints than replicas (${r})`,
  handedOver: 'handed-over: drained',
  handedOverAsked: (why: string) => `handed-over: its agent asked (${why})`,
  preempted: (by: string, w: number) => `preempted: ${by} is more preferred and healthy for ${w}s`,
  /** Not active: the pool's previous active endpoint, awaited until its agent shows itself (see the rules above). */
  awaited: 'awaited: it was the active gateway, and its agent has not shown itself yet',
} as const;

/**
 * Whether a candidate yields its role, and to whom it owes that: the operator's drain, or its agent's request to hand
 * over. Either way it is handed over when another candidate is healthy, and never newly elected.
 */
export function yieldOf(c: CandidateState): 'drained' | 'handover-wanted' | undefined {
  return c.drained ? 'drained' : c.handoverWanted !== undefined ? 'handover-wanted' : undefined;
}

/**
 * Since when a node has been healthy (ms): the latest of the times it became so (Ready, its heartbeat Lease
 * acquired, last seen unhealthy); undefined when none is known.
 */
export function healthySinceMs(...times: Array<string | undefined>): number | undefined {
  let since: number | undefined;
  for (const t of times) {
    const ms = parseTime(t);
    if (ms !== undefined && (since === undefined || ms > since)) since = ms;
  }
  return since;
}

/**
 * A candidate's state at nowMs. heartbeatTimeoutSeconds ≤ 0 disables the heartbeat checks. With requireHeartbeat
 * (the sync's default), a candidate whose agent has never written a heartbeat Lease is unhealthy: Ready alone says
 * nothing about a datapath nobody runs.
 */
export function candidateState(
  node: InventoryNode,
  rank: number,
  health: CandidateHealth | undefined,
  settings: Pick<ElectionSettings, 'heartbeatTimeoutSeconds'> & { requireHeartbeat?: boolean },
  nowMs: number,
): CandidateState {
  let unhealthy: Unhealth | undefined;
  if (!node.ready) unhealthy = node.readyUnknown === true ? 'node unreachable' : 'not ready';
  else if (health?.released === true && settings.heartbeatTimeoutSeconds > 0) unhealthy = 'heartbeat released';
  else if (
    health?.heartbeatAgeSeconds !== undefined &&
    settings.heartbeatTimeoutSeconds > 0 &&
    health.heartbeatAgeSeconds > settings.heartbeatTimeoutSeconds
  ) {
    unhealthy = 'heartbeat expired';
  } else if (settings.requireHeartbeat === true && settings.heartbeatTimeoutSeconds > 0 && health?.heartbeatAgeSeconds === undefined) {
    unhealthy = 'no heartbeat';
  } else if (health?.datapathDown !== undefined && settings.heartbeatTimeoutSeconds > 0) unhealthy = 'datapath down';
  else if ((health?.unreachableFrom?.length ?? 0) > 0 && settings.heartbeatTimeoutSeconds > 0) unhealthy = 'unreachable in its pool';
  else if (health?.tunnelHealthy === false) unhealthy = 'tunnels down';

  let healthyForSeconds = 0;
  if (!unhealthy) {
    const since = healthySinceMs(node.readySince, health?.heartbeatSince, health?.lastUnhealthy);
    healthyForSeconds = since === undefined ? Infinity : Math.max(0, (nowMs - since) / 1000);
  }
  const s: CandidateState = { node: node.name, rank, drained: node.drained, healthyForSeconds };
  if (unhealthy) s.unhealthy = unhealthy;
  else if (health?.handoverWanted !== undefined && settings.heartbeatTimeoutSeconds > 0) s.handoverWanted = health.handoverWanted;
  if (health?.heartbeatAgeSeconds !== undefined) s.heartbeatAgeSeconds = health.heartbeatAgeSeconds;
  return s;
}

export interface PoolElectionInput {
  pool: string;
  /** The pool's candidates (gateway preferences whose node is a member of the pool), in rank order. */
  candidates: readonly CandidateState[];
  /** Node names of the live Gateway's status.activeEndpoints, in their order. */
  previousActive: readonly string[];
  /** The live Gateway's election annotation (node -> reason), carried forward for kept endpoints. */
  previousReasons: Readonly<Record<string, string>>;
  settings: ElectionSettings;
  /** A fresh Lease of another pool's gateway reports a tunnel up to this pool (PlanInput.reachedPools). */
  reachedByPeers?: boolean;
}

/**
 * How long a candidate that has just shown a live agent waits, at a pool's first election, for a more preferred
 * candidate that is Ready but has not shown its agent yet (agents starting together start seconds apart).
 */
export const FIRST_SHOW_GRACE_SECONDS = 10;

/** How long a standby must have been healthy before it counts as a live link to the API server (cutOffButReached). */
export function liveLinkAfterSeconds(heartbeatTimeoutSeconds: number): number {
  return heartbeatTimeoutSeconds / 2;
}

/** What the control plane cannot tell from a node it has lost contact with: dead, or only cut off from it. */
const OUT_OF_REACH: ReadonlySet<Unhealth | undefined> = new Set<Unhealth | undefined>(['heartbeat expired', 'node unreachable']);

/**
 * Fail-static: the pool's active endpoints are out of the API server's reach (heartbeat expired, or Ready Unknown),
 * no other candidate shows a live link to the API server since they fell silent, and a peer pool's gateway still has
 * a tunnel up to the pool. That is a site cut off from the control plane (the common edge failure), not a dead
 * gateway: a dead one leaves a live standby to say so (or its peers' tunnels go down). The active endpoints stay;
 * nobody can be newly elected in such a pool (no candidate is known healthy).
 *
 * A healthy standby counts as a live link only when it renewed its heartbeat more than half a timeout after the last
 * renewal of the silent active endpoint: cut off at the same moment, the standby's last renewal is at most one renew
 * interval later, and its heartbeat simply expires a little later than the active one's. And only once it has been
 * healthy for half a timeout: when a partition heals, the pool's agents renew in whatever order, each within a renew
 * interval, and a standby back first must not take the role from an active endpoint that is back a moment later.
 */
export function cutOffButReached(candidates: readonly CandidateState[], previousActive: readonly string[], reachedByPeers: boolean, heartbeatTimeoutSeconds: number): boolean {
  if (!reachedByPeers || heartbeatTimeoutSeconds <= 0) return false;
  const active = new Set(previousActive);
  const silent = candidates.filter((c) => active.has(c.node) && OUT_OF_REACH.has(c.unhealthy));
  if (silent.length === 0) return false;
  const silentFor = Math.min(...silent.map((c) => c.heartbeatAgeSeconds ?? Infinity));
  return candidates.every(
    (c) =>
      OUT_OF_REACH.has(c.unhealthy) ||
      (c.unhealthy === undefined &&
        c.heartbeatAgeSeconds !== undefined &&
        (c.heartbeatAgeSeconds >= silentFor - heartbeatTimeoutSeconds / 2 || c.healthyForSeconds < liveLinkAfterSeconds(heartbeatTimeoutSeconds))),
  );
}

export interface PoolElectionResult {
  /** Elected node names in rank order. */
  active: string[];
  /** Active node -> reason of its last election decision. */
  reasons: Record<string, string>;
  decisions: Decision[];
  findings: Finding[];
}

export function electPool(input: PoolElectionInput): PoolElectionResult {
  const { pool, candidates, settings } = input;
  const R = Math.max(1, Math.floor(settings.replicas));
  const W = settings.minHealthySeconds;
  const byNode = new Map(candidates.map((c) => [c.node, c]));
  const yields = (c: CandidateState): boolean => yieldOf(c) !== undefined;
  const healthyOK = (c: CandidateState): boolean => !c.unhealthy && !yields(c);
  const mature = (c: CandidateState): boolean => healthyOK(c) && c.healthyForSeconds >= W;
  const byRank = (a: CandidateState, b: CandidateState): number => a.rank - b.rank;

  const decisions: Decision[] = [];
  const findings: Finding[] = [];
  const reasons: Record<string, string> = {};
  const decide = (node: string, kind: DecisionKind, reason: string): void => {
    decisions.push({ pool, node, kind, reason });
  };

  // Previous active endpoints whose agents have not shown themselves: in status now, or awaited by an earlier election
  // (no longer in status). One awaited before that is healthy now is elected first.
  const awaitedBefore = new Set(Object.keys(input.previousReasons).filter((n) => input.previousReasons[n] === REASONS.awaited));
  const awaited = candidates.filter((c) => (awaitedBefore.has(c.node) || input.previousActive.includes(c.node)) && c.unhealthy === 'no heartbeat');
  const incumbentFirst = (a: CandidateState, b: CandidateState): number => Number(awaitedBefore.has(b.node)) - Number(awaitedBefore.has(a.node)) || byRank(a, b);

  // 1. What happens to each previous active endpoint.
  const failStatic = cutOffButReached(candidates, input.previousActive, input.reachedByPeers === true, settings.heartbeatTimeoutSeconds);
  let kept: CandidateState[] = [];
  const drainedActive: CandidateState[] = [];
  const seen = new Set<string>();
  for (const name of input.previousActive) {
    if (seen.has(name)) continue;
    seen.add(name);
    const c = byNode.get(name);
    if (!c) decide(name, 'lost', REASONS.lostNotCandidate);
    else if (c.unhealthy && failStatic) {
      kept.push(c);
      decide(name, 'kept', REASONS.keptCutOff);
    } else if (c.unhealthy) decide(name, 'lost', REASONS.lost(c.unhealthy));
    else if (yields(c)) drainedActive.push(c);
    else kept.push(c);
  }
  kept.sort(byRank);
  drainedActive.sort(byRank);
  for (const extra of kept.slice(R)) decide(extra.node, 'lost', REASONS.lostOverReplicas(R));
  kept = kept.slice(0, R);

  // 2. Preemption: move to the ideal set once all of it is ready.
  if (settings.preempt || !settings.sticky) {
    const top = candidates.filter(healthyOK).sort(byRank).slice(0, R);
    const keptSet = new Set(kept);
    if (top.every((c) => keptSet.has(c) || mature(c))) {
      const topSet = new Set(top);
      const newcomers = top.filter((c) => !keptSet.has(c));
      const displaced = kept.filter((c) => !topSet.has(c)).sort((a, b) => b.rank - a.rank);
      const n = Math.min(newcomers.length, displaced.length);
      for (let i = 0; i < n; i++) decide(displaced[i].node, 'preempted', REASONS.preempted(newcomers[i].node, W));
      const gone = new Set(displaced.slice(0, n));
      kept = kept.filter((c) => !gone.has(c));
    }
  }

  // 3. Fill the free slots: mature candidates first; recent ones only for availability or to replace drained ones.
  const taken = new Set<CandidateState>([...kept, ...drainedActive]);
  const need = R - kept.length;
  const picks = candidates.filter((c) => mature(c) && !taken.has(c)).sort(incumbentFirst).slice(0, need);
  for (const p of picks) taken.add(p);
  const rem = need - picks.length;
  const noGateway = kept.length + picks.length === 0;
  const recentQuota = Math.min(rem, Math.max(drainedActive.length, noGateway ? 1 : 0));
  // Availability does not jump the queue at a pool's first start: a candidate whose agent showed itself moments ago
  // waits (FIRST_SHOW_GRACE_SECONDS) for a more preferred one that is Ready but whose agent has not shown itself yet,
  // so the preferred gateway is elected when all agents start together, not the one that happened to start first.
  // An awaited previous active endpoint counts as more preferred than any.
  const waitsForPreferred = (c: CandidateState): boolean =>
    drainedActive.length === 0 &&
    !awaitedBefore.has(c.node) &&
    c.healthyForSeconds < FIRST_SHOW_GRACE_SECONDS &&
    candidates.some((d) => d.unhealthy === 'no heartbeat' && (d.rank < c.rank || awaited.includes(d)));
  const recent = candidates.filter((c) => healthyOK(c) && !taken.has(c) && !waitsForPreferred(c)).sort(incumbentFirst).slice(0, recentQuota);

  // 4. Drained active endpoints: handed over, dropped, or (nothing else to serve the pool) kept.
  let retained: CandidateState | undefined;
  const replacements = picks.length + recent.length;
  if (drainedActive.length > 0) {
    if (kept.length + replacements === 0) {
      retained = drainedActive[0];
      reasons[retained.node] = retained.drained ? REASONS.keptDrained : REASONS.keptAsked;
      // Only the operator's drain is worth a finding: an agent's request ends by itself within half a minute.
      if (retained.drained) findings.push({
        severity: 'warning',
        code: 'drained-gateway-kept',
        pool,
        node: retained.node,
        message: `gateway ${retained.node} is drained but stays active: no other healthy candidate in pool ${pool}`,
      });
    }
    drainedActive.forEach((d, i) => {
      if (d === retained) return;
      if (i < replacements) decide(d.node, 'handed-over', d.drained ? REASONS.handedOver : REASONS.handedOverAsked(d.handoverWanted!));
      else decide(d.node, 'lost', REASONS.lost('drained'));
    });
  }

  for (const k of kept) {
    const prev = input.previousReasons[k.node];
    reasons[k.node] = prev === undefined || prev === REASONS.keptDrained || prev === REASONS.keptAsked ? REASONS.kept : prev;
  }
  for (const p of picks) {
    reasons[p.node] = REASONS.elected;
    decide(p.node, 'elected', REASONS.elected);
  }
  for (const r of recent) {
    const why = drainedActive.length > 0 ? REASONS.electedForHandover(W) : REASONS.electedForAvailability(W);
    reasons[r.node] = why;
    decide(r.node, 'elected', why);
  }

  const active = [...kept, ...picks, ...recent, ...(retained ? [retained] : [])].sort(byRank).map((c) => c.node);
  if (active.length === 0) {
    for (const c of awaited) reasons[c.node] = REASONS.awaited;
    if (candidates.length === 0) {
      findings.push({ severity: 'error', code: 'no-candidate', pool, message: `pool ${pool} has no gateway candidate among its nodes` });
    } else {
      const why = candidates.map((c) => `${c.node}: ${c.unhealthy ?? yieldOf(c) ?? 'healthy'}`).join(', ');
      findings.push({ severity: 'error', code: 'no-healthy-candidate', pool, message: `pool ${pool} has no healthy gateway candidate (${why})` });
    }
  }
  return { active, reasons, decisions, findings };
}
