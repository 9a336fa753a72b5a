// When the sync must plan again with no event: the next instant at which a candidate's health or maturity changes by
// the clock alone. Pure; the sync arms a timer for it.

import { FIRST_SHOW_GRACE_SECONDS, liveLinkAfterSeconds } from './election.ts';
import { heartbeatTimeoutFor, tunnelGraceSeconds } from './health.ts';
import type { CandidateHealth, InventoryNode } from './types.ts';

/**
 * The earliest time after `nowMs` at which a candidate's health changes with no event: a heartbeat passing its
 * timeout, a tunnel-down period passing the tunnel grace (tunnelGraceSeconds, as deriveHealth), a new candidate's
 * wait for a more preferred one ending, a standby back from a partition becoming a live link (liveLinkAfterSeconds,
 * the end of fail-static's wait for its active endpoint), or a healthy candidate becoming mature (minHealthySeconds).
 */
export function nextWake(
  nowMs: number,
  heartbeats: readonly { node: string; renewTime?: string; acquireTime?: string; leaseDurationSeconds?: number; tunnels?: Record<string, { up: boolean; since: string }> }[],
  health: Record<string, CandidateHealth>,
  nodes: readonly InventoryNode[],
  heartbeatTimeoutSeconds: number,
  minHealthySeconds: number,
): number | undefined {
  let best: number | undefined;
  const consider = (ms: number | undefined): void => {
    if (ms === undefined || Number.isNaN(ms) || ms <= nowMs) return;
    if (best === undefined || ms < best) best = ms;
  };
  for (const hb of heartbeats) {
    const timeoutS = heartbeatTimeoutFor(hb, { heartbeatTimeoutSeconds });
    // Tunnels down for the grace (>= grace): wake at the boundary.
    const graceMs = tunnelGraceSeconds(timeoutS) * 1000;
    for (const t of Object.values(hb.tunnels ?? {})) if (!t.up) consider(Date.parse(t.since) + graceMs);
    if (timeoutS === undefined) continue;
    const renew = Date.parse(hb.renewTime ?? hb.acquireTime ?? '');
    // Expired means age > timeout: wake just after the boundary.
    consider(renew + timeoutS * 1000 + 1);
  }
  // A newly shown candidate's wait for a more preferred one ends (FIRST_SHOW_GRACE_SECONDS, plan/election.ts).
  for (const h of Object.values(health)) if (h.heartbeatSince) consider(Date.parse(h.heartbeatSince) + FIRST_SHOW_GRACE_SECONDS * 1000 + 1);
  // Healthy-since boundaries (candidateState: the latest of readySince, heartbeatSince, lastUnhealthy).
  const healthyFor = (seconds: number): void => {
    const ms = seconds * 1000;
    for (const n of nodes) if (n.readySince) consider(Date.parse(n.readySince) + ms);
    for (const h of Object.values(health)) {
      if (h.heartbeatSince) consider(Date.parse(h.heartbeatSince) + ms);
      if (h.lastUnhealthy) consider(Date.parse(h.lastUnhealthy) + ms);
    }
  };
  if (minHealthySeconds > 0) healthyFor(minHealthySeconds);
  if (heartbeatTimeoutSeconds > 0) healthyFor(liveLinkAfterSeconds(heartbeatTimeoutSeconds));
  return best;
}
