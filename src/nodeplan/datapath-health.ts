// Can this node forward cross-pool traffic? The agent's own verdict on its node, from what it observed: charon
// answering on its VICI socket (when the node's links use IPsec) and the forwarding sysctls. The agent reports a
// change of verdict on its heartbeat Lease, and the election takes a candidate that cannot forward out at once
// (plan/health.ts). Pure.
import type { NodePlan } from './types.ts';

/** A forwarding sysctl a gateway needs (the agent only reads it: it does not change sysctls). */
export interface ForwardingSysctl {
  family: 4 | 6;
  path: string;
}

/** IPv4 forwarding always; IPv6 forwarding too when the plan carries IPv6 prefixes (traffic selectors or routes). */
export function forwardingSysctls(plan: NodePlan): ForwardingSysctl[] {
  const out: ForwardingSysctl[] = [{ family: 4, path: '/proc/sys/net/ipv4/ip_forward' }];
  const v6 = plan.routes.some((r) => r.family === 6) || plan.tunnels.some((t) => [...t.localTs, ...t.remoteTs].some((ts) => ts.includes(':')));
  if (v6) out.push({ family: 6, path: '/proc/sys/net/ipv6/conf/all/forwarding' });
  return out;
}

/** Whether this node, as a gateway, would carry IPsec: then a charon that does not answer means it cannot forward. */
export function needsCharon(plan: NodePlan): boolean {
  return plan.reach.some((r) => r.backend === 'ipsec');
}

/**
 * Consecutive failed probes of charon before the node counts as unable to forward. One failure can be a probe that
 * met charon mid-restart (a supervisor brings it back within a second); two, one probe interval apart, is not that.
 */
export const CHARON_PROBE_FAILURES_DOWN = 2;

export interface DatapathObservation {
  /** Consecutive probes charon did not answer; undefined when charon is not needed (no IPsec). */
  charonFailures?: number;
  /** The forwarding sysctls as read; a value that could not be read is undefined (no verdict on it). */
  forwarding: ReadonlyArray<{ family: 4 | 6; value: string | undefined }>;
}

/** Why the node cannot forward, or undefined when nothing observed says so. */
export function datapathDownReason(o: DatapathObservation): string | undefined {
  const reasons: string[] = [];
  if (o.charonFailures !== undefined && o.charonFailures >= CHARON_PROBE_FAILURES_DOWN) reasons.push('charon does not answer on its VICI socket');
  const off = o.forwarding.filter((f) => f.value !== undefined && f.value !== '1').map((f) => `IPv${f.family}`);
  if (off.length > 0) reasons.push(`${off.join(' and ')} forwarding is off`);
  return reasons.length === 0 ? undefined : reasons.join('; ');
}

/**
 * How long an active gateway whose charon restarted asks to hand its role over, at most: longer than its peers'
 * dead-peer detection takes to give up on the lost IKE_SAs and initiate again (DPD after 5 s of silence, then the
 * shipped retransmits, about 14 s). By then the tunnels are back whoever holds the role.
 */
export const HANDOVER_WANTED_MAX_MS = 30_000;

/** A tunnel of this node's plan, and when the agent last saw it up (ms). */
export interface TunnelSeen {
  peer: string;
  role: 'initiator' | 'responder';
  lastUpMs?: number;
}

/** A tunnel seen up this long before charon's new start counts as up when the old charon died. */
export const UP_BEFORE_RESTART_MS = 30_000;

/**
 * The peers whose tunnels a charon restart (the new charon started at startedMs) took down and that only the peers
 * can bring back: this node answers them (they are behind NAT, or initiate by name order), and the tunnel was seen up
 * shortly before. The new charon has no IKE_SA for them; they go on with theirs until their dead-peer detection gives
 * up. Sorted.
 */
export function peersLostByRestart(tunnels: readonly TunnelSeen[], startedMs: number): string[] {
  return tunnels
    .filter((t) => t.role === 'responder' && t.lastUpMs !== undefined && t.lastUpMs < startedMs && t.lastUpMs >= startedMs - UP_BEFORE_RESTART_MS)
    .map((t) => t.peer)
    .sort();
}

/**
 * Why this node asks the sync to hand its gateway role to another candidate: its charon restarted at sinceMs and
 * some of the `lost` peers have not initiated again. Undefined once they all have, or after HANDOVER_WANTED_MAX_MS.
 * The election treats it as a drain: handed over when another candidate is healthy, kept when none is.
 */
export function handoverWantedReason(lost: readonly string[], upNow: ReadonlySet<string>, sinceMs: number, nowMs: number): string | undefined {
  if (nowMs - sinceMs >= HANDOVER_WANTED_MAX_MS) return undefined;
  const waiting = lost.filter((p) => !upNow.has(p));
  if (waiting.length === 0) return undefined;
  return `charon restarted; its tunnels to ${waiting.join(', ')} wait for those peers to initiate again`;
}
