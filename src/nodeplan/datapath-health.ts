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
