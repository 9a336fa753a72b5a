// Hostile input (issue 14): a commit must never delay a failover, nor crash or stall the sync. A revision is validated
// in a worker thread with a time and a heap limit (src/sync/validate-worker.ts), against the real kube-apiserver:
// 1 a commit that takes longer to validate than --validation-timeout lands while the active gateway's node goes
//   NotReady: the failover happens within the usual bound while the worker runs, /healthz and /readyz keep
//   answering, the commit is refused (status, Event, metric) naming the limit, the last good revision stays in force,
//   and it is not validated again;
// 2 a revision that needs more heap than --validation-memory-mib is refused naming the limit; the sync carries on.
// Both inputs are valid topologies, slow and heavy by size alone (test/support/heavy-topology.ts), so no faster
// parser or early refusal can take the worker's place.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createNode, setNodeReady, useControlPlane } from '../support/controlplane.ts';
import { manyPoolsYaml } from '../support/heavy-topology.ts';
import { ensureNamespace, installCorvidCrds, makeGitRemote, resourceVersions, sleep, startTestSync, topologyYaml, waitFor, type GitRemote, type TestSync } from './sync-fixtures.ts';
import { gatewayInformer, getGateway } from '../../src/adapters/kube/gateways.ts';
import { getTopology } from '../../src/adapters/kube/topologies.ts';
import { listEvents } from '../../src/adapters/kube/events.ts';
import type { Gateway } from '../../src/gateway/types.ts';

let remote: GitRemote | undefined;
let dir: string | undefined;
let sync: TestSync | undefined;
// Registered before useControlPlane() so it runs before the control plane is stopped.
after(async () => {
  await sync?.handle.stop();
  await remote?.cleanup();
  if (dir) await rm(dir, { recursive: true, force: true });
});
const cp = useControlPlane();

/** 40,000 pools, 7 MB: several seconds and hundreds of MiB to validate. */
const HOSTILE_POOLS = 40_000;
/** The failover bound of test/integration/sync-health.test.ts (NotReady -> Gateway written). */
const FAILOVER_MS = 2000;

function active(g: Gateway | undefined): string {
  return (g?.status?.activeEndpoints ?? []).map((e) => e.nodeName).join();
}

async function ready(name: string) {
  const t = await getTopology(cp.get().kubeConfig, name);
  return { t, ready: t?.status?.conditions?.find((c) => c.type === 'Ready'), stalled: t?.status?.conditions?.find((c) => c.type === 'Stalled') };
}

/** GET /healthz and /readyz in turn until stopped: each answer's status, latency and start time. */
function probeHealth(addr: string) {
  const answers: { path: string; status: number; ms: number; at: number }[] = [];
  let on = true;
  const loop = (async () => {
    while (on) {
      for (const path of ['/healthz', '/readyz']) {
        const at = Date.now();
        const status = await fetch(`http://${addr}${path}`, { signal: AbortSignal.timeout(30_000) }).then((r) => r.status, () => 0);
        answers.push({ path, status, ms: Date.now() - at, at });
      }
      await sleep(50);
    }
  })();
  return {
    answers,
    async stop() {
      on = false;
      await loop;
    },
  };
}

/** When the sync logged `msg` about `revision` (its first such line). */
function loggedAt(s: TestSync, msg: string, revision: string): number | undefined {
  const l = s.logs.find((x) => x.msg === msg && x.revision === revision);
  return l === undefined ? undefined : Date.parse(String(l.ts));
}

test('1: a commit slower to validate than --validation-timeout delays no failover, stalls no probe, and is refused naming the limit', { skip: cp.skip }, async (t) => {
  const kc = cp.get().kubeConfig;
  await installCorvidCrds(kc);
  await ensureNamespace(kc, 'corvid-system');
  for (const [name, ip] of [['h1', '10.0.7.1'], ['h2', '10.0.7.2']] as const) {
    await createNode(kc, { name, labels: { pool: 'h' }, internalIP: ip, podCIDRs: [`10.244.7${ip.at(-1)}.0/24`], ready: true });
  }
  remote = await makeGitRemote();
  const path = 'clusters/edge/topology.yaml';
  const good = `main@sha1:${await remote.commit(path, topologyYaml({ name: 'hostile', pools: [{ name: 'pool-h', label: 'h', gateways: ['h1', 'h2'] }] }))}`;
  sync = await startTestSync(kc, {
    source: { kind: 'git', url: remote.url, ref: { branch: 'main' }, path, cacheDir: join(remote.root, 'cache'), intervalMs: 200 },
    validationTimeoutMs: 3000,
    // Room enough that the time limit, not the heap, ends this one.
    validationMemoryMiB: 4096,
  });
  const s = sync;
  await waitFor('the good revision applied', async () => (await ready('hostile')).t?.status?.lastAppliedRevision === good && active(await getGateway(kc, 'pool-h')) === 'h1');

  const inf = gatewayInformer(kc);
  const changes: { at: number; active: string }[] = [];
  inf.onChange((e) => {
    if (e.object.metadata.name === 'pool-h') changes.push({ at: Date.now(), active: active(e.object) });
  });
  await inf.start();
  // Made before probing: this process runs the sync too, and building 7 MB of text takes it a moment.
  const hostile = manyPoolsYaml('hostile', HOSTILE_POOLS);
  const probe = probeHealth(s.handle.addresses.health!);
  try {
    const rev = `main@sha1:${await remote.commit(path, hostile, { message: 'hostile' })}`;
    // At once when the sync has the commit: its reconcile starts validating now.
    await waitFor('the hostile commit fetched', () => loggedAt(s, 'git revision fetched', rev) !== undefined, 10_000, 5);
    const t0 = Date.now();
    await setNodeReady(kc, 'h1', false);
    const moved = await waitFor('h2 active after h1 NotReady', () => changes.find((c) => c.at >= t0 && c.active === 'h2'), 30_000, 5);
    const failoverMs = moved.at - t0;

    await waitFor('the hostile commit refused', async () => {
      const r = await ready('hostile');
      return r.t?.status?.lastAttemptedRevision === rev && r.ready?.status === 'False';
    }, 30_000);
    await probe.stop();
    const started = loggedAt(s, 'validating in a worker', rev);
    const refusedAt = loggedAt(s, 'revision rejected', rev);
    const during = probe.answers.filter((a) => started !== undefined && refusedAt !== undefined && a.at >= started && a.at + a.ms <= refusedAt);
    const slowest = probe.answers.reduce((a, b) => (b.ms > a.ms ? b : a));
    const line =
      `hostile commit (${HOSTILE_POOLS} pools): failover NotReady -> Gateway written in ${failoverMs} ms; validation ran ${refusedAt! - started!} ms; ` +
      `${during.length} probes answered meanwhile; slowest probe ${slowest.ms} ms, sent ${slowest.at - started!} ms after the validation started`;
    t.diagnostic(line);
    console.log(line);

    assert.ok(failoverMs < FAILOVER_MS, line);
    assert.ok(started !== undefined && refusedAt !== undefined && started <= moved.at && moved.at < refusedAt, `the failover happened while the worker ran: ${line}`);
    assert.deepEqual([...new Set(probe.answers.map((a) => `${a.path} ${a.status}`))].sort(), ['/healthz 200', '/readyz 200']);
    assert.ok(during.length >= 10, line);
    assert.ok(slowest.ms < 1000, line);

    // Refused like any invalid revision: status, Event, metric; the last good revision stays in force.
    const r = await ready('hostile');
    const limit = 'validation took longer than 3s (the --validation-timeout limit); the revision is refused';
    assert.equal(r.ready?.reason, 'ValidationFailed');
    assert.equal(r.ready?.message, `revision ${rev}: ${limit}; ${good} stays in force`);
    assert.equal(r.stalled?.status, 'True');
    assert.equal(r.t?.status?.lastAppliedRevision, good);
    const g = await getGateway(kc, 'pool-h');
    assert.equal(g?.metadata.annotations?.['corvid.dev/revision'], good);
    assert.equal(active(g), 'h2');
    await waitFor('RevisionRejected Event naming the limit', async () =>
      (await listEvents(kc, 'kube-system')).some((e) => e.reason === 'RevisionRejected' && e.regarding?.name === 'hostile' && e.note === `${rev} rejected (ValidationFailed): ${limit}`),
    );
    const metrics = await (await fetch(`http://${s.handle.addresses.metrics}/metrics`)).text();
    assert.match(metrics, /corvid_topology_rejected_total\{reason="ValidationFailed"\} 1\n/);
    assert.match(metrics, new RegExp(`corvid_topology_info\\{revision="${good}"\\} 1`));

    // The verdict is kept: more reconciles (h1 back) do not validate the revision again.
    let reconciles = 0;
    const off = s.handle.onReconcile(() => void reconciles++);
    await setNodeReady(kc, 'h1', true);
    await waitFor('a reconcile after h1 is back', () => reconciles >= 1, 10_000);
    s.handle.trigger('test');
    await waitFor('one more reconcile', () => reconciles >= 2, 10_000);
    off();
    assert.equal(s.logs.filter((l) => l.msg === 'validating in a worker' && l.revision === rev).length, 1);

    // A good commit after it is applied as usual.
    const fixed = `main@sha1:${await remote.commit(path, topologyYaml({ name: 'hostile', pools: [{ name: 'pool-h', label: 'h', gateways: ['h2', 'h1'] }] }))}`;
    await waitFor('the next good commit applied', async () => (await ready('hostile')).ready?.status === 'True' && (await ready('hostile')).t?.status?.lastAppliedRevision === fixed);
  } finally {
    await probe.stop();
    await inf.stop();
    await s.handle.stop();
  }
});

test('2: a revision that needs more heap than --validation-memory-mib is refused naming the limit; the sync carries on', { skip: cp.skip }, async () => {
  const kc = cp.get().kubeConfig;
  await installCorvidCrds(kc);
  await ensureNamespace(kc, 'corvid-system');
  await createNode(kc, { name: 'o1', labels: { pool: 'o' }, internalIP: '10.0.8.1', podCIDRs: ['10.244.81.0/24'], ready: true });
  dir = await mkdtemp(join(tmpdir(), 'corvid-hostile-'));
  const file = join(dir, 'topology.yaml');
  const put = async (text: string): Promise<void> => {
    await writeFile(`${file}.tmp`, text);
    await rename(`${file}.tmp`, file);
  };
  const goodText = topologyYaml({ name: 'heavy', pools: [{ name: 'pool-o', label: 'o', gateways: ['o1'] }] });
  await put(goodText);
  sync = await startTestSync(kc, { source: { kind: 'file', path: file, intervalMs: 60_000 }, validationMemoryMiB: 64 });
  const s = sync;
  try {
    await waitFor('the good revision applied', async () => (await ready('heavy')).ready?.status === 'True' && (await getGateway(kc, 'pool-o')) !== undefined);
    const good = (await ready('heavy')).t!.status!.lastAppliedRevision!;
    const before = await resourceVersions(kc);
    delete before['topology/heavy'];

    await put(manyPoolsYaml('heavy', HOSTILE_POOLS));
    const r = await waitFor('the heavy revision refused', async () => {
      const x = await ready('heavy');
      return x.t?.status?.lastAttemptedRevision !== good && x.ready?.status === 'False' ? x : undefined;
    }, 60_000);
    const limit = 'validation needed more than 64 MiB (the --validation-memory-mib limit); the revision is refused';
    const rev = r.t!.status!.lastAttemptedRevision!;
    assert.equal(r.ready?.reason, 'ValidationFailed');
    assert.equal(r.ready?.message, `revision ${rev}: ${limit}; ${good} stays in force`);
    assert.equal(r.stalled?.status, 'True');
    assert.equal(r.t?.status?.lastAppliedRevision, good);
    await waitFor('RevisionRejected Event naming the limit', async () =>
      (await listEvents(kc, 'kube-system')).some((e) => e.reason === 'RevisionRejected' && e.regarding?.name === 'heavy' && e.note === `${rev} rejected (ValidationFailed): ${limit}`),
    );
    const after = await resourceVersions(kc);
    delete after['topology/heavy'];
    assert.deepEqual(after, before, 'nothing live changed');

    // The process is fine: it answers, and the next good revision is applied.
    assert.equal((await fetch(`http://${s.handle.addresses.health}/healthz`)).status, 200);
    const next = goodText.replace('heartbeatTimeout: 2s', 'heartbeatTimeout: 3s');
    await put(next);
    await waitFor('the next good revision applied', async () => {
      const x = await ready('heavy');
      return x.ready?.status === 'True' && x.t?.status?.lastAppliedRevision !== good ? x : undefined;
    }, 15_000);
  } finally {
    await s.handle.stop();
  }
});
