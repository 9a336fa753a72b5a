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

test('corvid sync as a process: flags, /readyz and /metrics, clean exit on SIGTERM', { skip: cp.skip }, async () => {
  const { spawn } = await import('node:child_process');
  const { createServer } = await import('node:net');
  const kc = cp.get().kubeConfig;
  const freePort = () =>
    new Promise<number>((resolve) => {
      const s = createServer().listen(0, '127.0.0.1', () => {
        const p = (s.address() as { port: number }).port;
        s.close(() => resolve(p));
      });
    });
  const [health, metrics] = [await freePort(), await freePort()];
  const procDir = await mkdtemp(join(tmpdir(), 'corvid-proc-'));
  const text = topologyYaml({ name: 'proc', pools: [{ name: 'pool-p', label: 'f', gateways: ['f1'] }] });
  await writeFile(join(procDir, 'topology.yaml'), text);
  const child = spawn(
    process.execPath,
    [
      'bin/corvid.js', 'sync', '--source=file', `--file=${join(procDir, 'topology.yaml')}`, `--kubeconfig=${cp.get().kubeconfigPath}`,
      `--health-probe-bind-address=127.0.0.1:${health}`, `--metrics-bind-address=127.0.0.1:${metrics}`, '--log-level=info',
      '--leader-elect', '--leader-election-namespace=corvid-system', '--leader-election-id=corvid-proc-test',
      '--leader-election-lease-duration=2s', '--leader-election-renew-deadline=1500ms', '--leader-election-retry-period=200ms',
      '--apply-concurrency=2',
    ],
    { cwd: new URL('../../', import.meta.url).pathname, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let stderr = '';
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  try {
    await waitFor('pool-p written by the process', async () => (await getGateway(kc, 'pool-p'))?.metadata.annotations?.['corvid.dev/revision'] === sha256(text), 15_000);
    await waitFor('/readyz', async () => (await fetch(`http://127.0.0.1:${health}/readyz`)).status === 200, 5000);
    const m = await (await fetch(`http://127.0.0.1:${metrics}/metrics`)).text();
    assert.match(m, /leader_election_master_status\{name="corvid-proc-test"\} 1/);
    assert.match(m, /process_cpu_seconds_total/);
    child.kill('SIGTERM');
    assert.equal(await exited, 0, stderr);
    // Every log line is one JSON object with ts, level and msg.
    const lines = stderr.split('\n').filter((l) => l.startsWith('{'));
    assert.ok(lines.length > 3, stderr);
    for (const l of lines) {
      const o = JSON.parse(l);
      assert.ok(o.ts && o.level && o.msg, l);
    }
    assert.ok(lines.some((l) => JSON.parse(l).msg === 'shutting down'));
  } finally {
    if (child.exitCode === null) child.kill('SIGKILL');
    await rm(procDir, { recursive: true, force: true });
  }
});
