// Per-pool encryption annotations. Each pool publishes only its own part: its default (global defaults <- its own
// override, for humans and upstream tooling), its raw override, and the raw links[] overrides of its pairs; the
// global defaults go on every Gateway. The agents merge two Gateways' parts with linkPolicy's rule (encryptionFor in
// src/gateway/annotations.ts), so a change of one pool's override changes only that pool's Gateway, and a links[]
// change only the two Gateways of its pair. Linear in pools + links[]; a Gateway grows only with its own links[].

import { mergeLinkPolicy, sortedPair } from '../topology/policy.ts';
import type { EncryptionOverride, EncryptionPolicy, Topology } from '../topology/types.ts';
import { canonicalJson } from '../gateway/canonical.ts';

export interface PoolEncryption {
  /** corvid.dev/encryption: global defaults <- the pool's own override. */
  default: EncryptionPolicy;
  /** The pool's own raw override (undefined when the pool sets none). */
  pool?: EncryptionOverride;
  /** Peer pool -> the raw links[] override of the pair, for the peers the pool may talk to. */
  links: Record<string, EncryptionOverride>;
}

export function encryptionTable(t: Topology, allowed: (a: string, b: string) => boolean): Map<string, PoolEncryption> {
  const names = new Set(t.pools.map((p) => p.name));

  // links[] entries by pool; the first entry of a pair wins, as in linkOverride (the validator refuses a second one).
  const linksOf = new Map<string, Record<string, EncryptionOverride>>();
  const seen = new Set<string>();
  for (const l of t.links) {
    const [a, b] = sortedPair(l.pools[0], l.pools[1]);
    const key = `${a}\u0000${b}`;
    if (seen.has(key)) continue;
    seen.add(key);
    if (a === b || !names.has(a) || !names.has(b) || !allowed(a, b)) continue;
    for (const [x, y] of [[a, b], [b, a]] as const) {
      let m = linksOf.get(x);
      if (!m) linksOf.set(x, (m = {}));
      m[y] = l.encryption;
    }
  }

  // Pools with an identical override share one default object, so that it is encoded once (see encodeEncryption).
  const defaults = new Map<string, EncryptionPolicy>();
  const out = new Map<string, PoolEncryption>();
  for (const p of t.pools) {
    const key = canonicalJson(p.encryption ?? {});
    let def = defaults.get(key);
    if (!def) defaults.set(key, (def = mergeLinkPolicy(t.encryption, p, p, undefined)));
    const e: PoolEncryption = { default: def, links: linksOf.get(p.name) ?? {} };
    if (p.encryption !== undefined && Object.keys(p.encryption).length > 0) e.pool = p.encryption;
    out.set(p.name, e);
  }
  return out;
}
