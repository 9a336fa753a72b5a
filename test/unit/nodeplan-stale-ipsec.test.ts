// Issue 16: which kernel IPsec state a dead charon left is corvid's and stale (src/nodeplan/stale-ipsec.ts), over
// what the xfrm adapter parses on a node: cloud-gw-1 was cloud's gateway (tunnels to edge-a, and to edge-b over IPv4
// and IPv6), its charon was SIGKILLed, a new one started at START.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { corvidAddresses, staleIpsec, type CorvidAddresses, type LiveChild, type StaleIpsecInput, type XfrmPolicy, type XfrmSa } from '../../src/nodeplan/stale-ipsec.ts';
import { encodeGatewayAnnotations } from '../../src/gateway/annotations.ts';
import { DEFAULT_ENCRYPTION } from '../../src/topology/normalise.ts';
import { poolGateway } from '../support/gateways.ts';

const START = 1_765_017_000;
const OLD = START - 600;
const NEW = START + 5;

const IPSEC = { ...DEFAULT_ENCRYPTION, pskSecretRef: { name: 'corvid-psk', key: 'psk' } };
const ann = (nodeAddresses = false): Record<string, string> =>
  encodeGatewayAnnotations({ peers: ['*'], encryption: IPSEC, encryptionDefaults: IPSEC, ...(nodeAddresses ? { nodeAddresses: true } : {}) });
const GATEWAYS = [
  poolGateway({
    pool: 'cloud',
    active: 'cloud-gw-2',
    publicIP: '198.51.100.12',
    annotations: ann(),
    nodes: [
      { name: 'cloud-gw-1', ip: '10.0.0.11', subnets: ['10.244.1.0/24', 'fd00:c1::/64'] },
      { name: 'cloud-gw-2', ip: '10.0.0.12', subnets: ['10.244.2.0/24'] },
    ],
  }),
  poolGateway({ pool: 'edge-a', active: 'edge-a-gw', publicIP: '203.0.113.10', annotations: ann(true), nodes: [{ name: 'edge-a-gw', ip: '192.168.10.2', subnets: ['10.245.1.0/24'] }] }),
  poolGateway({ pool: 'edge-b', active: 'edge-b-gw', annotations: ann(), privateIPs: '192.168.20.2,2001:db8:b::2', nodes: [{ name: 'edge-b-gw', ip: '192.168.20.2', subnets: ['10.246.1.0/24', 'fd00:b:0:0::/64'] }] }),
];
// cloud-gw-1 was the active endpoint when its charon died: the sync lists it too (it is a candidate).
GATEWAYS[0].spec.endpoints!.push({ nodeName: 'cloud-gw-1', type: 'tunnel', port: 4500, underNAT: false, publicIP: '198.51.100.11' });
const OURS = corvidAddresses(GATEWAYS, 'cloud-gw-1');

test('corvidAddresses: every pool\'s subnets (node addresses where routed), this node\'s and the gateways\' addresses', () => {
  assert.deepEqual(OURS, {
    prefixes: ['10.244.1.0/24', '10.244.2.0/24', '10.245.1.0/24', '10.246.1.0/24', '192.168.10.2/32', 'fd00:b::/64', 'fd00:c1::/64'],
    node: ['10.0.0.11', '198.51.100.11'],
    gateways: ['10.0.0.12', '192.168.10.2', '192.168.20.2', '198.51.100.12', '2001:db8:b::2', '203.0.113.10'],
  });
  assert.deepEqual(corvidAddresses([], 'x'), { prefixes: [], node: [], gateways: [] });
});

function policy(src: string, dst: string, dir: string, reqid: number, addedAt: number, over: Partial<XfrmPolicy> = {}): XfrmPolicy {
  const [a, b] = dir === 'out' ? ['10.0.0.11', '203.0.113.10'] : ['203.0.113.10', '10.0.0.11'];
  return { src, dst, selectorExtra: '', dir, action: 'allow', ptype: 'main', addedAt, templates: [{ src: a, dst: b, proto: 'esp', mode: 'tunnel', reqid }], ...over };
}
/** The three policies charon installs for one selector pair (local -> remote). */
function tunnelPolicies(local: string, remote: string, reqid: number, addedAt: number): XfrmPolicy[] {
  return [policy(local, remote, 'out', reqid, addedAt), policy(remote, local, 'in', reqid, addedAt), policy(remote, local, 'fwd', reqid, addedAt)];
}
function sa(src: string, dst: string, spi: string, reqid: number, addedAt: number, over: Partial<XfrmSa> = {}): XfrmSa {
  return { src, dst, proto: 'esp', spi, reqid, mode: 'tunnel', addedAt, ...over };
}

const keys = (r: ReturnType<typeof staleIpsec>) => ({
  policies: r.policies.map((p) => `${p.dir} ${p.src} ${p.dst}`).sort(),
  states: r.states.map((s) => s.spi).sort(),
  routes: r.routes.map((x) => x.dst).sort(),
});

function input(over: Partial<StaleIpsecInput>): StaleIpsecInput {
  return { routes: [], policies: [], states: [], charonStartedAt: START, ours: OURS, live: [], ...over };
}

test('the dead charon\'s policies, SAs and table-220 routes (IPv4 and IPv6) are stale; nobody else\'s is', () => {
  const socketPolicy: XfrmPolicy = { src: '0.0.0.0/0', dst: '0.0.0.0/0', selectorExtra: '', dir: 'socket in', action: 'allow', ptype: 'main', addedAt: OLD, templates: [] };
  const r = staleIpsec(
    input({
      routes: [
        { family: 4, dst: '10.245.1.0/24' },
        { family: 6, dst: 'fd00:b::/64' },
        { family: 4, dst: '10.99.0.0/16' }, // not a pool's: someone else's route in table 220
      ],
      policies: [
        ...tunnelPolicies('10.244.1.0/24', '10.245.1.0/24', 1, OLD),
        ...tunnelPolicies('fd00:c1::/64', 'fd00:b::/64', 2, OLD),
        socketPolicy,
        // Another IPsec user: TEST-NET-1 selectors, reqid 4242.
        policy('192.0.2.0/28', '192.0.2.16/28', 'out', 4242, OLD, { templates: [{ src: '192.0.2.1', dst: '192.0.2.2', proto: 'esp', mode: 'tunnel', reqid: 4242 }] }),
        // A CNI's own encryption between pod subnets: marked; and one with an xfrm interface.
        policy('10.244.1.0/24', '10.245.1.0/24', 'out', 30, OLD, { mark: '0xe00/0xf00' }),
        policy('10.244.1.0/24', '10.246.1.0/24', 'out', 31, OLD, { ifId: '0x9' }),
        // Pool subnets, but a port selector, a transport template, a block, a sub policy: not a tunnel of ours.
        policy('10.244.1.0/24', '10.246.1.0/24', 'out', 32, OLD, { selectorExtra: 'proto tcp dport 80' }),
        policy('10.244.2.0/24', '10.246.1.0/24', 'out', 33, OLD, { templates: [{ src: '10.0.0.11', dst: '10.0.0.12', proto: 'esp', mode: 'transport', reqid: 33 }] }),
        policy('10.244.2.0/24', '10.245.1.0/24', 'out', 34, OLD, { action: 'block', templates: [] }),
        policy('10.244.2.0/24', '10.245.1.0/24', 'in', 35, OLD, { ptype: 'sub' }),
        // One selector only a pool's.
        policy('10.244.1.0/24', '10.99.0.0/16', 'out', 36, OLD),
      ],
      states: [
        sa('10.0.0.11', '203.0.113.10', '0xc0000001', 1, OLD),
        sa('203.0.113.10', '10.0.0.11', '0xc0000002', 1, OLD),
        sa('2001:db8::11', '2001:db8:b::2', '0xc0000003', 2, OLD),
        sa('192.0.2.1', '192.0.2.2', '0x00004242', 4242, OLD),
        sa('10.0.0.11', '203.0.113.10', '0xc0000030', 30, OLD, { mark: '0xe00/0xf00' }),
        sa('10.0.0.11', '203.0.113.10', '0xc0000031', 31, OLD, { ifId: '0x9' }),
        sa('10.0.0.11', '10.0.0.12', '0xc0000033', 33, OLD, { mode: 'transport' }),
        sa('10.0.0.11', '10.0.0.12', '0xc0000000', 0, OLD),
      ],
    }),
  );
  assert.deepEqual(keys(r), {
    policies: [
      'fwd fd00:b::/64 fd00:c1::/64',
      'fwd 10.245.1.0/24 10.244.1.0/24',
      'in fd00:b::/64 fd00:c1::/64',
      'in 10.245.1.0/24 10.244.1.0/24',
      'out fd00:c1::/64 fd00:b::/64',
      'out 10.244.1.0/24 10.245.1.0/24',
    ].sort(),
    states: ['0xc0000001', '0xc0000002', '0xc0000003'],
    routes: ['10.245.1.0/24', 'fd00:b::/64'],
  });
});

test('what the running charon installed or took over (fresh add time) stays, and so does its route', () => {
  const r = staleIpsec(
    input({
      routes: [{ family: 4, dst: '10.246.1.0/24' }],
      // charon updated the edge-b policies after it started (same selectors, its reqid 1: it numbers from 1 again).
      policies: [...tunnelPolicies('10.244.1.0/24', '10.246.1.0/24', 1, NEW), ...tunnelPolicies('10.244.1.0/24', '10.245.1.0/24', 1, START - 1)],
      states: [
        sa('10.0.0.11', '192.168.20.2', '0xc1000001', 1, NEW), // the new CHILD_SA's
        sa('10.0.0.11', '192.168.20.2', '0xc0000007', 1, OLD), // the dead charon's, same reqid number
        sa('10.0.0.11', '192.168.20.2', '0xc0000008', 7, OLD), // the dead charon's, its reqid in no policy now
        sa('10.0.0.11', '10.9.9.9', '0xc0000009', 9, OLD), // not towards a gateway, reqid in no policy
      ],
    }),
  );
  assert.deepEqual(keys(r), {
    policies: ['fwd 10.245.1.0/24 10.244.1.0/24', 'in 10.245.1.0/24 10.244.1.0/24', 'out 10.244.1.0/24 10.245.1.0/24'],
    states: ['0xc0000007', '0xc0000008'],
    routes: [],
  });
});

test('added in the second charon started, or with no add time: kept', () => {
  const r = staleIpsec(input({ policies: [...tunnelPolicies('10.244.1.0/24', '10.245.1.0/24', 1, START), policy('10.244.1.0/24', '10.246.1.0/24', 'out', 2, NaN, { addedAt: undefined })] }));
  assert.deepEqual(keys(r), { policies: [], states: [], routes: [] });
});

test('a selector pair or SPI charon reports (a CHILD_SA it is installing while the clock says otherwise) is kept', () => {
  const live: LiveChild[] = [{ localTs: ['10.244.1.0/24'], remoteTs: ['10.245.1.0/24'], spis: ['c0000001', 'c0000002'] }];
  const r = staleIpsec(
    input({
      routes: [{ family: 4, dst: '10.245.1.0/24' }],
      policies: tunnelPolicies('10.244.1.0/24', '10.245.1.0/24', 1, OLD),
      states: [sa('10.0.0.11', '203.0.113.10', '0xc0000001', 1, OLD), sa('203.0.113.10', '10.0.0.11', '0xC0000002', 1, OLD), sa('203.0.113.10', '10.0.0.11', '0xc0000005', 1, OLD)],
      live,
    }),
  );
  assert.deepEqual(keys(r), { policies: [], states: ['0xc0000005'], routes: [] });
});

test('a route stays while another out policy to its prefix stays', () => {
  const r = staleIpsec(
    input({
      routes: [{ family: 4, dst: '10.245.1.0/24' }],
      policies: [policy('10.244.1.0/24', '10.245.1.0/24', 'out', 1, OLD), policy('10.244.2.0/24', '10.245.1.0/24', 'out', 2, NEW)],
    }),
  );
  assert.deepEqual(keys(r), { policies: ['out 10.244.1.0/24 10.245.1.0/24'], states: [], routes: [] });
});

test('libipsec (no kernel policies; charon\'s routes in table 220 go through its TUN device): nothing', () => {
  const ours: CorvidAddresses = OURS;
  const r = staleIpsec(input({ ours, routes: [{ family: 4, dst: '10.245.1.0/24' }, { family: 6, dst: 'fd00:b::/64' }], states: [] }));
  assert.deepEqual(keys(r), { policies: [], states: [], routes: [] });
  // No Gateways (nothing synced yet): nothing is corvid's.
  const none = staleIpsec(input({ ours: { prefixes: [], node: [], gateways: [] }, policies: tunnelPolicies('10.244.1.0/24', '10.245.1.0/24', 1, OLD) }));
  assert.deepEqual(keys(none), { policies: [], states: [], routes: [] });
});
