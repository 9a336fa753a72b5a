// src/adapters/kube against a real kube-apiserver 1.20: SSA, dry-run, status manager, preconditions, informer
// resilience (410 Gone after compaction, API server restart), leader election, heartbeat Leases.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { useControlPlane } from '../support/controlplane.ts';
import { ensureNamespace, installCorvidCrds, sleep, waitFor, writeHeartbeat } from './sync-fixtures.ts';
import { CONTENT_TYPE, isTransient, kubeRequest, statusCode } from '../../src/adapters/kube/client.ts';
import {
  FIELD_MANAGER,
  STATUS_FIELD_MANAGER,
  applyGateway,
  applyGatewayStatus,
  deleteGateway,
  gatewayInformer,
  getGateway,
  listGateways,
} from '../../src/adapters/kube/gateways.ts';
import { NODES_PATH, listNodes, nodeInformer, type NodeJson } from '../../src/adapters/kube/nodes.ts';
import { inventoryFromNode } from '../../src/plan/index.ts';
import { listHeartbeatLeases } from '../../src/adapters/kube/leases.ts';
import { LeaderElector } from '../../src/adapters/kube/leader.ts';
import { eventRecorder, listEvents } from '../../src/adapters/kube/events.ts';
import { applyTopology, applyTopologyStatus, getTopology } from '../../src/adapters/kube/topologies.ts';
import { setCondition } from '../../src/reconcile/conditions.ts';
import type { Gateway } from '../../src/gateway/types.ts';
import type { InformerEvent } from '../../src/adapters/kube/informer.ts';

const cp = useControlPlane();
const localOnly = cp.skip ?? (process.env.TEST_KUBECONFIG ? 'needs a local control plane, not TEST_KUBECONFIG' : undefined);

function gw(name: string, nodeName: string, labels: Record<string, string> = {}): Gateway {
  return {
    apiVersion: 'raven.openyurt.io/v1beta1',
    kind: 'Gateway',
    metadata: { name, labels: { 'app.kubernetes.io/managed-by': 'corvid', ...labels }, annotations: { 'corvid.dev/revision': 'r1' } },
    spec: {
      endpoints: [{ nodeName, type: 'tunnel', port: 4500, underNAT: false, publicIP: '203.0.113.1', publicPort: 4500 }],
      tunnelConfig: { Replicas: 1 },
      proxyConfig: { Replicas: 1 },
    },
  };
}

test('Gateway: SSA create, dry-run stores nothing, no-op apply keeps resourceVersion, status under its own manager, guarded delete', { skip: cp.skip }, async () => {
  const kc = cp.get().kubeConfig;
  await installCorvidCrds(kc);

  const dry = await applyGateway(kc, gw('ka-1', 'n1'), { dryRun: true });
  assert.equal(dry.metadata.name, 'ka-1');
  assert.equal(await getGateway(kc, 'ka-1'), undefined, 'dry-run must not store');

  const created = await applyGateway(kc, gw('ka-1', 'n1'));
  assert.ok(created.metadata.resourceVersion);
  const again = await applyGateway(kc, gw('ka-1', 'n1'));
  assert.equal(again.metadata.resourceVersion, created.metadata.resourceVersion, 'an unchanged apply is not a write');

  const withStatus = await applyGatewayStatus(kc, 'ka-1', { activeEndpoints: [{ nodeName: 'n1', type: 'tunnel', port: 4500 }] });
  assert.equal(withStatus.status?.activeEndpoints?.[0].nodeName, 'n1');
  const managers = ((withStatus.metadata as any).managedFields as { manager: string }[]).map((m) => m.manager).sort();
  assert.deepEqual(managers, [FIELD_MANAGER, STATUS_FIELD_MANAGER]);

  // The spec manager still owns the spec (1.20 quirk avoided): another manager's non-forced apply conflicts.
  const other = await import('../../src/adapters/kube/client.ts').then((m) =>
    m.kubeRequest(kc, {
      method: 'PATCH',
      path: '/apis/raven.openyurt.io/v1beta1/gateways/ka-1',
      query: { fieldManager: 'someone-else' },
      body: { apiVersion: 'raven.openyurt.io/v1beta1', kind: 'Gateway', metadata: { name: 'ka-1' }, spec: { tunnelConfig: { Replicas: 0 } } },
      contentType: 'application/apply-patch+yaml',
    }).then(() => 200, (e) => statusCode(e)),
  );
  assert.equal(other, 409);

  const listed = await listGateways(kc, { labelSelector: 'app.kubernetes.io/managed-by=corvid' });
  assert.ok(listed.items.some((g) => g.metadata.name === 'ka-1'));
  assert.ok(listed.resourceVersion);

  const live = (await getGateway(kc, 'ka-1'))!;
  await assert.rejects(deleteGateway(kc, 'ka-1', { uid: live.metadata.uid, resourceVersion: '1' }), (e) => statusCode(e) === 409);
  assert.equal(await deleteGateway(kc, 'ka-1', { uid: live.metadata.uid, resourceVersion: live.metadata.resourceVersion }, { dryRun: true }), true);
  assert.ok(await getGateway(kc, 'ka-1'));
  assert.equal(await deleteGateway(kc, 'ka-1', { uid: live.metadata.uid, resourceVersion: live.metadata.resourceVersion }), true);
  assert.equal(await getGateway(kc, 'ka-1'), undefined);
  assert.equal(await deleteGateway(kc, 'ka-1', {}), false);
});

test('Topology status: SSA through /status with kstatus conditions', { skip: cp.skip }, async () => {
  const kc = cp.get().kubeConfig;
  await installCorvidCrds(kc);
  await applyTopology(kc, { name: 'ka-topo', spec: { pools: [{ name: 'a', nodeSelector: { matchLabels: { pool: 'a' } }, gateways: [{ node: 'n1' }] }] } });
  const now = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
  const conditions = setCondition(undefined, { type: 'Ready', status: 'True', reason: 'ReconciliationSucceeded', message: 'ok', observedGeneration: 1 }, now);
  const t = await applyTopologyStatus(kc, 'ka-topo', { observedGeneration: 1, lastAppliedRevision: 'sha256:ab', lastAttemptedRevision: 'sha256:ab', conditions });
  assert.equal(t.status?.lastAppliedRevision, 'sha256:ab');
  const again = await applyTopologyStatus(kc, 'ka-topo', { observedGeneration: 1, lastAppliedRevision: 'sha256:ab', lastAttemptedRevision: 'sha256:ab', conditions });
  assert.equal(again.metadata?.resourceVersion, t.metadata?.resourceVersion);
  assert.equal((await getTopology(kc, 'ka-topo'))?.status?.conditions?.[0].type, 'Ready');
  // A flip keeps nothing of the old transition time; no flip keeps it.
  const same = setCondition(conditions, { type: 'Ready', status: 'True', reason: 'X', message: 'y' }, '2099-01-01T00:00:00Z');
  assert.equal(same[0].lastTransitionTime, now);
  const flip = setCondition(conditions, { type: 'Ready', status: 'False', reason: 'X', message: 'y' }, '2099-01-01T00:00:00Z');
  assert.equal(flip[0].lastTransitionTime, '2099-01-01T00:00:00Z');
});

test('informer: relists after 410 Gone and survives an API server restart without losing an update', { skip: localOnly }, async () => {
  const k = cp.get();
  const kc = k.kubeConfig;
  await installCorvidCrds(kc);
  await applyGateway(kc, gw('inf-1', 'n1'));
  const inf = gatewayInformer(kc, { labelSelector: 'app.kubernetes.io/managed-by=corvid', initialBackoffMs: 100, maxBackoffMs: 1000 });
  const events: InformerEvent<Gateway>[] = [];
  const errors: unknown[] = [];
  inf.onChange((e) => events.push(e));
  inf.onError((e) => errors.push(e));
  try {
    await inf.start();
    assert.ok(inf.get('inf-1'));

    // Compaction: changes while the watch is down (restart) are older than the compacted revision -> 410 -> relist.
    await k.restartApiServer();
    // While it was down nothing could change; now change, then compact so a re-watch from an old rv gets 410.
    await applyGateway(kc, gw('inf-1', 'n2'));
    await applyGateway(kc, gw('inf-2', 'n3'));
    await waitFor('informer sees inf-2 after restart', () => inf.get('inf-2'), 20_000);
    assert.equal(inf.get('inf-1')?.spec.endpoints?.[0].nodeName, 'n2');

    // 410 Gone: while the informer is not watching, inf-1 changes, inf-2 goes and etcd is compacted past the
    // informer's resourceVersion. Resuming from it gets 410; the relist must surface both changes as events.
    await inf.stop();
    await applyGateway(kc, gw('inf-1', 'n4'));
    await deleteGateway(kc, 'inf-2', {});
    await k.compactEtcd();
    events.length = 0;
    await inf.start();
    await waitFor('informer sees the update and delete after compaction', () => inf.get('inf-1')?.spec.endpoints?.[0].nodeName === 'n4' && inf.get('inf-2') === undefined, 20_000);
    assert.ok(inf.stats.gone >= 1, `expected a 410 relist: ${JSON.stringify(inf.stats)}`);
    assert.ok(events.some((e) => e.type === 'delete' && e.object.metadata.name === 'inf-2'));
    assert.ok(events.some((e) => e.type === 'update' && e.object.metadata.name === 'inf-1'));
    await applyGateway(kc, gw('inf-1', 'n5'));
    await waitFor('informer watches again after the relist', () => inf.get('inf-1')?.spec.endpoints?.[0].nodeName === 'n5', 5_000);
  } finally {
    await inf.stop();
    await deleteGateway(kc, 'inf-1', {}).catch(() => undefined);
  }
});

test('leader election: one leader; a stopped leader releases and the standby takes over', { skip: cp.skip }, async () => {
  const kc = cp.get().kubeConfig;
  await ensureNamespace(kc, 'corvid-le');
  const timing = { leaseDurationMs: 1500, renewDeadlineMs: 1000, retryPeriodMs: 200 };
  const a = new LeaderElector(kc, { namespace: 'corvid-le', identity: 'a', ...timing });
  const b = new LeaderElector(kc, { namespace: 'corvid-le', identity: 'b', ...timing });
  try {
    a.start();
    await waitFor('a leads', () => a.isLeader(), 5000);
    b.start();
    await sleep(1000);
    assert.equal(b.isLeader(), false);
    assert.equal(b.leader(), 'a');
    const t0 = Date.now();
    await a.stop();
    assert.equal(a.isLeader(), false);
    await waitFor('b leads', () => b.isLeader(), 5000);
    const took = Date.now() - t0;
    assert.ok(took < 1500, `takeover after release took ${took} ms`);
    // A crashed leader (no release): the standby waits for leaseDuration.
    await b.stop({ release: false });
    const c = new LeaderElector(kc, { namespace: 'corvid-le', identity: 'c', ...timing });
    const t1 = Date.now();
    c.start();
    await waitFor('c leads', () => c.isLeader(), 5000);
    const tookC = Date.now() - t1;
    assert.ok(tookC >= 1400, `c took over after ${tookC} ms, before the lease expired`);
    await c.stop();
  } finally {
    await a.stop();
    await b.stop();
  }
});

test('nodes, heartbeat Leases and Events read back as wire JSON', { skip: cp.skip }, async () => {
  const kc = cp.get().kubeConfig;
  await ensureNamespace(kc, 'corvid-hb');
  const renew = new Date();
  await writeHeartbeat(kc, 'corvid-hb', 'edge-9', { renewTime: renew, leaseDurationSeconds: 3, tunnels: { b: { up: true, since: '2026-01-01T00:00:00Z' } } });
  const hbs = await listHeartbeatLeases(kc, 'corvid-hb');
  const hb = hbs.find((h) => h.node === 'edge-9');
  assert.ok(hb);
  assert.equal(typeof hb.renewTime, 'string');
  assert.equal(Date.parse(hb.renewTime!), renew.getTime());
  assert.equal(hb.leaseDurationSeconds, 3);
  assert.deepEqual(hb.tunnels, { b: { up: true, since: '2026-01-01T00:00:00Z' } });

  const nodes = await listNodes(kc);
  assert.ok(Array.isArray(nodes.items));

  const errs: unknown[] = [];
  const rec = eventRecorder(kc, { instance: 'test', onError: (e) => errs.push(e) });
  await rec.record({ regarding: { apiVersion: 'raven.openyurt.io/v1beta1', kind: 'Gateway', name: 'gw-x' }, type: 'Normal', reason: 'Elected', action: 'Elect', note: 'n1 elected' });
  assert.deepEqual(errs, []);
  const evs = await listEvents(kc);
  assert.ok(evs.some((e) => e.reason === 'Elected' && e.regarding?.name === 'gw-x' && e.reportingController === 'corvid.dev/sync'));
  assert.equal(isTransient(new Error('ECONNRESET')), true);
});

test('node informer: caches Nodes without managedFields or the fields the planner does not read, on list and on watch', { skip: cp.skip }, async () => {
  const kc = cp.get().kubeConfig;
  const name = 'ka-trim-1';
  const manager = 'corvid-test-kubelet';
  const apply = (path: string, body: object): Promise<NodeJson> =>
    kubeRequest<NodeJson>(kc, { method: 'PATCH', path, query: { fieldManager: manager, force: true }, body, contentType: CONTENT_TYPE.apply });
  const node = (labels: Record<string, string>): object => ({
    apiVersion: 'v1',
    kind: 'Node',
    metadata: { name, labels, annotations: { 'corvid.dev/public-ip': '203.0.113.9', 'example.com/other': 'x' } },
    spec: { podCIDR: '10.99.0.0/24', podCIDRs: ['10.99.0.0/24'], taints: [{ key: 'example.com/t', effect: 'NoSchedule' }], providerID: 'test://ka-trim-1' },
  });
  const status = {
    apiVersion: 'v1',
    kind: 'Node',
    metadata: { name },
    status: {
      conditions: [
        { type: 'MemoryPressure', status: 'False', reason: 'KubeletHasSufficientMemory', message: 'kubelet has sufficient memory available', lastHeartbeatTime: '2026-11-20T10:00:00Z', lastTransitionTime: '2026-11-01T09:00:00Z' },
        { type: 'Ready', status: 'True', reason: 'KubeletReady', message: 'kubelet is posting ready status', lastHeartbeatTime: '2026-11-20T10:00:00Z', lastTransitionTime: '2026-11-01T09:00:00Z' },
      ],
      addresses: [{ type: 'InternalIP', address: '10.0.99.1' }, { type: 'Hostname', address: name }],
      capacity: { cpu: '2', memory: '4Gi', pods: '110' },
      allocatable: { cpu: '2', memory: '4Gi', pods: '110' },
      images: [{ names: ['registry.example/pause:3.9'], sizeBytes: 300000 }],
      nodeInfo: { machineID: 'm', systemUUID: 's', bootID: 'b', kernelVersion: '6.1', osImage: 'x', containerRuntimeVersion: 'containerd://1.7', kubeletVersion: 'v1.20.2', kubeProxyVersion: 'v1.20.2', operatingSystem: 'linux', architecture: 'amd64' },
    },
  };
  await apply(`${NODES_PATH}/${name}`, node({ 'topology.corvid.dev/pool': 'p1' }));
  const stored = await apply(`${NODES_PATH}/${name}/status`, status);
  const managers = (stored.metadata?.managedFields as { manager: string }[] | undefined)?.map((m) => m.manager) ?? [];
  assert.ok(managers.includes(manager), `the API server kept managedFields (managers: ${managers.join(', ')})`);
  assert.ok(Array.isArray(stored.status?.images), 'the status carries images');

  const informer = nodeInformer(kc);
  const seen: NodeJson[] = [];
  informer.onChange((e) => e.object.metadata?.name === name && seen.push(e.object));
  try {
    await informer.start();
    const check = (cached: NodeJson | undefined, live: NodeJson, when: string): void => {
      assert.ok(cached, `${when}: cached`);
      assert.equal(cached.metadata?.managedFields, undefined, `${when}: no managedFields`);
      assert.equal(cached.metadata?.resourceVersion, live.metadata?.resourceVersion, `${when}: resourceVersion kept`);
      for (const k of ['images', 'nodeInfo', 'capacity', 'allocatable']) assert.equal(cached.status?.[k], undefined, `${when}: no status.${k}`);
      assert.equal(cached.spec?.taints, undefined, `${when}: no spec.taints`);
      assert.deepEqual(cached.status?.conditions?.map((c) => c.type), ['Ready'], `${when}: only the Ready condition`);
      assert.deepEqual(inventoryFromNode(cached), inventoryFromNode(live), `${when}: the planner sees the same Node`);
    };
    // From the list.
    check(informer.get(name), stored, 'listed');

    // From a watch event (MODIFIED).
    const changed = await apply(`${NODES_PATH}/${name}`, node({ 'topology.corvid.dev/pool': 'p2' }));
    assert.ok(changed.metadata?.managedFields, 'the change carries managedFields on the wire');
    const watched = await waitFor('the label change in the cache', () => informer.get(name)?.metadata?.labels?.['topology.corvid.dev/pool'] === 'p2' && informer.get(name));
    check(watched, changed, 'watched');
    assert.equal(inventoryFromNode(watched).labels['topology.corvid.dev/pool'], 'p2');
    assert.ok(seen.length >= 1);
    for (const o of seen) assert.equal(o.metadata?.managedFields, undefined, 'callbacks get the trimmed object too');
  } finally {
    await informer.stop();
    await kubeRequest(kc, { method: 'DELETE', path: `${NODES_PATH}/${name}` }).catch(() => undefined);
  }
});
