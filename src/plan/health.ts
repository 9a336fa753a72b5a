// Heartbeat Leases (written by the agents) -> CandidateHealth per node. Pure: `now` and the memory come in, the new
// memory goes out; the sync keeps the memory between calls. Linear in the number of Leases (plus sorting the names).
//
// Rules (docs/gateway-annotations.md, "Health"):
// - heartbeatAgeSeconds = now - renewTime (acquireTime when never renewed). No time at all -> no heartbeat signal.
// - heartbeatSince = acquireTime (else renewTime): the agent has renewed since then; a gap is caught by the memory.
// - stale = heartbeatAgeSeconds > timeout, where timeout = options.heartbeatTimeoutSeconds (when > 0), else the
//   Lease's leaseDurationSeconds, else never stale.
// - released: the agent gave the Lease up on a clean stop (holderIdentity ""): unhealthy at once, tunnels ignored.
// - datapathDown: the agent of a fresh Lease says its own node cannot forward (charon not answering, forwarding off):
//   unhealthy at once. A stale Lease's word is not taken for it (the heartbeat has expired anyway).
// - handoverWanted: the agent of a fresh Lease asks for its role to go to another candidate (its charon restarted
//   and lost tunnels that only its peers can bring back): healthy, but the election treats it as drained.
// - tunnelHealthy: undefined when the Lease reports no tunnels. false ("Ready but not forwarding") only when
//   (a) the Lease reports at least one tunnel, (b)+(c) every one of them is down and its `since` is known and at least
//   the tunnel grace old (tunnelGraceSeconds(timeout) = max(10 s, min(3 × timeout, 30 s))): a freshly elected gateway whose
//   tunnels were loaded down, and never changed since, counts only once the grace has passed; and (d) the network is
//   not down as a whole: another node's fresh (not stale) Lease reports a tunnel up, or (d') no tunnel is up anywhere
//   but this node's pool explains it (poolExplainsOutage: every down tunnel other pools report leads to this pool, at
//   least one does), another candidate is live, and no other candidate of the pool was blamed so within
//   UPLINK_SUSPECT_DAMPING_SECONDS (a hub whose uplink died looks like a network down as a whole; a hub pool whose
//   every uplink is down switches once, not at every grace). true otherwise.
// - unreachableFrom: the nodes whose fresh (not stale, not released) Lease reports this node unreachable over their
//   LAN (corvid.dev/unreachable, nodeplan/liveness.ts), except those this node reports unreachable in turn: two
//   candidates that cannot reach each other say nothing about which of them is dead. Only reports between gateway
//   candidates of one pool count (options.candidatePools, from the live Gateways): an agent's word moves nothing
//   outside its own pool. A reported node is unhealthy (the election: `lost: unreachable in its pool`).
// - reachedPools: the pools that a fresh (not stale, not released) Lease reports a tunnel up to: evidence, from the
//   data plane, that the pool's gateway forwards (the election's fail-static rule).
// - lastUnhealthy: the memory records `now` for a node whenever it is stale or tunnel-unhealthy, and keeps the last
//   such time while it is healthy; nodes without a Lease are forgotten.

import { candidateNodes } from '../gateway/candidates.ts';
import type { Gateway } from '../gateway/types.ts';
import type { CandidateHealth } from './types.ts';
import { formatTime, parseNow, parseTime } from './time.ts';

export interface HeartbeatLease {
  /** Node name (the Lease is named after its node). */
  node: string;
  renewTime?: string;
  acquireTime?: string;
  leaseDurationSeconds?: number;
  /** From the corvid.dev/tunnels Lease annotation: peer -> {up, since}. */
  tunnels?: Record<string, { up: boolean; since: string }>;
  /** The holder gave the Lease up (its agent stopped cleanly and removed its datapath). */
  released?: boolean;
  /** From the corvid.dev/wireguard-public-key Lease annotation, when it is a WireGuard public key. */
  wireguardKey?: string;
  /** From the corvid.dev/datapath-down Lease annotation: why the agent says its node cannot forward. */
  datapathDown?: string;
  /** From the corvid.dev/handover-wanted Lease annotation: why the agent asks for its role to go to another candidate. */
  handoverWanted?: string;
  /** From the corvid.dev/unreachable Lease annotation: the candidates of its pool this node's agent cannot reach. */
  unreachable?: string[];
}

/** Node -> the WireGuard public key its heartbeat Lease publishes (the planner's `wireguardKeys`). */
export function wireguardKeysFrom(leases: readonly HeartbeatLease[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const l of leases) if (l.wireguardKey !== undefined) out[l.node] = l.wireguardKey;
  return out;
}

/**
 * Gateway candidate -> its pool (the Gateway's name), from the Gateways' spec.endpoints of type tunnel: whose word
 * about whom counts in deriveHealth. A node listed by two Gateways keeps the first by name.
 */
export function candidatePools(gateways: readonly Gateway[]): Record<string, string> {
  const out = new Map<string, string>();
  for (const g of [...gateways].sort((a, b) => (a.metadata.name < b.metadata.name ? -1 : a.metadata.name > b.metadata.name ? 1 : 0))) {
    for (const node of candidateNodes(g)) if (!out.has(node)) out.set(node, g.metadata.name);
  }
  return Object.fromEntries(out);
}

export interface HealthMemory {
  /** Node -> RFC 3339 time it was last seen unhealthy. */
  lastUnhealthy: Record<string, string>;
  /** Node -> RFC 3339 time it was last blamed by clause (d'), kept for UPLINK_SUSPECT_DAMPING_SECONDS. */
  uplinkSuspected?: Record<string, string>;
}

export interface HealthOptions {
  /** The topology's election.heartbeatTimeoutSeconds. Absent or ≤ 0: each Lease's leaseDurationSeconds instead. */
  heartbeatTimeoutSeconds?: number;
  /** Gateway candidate -> its pool (candidatePools() of the live Gateways). Absent: no unreachable report counts. */
  candidatePools?: Readonly<Record<string, string>>;
}

/** The shortest tunnel grace, whatever the heartbeat timeout. */
export const MIN_TUNNEL_GRACE_SECONDS = 10;
/** The tunnel grace is this many heartbeat timeouts (when that is longer than the minimum)... */
export const TUNNEL_GRACE_TIMEOUTS = 3;
/** ...and never longer than this: a gateway whose uplink alone died (its LAN fine) is moved within half a minute. */
export const MAX_TUNNEL_GRACE_SECONDS = 30;

/**
 * How long all of a node's tunnels must have been down before it is tunnel-unhealthy: max(10 s, min(3 × timeout,
 * 30 s)), so that bootstrapping (a responder loading its conns before its peers connect) is never mistaken for "Ready
 * but not forwarding". A peer that died is replaced within about a second when its pool has a standby (liveness), so
 * the grace need not outlast a long heartbeat timeout; it is capped, since this rule alone catches a dead uplink.
 */
export function tunnelGraceSeconds(heartbeatTimeoutSeconds: number | undefined): number {
  const t = heartbeatTimeoutSeconds !== undefined && heartbeatTimeoutSeconds > 0 ? heartbeatTimeoutSeconds : 0;
  return Math.max(MIN_TUNNEL_GRACE_SECONDS, Math.min(TUNNEL_GRACE_TIMEOUTS * t, MAX_TUNNEL_GRACE_SECONDS));
}

/**
 * After a candidate is blamed for an outage its pool explains (clause d'), another candidate of that pool is not blamed
 * so for this long: when the successor cannot reach anyone either, the pool's uplinks are down, not one node's.
 */
export const UPLINK_SUSPECT_DAMPING_SECONDS = 600;

/**
 * Clause (d'): nobody has a tunnel up, yet the outage is this pool's: every down tunnel the fresh Leases of other
 * pools report leads to `pool`, and at least one does. A hub pool (every tunnel of a star ends there) whose active
 * gateway lost its uplink looks exactly like that; a network down as a whole does not, unless it is a star too.
 */
export function poolExplainsOutage(pool: string, downReports: ReadonlyArray<{ pool: string; peers: readonly string[] }>): boolean {
  const others = downReports.filter((r) => r.pool !== pool && r.peers.length > 0);
  return others.length > 0 && others.every((r) => r.peers.every((p) => p === pool));
}

/** The heartbeat timeout that applies to a Lease (seconds), or undefined for none. */
export function heartbeatTimeoutFor(lease: Pick<HeartbeatLease, 'leaseDurationSeconds'>, options: HealthOptions = {}): number | undefined {
  const t = options.heartbeatTimeoutSeconds;
  return t !== undefined && t > 0 ? t : lease.leaseDurationSeconds;
}

export function emptyHealthMemory(): HealthMemory {
  return { lastUnhealthy: {}, uplinkSuspected: {} };
}

export function deriveHealth(
  leases: readonly HeartbeatLease[],
  now: string,
  memory: HealthMemory,
  options: HealthOptions = {},
): { health: Record<string, CandidateHealth>; memory: HealthMemory; reachedPools: string[] } {
  const nowMs = parseNow(now);
  const byNode = new Map<string, HeartbeatLease>();
  for (const l of leases) {
    // Two Leases for one node: the most recently renewed wins (deterministic whatever the input order).
    const prev = byNode.get(l.node);
    if (!prev || (parseTime(l.renewTime ?? l.acquireTime) ?? -Infinity) > (parseTime(prev.renewTime ?? prev.acquireTime) ?? -Infinity)) {
      byNode.set(l.node, l);
    }
  }

  // Pass 1: each node's heartbeat, and how many fresh Leases report a tunnel up (clause d).
  interface Seen { lease: HeartbeatLease; timeoutS?: number; ageS?: number; stale: boolean; anyUp: boolean }
  const seen: Seen[] = [];
  let upReporters = 0;
  const reached = new Set<string>();
  const poolOf = new Map(Object.entries(options.candidatePools ?? {}));
  // The down tunnels each fresh Lease of a known pool reports (clause d').
  const downReports: Array<{ node: string; pool: string; peers: string[] }> = [];
  for (const node of [...byNode.keys()].sort()) {
    const lease = byNode.get(node)!;
    const timeoutS = heartbeatTimeoutFor(lease, options);
    const renewMs = parseTime(lease.renewTime) ?? parseTime(lease.acquireTime);
    const ageS = renewMs === undefined ? undefined : Math.max(0, (nowMs - renewMs) / 1000);
    const stale = lease.released === true || (ageS !== undefined && timeoutS !== undefined && ageS > timeoutS);
    const anyUp = lease.released !== true && Object.values(lease.tunnels ?? {}).some((t) => t.up);
    if (anyUp && !stale) upReporters++;
    if (!stale) for (const [peer, t] of Object.entries(lease.tunnels ?? {})) if (t.up) reached.add(peer);
    const pool = poolOf.get(node);
    if (!stale && pool !== undefined) downReports.push({ node, pool, peers: Object.entries(lease.tunnels ?? {}).filter(([, t]) => !t.up).map(([peer]) => peer) });
    seen.push({ lease, timeoutS, ageS, stale, anyUp });
  }
  // Who reports whom unreachable (fresh Leases only); a report answered by the opposite report cancels out.
  const reports = new Map<string, Set<string>>();
  for (const { lease, stale } of seen) {
    const pool = poolOf.get(lease.node);
    if (stale || pool === undefined) continue;
    reports.set(lease.node, new Set((lease.unreachable ?? []).filter((t) => poolOf.get(t) === pool)));
  }
  const unreachableFrom = new Map<string, string[]>();
  for (const [reporter, targets] of reports) {
    for (const target of targets) {
      if (target === reporter || reports.get(target)?.has(reporter) === true) continue;
      const list = unreachableFrom.get(target) ?? [];
      list.push(reporter);
      unreachableFrom.set(target, list);
    }
  }

  // Pass 2: the verdicts.
  const health: Record<string, CandidateHealth> = {};
  const lastUnhealthy: Record<string, string> = {};
  // Clause (d') memory: still within the damping window, for candidates that still have a Lease.
  const uplinkSuspected: Record<string, string> = {};
  for (const [node, at] of Object.entries(memory.uplinkSuspected ?? {})) {
    const atMs = parseTime(at);
    if (byNode.has(node) && atMs !== undefined && nowMs - atMs < UPLINK_SUSPECT_DAMPING_SECONDS * 1000) uplinkSuspected[node] = at;
  }
  // Only worth blaming when another live candidate could take the role over.
  const freshCandidates = seen.filter((x) => !x.stale).map((x) => x.lease.node);
  const suspectedRecently = (pool: string, except: string): boolean =>
    Object.keys(uplinkSuspected).some((n) => n !== except && poolOf.get(n) === pool);
  for (const { lease: l, timeoutS, ageS, stale, anyUp } of seen) {
    const node = l.node;
    const h: CandidateHealth = {};
    let unhealthy = stale;
    if (ageS !== undefined) {
      h.heartbeatAgeSeconds = ageS;
      const sinceText = parseTime(l.acquireTime) !== undefined ? l.acquireTime : l.renewTime;
      h.heartbeatSince = formatTime(parseTime(sinceText)!);
    }

    if (l.released === true) h.released = true;
    if (!stale && l.released !== true && l.datapathDown !== undefined) {
      h.datapathDown = l.datapathDown;
      unhealthy = true;
    }
    // Not unhealthy: the node forwards, it only prefers to hand over (the election's drain rule).
    if (!stale && l.released !== true && l.handoverWanted !== undefined) h.handoverWanted = l.handoverWanted;
    const from = unreachableFrom.get(node);
    if (from !== undefined) {
      h.unreachableFrom = from.sort();
      unhealthy = true;
    }
    const tunnels = l.released === true ? [] : Object.values(l.tunnels ?? {});
    if (tunnels.length > 0) {
      const graceMs = tunnelGraceSeconds(timeoutS) * 1000;
      const allDownLong =
        !anyUp &&
        tunnels.every((t) => {
          // No readable `since`: not known to be down long (never blamed on a guess).
          const since = parseTime(t.since);
          return since !== undefined && nowMs - since >= graceMs;
        });
      // This node reports nothing up, so every up reporter is another node.
      const pool = poolOf.get(node);
      const poolSuspect =
        allDownLong &&
        upReporters === 0 &&
        pool !== undefined &&
        poolExplainsOutage(pool, downReports.filter((r) => r.node !== node)) &&
        freshCandidates.some((n) => n !== node && poolOf.get(n) === pool) &&
        !suspectedRecently(pool, node);
      if (poolSuspect) uplinkSuspected[node] = now;
      const blamed = allDownLong && (upReporters > 0 || poolSuspect);
      h.tunnelHealthy = !blamed;
      if (blamed) unhealthy = true;
    }

    const remembered = memory.lastUnhealthy[node];
    const last = unhealthy ? now : remembered;
    if (last !== undefined) {
      lastUnhealthy[node] = last;
      h.lastUnhealthy = last;
    }
    health[node] = h;
  }
  return { health, memory: { lastUnhealthy, uplinkSuspected }, reachedPools: [...reached].sort() };
}
