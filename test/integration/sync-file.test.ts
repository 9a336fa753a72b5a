// 8: the file source with a ConfigMap volume's layout, updated the way the kubelet does it: a new timestamped
// directory, a `..data_tmp` symlink to it renamed over `..data`, the old directory removed. The file's own path
// (topology.yaml -> ..data/topology.yaml) never changes.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, rename, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createNode, useControlPlane } from '../support/controlplane.ts';
import { ensureNamespace, installCorvidCrds, resourceVersions, startTestSync, topologyYaml, waitFor, type TestSync } from './sync-fixtures.ts';
import { getGateway } from '../../src/adapters/kube/gateways.ts';
import { getTopology } from '../../src/adapters/kube/topologies.ts';

let sync: TestSync | undefined;
let dir: string | undefined;
after(async () => {
  await sync?.handle.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});
const cp = useControlPlane();

let generation = 0;
/** What the kubelet's AtomicWriter does for a ConfigMap volume update. */
async function kubeletUpdate(root: string, text: string): Promise<void> {
  const ts = `..2026_11_24_00_00_00.${String(++generation).padStart(9, '0')}`;
  await mkdir(join(root, ts));
  await writeFile(join(root, ts, 'topology.yaml'), text);
  await symlink(ts, join(root, '..data_tmp'));
  await rename(join(root, '..data_tmp'), join(root, '..data'));
  if (generation > 1) await rm(join(root, `..2026_11_24_00_00_00.${String(generation - 1).padStart(9, '0')}`), { recursive: true });
}

const sha256 = (t: string) => `sha256:${createHash('sha256').update(t).digest('hex')}`;

test('8: a ConfigMap-style ..data symlink swap is picked up; a bad file is refused', { skip: cp.skip }, async (t) => {
  const kc = cp.get().kubeConfig;
  await installCorvidCrds(kc);
  await ensureNamespace(kc, 'corvid-system');
  await createNode(kc, { name: 'f1', labels: { pool: 'f' }, internalIP: '10.0.3.1', podCIDRs: ['10.244.31.0/24'], ready: true });
  await createNode(kc, { name: 'f2', labels: { pool: 'f' }, internalIP: '10.0.3.2', podCIDRs: ['10.244.32.0/24'], ready: true });
  dir = await mkdtemp(join(tmpdir(), 'corvid-cm-'));
  const v1 = topologyYaml({ name: 'files', pools: [{ name: 'pool-f', label: 'f', gateways: ['f1', 'f2'] }] });
  await kubeletUpdate(dir, v1);
  await symlink('..data/topology.yaml', join(dir, 'topology.yaml'));
  // A long poll interval: only the watch can notice the swap in time.
  sync = await startTestSync(kc, { source: { kind: 'file', path: join(dir, 'topology.yaml'), intervalMs: 600_000 } });
  await waitFor('v1 applied', async () => (await getTopology(kc, 'files'))?.status?.lastAppliedRevision === sha256(v1));
  assert.equal((await getGateway(kc, 'pool-f'))?.metadata.annotations?.['corvid.dev/revision'], sha256(v1));

  const v2 = topologyYaml({ name: 'files', pools: [{ name: 'pool-f', label: 'f', gateways: ['f2', 'f1'] }] });
  const t0 = Date.now();
  await kubeletUpdate(dir, v2);
  await waitFor('v2 applied', async () => (await getGateway(kc, 'pool-f'))?.metadata.annotations?.['corvid.dev/revision'] === sha256(v2), 5000, 10);
  const tookMs = Date.now() - t0;
  assert.deepEqual((await getGateway(kc, 'pool-f'))?.spec.endpoints?.map((e) => e.nodeName), ['f2', 'f1']);
  await waitFor('status v2', async () => (await getTopology(kc, 'files'))?.status?.lastAppliedRevision === sha256(v2));

  const before = await resourceVersions(kc);
  const bad = v2.replace('pool-f', 'Pool_F');
  await kubeletUpdate(dir, bad);
  await waitFor('bad file refused', async () => {
    const tp = await getTopology(kc, 'files');
    return tp?.status?.lastAttemptedRevision === sha256(bad) && tp.status.conditions?.find((c) => c.type === 'Ready')?.status === 'False';
  });
  const ready = (await getTopology(kc, 'files'))!.status!.conditions!.find((c) => c.type === 'Ready')!;
  assert.match(ready.message, /topology\.yaml:\d+:\d+: spec\.pools\[0\]\.name/);
  const after = await resourceVersions(kc);
  assert.equal(after['gateway/pool-f'], before['gateway/pool-f']);
  const line = `file source: ..data swap applied ${tookMs} ms after the swap`;
  t.diagnostic(line);
  console.log(line);
});
