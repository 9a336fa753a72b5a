// The sync against a real kube-apiserver with live health inputs (Nodes, heartbeat Leases written like agents do):
// 4 a hand-edited Gateway is restored (with an Event);
// 5 a node going NotReady, its heartbeat expiring, or its agent releasing the Lease on a clean stop, moves the
//   active endpoint; the time from the change to the written Gateway is measured and printed;
// 7 an idle period (10 s here, five heartbeat timeouts, to keep the suite fast) makes zero writes although heartbeats
//   keep renewing;
// 8 a candidate without a heartbeat Lease is never elected (the sync's default), and the Topology's Ready says why.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createNode, setNodeReady, useControlPlane } from '../support/controlplane.ts';
import {
  ensureNamespace,
  installCorvidCrds,
  resourceVersions,
  sleep,
  startHeartbeats,
  startTestSync,
  topologyYaml,
  waitFor,
  type TestSync,
} from './sync-fixtures.ts';
import { CONTENT_TYPE, kubeRequest } from '../../src/adapters/kube/client.ts';
import { gatewayInformer, getGateway } from '../../src/adapters/kube/gateways.ts';
import { Heartbeat } from '../../src/adapters/kube/heartbeat.ts';
import { listEvents } from '../../src/adapters/kube/events.ts';
import { getTopology } from '../../src/adapters/kube/topologies.ts';
import type { Gateway } from '../../src/gateway/types.ts';

// Registered before useControlPlane() so it runs before the control plane is stopped.
after(async () => {
  await sync?.handle.stop();
  await beats?.stopAll();
  if (dir) await rm(dir, { recursive: true, force: true });
});
const cp = useControlPlane();
const NS = 'corvid-system';
const POOLS = [
  { name: 'pool-a', label: 'a', gateways: ['a1', 'a2'] },
  { name: 'pool-b', label: 'b', gateways: ['b1'] },
];

let dir: string | undefined;
let sync: TestSync | undefined;
let beats: ReturnType<typeof startHeartbeats> | undefined;
let setupDone: Promise<void> | undefined;

// Top-level before() hooks do not wait for useControlPlane's: set up lazily from the first test.
function setup(): Promise<void> {
  setupDone ??= (async () => {
    const kc = cp.get().kubeConfig;
    await installCorvidCrds(kc);
    await ensureNamespace(kc, NS);
    for (const [name, pool, ip] of [['a1', 'a', '10.0.1.1'], ['a2', 'a', '10.0.1.2'], ['b1', 'b', '10.0.2.1']] as const) {
      await createNode(kc, { name, labels: { pool }, internalIP: ip, podCIDRs: [`10.244.${ip.split('.')[3]}${ip.split('.')[2]}.0/24`], ready: true });
    }
    beats = startHeartbeats(kc, NS, ['a1', 'a2', 'b1'], 500);
    await beats.start();
    dir = await mkdtemp(join(tmpdir(), 'corvid-sync-health-'));
    await writeFile(join(dir, 'topology.yaml'), topologyYaml({ name: 'health', pools: POOLS, heartbeatTimeout: '2s', minHealthy: '0s' }));
    // The sync's default rule: every candidate here has a live heartbeat, and one without is never elected (test 8).
    sync = await startTestSync(kc, { source: { kind: 'file', path: join(dir, 'topology.yaml'), intervalMs: 60_000 }, electWithoutHeartbeat: false });
    await waitFor('first Gateways', async () => (await getGateway(kc, 'pool-a'))?.status?.activeEndpoints?.[0]?.nodeName === 'a1');
  })();
  return setupDone;
}

function active(g: Gateway | undefined): string[] {
  return (g?.status?.activeEndpoints ?? []).map((e) => e.nodeName);
}

test('4: a hand-edited Gateway (spec, a foreign field, status) is restored, with a DriftRepaired Event', { skip: cp.skip }, async () => {
  await setup();
  const kc = cp.get().kubeConfig;
  const before = (await getGateway(kc, 'pool-a'))!;
  // As `kubectl edit` would: an update under another manager that drops an endpoint and adds exposeType.
  await kubeRequest(kc, {
    method: 'PATCH',
    path: '/apis/raven.openyurt.io/v1beta1/gateways/pool-a',
    query: { fieldManager: 'kubectl-edit' },
    contentType: CONTENT_TYPE.mergePatch,
    body: { spec: { endpoints: [before.spec.endpoints![1]], exposeType: 'PublicIP' }, metadata: { annotations: { 'corvid.dev/revision': 'hand-made' } } },
  });
  await waitFor('spec restored', async () => {
    const g = await getGateway(kc, 'pool-a');
    return (
      JSON.stringify(g?.spec.endpoints) === JSON.stringify(before.spec.endpoints) &&
      g?.spec.exposeType === undefined &&
      g?.metadata.annotations?.['corvid.dev/revision'] === before.metadata.annotations?.['corvid.dev/revision']
    );
  });
  await kubeRequest(kc, {
    method: 'PATCH',
    path: '/apis/raven.openyurt.io/v1beta1/gateways/pool-a/status',
    query: { fieldManager: 'kubectl-edit' },
    contentType: CONTENT_TYPE.mergePatch,
    body: { status: { activeEndpoints: [{ nodeName: 'a2', type: 'tunnel', port: 4500 }] } },
  });
  await waitFor('status restored', async () => active(await getGateway(kc, 'pool-a')).join() === 'a1');
  await waitFor('DriftRepaired event', async () => (await listEvents(kc, 'kube-system')).some((e) => e.reason === 'DriftRepaired' && e.regarding?.name === 'pool-a'));
});

test('5: NotReady and an expired heartbeat move the active endpoint within one reconcile', { skip: cp.skip }, async (t) => {
  await setup();
  const kc = cp.get().kubeConfig;
  const inf = gatewayInformer(kc);
  const changes: { at: number; active: string[] }[] = [];
  inf.onChange((e) => {
    if (e.object.metadata.name === 'pool-a') changes.push({ at: Date.now(), active: active(e.object) });
  });
  await inf.start();
  try {
    assert.deepEqual(active(inf.get('pool-a')), ['a1']);
    const firstActive = (who: string, after: number) => changes.find((c) => c.at >= after && c.active.join() === who);

    // (a) a1 goes NotReady.
    const t0 = Date.now();
    await setNodeReady(kc, 'a1', false);
    const moved = await waitFor('a2 active after a1 NotReady', () => firstActive('a2', t0), 10_000, 5);
    const notReadyMs = moved.at - t0;

    // a1 comes back; the election is sticky, so a2 stays.
    await setNodeReady(kc, 'a1', true);
    await sleep(500);
    assert.deepEqual(active(await getGateway(kc, 'pool-a')), ['a2']);

    // (b) a2's agent stops renewing: expiry at renewTime + heartbeatTimeout (2 s); no other event happens.
    const lastRenew = await beats!.stop('a2');
    const expiry = lastRenew.getTime() + 2000;
    const moved2 = await waitFor('a1 active after a2 heartbeat expiry', () => firstActive('a1', expiry - 1000), 10_000, 5);
    const expiryMs = moved2.at - expiry;
    assert.ok(moved2.at >= expiry, 'failover must not happen before the heartbeat expired');
    const line = `failover: NotReady -> Gateway written in ${notReadyMs} ms; heartbeat expiry -> Gateway written in ${expiryMs} ms after the expiry instant`;
    t.diagnostic(line);
    console.log(line);
    assert.ok(notReadyMs < 2000, line);
    assert.ok(expiryMs < 1000, line);
    // Metrics and Events are reported once the whole reconcile is through (the test saw the first write).
    await waitFor('failover metric', async () => /corvid_failover_total\{pool="pool-a"\} 2\b/.test(await (await fetch(`http://${sync!.handle.addresses.metrics}/metrics`)).text()), 5000);
    await waitFor('Failover event', async () => (await listEvents(kc, 'kube-system')).some((e) => e.reason === 'Failover' && e.regarding?.name === 'pool-a'), 5000);
    await beats!.resume('a2');

    // (c) A pool whose only candidate's heartbeat expires has no active gateway; its first renewal elects it again
    // at once (a renewal after an expiry is an event that counts, unlike routine renewals).
    await beats!.stop('b1');
    await waitFor('pool-b without a gateway', async () => active(await getGateway(kc, 'pool-b')).length === 0, 6000, 20);
    const t2 = Date.now();
    await beats!.resume('b1');
    await waitFor('b1 elected again', async () => active(await getGateway(kc, 'pool-b')).join() === 'b1', 3000, 10);
    const recoverMs = Date.now() - t2;
    t.diagnostic(`heartbeat back -> Gateway written in ${recoverMs} ms`);
    console.log(`heartbeat back -> Gateway written in ${recoverMs} ms`);
    assert.ok(recoverMs < 1000, `recovery took ${recoverMs} ms`);

    // (d) The active a1's agent stops cleanly (the real heartbeat writer, as on SIGTERM) and releases its Lease:
    // the sync hands pool-a over at once, long before the 2 s timeout would have run out.
    await beats!.stop('a1');
    const hb = new Heartbeat({ kc, nodeName: 'a1', namespace: NS, renewIntervalMs: 500, leaseDurationSeconds: 2 });
    hb.setEnabled(true);
    hb.start();
    await waitFor('a1 renewed by the agent\'s heartbeat', () => hb.lastRenew !== undefined, 5000, 10);
    const t3 = Date.now();
    const rel = await hb.release();
    assert.deepEqual(rel, { released: true });
    const moved3 = await waitFor('a2 active after a1 released its Lease', () => firstActive('a2', t3), 5000, 5);
    const releaseMs = moved3.at - t3;
    t.diagnostic(`heartbeat released -> Gateway written in ${releaseMs} ms`);
    console.log(`heartbeat released -> Gateway written in ${releaseMs} ms`);
    assert.ok(moved3.at < hb.lastRenew!.getTime() + 2000, `handed over ${releaseMs} ms after the release: not before the expiry`);
    await waitFor('Failover event naming the release', async () => (await listEvents(kc, 'kube-system')).some((e) => e.reason === 'Failover' && e.regarding?.name === 'pool-a' && /a1 lost: heartbeat released/.test(e.note ?? '')), 5000);
    await beats!.resume('a1');
  } finally {
    await inf.stop();
  }
});

test('7: 10 s idle (heartbeats renewing, Nodes unchanged) makes zero writes', { skip: cp.skip }, async (t) => {
  await setup();
  const kc = cp.get().kubeConfig;
  const s = sync!;
  // Let the last test's changes settle (a2's heartbeat is fresh again).
  await sleep(1500);
  const before = await resourceVersions(kc);
  let reconciles = 0;
  let writes = 0;
  const off = s.handle.onReconcile((r) => {
    reconciles++;
    writes += r.writes;
  });
  await sleep(10_000);
  off();
  const after = await resourceVersions(kc);
  assert.deepEqual(after, before);
  assert.equal(writes, 0);
  const line = `idle 10 s: ${reconciles} reconciles (health timer), ${writes} writes, ${Object.keys(before).length} objects unchanged`;
  t.diagnostic(line);
  console.log(line);
  assert.ok(reconciles > 0, 'the heartbeat-expiry timer should have woken the sync');
});

test('8: a candidate whose agent has never written a heartbeat is never elected; the Topology says why', { skip: cp.skip }, async () => {
  await setup();
  const kc = cp.get().kubeConfig;
  assert.deepEqual(active(await getGateway(kc, 'pool-b')), ['b1']);
  // b1's agent is gone and its Lease with it (as on a node where no agent ever ran): Ready alone elects nobody.
  await beats!.stop('b1');
  await kubeRequest(kc, { method: 'DELETE', path: `/apis/coordination.k8s.io/v1/namespaces/${NS}/leases/b1` });
  try {
    await waitFor('pool-b without an active endpoint', async () => active(await getGateway(kc, 'pool-b')).length === 0);
    // The Topology's status follows the Gateways' write.
    const readyMessage = async () => (await getTopology(kc, 'health'))?.status?.conditions?.find((c) => c.type === 'Ready')?.message ?? '';
    await waitFor('the Topology says why', async () => /no healthy gateway candidate/.test(await readyMessage())).catch(() => undefined);
    assert.match(await readyMessage(), /pool pool-b has no healthy gateway candidate \(b1: no heartbeat\)/);
    assert.ok((await listEvents(kc, 'kube-system')).some((e) => e.regarding?.name === 'pool-b' && /lost: no heartbeat/.test(e.note ?? '')), 'an Event says why b1 lost the role');
  } finally {
    await beats!.resume('b1');
  }
  // The agent shows itself: elected again.
  await waitFor('b1 elected again', async () => active(await getGateway(kc, 'pool-b')).join() === 'b1');
});
