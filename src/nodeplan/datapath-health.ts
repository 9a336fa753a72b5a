// Can this node forward cross-pool traffic? The agent's own verdict on its node, from what it observed: charon
// answering on its VICI socket (when the node's links use IPsec), the forwarding sysctls, and a route to at least one
// of its peers' gateways (its uplink). The agent reports a change of verdict on its heartbeat Lease, and the election
// takes a candidate that cannot forward out at once (plan/health.ts). The same probe notices a vanished WireGuard
// link, which the agent rebuilds. Pure.
import type { NodePlan } from './types.ts';
import { canonicalAddress, endpointHost } from './cidr.ts';

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

/**
 * The sysfs file that exists while the plan's WireGuard link does (wireguard-go's TUN device goes with its process),
 * read on the datapath probe's timer; undefined when the plan has no WireGuard link.
 */
export function wireguardLinkFile(plan: NodePlan): string | undefined {
  return plan.wireguard === undefined ? undefined : `/sys/class/net/${plan.wireguard.device}/ifindex`;
}

/**
 * Whether the plan's WireGuard link vanished since the last probe: a repair is due now, not at the next repair tick.
 * Only a link seen before and missing now counts (one that cannot be created is retried by the repair timer), and
 * only when the read itself worked (the forwarding sysctl came back).
 */
export function wireguardLinkVanished(plan: NodePlan, read: ReadonlyMap<string, string>, seenBefore: boolean): { present: boolean; vanished: boolean } {
  const file = wireguardLinkFile(plan);
  if (file === undefined) return { present: false, vanished: false };
  if (!read.has(forwardingSysctls(plan)[0].path)) return { present: seenBefore, vanished: false };
  const present = read.has(file);
  return { present, vanished: seenBefore && !present };
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

/**
 * Consecutive probes with no route to any peer gateway before the node counts as unable to forward: its uplink is
 * down (link, address or route gone). Two, as for charon: a route replaced in two steps is not that.
 */
export const NO_PEER_ROUTE_PROBES_DOWN = 2;

/**
 * The addresses this node reaches its peer pools' gateways at, to tell a dead uplink at once: each IPsec tunnel's
 * remote address, else (a peer behind NAT: `%any`) the one its tunnel was last seen up with (`learned`, by
 * connection name); each WireGuard peer's endpoint, warm sessions included, else the learned one. Sorted, no
 * duplicates; empty for a node with no peer to reach (a member, an IPsec standby).
 */
export function peerGatewayAddresses(plan: NodePlan, learned: ReadonlyMap<string, string>): string[] {
  const out = new Set<string>();
  const add = (a: string | undefined): void => void (a !== undefined && out.add(a));
  for (const t of plan.tunnels) add(t.remoteAddr !== '%any' ? canonicalAddress(t.remoteAddr) : learned.get(t.name));
  for (const p of plan.wireguard?.peers ?? []) add(p.endpoint !== undefined ? endpointHost(p.endpoint) : learned.get(p.name));
  return [...out].sort();
}

export interface DatapathObservation {
  /** Consecutive probes charon did not answer; undefined when charon is not needed (no IPsec). */
  charonFailures?: number;
  /**
   * Consecutive probes that found no route to any of the peer gateway addresses (peerGatewayAddresses), with the
   * addresses of the last; undefined when no address is known.
   */
  noPeerRoute?: { probes: number; addresses: readonly string[] };
  /** The forwarding sysctls as read; a value that could not be read is undefined (no verdict on it). */
  forwarding: ReadonlyArray<{ family: 4 | 6; value: string | undefined }>;
}

/** Why the node cannot forward, or undefined when nothing observed says so. */
export function datapathDownReason(o: DatapathObservation): string | undefined {
  const reasons: string[] = [];
  if (o.charonFailures !== undefined && o.charonFailures >= CHARON_PROBE_FAILURES_DOWN) reasons.push('charon does not answer on its VICI socket');
  if (o.noPeerRoute !== undefined && o.noPeerRoute.probes >= NO_PEER_ROUTE_PROBES_DOWN) reasons.push(`no route to any peer gateway (${o.noPeerRoute.addresses.join(', ')})`);
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

/** A tunnel's state as the agent publishes it: up or down, since when (RFC 3339, whole seconds). */
export interface PublishedTunnel {
  peer: string;
  up: boolean;
  since: string;
}

/** The first millisecond of the whole second `ms` falls in: `since` has whole seconds. */
function secondOf(ms: number): number {
  return Math.floor(ms / 1000) * 1000;
}

/**
 * The peers whose tunnels a charon restart (the new charon started at startedMs) took down and that only the peers
 * can bring back: this node answers them (they are behind NAT, or initiate by name order), and the tunnel was up when
 * the old charon died: still published up (not read since), or published down since the restart (a read of the new
 * charon came first). The new charon has no IKE_SA for them; they go on with theirs until their dead-peer detection
 * gives up. Sorted.
 */
export function peersLostByRestart(tunnels: ReadonlyArray<PublishedTunnel & { role: 'initiator' | 'responder' }>, startedMs: number): string[] {
  return tunnels
    .filter((t) => t.role === 'responder' && (t.up || Date.parse(t.since) >= secondOf(startedMs)))
    .map((t) => t.peer)
    .sort();
}

/** What a charon restart took: the peers (peersLostByRestart), when the new charon started, when the agent saw it. */
export interface RestartLoss {
  peers: string[];
  startedMs: number;
  seenMs: number;
}

/**
 * Why this node asks the sync to hand its gateway role to another candidate: its charon restarted and some of the
 * lost peers are not back: up since the restart was seen. An "up" from before is not back (it is the old charon's,
 * not read again yet). Undefined once they all are, or HANDOVER_WANTED_MAX_MS after the start. The election treats it
 * as a drain: handed over when another candidate is healthy, kept when none is.
 */
export function handoverWantedReason(loss: RestartLoss, tunnels: readonly PublishedTunnel[], nowMs: number): string | undefined {
  if (nowMs - loss.startedMs >= HANDOVER_WANTED_MAX_MS) return undefined;
  const back = new Set(tunnels.filter((t) => t.up && Date.parse(t.since) >= secondOf(loss.seenMs)).map((t) => t.peer));
  const waiting = loss.peers.filter((p) => !back.has(p));
  if (waiting.length === 0) return undefined;
  return `charon restarted; its tunnels to ${waiting.join(', ')} wait for those peers to initiate again`;
}
