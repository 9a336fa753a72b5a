import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseAllDocuments } from 'yaml';
import { canonicalJson } from '../../src/gateway/canonical.ts';
import { canonicalGateway, gatewaysEqual, renderGatewaysYaml } from '../../src/gateway/render.ts';
import type { Gateway } from '../../src/gateway/types.ts';

const desired: Gateway = {
  apiVersion: 'raven.openyurt.io/v1beta1',
  kind: 'Gateway',
  metadata: {
    name: 'cloud',
    labels: { 'corvid.dev/topology': 'edge', 'corvid.dev/pool': 'cloud', 'app.kubernetes.io/managed-by': 'corvid' },
    annotations: { 'corvid.dev/peers': '["*"]', 'corvid.dev/election': '{"gw-1":"elected: most preferred healthy candidate"}' },
  },
  spec: {
    tunnelConfig: { Replicas: 1 },
    endpoints: [{ type: 'tunnel', nodeName: 'gw-1', port: 4500, underNAT: false, publicIP: '203.0.113.10', config: { 'corvid.dev/priority': '0' } }],
    nodeSelector: { matchLabels: { pool: 'cloud' } },
    proxyConfig: { Replicas: 0 },
  },
  status: { nodes: [{ subnets: ['10.244.0.0/24'], privateIP: '10.0.0.1', nodeName: 'gw-1' }], activeEndpoints: [] },
};

function live(over: (g: Gateway & { metadata: Record<string, unknown> }) => void): Gateway {
  const g = structuredClone(desired) as Gateway & { metadata: Record<string, unknown> };
  Object.assign(g.metadata, { resourceVersion: '42', uid: 'u-1', generation: 3, creationTimestamp: '2026-01-01T00:00:00Z', managedFields: [{ manager: 'corvid' }] });
  over(g);
  return g;
}

test('canonicalGateway sorts keys at every level and drops server fields', () => {
  const c = canonicalGateway(live(() => {}));
  assert.deepEqual(Object.keys(c), ['apiVersion', 'kind', 'metadata', 'spec', 'status']);
  assert.deepEqual(Object.keys(c.metadata), ['annotations', 'labels', 'name']);
  assert.deepEqual(Object.keys(c.spec), ['endpoints', 'nodeSelector', 'proxyConfig', 'tunnelConfig']);
  assert.deepEqual(Object.keys(c.spec.endpoints![0]), ['config', 'nodeName', 'port', 'publicIP', 'type', 'underNAT']);
  assert.deepEqual(Object.keys(c.status!.nodes![0]), ['nodeName', 'privateIP', 'subnets']);
  assert.equal(canonicalJson(c), canonicalJson(desired));
});

test('canonicalGateway keeps list order (endpoint preference is meaningful)', () => {
  const g = structuredClone(desired);
  g.spec.endpoints = [{ nodeName: 'b', type: 'tunnel' }, { nodeName: 'a', type: 'tunnel' }];
  assert.deepEqual(canonicalGateway(g).spec.endpoints!.map((e) => e.nodeName), ['b', 'a']);
});

test('renderGatewaysYaml: a stable stream of --- documents that parses back to the canonical objects', () => {
  const other = { ...structuredClone(desired), metadata: { ...desired.metadata, name: 'edge' } };
  const text = renderGatewaysYaml([desired, other]);
  assert.equal(text, renderGatewaysYaml([structuredClone(desired), structuredClone(other)]));
  assert.ok(text.startsWith('---\napiVersion: raven.openyurt.io/v1beta1\nkind: Gateway\nmetadata:\n'));
  const docs = parseAllDocuments(text).map((d) => d.toJS());
  assert.deepEqual(docs, [canonicalGateway(desired), canonicalGateway(other)]);
  assert.equal(renderGatewaysYaml([]), '');
  assert.ok(!/\n\s+[^\n]*\n\s+-\s*\\/.test(text));
});

test('renderGatewaysYaml never folds long JSON annotations', () => {
  const g = structuredClone(desired);
  g.metadata.annotations!['corvid.dev/denied-peers'] = JSON.stringify(Array.from({ length: 50 }, (_, i) => `pool-${i}`));
  const line = renderGatewaysYaml([g]).split('\n').find((l) => l.includes('corvid.dev/denied-peers'))!;
  assert.ok(line.includes('pool-49'));
});

test('gatewaysEqual ignores server fields and labels/annotations others own', () => {
  assert.equal(gatewaysEqual(desired, live(() => {})), true);
  assert.equal(gatewaysEqual(desired, live((g) => { g.metadata.labels!['team'] = 'net'; g.metadata.annotations!['kubectl.kubernetes.io/last-applied-configuration'] = '{}'; })), true);
});

test('gatewaysEqual sees every difference in what Corvid owns', () => {
  const cases: [string, (g: Gateway) => void][] = [
    ['owned label', (g) => { g.metadata.labels!['corvid.dev/pool'] = 'x'; }],
    ['missing owned label', (g) => { delete g.metadata.labels!['app.kubernetes.io/managed-by']; }],
    ['annotation value', (g) => { g.metadata.annotations!['corvid.dev/peers'] = '[]'; }],
    ['stale corvid.dev annotation', (g) => { g.metadata.annotations!['corvid.dev/relay'] = 'cloud'; }],
    ['spec', (g) => { g.spec.tunnelConfig = { Replicas: 0 }; }],
    ['endpoint order', (g) => { g.spec.endpoints = [...g.spec.endpoints!, { nodeName: 'gw-2', type: 'tunnel' as const }].reverse(); }],
    ['status', (g) => { g.status!.activeEndpoints = [g.spec.endpoints![0]]; }],
    ['name', (g) => { g.metadata.name = 'other'; }],
  ];
  for (const [what, change] of cases) assert.equal(gatewaysEqual(desired, live(change)), false, what);
});

test('gatewaysEqual does not care about key order or an absent vs empty status', () => {
  const reverse = (v: unknown): unknown =>
    Array.isArray(v) ? v.map(reverse) : v && typeof v === 'object' ? Object.fromEntries(Object.entries(v).reverse().map(([k, x]) => [k, reverse(x)])) : v;
  const reordered = reverse(desired) as Gateway;
  assert.notDeepEqual(Object.keys(reordered), Object.keys(desired));
  assert.equal(gatewaysEqual(desired, reordered), true);
  const noStatus = { ...structuredClone(desired), status: undefined };
  assert.equal(gatewaysEqual(noStatus, { ...noStatus, status: {} }), true);
});
