import { test } from 'node:test';
import assert from 'node:assert/strict';
import { plan, ANNOTATION_SIZE_LIMIT } from '../../src/plan/planner.ts';
import { encryptionFor, readGatewayLinks } from '../../src/gateway/annotations.ts';
import { linkPolicy } from '../../src/topology/policy.ts';
import type { Gateway } from '../../src/gateway/types.ts';
import { canonicalJson } from '../../src/gateway/canonical.ts';
import { DEFAULT_ENCRYPTION, input, node, NOW, pool, POOL_KEY, REV, topology } from './plan-fixtures.ts';

const byName = (gws: Gateway[]) => new Map(gws.map((g) => [g.metadata.name, g]));

test('one Gateway per pool, named after it, sorted, with Corvid labels and the revision', () => {
  const t = topology([pool('b', ['b1']), pool('a', ['a1'])]);
  const r = plan(input(t, [node('a1', 'a'), node('b1', 'b')]));
  assert.deepEqual(r.gateways.map((g) => g.metadata.name), ['a', 'b']);
  const g = r.gateways[0];
  assert.equal(g.apiVersion, 'raven.openyurt.io/v1beta1');
  assert.equal(g.kind, 'Gateway');
  assert.deepEqual(g.metadata.labels, { 'app.kubernetes.io/managed-by': 'corvid', 'corvid.dev/pool': 'a', 'corvid.dev/topology': 'edge' });
  assert.equal(g.metadata.annotations?.['corvid.dev/revision'], REV);
  assert.deepEqual(r.findings, []);
});

test('spec: selector verbatim, endpoints in preference order, upstream replica fields', () => {
  const sel = { matchExpressions: [{ key: POOL_KEY, operator: 'In' as const, values: ['a'] }, { key: 'gw', operator: 'Exists' as const }] };
  const t = topology([pool('a', ['a2', 'a1'], { nodeSelector: sel, behindNAT: true })]);
  const g = plan(input(t, [node('a1', 'a', { labels: { [POOL_KEY]: 'a', gw: '' } }), node('a2', 'a', { labels: { [POOL_KEY]: 'a', gw: '' } })])).gateways[0];
  assert.deepEqual(g.spec.nodeSelector, sel);
  assert.deepEqual(g.spec.endpoints, [
    { config: { 'corvid.dev/priority': '0' }, nodeName: 'a2', port: 4500, publicPort: 4500, type: 'tunnel', underNAT: true },
    { config: { 'corvid.dev/priority': '1' }, nodeName: 'a1', port: 4500, publicPort: 4500, type: 'tunnel', underNAT: true },
  ]);
  assert.deepEqual(g.spec.tunnelConfig, { Replicas: 1 });
  assert.deepEqual(g.spec.proxyConfig, { Replicas: 0 });
  assert.equal(g.spec.exposeType, undefined);
  assert.deepEqual(g.status?.activeEndpoints, [g.spec.endpoints![0]]);
});

test('priority is the rank in the topology list, stable when a candidate is missing', () => {
  const t = topology([pool('a', ['gone', 'a1'])]);
  const g = plan(input(t, [node('a1', 'a')])).gateways[0];
  assert.deepEqual(g.spec.endpoints!.map((e) => [e.nodeName, e.config!['corvid.dev/priority']]), [['gone', '0'], ['a1', '1']]);
  assert.deepEqual(g.status?.activeEndpoints?.map((e) => [e.nodeName, e.config!['corvid.dev/priority']]), [['a1', '1']]);
});

test('publicIP: the topology wins over the node annotation; the annotation fills in, in status only, when the topology has none', () => {
  const t = topology([pool('a', ['a1', 'a2', 'a3'], { publicIPs: { a1: '203.0.113.1' } })], { election: { replicas: 3 } });
  const r = plan(input(t, [node('a1', 'a', { publicIP: '198.51.100.1' }), node('a2', 'a', { publicIP: '2001:db8::2' }), node('a3', 'a')]));
  const g = r.gateways[0];
  assert.deepEqual(g.spec.endpoints!.map((e) => e.publicIP), ['203.0.113.1', undefined, undefined], 'spec: the topology alone');
  assert.deepEqual(g.status?.activeEndpoints?.map((e) => e.publicIP), ['203.0.113.1', '2001:db8::2', undefined], 'status: the effective address');
  assert.deepEqual(Object.keys(g.status!.activeEndpoints![1]), [...Object.keys(g.status!.activeEndpoints![1])].sort(), 'canonical key order');
  assert.deepEqual(r.findings.map((f) => `${f.code} ${f.node}`), ['public-ip-conflict a1']);
});

test('publicIP: a zoned address (which the validator refuses too) is left out, and no finding repeats the value', () => {
  const zoned = '2001:db8::10%eth0';
  const t = topology([pool('a', ['a1'], { publicIPs: { a1: zoned } })]);
  const r = plan(input(t, [node('a1', 'a', { publicIP: 'fe80::1%eth1' })]));
  assert.equal(r.gateways[0].spec.endpoints![0].publicIP, undefined);
  assert.deepEqual(r.findings.map((f) => `${f.severity} ${f.code} ${f.node}`), ['error invalid-public-ip a1', 'warning invalid-public-ip a1']);
  assert.ok(!JSON.stringify(r.findings).includes('%eth'), JSON.stringify(r.findings));
});

test('spec depends on the topology alone: every declared gateway, with or without nodes (corvid render = the sync)', () => {
  const t = topology([pool('a', ['a1', 'ghost', 'a2'], { publicIPs: { a2: '203.0.113.2' }, behindNAT: true }), pool('b', ['b1'])]);
  const withNodes = plan(input(t, [node('a1', 'a', { publicIP: '198.51.100.1' }), node('a2', 'a'), node('b1', 'b')]));
  const without = plan(input(t, []));
  assert.deepEqual(without.gateways.map((g) => g.spec), withNodes.gateways.map((g) => g.spec));
  assert.deepEqual(withNodes.gateways[0].spec.endpoints, [
    { config: { 'corvid.dev/priority': '0' }, nodeName: 'a1', port: 4500, publicPort: 4500, type: 'tunnel', underNAT: true },
    { config: { 'corvid.dev/priority': '1' }, nodeName: 'ghost', port: 4500, publicPort: 4500, type: 'tunnel', underNAT: true },
    { config: { 'corvid.dev/priority': '2' }, nodeName: 'a2', port: 4500, publicIP: '203.0.113.2', publicPort: 4500, type: 'tunnel', underNAT: true },
  ]);
  // The elected endpoint carries the node annotation's address in status.
  assert.deepEqual(withNodes.gateways[0].status?.activeEndpoints, [
    { config: { 'corvid.dev/priority': '0' }, nodeName: 'a1', port: 4500, publicIP: '198.51.100.1', publicPort: 4500, type: 'tunnel', underNAT: true },
  ]);
  // Without an inventory there is nothing to check gateways against: no gateway-not-in-pool, no election.
  assert.deepEqual(without.findings.filter((f) => f.code === 'gateway-not-in-pool'), []);
  assert.ok(without.gateways.every((g) => g.status?.activeEndpoints?.length === 0));
  assert.deepEqual(withNodes.findings.map((f) => `${f.code} ${f.node ?? ''}`), ['gateway-not-in-pool ghost']);
});

test('publicIP: an invalid annotation is ignored with a warning; an invalid topology value is an error', () => {
  const t = topology([pool('a', ['a1', 'a2'], { publicIPs: { a2: 'not-an-ip' } })]);
  const r = plan(input(t, [node('a1', 'a', { publicIP: 'gw.example.com' }), node('a2', 'a')]));
  assert.deepEqual(r.gateways[0].spec.endpoints!.map((e) => e.publicIP), [undefined, undefined]);
  assert.deepEqual(r.findings.map((f) => `${f.severity} ${f.code} ${f.node}`), ['warning invalid-public-ip a1', 'error invalid-public-ip a2']);
});

test('status.nodes: members sorted by name with first InternalIP and all podCIDRs', () => {
  const t = topology([pool('a', ['a1'])]);
  const r = plan(input(t, [node('a2', 'a', { internalIP: '10.1.0.2', podCIDRs: ['10.244.2.0/24', 'fd00:2::/64'] }), node('a1', 'a', { internalIP: '10.1.0.1', podCIDRs: ['10.244.1.0/24'] }), node('x', 'other')]));
  assert.deepEqual(r.gateways[0].status?.nodes, [
    { nodeName: 'a1', privateIP: '10.1.0.1', subnets: ['10.244.1.0/24'] },
    { nodeName: 'a2', privateIP: '10.1.0.2', subnets: ['10.244.2.0/24', 'fd00:2::/64'] },
  ]);
});

test('dual stack: an active gateway with both families publishes corvid.dev/private-ips in status only', () => {
  const t = topology([pool('a', ['a1', 'a2']), pool('b', ['b1']), pool('c', ['c1'])]);
  const nodes = [
    node('a1', 'a', { internalIP: '10.1.0.1', internalIPOtherFamily: 'fd00:1::1', podCIDRs: ['10.244.1.0/24', 'fd00:244:1::/64'] }),
    node('a2', 'a', { internalIP: '10.1.0.2', internalIPOtherFamily: 'fd00:1::2' }),
    // IPv6-primary: the value still lists IPv4 first.
    node('b1', 'b', { internalIP: 'fd00:2::1', internalIPOtherFamily: '10.2.0.1' }),
    node('c1', 'c', { internalIP: '10.3.0.1' }),
  ];
  const r = plan(input(t, nodes));
  const gws = byName(r.gateways);
  assert.deepEqual(gws.get('a')!.status?.activeEndpoints, [
    { config: { 'corvid.dev/priority': '0', 'corvid.dev/private-ips': '10.1.0.1,fd00:1::1' }, nodeName: 'a1', port: 4500, publicPort: 4500, type: 'tunnel', underNAT: false },
  ]);
  assert.deepEqual(gws.get('b')!.status?.activeEndpoints?.[0].config, { 'corvid.dev/priority': '0', 'corvid.dev/private-ips': '10.2.0.1,fd00:2::1' });
  // Single stack: exactly as before.
  assert.deepEqual(gws.get('c')!.status?.activeEndpoints?.[0].config, { 'corvid.dev/priority': '0' });
  // spec stays a function of the topology: equal to the spec planned without any node.
  const bare = byName(plan(input(t, [])).gateways);
  for (const name of ['a', 'b', 'c']) assert.deepEqual(gws.get(name)!.spec, bare.get(name)!.spec, name);
  // status.nodes keeps one privateIP per node (the first InternalIP).
  assert.deepEqual(gws.get('b')!.status?.nodes?.[0].privateIP, 'fd00:2::1');
  assert.deepEqual(r.findings, []);

  // Deterministic and canonical: byte-identical whatever the node order; re-planning changes nothing.
  const again = plan(input(t, [...nodes].reverse()));
  assert.equal(JSON.stringify(again.gateways), JSON.stringify(r.gateways));
  assert.equal(JSON.stringify(r.gateways), canonicalJson(r.gateways));
  const replanned = plan(input(t, nodes, { previous: r.gateways }));
  assert.equal(JSON.stringify(replanned.gateways), JSON.stringify(r.gateways));
});

test('dual stack: the key follows the election (a member that is not active publishes nothing)', () => {
  const t = topology([pool('a', ['a1', 'a2'])]);
  const a1 = node('a1', 'a', { internalIP: '10.1.0.1' });
  const a2 = node('a2', 'a', { internalIP: '10.1.0.2', internalIPOtherFamily: 'fd00:1::2' });
  assert.deepEqual(plan(input(t, [a1, a2])).gateways[0].status?.activeEndpoints?.[0].config, { 'corvid.dev/priority': '0' });
  const failedOver = plan(input(t, [{ ...a1, ready: false }, a2])).gateways[0].status?.activeEndpoints;
  assert.deepEqual(failedOver?.map((e) => [e.nodeName, e.config]), [['a2', { 'corvid.dev/priority': '1', 'corvid.dev/private-ips': '10.1.0.2,fd00:1::2' }]]);
});

test('nodes without InternalIP (left out of status) or podCIDRs get warnings', () => {
  const t = topology([pool('a', ['a1'])]);
  const r = plan(input(t, [node('a1', 'a'), node('a2', 'a', { internalIP: undefined }), node('a3', 'a', { podCIDRs: [] })]));
  assert.deepEqual(r.gateways[0].status?.nodes?.map((n) => n.nodeName), ['a1', 'a3']);
  assert.deepEqual(r.findings.map((f) => `${f.severity} ${f.code} ${f.node}`), ['warning node-without-internal-ip a2', 'warning node-without-pod-cidr a3']);
});

test('a node selected by two pools belongs to the first by name, with a finding', () => {
  const t = topology([pool('b', ['x']), pool('a', ['x'], { nodeSelector: { matchLabels: { shared: 'yes' } } })]);
  const r = plan(input(t, [node('x', 'b', { labels: { [POOL_KEY]: 'b', shared: 'yes' } })]));
  const g = byName(r.gateways);
  assert.deepEqual(g.get('a')!.status?.nodes?.map((n) => n.nodeName), ['x']);
  assert.deepEqual(g.get('b')!.status?.nodes, []);
  assert.deepEqual(g.get('a')!.status?.activeEndpoints?.map((e) => e.nodeName), ['x']);
  const codes = r.findings.map((f) => `${f.code} ${f.pool} ${f.node ?? ''}`);
  assert.ok(codes.includes('node-in-two-pools a x'));
  assert.ok(codes.includes('gateway-not-in-pool b x'));
  assert.match(r.findings.find((f) => f.code === 'gateway-not-in-pool')!.message, /belongs to pool a/);
});

test('a preferred gateway outside its pool is not a candidate: missing node, selector mismatch', () => {
  const t = topology([pool('a', ['ghost', 'stranger', 'a1'])]);
  const r = plan(input(t, [node('a1', 'a'), node('stranger', undefined)]));
  assert.deepEqual(r.gateways[0].spec.endpoints!.map((e) => e.nodeName), ['ghost', 'stranger', 'a1'], 'spec lists every declared gateway');
  assert.deepEqual(r.gateways[0].status?.activeEndpoints?.map((e) => e.nodeName), ['a1']);
  assert.deepEqual(r.findings.map((f) => f.message), [
    'gateway ghost of pool a is not a candidate: no such node',
    'gateway stranger of pool a is not a candidate: the pool selector does not match it',
  ]);
});

test('an invalid selector selects nothing and is an error finding', () => {
  const t = topology([pool('a', ['a1'], { nodeSelector: { matchExpressions: [{ key: POOL_KEY, operator: 'In', values: [] }] } })]);
  const r = plan(input(t, [node('a1', 'a')]));
  assert.deepEqual(r.gateways[0].status?.nodes, []);
  assert.ok(r.findings.some((f) => f.code === 'invalid-selector' && f.severity === 'error'));
});

test('duplicate node names: one is used, with a finding, whatever the order', () => {
  const t = topology([pool('a', ['a1'])]);
  const x = node('a1', 'a', { internalIP: '10.0.0.1' });
  const y = node('a1', 'a', { internalIP: '10.0.0.2' });
  const r1 = plan(input(t, [x, y]));
  const r2 = plan(input(t, [y, x]));
  assert.equal(JSON.stringify(r1), JSON.stringify(r2));
  assert.deepEqual(r1.findings.map((f) => f.code), ['duplicate-node']);
});

test('peers: ["*"] and no denied-peers when nothing is denied', () => {
  const t = topology([pool('a', []), pool('b', []), pool('c', [])]);
  for (const g of plan(input(t, [])).gateways) {
    assert.equal(g.metadata.annotations?.['corvid.dev/peers'], '["*"]');
    assert.equal(g.metadata.annotations?.['corvid.dev/denied-peers'], undefined);
  }
});

test('peers: denied pairs listed on both sides; default-deny rules give an explicit allow list', () => {
  const t = topology([pool('a', []), pool('b', []), pool('c', []), pool('hub', [])], {
    connectivity: {
      mode: 'mesh',
      rules: [
        { action: 'deny', pools: ['a', 'b'] },
        { action: 'allow', pools: ['c', 'hub'] },
        { action: 'deny', pools: ['c', '*'] },
      ],
    },
  });
  const g = byName(plan(input(t, [])).gateways);
  const ann = (p: string, k: string) => g.get(p)!.metadata.annotations?.[`corvid.dev/${k}`];
  assert.equal(ann('a', 'peers'), '["*"]');
  assert.equal(ann('a', 'denied-peers'), '["b","c"]');
  assert.equal(ann('b', 'denied-peers'), '["a","c"]');
  assert.equal(ann('c', 'peers'), '["hub"]');
  assert.equal(ann('c', 'denied-peers'), undefined);
  assert.equal(ann('hub', 'peers'), '["*"]');
  assert.equal(ann('hub', 'denied-peers'), undefined);
});

test('encryption: each pool publishes the defaults, its default, its own override and its links[] entries', () => {
  const strict = { espProposals: ['aes256gcm16'] };
  const link = { ikeProposals: ['aes256-sha384-modp3072'] };
  const t = topology([pool('a', []), pool('b', [], { encryption: strict }), pool('c', [], { encryption: strict }), pool('d', [])], {
    links: [{ pools: ['d', 'a'], encryption: link }],
  });
  const g = byName(plan(input(t, [])).gateways);
  const ann = (p: string) => g.get(p)!.metadata.annotations!;
  const enc = (p: string) => Object.fromEntries(Object.entries(ann(p)).filter(([k]) => k.startsWith('corvid.dev/encryption')));
  const defaults = JSON.stringify({ allowInsecure: false, backend: 'ipsec', espProposals: ['aes256-sha256'], ikeProposals: ['aes256-sha256-modp2048'], pskSecretRef: { key: 'psk', name: 'corvid-psk' } });
  assert.deepEqual(enc('a'), { 'corvid.dev/encryption': defaults, 'corvid.dev/encryption-defaults': defaults, 'corvid.dev/encryption-links': '{"d":{"ikeProposals":["aes256-sha384-modp3072"]}}' });
  assert.deepEqual(enc('d'), { 'corvid.dev/encryption': defaults, 'corvid.dev/encryption-defaults': defaults, 'corvid.dev/encryption-links': '{"a":{"ikeProposals":["aes256-sha384-modp3072"]}}' });
  assert.deepEqual(enc('b'), {
    'corvid.dev/encryption': defaults.replace('"aes256-sha256"]', '"aes256gcm16"]'),
    'corvid.dev/encryption-defaults': defaults,
    'corvid.dev/encryption-pool': '{"espProposals":["aes256gcm16"]}',
  });
  const links = (p: string) => readGatewayLinks(g.get(p)!);
  assert.deepEqual(links('b').encryption, { ...DEFAULT_ENCRYPTION, ...strict });
  for (const [x, y] of [['a', 'b'], ['a', 'd'], ['b', 'c'], ['b', 'd'], ['c', 'd']]) {
    assert.deepEqual(encryptionFor(links(x), links(y)), linkPolicy(t, x, y), `${x}-${y}`);
    assert.deepEqual(encryptionFor(links(y), links(x)), linkPolicy(t, x, y), `${y}-${x}`);
  }
});

test('encryption: links[] entries of denied pairs are not published', () => {
  const t = topology([pool('a', []), pool('b', [], { encryption: { espProposals: ['x'] } }), pool('c', [])], {
    connectivity: { mode: 'mesh', rules: [{ action: 'deny', pools: ['a', 'b'] }] },
    links: [{ pools: ['a', 'b'], encryption: { ikeProposals: ['y'] } }, { pools: ['a', 'c'], encryption: { ikeProposals: ['z'] } }],
  });
  const g = byName(plan(input(t, [])).gateways);
  assert.equal(g.get('a')!.metadata.annotations?.['corvid.dev/encryption-links'], '{"c":{"ikeProposals":["z"]}}');
  assert.equal(g.get('b')!.metadata.annotations?.['corvid.dev/encryption-links'], undefined);
  assert.equal(g.get('b')!.metadata.annotations?.['corvid.dev/encryption-pool'], '{"espProposals":["x"]}');
});

test('hub mode: connectivity annotation on every Gateway, relay = hub on every spoke', () => {
  const t = topology([pool('hub', []), pool('s1', []), pool('s2', [], { behindNAT: true })], { connectivity: { mode: 'hub', hub: 'hub', rules: [] } });
  const g = byName(plan(input(t, [])).gateways);
  for (const p of ['hub', 's1', 's2']) assert.equal(readGatewayLinks(g.get(p)!).connectivity, 'hub');
  assert.equal(g.get('s1')!.metadata.annotations?.['corvid.dev/relay'], 'hub');
  assert.equal(g.get('hub')!.metadata.annotations?.['corvid.dev/relays-for'], '["s1","s2"]');
  const mesh = plan(input(topology([pool('a', [])]), [])).gateways[0];
  assert.equal(mesh.metadata.annotations?.['corvid.dev/connectivity'], undefined);
});

test('a live Gateway not labelled for this topology is adopted with a warning', () => {
  const t = topology([pool('a', ['a1'])]);
  const foreign: Gateway = { apiVersion: 'raven.openyurt.io/v1beta1', kind: 'Gateway', metadata: { name: 'a' }, spec: {}, status: { activeEndpoints: [{ nodeName: 'a1', type: 'tunnel' }] } };
  const r = plan(input(t, [node('a1', 'a'), node('a0', 'a')], { previous: [foreign] }));
  assert.deepEqual(r.findings.map((f) => f.code), ['gateway-adopted']);
  assert.deepEqual(r.decisions, [], 'its active endpoint is kept (sticky across the migration)');
});

test('annotations over the Kubernetes size limit are an error finding; a pool\'s annotations grow only with its own links[]', () => {
  const names = Array.from({ length: 1500 }, (_, i) => `store-${String(i).padStart(4, '0')}-${'x'.repeat(40)}`);
  // 1500 pools with their own overrides: every Gateway stays small (the old per-peer overrides put all 1500 on cloud).
  const overrides = topology([pool('cloud', []), ...names.map((n) => pool(n, [], { encryption: { espProposals: ['aes256gcm16'] } }))]);
  const small = plan(input(overrides, []));
  assert.deepEqual(small.findings.filter((f) => f.code === 'annotations-too-large'), []);
  const size = (g: Gateway) => Object.entries(g.metadata.annotations ?? {}).reduce((n, [k, v]) => n + k.length + v.length, 0);
  assert.ok(Math.max(...small.gateways.map(size)) < 2048);
  // 1500 links[] entries on one pool: that pool's Gateway (only) carries them all.
  const links = topology(overrides.pools, { links: names.map((n) => ({ pools: ['cloud', n] as [string, string], encryption: { ikeProposals: ['aes256-sha384-modp3072', 'aes256-sha512-modp4096', 'aes256gcm16-prfsha384-ecp384', 'aes256gcm16-prfsha512-ecp521'] } })) });
  const r = plan(input(links, []));
  const big = r.findings.filter((f) => f.code === 'annotations-too-large');
  assert.deepEqual(big.map((f) => f.pool), ['cloud']);
  assert.match(big[0].message, new RegExp(String(ANNOTATION_SIZE_LIMIT)));
});

test('no pools: no Gateways', () => {
  assert.deepEqual(plan(input(topology([]), [node('x', 'a')])), {
    gateways: [],
    findings: [],
    decisions: [],
    podSubnets: { source: 'podCIDR', decidedBy: 'default', reason: 'node.spec.podCIDRs (no pod-subnet source given)' },
  });
});

test('re-planning with the output as previous gives equal objects and no decisions', () => {
  const t = topology([pool('a', ['a1', 'a2']), pool('n', ['n1'], { behindNAT: true }), pool('m', ['m1'], { behindNAT: true }), pool('c', ['c1'])], { election: { replicas: 2 } });
  const nodes = [node('a1', 'a'), node('a2', 'a', { readySince: '2026-01-01T00:59:59Z' }), node('n1', 'n'), node('m1', 'm'), node('c1', 'c')];
  const first = plan(input(t, nodes));
  const second = plan(input(t, nodes, { previous: first.gateways }));
  assert.equal(JSON.stringify(second.gateways), JSON.stringify(first.gateways));
  assert.deepEqual(second.decisions, []);
});

test('the output has sorted keys everywhere (canonical)', () => {
  const t = topology([pool('a', ['a1'], { publicIPs: { a1: '203.0.113.1' } })]);
  const g = plan(input(t, [node('a1', 'a')])).gateways[0];
  const check = (v: unknown): void => {
    if (Array.isArray(v)) v.forEach(check);
    else if (v && typeof v === 'object') {
      const keys = Object.keys(v);
      assert.deepEqual(keys, [...keys].sort());
      Object.values(v).forEach(check);
    }
  };
  check(g);
  assert.equal(NOW.length > 0, true);
});
