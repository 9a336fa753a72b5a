// Issue 15, node addresses across pools (spec.nodeAddresses): which pools publish them (overlapping node subnets
// refused, naming both pools), and how the agents route them (pure).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { coveringPrefix, nodeAddressPools, nodeSubnets } from '../../src/plan/nodeaddresses.ts';
import { plan } from '../../src/plan/planner.ts';
import { formatPrefix, parseAddress } from '../../src/nodeplan/cidr.ts';
import { nodePlan } from '../../src/nodeplan/plan.ts';
import { encodeGatewayAnnotations } from '../../src/gateway/annotations.ts';
import { NODE_ADDRESSES_ANNOTATION } from '../../src/gateway/keys.ts';
import type { Finding } from '../../src/plan/types.ts';
import { DEFAULT_ENCRYPTION } from '../../src/topology/normalise.ts';
import { poolGateway } from '../support/gateways.ts';
import { input, node, pool, topology } from './plan-fixtures.ts';

test('a pool\'s node subnet: the smallest prefix holding its nodes, per family', () => {
  assert.equal(formatPrefix(coveringPrefix(['10.1.0.10', '10.1.0.12'].map((a) => parseAddress(a)!))!), '10.1.0.8/29');
  assert.equal(formatPrefix(coveringPrefix([parseAddress('10.1.0.10')!])!), '10.1.0.10/32');
  assert.deepEqual(nodeSubnets(['10.1.0.10', 'fd00::1', 'fd00::ff', 'nonsense']).map(formatPrefix), ['10.1.0.10/32', 'fd00::/120']);
});

test('overlapping node subnets are refused, naming both pools; the other pools keep theirs', () => {
  const findings: Finding[] = [];
  const on = nodeAddressPools(
    [
      { name: 'store-1', addresses: ['192.168.1.10', '192.168.1.20'] },
      { name: 'store-2', addresses: ['192.168.1.14'] },
      { name: 'cloud', addresses: ['10.0.0.5', '10.0.0.6'] },
      { name: 'plant', addresses: ['10.0.8.5'] },
      { name: 'empty', addresses: [] },
    ],
    findings,
  );
  assert.deepEqual([...on].sort(), ['cloud', 'empty', 'plant']);
  assert.deepEqual(findings, [
    {
      severity: 'error',
      code: 'node-addresses-overlap',
      pool: 'store-1',
      message:
        "pools store-1 and store-2: their node subnets overlap (192.168.1.0/27 and 192.168.1.14/32), so routing one's node addresses to the other would take over addresses of its own network; neither pool's node addresses are routed across pools (renumber one of them, or turn spec.nodeAddresses off)",
    },
  ]);
  // A chain of three: each pool inside another is reported with the innermost one holding it.
  const chain: Finding[] = [];
  assert.deepEqual([...nodeAddressPools([{ name: 'a', addresses: ['10.0.0.1', '10.0.255.1'] }, { name: 'b', addresses: ['10.0.1.1', '10.0.1.200'] }, { name: 'c', addresses: ['10.0.1.7'] }], chain)], []);
  assert.deepEqual(chain.map((f) => f.message.split(':')[0]), ['pools a and b', 'pools b and c']);
});

test('the planner publishes corvid.dev/node-addresses only with spec.nodeAddresses, and not for overlapping pools', () => {
  const pools = [pool('a', ['a-gw']), pool('b', ['b-gw']), pool('c', ['c-gw'])];
  const nodes = [
    node('a-gw', 'a', { internalIP: '10.1.0.10' }),
    node('a-n1', 'a', { internalIP: '10.1.0.20' }),
    node('b-gw', 'b', { internalIP: '10.2.0.10' }),
    node('c-gw', 'c', { internalIP: '10.1.0.12' }),
  ];
  const off = plan(input(topology(pools), nodes));
  assert.ok(off.gateways.every((g) => g.metadata.annotations?.[NODE_ADDRESSES_ANNOTATION] === undefined));
  const on = plan(input(topology(pools, { nodeAddresses: true }), nodes));
  assert.deepEqual(on.gateways.map((g) => [g.metadata.name, g.metadata.annotations?.[NODE_ADDRESSES_ANNOTATION]]), [
    ['a', undefined],
    ['b', 'true'],
    ['c', undefined],
  ]);
  assert.deepEqual(on.findings.filter((f) => f.code === 'node-addresses-overlap').map((f) => f.message.split(':')[0]), ['pools a and c']);
});

const IPSEC = { ...DEFAULT_ENCRYPTION, pskSecretRef: { name: 'corvid-psk', key: 'psk' } };
function gw(p: string, nodes: Array<[string, string, string]>, publicIP: string | undefined, on: boolean, vxlan = false) {
  const annotations = encodeGatewayAnnotations({
    peers: ['*'],
    encryption: IPSEC,
    encryptionDefaults: IPSEC,
    ...(on ? { nodeAddresses: true } : {}),
    ...(vxlan ? { memberRouting: 'vxlan' as const, memberVxlan: { vni: 9027, port: 4793 } } : {}),
  });
  return poolGateway({ pool: p, active: nodes[0][0], ...(publicIP ? { publicIP } : {}), annotations, nodes: nodes.map(([name, ip, s]) => ({ name, ip, subnets: [s] })) });
}
const A = (on = true, vxlan = false) => gw('a', [['a-gw', '10.1.0.10', '10.101.0.0/24'], ['a-n1', '10.1.0.11', '10.101.1.0/24']], '192.0.2.1', on, vxlan);
// b's gateway has no publicIP: its privateIP is its tunnel endpoint, and so never routed through a tunnel.
const B = (on = true) => gw('b', [['b-gw', '10.2.0.10', '10.102.0.0/24'], ['b-n1', '10.2.0.11', '10.102.1.0/24']], undefined, on);

test('agents route a peer\'s node addresses like its pod subnets, never a tunnel endpoint; both ends agree on selectors', () => {
  const member = nodePlan({ gateways: [A(), B()], nodeName: 'a-n1' });
  assert.deepEqual(member.routes.map((r) => `${r.dst} via ${r.via}`), ['10.2.0.11/32 via 10.1.0.10', '10.102.0.0/24 via 10.1.0.10', '10.102.1.0/24 via 10.1.0.10']);
  assert.deepEqual(member.packet.local, ['10.1.0.10/32', '10.1.0.11/32', '10.101.0.0/24', '10.101.1.0/24']);
  const ta = nodePlan({ gateways: [A(), B()], nodeName: 'a-gw' }).tunnels[0];
  const tb = nodePlan({ gateways: [A(), B()], nodeName: 'b-gw' }).tunnels[0];
  assert.deepEqual(ta.remoteTs, ['10.2.0.11/32', '10.102.0.0/24', '10.102.1.0/24']);
  assert.deepEqual([ta.localTs, ta.remoteTs], [tb.remoteTs, tb.localTs]);
  // A pool whose Gateway does not publish them (the option off, or an overlap) keeps its node addresses to itself.
  const off = nodePlan({ gateways: [A(), B(false)], nodeName: 'a-n1' });
  assert.deepEqual(off.routes.map((r) => r.dst), ['10.102.0.0/24', '10.102.1.0/24']);
});

test('a vxlan pool\'s gateway sends replies for its members\' node addresses back over the VXLAN (a VPC drops them on the LAN)', () => {
  const g = nodePlan({ gateways: [A(true, true), B()], nodeName: 'a-gw', uplinkMtu: 1500 });
  assert.deepEqual(g.vxlan?.peers, [{ node: 'a-n1', address: '10.1.0.11', mac: '0a:c7:0a:01:00:0b', neighbours: ['10.1.0.11'] }]);
  assert.deepEqual(g.routes.map((r) => [r.dst, r.via, r.dev, r.mtu]), [['10.1.0.11/32', '10.1.0.11', 'corvid.vx', 1450]]);
  assert.deepEqual(g.rules.map((r) => r.family), [4]);
  // Without node addresses, or in a direct pool, the gateway only receives.
  assert.deepEqual(nodePlan({ gateways: [A(false, true), B()], nodeName: 'a-gw' }).vxlan?.peers, []);
  assert.deepEqual(nodePlan({ gateways: [A(true, false), B()], nodeName: 'a-gw' }).routes, []);
});
