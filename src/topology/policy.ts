// Pure questions about a normalised Topology: which pools may talk, and with which encryption.

import type { EncryptionOverride, EncryptionPolicy, LinkOverride, Pool, Topology } from './types.ts';

/** Pools by name. */
export function poolByName(t: Topology): Map<string, Pool> {
  return new Map(t.pools.map((p) => [p.name, p]));
}

function ruleSideMatches(pattern: string, pool: string): boolean {
  return pattern === '*' || pattern === pool;
}

/** Whether a rule's pair (with `*` wildcards) covers the unordered pair {a, b}. */
export function ruleMatches(rule: readonly [string, string], a: string, b: string): boolean {
  return (
    (ruleSideMatches(rule[0], a) && ruleSideMatches(rule[1], b)) ||
    (ruleSideMatches(rule[0], b) && ruleSideMatches(rule[1], a))
  );
}

/** Index of the first rule that matches {a, b}, or -1 when none does. */
export function matchingRule(t: Topology, a: string, b: string): number {
  return t.connectivity.rules.findIndex((r) => ruleMatches(r.pools, a, b));
}

/** Rules in order, first match wins (`*` matches any pool, the order of a and b is irrelevant); no match means allow. */
export function pairVerdict(t: Topology, a: string, b: string): 'allow' | 'deny' {
  const i = matchingRule(t, a, b);
  return i < 0 ? 'allow' : t.connectivity.rules[i].action;
}

/** The two pool names in canonical (sorted) order. */
export function sortedPair(a: string, b: string): [string, string] {
  return a <= b ? [a, b] : [b, a];
}

/** The links[] entry for the unordered pair {a, b}, if any. */
export function linkOverride(t: Topology, a: string, b: string): LinkOverride | undefined {
  const [x, y] = sortedPair(a, b);
  return t.links.find((l) => {
    const [p, q] = sortedPair(l.pools[0], l.pools[1]);
    return p === x && q === y;
  });
}

/** Apply a partial override on top of a complete policy. */
export function applyOverride(base: EncryptionPolicy, o: EncryptionOverride | undefined): EncryptionPolicy {
  if (!o) return applyOverride(base, {});
  const ref = o.pskSecretRef ?? base.pskSecretRef;
  // Keys in the order of EncryptionPolicy, so JSON of a policy is stable.
  return {
    backend: o.backend ?? base.backend,
    ikeProposals: [...(o.ikeProposals ?? base.ikeProposals)],
    espProposals: [...(o.espProposals ?? base.espProposals)],
    ...(ref ? { pskSecretRef: { name: ref.name, key: ref.key } } : {}),
    allowInsecure: o.allowInsecure ?? base.allowInsecure,
  };
}

/**
 * The effective encryption for the link between pools a and b:
 * defaults <- first pool's override <- second pool's override <- the pair's links[] override.
 * Symmetric in a and b: the two pool overrides are applied in name order. (The validator refuses a pair whose pool
 * overrides disagree on a field unless its links[] entry sets that field, so the order never decides a value.)
 * `pskSecretRef` is left out when the effective backend is `none`.
 */
export function linkPolicy(t: Topology, a: string, b: string): EncryptionPolicy {
  return linkPolicyWith(t, poolByName(t), a, b);
}

/** linkPolicy with the pools map computed once by the caller (for loops over many pairs). */
export function linkPolicyWith(t: Topology, pools: ReadonlyMap<string, Pool>, a: string, b: string): EncryptionPolicy {
  const [x, y] = sortedPair(a, b);
  let p = applyOverride(t.encryption, pools.get(x)?.encryption);
  if (y !== x) p = applyOverride(p, pools.get(y)?.encryption);
  p = applyOverride(p, linkOverride(t, x, y)?.encryption);
  if (p.backend === 'none') delete p.pskSecretRef;
  return p;
}

/**
 * The relay of a pool behind NAT as far as the topology alone says: its own `relay`, else the hub in hub mode.
 * Undefined for a pool not behind NAT, and for a pool behind NAT that names none in mesh mode: the sync controller
 * then picks one of relayCandidates() (and keeps it).
 */
export function relayOf(t: Topology, pool: string): string | undefined {
  const p = poolByName(t).get(pool);
  if (!p || !p.behindNAT) return undefined;
  return p.relay ?? (t.connectivity.mode === 'hub' ? t.connectivity.hub : undefined);
}

/** Pools that could relay for `pool`: not behind NAT, not the pool itself, and allowed to talk to it. Sorted. */
export function relayCandidates(t: Topology, pool: string): string[] {
  return t.pools
    .filter((r) => !r.behindNAT && r.name !== pool && pairVerdict(t, pool, r.name) === 'allow')
    .map((r) => r.name)
    .sort();
}

/** How traffic between two pools travels. */
export type PairRoute =
  /** One tunnel joins the two pools' gateways. */
  | { via: 'direct' }
  /**
   * Both pools are behind NAT (mesh mode): each has a tunnel to their common relay, which forwards. `automatic` when
   * neither pool names a relay: `relay` is then the first common candidate by name, and the sync controller may pick
   * another common one.
   */
  | { via: 'relay'; relay: string; automatic?: true }
  /** Hub mode, two spokes: each has a tunnel to the hub, which forwards. */
  | { via: 'hub'; hub: string }
  /**
   * No path. `denied`: a rule denies the pair. `no-relay`: both are behind NAT and no pool outside NAT exists (or, in
   * hub mode, there is no usable hub). `different-relays`: both name relays, and they differ. `hop-denied`: the rules
   * deny a hop of the only possible paths (pool-relay or spoke-hub).
   */
  | { via: 'none'; reason: 'same-pool' | 'unknown-pool' | 'denied' | 'no-relay' | 'different-relays' | 'hop-denied' };

/**
 * The route between pools a and b (symmetric), from the topology alone. Two pools behind NAT reach each other only
 * through a common relay, and both hops (a-relay, relay-b) must be allowed by the rules. In hub mode spokes talk
 * through the hub, and both spoke-hub hops must be allowed.
 */
export function pairRoute(t: Topology, a: string, b: string): PairRoute {
  return pairRouteWith(t, poolByName(t), a, b);
}

/** pairRoute with the pools map computed once by the caller (for loops over many pairs). */
export function pairRouteWith(t: Topology, pools: ReadonlyMap<string, Pool>, a: string, b: string): PairRoute {
  if (a === b) return { via: 'none', reason: 'same-pool' };
  const pa = pools.get(a);
  const pb = pools.get(b);
  if (!pa || !pb) return { via: 'none', reason: 'unknown-pool' };
  if (pairVerdict(t, a, b) === 'deny') return { via: 'none', reason: 'denied' };
  if (t.connectivity.mode === 'hub') {
    const hub = t.connectivity.hub;
    const hp = hub === undefined ? undefined : pools.get(hub);
    if (hub === undefined || !hp || hp.behindNAT) return { via: 'none', reason: 'no-relay' };
    if (a === hub || b === hub) return { via: 'direct' };
    if (pairVerdict(t, a, hub) === 'deny' || pairVerdict(t, b, hub) === 'deny') return { via: 'none', reason: 'hop-denied' };
    return { via: 'hub', hub };
  }
  if (!(pa.behindNAT && pb.behindNAT)) return { via: 'direct' };
  const usable = (r: string | undefined): boolean => r !== undefined && r !== a && r !== b && pools.get(r)?.behindNAT === false;
  const ra = pa.relay;
  const rb = pb.relay;
  if (ra !== undefined && rb !== undefined && ra !== rb) return { via: 'none', reason: 'different-relays' };
  const named = ra ?? rb;
  if (named !== undefined) {
    if (!usable(named)) return { via: 'none', reason: 'no-relay' };
    if (pairVerdict(t, a, named) === 'deny' || pairVerdict(t, b, named) === 'deny') return { via: 'none', reason: 'hop-denied' };
    return { via: 'relay', relay: named };
  }
  if (!t.pools.some((p) => !p.behindNAT)) return { via: 'none', reason: 'no-relay' };
  const fromB = new Set(relayCandidates(t, b));
  const common = relayCandidates(t, a).find((r) => fromB.has(r));
  if (common === undefined) return { via: 'none', reason: 'hop-denied' };
  return { via: 'relay', relay: common, automatic: true };
}

/**
 * Every pair of pools joined by a tunnel of their own, each pair sorted, list sorted. Mesh: every allowed pair except
 * two pools behind NAT. Hub: every allowed spoke-hub pair.
 */
export function tunnelPairs(t: Topology): [string, string][] {
  const names = t.pools.map((p) => p.name).sort();
  const out: [string, string][] = [];
  const pools = poolByName(t);
  for (let i = 0; i < names.length; i++) {
    for (let j = i + 1; j < names.length; j++) {
      const [a, b] = [names[i], names[j]];
      if (pairRouteWith(t, pools, a, b).via === 'direct') out.push([a, b]);
    }
  }
  return out;
}
