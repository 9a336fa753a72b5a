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
// - tunnelHealthy: undefined when the Lease reports no tunnels. false ("Ready but not forwarding") only when
//   (a) the Lease reports at least one tunnel, (b)+(c) every one of them is down and its `since` is known and at least
//   the tunnel grace old (tunnelGraceSeconds(timeout) = max(10 s, 3 × timeout)): a freshly elected gateway whose
//   tunnels were loaded down, and never changed since, counts only once the grace has passed; and (d) the network is
//   not down as a whole: another node's fresh (not stale) Lease reports a tunnel up. true otherwise.
// - reachedPools: the pools that a fresh (not stale, not released) Lease reports a tunnel up to: evidence, from the
//   data plane, that the pool's gateway forwards (the election's fail-static rule).
// - lastUnhealthy: the memory records `now` for a node whenever it is stale or tunnel-unhealthy, and keeps the last
//   such time while it is healthy; nodes without a Lease are forgotten.

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
}

/** Node -> the WireGuard public key its heartbeat Lease publishes (the planner's `wireguardKeys`). */
export function wireguardKeysFrom(leases: readonly HeartbeatLease[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const l of leases) if (l.wireguardKey !== undefined) out[l.node] = l.wireguardKey;
  return out;
}

export interface HealthMemory {
  /** Node -> RFC 3339 time it was last seen unhealthy. */
  lastUnhealthy: Record<string, string>;
}

export interface HealthOptions {
  /** The topology's election.heartbeatTimeoutSeconds. Absent or ≤ 0: each Lease's leaseDurationSeconds instead. */
  heartbeatTimeoutSeconds?: number;
}

/** The shortest tunnel grace, whatever the heartbeat timeout. */
export const MIN_TUNNEL_GRACE_SECONDS = 10;
/** The tunnel grace is this many heartbeat timeouts (when that is longer than the minimum). */
export const TUNNEL_GRACE_TIMEOUTS = 3;

/**
 * How long all of a node's tunnels must have been down before it is tunnel-unhealthy: max(10 s, 3 × timeout), clearly
 * longer than the heartbeat timeout, so that bootstrapping (a responder loading its conns before its peers connect)
 * is never mistaken for "Ready but not forwarding".
 */
export function tunnelGraceSeconds(heartbeatTimeoutSeconds: number | undefined): number {
  const t = heartbeatTimeoutSeconds !== undefined && heartbeatTimeoutSeconds > 0 ? heartbeatTimeoutSeconds : 0;
  return Math.max(MIN_TUNNEL_GRACE_SECONDS, TUNNEL_GRACE_TIMEOUTS * t);
}

/** The heartbeat timeout that applies to a Lease (seconds), or undefined for none. */
export function heartbeatTimeoutFor(lease: Pick<HeartbeatLease, 'leaseDurationSeconds'>, options: HealthOptions = {}): number | undefined {
  const t = options.heartbeatTimeoutSeconds;
  return t !== undefined && t > 0 ? t : lease.leaseDurationSeconds;
}

export function emptyHealthMemory(): HealthMemory {
  return { lastUnhealthy: {} };
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
  for (const node of [...byNode.keys()].sort()) {
    const lease = byNode.get(node)!;
    const timeoutS = heartbeatTimeoutFor(lease, options);
    const renewMs = parseTime(lease.renewTime) ?? parseTime(lease.acquireTime);
    const ageS = renewMs === undefined ? undefined : Math.max(0, (nowMs - renewMs) / 1000);
    const stale = lease.released === true || (ageS !== undefined && timeoutS !== undefined && ageS > timeoutS);
    const anyUp = lease.released !== true && Object.values(lease.tunnels ?? {}).some((t) => t.up);
    if (anyUp && !stale) upReporters++;
    if (!stale) for (const [peer, t] of Object.entries(lease.tunnels ?? {})) if (t.up) reached.add(peer);
    seen.push({ lease, timeoutS, ageS, stale, anyUp });
  }

  // Pass 2: the verdicts.
  const health: Record<string, CandidateHealth> = {};
  const lastUnhealthy: Record<string, string> = {};
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
      const blamed = allDownLong && upReporters > 0;
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
  return { health, memory: { lastUnhealthy }, reachedPools: [...reached].sort() };
}
