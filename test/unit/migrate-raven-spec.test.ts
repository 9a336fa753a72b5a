// How `corvid import` compares a live Raven Gateway's spec with the one Corvid renders (src/migrate/raven-spec.ts):
// as Raven's Go types and webhook read them, without Corvid's own additions, and nothing else.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatDifference, ravenSpecDifferences, sameRavenSpec } from '../../src/migrate/raven-spec.ts';

const SELECTOR = { matchLabels: { 'raven.openyurt.io/gateway': 'gw-a' } };

/** A spec as Corvid's planner writes it for one candidate. */
const corvidSpec = (ep: Record<string, unknown> = {}) => ({
  endpoints: [{ config: { 'corvid.dev/priority': '0' }, nodeName: 'n1', port: 4500, publicPort: 4500, type: 'tunnel', underNAT: false, ...ep }],
  nodeSelector: SELECTOR,
  proxyConfig: { Replicas: 0 },
  tunnelConfig: { Replicas: 1 },
});

test("Go's zero values read as absent, and Raven's webhook fills a tunnel endpoint's port", () => {
  const raven = { nodeSelector: SELECTOR, tunnelConfig: { Replicas: 1 }, endpoints: [{ nodeName: 'n1', type: 'tunnel' }] };
  assert.ok(sameRavenSpec(raven, corvidSpec()), 'no port, no underNAT, no proxyConfig: the same as Corvid with its defaults');
  assert.deepEqual(ravenSpecDifferences(raven, corvidSpec()), []);
  assert.ok(sameRavenSpec({ ...raven, exposeType: '', proxyConfig: { Replicas: 0, proxyHTTPPort: '' } }, corvidSpec()));
});

test("Corvid's additions do not count: corvid.dev/ endpoint config, publicPort 4500 where Raven has none", () => {
  const raven = { nodeSelector: SELECTOR, tunnelConfig: { Replicas: 1 }, proxyConfig: { Replicas: 0 }, endpoints: [{ nodeName: 'n1', type: 'tunnel', port: 4500 }] };
  assert.ok(sameRavenSpec(raven, corvidSpec({ config: { 'corvid.dev/priority': '3', 'corvid.dev/other': 'x' } })));
  assert.ok(sameRavenSpec(raven, corvidSpec({ publicPort: 4500 })));
});

test('everything else counts: a NAT-T port, natType, foreign config, underNAT, exposeType, replicas, the selector', () => {
  const base = { nodeSelector: SELECTOR, tunnelConfig: { Replicas: 1 }, endpoints: [{ nodeName: 'n1', type: 'tunnel', port: 4500 }] };
  const ep = (x: Record<string, unknown>) => ({ ...base, endpoints: [{ ...base.endpoints[0], ...x }] });
  assert.equal(sameRavenSpec(ep({ publicPort: 31245 }), corvidSpec()), false);
  assert.equal(sameRavenSpec(ep({ publicPort: 31245 }), corvidSpec({ publicPort: 31245 })), true);
  assert.equal(sameRavenSpec(ep({ natType: 'Port restricted NAT' }), corvidSpec()), false);
  assert.equal(sameRavenSpec(ep({ config: { 'enable-l3-tunnel': 'true' } }), corvidSpec()), false);
  assert.equal(sameRavenSpec(ep({ underNAT: true }), corvidSpec()), false);
  assert.equal(sameRavenSpec(ep({ port: 4501 }), corvidSpec()), false);
  assert.equal(sameRavenSpec({ ...base, exposeType: 'PublicIP' }, corvidSpec()), false);
  assert.equal(sameRavenSpec({ ...base, tunnelConfig: { Replicas: 0 } }, corvidSpec()), false);
  assert.equal(sameRavenSpec({ ...base, nodeSelector: { matchLabels: { pool: 'a' } } }, corvidSpec()), false);
  // An empty selector selects every node, an absent one none: not the same.
  assert.equal(sameRavenSpec({ ...base, nodeSelector: {} }, { ...base, nodeSelector: undefined }), false);
});

test('differences are JSON paths with both values; an endpoint config value is never shown', () => {
  const raven = {
    exposeType: 'LoadBalancer',
    nodeSelector: SELECTOR,
    tunnelConfig: { Replicas: 1 },
    proxyConfig: { Replicas: 1 },
    endpoints: [{ nodeName: 'n1', type: 'tunnel', port: 4500, config: { token: 's3cr3t-value' } }, { nodeName: 'n2', type: 'proxy' }],
  };
  const d = ravenSpecDifferences(raven, corvidSpec());
  assert.deepEqual(
    d.map((x) => x.path),
    ['spec.endpoints[0].config', 'spec.endpoints[1]', 'spec.exposeType', 'spec.proxyConfig.Replicas'],
  );
  const text = d.map(formatDifference).join('\n');
  assert.match(text, /spec\.exposeType \(live "LoadBalancer", Corvid none\)/);
  assert.match(text, /spec\.proxyConfig\.Replicas \(live 1, Corvid 0\)/);
  assert.match(text, /spec\.endpoints\[0\]\.config \(live set, Corvid none\)/);
  assert.doesNotMatch(text, /s3cr3t/);
});
