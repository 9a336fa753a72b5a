// Two sync replicas on the cluster source (a Topology custom resource) against a real kube-apiserver:
// 6 only the leader writes; the standby writes nothing at all and takes over when the leader stops; a leader whose
//   Lease is taken stops writing at once;
// plus the Topology object's own kstatus (Ready, observedGeneration, the error with its position in the Ready message).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createNode, setNodeReady, useControlPlane } from '../support/controlplane.ts';
import { applyTopologyCr as applyCr, ensureNamespace, installCorvidCrds, resourceVersions, sleep, startTestSync, topologyYaml, waitFor, type TestSync } from './sync-fixtures.ts';
import { kubeRequest } from '../../src/adapters/kube/client.ts';
import { getGateway } from '../../src/adapters/kube/gateways.ts';
import { leasesPath } from '../../src/adapters/kube/leases.ts';
import { microTime } from '../../src/adapters/kube/events.ts';
import { getTopology } from '../../src/adapters/kube/topologies.ts';

const replicas: TestSync[] = [];
after(async () => {
  for (const r of replicas) await r.handle.stop();
});
const cp = useControlPlane();
const NS = 'corvid-system';
const POOLS = [
  { name: 'pool-a', label: 'a', gateways: ['a1', 'a2'] },
  { name: 'pool-b', label: 'b', gateways: ['b1'] },
];
const TIMING = { namespace: NS, leaseDurationMs: 1500, renewDeadlineMs: 1000, retryPeriodMs: 200 };

/** The Topology as a user applies it (kubectl apply = server-side apply under the user's manager). */
const applyTopologyCr = (doc: string): Promise<void> => applyCr(cp.get().kubeConfig, doc);

async function startReplica(id: string): Promise<TestSync> {
  const s = await startTestSync(cp.get().kubeConfig, {
    source: { kind: 'cluster', name: 'lead' },
    leaderElection: { ...TIMING, identity: id },
  });
  replicas.push(s);
  return s;
}

/** Writes the replica's reconciles reported (from its logs). */
function writesOf(s: TestSync): number {
  let n = 0;
  for (const l of s.logs) if (l.msg === 'reconciled') n += Number(l.writes ?? 0);
  return n;
}

async function metricWrites(s: TestSync): Promise<number> {
  const text = await (await fetch(`http://${s.handle.addresses.metrics}/metrics`)).text();
  let n = 0;
  for (const m of text.matchAll(/^corvid_sync_api_writes_total\{[^}]*\} (\d+)/gm)) n += Number(m[1]);
  return n;
}

test('6: two replicas, one writer; the standby takes over; a leader that loses its Lease stops writing', { skip: cp.skip }, async (t) => {
  const kc = cp.get().kubeConfig;
  await installCorvidCrds(kc);
  await ensureNamespace(kc, NS);
  for (const [name, pool, ip] of [['a1', 'a', '10.0.1.1'], ['a2', 'a', '10.0.1.2'], ['b1', 'b', '10.0.2.1']] as const) {
    await createNode(kc, { name, labels: { pool }, internalIP: ip, podCIDRs: [`10.244.${ip.split('.')[3]}${ip.split('.')[2]}.0/24`], ready: true });
  }
  await applyTopologyCr(topologyYaml({ name: 'lead', pools: POOLS }));

  const r1 = await startReplica('replica-1');
  await waitFor('replica-1 leads', () => r1.handle.isLeader(), 5000);
  const r2 = await startReplica('replica-2');
  await waitFor('Gateways and status', async () => (await getTopology(kc, 'lead'))?.status?.conditions?.find((c) => c.type === 'Ready')?.status === 'True');
  let topo = (await getTopology(kc, 'lead'))!;
  assert.equal(topo.status?.lastAppliedRevision, 'generation:1');
  assert.equal(topo.status?.observedGeneration, 1);
  assert.ok(await getGateway(kc, 'pool-a'));
  assert.equal(r2.handle.isLeader(), false);
  assert.equal(r2.handle.ready(), true, 'a synced standby is ready');

  // A change: only the leader writes it.
  await applyTopologyCr(topologyYaml({ name: 'lead', pools: [{ ...POOLS[0], gateways: ['a2', 'a1'] }, POOLS[1]] }));
  await waitFor('generation 2 applied', async () => (await getTopology(kc, 'lead'))?.status?.lastAppliedRevision === 'generation:2');
  assert.deepEqual((await getGateway(kc, 'pool-a'))?.spec.endpoints?.map((e) => e.nodeName), ['a2', 'a1']);

  // An invalid spec (the CRD schema accepts it, the topology checks do not): nothing changes, status says where.
  const rvs = await resourceVersions(kc);
  await applyTopologyCr(topologyYaml({ name: 'lead', pools: [{ ...POOLS[0], gateways: ['a2', 'a1'] }, { ...POOLS[1], label: 'a' }] }).replace('{name: corvid-psk, key: psk}', '{name: corvid-psk, key: psk}\n    ikeProposals: [des-md5-modp768]'));
  await waitFor('generation 3 rejected', async () => {
    const tp = await getTopology(kc, 'lead');
    return tp?.status?.observedGeneration === 3 && tp.status.conditions?.find((c) => c.type === 'Ready')?.status === 'False';
  });
  topo = (await getTopology(kc, 'lead'))!;
  const ready = topo.status!.conditions!.find((c) => c.type === 'Ready')!;
  assert.equal(ready.reason, 'ValidationFailed');
  assert.match(ready.message, /topologies\/lead:\d+:\d+: spec\./);
  assert.equal(topo.status?.lastAppliedRevision, 'generation:2');
  assert.equal(topo.status?.lastAttemptedRevision, 'generation:3');
  const after = await resourceVersions(kc);
  for (const k of Object.keys(rvs).filter((k) => k.startsWith('gateway/'))) assert.equal(after[k], rvs[k], k);
  await applyTopologyCr(topologyYaml({ name: 'lead', pools: [{ ...POOLS[0], gateways: ['a2', 'a1'] }, POOLS[1]] }));
  await waitFor('generation 4 applied', async () => (await getTopology(kc, 'lead'))?.status?.lastAppliedRevision === 'generation:4');

  assert.equal(await metricWrites(r2), 0, 'the standby made writes');
  assert.equal(writesOf(r2), 0);
  assert.ok((await metricWrites(r1)) > 0);

  // The leader stops (releases its Lease): the standby takes over and reacts to the next change.
  const tStop = Date.now();
  await r1.handle.stop();
  await waitFor('replica-2 leads', () => r2.handle.isLeader(), 5000, 10);
  const takeoverMs = Date.now() - tStop;
  await setNodeReady(kc, 'a2', false);
  await waitFor('replica-2 fails over pool-a', async () => (await getGateway(kc, 'pool-a'))?.status?.activeEndpoints?.[0]?.nodeName === 'a1', 5000);

  // Someone else takes the Lease: replica-2 stops writing at its next renew, not after renewDeadline.
  const leasePath = `${leasesPath(NS)}/corvid-sync-leader`;
  const lease = await kubeRequest(kc, { method: 'GET', path: leasePath });
  lease.spec = { ...lease.spec, holderIdentity: 'intruder', renewTime: microTime(new Date()), leaseTransitions: (lease.spec.leaseTransitions ?? 0) + 1 };
  const tSteal = Date.now();
  await kubeRequest(kc, { method: 'PUT', path: leasePath, body: lease });
  await waitFor('replica-2 stops leading', () => !r2.handle.isLeader(), 2000, 5);
  const stepDownMs = Date.now() - tSteal;
  const before = (await getGateway(kc, 'pool-a'))!.metadata.resourceVersion;
  await setNodeReady(kc, 'a2', true);
  await setNodeReady(kc, 'a1', false);
  await sleep(600); // the intruder's Lease is still valid (1.5 s): nobody may write
  assert.equal((await getGateway(kc, 'pool-a'))!.metadata.resourceVersion, before, 'written while another replica held the Lease');
  // The intruder never renews; replica-2 takes the Lease back after it expires and catches up.
  await waitFor('replica-2 leads again and fails over', async () => r2.handle.isLeader() && (await getGateway(kc, 'pool-a'))?.status?.activeEndpoints?.[0]?.nodeName === 'a2', 6000);
  const line = `leader election: standby took over ${takeoverMs} ms after the leader stopped; stepped down ${stepDownMs} ms after its Lease was taken`;
  t.diagnostic(line);
  console.log(line);
  await setNodeReady(kc, 'a1', true);
});
