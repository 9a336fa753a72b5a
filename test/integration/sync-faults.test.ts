// 9: the sync survives an API server restart and an etcd compaction during a run, with no lost update.
// - Restart: a topology change made while kube-apiserver is down, and a Node change made right after it is back,
//   both end up in the Gateways.
// - Compaction: the sync is cut off the API server (a TCP proxy of the test's own), a Node changes, etcd is compacted
//   past every resourceVersion the sync has seen; when the connection comes back its watches get 410 Gone, relist,
//   and the change is applied.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createNode, setNodeReady, useControlPlane } from '../support/controlplane.ts';
import { cuttableProxy, ensureNamespace, installCorvidCrds, sleep, startTestSync, topologyYaml, waitFor, type CuttableProxy, type TestSync } from './sync-fixtures.ts';
import { getGateway } from '../../src/adapters/kube/gateways.ts';
import { getTopology } from '../../src/adapters/kube/topologies.ts';

let sync: TestSync | undefined;
let dir: string | undefined;
let proxy: CuttableProxy | undefined;
after(async () => {
  await sync?.handle.stop();
  await proxy?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});
const cp = useControlPlane();
const localOnly = cp.skip ?? (process.env.TEST_KUBECONFIG ? 'needs a local control plane, not TEST_KUBECONFIG' : undefined);

const active = async (name: string) => (await getGateway(cp.get().kubeConfig, name))?.status?.activeEndpoints?.map((e) => e.nodeName).join();

test('9: an API server restart and an etcd compaction are survived with no lost update', { skip: localOnly }, async (t) => {
  const k = cp.get();
  const kc = k.kubeConfig;
  await installCorvidCrds(kc);
  await ensureNamespace(kc, 'corvid-system');
  for (const [name, ip] of [['r1', '10.0.4.1'], ['r2', '10.0.4.2']] as const) {
    await createNode(kc, { name, labels: { pool: 'r' }, internalIP: ip, podCIDRs: [`10.244.4${ip.at(-1)}.0/24`], ready: true });
  }
  dir = await mkdtemp(join(tmpdir(), 'corvid-faults-'));
  const file = join(dir, 'topology.yaml');
  const v1 = topologyYaml({ name: 'faults', pools: [{ name: 'pool-r', label: 'r', gateways: ['r1', 'r2'] }] });
  await writeFile(file, v1);
  proxy = await cuttableProxy(kc);
  sync = await startTestSync(proxy.kubeConfig, { source: { kind: 'file', path: file, intervalMs: 600_000 } });
  await waitFor('first apply', async () => (await active('pool-r')) === 'r1');

  // Restart, with a topology change while the API server is down.
  const v2 = topologyYaml({ name: 'faults', pools: [{ name: 'pool-r', label: 'r', gateways: ['r2', 'r1'] }] });
  const restarting = k.restartApiServer();
  await sleep(300);
  await writeFile(file, v2);
  await restarting;
  await setNodeReady(kc, 'r1', false);
  const t0 = Date.now();
  await waitFor('both changes applied after the restart', async () => {
    const g = await getGateway(kc, 'pool-r');
    return g?.spec.endpoints?.[0]?.nodeName === 'r2' && (await active('pool-r')) === 'r2';
  }, 20_000);
  const restartMs = Date.now() - t0;
  await waitFor('status Ready again', async () => {
    const tp = await getTopology(kc, 'faults');
    return tp?.status?.conditions?.find((c) => c.type === 'Ready')?.status === 'True' && tp.status.lastAppliedRevision?.startsWith('sha256:');
  }, 10_000);

  // Compaction while the sync is cut off.
  const goneBefore = Object.values(sync.handle.informerStats()).reduce((n, s) => n + s.gone, 0);
  proxy.cut();
  await setNodeReady(kc, 'r1', true);
  await setNodeReady(kc, 'r2', false);
  await k.compactEtcd();
  const t1 = Date.now();
  proxy.resume();
  await waitFor('change made during the cut applied', async () => (await active('pool-r')) === 'r1', 20_000);
  const compactMs = Date.now() - t1;
  const stats = sync.handle.informerStats();
  const goneAfter = Object.values(stats).reduce((n, s) => n + s.gone, 0);
  assert.ok(goneAfter > goneBefore, `expected 410 relists: ${JSON.stringify(stats)}`);
  const line = `faults: restart -> caught up ${restartMs} ms after the API server was back; compaction -> caught up ${compactMs} ms after reconnect (${goneAfter - goneBefore} watches got 410 and relisted)`;
  t.diagnostic(line);
  console.log(line);
});
