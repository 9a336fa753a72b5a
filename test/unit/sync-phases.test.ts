// Pure parts of the sync: change sets and the prune guard, kstatus status, verify/validate verdicts, wake-up times.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { computeChanges, emptyRefusal, ownedKey } from '../../src/reconcile/gateway-changes.ts';
import { MAX_READY_NOTES, podSubnetProblems, topologyStatus, statusEquals } from '../../src/reconcile/topology-status.ts';
import { boundedMessage, MAX_CONDITION_MESSAGE } from '../../src/reconcile/conditions.ts';
import { validate, verify, documentName } from '../../src/reconcile/revision.ts';
import type { Gateway } from '../../src/gateway/types.ts';

function gw(name: string, opts: { topology?: string; managed?: boolean; active?: string; endpoints?: string[]; rv?: string } = {}): Gateway {
  const labels: Record<string, string> = {};
  if (opts.managed !== false) labels['app.kubernetes.io/managed-by'] = 'corvid';
  if (opts.topology !== undefined) labels['corvid.dev/topology'] = opts.topology;
  return {
    apiVersion: 'raven.openyurt.io/v1beta1',
    kind: 'Gateway',
    metadata: { name, labels, annotations: { 'corvid.dev/revision': 'r' }, ...(opts.rv ? { resourceVersion: opts.rv, uid: `uid-${name}` } : {}) },
    spec: { endpoints: (opts.endpoints ?? ['n1']).map((n) => ({ nodeName: n, type: 'tunnel' as const, port: 4500 })) },
    status: { activeEndpoints: opts.active ? [{ nodeName: opts.active, type: 'tunnel', port: 4500 }] : [] },
  };
}

test('computeChanges: equal objects are left alone; spec and status differences are told apart', () => {
  const desired = [gw('a', { topology: 't', active: 'n1' }), gw('b', { topology: 't', active: 'n1' }), gw('c', { topology: 't' })];
  const live = [
    { ...gw('a', { topology: 't', active: 'n1', rv: '5' }), metadata: { ...gw('a', { topology: 't' }).metadata, resourceVersion: '5', labels: { ...gw('a', { topology: 't' }).metadata.labels, extra: 'x' } } },
    gw('b', { topology: 't', active: 'n2', rv: '6' }),
  ];
  const c = computeChanges(desired, live, 't');
  assert.deepEqual(c.unchanged, ['a'], 'a foreign label is not a difference');
  assert.deepEqual(c.apply.map((x) => [x.name, x.spec, x.status, x.drift]), [
    ['b', false, true, false],
    ['c', true, true, false], // new: created, then its status written
  ]);
  assert.deepEqual(c.prune, []);
});

test('computeChanges: a new revision rewrites only the Gateways whose content it changes; the others keep their stamp', () => {
  const at = (g: Gateway, rev: string): Gateway => ({ ...g, metadata: { ...g.metadata, annotations: { ...g.metadata.annotations, 'corvid.dev/revision': rev } } });
  const live = [at(gw('a', { topology: 't', active: 'n1', rv: '5' }), 'r1'), at(gw('b', { topology: 't', active: 'n1', rv: '6' }), 'r1'), at(gw('c', { topology: 't', active: 'n1', rv: '7' }), 'r1')];
  const desired = [
    at(gw('a', { topology: 't', active: 'n1' }), 'r2'), // untouched by r2
    at(gw('b', { topology: 't', active: 'n1', endpoints: ['n1', 'n9'] }), 'r2'), // r2 adds a candidate
    at(gw('c', { topology: 't', active: 'n2' }), 'r2'), // only the election moved
  ];
  const c = computeChanges(desired, live, 't');
  assert.deepEqual(c.unchanged, ['a']);
  assert.deepEqual(c.apply.map((x) => [x.name, x.spec, x.status, x.desired.metadata.annotations?.['corvid.dev/revision']]), [
    ['b', true, false, 'r2'],
    ['c', false, true, 'r1'], // status only: the revision stamp says which commit last changed it
  ]);
});

test('computeChanges: prune takes only managed Gateways of this topology that are no longer desired', () => {
  const live = [
    gw('keep', { topology: 't', rv: '1' }),
    gw('old', { topology: 't', rv: '2' }),
    gw('other-topology', { topology: 'u', rv: '3' }),
    gw('unmanaged', { topology: 't', managed: false, rv: '4' }),
    gw('no-topology-label', { rv: '5' }),
  ];
  const c = computeChanges([gw('keep', { topology: 't' })], live, 't');
  assert.deepEqual(c.prune.map((g) => g.metadata.name), ['old']);
});

test('emptyRefusal: a revision that would delete every Gateway needs allowEmpty', () => {
  const live = [gw('a', { topology: 't', rv: '1' }), gw('b', { topology: 't', rv: '2' })];
  const c = computeChanges([], live, 't');
  assert.match(emptyRefusal([], c, false)!, /delete all 2 \(a, b\).*allowEmpty/);
  assert.equal(emptyRefusal([], c, true), undefined);
  assert.equal(emptyRefusal([gw('a', { topology: 't' })], computeChanges([gw('a', { topology: 't' })], live, 't'), false), undefined);
  assert.equal(emptyRefusal([], computeChanges([], [], 't'), false), undefined, 'nothing to delete, nothing to refuse');
});

test('computeChanges: drift is a live change the sync did not make while desired stayed the same', () => {
  const d = gw('a', { topology: 't', active: 'n1' });
  const edited = gw('a', { topology: 't', active: 'n1', endpoints: ['n9'], rv: '7' });
  const written = new Map([['a', ownedKey(d)]]);
  assert.equal(computeChanges([d], [edited], 't', written).apply[0].drift, true);
  // The desired state moved (new revision, election): a normal update, not drift.
  const d2 = gw('a', { topology: 't', active: 'n2' });
  assert.equal(computeChanges([d2], [edited], 't', written).apply[0].drift, false);
  // Nothing remembered (fresh start): never called drift.
  assert.equal(computeChanges([d], [edited], 't').apply[0].drift, false);
});

test('topologyStatus: kstatus conditions for applied, rejected and failed, with stable transition times', () => {
  const applied = topologyStatus({ generation: 3, lastAppliedRevision: 'main@sha1:a', lastAttemptedRevision: 'main@sha1:a', outcome: { kind: 'applied', revision: 'main@sha1:a' }, now: '2026-01-01T00:00:00Z' });
  assert.deepEqual(applied.conditions!.map((c) => [c.type, c.status, c.reason]), [['Ready', 'True', 'ReconciliationSucceeded']]);
  assert.equal(applied.observedGeneration, 3);
  assert.equal(applied.conditions![0].observedGeneration, 3);

  const again = topologyStatus({ previous: applied, generation: 3, lastAppliedRevision: 'main@sha1:a', lastAttemptedRevision: 'main@sha1:a', outcome: { kind: 'applied', revision: 'main@sha1:a' }, now: '2026-01-01T01:00:00Z' });
  assert.equal(statusEquals(applied, again), true, 'same outcome later: no write');

  const rejected = topologyStatus({ previous: applied, generation: 4, lastAppliedRevision: 'main@sha1:a', lastAttemptedRevision: 'main@sha1:b', outcome: { kind: 'rejected', revision: 'main@sha1:b', reason: 'ValidationFailed', message: 't.yaml:3:5: spec.pools: bad' }, now: '2026-01-01T02:00:00Z' });
  const ready = rejected.conditions!.find((c) => c.type === 'Ready')!;
  assert.equal(ready.status, 'False');
  assert.equal(ready.lastTransitionTime, '2026-01-01T02:00:00Z');
  assert.match(ready.message, /^revision main@sha1:b: t\.yaml:3:5: spec\.pools: bad; main@sha1:a stays in force$/);
  assert.equal(rejected.conditions!.find((c) => c.type === 'Stalled')?.status, 'True');
  assert.equal(rejected.conditions!.find((c) => c.type === 'Reconciling'), undefined);

  const failed = topologyStatus({ previous: rejected, lastAppliedRevision: 'main@sha1:a', outcome: { kind: 'failed', reason: 'ApplyFailed', message: 'connection refused' }, now: '2026-01-01T03:00:00Z' });
  assert.equal(failed.conditions!.find((c) => c.type === 'Reconciling')?.reason, 'ProgressingWithRetry');
  assert.equal(failed.conditions!.find((c) => c.type === 'Stalled'), undefined);
  assert.equal(failed.conditions!.find((c) => c.type === 'Ready')?.lastTransitionTime, '2026-01-01T02:00:00Z', 'False -> False keeps the time');
});

test('verify and validate: an unverified commit and an invalid document are refused with their reason', () => {
  assert.deepEqual(verify({ ok: true, revision: 'r', file: 'f', text: '' }), { ok: true });
  const unsigned = verify({ ok: true, revision: 'main@sha1:x', file: 'f', text: '', verification: { verified: false, message: 'no signature' } });
  assert.equal(unsigned.ok, false);
  assert.equal(!unsigned.ok && unsigned.reason, 'VerificationFailed');
  const bad = validate({ ok: true, revision: 'r', file: 'topo.yaml', text: 'apiVersion: corvid.dev/v1alpha1\nkind: Topology\nmetadata: {name: x}\nspec: {pools: 3}\n' });
  assert.equal(bad.ok, false);
  assert.ok(!bad.ok && /^topo\.yaml:\d+:\d+: spec\.pools: /m.test(bad.message), JSON.stringify(bad));
  assert.equal(!bad.ok && bad.name, 'x');
  assert.equal(documentName('{{{'), undefined);
});

test('podSubnetProblems: the Calico findings only, sorted and de-duplicated, at most 20 lines and a count', () => {
  const f = (code: string, message: string) => ({ severity: 'warning' as const, code, message });
  assert.deepEqual(podSubnetProblems([f('node-without-pod-cidr', 'x'), f('calico-block-unknown-node', 'b'), f('calico-block-invalid', 'a'), f('calico-block-invalid', 'a')]), ['a', 'b']);
  const many = Array.from({ length: 25 }, (_, i) => f('calico-block-overlap', `block ${String(i).padStart(2, '0')}`));
  const lines = podSubnetProblems(many);
  assert.equal(lines.length, 21);
  assert.equal(lines[20], 'and 5 more');
  // In status only when there are some; a status without problems equals one written before the field existed.
  const st = (problems?: string[]) => topologyStatus({ outcome: { kind: 'applied', revision: 'r' }, now: '2026-01-01T00:00:00Z', podSubnets: { source: 'calico', reason: 'auto', ...(problems ? { problems } : {}) } });
  assert.deepEqual(st(['a']).podSubnets, { source: 'calico', reason: 'auto', problems: ['a'] });
  assert.deepEqual(st([]).podSubnets, { source: 'calico', reason: 'auto' });
  assert.ok(statusEquals(st(undefined), st([])));
});

test('topologyStatus: messages stay within metav1.Condition\'s 32,768 characters, whatever the fleet size', () => {
  // 1,000 pools without a live candidate: one note each. The API server refused the whole status before.
  const notes = Array.from({ length: 1000 }, (_, i) => `pool site-${String(i).padStart(4, '0')} has no healthy gateway candidate (site-${i}-n0: no heartbeat, site-${i}-n1: no heartbeat)`);
  const applied = topologyStatus({ outcome: { kind: 'applied', revision: 'main@sha1:1', notes }, now: '2026-12-01T00:00:00Z' });
  const ready = applied.conditions!.find((c) => c.type === 'Ready')!;
  assert.equal(ready.status, 'True');
  assert.equal(ready.message.split('\n').length, 1 + MAX_READY_NOTES + 1);
  assert.match(ready.message, /\nand 980 more findings$/);
  assert.match(ready.message, /site-0000/);

  // A dry run that failed for every Gateway: one long line; cut, and what was cut is counted.
  const long = `server dry run failed: ${Array.from({ length: 3000 }, (_, i) => `Gateway site-${i}: 422 Invalid value`).join('; ')}`;
  assert.ok(long.length > MAX_CONDITION_MESSAGE);
  const rejected = topologyStatus({ outcome: { kind: 'rejected', revision: 'main@sha1:2', reason: 'DryRunFailed', message: long }, now: '2026-12-01T00:00:00Z' });
  for (const c of rejected.conditions!) {
    assert.ok(c.message.length <= MAX_CONDITION_MESSAGE, `${c.type}: ${c.message.length} characters`);
    assert.match(c.message, /^revision main@sha1:2: server dry run failed: Gateway site-0: /);
    assert.match(c.message, / \.\.\. \(\d+ more characters\)$/);
  }
  assert.equal(boundedMessage('short'), 'short');
  const exact = 'x'.repeat(MAX_CONDITION_MESSAGE);
  assert.equal(boundedMessage(exact), exact);
  const over = boundedMessage(`${exact}y`);
  assert.ok(over.length <= MAX_CONDITION_MESSAGE && over.endsWith('more characters)'));
});
