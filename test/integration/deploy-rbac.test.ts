// deploy/base RBAC against a real kube-apiserver: the sync (the real reconciler, Topology-object source, leader
// election, Events, Calico BlockAffinities found through discovery) and the agent's Kubernetes side (heartbeat Lease, Gateway informer) run with ServiceAccount
// tokens bound by deploy/base, and everything outside their grants is refused with 403. The optional components'
// roles are tested the same way.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseAllDocuments, parse as parseYaml } from 'yaml';
import { KubeConfig } from '@kubernetes/client-node';
import { createNode, installCrds, useControlPlane } from '../support/controlplane.ts';
import { installCorvidCrds, renderGateways, startTestSync, topologyYaml, waitFor, type TestSync } from './sync-fixtures.ts';
import { jsonPatch } from '../support/json6902.ts';
import { CONTENT_TYPE, kubeRequest, statusCode } from '../../src/adapters/kube/client.ts';
import { applyGateway, gatewayInformer, listGateways } from '../../src/adapters/kube/gateways.ts';
import { applyTopology, getTopology } from '../../src/adapters/kube/topologies.ts';
import { listEvents, DEFAULT_EVENT_NAMESPACE } from '../../src/adapters/kube/events.ts';
import { Heartbeat } from '../../src/adapters/kube/heartbeat.ts';
import { DEFAULT_LEASE_NAMESPACE, LEADER_LEASE_NAME, leasesPath } from '../../src/adapters/kube/leases.ts';
import { listNodes } from '../../src/adapters/kube/nodes.ts';
import type { Gateway } from '../../src/gateway/types.ts';

const REPO_ROOT = new URL('../../', import.meta.url).pathname;
const NS = 'corvid-system';
/** Where the agents' heartbeat Leases live; the sync's leader Lease stays in NS. */
const HEARTBEATS = DEFAULT_LEASE_NAMESPACE;
const cp = useControlPlane();
const SKIP = cp.skip ?? (process.env.TEST_KUBECONFIG ? 'needs a local control plane (it installs cluster-wide RBAC), not TEST_KUBECONFIG' : undefined);

function docs(pathInRepo: string): any[] {
  return parseAllDocuments(readFileSync(join(REPO_ROOT, pathInRepo), 'utf8')).map((d) => d.toJS());
}

const PLURAL: Record<string, string> = {
  Namespace: 'namespaces',
  ServiceAccount: 'serviceaccounts',
  ClusterRole: 'clusterroles',
  ClusterRoleBinding: 'clusterrolebindings',
  Role: 'roles',
  RoleBinding: 'rolebindings',
};

/** Server-side apply of the manifests as written (namespaces included, as kustomize would leave them). */
async function applyManifests(kc: KubeConfig, objs: any[]): Promise<void> {
  for (const o of objs) {
    const [group, version] = o.apiVersion.includes('/') ? o.apiVersion.split('/') : ['', o.apiVersion];
    const base = group === '' ? `/api/${version}` : `/apis/${group}/${version}`;
    const ns = o.metadata.namespace ? `/namespaces/${o.metadata.namespace}` : '';
    const plural = PLURAL[o.kind];
    assert.ok(plural, `no path for kind ${o.kind}`);
    await kubeRequest(kc, {
      method: 'PATCH',
      path: `${base}${ns}/${plural}/${o.metadata.name}`,
      query: { fieldManager: 'corvid-test', force: true },
      body: o,
      contentType: CONTENT_TYPE.apply,
    });
  }
}

/** A kubeconfig that authenticates as a ServiceAccount, with a token from the TokenRequest API. */
async function serviceAccountConfig(admin: KubeConfig, name: string): Promise<KubeConfig> {
  const tr = await kubeRequest<{ status: { token: string } }>(admin, {
    method: 'POST',
    path: `/api/v1/namespaces/${NS}/serviceaccounts/${name}/token`,
    body: { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenRequest', spec: { expirationSeconds: 3600 } },
  });
  const cluster = admin.getCurrentCluster()!;
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: 'c', server: cluster.server, caData: cluster.caData, skipTLSVerify: false }],
    users: [{ name, token: tr.status.token }],
    contexts: [{ name, cluster: 'c', user: name }],
    currentContext: name,
  });
  return kc;
}

async function forbidden(what: string, call: () => Promise<unknown>): Promise<void> {
  try {
    await call();
  } catch (e) {
    assert.equal(statusCode(e), 403, `${what}: expected 403, got ${(e as Error).message}`);
    return;
  }
  assert.fail(`${what}: allowed, but RBAC should refuse it`);
}

describe('deploy/base RBAC on a real API server', { skip: SKIP }, () => {
  let admin: KubeConfig;
  let syncKc: KubeConfig;
  let agentKc: KubeConfig;
  let sync: TestSync | undefined;

  before(async () => {
    admin = cp.get().kubeConfig;
    await installCorvidCrds(admin);
    await applyManifests(admin, [
      ...docs('deploy/base/namespace.yaml'),
      ...docs('deploy/base/serviceaccounts.yaml'),
      ...docs('deploy/base/rbac-sync.yaml'),
      ...docs('deploy/base/rbac-agent.yaml'),
    ]);
    syncKc = await serviceAccountConfig(admin, 'corvid-sync');
    agentKc = await serviceAccountConfig(admin, 'corvid-agent');
    await createNode(admin, { name: 'rbac-a1', labels: { pool: 'a' }, internalIP: '10.1.0.1', podCIDRs: ['10.244.1.0/24'] });
    await createNode(admin, { name: 'rbac-b1', labels: { pool: 'b' }, internalIP: '10.2.0.1', podCIDRs: ['10.244.2.0/24'] });
  });

  after(async () => {
    await sync?.handle.stop();
  });

  test('the sync reconciles a Topology object into Gateways, status and Events as corvid-sync', async () => {
    const text = topologyYaml({ name: 'rbac', pools: [{ name: 'a', label: 'a', gateways: ['rbac-a1'] }, { name: 'b', label: 'b', gateways: ['rbac-b1'] }] });
    const topology = parseAllDocuments(text)[0].toJS();
    await kubeRequest(admin, {
      method: 'PATCH',
      path: `/apis/corvid.dev/v1alpha1/topologies/${topology.metadata.name}`,
      query: { fieldManager: 'gitops', force: true },
      body: topology,
      contentType: CONTENT_TYPE.apply,
    });

    sync = await startTestSync(syncKc, {
      source: { kind: 'cluster' },
      leaseNamespace: HEARTBEATS,
      leaderElection: { namespace: NS, identity: 'rbac-test', leaseDurationMs: 3000, renewDeadlineMs: 2000, retryPeriodMs: 500 },
    });
    const ready = await waitFor(
      'Topology Ready=True',
      async () => {
        const t = await getTopology(admin, 'rbac');
        return t?.status?.conditions?.find((c) => c.type === 'Ready' && c.status === 'True') ? t : undefined;
      },
      30_000,
    );
    assert.equal(ready.status?.observedGeneration, ready.metadata?.generation);
    const gws = (await listGateways(admin)).items;
    assert.deepEqual(gws.map((g) => g.metadata.name).sort(), ['a', 'b']);
    assert.ok(sync.handle.isLeader(), 'leader election through the Role in corvid-system');
    const lease = await kubeRequest(admin, { method: 'GET', path: `/apis/coordination.k8s.io/v1/namespaces/${NS}/leases` });
    assert.ok(lease.items.some((l: any) => l.spec?.holderIdentity === 'rbac-test'));
    const events = await listEvents(admin, DEFAULT_EVENT_NAMESPACE);
    assert.ok(
      events.some((e) => e.reportingController === 'corvid.dev/sync'),
      `the sync recorded Events in ${DEFAULT_EVENT_NAMESPACE}: ${JSON.stringify(events.map((e) => e.reason))}`,
    );
    const denied = sync.logs.filter((l) => /forbidden|\b403\b/i.test(JSON.stringify(l)));
    assert.deepEqual(denied, [], 'no request of the sync was refused');
  });

  test('the sync finds and reads Calico BlockAffinities of both API groups as corvid-sync, and cannot write them', async () => {
    await installCrds(admin, join(REPO_ROOT, 'test', 'fixtures', 'calico'));
    const affinity = (gv: string, node: string, cidr: string, deleted: string | boolean) => ({
      apiVersion: gv,
      kind: 'BlockAffinity',
      metadata: { name: `${node}-${cidr.replace(/[.:/]/g, '-')}` },
      spec: { cidr, node, state: 'confirmed', deleted, type: 'host' },
    });
    await kubeRequest(admin, { method: 'POST', path: '/apis/crd.projectcalico.org/v1/blockaffinities', body: affinity('crd.projectcalico.org/v1', 'rbac-a1', '192.168.1.0/26', 'false') });
    await kubeRequest(admin, { method: 'POST', path: '/apis/projectcalico.org/v3/blockaffinities', body: affinity('projectcalico.org/v3', 'rbac-b1', '192.168.2.0/26', false) });
    await sync!.handle.rediscoverCalico();
    const subnets = async (name: string) => (await listGateways(admin)).items.find((g) => g.metadata.name === name)?.status?.nodes?.[0]?.subnets;
    await waitFor('Calico blocks in status.nodes', async () => (await subnets('a'))?.[0] === '192.168.1.0/26' && (await subnets('b'))?.[0] === '192.168.2.0/26', 15_000);
    const denied = sync!.logs.filter((l) => /forbidden|\b403\b/i.test(JSON.stringify(l)));
    assert.deepEqual(denied, [], 'no request of the sync was refused');
    for (const gv of ['crd.projectcalico.org/v1', 'projectcalico.org/v3']) {
      await forbidden(`corvid-sync creates a BlockAffinity in ${gv}`, () =>
        kubeRequest(syncKc, { method: 'POST', path: `/apis/${gv}/blockaffinities`, body: affinity(gv, 'rbac-a1', '192.168.3.0/26', false) }),
      );
      await forbidden(`corvid-sync deletes a BlockAffinity in ${gv}`, () =>
        kubeRequest(syncKc, { method: 'DELETE', path: `/apis/${gv}/blockaffinities/rbac-a1-192-168-1-0-26` }),
      );
    }
    await forbidden('corvid-sync reads CRDs', () => kubeRequest(syncKc, { method: 'GET', path: '/apis/apiextensions.k8s.io/v1/customresourcedefinitions' }));
  });

  test('the agent heartbeats and watches Gateways as corvid-agent', async () => {
    const hb = new Heartbeat({ kc: agentKc, nodeName: 'rbac-a1', namespace: HEARTBEATS, renewIntervalMs: 200 });
    hb.setEnabled(true);
    hb.setTunnels({ b: { up: true, since: '2026-11-24T10:00:00Z' } });
    hb.start();
    const informer = gatewayInformer(agentKc);
    try {
      await informer.start();
      await waitFor('two renewals', () => (hb.counts.renewals >= 2 ? true : undefined), 10_000);
      hb.setTunnels({ b: { up: false, since: '2026-11-24T10:00:05Z' } });
      await waitFor('annotation rewritten', () => (hb.counts.annotationWrites >= 2 ? true : undefined), 10_000);
      assert.equal(hb.counts.errors, 0, 'no heartbeat write was refused');
      const lease = await kubeRequest(admin, { method: 'GET', path: `${leasesPath(HEARTBEATS)}/rbac-a1` });
      assert.match(lease.metadata.annotations['corvid.dev/tunnels'], /"up":false/);
      // The Gateways the sync wrote in the previous test, seen through the agent's own watch.
      await waitFor('Gateways in the agent\'s cache', () => (informer.list().length >= 2 ? true : undefined), 10_000);
    } finally {
      await hb.stop();
      await informer.stop();
      // A stopped heartbeat turns stale after its duration and would keep rbac-a1 from the later tests' elections.
      await kubeRequest(admin, { method: 'DELETE', path: `${leasesPath(HEARTBEATS)}/rbac-a1` }).catch(() => undefined);
    }
  });

  test('everything else is refused', async () => {
    const secret = `/api/v1/namespaces/${NS}/secrets`;
    for (const [who, kc] of [['corvid-sync', syncKc], ['corvid-agent', agentKc]] as const) {
      await forbidden(`${who} lists Secrets`, () => kubeRequest(kc, { method: 'GET', path: secret }));
      await forbidden(`${who} reads Secret corvid-psk`, () => kubeRequest(kc, { method: 'GET', path: `${secret}/corvid-psk` }));
      await forbidden(`${who} writes a Lease in default`, () =>
        kubeRequest(kc, { method: 'POST', path: '/apis/coordination.k8s.io/v1/namespaces/default/leases', body: { metadata: { name: 'x' }, spec: {} } }),
      );
      await forbidden(`${who} patches a Node`, () =>
        kubeRequest(kc, { method: 'PATCH', path: '/api/v1/nodes/rbac-a1', body: { metadata: { labels: { x: 'y' } } }, contentType: CONTENT_TYPE.mergePatch }),
      );
    }
    await forbidden('corvid-agent lists Nodes', () => listNodes(agentKc));
    await forbidden('corvid-agent writes a Gateway', () => applyGateway(agentKc, gateway('rbac-x')));
    await forbidden('corvid-agent lists Leases', () => kubeRequest(agentKc, { method: 'GET', path: leasesPath(NS) }));
    await forbidden('corvid-agent lists heartbeat Leases', () => kubeRequest(agentKc, { method: 'GET', path: leasesPath(HEARTBEATS) }));
    // The sync's leader Lease (the first test's sync holds it): no agent can read, take, renew or release it.
    const leader = `${leasesPath(NS)}/${LEADER_LEASE_NAME}`;
    const held = await kubeRequest(admin, { method: 'GET', path: leader });
    await forbidden('corvid-agent reads the leader Lease', () => kubeRequest(agentKc, { method: 'GET', path: leader }));
    await forbidden('corvid-agent takes the leader Lease', () =>
      kubeRequest(agentKc, { method: 'PUT', path: leader, body: { ...held, spec: { ...held.spec, holderIdentity: 'rbac-a1' } } }),
    );
    await forbidden('corvid-agent releases the leader Lease', () =>
      kubeRequest(agentKc, { method: 'PATCH', path: leader, body: { spec: { holderIdentity: null } }, contentType: CONTENT_TYPE.mergePatch }),
    );
    await forbidden('corvid-agent deletes the leader Lease', () => kubeRequest(agentKc, { method: 'DELETE', path: leader }));
    await forbidden('corvid-agent creates a Lease in corvid-system', () =>
      kubeRequest(agentKc, { method: 'POST', path: leasesPath(NS), body: { metadata: { name: 'corvid-sync-leader-2' }, spec: {} } }),
    );
    // ... and the sync cannot forge a heartbeat.
    await forbidden('corvid-sync writes a heartbeat Lease', () =>
      kubeRequest(syncKc, { method: 'POST', path: leasesPath(HEARTBEATS), body: { metadata: { name: 'rbac-b1' }, spec: { holderIdentity: 'rbac-b1' } } }),
    );
    await forbidden('corvid-sync reads Events', () => listEvents(syncKc, DEFAULT_EVENT_NAMESPACE));
    await forbidden('corvid-sync rewrites a Topology spec', () => applyTopology(syncKc, { name: 'rbac', spec: { pools: [] } }));
  });

  test('deploy/components/topology-status-object lets the sync keep a Topology object for git/file sources', async () => {
    await applyManifests(admin, docs('deploy/components/topology-status-object/rbac.yaml'));
    const text = topologyYaml({ name: 'rbac-git', pools: [{ name: 'a', label: 'a', gateways: ['rbac-a1'] }] });
    const spec = parseAllDocuments(text)[0].toJS().spec;
    // RBAC caches refresh at once on 1.20 for new bindings, but allow the authorizer a moment.
    const obj = await waitFor('apply allowed', async () => applyTopology(syncKc, { name: 'rbac-git', spec }).catch(() => undefined), 10_000);
    assert.equal(obj.metadata?.name, 'rbac-git');
    await forbidden('corvid-sync deletes a Topology', () => kubeRequest(syncKc, { method: 'DELETE', path: '/apis/corvid.dev/v1alpha1/topologies/rbac-git' }));
  });

  test('deploy/components/gateway-spec-external: the sync elects with the reduced role while Argo CD writes the Gateways', async () => {
    await sync?.handle.stop(); // the apply-mode sync of the first test needs the full role
    sync = undefined;
    const component = docs('deploy/components/gateway-spec-external/kustomization.yaml')[0];
    const rolePatch = component.patches.find((p: any) => p.target.kind === 'ClusterRole' && p.target.name === 'corvid-sync');
    const base = docs('deploy/base/rbac-sync.yaml').find((o) => o.kind === 'ClusterRole' && o.metadata.name === 'corvid-sync');
    await applyManifests(admin, [jsonPatch(base, parseYaml(rolePatch.patch))]);
    const createGateway = () => kubeRequest(syncKc, { method: 'POST', path: '/apis/raven.openyurt.io/v1beta1/gateways', body: gateway('rbac-x') });
    await waitFor('the reduced role in force', async () => createGateway().then(() => false, (e) => statusCode(e) === 403), 10_000);
    const dir = await mkdtemp(join(tmpdir(), 'corvid-rbac-ext-'));
    try {
      const file = join(dir, 'topology.yaml');
      await writeFile(file, topologyYaml({ name: 'rbac-ext', pools: [{ name: 'ext-a', label: 'a', gateways: ['rbac-a1'] }, { name: 'ext-b', label: 'b', gateways: ['rbac-b1'] }] }));
      // Argo CD's part, with its own rights: the rendered Gateways.
      for (const g of await renderGateways(file)) await applyGateway(admin, g, { fieldManager: 'argocd-controller' });
      sync = await startTestSync(syncKc, { source: { kind: 'file', path: file, intervalMs: 600_000 }, gatewaySpec: 'external', leaseNamespace: HEARTBEATS });
      await waitFor('Topology rbac-ext Ready=True', async () => (await getTopology(admin, 'rbac-ext'))?.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'), 30_000);
      const gws = (await listGateways(admin)).items.filter((g) => g.metadata.name.startsWith('ext-'));
      assert.deepEqual(gws.map((g) => g.status?.activeEndpoints?.[0]?.nodeName).sort(), ['rbac-a1', 'rbac-b1'], 'status written under the reduced role');
      assert.ok(gws.every((g) => g.metadata.annotations?.['corvid.dev/election']), 'the election annotation written (merge patch)');
      const denied = sync.logs.filter((l) => /forbidden|\b403\b/i.test(JSON.stringify(l)));
      assert.deepEqual(denied, [], 'no request of the sync was refused');
      await forbidden('corvid-sync (reduced) deletes a Gateway', () => kubeRequest(syncKc, { method: 'DELETE', path: '/apis/raven.openyurt.io/v1beta1/gateways/ext-a' }));
      await forbidden('corvid-sync (reduced) replaces a Gateway', () => kubeRequest(syncKc, { method: 'PUT', path: '/apis/raven.openyurt.io/v1beta1/gateways/ext-a', body: gws[0] }));
    } finally {
      await sync?.handle.stop();
      sync = undefined;
      await applyManifests(admin, [base]);
      await rm(dir, { recursive: true, force: true });
    }
  });
});

function gateway(name: string): Gateway {
  return {
    apiVersion: 'raven.openyurt.io/v1beta1',
    kind: 'Gateway',
    metadata: { name },
    spec: { endpoints: [{ nodeName: 'rbac-a1', type: 'tunnel', port: 4500, underNAT: false }], tunnelConfig: { Replicas: 1 }, proxyConfig: { Replicas: 1 } },
  } as Gateway;
}
