import { test } from 'node:test';
import assert from 'node:assert/strict';
import { compileSelector, matchesSelector, selectorError, SelectorIndex } from '../../src/plan/selector.ts';
import type { LabelSelector } from '../../src/topology/types.ts';

const labels = { zone: 'a', tier: 'edge', 'example.com/role': 'gw' };

test('matchLabels: every pair must be present and equal', () => {
  assert.equal(matchesSelector({ matchLabels: { zone: 'a' } }, labels), true);
  assert.equal(matchesSelector({ matchLabels: { zone: 'a', tier: 'edge' } }, labels), true);
  assert.equal(matchesSelector({ matchLabels: { zone: 'b' } }, labels), false);
  assert.equal(matchesSelector({ matchLabels: { missing: '' } }, labels), false);
  assert.equal(matchesSelector({ matchLabels: { empty: '' } }, { empty: '' }), true);
});

test('In: label present with one of the values', () => {
  const sel: LabelSelector = { matchExpressions: [{ key: 'zone', operator: 'In', values: ['a', 'b'] }] };
  assert.equal(matchesSelector(sel, labels), true);
  assert.equal(matchesSelector(sel, { zone: 'c' }), false);
  assert.equal(matchesSelector(sel, {}), false);
});

test('NotIn: label absent, or present with none of the values', () => {
  const sel: LabelSelector = { matchExpressions: [{ key: 'zone', operator: 'NotIn', values: ['a'] }] };
  assert.equal(matchesSelector(sel, labels), false);
  assert.equal(matchesSelector(sel, { zone: 'b' }), true);
  assert.equal(matchesSelector(sel, {}), true, 'NotIn matches a node without the label, as in Kubernetes');
});

test('Exists and DoesNotExist look at presence only', () => {
  assert.equal(matchesSelector({ matchExpressions: [{ key: 'zone', operator: 'Exists' }] }, { zone: '' }), true);
  assert.equal(matchesSelector({ matchExpressions: [{ key: 'zone', operator: 'Exists' }] }, {}), false);
  assert.equal(matchesSelector({ matchExpressions: [{ key: 'zone', operator: 'DoesNotExist' }] }, {}), true);
  assert.equal(matchesSelector({ matchExpressions: [{ key: 'zone', operator: 'DoesNotExist' }] }, labels), false);
});

test('requirements are ANDed across matchLabels and matchExpressions', () => {
  const sel: LabelSelector = {
    matchLabels: { tier: 'edge' },
    matchExpressions: [
      { key: 'zone', operator: 'In', values: ['a'] },
      { key: 'node-role.kubernetes.io/control-plane', operator: 'DoesNotExist' },
    ],
  };
  assert.equal(matchesSelector(sel, labels), true);
  assert.equal(matchesSelector(sel, { ...labels, 'node-role.kubernetes.io/control-plane': '' }), false);
  assert.equal(matchesSelector(sel, { ...labels, tier: 'core' }), false);
});

test('the empty selector matches every node (Kubernetes semantics)', () => {
  assert.equal(matchesSelector({}, {}), true);
  assert.equal(matchesSelector({ matchLabels: {}, matchExpressions: [] }, labels), true);
});

test('invalid selectors are errors and match nothing', () => {
  const cases: [LabelSelector, RegExp][] = [
    [{ matchExpressions: [{ key: 'zone', operator: 'In', values: [] }] }, /non-empty/],
    [{ matchExpressions: [{ key: 'zone', operator: 'NotIn' }] }, /non-empty/],
    [{ matchExpressions: [{ key: 'zone', operator: 'Exists', values: ['a'] }] }, /must be empty/],
    [{ matchExpressions: [{ key: 'zone', operator: 'Gt' as 'In', values: ['1'] }] }, /unknown operator/],
    [{ matchLabels: { 'bad key!': 'a' } }, /name part/],
    [{ matchLabels: { zone: '-bad' } }, /label value/],
    [{ matchLabels: { 'Bad_Prefix/zone': 'a' } }, /prefix/],
    [{ matchLabels: { [`${'x'.repeat(64)}`]: 'a' } }, /63/],
  ];
  for (const [sel, re] of cases) {
    assert.match(selectorError(sel) ?? '', re, JSON.stringify(sel));
    assert.equal(matchesSelector(sel, { zone: 'a', 'bad key!': 'a' }), false);
  }
  assert.equal(selectorError({ matchLabels: { 'example.com/role': 'gw' } }), undefined);
});

test('the anchor is the narrowest In requirement', () => {
  const c = compileSelector({
    matchLabels: { tier: 'edge' },
    matchExpressions: [{ key: 'zone', operator: 'In', values: ['b', 'a'] }],
  });
  assert.deepEqual(c.anchor, { key: 'tier', values: ['edge'] });
  assert.equal(compileSelector({ matchExpressions: [{ key: 'zone', operator: 'Exists' }] }).anchor, undefined);
});

test('SelectorIndex gives the same answer as matching every selector', () => {
  const selectors: LabelSelector[] = [
    { matchLabels: { zone: 'a' } },
    { matchExpressions: [{ key: 'zone', operator: 'In', values: ['a', 'b'] }] },
    { matchExpressions: [{ key: 'zone', operator: 'NotIn', values: ['a'] }] },
    {},
    { matchExpressions: [{ key: 'tier', operator: 'Exists' }] },
    { matchLabels: { zone: 'a', tier: 'core' } },
    { matchExpressions: [{ key: 'zone', operator: 'In', values: [] }] },
  ];
  const index = new SelectorIndex(selectors);
  const labelSets: Record<string, string>[] = [{}, { zone: 'a' }, { zone: 'b', tier: 'edge' }, { zone: 'a', tier: 'core' }, { other: 'x' }];
  for (const l of labelSets) {
    const expected = selectors.flatMap((s, i) => (matchesSelector(s, l) ? [i] : []));
    assert.deepEqual(index.matching(l), expected, JSON.stringify(l));
  }
  assert.match(index.error(6) ?? '', /non-empty/);
});
