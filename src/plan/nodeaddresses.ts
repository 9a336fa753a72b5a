// Node addresses across pools (spec.nodeAddresses, issue 15): which pools' Gateways may publish them. Pure.
//
// A pool's node subnet, per family, is the smallest prefix that holds all its nodes' InternalIPs. Two pools whose node
// subnets overlap (two sites numbered alike, 192.168.1.0/24 both) cannot have each other's node addresses routed
// through a tunnel without taking over addresses of their own LAN: both are left out, with an error naming both.

import { formatPrefix, overlaps, parseAddress, type Prefix } from '../nodeplan/cidr.ts';
import type { Finding } from './types.ts';

/** The smallest prefix holding every address given (all of one family); undefined for none. */
export function coveringPrefix(addresses: Array<{ family: 4 | 6; value: bigint }>): Prefix | undefined {
  if (addresses.length === 0) return undefined;
  const family = addresses[0].family;
  const bits = family === 4 ? 32 : 128;
  let lo = addresses[0].value;
  let hi = lo;
  for (const a of addresses) {
    if (a.value < lo) lo = a.value;
    if (a.value > hi) hi = a.value;
  }
  const length = bits - (lo ^ hi).toString(2).replace(/^0$/, '').length;
  const mask = length === 0 ? 0n : ((1n << BigInt(length)) - 1n) << BigInt(bits - length);
  return { family, value: lo & mask, length };
}

/** Each pool's node subnets (one per family its nodes have), from their addresses. */
export function nodeSubnets(addresses: readonly string[]): Prefix[] {
  const parsed = addresses.map(parseAddress).filter((a) => a !== undefined);
  return ([4, 6] as const).map((f) => coveringPrefix(parsed.filter((a) => a.family === f))).filter((p) => p !== undefined);
}

/**
 * The pools whose node addresses may be published: every pool but those whose node subnet overlaps another pool's.
 * One error finding per pool and the innermost other pool's subnet that holds it. O(S log S) for S subnets: two
 * prefixes overlap only when one holds the other, so one sweep in address order with a stack of enclosing prefixes
 * finds every pool in a clash.
 */
export function nodeAddressPools(pools: ReadonlyArray<{ name: string; addresses: readonly string[] }>, findings: Finding[]): Set<string> {
  const entries = pools.flatMap((p) => nodeSubnets(p.addresses).map((prefix) => ({ pool: p.name, prefix })));
  entries.sort((a, b) => a.prefix.family - b.prefix.family || (a.prefix.value < b.prefix.value ? -1 : a.prefix.value > b.prefix.value ? 1 : 0) || a.prefix.length - b.prefix.length || (a.pool < b.pool ? -1 : 1));
  const out = new Set(pools.map((p) => p.name));
  const stack: typeof entries = [];
  for (const e of entries) {
    while (stack.length > 0 && !overlaps(stack[stack.length - 1].prefix, e.prefix)) stack.pop();
    const outer = stack[stack.length - 1];
    if (outer !== undefined) {
      out.delete(outer.pool);
      out.delete(e.pool);
      const [a, b] = outer.pool < e.pool ? [outer, e] : [e, outer];
      findings.push({
        severity: 'error',
        code: 'node-addresses-overlap',
        pool: a.pool,
        message: `pools ${a.pool} and ${b.pool}: their node subnets overlap (${formatPrefix(a.prefix)} and ${formatPrefix(b.prefix)}), so routing one's node addresses to the other would take over addresses of its own network; neither pool's node addresses are routed across pools (renumber one of them, or turn spec.nodeAddresses off)`,
      });
    }
    stack.push(e);
  }
  return out;
}
