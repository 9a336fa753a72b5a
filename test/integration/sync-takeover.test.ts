// Who owns a Gateway when a topology changes its name, against a real kube-apiserver:
// 1 file source: a renamed topology takes its old name's Gateways over (announced), prunes the old name's Gateways it
//   no longer has, and the old status object says Superseded instead of Ready; a restart with a broken file still
//   serves the new name from its status object;
// 2 cluster source: a second Topology object whose pools overlap one that still exists is refused (GatewayConflict)
//   and touches none of the owner's Gateways, even while the owner's sync runs; once the owner's Topology object is
//   deleted, the Gateways are adopted.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createNode, useControlPlane } from '../support/controlplane.ts';
import { applyTopologyCr, deleteTopology, ensureNamespace, installCorvidCrds, sleep, startTestSync, topologyYaml, waitFor, writeAtomically, type TestSync } from './sync-fixtures.ts';
import { contentRevision } from '../../src/sync/source-file.ts';
import { getGateway, listGateways } from '../../src/adapters/kube/gateways.ts';
import { listEvents } from '../../src/adapters/kube/events.ts';
import { getTopology, type TopologyObject } from '../../src/adapters/kube/topologies.ts';
import { TOPOLOGY_LABEL } from '../../src/gateway/keys.ts';

const syncs: TestSync[] = [];
let dir: string | undefined;
after(async () => {
  for (const s of syncs) await s.handle.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});
const cp = useControlPlane();

function condition(t: TopologyObject | undefined, type: string) {
  return t?.status?.conditions?.find((c) => c.type === type);
}

async function owners(): Promise<Record<string, string | undefined>> {
  const out: Record<string, string | undefined> = {};
  for (const g of (await listGateways(cp.get().kubeConfig)).items) out[g.metadata.name] = g.metadata.labels?.[TOPOLOGY_LABEL];
  return out;
}

async function start(o: Parameters<typeof startTestSync>[1]): Promise<TestSync> {
  const s = await startTestSync(cp.get().kubeConfig, o);
  syncs.push(s);
  return s;
}

async function stop(s: TestSync): Promise<void> {
  await s.handle.stop();
  syncs.splice(syncs.indexOf(s), 1);
}

let setupDone: Promise<void> | undefined;
function setup(): Promise<void> {
  setupDone ??= (async () => {
    const kc = cp.get().kubeConfig;
    await installCorvidCrds(kc);
    await ensureNamespace(kc, 'corvid-system');
    for (const [name, pool, n] of [['r1', 'r', 1], ['s1', 's', 2], ['q1', 'q', 3], ['c1', 'c', 4], ['d1', 'd', 5], ['e1', 'e', 6]] as const) {
      await createNode(kc, { name, labels: { pool }, internalIP: `10.0.7.${n}`, podCIDRs: [`10.244.7${n}.0/24`], ready: true });
    }
  })();
  return setupDone;
}

test('1: file source: a rename takes the Gateways over, announced; the old status object is Superseded', { skip: cp.skip }, async () => {
  await setup();
  const kc = cp.get().kubeConfig;
  dir = await mkdtemp(join(tmpdir(), 'corvid-takeover-'));
  const path = join(dir, 'topology.yaml');
  const r = { name: 'pool-r', label: 'r', gateways: ['r1'] };
  const s = { name: 'pool-s', label: 's', gateways: ['s1'] };
  const q = { name: 'pool-q', label: 'q', gateways: ['q1'] };
  const alpha = topologyYaml({ name: 'alpha', pools: [r, s, q] });
  await writeAtomically(path, alpha);
  let sync = await start({ source: { kind: 'file', path, intervalMs: 200 } });
  await waitFor('alpha applied', async () => condition(await getTopology(kc, 'alpha'), 'Ready')?.status === 'True');
  assert.deepEqual(await owners(), { 'pool-q': 'alpha', 'pool-r': 'alpha', 'pool-s': 'alpha' });

  // The rename, in one commit with the removal of pool-q.
  const beta = topologyYaml({ name: 'beta', pools: [r, s] });
  await writeAtomically(path, beta);
  await waitFor('beta applied', async () => condition(await getTopology(kc, 'beta'), 'Ready')?.status === 'True');
  assert.deepEqual(await owners(), { 'pool-r': 'beta', 'pool-s': 'beta' }, 'adopted, and the old name\'s pool-q pruned');
  const old = await waitFor('alpha superseded', async () => {
    const t = await getTopology(kc, 'alpha');
    return condition(t, 'Ready')?.reason === 'Superseded' ? t : undefined;
  });
  assert.equal(condition(old, 'Ready')?.status, 'False');
  assert.equal(
    condition(old, 'Ready')?.message,
    `superseded by topology beta at revision ${contentRevision(beta)}, which has taken over its Gateways; nothing reconciles this object any more: delete it`,
  );
  assert.equal(condition(old, 'Stalled')?.status, 'True');
  assert.equal(condition(old, 'Reconciling'), undefined);
  assert.equal(old?.status?.lastAppliedRevision, contentRevision(alpha), 'what it last applied stays on record');

  const adopted = (await listEvents(kc, 'kube-system')).filter((e) => e.reason === 'GatewaysAdopted');
  assert.deepEqual(
    adopted.map((e) => [e.regarding?.name, e.type, e.note]),
    [['beta', 'Normal', `took over Gateways pool-r, pool-s from topology alpha (renamed: alpha is superseded)`]],
  );
  assert.ok((await listEvents(kc, 'kube-system')).some((e) => e.reason === 'Superseded' && e.regarding?.name === 'alpha'));
  assert.ok(sync.logs.some((l) => l.msg === 'gateways adopted' && l.from === 'alpha' && JSON.stringify(l.gateways) === '["pool-r","pool-s"]'));
  assert.ok(sync.logs.some((l) => l.msg === 'gateway pruned' && l.gateway === 'pool-q'));

  // Settled: no further writes (no hot loop between the two objects).
  const before = JSON.stringify([await getTopology(kc, 'alpha'), await getTopology(kc, 'beta')].map((t) => t?.metadata?.resourceVersion));
  await sleep(1200);
  assert.equal(JSON.stringify([await getTopology(kc, 'alpha'), await getTopology(kc, 'beta')].map((t) => t?.metadata?.resourceVersion)), before);

  // A restart with a broken file: the superseded object is not a candidate, beta's status object is served.
  await stop(sync);
  await writeAtomically(path, 'apiVersion: [\n');
  sync = await start({ source: { kind: 'file', path, intervalMs: 200 } });
  await waitFor('served from the status object', () => sync.logs.some((l) => l.msg === 'serving the last applied revision from the status object' && l.topology === 'beta'));
  assert.equal(condition(await getTopology(kc, 'alpha'), 'Ready')?.reason, 'Superseded');
  await stop(sync);
});

test('2: cluster source: a Topology never takes Gateways from another that still exists; it adopts them once that one is gone', { skip: cp.skip }, async () => {
  await setup();
  const kc = cp.get().kubeConfig;
  const c = { name: 'pool-c', label: 'c', gateways: ['c1'] };
  const d = { name: 'pool-d', label: 'd', gateways: ['d1'] };
  const e = { name: 'pool-e', label: 'e', gateways: ['e1'] };
  await applyTopologyCr(kc, topologyYaml({ name: 'one', pools: [c, d] }));
  const first = await start({ source: { kind: 'cluster', name: 'one' } });
  await waitFor('one applied', async () => condition(await getTopology(kc, 'one'), 'Ready')?.status === 'True');
  const dBefore = (await getGateway(kc, 'pool-d'))!;

  // A newcomer whose pools overlap: refused as a whole, while both syncs run.
  await applyTopologyCr(kc, topologyYaml({ name: 'two', pools: [d, e] }));
  const second = await start({ source: { kind: 'cluster', name: 'two' } });
  const two = await waitFor('two refused', async () => {
    const t = await getTopology(kc, 'two');
    return condition(t, 'Stalled')?.status === 'True' ? t : undefined;
  });
  assert.equal(condition(two, 'Ready')?.status, 'False');
  assert.equal(condition(two, 'Ready')?.reason, 'GatewayConflict');
  assert.equal(
    condition(two, 'Ready')?.message,
    'revision generation:1: Gateway pool-d belongs to topology one, whose Topology object exists; a Gateway has one owner, and Corvid takes none from a topology that is still there: remove the pool from one of them, or delete Topology one (its Gateways are then adopted); no revision has been applied yet',
  );
  await sleep(1000);
  const dNow = (await getGateway(kc, 'pool-d'))!;
  assert.equal(dNow.metadata.resourceVersion, dBefore.metadata.resourceVersion, "the owner's Gateway is untouched");
  assert.equal(await getGateway(kc, 'pool-e'), undefined, 'nothing of the refused revision is written');
  assert.equal(condition(await getTopology(kc, 'one'), 'Ready')?.status, 'True');
  assert.ok((await listEvents(kc, 'kube-system')).some((ev) => ev.reason === 'RevisionRejected' && ev.regarding?.name === 'two' && /GatewayConflict/.test(ev.note ?? '')));

  // The owner goes: its Topology object is deleted (its sync, still running, can no longer find it).
  await deleteTopology(kc, 'one');
  await waitFor('two applied', async () => condition(await getTopology(kc, 'two'), 'Ready')?.status === 'True');
  const now = await owners();
  assert.equal(now['pool-d'], 'two');
  assert.equal(now['pool-e'], 'two');
  assert.equal(now['pool-c'], 'one', 'a Gateway the newcomer does not plan is not its to delete');
  const adopted = (await listEvents(kc, 'kube-system')).filter((ev) => ev.reason === 'GatewaysAdopted' && ev.regarding?.name === 'two');
  assert.deepEqual(
    adopted.map((ev) => ev.note),
    ['took over Gateway pool-d from topology one (its Topology object no longer exists)'],
  );
  assert.ok(second.logs.some((l) => l.msg === 'gateways adopted' && l.from === 'one'));
  // The first sync still serves what it had in force; it leaves pool-d to its new owner: no fight.
  const settled = (await getGateway(kc, 'pool-d'))!.metadata.resourceVersion;
  await sleep(1200);
  assert.equal((await getGateway(kc, 'pool-d'))!.metadata.resourceVersion, settled);
  assert.equal((await owners())['pool-d'], 'two');
  await stop(first);
  await stop(second);
});
