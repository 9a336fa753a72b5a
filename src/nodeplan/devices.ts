// Which devices a node's routes use towards given prefixes: longest-prefix match over one routing table. Pure.
//
// The agent asks it where this node sends its own pool's traffic (the other nodes' pod subnets and addresses): the
// CNI's devices (flannel.1, vxlan.calico, tunl0, or the LAN with host-gw) and the LAN. Cross-pool traffic arrives on
// those devices while its reverse route is ours, so they get loose reverse-path filtering.

import { contains, parsePrefix, type Prefix } from './cidr.ts';

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
