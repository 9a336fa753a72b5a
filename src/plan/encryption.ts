// Per-pool encryption annotations: the pool's default (global defaults <- its own override) and the links that
// differ from it. Linear in pools × distinct pool overrides (+ links[]): pools whose overrides are identical form one
// group whose link policy with p is computed once per side (the merge order is by name). Output is only as large as
// the links that really differ. Policies come from the topology's linkPolicy, evaluated on a two-pool topology.

import { linkPolicy } from '../topology/policy.ts';
import type { EncryptionPolicy, LinkOverride, Pool, Topology } from '../topology/types.ts';
import { canonicalJson } from '../gateway/render.ts';

export interface PoolEncryption {
  default: EncryptionPolicy;
  /** Peer pool -> policy, only where it differs from `default` and the pair may talk. */
  overrides: Record<string, EncryptionPolicy>;
}

function hasOverride(p: Pool): boolean {
  return p.encryption !== undefined && Object.keys(p.encryption).length > 0;
}

export function encryptionTable(t: Topology, allowed: (a: string, b: string) => boolean): Map<string, PoolEncryption> {
  const mini = (pools: Pool[], links: LinkOverride[]): Topology => ({ ...t, pools, links });
  const byName = new Map(t.pools.map((p) => [p.name, p]));

  // Groups of pools with an identical override, members sorted by name.
  const groups = new Map<string, Pool[]>();
  for (const p of t.pools) {
    if (!hasOverride(p)) continue;
    const key = canonicalJson(p.encryption);
    const g = groups.get(key);
    if (g) g.push(p);
    else groups.set(key, [p]);
  }
  for (const g of groups.values()) g.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));

  const linksOf = new Map<string, Map<string, LinkOverride>>();
  for (const l of t.links) {
    const [a, b] = l.pools;
    if (a === b || !byName.has(a) || !byName.has(b)) continue;
    for (const [x, y] of [[a, b], [b, a]] as const) {
      let m = linksOf.get(x);
      if (!m) linksOf.set(x, (m = new Map()));
      m.set(y, l);
    }
  }

  // Equal policies are one shared object, so that encoding them is done once (see encodeEncryption).
  const interned = new Map<string, EncryptionPolicy>();
  const intern = (pol: EncryptionPolicy): [EncryptionPolicy, string] => {
    const json = canonicalJson(pol);
    let shared = interned.get(json);
    if (!shared) interned.set(json, (shared = pol));
    return [shared, json];
  };

  const out = new Map<string, PoolEncryption>();
  for (const p of t.pools) {
    const [def, defJson] = intern(linkPolicy(mini([p], []), p.name, p.name));
    const overrides: Record<string, EncryptionPolicy> = {};
    const myLinks = linksOf.get(p.name);
    for (const members of groups.values()) {
      // Split at p: members before p merge first, members after p merge last.
      let lo = 0;
      let hi = members.length;
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        if (members[mid].name < p.name) lo = mid + 1;
        else hi = mid;
      }
      const sides = [members.slice(0, lo), members.slice(lo).filter((q) => q.name !== p.name)];
      for (const side of sides) {
        if (side.length === 0) continue;
        const [pol, json] = intern(linkPolicy(mini([p, side[0]], []), p.name, side[0].name));
        if (json === defJson) continue;
        for (const q of side) if (!myLinks?.has(q.name) && allowed(p.name, q.name)) overrides[q.name] = pol;
      }
    }
    for (const [qName, link] of myLinks ?? []) {
      const q = byName.get(qName)!;
      const [pol, json] = intern(linkPolicy(mini([p, q], [link]), p.name, qName));
      if (json !== defJson && allowed(p.name, qName)) overrides[qName] = pol;
    }
    out.set(p.name, { default: def, overrides });
  }
  return out;
}
