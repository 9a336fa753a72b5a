// corvid diff / status / graph against a real kube-apiserver: the CRDs from deploy/crds, Nodes from the example
// snapshot, Gateways applied as the sync would (same plan()), heartbeat Leases as the agents write them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CoreV1Api } from '@kubernetes/client-node';
import type { KubeConfig } from '@kubernetes/client-node';
import { createNode, deleteNodes, installCrds, setNodeReady, useControlPlane } from '../support/controlplane.ts';
import { corvid, EXAMPLE, EXAMPLE_NODES } from '../unit/cli-support.ts';
import { ownedBy, parseSnapshot, planDesired, readLive } from '../../src/cli/inputs.ts';
import { loadTopology } from '../../src/topology/index.ts';
import { applyGateway, applyGatewayStatus, deleteGateway, listGateways } from '../../src/adapters/kube/gateways.ts';
import { kubeRequest } from '../../src/adapters/kube/client.ts';
import { DEFAULT_LEASE_NAMESPACE, leasesPath } from '../../src/adapters/kube/leases.ts';

const cp = useControlPlane();
const snapshot = parseSnapshot(readFileSync(EXAMPLE_NODES, 'utf8'));
const exampleText = readFileSync(EXAMPLE, 'utf8');

/** One sync pass: plan from the live cluster (as the sync does) and apply spec and status. */
async function syncOnce(kc: KubeConfig, text: string, now: string): Promise<void> {
  const r = loadTopology(text, 'example.yaml');
  assert.ok(r.ok);
  const live = await readLive(kc);
  const result = planDesired({ topology: r.topology, revision: 'main@sha1:1111111111111111111111111111111111111111', nodes: live.nodes, leases: live.leases, previous: ownedBy(live.gateways, r.topology.name), now });
  for (const g of result.gateways) {
    await applyGateway(kc, g);
    if (g.status) await applyGatewayStatus(kc, g.metadata.name, g.status);
  }
}

/**
 * A heartbeat Lease as the agent writes it (MicroTime wants microseconds), renewed at `renewed` (the commands' own
 * now, CORVID_NOW), created or replaced.
 */
async function putLease(kc: KubeConfig, node: string, renewed: string, tunnels?: Record<string, { up: boolean; since: string }>): Promise<void> {
  const micro = (t: string) => new Date(t).toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');
  const body = {
    apiVersion: 'coordination.k8s.io/v1',
    kind: 'Lease',
    metadata: { name: node, ...(tunnels ? { annotations: { 'corvid.dev/tunnels': JSON.stringify(tunnels) } } : {}) },
    spec: { holderIdentity: node, leaseDurationSeconds: 3600, renewTime: micro(renewed), acquireTime: micro(renewed) },
  };
  await kubeRequest(kc, { method: 'DELETE', path: `${leasesPath(DEFAULT_LEASE_NAMESPACE)}/${node}` }).catch(() => undefined);
  await kubeRequest(kc, { method: 'POST', path: leasesPath(DEFAULT_LEASE_NAMESPACE), body });
}

/** The example's gateway candidates: each runs an agent, whose heartbeat the sync needs before it elects it. */
const CANDIDATES = ['cloud-gw-1', 'cloud-gw-2', 'lyon-edge-1', 'lyon-edge-2', 'berlin-gw-a', 'berlin-gw-b', 'oslo-gw-1'];

test('diff, status and graph against a live cluster', { skip: cp.skip, timeout: 240_000 }, async () => {
  const kc = cp.get().kubeConfig;
  const env = { KUBECONFIG: cp.get().kubeconfigPath, CORVID_NOW: new Date(Date.now() + 120_000).toISOString() };
  const dir = mkdtempSync(join(tmpdir(), 'corvid-cli-it-'));
  try {
    await installCrds(kc);
    for (const n of snapshot.nodes) {
      await createNode(kc, { name: n.name, labels: n.labels, internalIP: n.internalIP, podCIDRs: n.podCIDRs, ready: n.ready });
    }
    await kc.makeApiClient(CoreV1Api).createNamespace({ body: { metadata: { name: DEFAULT_LEASE_NAMESPACE } } });
    for (const c of CANDIDATES) await putLease(kc, c, env.CORVID_NOW);

    // Nothing applied yet: every Gateway is a create.
    const first = await corvid(['diff', '-f', EXAMPLE], env);
    assert.equal(first.code, 1, first.stderr);
    assert.match(first.stdout, /Gateways: 4 to create/);

    // After a sync pass: no differences, exit 0 (revision not compared without --revision).
    await syncOnce(kc, exampleText, env.CORVID_NOW);
    const same = await corvid(['diff', '-f', EXAMPLE], env);
    assert.equal(same.code, 0, same.stdout + same.stderr);
    assert.match(same.stdout, /No differences: the 4 Gateways of edge-network are up to date\.\nImpact:\n  none/);
    const json = await corvid(['diff', '-f', EXAMPLE, '-o', 'json'], env);
    assert.equal(json.code, 0);
    assert.equal(JSON.parse(json.stdout).changed, false);
    const rev = await corvid(['diff', '-f', EXAMPLE, '--revision', 'main@sha1:2222222222222222222222222222222222222222'], env);
    assert.equal(rev.code, 1, 'with --revision the annotation is compared');
    assert.match(rev.stdout, /^-    corvid\.dev\/revision: main@sha1:1111/m);

    // A topology change: a new deny rule. Our diff and an external one both report it.
    const denied = join(dir, 'denied.yaml');
    writeFileSync(
      denied,
      exampleText.replace('        pools: [store-berlin, factory-lyon]', '        pools: [store-berlin, factory-lyon]\n      - action: deny\n        pools: [cloud, warehouse-oslo]'),
    );
    const change = await corvid(['diff', '-f', denied], env);
    assert.equal(change.code, 1);
    assert.match(change.stdout, /^--- live\/gateway\/cloud\n\+\+\+ merged\/gateway\/cloud\n/m);
    assert.match(change.stdout, /connectivity LOST \(1\): cloud ↔ warehouse-oslo/);
    const external = await corvid(['diff', '-f', denied], { ...env, KUBECTL_EXTERNAL_DIFF: 'diff -u -N' });
    assert.equal(external.code, 1, external.stderr);
    assert.match(external.stdout, /^--- .*\/LIVE-[^/]+\/raven\.openyurt\.io\.v1beta1\.Gateway\.\.cloud\t/m);
    assert.match(external.stdout, /^\+    corvid\.dev\/denied-peers: '\["warehouse-oslo"\]'$/m);
    const script = join(dir, 'list-dirs');
    writeFileSync(script, '#!/bin/sh\nls "$1"; ls "$2"\nexit 1\n');
    chmodSync(script, 0o755);
    const listed = await corvid(['diff', '-f', denied], { ...env, KUBECTL_EXTERNAL_DIFF: script });
    assert.equal(listed.code, 1);
    assert.equal(
      listed.stdout,
      'raven.openyurt.io.v1beta1.Gateway..cloud\nraven.openyurt.io.v1beta1.Gateway..warehouse-oslo\n'.repeat(2),
    );

    // Offline snapshot plus the cluster's live Gateways (--nodes with --kubeconfig).
    const mixed = await corvid(['diff', '-f', EXAMPLE, '--nodes', EXAMPLE_NODES, '--kubeconfig', env.KUBECONFIG], { CORVID_NOW: env.CORVID_NOW });
    assert.ok(mixed.code === 0 || mixed.code === 1, mixed.stderr);
    assert.doesNotMatch(mixed.stdout, /to create/);

    // A gateway going NotReady: the election moves, and diff says so in words.
    await setNodeReady(kc, 'cloud-gw-1', false);
    const failover = await corvid(['diff', '-f', EXAMPLE], env);
    assert.equal(failover.code, 1);
    assert.match(failover.stdout, /active gateway of cloud: cloud-gw-1 → cloud-gw-2/);
    assert.match(failover.stdout, /re-established, gateway moved/);
    await setNodeReady(kc, 'cloud-gw-1', true);

    // status: tunnels from the agents' Leases.
    const since = new Date().toISOString();
    await putLease(kc, 'cloud-gw-1', env.CORVID_NOW, { 'factory-lyon': { up: true, since }, 'store-berlin': { up: true, since }, 'warehouse-oslo': { up: false, since } });
    await putLease(kc, 'oslo-gw-1', env.CORVID_NOW, { cloud: { up: false, since }, 'factory-lyon': { up: true, since }, 'store-berlin': { up: true, since } });
    const status = await corvid(['status', '-o', 'json'], env);
    assert.equal(status.code, 0, status.stderr);
    const report = JSON.parse(status.stdout);
    const cloud = report.pools.find((p: { pool: string }) => p.pool === 'cloud');
    assert.deepEqual(cloud.active, ['cloud-gw-1']);
    assert.equal(`${cloud.tunnelsUp}/${cloud.tunnelsExpected}`, '2/3');
    assert.equal(cloud.revision, 'main@sha1:1111111111111111111111111111111111111111');
    const table = await corvid(['status'], env);
    assert.equal(table.code, 0);
    assert.match(table.stdout, /^POOL +ACTIVE +CANDIDATES +TUNNELS +REVISION +CONDITIONS\ncloud +cloud-gw-1 +cloud-gw-2\(ok\) +2\/3 +main@sha1:111111111111 +TunnelsDown\n/);
    const wide = await corvid(['status', '-o', 'wide'], env);
    assert.match(wide.stdout, /203\.0\.113\.10:4500/);

    // graph --live: every pool, health colours, the reported-down tunnel in red.
    const graph = await corvid(['graph', '--live'], env);
    assert.equal(graph.code, 0, graph.stderr);
    for (const p of ['cloud', 'factory-lyon', 'store-berlin', 'warehouse-oslo']) assert.ok(graph.stdout.includes(`id="pool-${p}"`));
    assert.match(graph.stdout, /cloud ↔ warehouse-oslo: direct tunnel \(down\)/);
    assert.match(graph.stdout, /cloud ↔ factory-lyon: direct tunnel \(up\)/);
    assert.match(graph.stdout, /· live/);

    // A cluster that does not answer: exit >1 and a hint.
    const kcText = readFileSync(env.KUBECONFIG, 'utf8').replace(/server: https:\/\/127\.0\.0\.1:\d+/, 'server: https://127.0.0.1:1');
    const deadKc = join(dir, 'dead-kubeconfig');
    writeFileSync(deadKc, kcText);
    const dead = await corvid(['diff', '-f', EXAMPLE, '--kubeconfig', deadKc], { CORVID_NOW: env.CORVID_NOW });
    assert.equal(dead.code, 2);
    assert.match(dead.stderr, /cannot read the cluster: .*is the cluster reachable\?/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
    if (process.env.TEST_KUBECONFIG) {
      await deleteNodes(kc, snapshot.nodes.map((n) => n.name));
      for (const g of (await listGateways(kc, { labelSelector: 'corvid.dev/topology=edge-network' })).items) await deleteGateway(kc, g.metadata.name, { uid: g.metadata.uid, resourceVersion: g.metadata.resourceVersion });
    }
  }
});
