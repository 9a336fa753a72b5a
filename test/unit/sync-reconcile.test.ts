// The sync's reconcile (GatewayReconciler) phase by phase, on an in-memory cluster (test/support/memory-cluster.ts):
// which revision serves, what is written and in what order, what status says, and that nothing live changes for a
// revision that fails a phase. The same reconcile runs against a real kube-apiserver in test/integration/sync-*.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { NodeJson } from '../../src/adapters/kube/nodes.ts';
import type { LeaseJson } from '../../src/adapters/kube/leases.ts';
import type { ArtifactOk, Artifact } from '../../src/reconcile/artifact.ts';
import { validate } from '../../src/reconcile/revision.ts';
import { GatewayReconciler, type GatewaySpecMode } from '../../src/sync/reconciler.ts';
import { createMetrics } from '../../src/sync/metrics.ts';
import { silentLogger } from '../../src/shell/log.ts';
import { planDesired } from '../../src/cli/inputs.ts';
import { loadTopology } from '../../src/topology/index.ts';
import { inventoryFromNode } from '../../src/plan/index.ts';
import type { Gateway } from '../../src/gateway/types.ts';
import { MemoryCluster } from '../support/memory-cluster.ts';

const T0 = Date.parse('2026-12-01T10:00:00Z');

function topologyText(pools: Array<{ name: string; gateways: string[] }>, opts: { name?: string; allowEmpty?: boolean } = {}): string {
  let ip = 1;
  const lines = [
    'apiVersion: corvid.dev/v1alpha1',
    'kind: Topology',
    'metadata:',
    `  name: ${opts.name ?? 'net'}`,
    'spec:',
    ...(opts.allowEmpty ? ['  allowEmpty: true'] : []),
    '  encryption:',
    '    pskSecretRef: {name: corvid-psk, key: psk}',
    '  election:',
    '    minHealthy: 0s',
    pools.length === 0 ? '  pools: []' : '  pools:',
  ];
  for (const p of pools) {
    lines.push(`    - name: ${p.name}`, `      nodeSelector: {matchLabels: {pool: ${p.name}}}`, '      gateways:');
    for (const g of p.gateways) lines.push(`        - {node: ${g}, publicIP: 203.0.113.${ip++}}`);
  }
  return `${lines.join('\n')}\n`;
}

const TWO_POOLS = [
  { name: 'cloud', gateways: ['cloud-gw-1', 'cloud-gw-2'] },
  { name: 'edge', gateways: ['edge-gw-1'] },
];

/** What `corvid render` prints for the topology and nodes (the CLI's plan step with a fresh memory). */
function render(text: string, nodes: NodeJson[], revision: string, now: number): Gateway[] {
  const t = loadTopology(text, 'topology.yaml');
  if (!t.ok) throw new Error('topology invalid');
  return planDesired({ topology: t.topology, revision, nodes: nodes.map(inventoryFromNode), leases: [], previous: [], now: new Date(now).toISOString() }).gateways;
}

function node(name: string, pool: string, i: number): NodeJson {
  return {
    apiVersion: 'v1',
    kind: 'Node',
    metadata: { name, labels: { pool } },
    spec: { podCIDR: `10.244.${i}.0/24`, podCIDRs: [`10.244.${i}.0/24`] },
    status: {
      addresses: [{ type: 'InternalIP', address: `10.0.0.${i}` }],
      conditions: [{ type: 'Ready', status: 'True', lastTransitionTime: '2026-12-01T09:00:00Z' }],
    },
  } as NodeJson;
}

/** A reconciler on a memory cluster, a source whose newest artifact the test sets, and a settable clock. */
function world(opts: { gatewaySpec?: GatewaySpecMode; canWrite?: () => boolean } = {}) {
  const cluster = new MemoryCluster();
  const nodes: NodeJson[] = [node('cloud-gw-1', 'cloud', 1), node('cloud-gw-2', 'cloud', 2), node('cloud-node-1', 'cloud', 3), node('edge-gw-1', 'edge', 4)];
  let artifact: Artifact | undefined;
  let revisions = 0;
  let nowMs = T0;
  const events: Array<{ reason: string; note: string }> = [];
  const reconciler = new GatewayReconciler({
    writes: cluster,
    source: { kind: 'git', latest: () => artifact },
    gateways: cluster.gateways,
    nodes: { list: () => nodes, get: (n) => nodes.find((x) => x.metadata?.name === n) },
    leases: { list: (): LeaseJson[] => [], get: () => undefined },
    topologies: cluster.topologies,
    statusObject: true,
    events: { record: async (e) => void events.push({ reason: e.reason, note: e.note }) },
    metrics: createMetrics(),
    logger: silentLogger,
    canWrite: opts.canWrite ?? (() => true),
    now: () => new Date(nowMs),
    gatewaySpec: opts.gatewaySpec ?? 'apply',
    requireHeartbeat: false,
    validator: { verdict: (_key: string, a: ArtifactOk) => validate(a) },
  });
  return {
    cluster,
    reconciler,
    events,
    nodes,
    /** A new commit on the branch. */
    push(text: string): string {
      const revision = `main@sha1:${String(++revisions).padStart(40, '0')}`;
      artifact = { ok: true, revision, file: 'topology.yaml', text };
      return revision;
    },
    fetchFails(message: string): void {
      artifact = { ok: false, reason: 'FetchFailed', message, transient: true };
    },
    advance(ms: number): void {
      nowMs += ms;
    },
    status() {
      return cluster.topologies.get('net')?.status;
    },
    ready() {
      return this.status()?.conditions?.find((c) => c.type === 'Ready');
    },
  };
}

test('a first revision: every Gateway created (spec, then status), the status object written, Ready=True; the next reconcile writes nothing', async () => {
  const w = world();
  const rev = w.push(topologyText(TWO_POOLS));
  const r = await w.reconciler.reconcile();
  assert.equal(r.result, 'success');
  assert.equal(r.revision, rev);
  // The Gateways are written concurrently; each one's spec before its status, the Topology's status last.
  assert.deepEqual([...w.cluster.writes].sort(), ['applyGateway cloud', 'applyGateway edge', 'applyGatewayStatus cloud', 'applyGatewayStatus edge', 'applyTopology net', 'applyTopologyStatus net']);
  for (const g of ['cloud', 'edge']) assert.ok(w.cluster.writes.indexOf(`applyGateway ${g}`) < w.cluster.writes.indexOf(`applyGatewayStatus ${g}`));
  assert.deepEqual(w.cluster.writes.slice(4), ['applyTopology net', 'applyTopologyStatus net']);
  assert.equal(r.writes, w.cluster.writes.length);
  assert.deepEqual(w.cluster.gateways.list().map((g) => [g.metadata.name, g.status?.activeEndpoints?.map((e) => e.nodeName)]), [
    ['cloud', ['cloud-gw-1']],
    ['edge', ['edge-gw-1']],
  ]);
  assert.equal(w.ready()?.status, 'True');
  assert.equal(w.status()?.lastAppliedRevision, rev);
  assert.equal(w.ready()?.lastTransitionTime, new Date(T0).toISOString().replace(/\.\d{3}Z$/, 'Z'));

  w.advance(1000);
  const again = await w.reconciler.reconcile();
  assert.equal(again.result, 'success');
  assert.equal(again.writes, 0, `unchanged: no write (${w.cluster.writes.slice(6).join(', ')})`);
  assert.equal(again.durationMs, 0, 'the injected clock measures the reconcile');
});

test('the Gateways written are the ones `corvid render` prints for the same topology and nodes', async () => {
  const w = world();
  const text = topologyText(TWO_POOLS);
  const rev = w.push(text);
  await w.reconciler.reconcile();
  const rendered = render(text, w.nodes, rev, T0);
  const live = w.cluster.gateways.list().map((g) => ({ name: g.metadata.name, spec: g.spec }));
  assert.deepEqual(live, rendered.map((g) => ({ name: g.metadata.name, spec: g.spec })));
});

test('a broken commit changes no live object: rejected (Stalled), the last good revision keeps serving, status says why', async () => {
  const w = world();
  const good = w.push(topologyText(TWO_POOLS));
  await w.reconciler.reconcile();
  const before = w.cluster.writes.length;
  const bad = w.push(topologyText(TWO_POOLS).replace('minHealthy: 0s', 'minHealthy: soon'));
  const r = await w.reconciler.reconcile();
  assert.equal(r.result, 'success');
  assert.equal(r.revision, good, 'the last good revision served');
  assert.deepEqual(w.cluster.writes.slice(before), ['applyTopologyStatus net'], 'only the status changed');
  assert.equal(w.ready()?.status, 'False');
  assert.equal(w.ready()?.reason, 'ValidationFailed');
  assert.match(w.ready()!.message, /topology\.yaml:\d+:\d+/);
  assert.equal(w.status()?.conditions?.find((c) => c.type === 'Stalled')?.status, 'True');
  assert.equal(w.status()?.lastAttemptedRevision, bad);
  assert.equal(w.status()?.lastAppliedRevision, good);
  assert.ok(w.events.some((e) => e.reason === 'RevisionRejected'));

  // Failover still works while the broken commit sits on the branch.
  w.nodes[0].status!.conditions![0] = { type: 'Ready', status: 'False', lastTransitionTime: '2026-12-01T10:00:00Z' };
  w.advance(1000);
  await w.reconciler.reconcile();
  assert.deepEqual(w.cluster.gateways.get('cloud')?.status?.activeEndpoints?.map((e) => e.nodeName), ['cloud-gw-2']);
});

test('a revision the server refuses at dry run is rejected before any write, and the last good one serves', async () => {
  const w = world();
  const good = w.push(topologyText(TWO_POOLS));
  await w.reconciler.reconcile();
  const before = w.cluster.writes.length;
  w.push(topologyText([...TWO_POOLS, { name: 'far', gateways: ['far-gw-1'] }]));
  w.nodes.push(node('far-gw-1', 'far', 9));
  w.cluster.failNext('applyGateway', { name: 'far', code: 422, message: 'spec.endpoints: Invalid value', dryRun: true });
  const r = await w.reconciler.reconcile();
  assert.equal(r.revision, good);
  assert.equal(w.cluster.gateways.get('far'), undefined, 'nothing of the refused revision was written');
  assert.deepEqual(w.cluster.writes.slice(before), ['applyTopologyStatus net']);
  assert.equal(w.ready()?.reason, 'DryRunFailed');
  assert.match(w.ready()!.message, /Gateway far: .*Invalid value/);
});

test('a transient write failure is retried: error now (Reconciling, ProgressingWithRetry), applied at the next reconcile', async () => {
  const w = world();
  const first = w.push(topologyText([TWO_POOLS[0]]));
  await w.reconciler.reconcile();
  const rev = w.push(topologyText(TWO_POOLS));
  w.cluster.failNext('applyGateway', { name: 'edge', code: 503, message: 'etcd leader changed' });
  const r = await w.reconciler.reconcile();
  assert.equal(r.result, 'error');
  assert.equal(w.ready()?.status, 'False');
  assert.equal(w.ready()?.reason, 'ApplyFailed');
  assert.equal(w.status()?.conditions?.find((c) => c.type === 'Reconciling')?.reason, 'ProgressingWithRetry');
  assert.equal(w.status()?.lastAppliedRevision, first);
  assert.equal(w.cluster.gateways.get('edge'), undefined);

  w.advance(1000);
  const retry = await w.reconciler.reconcile();
  assert.equal(retry.result, 'success');
  assert.ok(w.cluster.gateways.get('edge'));
  assert.equal(w.ready()?.status, 'True');
  assert.equal(w.status()?.lastAppliedRevision, rev);
});

test('prune: a pool removed from the topology loses its Gateway, but not while the newest revision is broken', async () => {
  const w = world();
  w.push(topologyText(TWO_POOLS));
  await w.reconciler.reconcile();
  w.push(topologyText([TWO_POOLS[0]]).replace('minHealthy: 0s', 'minHealthy: later'));
  await w.reconciler.reconcile();
  assert.ok(w.cluster.gateways.get('edge'), 'a broken revision prunes nothing');
  w.push(topologyText([TWO_POOLS[0]]));
  await w.reconciler.reconcile();
  assert.equal(w.cluster.gateways.get('edge'), undefined);
  assert.ok(w.cluster.writes.includes('deleteGateway edge'));
  assert.ok(w.events.some((e) => e.reason === 'Pruned'));
});

test('prune never empties the cluster by accident: a revision with no pools is refused unless allowEmpty', async () => {
  const w = world();
  w.push(topologyText(TWO_POOLS));
  await w.reconciler.reconcile();
  w.push(topologyText([]));
  await w.reconciler.reconcile();
  assert.equal(w.cluster.gateways.list().length, 2);
  assert.equal(w.ready()?.reason, 'ValidationFailed');
  assert.match(w.ready()!.message, /allowEmpty/);
  w.push(topologyText([], { allowEmpty: true }));
  await w.reconciler.reconcile();
  assert.equal(w.cluster.gateways.list().length, 0);
});

test('drift: a hand edit of a Gateway is undone; a field another writer added is removed by a replace', async () => {
  const w = world();
  w.push(topologyText(TWO_POOLS));
  await w.reconciler.reconcile();
  w.cluster.editGateway('edge', (g) => {
    (g.spec as unknown as Record<string, unknown>).extra = 'from kubectl';
    g.status = { ...g.status, activeEndpoints: [] };
  });
  w.advance(1000);
  const r = await w.reconciler.reconcile();
  assert.equal(r.result, 'success');
  const edge = w.cluster.gateways.get('edge')!;
  assert.equal((edge.spec as unknown as Record<string, unknown>).extra, undefined);
  assert.deepEqual(edge.status?.activeEndpoints?.map((e) => e.nodeName), ['edge-gw-1']);
  assert.ok(w.cluster.writes.includes('replaceGateway edge'), w.cluster.writes.join(', '));
  assert.ok(w.events.some((e) => e.reason === 'DriftRepaired'));
});

test('not the leader: nothing is read into a decision and nothing is written', async () => {
  let leader = false;
  const w = world({ canWrite: () => leader });
  w.push(topologyText(TWO_POOLS));
  const r = await w.reconciler.reconcile();
  assert.equal(r.result, 'skipped');
  assert.deepEqual(w.cluster.writes, []);
  leader = true;
  assert.equal((await w.reconciler.reconcile()).result, 'success');
});

test('a fetch that fails transiently requeues and leaves the Gateways of the revision in force alone', async () => {
  const w = world();
  const good = w.push(topologyText(TWO_POOLS));
  await w.reconciler.reconcile();
  const before = w.cluster.writes.length;
  w.fetchFails('remote hung up');
  const r = await w.reconciler.reconcile();
  assert.equal(r.result, 'requeue');
  assert.equal(r.revision, good);
  assert.deepEqual(w.cluster.writes.slice(before), ['applyTopologyStatus net']);
  assert.equal(w.ready()?.reason, 'FetchFailed');
});

test('a status write that fails is retried with backoff on the injected clock, whatever triggers the reconciles', async () => {
  const w = world();
  w.push(topologyText(TWO_POOLS));
  w.cluster.failNext('applyTopologyStatus', { code: 500, message: 'internal error' });
  assert.equal((await w.reconciler.reconcile()).result, 'requeue');
  const before = w.cluster.writes.length;
  w.advance(100);
  assert.equal((await w.reconciler.reconcile()).result, 'requeue', 'within the backoff: not tried');
  assert.deepEqual(w.cluster.writes.slice(before), []);
  w.advance(500);
  assert.equal((await w.reconciler.reconcile()).result, 'success');
  assert.equal(w.ready()?.status, 'True');
});

test('external spec owner: the sync writes only status of Gateways whose spec is the plan, and waits for the others', async () => {
  const w = world({ gatewaySpec: 'external' });
  const text = topologyText(TWO_POOLS);
  const rev = w.push(text);
  const r = await w.reconciler.reconcile();
  assert.equal(r.result, 'requeue');
  assert.equal(w.ready()?.reason, 'WaitingForGatewaySpec');
  assert.equal(w.cluster.gateways.list().length, 0, 'the sync creates no Gateway');

  // The spec owner (Argo CD applying `corvid render`) applies the Gateways.
  for (const g of render(text, w.nodes, rev, T0)) {
    await w.cluster.applyGateway({ ...g, status: undefined } as typeof g);
  }
  const writesBefore = w.cluster.writes.length;
  w.advance(1000);
  assert.equal((await w.reconciler.reconcile()).result, 'success');
  const mine = w.cluster.writes.slice(writesBefore);
  assert.ok(mine.every((x) => !x.startsWith('applyGateway ') && !x.startsWith('replaceGateway ')), mine.join(', '));
  assert.deepEqual(w.cluster.gateways.get('cloud')?.status?.activeEndpoints?.map((e) => e.nodeName), ['cloud-gw-1']);
  assert.equal(w.ready()?.status, 'True');
});
