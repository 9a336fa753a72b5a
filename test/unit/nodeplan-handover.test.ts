// Make before break (issue 17): the node plan during a hand-over between two candidates of a pool. The successor
// routes the pool's IPsec traffic through its predecessor until its own tunnels are up; the predecessor keeps its
// tunnels as they are.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { nodePlan } from '../../src/nodeplan/plan.ts';
import { DEFAULT_ROUTE_TABLE, DEFAULT_RULE_PRIORITY, HANDOVER_RULE_PRIORITY } from '../../src/nodeplan/types.ts';
import { encodeGatewayAnnotations } from '../../src/gateway/annotations.ts';
import type { Gateway } from '../../src/gateway/types.ts';
import { DEFAULT_ENCRYPTION } from '../../src/topology/normalise.ts';
import { poolGateway } from '../support/gateways.ts';
import type { EncryptionPolicy, MemberRouting } from '../../src/topology/types.ts';

const IPSEC: EncryptionPolicy = { ...DEFAULT_ENCRYPTION, pskSecretRef: { name: 'corvid-psk', key: 'psk' } };
const WIREGUARD: EncryptionPolicy = { ...IPSEC, backend: 'wireguard' };

function gw(pool: string, nodes: Array<[string, string, string]>, active: string, o: { routing?: MemberRouting; encryption?: EncryptionPolicy } = {}): Gateway {
  const encryption = o.encryption ?? IPSEC;
  const annotations = encodeGatewayAnnotations({
    peers: ['*'],
    encryption,
    encryptionDefaults: encryption,
    ...(o.routing !== undefined ? { memberRouting: o.routing, memberVxlan: { vni: 9027, port: 4793 } } : {}),
    ...(encryption.backend === 'wireguard' ? { wireguardKeys: Object.fromEntries(nodes.map(([n], i) => [n, Buffer.alloc(32, i + pool.length).toString('base64')])) } : {}),
  });
  return poolGateway({ pool, active, publicIP: `192.0.2.${pool.length}`, annotations, nodes: nodes.map(([name, ip, subnet]) => ({ name, ip, subnets: [subnet] })) });
}

const EDGE: Array<[string, string, string]> = [
  ['e-gw1', '10.1.0.10', '10.101.0.0/24'],
  ['e-gw2', '10.1.0.12', '10.101.2.0/24'],
  ['e-n1', '10.1.0.11', '10.101.1.0/24'],
];
const edge = (active: string, o: { routing?: MemberRouting; encryption?: EncryptionPolicy } = {}) => gw('edge', EDGE, active, o);
const cloud = (o: { encryption?: EncryptionPolicy } = {}) => gw('cloud', [['c-gw', '10.2.0.10', '10.102.0.0/24'], ['c-n1', '10.2.0.11', '10.102.1.0/24']], 'c-gw', o);

test('the successor routes the remote subnets via its predecessor (on the LAN) while its own tunnels come up', () => {
  const plain = nodePlan({ gateways: [edge('e-gw2'), cloud()], nodeName: 'e-gw2' });
  assert.equal(plain.role, 'gateway');
  assert.deepEqual(plain.routes, [], 'an IPsec gateway routes nothing itself: charon does, in its own table');
  const p = nodePlan({ gateways: [edge('e-gw2'), cloud()], nodeName: 'e-gw2', handoverFrom: 'e-gw1' });
  assert.equal(p.role, 'gateway');
  assert.deepEqual(p.tunnels, plain.tunnels, 'its tunnels are the same as without a hand-over');
  assert.deepEqual(p.routes.map((r) => [r.dst, r.via, r.pool]), [
    ['10.102.0.0/24', '10.1.0.10', 'cloud'],
    ['10.102.1.0/24', '10.1.0.10', 'cloud'],
  ]);
  assert.deepEqual(p.rules.map((r) => r.family), [4], 'the rule that looks our table up');
  assert.equal(p.retiring, undefined);
});

test('the predecessor becomes a member that keeps its tunnels by name; nothing else changes', () => {
  const plain = nodePlan({ gateways: [edge('e-gw2'), cloud()], nodeName: 'e-gw1' });
  const p = nodePlan({ gateways: [edge('e-gw2'), cloud()], nodeName: 'e-gw1', handoverFrom: 'e-gw1' });
  assert.equal(p.role, 'member');
  assert.deepEqual(p.retiring, ['corvid-cloud']);
  assert.deepEqual({ ...p, retiring: undefined }, { ...plain, retiring: undefined });
  assert.deepEqual(p.routes.map((r) => r.via), ['10.1.0.12', '10.1.0.12'], 'its own traffic goes to the successor once its SAs are gone');
});

test('members and the peers are not affected; neither is a node whose hand-over names nobody of its pool', () => {
  const gws = [edge('e-gw2'), cloud()];
  for (const [node, from] of [['e-n1', 'e-gw1'], ['c-gw', 'e-gw1'], ['c-n1', 'e-gw1'], ['e-gw2', 'c-gw'], ['e-gw2', 'nobody'], ['e-gw2', 'e-gw2']] as const) {
    assert.deepEqual(nodePlan({ gateways: gws, nodeName: node, handoverFrom: from }), nodePlan({ gateways: gws, nodeName: node }), `${node}, hand-over from ${from}`);
  }
});

test('no bridge through the predecessor for WireGuard links (their routes go into corvid.wg) nor in VXLAN pools', () => {
  const wg = [edge('e-gw2', { encryption: WIREGUARD }), cloud({ encryption: WIREGUARD })];
  const p = nodePlan({ gateways: wg, nodeName: 'e-gw2', handoverFrom: 'e-gw1' });
  assert.deepEqual(p.routes.map((r) => [r.dst, r.dev, r.via]), [
    ['10.102.0.0/24', 'corvid.wg', undefined],
    ['10.102.1.0/24', 'corvid.wg', undefined],
  ]);
  assert.equal(nodePlan({ gateways: wg, nodeName: 'e-gw1', handoverFrom: 'e-gw1' }).retiring, undefined, 'no IPsec connection to keep');
  for (const routing of ['vxlan', 'auto'] as const) {
    const gws = [edge('e-gw2', { routing }), cloud()];
    assert.deepEqual(nodePlan({ gateways: gws, nodeName: 'e-gw2', handoverFrom: 'e-gw1' }).routes, nodePlan({ gateways: gws, nodeName: 'e-gw2' }).routes, routing);
  }
});

test("the hold: the members' traffic (in on the uplink) goes through the predecessor ahead of charon's table, per peer until the peer has installed our CHILD_SA", () => {
  const gws = [edge('e-gw2'), cloud()];
  const held = nodePlan({ gateways: gws, nodeName: 'e-gw2', handoverFrom: 'e-gw1', handoverReleased: [], uplinkDevice: 'eth0' });
  assert.deepEqual(held.routes.map((r) => [r.dst, r.via]), [
    ['10.102.0.0/24', '10.1.0.10'],
    ['10.102.1.0/24', '10.1.0.10'],
  ]);
  assert.deepEqual(held.rules, [
    { family: 4, priority: DEFAULT_RULE_PRIORITY, table: DEFAULT_ROUTE_TABLE },
    { family: 4, priority: HANDOVER_RULE_PRIORITY, table: DEFAULT_ROUTE_TABLE, iif: 'eth0' },
  ]);
  assert.ok(HANDOVER_RULE_PRIORITY < 220, "ahead of charon's table (220)");
  // Released: its traffic takes the new CHILD_SA (charon's table); nothing of ours is left for it.
  const released = nodePlan({ gateways: gws, nodeName: 'e-gw2', handoverFrom: 'e-gw1', handoverReleased: ['cloud'], uplinkDevice: 'eth0' });
  assert.deepEqual([released.routes, released.rules], [[], []]);
  // Without a hold (a dead predecessor) or an uplink known, the bridge stays behind charon's table, as before.
  const unheld = nodePlan({ gateways: gws, nodeName: 'e-gw2', handoverFrom: 'e-gw1', uplinkDevice: 'eth0' });
  assert.deepEqual(unheld.rules.map((r) => r.priority), [DEFAULT_RULE_PRIORITY]);
  assert.deepEqual(unheld.routes, held.routes);
  const noUplink = nodePlan({ gateways: gws, nodeName: 'e-gw2', handoverFrom: 'e-gw1', handoverReleased: [] });
  assert.deepEqual(noUplink.rules.map((r) => r.priority), [DEFAULT_RULE_PRIORITY]);
  // Only the successor holds: the predecessor and everyone else ignore it.
  for (const node of ['e-gw1', 'e-n1', 'c-gw']) {
    const o = { gateways: gws, nodeName: node, handoverFrom: 'e-gw1', uplinkDevice: 'eth0' };
    assert.deepEqual(nodePlan({ ...o, handoverReleased: [] }), nodePlan(o), node);
  }
});

test('the hold of a relayed pool is released with the tunnel that carries it (its relay)', () => {
  // A third pool reached through cloud: its subnets ride on our tunnel to cloud.
  const hub = gw('cloud', [['c-gw', '10.2.0.10', '10.102.0.0/24']], 'c-gw');
  const far = gw('far', [['f-gw', '10.3.0.10', '10.103.0.0/24']], 'f-gw');
  // Behind NAT (no public address), edge and far reach each other only through cloud.
  const relayed = (g: Gateway, o: { relay?: string; relaysFor?: string[] }): Gateway => {
    const behindNat = o.relay !== undefined;
    const endpoints = g.spec.endpoints!.map((e) => (behindNat ? { nodeName: e.nodeName, type: e.type, port: e.port, underNAT: true } : e));
    const actives = g.status!.activeEndpoints!.map((e) => (behindNat ? { nodeName: e.nodeName, type: e.type, port: e.port, underNAT: true } : e));
    return {
      ...g,
      metadata: { ...g.metadata, annotations: encodeGatewayAnnotations({ peers: ['*'], encryption: IPSEC, encryptionDefaults: IPSEC, ...o }) },
      spec: { ...g.spec, endpoints },
      status: { ...g.status, activeEndpoints: actives },
    };
  };
  const gws = [relayed(edge('e-gw2'), { relay: 'cloud' }), relayed(hub, { relaysFor: ['edge', 'far'] }), relayed(far, { relay: 'cloud' })];
  const plan = (released: string[]) => nodePlan({ gateways: gws, nodeName: 'e-gw2', handoverFrom: 'e-gw1', handoverReleased: released, uplinkDevice: 'eth0' });
  const held = plan([]);
  assert.deepEqual(held.tunnels.map((t) => t.peerPool), ['cloud'], `one tunnel, to the relay: ${JSON.stringify(held.findings)}`);
  assert.deepEqual(held.routes.map((r) => [r.dst, r.pool]), [
    ['10.102.0.0/24', 'cloud'],
    ['10.103.0.0/24', 'far'],
  ]);
  assert.deepEqual([plan(['cloud']).routes, plan(['cloud']).rules], [[], []]);
});
