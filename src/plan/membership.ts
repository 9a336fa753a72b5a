// Which pool a node belongs to: the first pool whose nodeSelector selects it, pools taken in the order given (by
// name, as the planner orders them). Pure; the planner and `corvid import` both ask it.

import type { SelectorIndex } from './selector.ts';

export interface Membership<N> {
  /** Per pool (the index's order), its nodes in the order given. */
  members: N[][];
  /** Node name -> the index of its pool. */
  poolOf: Map<string, number>;
  /** Nodes that more than one pool selects, with every pool that does (the first is theirs). */
  shared: Array<{ node: N; pools: number[] }>;
}

export function poolMembership<N extends { name: string; labels: Readonly<Record<string, string>> }>(index: SelectorIndex, poolCount: number, nodes: Iterable<N>): Membership<N> {
  const members: N[][] = Array.from({ length: poolCount }, () => []);
  const poolOf = new Map<string, number>();
  const shared: Array<{ node: N; pools: number[] }> = [];
  const hits: number[] = [];
  for (const n of nodes) {
    index.matchingInto(n.labels, hits);
    if (hits.length === 0) continue;
    members[hits[0]].push(n);
    poolOf.set(n.name, hits[0]);
    if (hits.length > 1) shared.push({ node: n, pools: [...hits] });
  }
  return { members, poolOf, shared };
}
