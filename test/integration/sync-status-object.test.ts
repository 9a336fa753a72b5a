// The git/file sources' Topology status object on kube-apiserver 1.20: a push that drops a nested object the sync
// applied before (spec.connectivity) must still replace the object's spec, and the status must follow (a server-side
// apply alone answers 422 `spec.connectivity: Invalid value: "null"` there).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createNode, useControlPlane } from '../support/controlplane.ts';
import { ensureNamespace, installCorvidCrds, sleep, startTestSync, topologyYaml, waitFor, writeAtomically, type TestSync } from './sync-fixtures.ts';
import { getTopology } from '../../src/adapters/kube/topologies.ts';

let sync: TestSync | undefined;
let dir: string | undefined;
after(async () => {
  await sync?.handle.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});
const cp = useControlPlane();

const sha256 = (t: string) => `sha256:${createHash('sha256').update(t).digest('hex')}`;

test('status object: a push that drops spec.connectivity replaces the spec and the status follows', { skip: cp.skip }, async () => {
  const kc = cp.get().kubeConfig;
  await installCorvidCrds(kc);
  await ensureNamespace(kc, 'corvid-system');
  await createNode(kc, { name: 's1', labels: { pool: 's' }, internalIP: '10.0.5.1', podCIDRs: ['10.244.51.0/24'], ready: true });
  await createNode(kc, { name: 's2', labels: { pool: 't' }, internalIP: '10.0.5.2', podCIDRs: ['10.244.52.0/24'], ready: true });
  dir = await mkdtemp(join(tmpdir(), 'corvid-status-'));
  const path = join(dir, 'topology.yaml');
  const pools = [
    { name: 'pool-s', label: 's', gateways: ['s1'] },
    { name: 'pool-t', label: 't', gateways: ['s2'] },
  ];
  const without = topologyYaml({ name: 'statusobj', pools });
  const withConnectivity = without.replace('spec:\n', 'spec:\n  connectivity:\n    mode: mesh\n    rules:\n      - {action: deny, pools: [pool-s, pool-t]}\n');
  assert.notEqual(withConnectivity, without);
  await writeAtomically(path, withConnectivity);
  sync = await startTestSync(kc, { source: { kind: 'file', path, intervalMs: 200 } });
  await waitFor('v1 applied', async () => (await getTopology(kc, 'statusobj'))?.status?.lastAppliedRevision === sha256(withConnectivity));
  assert.ok((await getTopology(kc, 'statusobj'))?.spec?.connectivity, 'v1 spec carries connectivity');

  await writeAtomically(path, without);
  const obj = await waitFor('v2 status', async () => {
    const tp = await getTopology(kc, 'statusobj');
    const ready = tp?.status?.conditions?.find((c) => c.type === 'Ready');
    return tp?.status?.lastAppliedRevision === sha256(without) && ready?.status === 'True' ? tp : undefined;
  });
  assert.equal(obj.spec?.connectivity, undefined, 'the spec follows: connectivity is gone');
  assert.equal(obj.status?.lastAttemptedRevision, sha256(without));
  assert.equal(obj.status?.observedGeneration, obj.metadata?.generation);

  // Settled: no further writes of the object (no hot loop).
  const rv = obj.metadata?.resourceVersion;
  await sleep(1500);
  assert.equal((await getTopology(kc, 'statusobj'))?.metadata?.resourceVersion, rv);
  const failures = sync.logs.filter((l) => /not written/.test(String(l.msg ?? l.message ?? '')));
  assert.equal(failures.length, 0, JSON.stringify(failures.slice(0, 3)));

  // And back: connectivity added again.
  await writeAtomically(path, withConnectivity);
  await waitFor('v3 status', async () => {
    const tp = await getTopology(kc, 'statusobj');
    return tp?.status?.lastAppliedRevision === sha256(withConnectivity) && tp.spec?.connectivity !== undefined;
  });
});
