// Which devices a node's routes use towards given prefixes: longest-prefix match over one routing table. Pure.
//
// The agent asks it where this node sends its own pool's traffic (the other nodes' pod subnets and addresses): the
// CNI's devices (flannel.1, vxlan.calico, tunl0, or the LAN with host-gw) and the LAN. Cross-pool traffic arrives on
// those devices while its reverse route is ours, so they get loose reverse-path filtering.

import { contains, parsePrefix, type Prefix } from './cidr.ts';
import type { NodePlan } from './types.ts';

/** A route as the kernel lists it: destination, device, type (unicast, blackhole, local, ...). */
export interface DeviceRoute {
  dst: string;
  dev?: string;
  type: string;
}

/**
 * The devices of the unicast routes that carry each target (the most specific route containing the whole target
 * prefix), sorted and de-duplicated. Targets with no such route, or a route without a device, add nothing.
 */
export function devicesToward(targets: readonly string[], routes: readonly DeviceRoute[]): string[] {
  const parsed: Array<{ prefix: Prefix; dev: string }> = [];
  for (const r of routes) {
    if (r.type !== 'unicast' || r.dev === undefined) continue;
    const p = parsePrefix(r.dst);
    if (p !== undefined) parsed.push({ prefix: p, dev: r.dev });
  }
  const out = new Set<string>();
  for (const t of targets) {
    const target = parsePrefix(t);
    if (target === undefined) continue;
    let best: { prefix: Prefix; dev: string } | undefined;
    for (const r of parsed) {
      if (contains(r.prefix, target) && (best === undefined || r.prefix.length > best.prefix.length)) best = r;
    }
    if (best !== undefined) out.add(best.dev);
  }
  return [...out].sort();
}

/**
 * The devices that get loose reverse-path filtering on this node, given its main table: those that carry its own
 * pool's traffic (devicesToward the plan's pool neighbours); a gateway's member VXLAN, which receives what it answers
 * through the CNI (a member's sends what comes back that way); and a standby's warm WireGuard interface, which
 * receives a peer's traffic from the moment the peer moves to it, while its own route back to the peer still leads
 * to the active gateway (it is a member until it sees the change). Sorted, no duplicates.
 */
export function looseRpFilterDevices(plan: Pick<NodePlan, 'poolNeighbours' | 'vxlan' | 'role' | 'wireguard'>, mainRoutes: readonly DeviceRoute[]): string[] {
  const out = new Set(plan.poolNeighbours.length === 0 ? [] : devicesToward(plan.poolNeighbours, mainRoutes));
  if (plan.vxlan !== undefined && plan.poolNeighbours.length > 0) out.add(plan.vxlan.device);
  if (plan.role !== 'gateway' && plan.wireguard !== undefined) out.add(plan.wireguard.device);
  return [...out].sort();
}
