// Who may take a Gateway over (src/sync/ownership.ts), the prune set of a renamed topology (computeChanges) and the
// Superseded status of a former name's status object (topologyStatus). Pure.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { computeChanges } from '../../src/reconcile/gateway-changes.ts';
import { conflictMessage, gatewayOwnership, takeoverNote, withoutConflicts, type OwnershipInput } from '../../src/sync/ownership.ts';
import { topologyStatus } from '../../src/reconcile/topology-status.ts';
import type { TopologyObject } from '../../src/adapters/kube/topologies.ts';
import type { Gateway } from '../../src/gateway/types.ts';

function gw(name: string, labels: Record<string, string> = {}): Gateway {
  return { apiVersion: 'raven.openyurt.io/v1beta1', kind: 'Gateway', metadata: { name, labels }, spec: { endpoints: [] } };
}
const owned = (name: string, topology: string): Gateway => gw(name, { 'app.kubernetes.io/managed-by': 'corvid', 'corvid.dev/topology': topology });
const statusObject = (name: string, source?: string): TopologyObject => ({ metadata: { name, ...(source ? { annotations: { 'corvid.dev/source': source } } : {}) } });

function ownership(o: Partial<OwnershipInput> & { objects?: TopologyObject[] }) {
  const objects = new Map((o.objects ?? []).map((t) => [t.metadata!.name!, t]));
  return gatewayOwnership({
    topology: 'new',
    desired: o.desired ?? [],
    live: o.live ?? [],
    topologyObject: (n) => objects.get(n),
    formerName: o.formerName ?? ((t) => t.metadata?.annotations?.['corvid.dev/source'] === 'git'),
    ...(o.previous !== undefined ? { previous: o.previous } : {}),
  });
}

test('ownership: own, absent and unowned Gateways; an owner whose Topology object is gone', () => {
  const o = ownership({
    desired: ['a', 'b', 'c', 'd', 'e'].map((n) => gw(n)),
    live: [owned('a', 'new'), gw('c', { 'corvid.dev/topology': 'old' }), owned('d', 'gone'), owned('e', 'gone')],
  });
  assert.deepEqual(o, {
    adopted: [
      { why: 'unowned', gateways: ['c'] },
      { from: 'gone', why: 'gone', gateways: ['d', 'e'] },
    ],
    conflicts: [],
    superseded: [],
    pruneWith: [],
  });
});

test('ownership: an owner that still exists is a conflict, unless it is a former name of this git/file topology', () => {
  const desired = ['a', 'b', 'c', 'd'].map((n) => gw(n));
  const live = [owned('a', 'live'), owned('b', 'status'), owned('c', 'prev'), owned('d', 'other-kind')];
  const objects = [statusObject('live'), statusObject('status', 'git'), statusObject('prev'), statusObject('other-kind', 'file')];
  const o = ownership({ desired, live, objects, previous: 'prev' });
  assert.deepEqual(o.conflicts, [
    { owner: 'live', gateways: ['a'] },
    { owner: 'other-kind', gateways: ['d'] },
  ]);
  assert.deepEqual(o.adopted, [
    { from: 'prev', why: 'renamed', gateways: ['c'] },
    { from: 'status', why: 'renamed', gateways: ['b'] },
  ]);
  assert.deepEqual(o.superseded, ['prev', 'status']);
  assert.deepEqual(o.pruneWith, ['prev'], 'only the name this sync had in force is pruned with it');
  assert.deepEqual(withoutConflicts(desired, o).map((g) => g.metadata.name), ['b', 'c']);

  // The cluster source: no former names; every owner that exists is a conflict.
  const cluster = ownership({ desired, live, objects, formerName: () => false });
  assert.deepEqual(cluster.conflicts.map((c) => c.owner), ['live', 'other-kind', 'prev', 'status']);
  assert.deepEqual(cluster.adopted, []);
});

test('ownership: the name in force before, with no Gateway to adopt, is still superseded and pruned with', () => {
  const o = ownership({ desired: [gw('x')], live: [owned('y', 'old')], previous: 'old' });
  assert.deepEqual(o, { adopted: [], conflicts: [], superseded: ['old'], pruneWith: ['old'] });
  const c = computeChanges([gw('x')], [owned('y', 'old'), owned('z', 'third')], ['new', ...o.pruneWith]);
  assert.deepEqual(c.prune.map((g) => g.metadata.name), ['y'], 'the former name\'s Gateway goes; another topology\'s stays');
  assert.deepEqual(computeChanges([gw('x')], [owned('y', 'old')], 'new').prune, [], 'one name: as before');
});

test('conflict and takeover messages name the owners and the Gateways, at most five of them', () => {
  assert.equal(
    conflictMessage([{ owner: 'one', gateways: ['pool-d'] }]),
    'Gateway pool-d belongs to topology one, whose Topology object exists; a Gateway has one owner, and Corvid takes none from a topology that is still there: remove the pool from one of them, or delete Topology one (its Gateways are then adopted)',
  );
  assert.equal(
    conflictMessage([
      { owner: 'a', gateways: ['g1', 'g2', 'g3', 'g4', 'g5', 'g6', 'g7'] },
      { owner: 'b', gateways: ['h'] },
    ]),
    'Gateways g1, g2, g3, g4, g5, and 2 more belong to topology a; Gateway h belongs to topology b, whose Topology objects exist; a Gateway has one owner, and Corvid takes none from a topology that is still there: remove the pools from one of them, or delete Topologies a, b (their Gateways are then adopted)',
  );
  assert.equal(takeoverNote({ from: 'old', why: 'gone', gateways: ['x'] }), 'took over Gateway x from topology old (its Topology object no longer exists)');
  assert.equal(takeoverNote({ from: 'old', why: 'renamed', gateways: ['x', 'y'] }), 'took over Gateways x, y from topology old (renamed: old is superseded)');
  assert.equal(takeoverNote({ why: 'unowned', gateways: ['x'] }), 'took over Gateway x, which no Corvid topology owned');
});

test('topologyStatus: superseded is Ready=False and Stalled=True (Superseded), keeps lastAppliedRevision, drops Reconciling', () => {
  const now = '2026-01-01T00:00:00Z';
  const ready = topologyStatus({ generation: 3, lastAppliedRevision: 'sha256:a', outcome: { kind: 'failed', reason: 'ApplyFailed', message: 'x' }, now });
  assert.ok(ready.conditions?.some((c) => c.type === 'Reconciling'));
  const s = topologyStatus({ previous: ready, generation: 3, lastAppliedRevision: 'sha256:a', outcome: { kind: 'superseded', by: 'beta', revision: 'sha256:b' }, now });
  const message = 'superseded by topology beta at revision sha256:b, which has taken over its Gateways; nothing reconciles this object any more: delete it';
  assert.deepEqual(
    s.conditions?.map((c) => [c.type, c.status, c.reason, c.message]),
    [
      ['Ready', 'False', 'Superseded', message],
      ['Stalled', 'True', 'Superseded', message],
    ],
  );
  assert.equal(s.lastAppliedRevision, 'sha256:a');
  assert.equal(s.observedGeneration, 3);
});
