// --gateway-spec=external against a real API server: Argo CD's part (corvid render, applied under another field
// manager) is played by the test; the sync only elects. It creates, changes and prunes no Gateway, writes status to
// those whose spec is the plan's, and reports the others as WaitingForGatewaySpec.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createNode, useControlPlane } from '../support/controlplane.ts';
import { ensureNamespace, installCorvidCrds, renderGateways as render, sleep, startTestSync, topologyYaml, waitFor, type TestSync } from './sync-fixtures.ts';
import { applyGateway, getGateway, listGateways } from '../../src/adapters/kube/gateways.ts';
import { getTopology } from '../../src/adapters/kube/topologies.ts';
import type { Condition } from '../../src/reconcile/conditions.ts';
import { listEvents } from '../../src/adapters/kube/events.ts';
import type { Gateway } from '../../src/gateway/types.ts';
import type { KubeConfig } from '@kubernetes/client-node';

let sync: TestSync | undefined;
let dir: string | undefined;
after(async () => {
  await sync?.handle.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});
const cp = useControlPlane();

const sha256 = (t: string) => `sha256:${createHash('sha256').update(t).digest('hex')}`;

/** What Argo CD does with the rendered manifests: apply them under its own field manager. */
async function argoApply(kc: KubeConfig, gateways: Gateway[]): Promise<void> {
  for (const g of gateways) await applyGateway(kc, g, { fieldManager: 'argocd-controller' });
}

function condition(conds: Condition[] | undefined, type: string): Condition | undefined {
  return conds?.find((c) => c.type === type);
}

test('external Gateway spec: the sync waits for the spec owner, then writes status only, and never prunes', { skip: cp.skip, timeout: 60_000 }, async (t) => {
  const kc = cp.get().kubeConfig;
  await installCorvidCrds(kc);
  await ensureNamespace(kc, 'corvid-system');
  for (const [name, pool, n] of [['x1', 'x', 1], ['x2', 'x', 2], ['y1', 'y', 3]] as const) {
    await createNode(kc, { name, labels: { pool }, internalIP: `10.0.9.${n}`, podCIDRs: [`10.244.9${n}.0/24`], ready: true });
  }
  dir = await mkdtemp(join(tmpdir(), 'corvid-external-'));
  const file = join(dir, 'topology.yaml');
  const v1 = topologyYaml({ name: 'ext', pools: [{ name: 'pool-x', label: 'x', gateways: ['x1', 'x2'] }, { name: 'pool-y', label: 'y', gateways: ['y1'] }] });
  await writeFile(file, v1);
  sync = await startTestSync(kc, { source: { kind: 'file', path: file, intervalMs: 600_000 }, gatewaySpec: 'external' });

  await t.test('(a) no Gateways yet: nothing is created, the Topology waits naming them', async () => {
    const ready = await waitFor('waiting for the spec', async () => {
      const c = condition((await getTopology(kc, 'ext'))?.status?.conditions, 'Ready');
      return c?.reason === 'WaitingForGatewaySpec' ? c : undefined;
    });
    assert.equal(ready.status, 'False');
    assert.match(ready.message, /to 2 Gateways: pool-x \(missing\), pool-y \(missing\)/);
    const st = (await getTopology(kc, 'ext'))!.status!;
    assert.deepEqual([condition(st.conditions, 'Reconciling')?.status, condition(st.conditions, 'Reconciling')?.reason], ['True', 'WaitingForGatewaySpec']);
    assert.equal(condition(st.conditions, 'Stalled'), undefined);
    await sleep(300);
    assert.deepEqual((await listGateways(kc)).items, [], 'the sync created no Gateway');
  });

  await t.test('(b) Argo CD applies the render: status and election are written, corvid-sync owns no spec field', async () => {
    await argoApply(kc, await render(file));
    await waitFor('Ready', async () => condition((await getTopology(kc, 'ext'))?.status?.conditions, 'Ready')?.status === 'True');
    const x = (await getGateway(kc, 'pool-x'))!;
    const y = (await getGateway(kc, 'pool-y'))!;
    assert.deepEqual(x.status?.activeEndpoints?.map((e) => e.nodeName), ['x1']);
    assert.deepEqual(y.status?.activeEndpoints?.map((e) => e.nodeName), ['y1']);
    assert.deepEqual(x.status?.nodes?.map((n) => n.nodeName), ['x1', 'x2']);
    assert.match(x.metadata.annotations?.['corvid.dev/election'] ?? '', /"x1":"elected/);
    for (const g of [x, y]) {
      const managers = (g.metadata as { managedFields?: { manager: string; operation: string; fieldsV1: any }[] }).managedFields ?? [];
      const of = (m: string) => managers.filter((e) => e.manager === m);
      assert.ok(of('argocd-controller').some((e) => e.fieldsV1['f:spec'] !== undefined), 'the spec owner owns the spec');
      for (const e of of('corvid-sync')) {
        assert.equal(e.fieldsV1['f:spec'], undefined, `${g.metadata.name}: corvid-sync owns spec fields`);
        assert.deepEqual(Object.keys(e.fieldsV1['f:metadata']?.['f:annotations'] ?? {}), ['f:corvid.dev/election'], 'only the election annotation');
        assert.equal(e.fieldsV1['f:metadata']?.['f:labels'], undefined);
      }
      assert.ok(of('corvid-sync').length > 0, `${g.metadata.name}: the election annotation is the sync's`);
      for (const e of of('corvid-sync-status')) assert.deepEqual(Object.keys(e.fieldsV1).filter((k) => k !== 'f:status'), []);
      assert.equal(g.metadata.annotations?.['corvid.dev/revision'], sha256(v1));
    }
  });

  await t.test('(c, d) a new revision: the stale Gateway is not written and waits; the dropped one is not pruned', async () => {
    await sleep(300);
    const rvBefore = Object.fromEntries((await listGateways(kc)).items.map((g) => [g.metadata.name, g.metadata.resourceVersion]));
    // pool-y leaves the topology; pool-x gains a candidate, so its live spec is at the old revision and differs.
    const v2 = topologyYaml({ name: 'ext', pools: [{ name: 'pool-x', label: 'x', gateways: ['x1', 'x2', 'y1'] }] });
    await writeFile(file, v2);
    const ready = await waitFor('waiting for the v2 spec', async () => {
      const tp = await getTopology(kc, 'ext');
      const c = condition(tp?.status?.conditions, 'Ready');
      return tp?.status?.lastAttemptedRevision === sha256(v2) && c?.reason === 'WaitingForGatewaySpec' ? c : undefined;
    });
    assert.equal(ready.message, `waiting for the spec owner to apply revision ${sha256(v2)} to 1 Gateway: pool-x (at ${sha256(v1)})`);
    // Not applied yet: the status and the Events still name v1 as the last applied revision.
    assert.equal((await getTopology(kc, 'ext'))?.status?.lastAppliedRevision, sha256(v1));
    const appliedNotes = async () => (await listEvents(kc, 'kube-system')).filter((e) => e.reason === 'RevisionApplied' && e.regarding?.name === 'ext').map((e) => e.note);
    assert.ok(!(await appliedNotes()).includes(`applied revision ${sha256(v2)}`), 'RevisionApplied for v2 before Argo CD applied it');
    await sleep(500);
    const rvAfter = Object.fromEntries((await listGateways(kc)).items.map((g) => [g.metadata.name, g.metadata.resourceVersion]));
    assert.deepEqual(rvAfter, rvBefore, 'neither Gateway was written nor deleted');

    // Argo CD syncs v2 (without pruning here, to show the sync leaves pool-y alone too).
    await argoApply(kc, await render(file));
    await waitFor('Ready at v2', async () => {
      const tp = await getTopology(kc, 'ext');
      return tp?.status?.lastAppliedRevision === sha256(v2) && condition(tp.status.conditions, 'Ready')?.status === 'True';
    });
    await waitFor('RevisionApplied for v2', async () => (await appliedNotes()).includes(`applied revision ${sha256(v2)}`));
    const x = (await getGateway(kc, 'pool-x'))!;
    assert.deepEqual(x.spec.endpoints?.map((e) => e.nodeName), ['x1', 'x2', 'y1']);
    assert.deepEqual(x.status?.activeEndpoints?.map((e) => e.nodeName), ['x1'], 'the election is sticky across the spec change');
    assert.ok(await getGateway(kc, 'pool-y'), 'pool-y is still there: pruning is the spec owner\'s');
    assert.equal((await getGateway(kc, 'pool-y'))!.metadata.resourceVersion, rvBefore['pool-y']);
  });
});
