// Pod subnets from Calico IPAM against a real kube-apiserver with Calico's own BlockAffinity CRDs
// (test/fixtures/calico/, both API groups): auto-detection (also of a CRD created after the sync started, and of one
// deleted), a new block reaching its Gateway's status.nodes within seconds with one write to that Gateway only,
// pending/deleted/removed affinities leaving, the --pod-subnets flag over the topology, and `corvid status`.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { copyFile, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createNode, installCrds, useControlPlane } from '../support/controlplane.ts';
import { ensureNamespace, installCorvidCrds, sleep, startTestSync, topologyYaml, waitFor, type TestSync } from './sync-fixtures.ts';
import type { KubeConfig } from '@kubernetes/client-node';
import { CONTENT_TYPE, kubeRequest, statusCode } from '../../src/adapters/kube/client.ts';
import { gatewayInformer, getGateway } from '../../src/adapters/kube/gateways.ts';
import { getTopology } from '../../src/adapters/kube/topologies.ts';
import { main } from '../../src/cli/main.ts';
import { listEvents } from '../../src/adapters/kube/events.ts';
import type { SyncOptions } from '../../src/sync/index.ts';
import { CalicoWatch } from '../../src/sync/calico.ts';
import { jsonLogger } from '../../src/shell/log.ts';

const cp = useControlPlane();
const FIXTURES = new URL('../fixtures/calico/', import.meta.url).pathname;
const CRD = {
  v1: { file: 'crd.projectcalico.org_blockaffinities.yaml', name: 'blockaffinities.crd.projectcalico.org', gv: 'crd.projectcalico.org/v1' },
  v3: { file: 'projectcalico.org_blockaffinities.yaml', name: 'blockaffinities.projectcalico.org', gv: 'projectcalico.org/v3' },
} as const;
type Group = keyof typeof CRD;

let dir = '';
let sync: TestSync | undefined;
after(async () => {
  await sync?.handle.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

async function installCalicoCrd(kc: KubeConfig, g: Group): Promise<void> {
  const only = await mkdtemp(join(tmpdir(), 'corvid-calico-crd-'));
  try {
    await copyFile(join(FIXTURES, CRD[g].file), join(only, CRD[g].file));
    await installCrds(kc, only);
  } finally {
    await rm(only, { recursive: true, force: true });
  }
}

async function deleteCalicoCrd(kc: KubeConfig, g: Group): Promise<void> {
  const path = `/apis/apiextensions.k8s.io/v1/customresourcedefinitions/${CRD[g].name}`;
  await kubeRequest(kc, { method: 'DELETE', path });
  await waitFor(`CRD ${CRD[g].name} gone`, async () => kubeRequest(kc, { method: 'GET', path }).then(() => false, (e) => statusCode(e) === 404), 30_000);
}

function affinityName(node: string, cidr: string): string {
  return `${node}-${cidr.replace(/[.:/]/g, '-')}`.replace(/-+$/, '');
}

/** A BlockAffinity as Calico writes it (v1: deleted is a string; v3: a boolean). */
async function putAffinity(kc: KubeConfig, g: Group, node: string, cidr: string, o: { state?: string; deleted?: boolean } = {}): Promise<void> {
  const name = affinityName(node, cidr);
  const deleted = o.deleted ?? false;
  await kubeRequest(kc, {
    method: 'PATCH',
    path: `/apis/${CRD[g].gv}/blockaffinities/${name}`,
    query: { fieldManager: 'calico-test', force: true },
    contentType: CONTENT_TYPE.apply,
    body: {
      apiVersion: CRD[g].gv,
      kind: 'BlockAffinity',
      metadata: { name },
      spec: { cidr, node, state: o.state ?? 'confirmed', type: 'host', deleted: g === 'v1' ? String(deleted) : deleted },
    },
  });
}

async function deleteAffinity(kc: KubeConfig, g: Group, node: string, cidr: string): Promise<void> {
  await kubeRequest(kc, { method: 'DELETE', path: `/apis/${CRD[g].gv}/blockaffinities/${affinityName(node, cidr)}` });
}

/** node -> subnets of one Gateway's status. */
async function subnetsOf(kc: KubeConfig, gateway: string): Promise<Record<string, string[]>> {
  const g = await getGateway(kc, gateway);
  return Object.fromEntries((g?.status?.nodes ?? []).map((n) => [n.nodeName, n.subnets ?? []]));
}

async function waitSubnets(kc: KubeConfig, gateway: string, want: Record<string, string[]>, timeoutMs = 10_000): Promise<void> {
  let last: Record<string, string[]> = {};
  try {
    await waitFor(`${gateway} subnets ${JSON.stringify(want)}`, async () => {
      last = await subnetsOf(kc, gateway);
      return JSON.stringify(last) === JSON.stringify(want);
    }, timeoutMs);
  } catch (e) {
    assert.fail(`${(e as Error).message}; last seen ${JSON.stringify(last)}`);
  }
}

async function podSubnetStatus(kc: KubeConfig): Promise<{ source: string; reason: string } | undefined> {
  return (await getTopology(kc, 'calico'))?.status?.podSubnets;
}

async function writeTopology(extra = ''): Promise<string> {
  const text = topologyYaml({ name: 'calico', pools: [{ name: 'ca', label: 'ca', gateways: ['c-a1'] }, { name: 'cb', label: 'cb', gateways: ['c-b1'] }] });
  const file = join(dir, 'topology.yaml');
  await writeFile(file, extra === '' ? text : text.replace('spec:\n', `spec:\n${extra}`));
  return file;
}

async function startCalicoSync(kc: KubeConfig, file: string, o: Partial<SyncOptions> = {}): Promise<TestSync> {
  await sync?.handle.stop();
  sync = await startTestSync(kc, { source: { kind: 'file', path: file, intervalMs: 200 }, calicoRediscoverMs: 300, ...o });
  return sync;
}

const PODCIDRS = { ca: { 'c-a1': ['10.244.1.0/24'], 'c-a2': ['10.244.2.0/24'] }, cb: { 'c-b1': ['10.244.3.0/24'] } };

test('auto: podCIDR without Calico; a BlockAffinity CRD created later is found, and its blocks take over once there are any', { skip: cp.skip }, async () => {
  const kc = cp.get().kubeConfig;
  await installCorvidCrds(kc);
  await ensureNamespace(kc, 'corvid-system');
  await createNode(kc, { name: 'c-a1', labels: { pool: 'ca' }, internalIP: '10.0.1.1', podCIDRs: ['10.244.1.0/24'] });
  await createNode(kc, { name: 'c-a2', labels: { pool: 'ca' }, internalIP: '10.0.1.2', podCIDRs: ['10.244.2.0/24'] });
  await createNode(kc, { name: 'c-b1', labels: { pool: 'cb' }, internalIP: '10.0.2.1', podCIDRs: ['10.244.3.0/24'] });
  dir = await mkdtemp(join(tmpdir(), 'corvid-calico-'));
  const s = await startCalicoSync(kc, await writeTopology());

  await waitSubnets(kc, 'ca', PODCIDRS.ca);
  await waitSubnets(kc, 'cb', PODCIDRS.cb);
  await waitFor('status says podCIDR', async () => (await podSubnetStatus(kc))?.source === 'podCIDR');
  assert.match((await podSubnetStatus(kc))!.reason, /serves no Calico BlockAffinity resource/);

  // Calico installed after the sync started: found by the periodic discovery; no BlockAffinity yet, still podCIDR.
  await installCalicoCrd(kc, 'v1');
  await waitFor('BlockAffinity informer', () => 'blockaffinities.crd.projectcalico.org/v1' in s.handle.informerStats(), 10_000);
  await waitFor('status: served but empty', async () => /no BlockAffinities/.test((await podSubnetStatus(kc))?.reason ?? ''), 10_000);
  await waitSubnets(kc, 'ca', PODCIDRS.ca);

  await putAffinity(kc, 'v1', 'c-a1', '192.168.10.0/26');
  await putAffinity(kc, 'v1', 'c-a2', '192.168.10.64/26');
  await putAffinity(kc, 'v1', 'c-b1', '192.168.20.0/26');
  await putAffinity(kc, 'v1', 'c-b1', '192.168.20.64/26');
  await waitSubnets(kc, 'ca', { 'c-a1': ['192.168.10.0/26'], 'c-a2': ['192.168.10.64/26'] });
  await waitSubnets(kc, 'cb', { 'c-b1': ['192.168.20.0/25'] });
  const st = await waitFor('status says calico', async () => {
    const p = await podSubnetStatus(kc);
    return p?.source === 'calico' ? p : undefined;
  });
  assert.equal(st.reason, 'auto: Calico BlockAffinities found (crd.projectcalico.org/v1)');
  assert.ok(s.logs.some((l) => l.msg === 'pod subnet source' && l.source === 'calico'), 'the change is logged');

  // corvid status: the source in force and why, in JSON (a new field) and in the table.
  const out: string[] = [];
  const err: string[] = [];
  const io = { stdout: { write: (x: string) => out.push(x) }, stderr: { write: (x: string) => err.push(x) }, env: { KUBECONFIG: cp.get().kubeconfigPath }, cwd: process.cwd() };
  assert.equal(await main(['status', '-o', 'json'], io), 0, err.join(''));
  const report = JSON.parse(out.join(''));
  assert.deepEqual(report.topologies.find((t: { name: string }) => t.name === 'calico').podSubnets, st);
  assert.ok(Array.isArray(report.pools), 'the existing shape is kept');
  out.length = 0;
  assert.equal(await main(['status'], io), 0, err.join(''));
  assert.match(out.join(''), /Topology calico: pod subnets from calico \(auto: Calico BlockAffinities found/);

  // corvid diff against the live cluster plans as the sync did (Calico's blocks read live): nothing to change.
  out.length = 0;
  // As the sync under test (startTestSync elects without heartbeats: no agents run here).
  const diffCode = await main(['diff', '-f', join(dir, 'topology.yaml'), '--elect-without-heartbeat'], io);
  assert.equal(diffCode, 0, `${out.join('')}${err.join('')}`);
});

test('a new block reaches its Gateway within seconds, with exactly one write to that Gateway and none to the other', { skip: cp.skip }, async () => {
  const kc = cp.get().kubeConfig;
  const watch = gatewayInformer(kc);
  const updates: Record<string, number> = {};
  watch.onChange((e) => {
    if (e.type === 'update') updates[e.object.metadata.name] = (updates[e.object.metadata.name] ?? 0) + 1;
  });
  await watch.start();
  try {
    await sleep(500); // nothing else in flight
    for (const k of Object.keys(updates)) delete updates[k];
    const t0 = Date.now();
    await putAffinity(kc, 'v1', 'c-a1', '192.168.11.0/26');
    await waitSubnets(kc, 'ca', { 'c-a1': ['192.168.10.0/26', '192.168.11.0/26'], 'c-a2': ['192.168.10.64/26'] }, 5000);
    const tookMs = Date.now() - t0;
    await sleep(1500); // echoes of our own write, the status write, a second debounced pass
    assert.deepEqual(updates, { ca: 1 }, `Gateway writes after one new block: ${JSON.stringify(updates)}`);
    const line = `calico: a new BlockAffinity reached Gateway status ${tookMs} ms after it was created (1 Gateway write)`;
    console.log(line);
    assert.ok(tookMs < 5000);
  } finally {
    await watch.stop();
  }
});

test('pending, deleted (v1 string, v3 boolean) and removed affinities leave; both API groups at once', { skip: cp.skip }, async () => {
  const kc = cp.get().kubeConfig;
  await putAffinity(kc, 'v1', 'c-a1', '192.168.11.0/26', { state: 'pending' });
  await waitSubnets(kc, 'ca', { 'c-a1': ['192.168.10.0/26'], 'c-a2': ['192.168.10.64/26'] });
  await putAffinity(kc, 'v1', 'c-a2', '192.168.10.64/26', { deleted: true });
  await waitSubnets(kc, 'ca', { 'c-a1': ['192.168.10.0/26'], 'c-a2': [] });

  // The native v3 CRDs next to v1 (a cluster migrating): both are read.
  await installCalicoCrd(kc, 'v3');
  await waitFor('v3 informer', () => 'blockaffinities.projectcalico.org/v3' in sync!.handle.informerStats(), 10_000);
  await putAffinity(kc, 'v3', 'c-b1', 'fd00:20::/122');
  await waitSubnets(kc, 'cb', { 'c-b1': ['192.168.20.0/25', 'fd00:20::/122'] });
  await putAffinity(kc, 'v3', 'c-b1', 'fd00:20::/122', { deleted: true });
  await waitSubnets(kc, 'cb', { 'c-b1': ['192.168.20.0/25'] });
  await deleteAffinity(kc, 'v1', 'c-b1', '192.168.20.64/26');
  await waitSubnets(kc, 'cb', { 'c-b1': ['192.168.20.0/26'] });
  // Two nodes claiming one block: neither gets it.
  await putAffinity(kc, 'v3', 'c-a1', '192.168.20.0/26');
  await waitSubnets(kc, 'cb', { 'c-b1': [] });
  await deleteAffinity(kc, 'v3', 'c-a1', '192.168.20.0/26');
  await waitSubnets(kc, 'cb', { 'c-b1': ['192.168.20.0/26'] });
});

test('bad Calico objects (malformed, claimed by two nodes, of an unknown node) reach no route; status, an Event and corvid status name them', { skip: cp.skip }, async () => {
  const kc = cp.get().kubeConfig;
  await putAffinity(kc, 'v1', 'c-a1', '192.168.40.7/26'); // host bits set: not a block
  await putAffinity(kc, 'v1', 'c-a2', '192.168.20.0/26'); // c-b1's block, claimed again
  await putAffinity(kc, 'v1', 'ghost', '192.168.30.0/26'); // no such node
  const problems = await waitFor('three problems in status.podSubnets', async () => {
    const p = (await podSubnetStatus(kc)) as { problems?: string[] } | undefined;
    return p?.problems?.length === 3 ? p.problems : undefined;
  }, 10_000);
  assert.ok(problems.some((l) => /192\.168\.40\.7\/26/.test(l)), problems.join('\n'));
  assert.ok(problems.some((l) => /c-a2/.test(l) && /c-b1/.test(l) && /192\.168\.20\.0\/26/.test(l)), problems.join('\n'));
  assert.ok(problems.some((l) => /ghost/.test(l)), problems.join('\n'));
  // No route to the wrong node: the claimed block leaves both nodes, the others reach nobody.
  await waitSubnets(kc, 'ca', { 'c-a1': ['192.168.10.0/26'], 'c-a2': [] });
  await waitSubnets(kc, 'cb', { 'c-b1': [] });

  // One Event per change of the list (the earlier test's two-node claim made one too).
  const event = await waitFor('a PodSubnetProblems Event on the Topology naming the three', async () =>
    (await listEvents(kc)).find((e) => e.reason === 'PodSubnetProblems' && e.regarding?.name === 'calico' && /^3 Calico IPAM objects left out of every route/.test(e.note ?? '')),
  10_000);
  assert.equal(event.type, 'Warning');

  const out: string[] = [];
  const err: string[] = [];
  const io = { stdout: { write: (x: string) => out.push(x) }, stderr: { write: (x: string) => err.push(x) }, env: { KUBECONFIG: cp.get().kubeconfigPath }, cwd: process.cwd() };
  assert.equal(await main(['status'], io), 0, err.join(''));
  assert.equal(out.join('').split('\n').filter((l) => l.startsWith('  left out: ')).length, 3, out.join(''));
  out.length = 0;
  assert.equal(await main(['status', '-o', 'json'], io), 0, err.join(''));
  assert.deepEqual(JSON.parse(out.join('')).topologies.find((t: { name: string }) => t.name === 'calico').podSubnets.problems, problems);

  // Mended: the problems leave status, and the blocks come back.
  for (const [node, cidr] of [['c-a1', '192.168.40.7/26'], ['c-a2', '192.168.20.0/26'], ['ghost', '192.168.30.0/26']] as const) await deleteAffinity(kc, 'v1', node, cidr);
  await waitSubnets(kc, 'cb', { 'c-b1': ['192.168.20.0/26'] });
  await waitFor('no problems in status.podSubnets', async () => ((await podSubnetStatus(kc)) as { problems?: string[] } | undefined)?.problems === undefined, 10_000);
});

test('--pod-subnets wins over the topology; podCIDR by flag turns the BlockAffinity watch off', { skip: cp.skip }, async () => {
  const kc = cp.get().kubeConfig;
  const calicoA = { 'c-a1': ['192.168.10.0/26'], 'c-a2': [] };

  let s = await startCalicoSync(kc, await writeTopology('  podSubnets: {source: podCIDR}\n'));
  await waitSubnets(kc, 'ca', PODCIDRS.ca);
  await waitFor('status: topology', async () => (await podSubnetStatus(kc))?.reason === 'spec.podSubnets.source: podCIDR in the topology');

  s = await startCalicoSync(kc, await writeTopology('  podSubnets: {source: podCIDR}\n'), { podSubnets: 'calico' });
  await waitSubnets(kc, 'ca', calicoA);
  await waitFor('status: flag', async () => (await podSubnetStatus(kc))?.reason === '--pod-subnets=calico (install-time override)');

  s = await startCalicoSync(kc, await writeTopology(), { podSubnets: 'podCIDR' });
  await waitSubnets(kc, 'ca', PODCIDRS.ca);
  assert.deepEqual(Object.keys(s.handle.informerStats()).filter((k) => k.startsWith('blockaffinities')), [], 'no BlockAffinity informer');

  s = await startCalicoSync(kc, await writeTopology(), { podSubnets: 'auto' });
  await waitSubnets(kc, 'ca', calicoA);
});

test('BlockAffinities served but not readable (403): treated as not served, once warned, and the start-up does not hang', { skip: cp.skip }, async () => {
  const user = cp.get().userKubeConfig(); // no grants at all; discovery is open to every authenticated user
  const logs: Record<string, unknown>[] = [];
  const logger = jsonLogger({ level: 'debug', write: (line) => void logs.push(JSON.parse(line) as Record<string, unknown>) });
  const changes: string[] = [];
  const w = new CalicoWatch({ kc: user, logger, onChange: (r) => changes.push(r), informerBackoff: { initialBackoffMs: 50, maxBackoffMs: 100 } });
  try {
    await w.start();
    assert.deepEqual(w.state(), { served: [], blockAffinities: [] });
    await w.rediscover();
    const warned = logs.filter((l) => /not readable \(403\)/.test(String(l.msg)));
    assert.deepEqual(warned.map((l) => l.groupVersion).sort(), ['crd.projectcalico.org/v1', 'projectcalico.org/v3'], 'one warning per group/version');
  } finally {
    await w.stop();
  }
});

test('Calico removed (CRDs deleted): its blocks go, podCIDRs come back, the sync keeps running', { skip: cp.skip }, async () => {
  const kc = cp.get().kubeConfig;
  await deleteCalicoCrd(kc, 'v1');
  await deleteCalicoCrd(kc, 'v3');
  await waitSubnets(kc, 'ca', PODCIDRS.ca);
  await waitFor('status: not served', async () => /serves no Calico/.test((await podSubnetStatus(kc))?.reason ?? ''));
  assert.ok(sync!.handle.ready(), 'still ready');
  assert.deepEqual(Object.keys(sync!.handle.informerStats()).filter((k) => k.startsWith('blockaffinities')), []);
  assert.ok(sync!.logs.some((l) => l.msg === 'Calico BlockAffinities no longer served; their blocks are dropped'));
});
