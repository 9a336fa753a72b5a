// Which pools each pool may talk to, in time linear in pools × wildcard rules (never all pool pairs).
//
// For pool p only the rules that can match a pair containing p matter: those with a `*` side and those naming p.
// Among them, pools named on the other side are "named"; every other pool gets the same verdict, the default for p.
// The verdicts themselves come from the topology's pairVerdict, evaluated on the reduced rule list (same first-match
// result, since a rule outside it cannot match a pair containing p).

import { pairVerdict } from '../topology/policy.ts';
import type { PairRule, Topology } from '../topology/types.ts';

export interface PeerInfo {
  /** The verdict for every pool that is not an exception. */
  defaultAllow: boolean;
  /** Pools whose verdict differs from the default (never p itself). */
  exceptions: Set<string>;
}

/** A name no pool can have (pool names are DNS labels) and no rule pattern matches except `*`. */
const UNNAMED_POOL = '\u0000any-other-pool';

export function peerTable(t: Topology): Map<string, PeerInfo> {
  const rules = t.connectivity.rules;
  const wildcard: number[] = [];
  const byName = new Map<string, number[]>();
  rules.forEach((r, i) => {
    if (r.pools[0] === '*' || r.pools[1] === '*') wildcard.push(i);
    for (const side of new Set(r.pools)) {
      if (side === '*') continue;
      const list = byName.get(side);
      if (list) list.push(i);
      else byName.set(side, [i]);
    }
  });
  const exists = new Set(t.pools.map((p) => p.name));
  const out = new Map<string, PeerInfo>();
  for (const p of t.pools) {
    const idx = [...new Set([...wildcard, ...(byName.get(p.name) ?? [])])].sort((a, b) => a - b);
    const relevant: PairRule[] = idx.map((i) => rules[i]);
    const reduced: Topology = { ...t, connectivity: { ...t.connectivity, rules: relevant } };
    const defaultAllow = pairVerdict(reduced, p.name, UNNAMED_POOL) === 'allow';
    const exceptions = new Set<string>();
    const named = new Set<string>();
    for (const r of relevant) for (const side of r.pools) if (side !== '*' && side !== p.name && exists.has(side)) named.add(side);
    for (const q of named) if ((pairVerdict(reduced, p.name, q) === 'allow') !== defaultAllow) exceptions.add(q);
    out.set(p.name, { defaultAllow, exceptions });
  }
  return out;
}

/** Whether a and b may talk, from a peer table. */
export function peersAllowed(table: ReadonlyMap<string, PeerInfo>, a: string, b: string): boolean {
  if (a === b) return false;
  const info = table.get(a);
  if (!info) return false;
  return info.exceptions.has(b) ? !info.defaultAllow : info.defaultAllow;
}

/** The peers / denied-peers annotation values for one pool: `["*"]` + denied when the default is allow. */
export function peerAnnotationLists(info: PeerInfo): { peers: string[]; deniedPeers: string[] } {
  const names = [...info.exceptions].sort();
  return info.defaultAllow ? { peers: ['*'], deniedPeers: names } : { peers: names, deniedPeers: [] };
}
