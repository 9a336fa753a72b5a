// The sync with a git source against a real kube-apiserver and real git (a local bare repository):
// 1 a pushed commit becomes Gateways with the revision in status (webhook-triggered fetch);
// 2 broken commits (invalid YAML, schema error, unsigned with verification on) leave every Gateway byte-identical
//   and set Ready=False with the error;
// 3 a removed pool is pruned; an empty topology is refused without allowEmpty.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { createServer, type AddressInfo, type Socket } from 'node:net';
import { join } from 'node:path';
import { createNode, setNodeReady, useControlPlane } from '../support/controlplane.ts';
import {
  deleteAllGateways,
  deleteTopology,
  ensureNamespace,
  installCorvidCrds,
  makeGitRemote,
  resourceVersions,
  startTestSync,
  topologyYaml,
  waitFor,
  type GitRemote,
  type TestSync,
} from './sync-fixtures.ts';
import { applyGateway, getGateway, listGateways } from '../../src/adapters/kube/gateways.ts';
import { getTopology } from '../../src/adapters/kube/topologies.ts';
import { listEvents } from '../../src/adapters/kube/events.ts';

const cp = useControlPlane();
const TWO_POOLS = [
  { name: 'pool-a', label: 'a', gateways: ['a1', 'a2'] },
  { name: 'pool-b', label: 'b', gateways: ['b1'] },
];
const SECRET = 'webhook-secret';

let remote: GitRemote;

// Top-level before() hooks do not wait for useControlPlane's: set up lazily from the first test instead.
let setupDone: Promise<void> | undefined;
function setup(): Promise<void> {
  setupDone ??= doSetup();
  return setupDone;
}
async function doSetup(): Promise<void> {
  const kc = cp.get().kubeConfig;
  await installCorvidCrds(kc);
  await ensureNamespace(kc, 'corvid-system');
  for (const [name, pool, ip] of [['a1', 'a', '10.0.1.1'], ['a2', 'a', '10.0.1.2'], ['b1', 'b', '10.0.2.1']]) {
    await createNode(kc, { name, labels: { pool }, internalIP: ip, podCIDRs: [`10.244.${ip.split('.')[2]}${ip.split('.')[3]}.0/24`], ready: true });
  }
  remote = await makeGitRemote();
}

after(async () => {
  await remote?.cleanup();
});

async function withSync(o: { verify?: boolean; interval?: number }, fn: (s: TestSync) => Promise<void>): Promise<void> {
  const kc = cp.get().kubeConfig;
  const s = await startTestSync(kc, {
    source: {
      kind: 'git',
      url: remote.url,
      ref: { branch: 'main' },
      path: 'clusters/edge/topology.yaml',
      cacheDir: join(remote.root, `cache-${Math.random().toString(36).slice(2)}`),
      intervalMs: o.interval ?? 200,
      ...(o.verify ? { verify: { mode: 'ssh' as const, allowedSignersFile: remote.allowedSigners } } : {}),
    },
    webhookAddress: '127.0.0.1:0',
    webhookSecret: Buffer.from(SECRET),
  });
  try {
    await fn(s);
  } finally {
    await s.handle.stop();
  }
}

async function topologyReady(name: string) {
  const t = await getTopology(cp.get().kubeConfig, name);
  return t?.status?.conditions?.find((c) => c.type === 'Ready');
}

async function postHook(addr: string, body: string, sig?: string): Promise<number> {
  const r = await fetch(`http://${addr}/hooks/git`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(sig ? { 'x-hub-signature-256': sig } : {}) },
    body,
  });
  return r.status;
}

test('1: a pushed commit becomes Gateways, with the revision in their annotations and in Topology status', { skip: cp.skip }, async () => {
  await setup();
  const kc = cp.get().kubeConfig;
  const sha1 = await remote.commit('clusters/edge/topology.yaml', topologyYaml({ name: 'edge', pools: TWO_POOLS }));
  // A long poll interval: the second commit must arrive through the webhook.
  await withSync({ interval: 60_000 }, async (s) => {
    const rev1 = `main@sha1:${sha1}`;
    // The spec (with the revision) and the status are two writes: wait for both before reading either.
    await waitFor('Gateways of the first commit, with their status', async () => {
      const a = await getGateway(kc, 'pool-a');
      const b = await getGateway(kc, 'pool-b');
      return a?.metadata.annotations?.['corvid.dev/revision'] === rev1 && b?.metadata.annotations?.['corvid.dev/revision'] === rev1 && a.status !== undefined;
    });
    const a = (await getGateway(kc, 'pool-a'))!;
    assert.equal(a.metadata.labels?.['corvid.dev/topology'], 'edge');
    assert.deepEqual(a.status?.activeEndpoints?.map((e) => e.nodeName), ['a1']);
    assert.deepEqual(a.spec.endpoints?.map((e) => e.nodeName), ['a1', 'a2']);
    await waitFor('Topology status Ready', async () => (await topologyReady('edge'))?.status === 'True');
    const t = (await getTopology(kc, 'edge'))!;
    assert.equal(t.status?.lastAppliedRevision, rev1);
    assert.equal(t.status?.lastAttemptedRevision, rev1);
    assert.equal(t.status?.observedGeneration, t.metadata?.generation);
    assert.equal(t.metadata?.annotations?.['corvid.dev/source'], 'git');
    assert.equal(s.handle.ready(), true);

    // Webhook: a bad signature is refused; a good one fetches now.
    const pools = [{ ...TWO_POOLS[0], gateways: ['a2', 'a1'] }, TWO_POOLS[1]];
    const bBefore = (await getGateway(kc, 'pool-b'))!;
    const sha2 = await remote.commit('clusters/edge/topology.yaml', topologyYaml({ name: 'edge', pools }));
    const body = JSON.stringify({ ref: 'refs/heads/main', after: sha2 });
    assert.equal(await postHook(s.handle.addresses.webhook!, body, 'sha256=' + '0'.repeat(64)), 401);
    assert.equal(await postHook(s.handle.addresses.webhook!, body), 401);
    const sig = 'sha256=' + createHmac('sha256', SECRET).update(body).digest('hex');
    assert.equal(await postHook(s.handle.addresses.webhook!, body, sig), 202);
    const rev2 = `main@sha1:${sha2}`;
    await waitFor('second revision applied', async () => (await getTopology(kc, 'edge'))?.status?.lastAppliedRevision === rev2, 10_000);
    const a2 = (await getGateway(kc, 'pool-a'))!;
    assert.equal(a2.metadata.annotations?.['corvid.dev/revision'], rev2);
    assert.deepEqual(a2.spec.endpoints?.map((e) => e.nodeName), ['a2', 'a1']);
    // The commit touched pool-a only: pool-b is not rewritten, and its stamp names the commit that last changed it.
    const b2 = (await getGateway(kc, 'pool-b'))!;
    assert.equal(b2.metadata.annotations?.['corvid.dev/revision'], rev1);
    assert.equal(b2.metadata.resourceVersion, bBefore.metadata.resourceVersion, 'pool-b was written although the commit did not change it');

    const metrics = await (await fetch(`http://${s.handle.addresses.metrics}/metrics`)).text();
    assert.match(metrics, new RegExp(`corvid_topology_info\\{revision="${rev2}"\\} 1`));
    assert.match(metrics, /corvid_gateway_active\{pool="pool-a",node="a1"\} 1/);
    // requeue_after: a success that armed the heartbeat timer (src/sync/metrics.ts).
    assert.match(metrics, /controller_runtime_reconcile_total\{controller="gateway",result="(?:success|requeue_after)"\} [1-9]/);
    assert.equal((await fetch(`http://${s.handle.addresses.health}/readyz`)).status, 200);
    assert.equal((await fetch(`http://${s.handle.addresses.health}/healthz`)).status, 200);
  });
});

test('2: broken commits change nothing live and set Ready=False with the error', { skip: cp.skip }, async () => {
  await setup();
  const kc = cp.get().kubeConfig;
  const good = await remote.commit('clusters/edge/topology.yaml', topologyYaml({ name: 'edge', pools: TWO_POOLS }));
  await withSync({}, async () => {
    await waitFor('good revision applied', async () => (await getTopology(kc, 'edge'))?.status?.lastAppliedRevision === `main@sha1:${good}`);
    await waitFor('Ready', async () => (await topologyReady('edge'))?.status === 'True');
    const gatewaysBefore = (await listGateways(kc)).items.map((g) => [g.metadata.name, g.metadata.resourceVersion]);

    const cases: [string, string, RegExp][] = [
      ['invalid YAML', 'apiVersion: corvid.dev/v1alpha1\nkind: Topology\nmetadata: {name: edge\nspec: [\n', /topology\.yaml:\d+:\d+: /],
      ['schema error', topologyYaml({ name: 'edge', pools: TWO_POOLS }).replace('heartbeatTimeout: 2s', 'heartbeatTimeout: 2s\n    bogus: 1'), /topology\.yaml:\d+:\d+: spec\.election/],
    ];
    for (const [what, text, pattern] of cases) {
      const sha = await remote.commit('clusters/edge/topology.yaml', text, { message: what });
      const rev = `main@sha1:${sha}`;
      await waitFor(`${what}: rejected`, async () => {
        const t = await getTopology(kc, 'edge');
        return t?.status?.lastAttemptedRevision === rev && t.status.conditions?.find((c) => c.type === 'Ready')?.status === 'False';
      });
      const t = (await getTopology(kc, 'edge'))!;
      const ready = t.status!.conditions!.find((c) => c.type === 'Ready')!;
      assert.equal(ready.reason, 'ValidationFailed', what);
      assert.match(ready.message, pattern, what);
      assert.equal(t.status?.lastAppliedRevision, `main@sha1:${good}`, what);
      assert.equal(t.status?.conditions?.find((c) => c.type === 'Stalled')?.status, 'True', what);
      const gatewaysAfter = (await listGateways(kc)).items.map((g) => [g.metadata.name, g.metadata.resourceVersion]);
      assert.deepEqual(gatewaysAfter, gatewaysBefore, `${what}: Gateways must be untouched`);
    }
    const events = await listEvents(kc, 'kube-system');
    assert.ok(events.some((e) => e.reason === 'RevisionRejected' && e.regarding?.name === 'edge'));
  });

  // A restart while the newest commit is broken: the last applied revision comes back from the status object and
  // keeps serving, failover included.
  await withSync({}, async (s) => {
    await waitFor('recovered from the status object', () => s.logs.some((l) => l.msg === 'serving the last applied revision from the status object'));
    await setNodeReady(kc, 'a1', false);
    await waitFor('failover while HEAD is broken', async () => (await getGateway(kc, 'pool-a'))?.status?.activeEndpoints?.[0]?.nodeName === 'a2');
    assert.equal((await getGateway(kc, 'pool-a'))?.metadata.annotations?.['corvid.dev/revision'], `main@sha1:${good}`);
    assert.equal((await getTopology(kc, 'edge'))?.status?.lastAppliedRevision, `main@sha1:${good}`);
    await setNodeReady(kc, 'a1', true);
  });

  // Verification on: a trusted signed commit applies, an unsigned one is refused and the signed one stays.
  const signed = await remote.commit('clusters/edge/topology.yaml', topologyYaml({ name: 'edge', pools: TWO_POOLS }), { sign: 'trusted' });
  await withSync({ verify: true }, async () => {
    await waitFor('signed revision applied', async () => (await getTopology(kc, 'edge'))?.status?.lastAppliedRevision === `main@sha1:${signed}`);
    await waitFor('Ready', async () => (await topologyReady('edge'))?.status === 'True');
    const before = await resourceVersions(kc);
    delete before['topology/edge'];
    const pools = [{ ...TWO_POOLS[0], gateways: ['a2'] }, TWO_POOLS[1]];
    for (const sign of [undefined, 'untrusted'] as const) {
      const sha = await remote.commit('clusters/edge/topology.yaml', topologyYaml({ name: 'edge', pools }), sign ? { sign } : {});
      await waitFor(`${sign ?? 'unsigned'} commit rejected`, async () => {
        const t = await getTopology(kc, 'edge');
        return t?.status?.lastAttemptedRevision === `main@sha1:${sha}` && t.status.conditions?.find((c) => c.type === 'Ready')?.reason === 'VerificationFailed';
      });
      const after = await resourceVersions(kc);
      delete after['topology/edge'];
      assert.deepEqual(after, before);
      assert.deepEqual((await getGateway(kc, 'pool-a'))?.spec.endpoints?.map((e) => e.nodeName), ['a1', 'a2']);
    }
    assert.equal((await getTopology(kc, 'edge'))?.status?.lastAppliedRevision, `main@sha1:${signed}`);
  });
});

test('3: a removed pool is pruned; an empty topology is refused without allowEmpty; foreign Gateways are never touched', { skip: cp.skip }, async () => {
  await setup();
  const kc = cp.get().kubeConfig;
  // A Gateway Corvid does not own (no labels).
  await applyGateway(kc, { apiVersion: 'raven.openyurt.io/v1beta1', kind: 'Gateway', metadata: { name: 'foreign' }, spec: { endpoints: [] } }, { fieldManager: 'someone' });
  const two = await remote.commit('clusters/edge/topology.yaml', topologyYaml({ name: 'edge', pools: TWO_POOLS }));
  await withSync({}, async () => {
    await waitFor('two pools', async () => (await getTopology(kc, 'edge'))?.status?.lastAppliedRevision === `main@sha1:${two}` && (await getGateway(kc, 'pool-b')) !== undefined);
    const one = await remote.commit('clusters/edge/topology.yaml', topologyYaml({ name: 'edge', pools: [TWO_POOLS[0]] }));
    await waitFor('pool-b pruned', async () => (await getGateway(kc, 'pool-b')) === undefined);
    assert.ok(await getGateway(kc, 'pool-a'));
    // Status is written after the prune, so wait for it rather than read it at once.
    await waitFor('status of the one-pool revision', async () => (await getTopology(kc, 'edge'))?.status?.lastAppliedRevision === `main@sha1:${one}`);

    const empty = await remote.commit('clusters/edge/topology.yaml', topologyYaml({ name: 'edge', pools: [] }));
    await waitFor('empty refused', async () => {
      const t = await getTopology(kc, 'edge');
      return t?.status?.lastAttemptedRevision === `main@sha1:${empty}` && t.status.conditions?.find((c) => c.type === 'Ready')?.status === 'False';
    });
    assert.ok(await getGateway(kc, 'pool-a'), 'pool-a must survive an empty topology without allowEmpty');
    assert.match((await topologyReady('edge'))!.message, /allowEmpty/);

    const allowed = await remote.commit('clusters/edge/topology.yaml', topologyYaml({ name: 'edge', pools: [], allowEmpty: true }));
    await waitFor('allowEmpty prunes everything Corvid owns', async () => (await getGateway(kc, 'pool-a')) === undefined);
    await waitFor('applied', async () => (await getTopology(kc, 'edge'))?.status?.lastAppliedRevision === `main@sha1:${allowed}`);
    assert.ok(await getGateway(kc, 'foreign'), 'a Gateway without Corvid labels is never pruned');
  });
  await deleteAllGateways(kc);
  await deleteTopology(kc, 'edge');
});

test('4: the webhook refuses replays (same body or delivery id, or pushed before the window) and floods (429), and health keeps answering', { skip: cp.skip }, async () => {
  await setup();
  const sha = await remote.commit('clusters/edge/topology.yaml', topologyYaml({ name: 'edge', pools: TWO_POOLS }));
  await withSync({ interval: 60_000 }, async (s) => {
    const addr = s.handle.addresses.webhook!;
    const post = async (body: string, extra: Record<string, string> = {}): Promise<Response> =>
      fetch(`http://${addr}/hooks/git`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-hub-signature-256': 'sha256=' + createHmac('sha256', SECRET).update(body).digest('hex'), ...extra },
        body,
      });
    const pushedAt = Math.floor(Date.now() / 1000);
    const body = JSON.stringify({ ref: 'refs/heads/main', after: sha, repository: { pushed_at: pushedAt } });
    assert.equal((await post(body, { 'x-github-delivery': 'd-1' })).status, 202);
    // The same signed body again (any delivery id): a replay.
    assert.equal((await post(body, { 'x-github-delivery': 'd-2' })).status, 409);
    // Another body under a delivery id already seen: a replay too.
    assert.equal((await post(JSON.stringify({ ref: 'refs/heads/main', after: sha, n: 1 }), { 'x-github-delivery': 'd-1' })).status, 409);
    // A push from an hour ago, never seen (the window has forgotten it): too old to be anything but a replay.
    const old = JSON.stringify({ ref: 'refs/heads/main', after: sha, repository: { pushed_at: pushedAt - 3600 } });
    assert.equal((await post(old)).status, 403);

    // A flood, signed or not: the bucket empties, 429 with Retry-After, and the health endpoint still answers.
    const codes: number[] = [];
    let retryAfter: string | null = null;
    for (let i = 0; i < 60; i++) {
      const r = await post(JSON.stringify({ ref: 'refs/heads/main', after: sha, flood: i }));
      codes.push(r.status);
      if (r.status === 429) retryAfter = r.headers.get('retry-after');
    }
    assert.ok(codes.filter((c) => c === 429).length >= 30, `429s in a flood of 60: ${codes.join(',')}`);
    assert.match(retryAfter ?? '', /^\d+$/);
    assert.equal((await fetch(`http://${s.handle.addresses.health}/healthz`)).status, 200);
  });
  await deleteAllGateways(cp.get().kubeConfig);
  await deleteTopology(cp.get().kubeConfig, 'edge');
});

test('5: a Git remote that accepts and never answers: /healthz answers from the start, /readyz says not ready until the first fetch gave up; a stop during a hanging fetch is quick', { skip: cp.skip }, async () => {
  await setup();
  const kc = cp.get().kubeConfig;
  const held: Socket[] = [];
  const hanging = createServer((sock) => void held.push(sock)); // accepts, never answers
  await new Promise<void>((r) => hanging.listen(0, '127.0.0.1', () => r()));
  const free = createServer();
  await new Promise<void>((r) => free.listen(0, '127.0.0.1', () => r()));
  const healthPort = (free.address() as AddressInfo).port;
  await new Promise<void>((r) => free.close(() => r()));
  const starting = startTestSync(kc, {
    source: {
      kind: 'git',
      url: `http://127.0.0.1:${(hanging.address() as AddressInfo).port}/topology.git`,
      ref: { branch: 'main' },
      path: 'clusters/edge/topology.yaml',
      cacheDir: join(remote.root, `cache-hang-${Math.random().toString(36).slice(2)}`),
      intervalMs: 60_000,
      timeoutMs: 4000,
    },
    healthAddress: `127.0.0.1:${healthPort}`,
    webhookAddress: '127.0.0.1:0',
    webhookSecret: Buffer.from(SECRET),
  });
  let started: TestSync | undefined;
  void starting.then((s) => (started = s));
  try {
    const t0 = Date.now();
    const healthz = await waitFor('/healthz answering while the first fetch hangs', async () => {
      const r = await fetch(`http://127.0.0.1:${healthPort}/healthz`).catch(() => undefined);
      return r?.status === 200 ? Date.now() - t0 : undefined;
    }, 3000);
    assert.equal(started, undefined, 'the sync is still starting (the fetch hangs)');
    assert.equal((await fetch(`http://127.0.0.1:${healthPort}/readyz`)).status, 503);
    console.log(`sync start-up with a hanging Git remote: /healthz answered after ${healthz} ms`);
    // Started (the first fetch gave up); a webhook starts another fetch, which hangs: a stop kills it.
    const s = await starting;
    const body = JSON.stringify({ ref: 'refs/heads/main', after: '0'.repeat(40) });
    const sig = 'sha256=' + createHmac('sha256', SECRET).update(body).digest('hex');
    const hook = await fetch(`http://${s.handle.addresses.webhook}/hooks/git`, { method: 'POST', headers: { 'x-hub-signature-256': sig }, body });
    assert.equal(hook.status, 202);
    await waitFor('the second fetch reached the hanging remote', async () => held.length >= 2, 3000);
    const t1 = Date.now();
    await s.handle.stop();
    const stopMs = Date.now() - t1;
    console.log(`sync stop during a hanging git fetch: ${stopMs} ms`);
    assert.ok(stopMs < 2000, `stop took ${stopMs} ms`);
  } finally {
    const s = await starting;
    await s.handle.stop();
    for (const sock of held) sock.destroy();
    await new Promise<void>((r) => hanging.close(() => r()));
  }
});
