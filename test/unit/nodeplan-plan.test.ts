import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { nodePlan, wireguardTunnels } from '../../src/nodeplan/index.ts';
import type { NodePlan, TunnelPlan } from '../../src/nodeplan/index.ts';
import { encodeEncryptionOverrides, encodeGatewayAnnotations } from '../../src/gateway/annotations.ts';
import { GATEWAY_API_VERSION, GATEWAY_KIND, type Gateway } from '../../src/gateway/types.ts';
import { ENCRYPTION_DEFAULTS_ANNOTATION, ENCRYPTION_OVERRIDES_ANNOTATION, POOL_LABEL } from '../../src/gateway/keys.ts';
import { mergeLinkPolicy } from '../../src/topology/policy.ts';
import type { EncryptionOverride, EncryptionPolicy } from '../../src/topology/types.ts';

/** A well-formed WireGuard public key, one per node name (the bytes do not matter to the plan). */
function wgKey(node: string): string {
  return createHash('sha256').update(node).digest('base64');
}

const IPSEC: EncryptionPolicy = {
  backend: 'ipsec',
  ikeProposals: ['aes256-sha256-modp2048'],
  espProposals: ['aes256-sha256'],
  pskSecretRef: { name: 'corvid-psk', key: 'psk' },
  allowInsecure: false,
};

interface PoolSpec {
  nodes: Array<[name: string, ip: string, ...subnets: string[]]>;
  active?: string;
  nat?: boolean;
  publicIP?: string;
  publicPort?: number;
  peers?: string[];
  denied?: string[];
  relay?: string;
  relaysFor?: string[];
  /** The topology's global defaults (corvid.dev/encryption-defaults); in the old format, the pool default. */
  encryption?: EncryptionPolicy;
  /** The pool's own partial override (corvid.dev/encryption-pool). */
  poolOverride?: EncryptionOverride;
  /** Peer -> the links[] override of the pair (corvid.dev/encryption-links). */
  links?: Record<string, EncryptionOverride>;
  /** Old format (a sync before encryption-defaults): peer -> full policy (corvid.dev/encryption-overrides). */
  oldOverrides?: Record<string, EncryptionPolicy>;
  connectivity?: 'mesh' | 'hub';
  /** status.activeEndpoints[0].config['corvid.dev/private-ips'] (a dual-stack gateway); any value, for malformed ones. */
  privateIPs?: unknown;
  /** corvid.dev/mtu */
  mtu?: number;
  /** corvid.dev/wireguard-keys: node -> public key (defaults to a key per node for every pool). */
  wgKeys?: Record<string, string>;
  /** spec.endpoints: the gateway candidates (the active one alone by default). */
  candidates?: string[];
}

function encryptionAnnotations(pool: string, s: PoolSpec): Record<string, string> {
  const defaults = s.encryption ?? IPSEC;
  const ann = encodeGatewayAnnotations({
    peers: s.peers ?? ['*'],
    deniedPeers: s.denied,
    connectivity: s.connectivity,
    relay: s.relay,
    relaysFor: s.relaysFor,
    encryption: mergeLinkPolicy(defaults, { name: pool, encryption: s.poolOverride }, { name: pool, encryption: s.poolOverride }, undefined),
    encryptionDefaults: defaults,
    encryptionPool: s.poolOverride,
    encryptionLinks: s.links,
    mtu: s.mtu,
    wireguardKeys: s.wgKeys ?? Object.fromEntries(s.nodes.map(([n]) => [n, wgKey(n)])),
  });
  if (s.oldOverrides === undefined) return ann;
  delete ann[ENCRYPTION_DEFAULTS_ANNOTATION];
  if (Object.keys(s.oldOverrides).length > 0) ann[ENCRYPTION_OVERRIDES_ANNOTATION] = encodeEncryptionOverrides(s.oldOverrides);
  return ann;
}

function gw(pool: string, s: PoolSpec): Gateway {
  const nat = s.nat ?? false;
  const endpoint = (nodeName: string) => ({
    nodeName,
    type: 'tunnel' as const,
    port: 4500,
    underNAT: nat,
    ...(s.publicIP && nodeName === s.active ? { publicIP: s.publicIP } : {}),
    ...(s.publicPort && nodeName === s.active ? { publicPort: s.publicPort } : {}),
  });
  return {
    apiVersion: GATEWAY_API_VERSION,
    kind: GATEWAY_KIND,
    metadata: {
      name: pool,
      labels: { [POOL_LABEL]: pool },
      annotations: encryptionAnnotations(pool, s),
    },
    spec: { endpoints: (s.candidates ?? (s.active ? [s.active] : [])).map(endpoint), tunnelConfig: { Replicas: 1 } },
    status: {
      nodes: s.nodes.map(([nodeName, privateIP, ...subnets]) => ({ nodeName, privateIP, subnets })),
      activeEndpoints: s.active
        ? [s.privateIPs === undefined ? endpoint(s.active) : { ...endpoint(s.active), config: { 'corvid.dev/private-ips': s.privateIPs as string } }]
        : [],
    },
  };
}

// Two public pools.
const A = (o: Partial<PoolSpec> = {}) =>
  gw('a', { nodes: [['a-gw', '10.1.0.10', '10.101.0.0/24'], ['a-n1', '10.1.0.11', '10.101.1.0/24']], active: 'a-gw', publicIP: '192.0.2.1', ...o });
const B = (o: Partial<PoolSpec> = {}) =>
  gw('b', { nodes: [['b-gw', '10.2.0.10', '10.102.0.0/24'], ['b-n1', '10.2.0.11', '10.102.1.0/24']], active: 'b-gw', publicIP: '192.0.2.2', ...o });

function tunnel(p: NodePlan, peer: string): TunnelPlan {
  const t = p.tunnels.find((x) => x.peerPool === peer);
  assert.ok(t, `no tunnel to ${peer}; tunnels: ${p.tunnels.map((x) => x.peerPool)}; findings: ${JSON.stringify(p.findings)}`);
  return t;
}

test('active gateway: one tunnel per peer pool, one CHILD_SA with all subnets as TS lists, an IKE connection per candidate of the peer pool', () => {
  const p = nodePlan({ gateways: [A(), B()], nodeName: 'a-gw' });
  assert.equal(p.role, 'gateway');
  assert.equal(p.pool, 'a');
  assert.equal(p.gatewayNode, 'a-gw');
  assert.deepEqual(p.tunnels, [
    {
      name: 'corvid-b',
      peerPool: 'b',
      peerNode: 'b-gw',
      role: 'initiator', // both public: the smaller pool name initiates
      localId: 'a-gw.a.node.corvid',
      remoteId: 'b-gw.b.node.corvid',
      localAddr: '10.1.0.10',
      remoteAddr: '192.0.2.2',
      localTs: ['10.101.0.0/24', '10.101.1.0/24'],
      remoteTs: ['10.102.0.0/24', '10.102.1.0/24'],
      ikeProposals: ['aes256-sha256-modp2048'],
      espProposals: ['aes256-sha256'],
      pskSecretRef: { name: 'corvid-psk', key: 'psk' },
      relayed: [],
      peers: [{ node: 'b-gw', conn: 'corvid-b@b-gw', id: 'b-gw.b.node.corvid', addr: '192.0.2.2' }],
    },
  ]);
  // A gateway's ipsec traffic is routed by charon (table 220); no routes or rules of ours.
  assert.deepEqual(p.routes, []);
  assert.deepEqual(p.rules, []);
  assert.deepEqual(p.findings, []);

  const q = nodePlan({ gateways: [A(), B()], nodeName: 'b-gw' });
  const tb = tunnel(q, 'a');
  assert.equal(tb.role, 'responder');
  assert.equal(tb.remoteAddr, '192.0.2.1');
  assert.deepEqual(tb.localTs, tunnel(p, 'b').remoteTs);
  assert.deepEqual(tb.remoteTs, tunnel(p, 'b').localTs);
});

test('remote address falls back to the privateIP, remote port from publicPort', () => {
  const p = nodePlan({ gateways: [A({ publicIP: undefined }), B({ publicPort: 14500 })], nodeName: 'b-gw' });
  assert.equal(tunnel(p, 'a').remoteAddr, '10.1.0.10');
  assert.equal(tunnel(p, 'a').remotePort, undefined);
  const q = nodePlan({ gateways: [A({ publicIP: undefined }), B({ publicPort: 14500 })], nodeName: 'a-gw' });
  assert.equal(tunnel(q, 'b').remoteAddr, '192.0.2.2');
  assert.equal(tunnel(q, 'b').remotePort, 14500);
});

test('member: routes to every remote subnet via the local gateway, one rule per family, none for own subnets', () => {
  const p = nodePlan({ gateways: [A(), B()], nodeName: 'a-n1', routeTable: 9100, rulePriority: 9200 });
  assert.equal(p.role, 'member');
  assert.deepEqual(p.tunnels, []);
  assert.deepEqual(p.routes, [
    { family: 4, dst: '10.102.0.0/24', via: '10.1.0.10', pool: 'b' },
    { family: 4, dst: '10.102.1.0/24', via: '10.1.0.10', pool: 'b' },
  ]);
  assert.deepEqual(p.rules, [{ family: 4, priority: 9200, table: 9100 }]);
  assert.equal(p.routeTable, 9100);
});

test('outside: a node in no pool gets nothing', () => {
  const p = nodePlan({ gateways: [A(), B()], nodeName: 'stranger' });
  assert.equal(p.role, 'outside');
  assert.equal(p.pool, undefined);
  assert.deepEqual([p.tunnels, p.routes, p.rules], [[], [], []]);
});

test('NAT: the NAT\'d side initiates, the public side answers from %any', () => {
  const gws = [A(), B({ nat: true, publicIP: undefined })];
  const a = tunnel(nodePlan({ gateways: gws, nodeName: 'a-gw' }), 'b');
  const b = tunnel(nodePlan({ gateways: gws, nodeName: 'b-gw' }), 'a');
  assert.equal(a.role, 'responder');
  assert.equal(a.remoteAddr, '%any');
  assert.equal(b.role, 'initiator');
  assert.equal(b.remoteAddr, '192.0.2.1');
});

const CLOUD = (o: Partial<PoolSpec> = {}) =>
  gw('cloud', { nodes: [['c-gw', '10.0.0.10', '10.100.0.0/24'], ['c-n1', '10.0.0.11', '10.100.1.0/24']], active: 'c-gw', publicIP: '198.51.100.1', relaysFor: ['lyon', 'oslo'], ...o });
const LYON = (o: Partial<PoolSpec> = {}) =>
  gw('lyon', { nodes: [['l-gw', '192.168.1.10', '10.110.0.0/24'], ['l-n1', '192.168.1.11', '10.110.1.0/24']], active: 'l-gw', nat: true, relay: 'cloud', ...o });
const OSLO = (o: Partial<PoolSpec> = {}) =>
  gw('oslo', { nodes: [['o-gw', '192.168.1.10', '10.120.0.0/24'], ['o-n1', '192.168.1.12', '10.120.1.0/24', 'fd00:120::/64']], active: 'o-gw', nat: true, relay: 'cloud', ...o });

test('relay: two NAT\'d pools never connect directly; the relay carries both', () => {
  const gws = [CLOUD(), LYON(), OSLO()];
  const lyon = nodePlan({ gateways: gws, nodeName: 'l-gw' });
  assert.deepEqual(lyon.tunnels.map((t) => t.name), ['corvid-cloud']);
  const l = tunnel(lyon, 'cloud');
  assert.equal(l.role, 'initiator');
  assert.deepEqual(l.localTs, ['10.110.0.0/24', '10.110.1.0/24']);
  assert.deepEqual(l.remoteTs, ['10.100.0.0/24', '10.100.1.0/24', '10.120.0.0/24', '10.120.1.0/24', 'fd00:120::/64']);
  assert.deepEqual(l.relayed, ['oslo']);
  assert.deepEqual(lyon.reach, [
    { pool: 'cloud', path: 'direct', backend: 'ipsec' },
    { pool: 'oslo', path: 'relay', via: 'cloud', backend: 'ipsec' },
  ]);

  const cloud = nodePlan({ gateways: gws, nodeName: 'c-gw' });
  assert.deepEqual(cloud.tunnels.map((t) => t.name), ['corvid-lyon', 'corvid-oslo']);
  const cl = tunnel(cloud, 'lyon');
  assert.equal(cl.role, 'responder');
  assert.equal(cl.remoteAddr, '%any');
  // The relay's CHILD_SA towards lyon: remote = lyon, local = its own + oslo's subnets (mirror of lyon's side).
  assert.deepEqual(cl.localTs, l.remoteTs);
  assert.deepEqual(cl.remoteTs, l.localTs);
  const co = tunnel(cloud, 'oslo');
  assert.deepEqual(co.localTs, ['10.100.0.0/24', '10.100.1.0/24', '10.110.0.0/24', '10.110.1.0/24']);
  assert.deepEqual(co.remoteTs, ['10.120.0.0/24', '10.120.1.0/24', 'fd00:120::/64']);

  // A lyon member routes cloud's and oslo's IPv4 prefixes via its gateway; oslo's IPv6 prefix needs an IPv6 next hop,
  // and lyon's gateway publishes none (single-stack, or a sync before corvid.dev/private-ips).
  const member = nodePlan({ gateways: gws, nodeName: 'l-n1' });
  assert.deepEqual(member.routes.map((r) => `${r.dst}>${r.via}@${r.pool}`), [
    '10.100.0.0/24>192.168.1.10@cloud',
    '10.100.1.0/24>192.168.1.10@cloud',
    '10.120.0.0/24>192.168.1.10@oslo',
    '10.120.1.0/24>192.168.1.10@oslo',
  ]);
  assert.deepEqual(member.findings.map((x) => [x.code, x.peer]), [['no-ipv6-next-hop', 'oslo']]);
  assert.deepEqual(member.rules.map((r) => r.family), [4]);
});

test('dual stack: a member routes IPv6 prefixes (relayed ones too) via its gateway\'s published IPv6 address', () => {
  const gws = [CLOUD(), LYON({ privateIPs: '192.168.1.10,FD00:1:0::10' }), OSLO()];
  const member = nodePlan({ gateways: gws, nodeName: 'l-n1' });
  assert.deepEqual(member.routes.map((r) => `${r.family} ${r.dst}>${r.via}@${r.pool}`), [
    '4 10.100.0.0/24>192.168.1.10@cloud',
    '4 10.100.1.0/24>192.168.1.10@cloud',
    '4 10.120.0.0/24>192.168.1.10@oslo',
    '4 10.120.1.0/24>192.168.1.10@oslo',
    '6 fd00:120::/64>fd00:1::10@oslo',
  ]);
  assert.deepEqual(member.findings, []);
  assert.deepEqual(member.rules.map((r) => r.family), [4, 6]);
  // The gateway itself needs no routes of ours for ipsec links, whatever the family.
  assert.deepEqual(nodePlan({ gateways: gws, nodeName: 'l-gw' }).routes, []);
  // Only the member's own pool's gateway counts: oslo's published addresses do not route lyon's traffic.
  const other = nodePlan({ gateways: [CLOUD(), LYON(), OSLO({ privateIPs: '192.168.1.10,fd00:2::10' })], nodeName: 'l-n1' });
  assert.deepEqual(other.findings.map((x) => x.code), ['no-ipv6-next-hop']);
});

test('dual stack: an IPv6-primary gateway publishes its IPv4 address, used for IPv4 prefixes', () => {
  const a = (o: Partial<PoolSpec> = {}) =>
    gw('a', { nodes: [['a-gw', 'fd00:1::10', '10.101.0.0/24', 'fd00:101::/64'], ['a-n1', 'fd00:1::11', '10.101.1.0/24']], active: 'a-gw', publicIP: '192.0.2.1', ...o });
  const b = B({ nodes: [['b-gw', '10.2.0.10', '10.102.0.0/24', 'fd00:102::/64']] });
  const routes = (gws: Gateway[]) => nodePlan({ gateways: gws, nodeName: 'a-n1' }).routes.map((r) => `${r.family} ${r.dst}>${r.via}`);
  assert.deepEqual(routes([a({ privateIPs: '10.1.0.10,fd00:1::10' }), b]), ['4 10.102.0.0/24>10.1.0.10', '6 fd00:102::/64>fd00:1::10']);
  // Without it, IPv4 goes via the IPv6 next hop (RFC 5549), as before.
  assert.deepEqual(routes([a(), b]), ['4 10.102.0.0/24>fd00:1::10', '6 fd00:102::/64>fd00:1::10']);
});

test('dual stack: a malformed corvid.dev/private-ips is ignored with a finding: no IPv6 route rather than a wrong one', () => {
  const ipv4Routes = ['10.100.0.0/24', '10.100.1.0/24', '10.120.0.0/24', '10.120.1.0/24'];
  for (const bad of ['', 'fd00:1::zz', 'fe80::1%eth0', '192.168.1.10,fd00:1::10,fd00:1::11', 'fd00:1::10,fd00:1::11', '192.168.1.10,192.168.1.11', '192.168.1.99,fd00:1::10', ' ', 42, ['fd00:1::10']]) {
    const member = nodePlan({ gateways: [CLOUD(), LYON({ privateIPs: bad }), OSLO()], nodeName: 'l-n1' });
    const label = JSON.stringify(bad);
    assert.deepEqual(member.routes.map((r) => r.dst), ipv4Routes, label);
    assert.deepEqual(member.findings.map((x) => [x.severity, x.code, x.pool]), [['warning', 'bad-private-ips', 'lyon'], ['warning', 'no-ipv6-next-hop', 'lyon']], label);
  }
  // An IPv6 address alone (no IPv4 entry) is well-formed: nothing to contradict.
  const ok = nodePlan({ gateways: [CLOUD(), LYON({ privateIPs: 'fd00:1::10' }), OSLO()], nodeName: 'l-n1' });
  assert.deepEqual([ok.findings, ok.routes.at(-1)?.via], [[], 'fd00:1::10']);
});

test('dual stack, backend none: the gateway routes IPv6 prefixes via the peer gateway\'s published IPv6 address', () => {
  const none: EncryptionPolicy = { backend: 'none', ikeProposals: [], espProposals: [], allowInsecure: true };
  const b = (o: Partial<PoolSpec> = {}) => B({ encryption: none, nodes: [['b-gw', '10.2.0.10', '10.102.0.0/24', 'fd00:102::/64']], ...o });
  const a = A({ encryption: none, privateIPs: '10.1.0.10,fd00:1::10' });
  const at = (gws: Gateway[], node: string) => nodePlan({ gateways: gws, nodeName: node });
  // The peer is reached at its private addresses: IPv6 via its IPv6 one.
  const g = at([a, b({ publicIP: undefined, privateIPs: '10.2.0.10,fd00:2::10' })], 'a-gw');
  assert.deepEqual(g.routes.map((r) => `${r.dst}>${r.via}`), ['10.102.0.0/24>10.2.0.10', 'fd00:102::/64>fd00:2::10']);
  assert.deepEqual(g.findings, []);
  // A public address is of one family only: no IPv6 next hop for the peer's IPv6 prefix.
  const pub = at([a, b({ privateIPs: '10.2.0.10,fd00:2::10' })], 'a-gw');
  assert.deepEqual(pub.routes.map((r) => `${r.dst}>${r.via}`), ['10.102.0.0/24>192.0.2.2']);
  assert.deepEqual(pub.findings.map((x) => x.code), ['no-ipv6-next-hop']);
  // The member routes both families via its own gateway.
  const m = at([a, b({ publicIP: undefined, privateIPs: '10.2.0.10,fd00:2::10' })], 'a-n1');
  assert.deepEqual(m.routes.map((r) => `${r.dst}>${r.via}`), ['10.102.0.0/24>10.1.0.10', 'fd00:102::/64>fd00:1::10']);
});

test('relay: a pair denied on either side is absent, also for relayed traffic', () => {
  const gws = [CLOUD(), LYON({ denied: ['oslo'] }), OSLO()];
  const lyon = nodePlan({ gateways: gws, nodeName: 'l-gw' });
  assert.deepEqual(tunnel(lyon, 'cloud').remoteTs, ['10.100.0.0/24', '10.100.1.0/24']);
  const cloud = nodePlan({ gateways: gws, nodeName: 'c-gw' });
  assert.deepEqual(tunnel(cloud, 'oslo').localTs, ['10.100.0.0/24', '10.100.1.0/24']);
  assert.deepEqual(tunnel(cloud, 'lyon').localTs, ['10.100.0.0/24', '10.100.1.0/24']);
  const on1 = nodePlan({ gateways: gws, nodeName: 'o-n1' });
  assert.deepEqual(on1.reach.map((r) => r.pool), ['cloud']);
});

test('relay: a relay that does not list a pool in relays-for carries nothing for it', () => {
  const gws = [CLOUD({ relaysFor: ['lyon'] }), LYON(), OSLO()];
  const lyon = nodePlan({ gateways: gws, nodeName: 'l-gw' });
  assert.deepEqual(tunnel(lyon, 'cloud').relayed, []);
  assert.deepEqual(lyon.findings.map((x) => [x.code, x.peer]), [['relay-unavailable', 'oslo']]);
});

test('relay: NAT\'d pools with different relays never reach each other (no "first one\'s relay")', () => {
  const gws = [CLOUD({ relaysFor: ['lyon'] }), LYON(), OSLO({ relay: 'edge' }), gw('edge', { nodes: [['e-gw', '10.3.0.10', '10.130.0.0/24']], active: 'e-gw', publicIP: '198.51.100.3', relaysFor: ['oslo'] })];
  const lyon = nodePlan({ gateways: gws, nodeName: 'l-gw' });
  assert.deepEqual(lyon.reach.map((r) => r.pool), ['cloud', 'edge']);
  assert.deepEqual(tunnel(lyon, 'cloud').relayed, []);
  assert.deepEqual(lyon.findings.map((x) => [x.code, x.peer, x.message]), [['relay-unavailable', 'oslo', 'no path: both pools are behind NAT and use different relays (cloud, edge)']]);
});

test('hub mode: spokes reach each other only through the hub, NAT\'d or not', () => {
  const hub = 'hub' as const;
  const HUB = gw('cloud', { nodes: [['c-gw', '10.0.0.10', '10.100.0.0/24']], active: 'c-gw', publicIP: '198.51.100.1', relaysFor: ['a', 'b', 'lyon'], connectivity: hub });
  const gws = [HUB, A({ relay: 'cloud', connectivity: hub }), B({ relay: 'cloud', connectivity: hub }), LYON({ connectivity: hub })];
  const a = nodePlan({ gateways: gws, nodeName: 'a-gw' });
  assert.deepEqual(a.tunnels.map((t) => t.name), ['corvid-cloud'], 'no direct tunnel between two public spokes');
  const ac = tunnel(a, 'cloud');
  assert.deepEqual(ac.relayed, ['b', 'lyon']);
  assert.deepEqual(ac.remoteTs, ['10.100.0.0/24', '10.102.0.0/24', '10.102.1.0/24', '10.110.0.0/24', '10.110.1.0/24']);
  assert.deepEqual(a.reach, [
    { pool: 'b', path: 'relay', via: 'cloud', backend: 'ipsec' },
    { pool: 'cloud', path: 'direct', backend: 'ipsec' },
    { pool: 'lyon', path: 'relay', via: 'cloud', backend: 'ipsec' },
  ]);
  const c = nodePlan({ gateways: gws, nodeName: 'c-gw' });
  assert.deepEqual(c.tunnels.map((t) => t.name), ['corvid-a', 'corvid-b', 'corvid-lyon']);
  const ca = tunnel(c, 'a');
  assert.deepEqual(ca.localTs, ac.remoteTs, 'the hub carries the other spokes\' subnets to a');
  assert.deepEqual(ca.remoteTs, ac.localTs);
  assert.deepEqual(c.findings, []);
  // A spoke whose hop to the hub is denied reaches no other spoke.
  const cut = [HUB, A({ relay: 'cloud', connectivity: hub }), B({ relay: 'cloud', connectivity: hub, denied: ['cloud'] })];
  assert.deepEqual(nodePlan({ gateways: cut, nodeName: 'a-gw' }).reach.map((r) => r.pool), ['cloud']);
});

test('denied links are absent on both sides (peers and denied-peers, either side)', () => {
  for (const gws of [
    [A({ denied: ['b'] }), B()],
    [A(), B({ denied: ['a'] })],
    [A({ peers: ['c'] }), B()],
    [A(), B({ peers: [] })],
  ]) {
    for (const node of ['a-gw', 'b-gw', 'a-n1', 'b-n1']) {
      const p = nodePlan({ gateways: gws, nodeName: node });
      assert.deepEqual([p.tunnels, p.routes, p.rules, p.reach], [[], [], [], []], node);
    }
  }
});

test('role change: a gateway that loses the election becomes an ordinary node', () => {
  const before = nodePlan({ gateways: [A(), B()], nodeName: 'a-gw' });
  assert.equal(before.role, 'gateway');
  const after = nodePlan({ gateways: [A({ active: 'a-n1' }), B()], nodeName: 'a-gw' });
  assert.equal(after.role, 'member');
  assert.equal(after.gatewayNode, 'a-n1');
  assert.deepEqual(after.tunnels, []);
  assert.deepEqual(after.routes.map((r) => r.via), ['10.1.0.11', '10.1.0.11']);
  const newGw = nodePlan({ gateways: [A({ active: 'a-n1' }), B()], nodeName: 'a-n1' });
  assert.equal(newGw.role, 'gateway');
  assert.equal(tunnel(newGw, 'b').localAddr, '10.1.0.11');
  // The peer follows: its tunnel now points at the new gateway.
  const peer = nodePlan({ gateways: [A({ active: 'a-n1', publicIP: undefined, candidates: ['a-gw', 'a-n1'] }), B()], nodeName: 'b-gw' });
  assert.equal(tunnel(peer, 'a').peerNode, 'a-n1');
  assert.equal(tunnel(peer, 'a').remoteAddr, '10.1.0.11');
  // The IKE identities are the nodes'. The peer holds a connection for each candidate of the pool before and after,
  // so its first handshake with the successor is accepted whether or not it has seen the Gateway move yet.
  const peerBefore = nodePlan({ gateways: [A({ publicIP: undefined, candidates: ['a-gw', 'a-n1'] }), B()], nodeName: 'b-gw' });
  assert.equal(tunnel(peer, 'a').remoteId, 'a-n1.a.node.corvid');
  assert.equal(tunnel(peerBefore, 'a').remoteId, 'a-gw.a.node.corvid');
  assert.equal(tunnel(newGw, 'b').localId, 'a-n1.a.node.corvid');
  assert.deepEqual(tunnel(peer, 'a').peers, tunnel(peerBefore, 'a').peers);
  assert.deepEqual(tunnel(peer, 'a').peers, [
    { node: 'a-gw', conn: 'corvid-a@a-gw', id: 'a-gw.a.node.corvid', addr: '10.1.0.10' },
    { node: 'a-n1', conn: 'corvid-a@a-n1', id: 'a-n1.a.node.corvid', addr: '10.1.0.11' },
  ]);
});

test('no active gateway in the local pool: no routes, a finding', () => {
  const p = nodePlan({ gateways: [A({ active: undefined }), B()], nodeName: 'a-n1' });
  assert.equal(p.role, 'member');
  assert.deepEqual(p.routes, []);
  assert.deepEqual(p.findings.map((x) => x.code), ['no-active-gateway']);
  // The peer does not tunnel to a pool without a gateway.
  assert.deepEqual(nodePlan({ gateways: [A({ active: undefined }), B()], nodeName: 'b-gw' }).tunnels, []);
});

test('IPv6 subnets are carried through: TS lists and IPv6 routes via an IPv6 gateway', () => {
  const a6 = gw('a', { nodes: [['a-gw', 'fd00:1::10', '10.101.0.0/24', 'fd00:101::/64'], ['a-n1', 'fd00:1::11', 'fd00:101:1::/64']], active: 'a-gw' });
  const b6 = gw('b', { nodes: [['b-gw', 'fd00:2::10', '10.102.0.0/24', 'fd00:102:0:0::/64']], active: 'b-gw' });
  const g = nodePlan({ gateways: [a6, b6], nodeName: 'a-gw' });
  assert.deepEqual(tunnel(g, 'b').localTs, ['10.101.0.0/24', 'fd00:101::/64', 'fd00:101:1::/64']);
  assert.deepEqual(tunnel(g, 'b').remoteTs, ['10.102.0.0/24', 'fd00:102::/64']);
  assert.equal(tunnel(g, 'b').remoteAddr, 'fd00:2::10');
  const m = nodePlan({ gateways: [a6, b6], nodeName: 'a-n1' });
  assert.deepEqual(m.routes, [
    { family: 4, dst: '10.102.0.0/24', via: 'fd00:1::10', pool: 'b' },
    { family: 6, dst: 'fd00:102::/64', via: 'fd00:1::10', pool: 'b' },
  ]);
  assert.deepEqual(m.rules.map((r) => r.family), [4, 6]);
  assert.deepEqual(m.findings, []);
});

test('link encryption: defaults <- a\'s override <- b\'s override <- the links[] entry, the same from both sides', () => {
  const link: EncryptionOverride = { ikeProposals: ['aes256-sha384-modp3072'], pskSecretRef: { name: 'ab', key: 'k' } };
  const gws = [
    A({ poolOverride: { espProposals: ['aes256gcm16'], ikeProposals: ['from-a'] }, links: { b: link } }),
    B({ poolOverride: { espProposals: ['aes256gcm16'], pskSecretRef: { name: 'from-b', key: 'k' } }, links: { a: link } }),
  ];
  const p = nodePlan({ gateways: gws, nodeName: 'a-gw' });
  const t = tunnel(p, 'b');
  assert.deepEqual(t.ikeProposals, ['aes256-sha384-modp3072']);
  assert.deepEqual(t.espProposals, ['aes256gcm16']);
  assert.deepEqual(t.pskSecretRef, { name: 'ab', key: 'k' });
  assert.deepEqual(p.findings, []);
  const u = tunnel(nodePlan({ gateways: gws, nodeName: 'b-gw' }), 'a');
  assert.deepEqual([u.ikeProposals, u.espProposals, u.pskSecretRef], [t.ikeProposals, t.espProposals, t.pskSecretRef]);
  // Without the links[] entry the pools' overrides merge in name order (a, then b).
  const plain = tunnel(nodePlan({ gateways: [A({ poolOverride: { ikeProposals: ['from-a'] } }), B({ poolOverride: { pskSecretRef: { name: 'from-b', key: 'k' } } })], nodeName: 'a-gw' }), 'b');
  assert.deepEqual([plain.ikeProposals, plain.pskSecretRef], [['from-a'], { name: 'from-b', key: 'k' }]);
});

test('old-format Gateways (no encryption-defaults): the per-peer override wins over the pool default, as before', () => {
  const strong: EncryptionPolicy = { ...IPSEC, ikeProposals: ['aes256-sha384-modp3072'], espProposals: ['aes256-sha384'], pskSecretRef: { name: 'ab', key: 'k' } };
  const gws = [A({ oldOverrides: { b: strong } }), B({ oldOverrides: { a: strong } })];
  const t = tunnel(nodePlan({ gateways: gws, nodeName: 'a-gw' }), 'b');
  assert.deepEqual(t.ikeProposals, ['aes256-sha384-modp3072']);
  assert.deepEqual(t.pskSecretRef, { name: 'ab', key: 'k' });
  // One side rewritten by the new sync, the other not yet: both agents take the old-format side's policy.
  const mixed = [A({ links: { b: { ikeProposals: ['aes256-sha384-modp3072'], espProposals: ['aes256-sha384'], pskSecretRef: { name: 'ab', key: 'k' } } } }), B({ oldOverrides: { a: strong } })];
  for (const [node, peer] of [['a-gw', 'b'], ['b-gw', 'a']] as const) {
    const p = nodePlan({ gateways: mixed, nodeName: node });
    assert.deepEqual(tunnel(p, peer).ikeProposals, ['aes256-sha384-modp3072']);
    assert.deepEqual(p.findings, []);
  }
});

test('backends: none routes in the clear only when allowed and not NATed', () => {
  const none: EncryptionPolicy = { backend: 'none', ikeProposals: [], espProposals: [], allowInsecure: true };
  const gws = [A({ encryption: none }), B({ encryption: none })];
  const g = nodePlan({ gateways: gws, nodeName: 'a-gw' });
  assert.deepEqual(g.tunnels, []);
  assert.deepEqual(g.routes.map((r) => `${r.dst}>${r.via}`), ['10.102.0.0/24>192.0.2.2', '10.102.1.0/24>192.0.2.2']);
  assert.deepEqual(g.rules.length, 1);
  const m = nodePlan({ gateways: gws, nodeName: 'a-n1' });
  assert.deepEqual(m.routes.map((r) => `${r.dst}>${r.via}`), ['10.102.0.0/24>10.1.0.10', '10.102.1.0/24>10.1.0.10']);

  const noInsecure = { ...none, allowInsecure: false };
  assert.deepEqual(
    nodePlan({ gateways: [A({ encryption: noInsecure }), B({ encryption: noInsecure })], nodeName: 'a-gw' }).findings.map((x) => x.code),
    ['insecure-not-allowed'],
  );
  assert.deepEqual(
    nodePlan({ gateways: [A({ encryption: none }), B({ encryption: none, nat: true })], nodeName: 'a-gw' }).findings.map((x) => x.code),
    ['none-behind-nat'],
  );
  // Sides disagreeing on the backend: no link at all.
  assert.deepEqual(
    nodePlan({ gateways: [A({ encryption: none }), B()], nodeName: 'a-n1' }).findings.map((x) => x.code),
    ['encryption-mismatch'],
  );
});

test('a malformed encryption annotation fails closed', () => {
  const a = A();
  a.metadata.annotations = { ...a.metadata.annotations, 'corvid.dev/encryption': '{not json' };
  const p = nodePlan({ gateways: [a, B()], nodeName: 'b-gw' });
  assert.deepEqual(p.tunnels, []);
  assert.deepEqual(p.findings.map((x) => [x.code, x.pool]), [['bad-annotation', 'a'], ['no-encryption', 'b']]);
});

test('overlapping pool subnets: no link, an error', () => {
  const p = nodePlan({ gateways: [A(), B({ nodes: [['b-gw', '10.2.0.10', '10.101.0.0/16']] })], nodeName: 'a-gw' });
  assert.deepEqual(p.tunnels, []);
  assert.deepEqual(p.findings.map((x) => x.code), ['subnet-overlap']);
});

test('overlap between pools with several subnets, IPv4 and IPv6 mixed: any one pair blocks the link, families never mix', () => {
  const dual = (pool: string, gwIP: string, ...subnets: string[]) =>
    gw(pool, { nodes: [[`${pool}-gw`, gwIP, ...subnets.slice(0, 2)], [`${pool}-n1`, gwIP.replace(/0$/, '1'), ...subnets.slice(2)]], active: `${pool}-gw` });
  const codes = (...gws: Gateway[]) => nodePlan({ gateways: gws, nodeName: 'a-gw' }).findings.map((x) => [x.code, x.peer]);
  const a = dual('a', 'fd00:1::10', '10.101.0.0/24', 'fd00:101::/64', '10.101.1.0/24', 'fd00:101:1::/64');
  // Only the last subnet of b (an IPv6 /48 holding a's second /64) overlaps: no link.
  assert.deepEqual(codes(a, dual('b', 'fd00:2::10', '10.102.0.0/24', 'fd00:102::/64', '10.102.1.0/24', 'fd00:101::/48')), [['subnet-overlap', 'b']]);
  // A bare address inside a's IPv4 /24, and IPv4 0.0.0.0/0: each overlaps on its own.
  assert.deepEqual(codes(a, dual('b', 'fd00:2::10', 'fd00:102::/64', '10.101.1.77')), [['subnet-overlap', 'b']]);
  assert.deepEqual(codes(a, dual('b', 'fd00:2::10', 'fd00:102::/64', '0.0.0.0/0')), [['subnet-overlap', 'b']]);
  // The same bits in the other family do not overlap: IPv4-compatible and IPv4-mapped IPv6 prefixes of a's IPv4
  // subnets, ::/0 next to IPv4 only subnets, 0.0.0.0/0 next to IPv6 only subnets.
  const c = dual('c', 'fd00:3::10', '::a65:0/120', '::ffff:10.101.1.0/120', '10.103.0.0/24');
  const d = gw('d', { nodes: [['d-gw', '10.4.0.10', '::/0']], active: 'd-gw' });
  const e = gw('e', { nodes: [['e-gw', 'fd00:5::10', '10.105.0.0/24']], active: 'e-gw' });
  const v4 = gw('v4', { nodes: [['v4-gw', '10.6.0.10', '10.106.0.0/24', '10.106.1.0/24']], active: 'v4-gw' });
  const g = nodePlan({ gateways: [a, c, e], nodeName: 'a-gw' });
  assert.deepEqual(g.findings, []);
  assert.deepEqual(tunnel(g, 'c').localTs, ['10.101.0.0/24', '10.101.1.0/24', 'fd00:101::/64', 'fd00:101:1::/64']);
  assert.deepEqual(tunnel(g, 'c').remoteTs, ['10.103.0.0/24', '::a65:0/120', '::ffff:10.101.1.0/120']);
  assert.deepEqual(nodePlan({ gateways: [v4, d], nodeName: 'v4-gw' }).tunnels.map((t) => t.name), ['corvid-d']);
  assert.deepEqual(nodePlan({ gateways: [d, gw('f', { nodes: [['f-gw', '10.7.0.10', 'fd00:107::/64']], active: 'f-gw' })], nodeName: 'd-gw' }).findings.map((x) => x.code), ['subnet-overlap']);
  // A member routes every reachable prefix, sorted across pools and families (IPv4 first, then by address).
  const m = nodePlan({ gateways: [a, c, e], nodeName: 'a-n1' });
  assert.deepEqual(m.routes.map((r) => `${r.dst}@${r.pool}`), ['10.103.0.0/24@c', '10.105.0.0/24@e', '::a65:0/120@c', '::ffff:10.101.1.0/120@c']);
  assert.deepEqual(m.rules.map((r) => r.family), [4, 6]);
});

test('overlap between two pools behind one relay: no relayed path, each still tunnels to the relay', () => {
  const gws = [CLOUD(), LYON(), OSLO({ nodes: [['o-gw', '192.168.1.10', '10.120.0.0/24', 'fd00:120::/64'], ['o-n1', '192.168.1.12', '10.110.1.128/25']] })];
  const lyon = nodePlan({ gateways: gws, nodeName: 'l-gw' });
  assert.deepEqual(lyon.tunnels.map((t) => [t.name, t.relayed]), [['corvid-cloud', []]]);
  assert.deepEqual(lyon.findings.map((x) => [x.code, x.peer, x.message]), [['relay-unavailable', 'oslo', 'no path: the two pools have overlapping subnets']]);
  const cloud = nodePlan({ gateways: gws, nodeName: 'c-gw' });
  assert.deepEqual(cloud.tunnels.map((t) => [t.name, t.relayed, t.localTs]), [
    ['corvid-lyon', [], ['10.100.0.0/24', '10.100.1.0/24']],
    ['corvid-oslo', [], ['10.100.0.0/24', '10.100.1.0/24']],
  ]);
  assert.deepEqual(tunnel(cloud, 'oslo').remoteTs, ['10.110.1.128/25', '10.120.0.0/24', 'fd00:120::/64']);
});

test('two remote pools claiming one prefix: routed to the first pool by name, a finding', () => {
  const c = gw('c', { nodes: [['c-gw', '10.3.0.10', '10.130.0.0/24', '10.103.0.0/24']], active: 'c-gw', publicIP: '192.0.2.3' });
  const m = nodePlan({ gateways: [c, A(), B({ nodes: [['b-gw', '10.2.0.10', '10.102.0.0/24', '10.130.0.9/24']] })], nodeName: 'a-n1' });
  assert.deepEqual(m.routes.map((r) => `${r.dst}@${r.pool}`), ['10.102.0.0/24@b', '10.103.0.0/24@c', '10.130.0.0/24@b']);
  assert.deepEqual(m.findings.map((x) => [x.code, x.peer, x.message]), [['duplicate-prefix', 'c', '10.130.0.0/24 is claimed by b and c; routed to b']]);
});

test('subnets are canonicalised (host bits, IPv6 compression)', () => {
  const p = nodePlan({ gateways: [A(), B({ nodes: [['b-gw', '10.2.0.10', '10.102.0.7/24', 'FD00:0102:0000::/48']] })], nodeName: 'a-gw' });
  assert.deepEqual(tunnel(p, 'b').remoteTs, ['10.102.0.0/24', 'fd00:102::/48']);
});

test('determinism: Gateway order and duplicate evaluation give identical plans', () => {
  const gws = [CLOUD(), LYON(), OSLO(), A(), B()];
  for (const node of ['c-gw', 'c-n1', 'l-gw', 'l-n1', 'o-gw', 'o-n1', 'a-gw', 'a-n1', 'b-gw', 'x']) {
    const p1 = nodePlan({ gateways: gws, nodeName: node });
    const p2 = nodePlan({ gateways: [...gws].reverse(), nodeName: node });
    const p3 = nodePlan({ gateways: [gws[2], gws[0], gws[4], gws[1], gws[3]], nodeName: node });
    assert.deepEqual(p2, p1, node);
    assert.deepEqual(p3, p1, node);
    assert.equal(JSON.stringify(p2), JSON.stringify(p1), node);
  }
  // 5 pools: cloud tunnels to a, b, lyon, oslo; a to b, cloud; lyon only to cloud but reaches everybody else through it? no:
  // lyon is NAT'd and a/b are public, so lyon tunnels to a and b directly as well.
  const lyon = nodePlan({ gateways: gws, nodeName: 'l-gw' });
  assert.deepEqual(lyon.tunnels.map((t) => [t.name, t.role]), [
    ['corvid-a', 'initiator'],
    ['corvid-b', 'initiator'],
    ['corvid-cloud', 'initiator'],
  ]);
  const cloud = nodePlan({ gateways: gws, nodeName: 'c-gw' });
  assert.deepEqual(cloud.tunnels.map((t) => [t.name, t.role]), [
    ['corvid-a', 'responder'],
    ['corvid-b', 'responder'],
    ['corvid-lyon', 'responder'],
    ['corvid-oslo', 'responder'],
  ]);
});

test('a node listed by two pools acts as outside', () => {
  const p = nodePlan({ gateways: [A(), B({ nodes: [['b-gw', '10.2.0.10', '10.102.0.0/24'], ['a-n1', '10.2.0.99', '10.102.9.0/24']] })], nodeName: 'a-n1' });
  assert.equal(p.role, 'outside');
  assert.deepEqual(p.findings.map((x) => x.code), ['node-in-two-pools']);
});

test('packet policy: pod sources kept for local<->remote flows on every node; relays see every remote pool', () => {
  const gws = [CLOUD(), LYON(), OSLO()];
  const member = nodePlan({ gateways: gws, nodeName: 'l-n1' });
  assert.deepEqual(member.packet.local, ['10.110.0.0/24', '10.110.1.0/24']);
  assert.deepEqual(member.packet.remote, ['10.100.0.0/24', '10.100.1.0/24', '10.120.0.0/24', '10.120.1.0/24', 'fd00:120::/64']);
  assert.deepEqual(member.packet.mss, [], 'members do not clamp: no MTU is known and they are not gateways');
  const relay = nodePlan({ gateways: gws, nodeName: 'c-gw' });
  assert.deepEqual(relay.packet.remote, ['10.110.0.0/24', '10.110.1.0/24', '10.120.0.0/24', '10.120.1.0/24', 'fd00:120::/64']);
  // A pool that reaches nobody has nothing to exempt, and a node outside every pool neither.
  const alone = nodePlan({ gateways: [A({ denied: ['b'] }), B()], nodeName: 'a-n1' });
  assert.deepEqual(alone.packet, { local: [], remote: [], mss: [] });
  assert.deepEqual(alone.poolNeighbours, []);
  assert.deepEqual(nodePlan({ gateways: gws, nodeName: 'nobody' }).packet, { local: [], remote: [], mss: [] });
});

test('pool neighbours: the other nodes of the pool, their subnets and addresses, for rp_filter', () => {
  const p = nodePlan({ gateways: [A(), B()], nodeName: 'a-gw' });
  assert.deepEqual(p.poolNeighbours, ['10.1.0.11/32', '10.101.1.0/24']);
  const m = nodePlan({ gateways: [A(), B()], nodeName: 'a-n1' });
  assert.deepEqual(m.poolNeighbours, ['10.1.0.10/32', '10.101.0.0/24']);
});

test('MTU: published pool MTUs (else the uplink) less the IPsec overhead give route MTUs and gateway MSS clamps', () => {
  // Overhead for IPv4 outer headers: 20 + 8 (NAT-T) + 8 (ESP) + 16 (IV) + 15 (padding) + 2 + 32 (ICV) = 101.
  const gws = [A({ mtu: 1500 }), B({ mtu: 1400 })];
  const member = nodePlan({ gateways: gws, nodeName: 'a-n1' });
  assert.deepEqual(member.routes.map((r) => [r.dst, r.mtu]), [['10.102.0.0/24', 1299], ['10.102.1.0/24', 1299]]);
  const gwPlan = nodePlan({ gateways: gws, nodeName: 'a-gw' });
  assert.deepEqual(gwPlan.packet.mss, [{ family: 4, mss: 1259, remote: ['10.102.0.0/24', '10.102.1.0/24'] }]);
  // The other side computes the same path MTU from the same two Gateways.
  assert.deepEqual(nodePlan({ gateways: gws, nodeName: 'b-gw' }).packet.mss.map((c) => c.mss), [1259]);

  // Nothing published: this node's uplink stands for its pool; unknown peers do not lower it.
  const bare = nodePlan({ gateways: [A(), B()], nodeName: 'a-gw', uplinkMtu: 1450 });
  assert.deepEqual(bare.packet.mss.map((c) => c.mss), [1450 - 101 - 40]);
  // The published MTU wins over the uplink's; no MTU at all: no route MTU and no clamp.
  assert.deepEqual(nodePlan({ gateways: [A({ mtu: 1400 }), B()], nodeName: 'a-gw', uplinkMtu: 9000 }).packet.mss.map((c) => c.mss), [1259]);
  const none = nodePlan({ gateways: [A(), B()], nodeName: 'a-n1' });
  assert.ok(none.routes.every((r) => r.mtu === undefined));
  assert.deepEqual(nodePlan({ gateways: [A(), B()], nodeName: 'a-gw' }).packet.mss, []);
});

test('MTU: a relayed path takes the smallest MTU on the way; IPv6 prefixes clamp 20 bytes lower', () => {
  const gws = [CLOUD({ mtu: 1500 }), LYON({ mtu: 1500 }), OSLO({ mtu: 1380 })];
  const lyon = nodePlan({ gateways: gws, nodeName: 'l-gw' });
  assert.deepEqual(lyon.packet.mss, [
    { family: 4, mss: 1239, remote: ['10.120.0.0/24', '10.120.1.0/24'] },
    { family: 4, mss: 1359, remote: ['10.100.0.0/24', '10.100.1.0/24'] },
    { family: 6, mss: 1219, remote: ['fd00:120::/64'] },
  ]);
  const member = nodePlan({ gateways: gws, nodeName: 'l-n1' });
  assert.deepEqual(member.routes.map((r) => `${r.dst}:${r.mtu}`), ['10.100.0.0/24:1399', '10.100.1.0/24:1399', '10.120.0.0/24:1279', '10.120.1.0/24:1279']);
});

test('MTU: a malformed corvid.dev/mtu is ignored with a finding', () => {
  const a = A();
  a.metadata.annotations = { ...a.metadata.annotations, 'corvid.dev/mtu': '15OO' };
  const p = nodePlan({ gateways: [a, B()], nodeName: 'a-gw' });
  assert.deepEqual(p.packet.mss, []);
  assert.ok(p.findings.some((f) => f.code === 'bad-annotation' && /corvid\.dev\/mtu/.test(f.message)), JSON.stringify(p.findings));
});

// ------------------------------------------------------------------ WireGuard

const WG: EncryptionPolicy = { ...IPSEC, backend: 'wireguard' };

test('wireguard: one peer per peer pool, its key, endpoint and allowed IPs; the gateway routes into corvid.wg', () => {
  const gws = [A({ encryption: WG }), B({ encryption: WG })];
  const p = nodePlan({ gateways: gws, nodeName: 'a-gw' });
  assert.deepEqual(p.tunnels, [], 'no IKE connection for a WireGuard link');
  assert.deepEqual(p.wireguard, {
    device: 'corvid.wg',
    listenPort: 51820,
    peers: [
      {
        name: 'corvid-b',
        peerPool: 'b',
        peerNode: 'b-gw',
        publicKey: wgKey('b-gw'),
        endpoint: '192.0.2.2:51820',
        allowedIPs: ['10.102.0.0/24', '10.102.1.0/24'],
        pskSecretRef: { name: 'corvid-psk', key: 'psk' },
        persistentKeepalive: 25,
        relayed: [],
      },
    ],
  });
  // No charon routes for WireGuard: ours, into the interface, no next hop.
  assert.deepEqual(p.routes, [
    { family: 4, dst: '10.102.0.0/24', pool: 'b', dev: 'corvid.wg' },
    { family: 4, dst: '10.102.1.0/24', pool: 'b', dev: 'corvid.wg' },
  ]);
  assert.deepEqual(p.rules, [{ family: 4, priority: 9027, table: 9027 }]);
  assert.deepEqual(p.reach, [{ pool: 'b', path: 'direct', backend: 'wireguard' }]);
  assert.deepEqual(p.findings, []);
  // Fail closed: the gateway's packet filter lets these prefixes out through corvid.wg only.
  assert.deepEqual(p.packet.tunnelOnly, { device: 'corvid.wg', remote: ['10.102.0.0/24', '10.102.1.0/24'] });
  // The other end mirrors it.
  const q = nodePlan({ gateways: gws, nodeName: 'b-gw' });
  assert.equal(q.wireguard?.peers[0].endpoint, '192.0.2.1:51820');
  assert.deepEqual(q.wireguard?.peers[0].allowedIPs, ['10.101.0.0/24', '10.101.1.0/24']);
  // Members route via their gateway as for IPsec, and hold no interface.
  const m = nodePlan({ gateways: gws, nodeName: 'a-n1' });
  assert.equal(m.wireguard, undefined);
  assert.equal(m.packet.tunnelOnly, undefined);
  assert.deepEqual(m.routes.map((r) => `${r.dst}>${r.via}`), ['10.102.0.0/24>10.1.0.10', '10.102.1.0/24>10.1.0.10']);
  // An IPv6 endpoint is bracketed.
  const v6 = nodePlan({ gateways: [A({ encryption: WG }), B({ encryption: WG, publicIP: '2001:db8::2' })], nodeName: 'a-gw' });
  assert.equal(v6.wireguard?.peers[0].endpoint, '[2001:db8::2]:51820');
});

/** The pool's Gateway with a second candidate, `node` (in status.nodes already), as a standby endpoint. */
function withStandby(g: Gateway, node: string, publicIP?: string): Gateway {
  const active = g.spec.endpoints![0];
  g.spec.endpoints!.push({ nodeName: node, type: 'tunnel', port: 4500, underNAT: active.underNAT, ...(publicIP ? { publicIP } : {}) });
  return g;
}

test('wireguard warm standby: the active gateway holds a session with each standby of its peer pools (no allowed IPs); a standby holds its interface with the peers it would have, and no route into it', () => {
  const a = withStandby(gw('a', { nodes: [['a-gw', '10.1.0.10', '10.101.0.0/24'], ['a-gw2', '10.1.0.12', '10.101.2.0/24'], ['a-n1', '10.1.0.11', '10.101.1.0/24']], active: 'a-gw', publicIP: '192.0.2.1', encryption: WG }), 'a-gw2');
  const b = withStandby(gw('b', { nodes: [['b-gw', '10.2.0.10', '10.102.0.0/24'], ['b-gw2', '10.2.0.12', '10.102.2.0/24']], active: 'b-gw', publicIP: '192.0.2.2', encryption: WG }), 'b-gw2', '192.0.2.22');
  const gws = [a, b];
  const active = nodePlan({ gateways: gws, nodeName: 'a-gw' });
  const toB = active.wireguard!.peers[0];
  assert.deepEqual(active.wireguard?.peers.map((p) => [p.name, p.peerNode, p.publicKey === wgKey(p.peerNode), p.endpoint, p.allowedIPs, p.standby]), [
    ['corvid-b', 'b-gw', true, '192.0.2.2:51820', ['10.102.0.0/24', '10.102.2.0/24'], undefined],
    // Dialled at its own public address (its endpoint's publicIP; else its private one).
    ['corvid-b@b-gw2', 'b-gw2', true, '192.0.2.22:51820', [], true],
  ]);
  assert.deepEqual(wireguardTunnels(active).map((p) => p.name), ['corvid-b'], 'a warm session is no tunnel (health, metrics)');
  // b's active dials a's standby at its private address (no publicIP): a pool not behind NAT.
  assert.deepEqual(nodePlan({ gateways: gws, nodeName: 'b-gw' }).wireguard?.peers.map((p) => [p.name, p.endpoint]), [
    ['corvid-a', '192.0.2.1:51820'],
    ['corvid-a@a-gw2', '10.1.0.12:51820'],
  ]);
  // The standby: a member (routes via a-gw, no packet filter of a gateway), with the interface and the very peer
  // the active gateway has, and no tunnel of its own.
  const standby = nodePlan({ gateways: gws, nodeName: 'a-gw2' });
  assert.equal(standby.role, 'member');
  assert.deepEqual(standby.wireguard, { ...active.wireguard, peers: [toB] });
  assert.deepEqual(standby.routes.map((r) => `${r.dst}>${r.via}`), ['10.102.0.0/24>10.1.0.10', '10.102.2.0/24>10.1.0.10']);
  assert.equal(standby.packet.tunnelOnly, undefined);
  assert.deepEqual(wireguardTunnels(standby), []);
  // An ordinary member holds no interface.
  assert.equal(nodePlan({ gateways: gws, nodeName: 'a-n1' }).wireguard, undefined);
  // Behind NAT, a standby comes to us: no endpoint. Without a published key: no session.
  const natd = withStandby(gw('b', { nodes: [['b-gw', '10.2.0.10', '10.102.0.0/24'], ['b-gw2', '10.2.0.12', '10.102.2.0/24']], active: 'b-gw', nat: true, encryption: WG }), 'b-gw2');
  assert.deepEqual(nodePlan({ gateways: [a, natd], nodeName: 'a-gw' }).wireguard?.peers.map((p) => [p.name, p.endpoint]), [
    ['corvid-b', undefined],
    ['corvid-b@b-gw2', undefined],
  ]);
  const keyless = withStandby(gw('b', { nodes: [['b-gw', '10.2.0.10', '10.102.0.0/24'], ['b-gw2', '10.2.0.12', '10.102.2.0/24']], active: 'b-gw', publicIP: '192.0.2.2', encryption: WG, wgKeys: { 'b-gw': wgKey('b-gw') } }), 'b-gw2');
  assert.deepEqual(nodePlan({ gateways: [a, keyless], nodeName: 'a-gw' }).wireguard?.peers.map((p) => p.name), ['corvid-b']);
  // IPsec pools: no interface on a standby.
  const ipsec = [withStandby(gw('a', { nodes: [['a-gw', '10.1.0.10', '10.101.0.0/24'], ['a-gw2', '10.1.0.12', '10.101.2.0/24']], active: 'a-gw', publicIP: '192.0.2.1' }), 'a-gw2'), B()];
  assert.equal(nodePlan({ gateways: ipsec, nodeName: 'a-gw2' }).wireguard, undefined);
});

test('wireguard behind NAT: the NAT\'d side has the endpoint and keeps the mapping open; the public side waits', () => {
  const gws = [A({ encryption: WG }), B({ encryption: WG, nat: true, publicIP: undefined })];
  const pub = nodePlan({ gateways: gws, nodeName: 'a-gw' }).wireguard?.peers[0];
  assert.ok(pub);
  assert.equal(pub.endpoint, undefined, 'a NAT\'d peer cannot be dialled');
  assert.equal(pub.persistentKeepalive, 25, 'sent once the peer has come, so an idle tunnel still proves itself');
  const natd = nodePlan({ gateways: gws, nodeName: 'b-gw' }).wireguard?.peers[0];
  assert.ok(natd);
  assert.equal(natd.endpoint, '192.0.2.1:51820');
  assert.equal(natd.persistentKeepalive, 25);
});

test('wireguard: a peer without a published key gets no peer, but its prefixes still go into the interface (never in the clear)', () => {
  const gws = [A({ encryption: WG }), B({ encryption: WG, wgKeys: {} })];
  const p = nodePlan({ gateways: gws, nodeName: 'a-gw' });
  assert.deepEqual(p.wireguard, { device: 'corvid.wg', listenPort: 51820, peers: [] });
  assert.deepEqual(p.routes.map((r) => `${r.dst} dev ${r.dev} via ${r.via}`), ['10.102.0.0/24 dev corvid.wg via undefined', '10.102.1.0/24 dev corvid.wg via undefined']);
  assert.deepEqual(p.findings.map((x) => [x.code, x.peer]), [['wireguard-key-missing', 'b']]);
  // A key for another node of b (a standby) is no key for its active gateway.
  const q = nodePlan({ gateways: [A({ encryption: WG }), B({ encryption: WG, wgKeys: { 'b-n1': wgKey('b-n1') } })], nodeName: 'a-gw' });
  assert.deepEqual(q.wireguard?.peers, []);
  // A malformed annotation fails closed too, and says so.
  const b = B({ encryption: WG });
  b.metadata.annotations = { ...b.metadata.annotations, 'corvid.dev/wireguard-keys': '{"b-gw":"not-a-key"}' };
  const r = nodePlan({ gateways: [A({ encryption: WG }), b], nodeName: 'a-gw' });
  assert.deepEqual(r.wireguard?.peers, []);
  assert.deepEqual(r.findings.map((x) => x.code).sort(), ['bad-annotation', 'wireguard-key-missing']);
  assert.ok(!JSON.stringify(r.findings).includes('not-a-key'));
});

test('wireguard: the node\'s own key, when its Gateway does not publish it (yet), is a finding', () => {
  const gws = [A({ encryption: WG }), B({ encryption: WG })];
  assert.deepEqual(nodePlan({ gateways: gws, nodeName: 'a-gw', wireguardPublicKey: wgKey('a-gw') }).findings, []);
  const other = nodePlan({ gateways: gws, nodeName: 'a-gw', wireguardPublicKey: wgKey('rotated') });
  assert.deepEqual(other.findings.map((x) => x.code), ['wireguard-key-unpublished']);
  assert.ok(!JSON.stringify(other.findings).includes(wgKey('rotated')), 'no key in a finding');
});

test('wireguard relay: NAT\'d pools reach each other through the relay\'s interface, allowed IPs as the traffic selectors', () => {
  const gws = [CLOUD({ encryption: WG }), LYON({ encryption: WG }), OSLO({ encryption: WG })];
  const lyon = nodePlan({ gateways: gws, nodeName: 'l-gw' });
  assert.deepEqual(lyon.wireguard?.peers.map((x) => [x.name, x.endpoint, x.persistentKeepalive, x.allowedIPs, x.relayed]), [
    ['corvid-cloud', '198.51.100.1:51820', 25, ['10.100.0.0/24', '10.100.1.0/24', '10.120.0.0/24', '10.120.1.0/24', 'fd00:120::/64'], ['oslo']],
  ]);
  assert.deepEqual(lyon.reach, [
    { pool: 'cloud', path: 'direct', backend: 'wireguard' },
    { pool: 'oslo', path: 'relay', via: 'cloud', backend: 'wireguard' },
  ]);
  // Relayed prefixes go into the interface as well, IPv6 included (a device route needs no next hop).
  assert.deepEqual(lyon.routes.map((r) => `${r.dst}@${r.pool}`), ['10.100.0.0/24@cloud', '10.100.1.0/24@cloud', '10.120.0.0/24@oslo', '10.120.1.0/24@oslo', 'fd00:120::/64@oslo']);
  assert.ok(lyon.routes.every((r) => r.dev === 'corvid.wg' && r.via === undefined));
  const cloud = nodePlan({ gateways: gws, nodeName: 'c-gw' });
  assert.deepEqual(cloud.wireguard?.peers.map((x) => [x.name, x.endpoint, x.allowedIPs]), [
    ['corvid-lyon', undefined, ['10.110.0.0/24', '10.110.1.0/24']],
    ['corvid-oslo', undefined, ['10.120.0.0/24', '10.120.1.0/24', 'fd00:120::/64']],
  ]);
});

test('mixed backends: each pair takes its link policy, and a relay joins an IPsec tunnel to a WireGuard one', () => {
  // cloud-lyon over WireGuard (a links[] entry), cloud-oslo over IPsec (the default).
  const links = { lyon: { backend: 'wireguard' as const } };
  const gws = [CLOUD({ links }), LYON({ links: { cloud: { backend: 'wireguard' } } }), OSLO()];
  const cloud = nodePlan({ gateways: gws, nodeName: 'c-gw' });
  assert.deepEqual(cloud.tunnels.map((t) => t.name), ['corvid-oslo']);
  assert.deepEqual(cloud.wireguard?.peers.map((x) => x.name), ['corvid-lyon']);
  // The relay's IPsec CHILD_SA to oslo carries lyon's subnets, which arrive over WireGuard.
  assert.deepEqual(tunnel(cloud, 'oslo').localTs, ['10.100.0.0/24', '10.100.1.0/24', '10.110.0.0/24', '10.110.1.0/24']);
  assert.deepEqual(cloud.wireguard?.peers[0].allowedIPs, ['10.110.0.0/24', '10.110.1.0/24']);
  const lyon = nodePlan({ gateways: gws, nodeName: 'l-gw' });
  assert.deepEqual(lyon.reach.map((r) => `${r.pool}:${r.backend}`), ['cloud:wireguard', 'oslo:wireguard']);
  const oslo = nodePlan({ gateways: gws, nodeName: 'o-gw' });
  assert.deepEqual(oslo.reach.map((r) => `${r.pool}:${r.backend}`), ['cloud:ipsec', 'lyon:ipsec']);
  assert.equal(oslo.wireguard, undefined);
});

test('wireguard MTU: 60 bytes less on an IPv4 path, 80 on IPv6, rounded down to WireGuard\'s 16-byte padding; each hop by its own backend', () => {
  const gws = [A({ encryption: WG, mtu: 1500 }), B({ encryption: WG, mtu: 1500 })];
  const g = nodePlan({ gateways: gws, nodeName: 'a-gw' });
  assert.deepEqual(g.routes.map((r) => r.mtu), [1440, 1440]);
  assert.equal(g.wireguard?.mtu, 1440, 'the interface: our uplink less the overhead for our endpoint\'s family');
  assert.equal(nodePlan({ gateways: [A({ encryption: WG }), B({ encryption: WG })], nodeName: 'a-gw', uplinkMtu: 9000 }).wireguard?.mtu, 8928);
  assert.equal(nodePlan({ gateways: [A({ encryption: WG }), B({ encryption: WG })], nodeName: 'a-gw' }).wireguard?.mtu, undefined);
  assert.deepEqual(g.packet.mss, [{ family: 4, mss: 1400, remote: ['10.102.0.0/24', '10.102.1.0/24'] }]);
  const v6 = nodePlan({ gateways: [A({ encryption: WG, mtu: 1500 }), B({ encryption: WG, mtu: 1500, publicIP: '2001:db8::2' })], nodeName: 'a-gw' });
  assert.deepEqual(v6.routes.map((r) => r.mtu), [1408, 1408], '1500 - 80 = 1420, and a 1420-byte packet is padded to 1424');
  // A narrow WAN: 1400 - 60 = 1340 would be padded to 1344 by a sender whose interface is wider; 1328 is not.
  const narrow = nodePlan({ gateways: [A({ encryption: WG, mtu: 1500 }), B({ encryption: WG, mtu: 1400 })], nodeName: 'a-gw' });
  assert.deepEqual(narrow.routes.map((r) => r.mtu), [1328, 1328]);
  assert.equal(narrow.wireguard?.mtu, 1440);
  // lyon -> cloud over WireGuard (1500 - 60), cloud -> oslo over IPsec (1500 - 101): the smaller wins.
  const links = { lyon: { backend: 'wireguard' as const } };
  const mixed = [CLOUD({ links, mtu: 1500 }), LYON({ links: { cloud: { backend: 'wireguard' } }, mtu: 1500 }), OSLO({ mtu: 1500 })];
  const lyon = nodePlan({ gateways: mixed, nodeName: 'l-gw' });
  assert.deepEqual(lyon.routes.filter((r) => r.family === 4).map((r) => `${r.pool}:${r.mtu}`), ['cloud:1440', 'cloud:1440', 'oslo:1399', 'oslo:1399']);
});
