// Heartbeat Leases (written by the agents) -> CandidateHealth per node. Pure: `now` and the memory come in, the new
// memory goes out; the sync keeps the memory between calls.
//
// Rules (docs/gateway-annotations.md, "Health"):
// - heartbeatAgeSeconds = now - renewTime (acquireTime when never renewed). No time at all -> no heartbeat signal.
// - heartbeatSince = acquireTime (else renewTime): the agent has renewed since then; a gap is caught by the memory.
// - stale = heartbeatAgeSeconds > timeout, where timeout = options.heartbeatTimeoutSeconds, else the Lease's
//   leaseDurationSeconds, else never stale.
// - tunnelHealthy: undefined when the Lease reports no tunnels; false when it reports tunnels and ALL of them have been
//   down for longer than the timeout (a gateway that is Ready but forwards nothing); true otherwise.
//   Known limit: a pool whose only peers are all dead also sees all tunnels down; both sides then look unhealthy.
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
}

export interface HealthMemory {
  /** Node -> RFC 3339 time it was last seen unhealthy. */
  lastUnhealthy: Record<string, string>;
}

export interface HealthOptions {
  /** The topology's election.heartbeatTimeoutSeconds. */
  heartbeatTimeoutSeconds?: number;
}

export function emptyHealthMemory(): HealthMemory {
  return { lastUnhealthy: {} };
}

export function deriveHealth(
  leases: readonly HeartbeatLease[],
  now: string,
  memory: HealthMemory,
  options: HealthOptions = {},
): { health: Record<string, CandidateHealth>; memory: HealthMemory } {
  const nowMs = parseNow(now);
  const byNode = new Map<string, HeartbeatLease>();
  for (const l of leases) {
    // Two Leases for one node: the most recently renewed wins (deterministic whatever the input order).
    const prev = byNode.get(l.node);
    if (!prev || (parseTime(l.renewTime ?? l.acquireTime) ?? -Infinity) > (parseTime(prev.renewTime ?? prev.acquireTime) ?? -Infinity)) {
      byNode.set(l.node, l);
    }
  }
  const health: Record<string, CandidateHealth> = {};
  const lastUnhealthy: Record<string, string> = {};
  for (const node of [...byNode.keys()].sort()) {
    const l = byNode.get(node)!;
    const timeoutS = options.heartbeatTimeoutSeconds ?? l.leaseDurationSeconds;
    const h: CandidateHealth = {};
    let unhealthy = false;

    const renewMs = parseTime(l.renewTime) ?? parseTime(l.acquireTime);
    if (renewMs !== undefined) {
      h.heartbeatAgeSeconds = Math.max(0, (nowMs - renewMs) / 1000);
      const sinceText = parseTime(l.acquireTime) !== undefined ? l.acquireTime : l.renewTime;
      h.heartbeatSince = formatTime(parseTime(sinceText)!);
      if (timeoutS !== undefined && h.heartbeatAgeSeconds > timeoutS) unhealthy = true;
    }

    const tunnels = Object.values(l.tunnels ?? {});
    if (tunnels.length > 0) {
      const graceMs = (timeoutS ?? 0) * 1000;
      const allDownLong = tunnels.every((t) => {
        if (t.up) return false;
        const since = parseTime(t.since);
        return since === undefined || nowMs - since > graceMs;
      });
      h.tunnelHealthy = !allDownLong;
      if (allDownLong) unhealthy = true;
    }

    const remembered = memory.lastUnhealthy[node];
    const last = unhealthy ? now : remembered;
    if (last !== undefined) {
      lastUnhealthy[node] = last;
      h.lastUnhealthy = last;
    }
    health[node] = h;
  }
  return { health, memory: { lastUnhealthy } };
}
