// --gateway-spec=external: which planned Gateways the sync may write status to, which it waits for, the Topology
// status it reports, and the CLI flag. Pure.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { computeStatusOnlyChanges, keepLiveRevision, waitingMessage, ownedKey, type WaitingGateway } from '../../src/reconcile/gateway-changes.ts';
import { topologyStatus, WAITING_FOR_GATEWAY_SPEC } from '../../src/reconcile/topology-status.ts';
import type { Gateway } from '../../src/gateway/types.ts';
import { corvid } from './cli-support.ts';

const ELECTION = 'corvid.dev/election';

function gw(name: string, o: { revision?: string; endpoints?: string[]; active?: string; election?: string; rv?: string; deleting?: boolean } = {}): Gateway {
  const annotations: Record<string, string> = { 'corvid.dev/revision': o.revision ?? 'main@sha1:2', 'corvid.dev/peers': '["*"]' };
  if (o.election !== undefined) annotations[ELECTION] = o.election;
  return {
    apiVersion: 'raven.openyurt.io/v1beta1',
    kind: 'Gateway',
    metadata: {
      name,
      labels: { 'app.kubernetes.io/managed-by': 'corvid', 'corvid.dev/topology': 't', 'corvid.dev/pool': name },
      annotations,
      ...(o.rv ? { resourceVersion: o.rv, uid: `uid-${name}` } : {}),
      ...(o.deleting ? { deletionTimestamp: '2026-11-24T00:00:00Z' } : {}),
    },
    spec: { endpoints: (o.endpoints ?? ['n1', 'n2']).map((n) => ({ nodeName: n, type: 'tunnel' as const, port: 4500 })) },
    ...(o.active !== undefined ? { status: { activeEndpoints: [{ nodeName: o.active, type: 'tunnel' as const, port: 4500 }] } } : {}),
  };
}

/** What Argo CD applies: the planned Gateway without status and election (corvid render, no nodes). */
function rendered(g: Gateway, extra: Record<string, string> = {}): Gateway {
  const { status: _status, ...rest } = g;
  const annotations = { ...(g.metadata.annotations ?? {}), ...extra };
  delete annotations[ELECTION];
  return { ...rest, metadata: { ...g.metadata, annotations, resourceVersion: '7', uid: `uid-${g.metadata.name}` } };
}

const planned = (name: string) => gw(name, { active: 'n1', election: '{"n1":"elected: most preferred healthy candidate"}' });

test('external: a Gateway whose rendered part is the plan gets status and election; foreign metadata is no difference', () => {
  const live = rendered(planned('a'), { 'kubectl.kubernetes.io/last-applied-configuration': '{}' });
  live.metadata.labels = { ...live.metadata.labels, 'argocd.argoproj.io/instance': 'corvid-gateways' };
  const c = computeStatusOnlyChanges([planned('a')], [live]);
  assert.deepEqual(c.waiting, []);
  assert.deepEqual(c.apply.map((x) => [x.name, x.spec, x.liveAnnotations, x.status]), [['a', false, true, true]]);
  assert.equal(c.apply[0].live, live);
  assert.deepEqual(c.prune, []);
});

test('external: missing, being deleted, at another revision, or differing at the same revision: waiting, not written', () => {
  const desired = ['a', 'b', 'c', 'd', 'e'].map(planned);
  const live = [
    rendered(gw('b', { deleting: true })),
    rendered(gw('c', { revision: 'main@sha1:1', endpoints: ['n1'] })),
    rendered(gw('d', { endpoints: ['n2', 'n1'] })),
    rendered(planned('e')),
  ];
  const c = computeStatusOnlyChanges(desired, live);
  assert.deepEqual(c.waiting, [
    { name: 'a', why: 'missing' },
    { name: 'b', why: 'deleting' },
    { name: 'c', why: 'other-revision', liveRevision: 'main@sha1:1' },
    { name: 'd', why: 'differs', liveRevision: 'main@sha1:2' },
  ] satisfies WaitingGateway[]);
  assert.deepEqual(c.apply.map((x) => x.name), ['e']);
});

test('external: only the revision annotation differs (a commit that changed nothing else): still waiting', () => {
  const c = computeStatusOnlyChanges([planned('a')], [rendered(gw('a', { revision: 'main@sha1:1' }))]);
  assert.deepEqual(c.waiting, [{ name: 'a', why: 'other-revision', liveRevision: 'main@sha1:1' }]);
  assert.deepEqual(c.apply, []);
});

test('external: a corvid.dev/ annotation the plan does not have makes the spec differ; status and election alone do not', () => {
  assert.equal(computeStatusOnlyChanges([planned('a')], [rendered(planned('a'), { 'corvid.dev/relay': 'x' })]).waiting.length, 1);
  const same = { ...rendered(planned('a')), status: planned('a').status };
  same.metadata.annotations = { ...same.metadata.annotations, [ELECTION]: planned('a').metadata.annotations![ELECTION] };
  const c = computeStatusOnlyChanges([planned('a')], [same]);
  assert.deepEqual([c.waiting, c.apply, c.unchanged], [[], [], ['a']]);
  const onlyElection = computeStatusOnlyChanges([planned('a')], [{ ...same, metadata: { ...same.metadata, annotations: rendered(planned('a')).metadata.annotations } }]);
  assert.deepEqual(onlyElection.apply.map((x) => [x.liveAnnotations, x.status]), [[true, false]]);
});

test('external: the WireGuard keys are live state like the election: patched alone, never waited for, no new revision stamp', () => {
  const KEYS = 'corvid.dev/wireguard-keys';
  const withKeys = (g: Gateway, keys: string): Gateway => ({ ...g, metadata: { ...g.metadata, annotations: { ...g.metadata.annotations, [KEYS]: keys } } });
  const d = withKeys(planned('a'), JSON.stringify({ n1: Buffer.alloc(32, 1).toString('base64') }));
  // Argo CD applied `corvid render`'s Gateway (no keys: no node has published any there); live has older keys.
  const live = { ...withKeys(rendered(planned('a')), JSON.stringify({ n1: Buffer.alloc(32, 2).toString('base64') })), status: d.status };
  live.metadata.annotations = { ...live.metadata.annotations, [ELECTION]: d.metadata.annotations![ELECTION] };
  const c = computeStatusOnlyChanges([d], [live]);
  assert.deepEqual(c.waiting, [], 'a key change is not a spec difference to wait for');
  assert.deepEqual(c.apply.map((x) => [x.spec, x.liveAnnotations, x.status]), [[false, true, false]]);
  // Apply mode: a Gateway whose only change is a key keeps the revision that last changed what the topology says.
  const older = withKeys(gw('a', { revision: 'main@sha1:1' }), '{}');
  const newer = withKeys(gw('a', { revision: 'main@sha1:2' }), JSON.stringify({ n1: Buffer.alloc(32, 3).toString('base64') }));
  assert.equal(keepLiveRevision(newer, older).metadata.annotations?.['corvid.dev/revision'], 'main@sha1:1');
});

test('external: live Gateways the plan does not have are never pruned', () => {
  const c = computeStatusOnlyChanges([planned('a')], [rendered(planned('a')), rendered(gw('old'))]);
  assert.deepEqual(c.prune, []);
  assert.deepEqual(computeStatusOnlyChanges([], [rendered(gw('old'))]).prune, []);
});

test('external: a status edit by someone else is drift, as in apply mode', () => {
  const d = planned('a');
  const written = { ...rendered(d), status: d.status, metadata: { ...rendered(d).metadata, annotations: d.metadata.annotations } };
  const edited = { ...written, status: { activeEndpoints: [{ nodeName: 'n2', type: 'tunnel' as const, port: 4500 }] } };
  const c = computeStatusOnlyChanges([d], [edited], new Map([['a', ownedKey(written)]]));
  assert.deepEqual(c.apply.map((x) => [x.status, x.drift]), [[true, true]]);
});

test('waitingMessage: sorted, the first five with why, then a count', () => {
  const waiting: WaitingGateway[] = ['g', 'f', 'e', 'd', 'c', 'b', 'a'].map((name) => ({ name, why: 'missing' }));
  waiting.push({ name: 'c2', why: 'other-revision', liveRevision: 'main@sha1:1' });
  assert.equal(
    waitingMessage(waiting, 'main@sha1:2'),
    'waiting for the spec owner to apply revision main@sha1:2 to 8 Gateways: a (missing), b (missing), c (missing), c2 (at main@sha1:1), d (missing), and 3 more',
  );
  assert.match(waitingMessage([{ name: 'x', why: 'differs' }], 'r'), /to 1 Gateway: x \(spec differs from the plan\)$/);
});

test('topologyStatus waiting: Ready=False and Reconciling=True with the reason, never Stalled', () => {
  const now = '2026-11-24T10:00:00Z';
  const stalled = topologyStatus({ outcome: { kind: 'rejected', reason: 'ValidationFailed', message: 'bad' }, now });
  const s = topologyStatus({
    previous: stalled,
    generation: 3,
    lastAppliedRevision: 'r',
    outcome: { kind: 'waiting', revision: 'r', reason: WAITING_FOR_GATEWAY_SPEC, message: 'waiting for a' },
    now,
  });
  const by = Object.fromEntries(s.conditions!.map((c) => [c.type, [c.status, c.reason, c.message]]));
  assert.deepEqual(by, {
    Ready: ['False', WAITING_FOR_GATEWAY_SPEC, 'waiting for a'],
    Reconciling: ['True', WAITING_FOR_GATEWAY_SPEC, 'waiting for a'],
  });
});

test('corvid sync --gateway-spec: a bad value, or external with the cluster source, is a usage error (exit 2)', async () => {
  const bad = await corvid(['sync', '--source=file', '--file=x.yaml', '--gateway-spec=argocd']);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--gateway-spec must be one of apply, external/);
  const cluster = await corvid(['sync', '--gateway-spec=external']);
  assert.equal(cluster.code, 2);
  assert.match(cluster.stderr, /--gateway-spec=external needs --source=git or file/);
  const help = await corvid(['sync', '--help']);
  assert.match(help.stdout, /--gateway-spec MODE/);
});

test('corvid sync --apply-concurrency: a whole number from 1 to 256, else a usage error (exit 2)', async () => {
  for (const v of ['0', '257', 'many', '2.5', '-1']) {
    const r = await corvid(['sync', '--source=file', '--file=x.yaml', `--apply-concurrency=${v}`]);
    assert.equal(r.code, 2, v);
    assert.match(r.stderr, /--apply-concurrency must be a whole number from 1 to 256/);
  }
  assert.match((await corvid(['sync', '--help'])).stdout, /--apply-concurrency N/);
});

test('corvid sync: a bind address that is not [host]:port is a usage error (exit 2) before anything starts', async () => {
  for (const [flag, v] of [
    ['--metrics-bind-address', 'bogus'],
    ['--metrics-bind-address', ':99999'],
    ['--health-probe-bind-address', '8081'],
    ['--health-probe-bind-address', 'a b:80'],
  ]) {
    const r = await corvid(['sync', '--source=file', '--file=x.yaml', `${flag}=${v}`]);
    assert.equal(r.code, 2, `${flag}=${v}: ${r.stderr}`);
    assert.match(r.stderr, new RegExp(`${flag}: (bind address must be \\[host\\]:port|port \\d+ is out of range)`));
  }
});

test('corvid sync with no kubeconfig anywhere says what is missing and exits 2 (client-node would try http://localhost:8080)', async () => {
  const r = await corvid(['sync', '--source=file', '--file=x.yaml']);
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /^corvid sync: no kubeconfig found: pass --kubeconfig FILE, set \$KUBECONFIG, create ~\/\.kube\/config, or run in a pod with a ServiceAccount\n$/);
});
