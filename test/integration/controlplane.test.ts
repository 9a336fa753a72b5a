// Smoke test of test/support/controlplane.ts against a real kube-apiserver.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CoreV1Api, CustomObjectsApi, PatchStrategy, Watch, setHeaderOptions } from '@kubernetes/client-node';
import type { KubeConfig, V1Node } from '@kubernetes/client-node';
import { createNode, deleteNodes, installCrds, setNodeReady, useControlPlane } from '../support/controlplane.ts';

const cp = useControlPlane();
// Fault injection needs our own etcd and apiserver.
const localOnly = cp.skip ?? (process.env.TEST_KUBECONFIG ? 'needs a local control plane, not TEST_KUBECONFIG' : undefined);

const GROUP = 'test.corvid.dev';
const VERSION = 'v1';
const PLURAL = 'widgets';
const WIDGET_CRD = `
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.test.corvid.dev
spec:
  group: test.corvid.dev
  scope: Cluster
  names: { plural: widgets, singular: widget, kind: Widget, listKind: WidgetList }
  versions:
    - name: v1
      served: true
      storage: true
      subresources: { status: {} }
      schema:
        openAPIV3Schema:
          type: object
          properties:
            spec:
              type: object
              properties:
                size: { type: integer, minimum: 0 }
                colour: { type: string }
            status:
              type: object
              properties:
                observed: { type: integer }
`;

const apply = setHeaderOptions('Content-Type', PatchStrategy.ServerSideApply);

function widget(name: string, spec: Record<string, unknown>): object {
  return { apiVersion: `${GROUP}/${VERSION}`, kind: 'Widget', metadata: { name }, spec };
}

function applyWidget(kc: KubeConfig, name: string, spec: Record<string, unknown>, fieldManager: string, force?: boolean) {
  return kc.makeApiClient(CustomObjectsApi).patchClusterCustomObject(
    { group: GROUP, version: VERSION, plural: PLURAL, name, body: widget(name, spec), fieldManager, force },
    apply,
  );
}

/** installCrds() on a throwaway dir holding only the Widget CRD. */
async function installWidgetCrd(kc: KubeConfig): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'corvid-crd-'));
  try {
    await writeFile(join(dir, 'widgets.yaml'), WIDGET_CRD);
    await installCrds(kc, dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

function code(e: unknown): number | undefined {
  return (e as { code?: number } | null)?.code;
}

type WatchResult = { kind: 'event'; type: string; obj: any } | { kind: 'gone'; detail: string } | { kind: 'error'; err: unknown };

/** First event (or error) of a watch on widgets from `resourceVersion`. */
async function firstWatchResult(kc: KubeConfig, resourceVersion: string, trigger?: () => Promise<unknown>): Promise<WatchResult> {
  let ctrl: AbortController | undefined;
  const result = new Promise<WatchResult>((resolve) => {
    new Watch(kc)
      .watch(
        `/apis/${GROUP}/${VERSION}/${PLURAL}`,
        { resourceVersion },
        (type, obj) => {
          // An expired resourceVersion arrives as an ERROR event carrying a 410 Status.
          if (type === 'ERROR' && obj?.code === 410) resolve({ kind: 'gone', detail: obj.message });
          else resolve({ kind: 'event', type, obj });
        },
        (err) => {
          if (code(err) === 410 || (err as { statusCode?: number } | null)?.statusCode === 410) {
            resolve({ kind: 'gone', detail: String(err) });
          } else resolve({ kind: 'error', err });
        },
      )
      .then((c) => (ctrl = c), (err) => resolve({ kind: 'error', err }));
  });
  if (trigger) {
    await sleepMs(300); // let the watch get established first
    await trigger();
  }
  const timeout = sleepMs(10_000).then((): WatchResult => ({ kind: 'error', err: new Error('no watch event within 10s') }));
  try {
    return await Promise.race([result, timeout]);
  } finally {
    ctrl?.abort();
  }
}

function sleepMs(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms).unref());
}

test('admin client lists Nodes', { skip: cp.skip }, async () => {
  const nodes = await cp.get().kubeConfig.makeApiClient(CoreV1Api).listNode();
  assert.ok(Array.isArray(nodes.items));
});

const noUser = process.env.TEST_KUBECONFIG && !process.env.TEST_USER_KUBECONFIG ? 'TEST_KUBECONFIG without TEST_USER_KUBECONFIG' : undefined;
test('unprivileged user is forbidden', { skip: cp.skip ?? noUser }, async () => {
  await assert.rejects(cp.get().userKubeConfig().makeApiClient(CoreV1Api).listNode(), (e) => code(e) === 403);
});

test('CRD install and server-side apply with a real conflict', { skip: cp.skip }, async () => {
  const kc = cp.get().kubeConfig;
  await installWidgetCrd(kc);
  await installWidgetCrd(kc); // re-applying is a no-op

  const created = await applyWidget(kc, 'w1', { size: 1, colour: 'red' }, 'corvid-a', true);
  assert.equal(created.spec.size, 1);
  assert.ok(created.metadata.managedFields.some((m: { manager: string }) => m.manager === 'corvid-a'));

  // Another manager changing an owned field without force: 409 Conflict.
  await assert.rejects(applyWidget(kc, 'w1', { size: 2 }, 'corvid-b'), (e) => code(e) === 409);
  const forced = await applyWidget(kc, 'w1', { size: 2 }, 'corvid-b', true);
  assert.equal(forced.spec.size, 2);
  assert.equal(forced.spec.colour, 'red');

  // Schema validation is real. A value out of range is a 422; on 1.20 a wrong type fails earlier,
  // in the typed patch, and answers 500 instead of 422.
  await assert.rejects(applyWidget(kc, 'w1', { size: -1 }, 'corvid-a', true), (e) => code(e) === 422);
  await assert.rejects(applyWidget(kc, 'w1', { size: 'big' }, 'corvid-a', true), /failed to create typed patch object/);
});

test('compactEtcd makes an old watch get 410 Gone; a relist recovers', { skip: localOnly }, async () => {
  const k = cp.get();
  const kc = k.kubeConfig;
  const objs = kc.makeApiClient(CustomObjectsApi);
  await installWidgetCrd(kc);
  await applyWidget(kc, 'w2', { size: 1 }, 'corvid-a', true);
  const oldRv: string = (await objs.listClusterCustomObject({ group: GROUP, version: VERSION, plural: PLURAL })).metadata.resourceVersion;
  for (const size of [2, 3, 4]) await applyWidget(kc, 'w2', { size }, 'corvid-a', true);

  // Before compaction the old resourceVersion replays history.
  const replay = await firstWatchResult(kc, oldRv);
  assert.equal(replay.kind, 'event', JSON.stringify(replay));

  await k.compactEtcd();
  const gone = await firstWatchResult(kc, oldRv);
  assert.equal(gone.kind, 'gone', JSON.stringify(gone));
  assert.match(gone.kind === 'gone' ? gone.detail : '', /too old/);

  // Relist, then watch from the fresh resourceVersion and see the next change.
  const list = await objs.listClusterCustomObject({ group: GROUP, version: VERSION, plural: PLURAL });
  assert.ok(list.items.some((w: { metadata: { name: string } }) => w.metadata.name === 'w2'));
  const next = await firstWatchResult(kc, list.metadata.resourceVersion, () => applyWidget(kc, 'w2', { size: 5 }, 'corvid-a', true));
  assert.equal(next.kind, 'event', JSON.stringify(next));
  if (next.kind === 'event') {
    assert.equal(next.type, 'MODIFIED');
    assert.equal(next.obj.spec.size, 5);
  }
});

test('restartApiServer keeps data and the client works again', { skip: localOnly }, async () => {
  const k = cp.get();
  const objs = k.kubeConfig.makeApiClient(CustomObjectsApi);
  await installWidgetCrd(k.kubeConfig);
  await applyWidget(k.kubeConfig, 'w3', { size: 7 }, 'corvid-a', true);
  await k.restartApiServer();
  const w3 = await objs.getClusterCustomObject({ group: GROUP, version: VERSION, plural: PLURAL, name: 'w3' });
  assert.equal(w3.spec.size, 7);
  await k.kubeConfig.makeApiClient(CoreV1Api).listNode();
});

test('createNode and setNodeReady are visible in listNode', { skip: cp.skip }, async () => {
  const kc = cp.get().kubeConfig;
  const core = kc.makeApiClient(CoreV1Api);
  const find = async (name: string) => (await core.listNode()).items.find((n) => n.metadata?.name === name);
  const addresses = (n: V1Node | undefined) => n?.status?.addresses?.map((a) => `${a.type}=${a.address}`);
  const ready = async (name: string) => (await find(name))?.status?.conditions?.find((c) => c.type === 'Ready');

  await createNode(kc, {
    name: 'edge-1',
    labels: { 'openyurt.io/is-edge-worker': 'true' },
    annotations: { 'corvid.dev/test': 'yes' },
    internalIP: '10.0.0.11',
    podCIDRs: ['10.244.1.0/24'],
    ready: false,
    unschedulable: true,
  });
  try {
    const n = await find('edge-1');
    assert.ok(n);
    assert.equal(n.metadata?.labels?.['openyurt.io/is-edge-worker'], 'true');
    assert.equal(n.metadata?.annotations?.['corvid.dev/test'], 'yes');
    assert.deepEqual(n.spec?.podCIDRs, ['10.244.1.0/24']);
    assert.equal(n.spec?.podCIDR, '10.244.1.0/24');
    assert.equal(n.spec?.unschedulable, true);
    assert.deepEqual(addresses(n), ['InternalIP=10.0.0.11']);
    assert.equal((await ready('edge-1'))?.status, 'False');

    await sleepMs(1100); // timestamps have one-second resolution
    await setNodeReady(kc, 'edge-1', true);
    const r1 = await ready('edge-1');
    assert.equal(r1?.status, 'True');
    assert.equal(r1?.reason, 'KubeletReady');

    await sleepMs(1100);
    await setNodeReady(kc, 'edge-1', true); // no change: transition time stays, heartbeat moves
    const r2 = await ready('edge-1');
    assert.equal(r2?.lastTransitionTime?.getTime(), r1?.lastTransitionTime?.getTime());
    assert.ok(r2!.lastHeartbeatTime!.getTime() > r1!.lastHeartbeatTime!.getTime());
    assert.deepEqual(addresses(await find('edge-1')), ['InternalIP=10.0.0.11']);
  } finally {
    await deleteNodes(kc, ['edge-1', 'does-not-exist']);
  }
  assert.equal(await find('edge-1'), undefined);
});
