// The meaning of a label selector (src/topology/selectors.ts): canonical form, "within", and the validator's errors
// for pools whose selectors provably overlap. The property tests compare against Kubernetes' matching rule written out
// here from its documentation, and search every label set of a small alphabet for a witness.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { overlappingSelectors, selectorMeaning, selectsWithin, type SelectorMeaning } from '../../src/topology/selectors.ts';
import { matchesSelector, SelectorIndex } from '../../src/plan/selector.ts';
import type { LabelSelector, LabelSelectorRequirement } from '../../src/topology/types.ts';
import { loadTopology } from '../../src/topology/index.ts';
import { doc, expectErrors, expectValid } from './topology-helpers.ts';

const In = (key: string, ...values: string[]): LabelSelectorRequirement => ({ key, operator: 'In', values });
const NotIn = (key: string, ...values: string[]): LabelSelectorRequirement => ({ key, operator: 'NotIn', values });
const Exists = (key: string): LabelSelectorRequirement => ({ key, operator: 'Exists' });
const Absent = (key: string): LabelSelectorRequirement => ({ key, operator: 'DoesNotExist' });

function key(sel: LabelSelector): string {
  const m = selectorMeaning(sel);
  assert.equal(m.kind, 'some', JSON.stringify(sel));
  return (m as SelectorMeaning & { kind: 'some' }).key;
}

describe('selector meaning: canonical form', () => {
  it('gives equal forms to differently written selectors of the same nodes', () => {
    const same: [LabelSelector, LabelSelector][] = [
      [{ matchLabels: { zone: 'a' } }, { matchExpressions: [In('zone', 'a')] }],
      [{ matchExpressions: [In('zone', 'a')] }, { matchExpressions: [In('zone', 'a', 'a')] }],
      [{ matchLabels: { zone: 'a', x: 'y' } }, { matchExpressions: [In('x', 'y'), In('zone', 'a')] }],
      [{ matchExpressions: [In('zone', 'b', 'a'), Exists('t')] }, { matchExpressions: [Exists('t'), In('zone', 'a', 'b'), Exists('t')] }],
      // Requirements on one key intersect.
      [{ matchExpressions: [In('zone', 'a', 'b'), In('zone', 'b', 'c')] }, { matchLabels: { zone: 'b' } }],
      [{ matchExpressions: [In('zone', 'a', 'b'), NotIn('zone', 'a')] }, { matchLabels: { zone: 'b' } }],
      [{ matchExpressions: [Exists('zone'), In('zone', 'a')] }, { matchLabels: { zone: 'a' } }],
      [{ matchExpressions: [NotIn('zone', 'a'), NotIn('zone', 'b')] }, { matchExpressions: [NotIn('zone', 'b', 'a')] }],
      [{ matchExpressions: [NotIn('zone', 'a'), Absent('zone')] }, { matchExpressions: [Absent('zone')] }],
    ];
    for (const [a, b] of same) assert.equal(key(a), key(b), `${JSON.stringify(a)} vs ${JSON.stringify(b)}`);
  });

  it('keeps different selectors apart', () => {
    const different: [LabelSelector, LabelSelector][] = [
      [{ matchLabels: { zone: 'a' } }, { matchLabels: { zone: 'b' } }],
      [{ matchExpressions: [In('zone', 'a')] }, { matchExpressions: [In('zone', 'a', 'b')] }],
      [{ matchExpressions: [NotIn('zone', 'a')] }, { matchExpressions: [Exists('zone'), NotIn('zone', 'a')] }],
      [{ matchExpressions: [Exists('zone')] }, { matchExpressions: [Absent('zone')] }],
    ];
    for (const [a, b] of different) assert.notEqual(key(a), key(b), `${JSON.stringify(a)} vs ${JSON.stringify(b)}`);
  });

  it('finds requirements that contradict each other, at the expression that does', () => {
    assert.deepEqual(selectorMeaning({ matchLabels: { zone: 'a' }, matchExpressions: [Exists('t'), In('zone', 'b')] }), { kind: 'none', expression: 1 });
    assert.deepEqual(selectorMeaning({ matchExpressions: [In('zone', 'a'), Absent('zone')] }), { kind: 'none', expression: 1 });
    assert.deepEqual(selectorMeaning({ matchExpressions: [Exists('zone'), Absent('zone')] }), { kind: 'none', expression: 1 });
    assert.deepEqual(selectorMeaning({ matchExpressions: [In('zone', 'a'), NotIn('zone', 'a')] }), { kind: 'none', expression: 1 });
    assert.deepEqual(selectorMeaning({ matchExpressions: [In('zone')] }), { kind: 'invalid' });
    assert.deepEqual(selectorMeaning({ matchExpressions: [{ key: 'zone', operator: 'Exists', values: ['a'] }] }), { kind: 'invalid' });
  });

  it('reports the later of two equal selectors and the stricter of two nested ones, naming the lowest other', () => {
    const m = (sel: LabelSelector): SelectorMeaning => selectorMeaning(sel);
    const got = overlappingSelectors([
      m({ matchLabels: { tier: 'edge' } }), // 0
      m({ matchLabels: { zone: 'a' } }), // 1
      m({ matchExpressions: [In('zone', 'a')] }), // 2: same as 1
      m({ matchLabels: { tier: 'edge', zone: 'b' } }), // 3: within 0
      m({ matchExpressions: [In('tier', 'core', 'edge')] }), // 4: 0 is within it
      undefined,
      m({}), // empty: reported elsewhere
      m({ matchLabels: { zone: 'c' }, matchExpressions: [Absent('zone')] }), // none: reported elsewhere
      m({ matchExpressions: [NotIn('zone', 'a')] }), // 8
      m({ matchExpressions: [In('zone', 'b')] }), // 9: within 8
      m({ matchExpressions: [Exists('gpu'), NotIn('zone', 'a', 'b')] }), // 10: within 8
    ]);
    assert.deepEqual(got, [
      { index: 0, kind: 'within', other: 4 },
      { index: 2, kind: 'same', other: 1 },
      { index: 3, kind: 'within', other: 0 },
      { index: 9, kind: 'within', other: 8 },
      { index: 10, kind: 'within', other: 8 },
    ]);
  });
});

// Kubernetes' rule, written out independently of the code under test.
function k8sMatches(sel: LabelSelector, labels: Record<string, string>): boolean {
  for (const [k, v] of Object.entries(sel.matchLabels ?? {})) if (labels[k] !== v) return false;
  for (const r of sel.matchExpressions ?? []) {
    const has = Object.hasOwn(labels, r.key);
    const inValues = has && (r.values ?? []).includes(labels[r.key]);
    if (r.operator === 'In' && !inValues) return false;
    if (r.operator === 'NotIn' && inValues) return false;
    if (r.operator === 'Exists' && !has) return false;
    if (r.operator === 'DoesNotExist' && has) return false;
  }
  return true;
}

const KEYS = ['a', 'b', 'c'];
const VALUES = ['x', 'y', 'z'];
/** Every label set over KEYS with each key absent, one of VALUES, or a value no selector names. */
const ALL_LABELS: Record<string, string>[] = (() => {
  let out: Record<string, string>[] = [{}];
  for (const k of KEYS) out = out.flatMap((l) => [l, ...[...VALUES, 'other'].map((v) => ({ ...l, [k]: v }))]);
  return out;
})();

const requirement = fc.oneof(
  fc.record({ key: fc.constantFrom(...KEYS), operator: fc.constantFrom('In' as const, 'NotIn' as const), values: fc.array(fc.constantFrom(...VALUES), { minLength: 1, maxLength: 3 }) }),
  fc.record({ key: fc.constantFrom(...KEYS), operator: fc.constantFrom('Exists' as const, 'DoesNotExist' as const) }),
);
const selector: fc.Arbitrary<LabelSelector> = fc.record({
  matchLabels: fc.dictionary(fc.constantFrom(...KEYS), fc.constantFrom(...VALUES), { maxKeys: 2 }),
  matchExpressions: fc.array(requirement, { maxLength: 4 }),
});

describe('selector meaning: properties against Kubernetes matching', () => {
  it('the planner matches exactly as Kubernetes does', () => {
    fc.assert(
      fc.property(selector, (sel) => ALL_LABELS.every((l) => matchesSelector(sel, l) === k8sMatches(sel, l))),
      { numRuns: 400 },
    );
  });

  it('a contradiction matches no label set', () => {
    fc.assert(fc.property(selector, (sel) => selectorMeaning(sel).kind !== 'none' || ALL_LABELS.every((l) => !k8sMatches(sel, l))), { numRuns: 400 });
  });

  it('equal canonical forms select the same label sets, and different ones do not', () => {
    fc.assert(
      fc.property(selector, selector, (s, t) => {
        const [a, b] = [selectorMeaning(s), selectorMeaning(t)];
        if (a.kind !== 'some' || b.kind !== 'some') return true;
        const sameSets = ALL_LABELS.every((l) => k8sMatches(s, l) === k8sMatches(t, l));
        return (a.key === b.key) === sameSets;
      }),
      { numRuns: 1000 },
    );
  });

  it('within holds exactly when every label set the inner selects, the outer selects too', () => {
    fc.assert(
      fc.property(selector, selector, (s, t) => {
        const [a, b] = [selectorMeaning(s), selectorMeaning(t)];
        if (a.kind !== 'some' || b.kind !== 'some') return true;
        const implied = ALL_LABELS.every((l) => !k8sMatches(s, l) || k8sMatches(t, l));
        return selectsWithin(a.constraints, b.constraints) === implied;
      }),
      { numRuns: 1000 },
    );
  });

  it('overlappingSelectors finds the same pairs as comparing every pair', () => {
    fc.assert(
      fc.property(fc.array(selector, { maxLength: 12 }), (sels) => {
        const ms = sels.map(selectorMeaning);
        const usable = (i: number): boolean => ms[i].kind === 'some' && (ms[i] as { constraints: readonly unknown[] }).constraints.length > 0;
        const got = overlappingSelectors(ms);
        const want: { index: number; kind: string; other: number }[] = [];
        for (let i = 0; i < ms.length; i++) {
          if (!usable(i)) continue;
          const mi = ms[i] as SelectorMeaning & { kind: 'some' };
          const twin = ms.findIndex((m, j) => j < i && usable(j) && (m as typeof mi).key === mi.key);
          if (twin >= 0) {
            want.push({ index: i, kind: 'same', other: twin });
            continue;
          }
          const outer = ms.findIndex((m, j) => j !== i && usable(j) && (m as typeof mi).key !== mi.key && selectsWithin(mi.constraints, (m as typeof mi).constraints));
          if (outer >= 0) want.push({ index: i, kind: 'within', other: outer });
        }
        assert.deepEqual(got, want);
      }),
      { numRuns: 500 },
    );
  });

  it('the selector index agrees with matching one by one, contradictions included', () => {
    fc.assert(
      fc.property(fc.array(selector, { maxLength: 8 }), (sels) => {
        const index = new SelectorIndex(sels);
        const want = (l: Record<string, string>): number[] => sels.flatMap((s, i) => (k8sMatches(s, l) ? [i] : []));
        return ALL_LABELS.every((l) => JSON.stringify(index.matching(l)) === JSON.stringify(want(l)));
      }),
      { numRuns: 200 },
    );
  });
});

const gw = (name: string): string => `  gateways: [{node: ${name}-gw}]`;
const poolWith = (name: string, selector: string): string => `- name: ${name}\n  nodeSelector: ${selector}\n${gw(name)}`;

describe('topology meaning: pools whose selectors overlap whatever the nodes', () => {
  it('refuses selectors written differently that select the same nodes', () => {
    const cases: [string, string][] = [
      ['{matchLabels: {zone: a}}', '{matchExpressions: [{key: zone, operator: In, values: [a]}]}'],
      ['{matchExpressions: [{key: zone, operator: In, values: [a]}]}', '{matchExpressions: [{key: zone, operator: In, values: [a, a]}]}'],
      ['{matchLabels: {zone: a, x: y}}', '{matchExpressions: [{key: x, operator: In, values: [y]}, {key: zone, operator: In, values: [a]}]}'],
      ['{matchExpressions: [{key: t, operator: Exists}, {key: z, operator: NotIn, values: [b, a]}]}', '{matchExpressions: [{key: z, operator: NotIn, values: [a, b]}, {key: t, operator: Exists}]}'],
    ];
    for (const [a, b] of cases) {
      const t = doc({ pools: [poolWith('one', a), poolWith('two', b)] });
      expectErrors(t, [
        [['^nodeSelector: ', 1], 'spec.pools[1].nodeSelector', 'selects the same nodes as spec.pools[0]; every node belongs to one pool, so give each pool its own selector'],
      ]);
    }
  });

  it('refuses a selector whose nodes another pool always selects too', () => {
    const t = doc({
      pools: [poolWith('edge', '{matchLabels: {tier: edge}}'), poolWith('edge-east', '{matchLabels: {tier: edge, region: east}}'), poolWith('core', '{matchLabels: {tier: core}}')],
    });
    expectErrors(t, [
      [
        ['^nodeSelector: ', 1],
        'spec.pools[1].nodeSelector',
        'selects only nodes that pool "edge" (spec.pools[0]) selects too; every node belongs to one pool, so make the selectors exclusive, e.g. with a NotIn or DoesNotExist requirement in spec.pools[0]',
      ],
    ]);
    // Made exclusive as the message says: valid.
    expectValid(
      doc({
        pools: [
          poolWith('edge', '{matchLabels: {tier: edge}, matchExpressions: [{key: region, operator: NotIn, values: [east]}]}'),
          poolWith('edge-east', '{matchLabels: {tier: edge, region: east}}'),
        ],
      }),
    );
  });

  it('refuses requirements that contradict each other, at the expression', () => {
    const t = doc({
      pools: [poolWith('edge', '{matchLabels: {zone: a}, matchExpressions: [{key: t, operator: Exists}, {key: zone, operator: In, values: [b]}]}'), poolWith('core', '{matchLabels: {zone: c}}')],
    });
    expectErrors(t, [
      ['^{key: zone', 'spec.pools[0].nodeSelector.matchExpressions[1]', 'contradicts the requirements before it on the same label key, so the pool can match no node; remove one of them'],
    ]);
  });

  it('accepts selectors that may or may not overlap, depending on the nodes', () => {
    expectValid(doc({ pools: [poolWith('a', '{matchLabels: {zone: a}}'), poolWith('b', '{matchLabels: {tier: edge}}'), poolWith('c', '{matchExpressions: [{key: zone, operator: In, values: [a, b]}, {key: gpu, operator: Exists}]}')] }));
  });

  it('finds the one nested pair among thousands of pools', () => {
    const pools: string[] = [];
    for (let i = 0; i < 2_000; i++) pools.push(`- {name: p${i}, nodeSelector: {matchLabels: {tier: edge, rack: r${i}}}, gateways: [{node: g${i}}]}`);
    pools.push('- {name: edge, nodeSelector: {matchLabels: {rack: r7}}, gateways: [{node: ge}]}');
    const r = loadTopology(doc({ pools }), 't.yaml');
    assert.equal(r.ok, false);
    assert.deepEqual(r.ok ? [] : r.errors.map((e) => [e.path, e.message.slice(0, 36)]), [['spec.pools[7].nodeSelector', 'selects only nodes that pool "edge" ']]);
  });

  it('compares 20,000 selectors in about linear time', () => {
    const ms = Array.from({ length: 20_000 }, (_, i) => selectorMeaning({ matchLabels: { tier: 'edge', rack: `r${i}` } }));
    ms.push(selectorMeaning({ matchLabels: { rack: 'r7' } }));
    const started = performance.now();
    const got = overlappingSelectors(ms);
    const elapsed = performance.now() - started;
    assert.deepEqual(got, [{ index: 7, kind: 'within', other: 20_000 }]);
    // About 0.1 s here; comparing every pair (4·10⁸ comparisons) takes about 25 s.
    assert.ok(elapsed < 3_000, `took ${Math.round(elapsed)} ms`);
  });
});
