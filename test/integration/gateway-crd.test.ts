// deploy/crds/gateway.yaml on a real kube-apiserver (1.20): it is accepted and Established, planned Gateways
// (spec and status) round-trip through server-side apply unchanged, and what upstream refuses is refused.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFile, mkdtemp, rm } from 'node:fs/promises';
import { request } from 'node:https';
import type { RequestOptions } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ApiextensionsV1Api, CustomObjectsApi, PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';
import type { KubeConfig } from '@kubernetes/client-node';
import { installCrds, useControlPlane } from '../support/controlplane.ts';
import { plan } from '../../src/plan/planner.ts';
import { gatewaysEqual } from '../../src/gateway/render.ts';
import type { Gateway } from '../../src/gateway/types.ts';
import { GATEWAY_GROUP, GATEWAY_PLURAL, GATEWAY_VERSION } from '../../src/gateway/types.ts';
import { input, node, pool, topology } from '../unit/plan-fixtures.ts';

const cp = useControlPlane();
const apply = setHeaderOptions('Content-Type', PatchStrategy.ServerSideApply);
const base = { group: GATEWAY_GROUP, version: GATEWAY_VERSION, plural: GATEWAY_PLURAL };

async function installGatewayCrd(kc: KubeConfig): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'corvid-gw-crd-'));
  try {
    await copyFile(fileURLToPath(new URL('../../deploy/crds/gateway.yaml', import.meta.url)), join(dir, 'gateway.yaml'));
    await installCrds(kc, dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

async function applyGateway(kc: KubeConfig, gw: Gateway): Promise<Gateway> {
  const api = kc.makeApiClient(CustomObjectsApi);
  const { status, ...rest } = gw;
  await api.patchClusterCustomObject({ ...base, name: gw.metadata.name, body: rest, fieldManager: 'corvid-test', force: true }, apply);
  if (status) {
    await api.patchClusterCustomObjectStatus(
      { ...base, name: gw.metadata.name, body: { apiVersion: gw.apiVersion, kind: gw.kind, metadata: { name: gw.metadata.name }, status }, fieldManager: 'corvid-test-status', force: true },
      apply,
    );
  }
  return (await api.getClusterCustomObject({ ...base, name: gw.metadata.name })) as Gateway;
}

test('the Gateway CRD is accepted by kube-apiserver 1.20 and planned Gateways round-trip unchanged', { skip: cp.skip }, async () => {
  const kc = cp.get().kubeConfig;
  await installGatewayCrd(kc);
  const crd = await kc.makeApiClient(ApiextensionsV1Api).readCustomResourceDefinition({ name: `${GATEWAY_PLURAL}.${GATEWAY_GROUP}` });
  assert.deepEqual(crd.spec.names.shortNames, ['gw']);

  const t = topology(
    [
      pool('cloud', ['c1', 'c2'], { publicIPs: { c1: '203.0.113.10', c2: '2001:db8::1' } }),
      pool('lyon', ['l1'], { behindNAT: true, encryption: { espProposals: ['aes256gcm16'] } }),
      pool('berlin', ['b1'], { behindNAT: true }),
    ],
    { election: { replicas: 2 }, connectivity: { mode: 'mesh', rules: [{ action: 'deny', pools: ['lyon', 'berlin'] }] } },
  );
  const nodes = [node('c1', 'cloud'), node('c2', 'cloud', { podCIDRs: ['10.1.0.0/24', 'fd00:1::/64'] }), node('l1', 'lyon'), node('b1', 'berlin')];
  const desired = plan(input(t, nodes)).gateways;
  for (const gw of desired) {
    const live = await applyGateway(kc, gw);
    assert.ok(gatewaysEqual(gw, live), `${gw.metadata.name}: ${JSON.stringify(live)}`);
    assert.ok(live.metadata.resourceVersion);
  }
});

/** `kubectl get gw`: the server-side Table for the Gateways. */
async function table(kc: KubeConfig): Promise<{ columnDefinitions: { name: string }[]; rows: { cells: unknown[] }[] }> {
  const url = new URL(`${kc.getCurrentCluster()!.server}/apis/${GATEWAY_GROUP}/${GATEWAY_VERSION}/${GATEWAY_PLURAL}`);
  const opts: RequestOptions = { method: 'GET', headers: { Accept: 'application/json;as=Table;v=v1;g=meta.k8s.io' } };
  await kc.applyToHTTPSOptions(opts);
  return new Promise((resolve, reject) => {
    const req = request(url, opts, (res) => {
      let body = '';
      res.on('data', (c) => (body += c));
      res.on('end', () => (res.statusCode === 200 ? resolve(JSON.parse(body)) : reject(new Error(`${res.statusCode}: ${body}`))));
    });
    req.on('error', reject);
    req.end();
  });
}

test('kubectl get gw shows the active endpoint like upstream', { skip: cp.skip }, async () => {
  const kc = cp.get().kubeConfig;
  await installGatewayCrd(kc);
  const t = topology([pool('cloud', ['c1'], { publicIPs: { c1: '203.0.113.10' } })]);
  await applyGateway(kc, plan(input(t, [node('c1', 'cloud')])).gateways[0]);
  const tb = await table(kc);
  assert.deepEqual(tb.columnDefinitions.map((c) => c.name), ['Name', 'ActiveEndpoint', 'PublicIP', 'NAT', 'Age']);
  const row = tb.rows.find((r) => r.cells[0] === 'cloud')!;
  assert.deepEqual(row.cells.slice(0, 4), ['cloud', 'c1', '203.0.113.10', false]);
});

test('the CRD refuses what upstream refuses: endpoint type, exposeType, tunnelConfig.Replicas > 1', { skip: cp.skip }, async () => {
  const kc = cp.get().kubeConfig;
  await installGatewayCrd(kc);
  const ok: Gateway = {
    apiVersion: 'raven.openyurt.io/v1beta1',
    kind: 'Gateway',
    metadata: { name: 'bad' },
    spec: { endpoints: [{ nodeName: 'n', type: 'tunnel' }], tunnelConfig: { Replicas: 1 }, proxyConfig: { Replicas: 0 } },
  };
  const api = kc.makeApiClient(CustomObjectsApi);
  const cases: [string, Record<string, unknown>][] = [
    ['type', { ...ok.spec, endpoints: [{ nodeName: 'n', type: 'vpn' }] }],
    ['exposeType', { ...ok.spec, exposeType: 'NodePort' }],
    ['Replicas', { ...ok.spec, tunnelConfig: { Replicas: 2 } }],
  ];
  for (const [what, spec] of cases) {
    await assert.rejects(
      api.createClusterCustomObject({ ...base, body: { ...ok, metadata: { name: `bad-${what.toLowerCase()}` }, spec } }),
      (e: unknown) => /Unsupported value|should be less than or equal to 1|must be less than or equal to 1|Invalid value/.test(String((e as { body?: unknown }).body ?? e)),
      what,
    );
  }
  await api.createClusterCustomObject({ ...base, body: ok });
});
