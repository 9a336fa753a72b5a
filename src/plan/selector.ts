// Kubernetes label selector semantics (metav1.LabelSelector), pure.
//
// Mirrors k8s.io/apimachinery LabelSelectorAsSelector + Selector.Matches. What a valid selector means (matchLabels as
// In, the operators, requirements ANDed) has its home in src/topology/selectors.ts; this file adds validity, matching
// and the index.
// - An empty selector ({}) matches every node. (A missing selector matches nothing, but a Pool always has one.)
// - An invalid selector (unknown operator, In/NotIn without values, Exists/DoesNotExist with values, a malformed key
//   or value) is an error in Kubernetes; here it matches nothing and `selectorError` says why.

import { constraintsMatch, requirementsOf, selectorMeaning } from '../topology/selectors.ts';
import type { LabelSelector, LabelSelectorRequirement } from '../topology/types.ts';

const NAME_RE = /^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;
const DNS1123_SUBDOMAIN_RE = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

/** A DNS-1123 subdomain (≤ 253): what the API server allows as the name of a Node, a Secret, a Topology. */
export function isDnsSubdomain(s: string): boolean {
  return s.length <= 253 && DNS1123_SUBDOMAIN_RE.test(s);
}

/** A label key: `[prefix/]name`, prefix a DNS subdomain (≤ 253), name ≤ 63 of [A-Za-z0-9._-], alphanumeric ends. */
export function labelKeyError(key: string): string | undefined {
  const slash = key.indexOf('/');
  const name = slash < 0 ? key : key.slice(slash + 1);
  if (slash >= 0) {
    const prefix = key.slice(0, slash);
    if (prefix.length === 0) return `label key "${key}": prefix part must not be empty`;
    if (prefix.length > 253 || !DNS1123_SUBDOMAIN_RE.test(prefix)) return `label key "${key}": prefix part must be a DNS subdomain`;
  }
  if (name.length === 0) return `label key "${key}": name part must not be empty`;
  if (name.length > 63) return `label key "${key}": name part must be at most 63 characters`;
  if (!NAME_RE.test(name)) return `label key "${key}": name part must consist of alphanumerics, '-', '_' or '.', and begin and end with an alphanumeric`;
  return undefined;
}

/** A label value: empty, or ≤ 63 of [A-Za-z0-9._-] with alphanumeric ends. */
export function labelValueError(value: string): string | undefined {
  if (value === '') return undefined;
  if (value.length > 63) return `label value "${value}": must be at most 63 characters`;
  if (!NAME_RE.test(value)) return `label value "${value}": must consist of alphanumerics, '-', '_' or '.', and begin and end with an alphanumeric`;
  return undefined;
}

function requirementError(r: LabelSelectorRequirement): string | undefined {
  const keyErr = labelKeyError(r.key);
  if (keyErr) return keyErr;
  const values = r.values ?? [];
  switch (r.operator) {
    case 'In':
    case 'NotIn':
      if (values.length === 0) return `"${r.key}" ${r.operator}: values must be non-empty`;
      for (const v of values) {
        const e = labelValueError(v);
        if (e) return e;
      }
      return undefined;
    case 'Exists':
    case 'DoesNotExist':
      if (values.length !== 0) return `"${r.key}" ${r.operator}: values must be empty`;
      return undefined;
    default:
      return `"${r.key}": unknown operator "${String((r as { operator: unknown }).operator)}"`;
  }
}

/** Why Kubernetes would refuse this selector, or undefined when it is valid. */
export function selectorError(sel: LabelSelector): string | undefined {
  for (const r of requirementsOf(sel)) {
    const e = requirementError(r);
    if (e) return e;
  }
  return undefined;
}

/** A key constraint of the selector's meaning (src/topology/selectors.ts), its values as a set for matching. */
interface Constraint {
  key: string;
  absent: boolean;
  finite: boolean;
  values: ReadonlySet<string>;
}

/** A validated, precompiled selector. */
export interface CompiledSelector {
  /** One per label key, sorted by key: the selector's canonical meaning. */
  readonly constraints: readonly Constraint[];
  /** Undefined when valid; an invalid selector matches nothing. */
  readonly error?: string;
  /** Requirements that contradict each other: the selector matches nothing, though Kubernetes accepts it. */
  readonly none?: true;
  /**
   * An equality requirement usable as an index key: every matching node carries `key` with one of `values`.
   * Undefined when the selector has no In/matchLabels requirement (it must then be checked against every node).
   */
  readonly anchor?: { key: string; values: readonly string[] };
}

export function compileSelector(sel: LabelSelector): CompiledSelector {
  const error = selectorError(sel);
  if (error) return { constraints: [], error };
  const meaning = selectorMeaning(sel);
  if (meaning.kind !== 'some') return { constraints: [], none: true };
  const constraints = meaning.constraints.map((c) => ({ key: c.key, absent: c.absent, finite: c.finite, values: new Set(c.values) }));
  // Pick the narrowest In requirement as the index anchor.
  let anchor: { key: string; values: readonly string[] } | undefined;
  for (const c of meaning.constraints) {
    if (c.finite && !c.absent && (anchor === undefined || c.values.length < anchor.values.length)) anchor = { key: c.key, values: c.values };
  }
  return anchor ? { constraints, anchor } : { constraints };
}

export function matchesCompiled(sel: CompiledSelector, labels: Readonly<Record<string, string>>): boolean {
  return sel.error === undefined && sel.none === undefined && constraintsMatch(sel.constraints, labels);
}

/** Whether a node with these labels is selected, exactly as Kubernetes decides (invalid selectors select nothing). */
export function matchesSelector(sel: LabelSelector, labels: Readonly<Record<string, string>>): boolean {
  return matchesCompiled(compileSelector(sel), labels);
}

/**
 * Many selectors against many label sets in about linear time: selectors with an In/matchLabels requirement are
 * indexed by that (key, value); the others are checked against every label set.
 */
export class SelectorIndex {
  readonly #compiled: CompiledSelector[];
  readonly #byKey = new Map<string, Map<string, number[]>>();
  readonly #scan: number[] = [];

  constructor(selectors: readonly LabelSelector[]) {
    this.#compiled = selectors.map(compileSelector);
    this.#compiled.forEach((c, i) => {
      if (c.error !== undefined || c.none) return;
      if (!c.anchor) {
        this.#scan.push(i);
        return;
      }
      let byValue = this.#byKey.get(c.anchor.key);
      if (!byValue) this.#byKey.set(c.anchor.key, (byValue = new Map()));
      for (const v of c.anchor.values) {
        const list = byValue.get(v);
        if (list) list.push(i);
        else byValue.set(v, [i]);
      }
    });
  }

  /** The validation error of selector i, if any. */
  error(i: number): string | undefined {
    return this.#compiled[i].error;
  }

  /** Indices of all selectors that match, ascending. */
  matching(labels: Readonly<Record<string, string>>): number[] {
    return this.matchingInto(labels, []);
  }

  /** As matching(), into `out` (cleared first); saves an allocation per label set in hot loops. */
  matchingInto(labels: Readonly<Record<string, string>>, out: number[]): number[] {
    out.length = 0;
    for (const i of this.#scan) if (matchesCompiled(this.#compiled[i], labels)) out.push(i);
    const probe = (key: string): void => {
      const byValue = this.#byKey.get(key);
      if (!byValue || !Object.hasOwn(labels, key)) return;
      for (const i of byValue.get(labels[key]) ?? []) if (matchesCompiled(this.#compiled[i], labels)) out.push(i);
    };
    // Walk the smaller side: usually few index keys (often one), sometimes few labels.
    if (this.#byKey.size <= 8) for (const k of this.#byKey.keys()) probe(k);
    else for (const k in labels) probe(k);
    // A selector is indexed under exactly one key, so there are no duplicates; only the order needs fixing.
    return out.length > 1 ? out.sort((a, b) => a - b) : out;
  }
}
