// Issue 15: the node plan of each member routing mode (pure): the VXLAN device, its FDB and neighbour entries, the
// routes over it and their MTU, auto's on-link test, and failover.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { nodePlan, vxlanMac } from '../../src/nodeplan/plan.ts';
import { encodeGatewayAnnotations } from '../../src/gateway/annotations.ts';
import type { Gateway } from '../../src/gateway/types.ts';
import { DEFAULT_ENCRYPTION } from '../../src/topology/normalise.ts';
import { poolGateway } from '../support/gateways.ts';
import type { EncryptionPolicy, MemberRouting } from '../../src/topology/types.ts';

const IPSEC: EncryptionPolicy = { ...DEFAULT_ENCRYPTION, pskSecretRef: { name: 'corvid-psk', key: 'psk' } };

function gw(pool: string, nodes: Array<[string, string, string]>, active: string, o: { routing?: MemberRouting; mtu?: number; privateIPs?: string } = {}): Gateway {
  const annotations = encodeGatewayAnnotations({
    peers: ['*'],
    encryption: IPSEC,
    encryptionDefaults: IPSEC,
    ...(o.mtu !== undefined ? { mtu: o.mtu } : {}),
    ...(o.routing !== undefined ? { memberRouting: o.routing, memberVxlan: { vni: 9027, port: 4793 } } : {}),
  });
  const publicIP = `192.0.2.${pool.length}${pool.charCodeAt(0) % 10}`;
  return poolGateway({ pool, active, publicIP, annotations, nodes: nodes.map(([name, ip, subnet]) => ({ name, ip, subnets: [subnet] })), ...(o.privateIPs ? { privateIPs: o.privateIPs } : {}) });
}

const VPC_NODES: Array<[string, string, string]> = [
  ['v-gw1', '10.1.0.10', '10.101.0.0/24'],
  ['v-gw2', '10.1.0.12', '10.101.2.0/24'],
  ['v-n1', '10.1.0.11', '10.101.1.0/24'],
];
const vpc = (routing?: MemberRouting, active = 'v-gw1', o: { mtu?: number; privateIPs?: string } = {}) => gw('vpc', VPC_NODES, active, { routing, ...o });
const remote = (o: { mtu?: number } = {}) => gw('site', [['s-gw', '10.2.0.10', '10.102.0.0/24'], ['s-n1', '10.2.0.11', '10.102.1.0/24']], 's-gw', o);

test('vxlanMac: locally administered unicast, from the last four bytes of the address', () => {
  assert.equal(vxlanMac('10.1.0.10'), '0a:c7:0a:01:00:0a');
  assert.equal(vxlanMac('fd00::1:2'), '0a:c7:00:01:00:02');
});

test('direct (the default): routes via the gateway on the LAN, no device', () => {
  const p = nodePlan({ gateways: [vpc(), remote()], nodeName: 'v-n1', uplinkMtu: 1500 });
  assert.equal(p.vxlan, undefined);
  assert.deepEqual(p.routes.map((r) => [r.dst, r.via, r.dev, r.mtu]), [
    ['10.102.0.0/24', '10.1.0.10', undefined, 1399],
    ['10.102.1.0/24', '10.1.0.10', undefined, 1399],
  ]);
});

test('vxlan member: its device, the gateway as FDB and neighbour entry, routes onlink through the device', () => {
  const p = nodePlan({ gateways: [vpc('vxlan'), remote()], nodeName: 'v-n1', uplinkMtu: 1500 });
  assert.equal(p.role, 'member');
  assert.deepEqual(p.vxlan, {
    device: 'corvid.vx',
    vni: 9027,
    port: 4793,
    local: '10.1.0.11',
    mac: '0a:c7:0a:01:00:0b',
    mtu: 1450,
    peers: [{ node: 'v-gw1', address: '10.1.0.10', mac: '0a:c7:0a:01:00:0a', neighbours: ['10.1.0.10'] }],
  });
  // Path MTU: the tunnel's (1500 - 101) is below the VXLAN's 1450.
  assert.deepEqual(p.routes.map((r) => [r.dst, r.via, r.dev, r.mtu]), [
    ['10.102.0.0/24', '10.1.0.10', 'corvid.vx', 1399],
    ['10.102.1.0/24', '10.1.0.10', 'corvid.vx', 1399],
  ]);
  assert.deepEqual(p.rules, [{ family: 4, priority: 9027, table: 9027 }]);
  assert.deepEqual(p.findings, []);
});

test('vxlan member: a route carries the VXLAN MTU when it is below the tunnel path MTU', () => {
  // Jumbo WANs (9000) but a 1500 LAN: the tunnel allows 8899, the VXLAN 1450.
  const p = nodePlan({ gateways: [vpc('vxlan', 'v-gw1', { mtu: 9000 }), remote({ mtu: 9000 })], nodeName: 'v-n1', uplinkMtu: 1500 });
  assert.deepEqual(p.routes.map((r) => r.mtu), [1450, 1450]);
  assert.equal(nodePlan({ gateways: [vpc('vxlan'), remote()], nodeName: 'v-n1', uplinkDevice: 'ens5' }).vxlan?.uplink, 'ens5');
  // Without a known uplink MTU: no device MTU, the tunnel's path MTU alone.
  const q = nodePlan({ gateways: [vpc('vxlan', 'v-gw1', { mtu: 1400 }), remote()], nodeName: 'v-n1' });
  assert.equal(q.vxlan?.mtu, undefined);
  assert.deepEqual(q.routes.map((r) => r.mtu), [1299, 1299]);
});

test('vxlan gateway: the device without peers and no routes of ours (replies to members take the CNI path)', () => {
  const p = nodePlan({ gateways: [vpc('vxlan'), remote()], nodeName: 'v-gw1', uplinkMtu: 1500 });
  assert.equal(p.role, 'gateway');
  assert.deepEqual(p.vxlan, { device: 'corvid.vx', vni: 9027, port: 4793, local: '10.1.0.10', mac: '0a:c7:0a:01:00:0a', mtu: 1450, peers: [] });
  assert.deepEqual(p.routes, []);
  assert.equal(p.tunnels.length, 1);
});

test('auto: vxlan for a member whose gateway is outside its uplink prefixes, direct (device kept, no peers) otherwise', () => {
  const onLink = nodePlan({ gateways: [vpc('auto'), remote()], nodeName: 'v-n1', uplinkMtu: 1500, uplinkPrefixes: ['10.1.0.0/24', 'fd00::/64'] });
  assert.deepEqual(onLink.vxlan?.peers, []);
  assert.deepEqual(onLink.routes.map((r) => [r.via, r.dev]), [['10.1.0.10', undefined], ['10.1.0.10', undefined]]);
  const routed = nodePlan({ gateways: [vpc('auto'), remote()], nodeName: 'v-n1', uplinkMtu: 1500, uplinkPrefixes: ['10.9.0.0/24'] });
  assert.deepEqual(routed.vxlan?.peers.map((x) => x.node), ['v-gw1']);
  assert.deepEqual(routed.routes.map((r) => [r.via, r.dev]), [['10.1.0.10', 'corvid.vx'], ['10.1.0.10', 'corvid.vx']]);
  // Not known: vxlan, which works on-link too.
  const unknown = nodePlan({ gateways: [vpc('auto'), remote()], nodeName: 'v-n1' });
  assert.deepEqual(unknown.routes.map((r) => r.dev), ['corvid.vx', 'corvid.vx']);
});

test('failover: the member keeps its device and moves its one peer (FDB, neighbour, next hop) to the new gateway', () => {
  const before = nodePlan({ gateways: [vpc('vxlan', 'v-gw1'), remote()], nodeName: 'v-n1', uplinkMtu: 1500 });
  const after = nodePlan({ gateways: [vpc('vxlan', 'v-gw2'), remote()], nodeName: 'v-n1', uplinkMtu: 1500 });
  const { peers: p1, ...dev1 } = before.vxlan!;
  const { peers: p2, ...dev2 } = after.vxlan!;
  assert.deepEqual(dev1, dev2);
  assert.deepEqual(p1.map((x) => x.address), ['10.1.0.10']);
  assert.deepEqual(p2, [{ node: 'v-gw2', address: '10.1.0.12', mac: '0a:c7:0a:01:00:0c', neighbours: ['10.1.0.12'] }]);
  assert.deepEqual(after.routes.map((r) => [r.via, r.dev]), [['10.1.0.12', 'corvid.vx'], ['10.1.0.12', 'corvid.vx']]);
  // The old gateway, now a member, routes through its device towards the new one.
  const old = nodePlan({ gateways: [vpc('vxlan', 'v-gw2'), remote()], nodeName: 'v-gw1', uplinkMtu: 1500 });
  assert.equal(old.role, 'member');
  assert.deepEqual(old.vxlan?.peers.map((x) => x.node), ['v-gw2']);
  // No active gateway for a moment: the device stays, without peers.
  const gap = vpc('vxlan');
  gap.status!.activeEndpoints = [];
  assert.deepEqual(nodePlan({ gateways: [gap, remote()], nodeName: 'v-n1', uplinkMtu: 1500 }).vxlan?.peers, []);
});

test('vxlan, dual-stack gateway: both of its addresses are neighbours behind its MAC', () => {
  const v6 = gw('site', [['s-gw', '10.2.0.10', 'fd02::/64'], ['s-n1', '10.2.0.11', '10.102.1.0/24']], 's-gw');
  const p = nodePlan({ gateways: [vpc('vxlan', 'v-gw1', { privateIPs: '10.1.0.10,fd01::10' }), v6], nodeName: 'v-n1', uplinkMtu: 1500 });
  assert.deepEqual(p.vxlan?.peers, [{ node: 'v-gw1', address: '10.1.0.10', mac: '0a:c7:0a:01:00:0a', neighbours: ['10.1.0.10', 'fd01::10'] }]);
  assert.deepEqual(p.routes.map((r) => [r.dst, r.via, r.dev]), [
    ['10.102.1.0/24', '10.1.0.10', 'corvid.vx'],
    ['fd02::/64', 'fd01::10', 'corvid.vx'],
  ]);
});

test('vxlan: a node without a usable address, or a gateway of the other family, routes directly with a finding', () => {
  const bad = vpc('vxlan');
  bad.status!.nodes![2].privateIP = 'not-an-ip';
  const p = nodePlan({ gateways: [bad, remote()], nodeName: 'v-n1', uplinkMtu: 1500 });
  assert.equal(p.vxlan, undefined);
  assert.deepEqual(p.findings.map((x) => x.code), ['vxlan-without-address']);
  assert.deepEqual(p.routes.map((r) => r.dev), [undefined, undefined]);
  const mixed = vpc('vxlan');
  mixed.status!.nodes![2].privateIP = 'fd01::11';
  const q = nodePlan({ gateways: [mixed, remote()], nodeName: 'v-n1', uplinkMtu: 1500 });
  assert.equal(q.vxlan?.mtu, 1430);
  assert.deepEqual(q.findings.map((x) => x.code), ['vxlan-family-mismatch']);
  assert.deepEqual(q.vxlan?.peers, []);
});
