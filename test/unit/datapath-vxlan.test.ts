// Issue 15: the member VXLAN adapter's pure parts (parse, diff per phase) and the onlink routes through it.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { diffVxlan, parseFdb, parseNeighbours, parseVxlanLink, type ActualVxlanState } from '../../src/adapters/iproute/vxlan.ts';
import { deviceOfAddress, diffIpState, parseRoutes, prefixesOfAddress } from '../../src/adapters/iproute/iproute.ts';
import type { VxlanPlan } from '../../src/nodeplan/types.ts';

const DEV = 'corvid.vx';
const GW1 = { node: 'gw1', address: '10.1.0.10', mac: '0a:c7:0a:01:00:0a', neighbours: ['10.1.0.10'] };
const GW2 = { node: 'gw2', address: '10.1.0.12', mac: '0a:c7:0a:01:00:0c', neighbours: ['10.1.0.12'] };
const PLAN: VxlanPlan = { device: DEV, vni: 9027, port: 4793, local: '10.1.0.11', mac: '0a:c7:0a:01:00:0b', mtu: 1450, peers: [GW1] };
const LINK = { kind: 'vxlan', vni: 9027, port: 4793, local: '10.1.0.11', learning: false, mtu: 1450, mac: '0a:c7:0a:01:00:0b', up: true, addresses: ['10.1.0.11/32'] };
const lines = (d: ReturnType<typeof diffVxlan>) => d.commands.map((c) => `${c.tool} ${c.args.join(' ')}`);

test('parses the link, FDB and neighbours as ip and bridge print them (the own multicast FDB entries are not ours)', () => {
  const link = parseVxlanLink(
    '[{"ifname":"corvid.vx","flags":["BROADCAST","MULTICAST","UP","LOWER_UP"],"mtu":1450,"address":"0a:c7:0a:01:00:0b","linkinfo":{"info_kind":"vxlan","info_data":{"id":9027,"local":"10.1.0.11","port":4793,"learning":false}},"addr_info":[{"family":"inet","local":"10.1.0.11","prefixlen":32}]}]',
  );
  assert.deepEqual(link, LINK);
  assert.deepEqual(parseFdb('[{"mac":"33:33:00:00:00:01","flags":["self"],"state":"permanent"},{"mac":"0a:c7:0a:01:00:0a","dst":"10.1.0.10","flags":["self"],"state":"permanent"}]'), [
    { mac: '0a:c7:0a:01:00:0a', dst: '10.1.0.10', permanent: true },
  ]);
  assert.deepEqual(parseNeighbours('[{"dst":"10.1.0.10","lladdr":"0a:c7:0a:01:00:0a","state":["PERMANENT"]},{"dst":"10.1.0.99","state":["FAILED"]}]'), [
    { dst: '10.1.0.10', lladdr: '0a:c7:0a:01:00:0a', permanent: true },
    { dst: '10.1.0.99', permanent: false },
  ]);
});

test('creates the device with its entries; nothing to do when all is there', () => {
  assert.deepEqual(lines(diffVxlan({ fdb: [], neighbours: [] }, PLAN, DEV, 'add')), [
    'ip link add corvid.vx type vxlan id 9027 local 10.1.0.11 dstport 4793 nolearning',
    'ip link set dev corvid.vx addrgenmode none address 0a:c7:0a:01:00:0b mtu 1450',
    'ip address replace 10.1.0.11/32 dev corvid.vx',
    'ip link set dev corvid.vx up',
    'bridge fdb replace 0a:c7:0a:01:00:0a dev corvid.vx dst 10.1.0.10 self permanent',
    'ip neigh replace 10.1.0.10 lladdr 0a:c7:0a:01:00:0a dev corvid.vx nud permanent',
  ]);
  const done: ActualVxlanState = { link: LINK, fdb: [{ mac: GW1.mac, dst: GW1.address, permanent: true }], neighbours: [{ dst: '10.1.0.10', lladdr: GW1.mac, permanent: true }] };
  assert.deepEqual(lines(diffVxlan(done, PLAN, DEV, 'add')), []);
  assert.deepEqual(lines(diffVxlan(done, PLAN, DEV, 'prune')), []);
});

test('repairs drift in place (MTU, MAC, down, a lost entry), recreates on a VNI, port or address change', () => {
  const drift: ActualVxlanState = { link: { ...LINK, mtu: 1500, up: false, addresses: [] }, fdb: [], neighbours: [{ dst: '10.1.0.10', lladdr: '00:11:22:33:44:55', permanent: true }] };
  assert.deepEqual(lines(diffVxlan(drift, PLAN, DEV, 'add')), [
    'ip link set dev corvid.vx mtu 1450 up',
    'ip address replace 10.1.0.11/32 dev corvid.vx',
    'bridge fdb replace 0a:c7:0a:01:00:0a dev corvid.vx dst 10.1.0.10 self permanent',
    'ip neigh replace 10.1.0.10 lladdr 0a:c7:0a:01:00:0a dev corvid.vx nud permanent',
  ]);
  const other = lines(diffVxlan({ link: { ...LINK, port: 4800 }, fdb: [], neighbours: [] }, PLAN, DEV, 'add'));
  assert.deepEqual(other.slice(0, 2), ['ip link del dev corvid.vx', 'ip link add corvid.vx type vxlan id 9027 local 10.1.0.11 dstport 4793 nolearning']);
  // Bound to the uplink: the outer packets never follow a route of our table back into the device.
  const bound = lines(diffVxlan({ link: { ...LINK, link: 'eth1' }, fdb: [], neighbours: [] }, { ...PLAN, uplink: 'eth0' }, DEV, 'add'));
  assert.deepEqual(bound.slice(0, 2), ['ip link del dev corvid.vx', 'ip link add corvid.vx type vxlan id 9027 local 10.1.0.11 dev eth0 dstport 4793 nolearning']);
  assert.ok(bound.includes('bridge fdb replace 0a:c7:0a:01:00:0a dev corvid.vx dst 10.1.0.10 via eth0 self permanent'), bound.join('\n'));
  assert.deepEqual(parseFdb('[{"mac":"0a:c7:0a:01:00:0a","dst":"10.1.0.10","viaIf":"eth0","flags":["self"],"state":"permanent"}]'), [
    { mac: '0a:c7:0a:01:00:0a', dst: '10.1.0.10', permanent: true, via: 'eth0' },
  ]);
  const stale: ActualVxlanState = { link: { ...LINK, link: 'eth0' }, fdb: [{ mac: GW2.mac, dst: GW2.address, permanent: true, via: 'eth0' }], neighbours: [] };
  assert.deepEqual(lines(diffVxlan(stale, { ...PLAN, uplink: 'eth0' }, DEV, 'prune')), ['bridge fdb del 0a:c7:0a:01:00:0c dev corvid.vx dst 10.1.0.12 via eth0 self']);
});

test('failover: add the new gateway first, prune the old one after the routes moved; the device stays', () => {
  const before: ActualVxlanState = { link: LINK, fdb: [{ mac: GW1.mac, dst: GW1.address, permanent: true }], neighbours: [{ dst: '10.1.0.10', lladdr: GW1.mac, permanent: true }] };
  const next = { ...PLAN, peers: [GW2] };
  assert.deepEqual(lines(diffVxlan(before, next, DEV, 'add')), [
    'bridge fdb replace 0a:c7:0a:01:00:0c dev corvid.vx dst 10.1.0.12 self permanent',
    'ip neigh replace 10.1.0.12 lladdr 0a:c7:0a:01:00:0c dev corvid.vx nud permanent',
  ]);
  const during: ActualVxlanState = {
    ...before,
    fdb: [...before.fdb, { mac: GW2.mac, dst: GW2.address, permanent: true }],
    neighbours: [...before.neighbours, { dst: '10.1.0.12', lladdr: GW2.mac, permanent: true }],
  };
  assert.deepEqual(lines(diffVxlan(during, next, DEV, 'prune')), ['bridge fdb del 0a:c7:0a:01:00:0a dev corvid.vx dst 10.1.0.10 self', 'ip neigh del 10.1.0.10 dev corvid.vx']);
});

test('removes only its own device, and never a link of that name that is not a VXLAN', () => {
  assert.deepEqual(lines(diffVxlan({ link: LINK, fdb: [], neighbours: [] }, undefined, DEV, 'add')), []);
  assert.deepEqual(lines(diffVxlan({ link: LINK, fdb: [], neighbours: [] }, undefined, DEV, 'prune')), ['ip link del dev corvid.vx']);
  assert.deepEqual(diffVxlan({ link: { kind: 'bridge', up: true, addresses: [] }, fdb: [], neighbours: [] }, undefined, DEV, 'prune'), { commands: [], foreign: true });
  assert.deepEqual(diffVxlan({ fdb: [], neighbours: [] }, undefined, DEV, 'prune'), { commands: [], foreign: false });
});

test('routes: onlink through the device, replaced when the device or the onlink flag differs', () => {
  const want = { routes: [{ family: 4 as const, dst: '10.102.0.0/24', via: '10.1.0.10', mtu: 1399, dev: DEV }], rules: [] };
  assert.deepEqual(diffIpState({ routes: [], rules: [] }, want, 9027).map((c) => c.line), ['route replace 10.102.0.0/24 via 10.1.0.10 dev corvid.vx onlink table 9027 mtu 1399 advmss 1359']);
  const live = parseRoutes('[{"dst":"10.102.0.0/24","gateway":"10.1.0.10","dev":"corvid.vx","flags":["onlink"],"metrics":[{"mtu":1399,"advmss":1359}]}]', 4);
  assert.deepEqual(diffIpState({ routes: live, rules: [] }, want, 9027), []);
  // Back to direct: the same next hop, but not through the device.
  const direct = { routes: [{ family: 4 as const, dst: '10.102.0.0/24', via: '10.1.0.10', mtu: 1399 }], rules: [] };
  assert.deepEqual(diffIpState({ routes: live, rules: [] }, direct, 9027).map((c) => c.line), ['route replace 10.102.0.0/24 via 10.1.0.10 table 9027 mtu 1399 advmss 1359']);
  const lan = parseRoutes('[{"dst":"10.102.0.0/24","gateway":"10.1.0.10","dev":"eth0","metrics":[{"mtu":1399,"advmss":1359}]}]', 4);
  assert.equal(diffIpState({ routes: lan, rules: [] }, want, 9027).length, 1);
});

test("the uplink's name and connected prefixes (global scope): the link holding an address", () => {
  const json =
    '[{"ifname":"lo","addr_info":[{"local":"127.0.0.1","prefixlen":8,"scope":"host"}]},{"ifname":"eth0","mtu":1500,"addr_info":[{"local":"10.1.0.11","prefixlen":24,"scope":"global"},{"local":"fe80::1","prefixlen":64,"scope":"link"},{"local":"fd00::11","prefixlen":64,"scope":"global"}]}]';
  assert.deepEqual(prefixesOfAddress(json, '10.1.0.11'), ['10.1.0.11/24', 'fd00::11/64']);
  assert.equal(prefixesOfAddress(json, '10.9.9.9'), undefined);
  assert.equal(deviceOfAddress(json, '10.1.0.11'), 'eth0');
  assert.equal(deviceOfAddress(json, '10.9.9.9'), undefined);
});
