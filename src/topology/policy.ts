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
  if (!o) return base;
  const out: EncryptionPolicy = {
    backend: o.backend ?? base.backend,
    ikeProposals: [...(o.ikeProposals ?? base.ikeProposals)],
    espProposals: [...(o.espProposals ?? base.espProposals)],
    allowInsecure: o.allowInsecure ?? base.allowInsecure,
  };
  const ref = o.pskSecretRef ?? base.pskSecretRef;
  if (ref) out.pskSecretRef = { name: ref.name, key: ref.key };
  return out;
}

/**
 * The effective encryption for the link between pools a and b:
 * defaults <- first pool's override <- second pool's override <- the pair's links[] override.
 * Symmetric in a and b: the two pool overrides are applied in name order. (The validator refuses a pair whose pool
 * overrides disagree on a field unless its links[] entry sets that field, so the order never decides a value.)
 * `pskSecretRef` is left out when the effective backend is `none`.
 */
export function linkPolicy(t: Topology, a: string, b: string): EncryptionPolicy {
  const pools = poolByName(t);
  const [x, y] = sortedPair(a, b);
  let p = applyOverride(t.encryption, pools.get(x)?.encryption);
  if (y !== x) p = applyOverride(p, pools.get(y)?.encryption);
  p = applyOverride(p, linkOverride(t, x, y)?.encryption);
  if (p.backend === 'none') delete p.pskSecretRef;
  return p;
}
