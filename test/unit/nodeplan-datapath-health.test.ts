// The agent's verdict on its own node (src/nodeplan/datapath-health.ts) and how the sync reads it off the Lease.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  CHARON_PROBE_FAILURES_DOWN,
  datapathDownReason,
  handoverWantedReason,
  HANDOVER_WANTED_MAX_MS,
  needsCharon,
  NO_PEER_ROUTE_PROBES_DOWN,
  peerGatewayAddresses,
  peersLostByRestart,
  wireguardLinkFile,
  wireguardLinkVanished,
} from '../../src/nodeplan/datapath-health.ts';
import { endpointHost, type NodePlan } from '../../src/nodeplan/index.ts';
import { DATAPATH_REASON_MAX, heartbeatFromLease } from '../../src/adapters/kube/leases.ts';
import { DATAPATH_DOWN_ANNOTATION, HANDOVER_WANTED_ANNOTATION } from '../../src/gateway/keys.ts';

const V4_ON = [{ family: 4 as const, value: '1' }];

test('charon: one failed probe is a restart in progress, two in a row mean the node cannot forward', () => {
  assert.equal(CHARON_PROBE_FAILURES_DOWN, 2);
  assert.equal(datapathDownReason({ charonFailures: 0, forwarding: V4_ON }), undefined);
  assert.equal(datapathDownReason({ charonFailures: 1, forwarding: V4_ON }), undefined);
  assert.equal(datapathDownReason({ charonFailures: 2, forwarding: V4_ON }), 'charon does not answer on its VICI socket');
  assert.equal(datapathDownReason({ forwarding: V4_ON }), undefined, 'no IPsec: charon is not asked about');
});

test('forwarding: off in either family says so; a sysctl that could not be read is no verdict', () => {
  assert.equal(datapathDownReason({ forwarding: [{ family: 4, value: '0' }] }), 'IPv4 forwarding is off');
  assert.equal(datapathDownReason({ forwarding: [{ family: 4, value: '1' }, { family: 6, value: '0' }] }), 'IPv6 forwarding is off');
  assert.equal(
    datapathDownReason({ charonFailures: 5, forwarding: [{ family: 4, value: '0' }, { family: 6, value: '0' }] }),
    'charon does not answer on its VICI socket; IPv4 and IPv6 forwarding is off',
  );
  assert.equal(datapathDownReason({ forwarding: [{ family: 4, value: undefined }] }), undefined);
});

test('no route to any peer gateway for two probes in a row: the uplink is down; one probe, or one peer still routed, is not', () => {
  assert.equal(NO_PEER_ROUTE_PROBES_DOWN, 2);
  const addresses = ['198.51.100.21', '198.51.100.22'];
  assert.equal(datapathDownReason({ noPeerRoute: { probes: 1, addresses }, forwarding: V4_ON }), undefined);
  assert.equal(datapathDownReason({ noPeerRoute: { probes: 2, addresses }, forwarding: V4_ON }), 'no route to any peer gateway (198.51.100.21, 198.51.100.22)');
  assert.equal(datapathDownReason({ noPeerRoute: { probes: 0, addresses }, forwarding: V4_ON }), undefined);
  assert.equal(datapathDownReason({ forwarding: V4_ON }), undefined, 'no address known: no verdict');
});

test('peer gateway addresses: planned remote addresses and endpoints, else where a NAT\'d peer was seen; none for a member', () => {
  const plan = {
    role: 'gateway',
    tunnels: [
      { name: 'corvid-cloud', remoteAddr: '198.51.100.11' },
      { name: 'corvid-edge-a', remoteAddr: '%any' },
      { name: 'corvid-edge-b', remoteAddr: '%any' },
    ],
    wireguard: { device: 'corvid.wg', listenPort: 51820, peers: [{ name: 'corvid-hub', endpoint: '[2001:db8::0:1]:51820' }, { name: 'corvid-nat' }] },
  } as unknown as NodePlan;
  const learned = new Map([['corvid-edge-a', '198.51.100.21'], ['corvid-nat', '203.0.113.9'], ['corvid-gone', '192.0.2.1']]);
  assert.deepEqual(peerGatewayAddresses(plan, learned), ['198.51.100.11', '198.51.100.21', '2001:db8::1', '203.0.113.9']);
  assert.deepEqual(peerGatewayAddresses({ role: 'member', tunnels: [] } as unknown as NodePlan, learned), []);
  assert.equal(endpointHost('192.0.2.1:51820'), '192.0.2.1');
  assert.equal(endpointHost('[2001:DB8::1]:4500'), '2001:db8::1');
  assert.equal(endpointHost('not an endpoint'), undefined);
});

test('charon is needed when any pool this node reaches is reached over IPsec (first hop), not for WireGuard or none', () => {
  const plan = (...backends: Array<'ipsec' | 'wireguard' | 'none'>) => ({ reach: backends.map((backend, i) => ({ pool: `p${i}`, path: 'direct', backend })) }) as unknown as NodePlan;
  assert.equal(needsCharon(plan('ipsec')), true);
  assert.equal(needsCharon(plan('wireguard', 'ipsec')), true);
  assert.equal(needsCharon(plan('wireguard', 'none')), false);
  assert.equal(needsCharon(plan()), false, 'a node that reaches no pool');
});

test('a WireGuard link seen at the last probe and missing now is rebuilt at once; never seen, unreadable or unplanned is not', () => {
  const wg = { routes: [], tunnels: [], wireguard: { device: 'corvid.wg', listenPort: 51820, peers: [] } } as unknown as NodePlan;
  const plain = { routes: [], tunnels: [] } as unknown as NodePlan;
  const file = '/sys/class/net/corvid.wg/ifindex';
  assert.equal(wireguardLinkFile(wg), file);
  assert.equal(wireguardLinkFile(plain), undefined);
  const fwd = '/proc/sys/net/ipv4/ip_forward';
  const there = new Map([[fwd, '1'], [file, '7']]);
  const gone = new Map([[fwd, '1']]);
  assert.deepEqual(wireguardLinkVanished(wg, there, false), { present: true, vanished: false }, 'first seen');
  assert.deepEqual(wireguardLinkVanished(wg, there, true), { present: true, vanished: false });
  assert.deepEqual(wireguardLinkVanished(wg, gone, true), { present: false, vanished: true }, 'wireguard-go died');
  assert.deepEqual(wireguardLinkVanished(wg, gone, false), { present: false, vanished: false }, 'not created yet, or cannot be: the repair timer retries');
  assert.deepEqual(wireguardLinkVanished(wg, new Map(), true), { present: true, vanished: false }, 'the read failed: no verdict');
  assert.deepEqual(wireguardLinkVanished(plain, gone, true), { present: false, vanished: false }, 'the plan has no WireGuard link');
});

test('the sync reads the verdict off the Lease annotation: any value is "down", the text is bounded', () => {
  const lease = (annotations?: Record<string, string>) => ({ metadata: { name: 'gw', ...(annotations ? { annotations } : {}) }, spec: { holderIdentity: 'gw' } });
  assert.equal(heartbeatFromLease(lease())?.datapathDown, undefined);
  assert.equal(heartbeatFromLease(lease({ [DATAPATH_DOWN_ANNOTATION]: 'IPv4 forwarding is off' }))?.datapathDown, 'IPv4 forwarding is off');
  assert.equal(heartbeatFromLease(lease({ [DATAPATH_DOWN_ANNOTATION]: '' }))?.datapathDown, 'datapath down');
  assert.equal(heartbeatFromLease(lease({ [DATAPATH_DOWN_ANNOTATION]: 'x'.repeat(5000) }))?.datapathDown?.length, DATAPATH_REASON_MAX);
});

test('a charon restart loses the tunnels this node answers and had up when the old charon died; not those it initiates', () => {
  const started = Date.parse('2026-01-01T00:00:10.300Z');
  const seen = [
    { peer: 'edge-b', role: 'responder' as const, up: true, since: '2026-01-01T00:00:01Z' },
    { peer: 'edge-a', role: 'responder' as const, up: false, since: '2026-01-01T00:00:10Z' },
    { peer: 'hub', role: 'initiator' as const, up: true, since: '2026-01-01T00:00:01Z' },
    { peer: 'never', role: 'responder' as const, up: false, since: '2026-01-01T00:00:01Z' },
    { peer: 'down-before', role: 'responder' as const, up: false, since: '2026-01-01T00:00:09Z' },
  ];
  assert.deepEqual(
    peersLostByRestart(seen, started),
    ['edge-a', 'edge-b'],
    'up and not read since, or read down from the new charon first (down since the restart, whole seconds); not down before it',
  );
  assert.deepEqual(peersLostByRestart([], started), []);
});

test('the hand-over request names the peers not back since the restart was seen, and ends when they are, or after its bound', () => {
  const startedMs = Date.parse('2026-01-01T00:00:10.300Z');
  const loss = { peers: ['edge-a', 'edge-b'], startedMs, seenMs: startedMs + 200 };
  const at = (s: number) => startedMs + s * 1000;
  const up = (peer: string, since: string) => ({ peer, up: true, since });
  const down = (peer: string, since: string) => ({ peer, up: false, since });
  const waitingBoth = 'charon restarted; its tunnels to edge-a, edge-b wait for those peers to initiate again';
  assert.equal(handoverWantedReason(loss, [down('edge-a', '2026-01-01T00:00:10Z'), down('edge-b', '2026-01-01T00:00:10Z')], at(1)), waitingBoth);
  assert.equal(
    handoverWantedReason(loss, [up('edge-a', '2026-01-01T00:00:05Z'), up('edge-b', '2026-01-01T00:00:05Z')], at(0.1)),
    waitingBoth,
    'up since before the restart: the old charon, not read again yet (the datapath probe comes between reads)',
  );
  assert.equal(
    handoverWantedReason(loss, [up('edge-a', '2026-01-01T00:00:12Z'), down('edge-b', '2026-01-01T00:00:10Z')], at(2)),
    'charon restarted; its tunnels to edge-b wait for those peers to initiate again',
  );
  assert.equal(handoverWantedReason(loss, [up('edge-a', '2026-01-01T00:00:10Z'), up('edge-b', '2026-01-01T00:00:11Z')], at(2)), undefined, 'whole seconds: up in the second it was seen counts');
  assert.notEqual(handoverWantedReason(loss, [], startedMs + HANDOVER_WANTED_MAX_MS - 1), undefined);
  assert.equal(handoverWantedReason(loss, [], startedMs + HANDOVER_WANTED_MAX_MS), undefined, 'bounded: by then their dead-peer detection has brought them back');
  assert.equal(handoverWantedReason({ ...loss, peers: [] }, [], startedMs), undefined);
});

test('the sync reads corvid.dev/handover-wanted off the Lease, shortened; absent is no request', () => {
  const lease = (annotations?: Record<string, string>) => ({ metadata: { name: 'gw', ...(annotations ? { annotations } : {}) }, spec: { renewTime: '2026-01-01T00:00:00.000000Z' } });
  assert.equal(heartbeatFromLease(lease())?.handoverWanted, undefined);
  assert.equal(heartbeatFromLease(lease({ [HANDOVER_WANTED_ANNOTATION]: 'charon restarted' }))?.handoverWanted, 'charon restarted');
  assert.equal(heartbeatFromLease(lease({ [HANDOVER_WANTED_ANNOTATION]: '' }))?.handoverWanted, 'handover wanted');
  assert.equal(heartbeatFromLease(lease({ [HANDOVER_WANTED_ANNOTATION]: 'x'.repeat(1000) }))?.handoverWanted?.length, DATAPATH_REASON_MAX);
});
