// What a label selector means, decided from the selector alone: the one home of that rule. The planner matches nodes
// with it (src/plan/selector.ts) and the validator compares pools' selectors with it (semantic.ts), so "these two
// selectors select the same nodes" means the same thing in both places.
//
// Kubernetes semantics (LabelSelectorAsSelector): matchLabels {k: v} is the requirement `k In (v)`; every requirement
// must hold. For one label key a requirement allows some states of the key, a state being "absent" or a value:
//   In S          the values of S               NotIn S        absent, or any value but those of S
//   Exists        any value                     DoesNotExist   absent
// Several requirements on one key allow the intersection of their states, which is again of this form: whether
// absent is allowed, and either a finite set of values or all values but a finite set. That form, per key, sorted by
// key, is the canonical form of a selector: two selectors select the same label sets exactly when their canonical
// forms are equal (unless both select none), and one selects only label sets the other selects too exactly when each
// of the other's key constraints allows every state its own constraint on that key allows.

import type { LabelSelector, LabelSelectorRequirement } from './types.ts';

/** The states of one label key a selector allows. */
export interface KeyConstraint {
  readonly key: string;
  /** A node without the label is allowed. */
  readonly absent: boolean;
  /** true: exactly `values` are allowed; false: every value but `values` is. */
  readonly finite: boolean;
  /** Sorted, without duplicates. */
  readonly values: readonly string[];
}

export type SelectorMeaning =
  /** A requirement Kubernetes refuses (In/NotIn without values, Exists/DoesNotExist with values, unknown operator). */
  | { readonly kind: 'invalid' }
  /** No node can match: `matchExpressions[expression]` contradicts the requirements before it on the same key. */
  | { readonly kind: 'none'; readonly expression: number }
  /** Sorted by key; empty for the empty selector (every node). `key` is the canonical text, equal for equal meanings. */
  | { readonly kind: 'some'; readonly constraints: readonly KeyConstraint[]; readonly key: string };

/** matchLabels and matchExpressions as one list of requirements: `k: v` is `k In [v]`. */
export function requirementsOf(sel: LabelSelector): LabelSelectorRequirement[] {
  const out: LabelSelectorRequirement[] = Object.entries(sel.matchLabels ?? {}).map(([key, v]) => ({ key, operator: 'In', values: [v] }));
  for (const r of sel.matchExpressions ?? []) out.push(r);
  return out;
}

function sortedSet(values: Iterable<string>): string[] {
  return [...new Set(values)].sort();
}

function constraintOf(r: LabelSelectorRequirement): KeyConstraint | undefined {
  const values = r.values ?? [];
  switch (r.operator) {
    case 'In':
    case 'NotIn':
      if (values.length === 0) return undefined;
      return { key: r.key, absent: r.operator === 'NotIn', finite: r.operator === 'In', values: sortedSet(values) };
    case 'Exists':
    case 'DoesNotExist':
      if (values.length !== 0) return undefined;
      return { key: r.key, absent: r.operator === 'DoesNotExist', finite: r.operator === 'DoesNotExist', values: [] };
    default:
      return undefined;
  }
}

/** The states both constraints allow. */
function intersect(a: KeyConstraint, b: KeyConstraint): KeyConstraint {
  const absent = a.absent && b.absent;
  if (!a.finite && !b.finite) return { key: a.key, absent, finite: false, values: sortedSet([...a.values, ...b.values]) };
  const [fin, other] = a.finite ? [a, b] : [b, a];
  const has = new Set(other.values);
  // finite ∩ finite keeps the common values; finite ∩ "all but S" drops S.
  return { key: a.key, absent, finite: true, values: fin.values.filter((v) => has.has(v) === other.finite) };
}

function satisfiable(c: KeyConstraint): boolean {
  return c.absent || !c.finite || c.values.length > 0;
}

export function selectorMeaning(sel: LabelSelector): SelectorMeaning {
  const byKey = new Map<string, KeyConstraint>();
  const labelCount = Object.keys(sel.matchLabels ?? {}).length;
  const reqs = requirementsOf(sel);
  for (let i = 0; i < reqs.length; i++) {
    const c = constraintOf(reqs[i]);
    if (c === undefined) return { kind: 'invalid' };
    const before = byKey.get(c.key);
    const now = before === undefined ? c : intersect(before, c);
    // matchLabels has one value per key, so a contradiction is always at an expression.
    if (!satisfiable(now)) return { kind: 'none', expression: i - labelCount };
    byKey.set(c.key, now);
  }
  const constraints = [...byKey.values()].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  const key = JSON.stringify(constraints.map((c) => [c.key, c.absent, c.finite, c.values]));
  return { kind: 'some', constraints, key };
}

/** Whether a node with these labels meets the constraints (all of them). */
export function constraintsMatch(constraints: readonly { key: string; absent: boolean; finite: boolean; values: ReadonlySet<string> }[], labels: Readonly<Record<string, string>>): boolean {
  for (const c of constraints) {
    if (!Object.hasOwn(labels, c.key)) {
      if (!c.absent) return false;
    } else if (c.values.has(labels[c.key]) !== c.finite) return false;
  }
  return true;
}

/** Every state `inner` allows, `outer` allows too. */
function within(inner: KeyConstraint, outer: KeyConstraint): boolean {
  if (inner.absent && !outer.absent) return false;
  if (!inner.finite) {
    if (outer.finite) return false;
    const has = new Set(inner.values);
    return outer.values.every((v) => has.has(v));
  }
  const has = new Set(outer.values);
  return inner.values.every((v) => has.has(v) === outer.finite);
}

/** Every label set `inner` selects, `outer` selects too (both satisfiable; sorted constraints). */
export function selectsWithin(inner: readonly KeyConstraint[], outer: readonly KeyConstraint[]): boolean {
  let i = 0;
  for (const o of outer) {
    while (i < inner.length && inner[i].key < o.key) i++;
    // A key `inner` does not constrain allows every state, more than any constraint `outer` has on it.
    if (i === inner.length || inner[i].key !== o.key || !within(inner[i], o)) return false;
  }
  return true;
}

export interface SelectorOverlap {
  /** The selector reported. */
  index: number;
  /** same: it selects exactly what `other` (the first such) selects; within: only nodes `other` selects too. */
  kind: 'same' | 'within';
  /** The lowest index of such a selector. */
  other: number;
}

/**
 * Selectors (satisfiable and not empty; undefined entries are skipped) that provably select the same nodes as another
 * one, or only nodes another one selects too, so that a node matches two of them whatever nodes the cluster has.
 * Each selector is reported at most once, in index order; a 'same' is reported at the later selector.
 *
 * About linear: equal meanings through a Map; for 'within', each selector is indexed under its rarest In constraint
 * (under every value of it) or, lacking one, under one key, and probes only the buckets that can hold a selector it
 * is within. Selectors without any In constraint that share a key are compared pairwise.
 */
export function overlappingSelectors(meanings: readonly (SelectorMeaning | undefined)[]): SelectorOverlap[] {
  const some = new Map<number, readonly KeyConstraint[]>();
  const firstOf = new Map<string, number>();
  const same = new Map<number, number>();
  meanings.forEach((m, i) => {
    if (m?.kind !== 'some' || m.constraints.length === 0) return;
    const first = firstOf.get(m.key);
    if (first !== undefined) same.set(i, first);
    else {
      firstOf.set(m.key, i);
      some.set(i, m.constraints);
    }
  });

  // How many selectors allow each (key, value) through an In constraint: the anchor is the rarest such constraint.
  const isIn = (c: KeyConstraint): boolean => c.finite && !c.absent;
  const valueKey = (key: string, v: string): string => `v\u0000${key}\u0000${v}`;
  const freq = new Map<string, number>();
  for (const cs of some.values()) for (const c of cs) if (isIn(c)) for (const v of c.values) freq.set(valueKey(c.key, v), (freq.get(valueKey(c.key, v)) ?? 0) + 1);
  const buckets = new Map<string, number[]>();
  const put = (bucket: string, i: number): void => {
    const list = buckets.get(bucket);
    if (list) list.push(i);
    else buckets.set(bucket, [i]);
  };
  for (const [i, cs] of some) {
    let anchor: KeyConstraint | undefined;
    let best = Infinity;
    for (const c of cs) {
      if (!isIn(c)) continue;
      const cost = c.values.reduce((n, v) => n + freq.get(valueKey(c.key, v))!, 0);
      if (cost < best) [anchor, best] = [c, cost];
    }
    if (anchor) for (const v of anchor.values) put(valueKey(anchor.key, v), i);
    else put(`k\u0000${cs[0].key}`, i);
  }

  const out: SelectorOverlap[] = [];
  meanings.forEach((_, i) => {
    const twin = same.get(i);
    if (twin !== undefined) {
      out.push({ index: i, kind: 'same', other: twin });
      return;
    }
    const inner = some.get(i);
    if (inner === undefined) return;
    let other = Infinity;
    const consider = (bucket: string): void => {
      for (const j of buckets.get(bucket) ?? []) if (j !== i && j < other && selectsWithin(inner, some.get(j)!)) other = j;
    };
    for (const c of inner) {
      // An outer In constraint on this key must allow every value this one allows, so the first is enough to probe.
      if (isIn(c)) consider(valueKey(c.key, c.values[0]));
      consider(`k\u0000${c.key}`);
    }
    if (other !== Infinity) out.push({ index: i, kind: 'within', other });
  });
  return out;
}
