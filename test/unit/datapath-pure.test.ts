// The pure parts of the datapath adapters: the nftables table text, rp_filter decisions, route devices, route MTUs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { renderTable } from '../../src/adapters/nft/nft.ts';
import { rpFilterActions } from '../../src/adapters/sysctl/rpfilter.ts';
import { devicesToward, looseRpFilterDevices } from '../../src/nodeplan/index.ts';
import { diffIpState, mtuOfAddress, parseRoutes, parseRules, routedDestinations } from '../../src/adapters/iproute/iproute.ts';

test('nft: no cross-pool traffic, no table', () => {
  assert.equal(renderTable({ local: [], remote: [], mss: [] }), '');
  assert.equal(renderTable({ local: ['10.1.0.0/24'], remote: [], mss: [] }), '');
});

test('nft: null SNAT bindings for local<->remote and remote<->remote, per family, after kube-proxy\'s mark', () => {
  const t = renderTable({ local: ['10.1.0.0/24', 'fd00:1::/64'], remote: ['10.2.0.0/24', '10.3.0.0/24'], mss: [] });
  assert.match(t, /^table inet corvid \{\n/);
  assert.match(t, /set local4 \{ type ipv4_addr; flags interval; auto-merge; elements = \{ 10\.1\.0\.0\/24 \} \}/);
  assert.match(t, /set remote4 \{ type ipv4_addr; flags interval; auto-merge; elements = \{ 10\.2\.0\.0\/24, 10\.3\.0\.0\/24 \} \}/);
  // No IPv6 remote: no IPv6 set or rule at all (an IPv6 local set alone would exempt nothing).
  assert.doesNotMatch(t, /ip6|local6/);
  const chain = /chain keep-pod-source \{\n([^}]*)\}/.exec(t)?.[1] ?? '';
  assert.deepEqual(
    chain.trim().split('\n').map((l) => l.trim()),
    [
      'type nat hook postrouting priority srcnat - 10; policy accept;',
      'meta mark & 0x00004000 == 0x00004000 return',
      'ip saddr @local4 ip daddr @remote4 snat ip to ip saddr',
      'ip saddr @remote4 ip daddr @local4 snat ip to ip saddr',
      'ip saddr @remote4 ip daddr @remote4 snat ip to ip saddr',
    ],
  );
  assert.doesNotMatch(t, /clamp-mss/);
});

test('nft: prefixes behind WireGuard leave only through its interface (forwarded and the node\'s own), per family', () => {
  const t = renderTable({ local: ['10.1.0.0/24'], remote: ['10.2.0.0/24', '10.3.0.0/24', 'fd00:2::/64'], mss: [], tunnelOnly: { device: 'corvid.wg', remote: ['10.2.0.0/24', 'fd00:2::/64'] } });
  assert.match(t, /set tunnel4 \{ type ipv4_addr; flags interval; auto-merge; elements = \{ 10\.2\.0\.0\/24 \} \}/);
  assert.match(t, /set tunnel6 \{ type ipv6_addr; flags interval; auto-merge; elements = \{ fd00:2::\/64 \} \}/);
  for (const [name, hook] of [['tunnel-only-forward', 'forward'], ['tunnel-only-output', 'output']]) {
    const chain = new RegExp(`chain ${name} \\{\\n([^}]*)\\}`).exec(t)?.[1] ?? '';
    assert.deepEqual(chain.trim().split('\n').map((l) => l.trim()), [
      `type filter hook ${hook} priority filter; policy accept;`,
      'ip daddr @tunnel4 oifname != "corvid.wg" drop',
      'ip6 daddr @tunnel6 oifname != "corvid.wg" drop',
    ]);
  }
  // No WireGuard prefix, no such chain.
  assert.doesNotMatch(renderTable({ local: ['10.1.0.0/24'], remote: ['10.2.0.0/24'], mss: [] }), /tunnel/);
});

test('nft: MSS clamps per (family, mss), SYNs both ways when forwarded, outbound from the node itself', () => {
  const t = renderTable({
    local: ['10.1.0.0/24'],
    remote: ['10.2.0.0/24', 'fd00:2::/64'],
    mss: [
      { family: 6, mss: 1219, remote: ['fd00:2::/64'] },
      { family: 4, mss: 1259, remote: ['10.2.0.0/24'] },
    ],
  });
  assert.match(t, /set mss4_1259 \{ type ipv4_addr; [^}]*elements = \{ 10\.2\.0\.0\/24 \} \}/);
  assert.match(t, /set mss6_1219 \{ type ipv6_addr; [^}]*elements = \{ fd00:2::\/64 \} \}/);
  assert.match(t, /chain clamp-mss-forward \{\n    type filter hook forward priority mangle; policy accept;\n    ip daddr @mss4_1259 tcp flags & \(syn \| rst\) == syn tcp option maxseg size > 1259 tcp option maxseg size set 1259\n    ip saddr @mss4_1259 /);
  assert.match(t, /chain clamp-mss-output \{[^}]*ip6 daddr @mss6_1219 [^}]*set 1219\n/);
  assert.ok(t.indexOf('mss4_1259') < t.indexOf('mss6_1219'), 'sorted by family');
  // Same input, same text.
  assert.equal(t, renderTable({ local: ['10.1.0.0/24'], remote: ['10.2.0.0/24', 'fd00:2::/64'], mss: [{ family: 4, mss: 1259, remote: ['10.2.0.0/24'] }, { family: 6, mss: 1219, remote: ['fd00:2::/64'] }] }));
});

test('rp_filter: strict devices become loose, the original is kept; loose or off ones are left alone', () => {
  const state = { all: 0, devices: new Map<string, number | undefined>([['eth0', 1], ['flannel.1', 2], ['cni0', 0], ['gone', undefined]]) };
  assert.deepEqual(rpFilterActions(state, ['eth0', 'flannel.1', 'cni0', 'gone'], new Map()), [{ device: 'eth0', value: 2, original: 1 }]);
  // all=1 makes every device strict: max(all, dev).
  const rhel = { all: 1, devices: new Map<string, number | undefined>([['eth0', 0], ['vxlan.calico', 2]]) };
  assert.deepEqual(rpFilterActions(rhel, ['eth0', 'vxlan.calico'], new Map()), [{ device: 'eth0', value: 2, original: 0 }]);
});

test('rp_filter: what we loosened goes back when no longer wanted, unless someone changed it meanwhile', () => {
  const recorded = new Map([['eth0', 1], ['tunl0', 1]]);
  const state = { all: 0, devices: new Map<string, number | undefined>([['eth0', 2], ['tunl0', 0]]) };
  assert.deepEqual(rpFilterActions(state, [], recorded), [{ device: 'eth0', value: 1 }]);
  // Someone set it strict again while we still want it loose: loosen again, keep the first original.
  const again = { all: 0, devices: new Map<string, number | undefined>([['eth0', 1]]) };
  assert.deepEqual(rpFilterActions(again, ['eth0'], new Map([['eth0', 1]])), [{ device: 'eth0', value: 2, original: 1 }]);
});

test('devices: longest-prefix match of each target in a routing table; blackholes and local routes never count', () => {
  const routes = [
    { dst: '0.0.0.0/0', dev: 'eth0', type: 'unicast' },
    { dst: '10.10.0.0/24', dev: 'eth0', type: 'unicast' },
    { dst: '10.244.0.0/16', dev: 'cni0', type: 'unicast' },
    { dst: '10.244.2.0/24', dev: 'flannel.1', type: 'unicast' },
    { dst: '192.168.45.64/26', type: 'blackhole' },
    { dst: '192.168.45.0/26', dev: 'vxlan.calico', type: 'unicast' },
  ];
  assert.deepEqual(devicesToward(['10.244.2.0/24', '10.10.0.12/32'], routes), ['eth0', 'flannel.1']);
  assert.deepEqual(devicesToward(['192.168.45.0/26', '192.168.45.64/26'], routes), ['eth0', 'vxlan.calico']);
  assert.deepEqual(devicesToward(['fd00::/64', 'not-a-prefix'], routes), []);
});

test('loose rp_filter: the devices toward the pool, a member VXLAN with pool neighbours, a standby\'s warm WireGuard; not an active\'s', () => {
  const main = [
    { dst: '10.10.0.0/24', dev: 'eth0', type: 'unicast' },
    { dst: '10.244.2.0/24', dev: 'flannel.1', type: 'unicast' },
  ];
  const vxlan = { device: 'corvid.vx', vni: 9027, port: 4790, local: '10.10.0.11', mac: '02:00:0a:0a:00:0b', peers: [] };
  const wireguard = { device: 'corvid.wg', listenPort: 51820, peers: [] };
  const neighbours = ['10.244.2.0/24', '10.10.0.12/32'];
  assert.deepEqual(looseRpFilterDevices({ poolNeighbours: neighbours, role: 'member' }, main), ['eth0', 'flannel.1']);
  assert.deepEqual(looseRpFilterDevices({ poolNeighbours: neighbours, role: 'gateway', vxlan }, main), ['corvid.vx', 'eth0', 'flannel.1']);
  assert.deepEqual(looseRpFilterDevices({ poolNeighbours: [], role: 'gateway', vxlan }, main), [], 'no cross-pool traffic: nothing loose');
  assert.deepEqual(looseRpFilterDevices({ poolNeighbours: neighbours, role: 'member', wireguard }, main), ['corvid.wg', 'eth0', 'flannel.1'], 'a warm standby');
  assert.deepEqual(looseRpFilterDevices({ poolNeighbours: neighbours, role: 'gateway', wireguard }, main), ['eth0', 'flannel.1'], 'the active gateway routes back into its own interface');
  assert.deepEqual(looseRpFilterDevices({ poolNeighbours: [], role: 'outside' }, main), []);
});

test('iproute: the destinations `ip -json -force -batch` printed a route for; a failed line prints nothing', () => {
  // As ip prints it for three `route get` lines, the second of which failed ("Network is unreachable").
  const stdout = [
    '[{"type":"local","dst":"10.9.0.5","dev":"lo","prefsrc":"10.9.0.1","flags":[],"uid":0,"cache":["local"]}]',
    '[{"dst":"2001:db8:0::1","gateway":"fe80::1","dev":"wan0","flags":[]}]',
    'garbage',
    '',
  ].join('\n');
  assert.deepEqual(routedDestinations(stdout), ['10.9.0.5', '2001:db8::1']);
});

test('iproute: routes carry mtu and advmss; a changed or missing MTU is repaired in place', () => {
  const json = JSON.stringify([
    { dst: '10.2.0.0/24', gateway: '10.1.0.10', dev: 'eth0', flags: [], metrics: [{ mtu: 1299, advmss: 1259 }] },
    { dst: '10.3.0.0/24', gateway: '10.1.0.10', dev: 'eth0', flags: [] },
    { dst: '10.4.0.0/24', gateway: '10.1.0.10', dev: 'eth0', flags: [], metrics: [{ mtu: 1299, hoplimit: 3 }] },
  ]);
  const routes = parseRoutes(json, 4);
  assert.deepEqual(routes.map((r) => [r.dst, r.mtu, r.advmss, r.plain]), [
    ['10.2.0.0/24', 1299, 1259, true],
    ['10.3.0.0/24', undefined, undefined, true],
    ['10.4.0.0/24', undefined, undefined, false],
  ]);
  const want = ['10.2.0.0/24', '10.3.0.0/24', '10.4.0.0/24'].map((dst) => ({ family: 4 as const, dst, via: '10.1.0.10', mtu: 1299 }));
  assert.deepEqual(
    diffIpState({ routes, rules: [] }, { routes: want, rules: [] }, 9027).map((c) => c.line),
    [
      'route del 10.4.0.0/24 table 9027',
      'route replace 10.3.0.0/24 via 10.1.0.10 table 9027 mtu 1299 advmss 1259',
      'route replace 10.4.0.0/24 via 10.1.0.10 table 9027 mtu 1299 advmss 1259',
    ],
  );
  assert.equal(
    diffIpState({ routes: [], rules: [] }, { routes: [{ family: 6, dst: 'fd00:2::/64', via: 'fd00:1::10', mtu: 1299 }], rules: [] }, 9027)[0].line,
    'route replace fd00:2::/64 via fd00:1::10 table 9027 mtu 1299 advmss 1239',
  );
});

test('iproute: the MTU of the link that holds an address', () => {
  const json = JSON.stringify([
    { ifname: 'lo', mtu: 65536, addr_info: [{ local: '127.0.0.1' }] },
    { ifname: 'eth0', mtu: 1450, addr_info: [{ local: '10.10.0.11' }, { local: 'fd00::11' }] },
  ]);
  assert.equal(mtuOfAddress(json, '10.10.0.11'), 1450);
  assert.equal(mtuOfAddress(json, '10.10.0.99'), undefined);
  assert.equal(mtuOfAddress('', '10.10.0.11'), undefined);
});

test('iproute: a rule limited to an input device (a hand-over hold) is read, kept, added and removed as its own', () => {
  const json = JSON.stringify([
    { priority: 219, src: 'all', iif: 'eth0', table: '9027' },
    { priority: 220, src: 'all', table: '220' },
    { priority: 9027, src: 'all', table: '9027' },
  ]);
  const rules = parseRules(json, 4, 9027);
  assert.deepEqual(rules, [
    { family: 4, priority: 219, table: 9027, plain: true, iif: 'eth0' },
    { family: 4, priority: 9027, table: 9027, plain: true },
  ]);
  const base = { family: 4 as const, priority: 9027, table: 9027 };
  const hold = { family: 4 as const, priority: 219, table: 9027, iif: 'eth0' };
  assert.deepEqual(diffIpState({ routes: [], rules }, { routes: [], rules: [base, hold] }, 9027), []);
  assert.deepEqual(diffIpState({ routes: [], rules }, { routes: [], rules: [base] }, 9027).map((c) => c.line), ['rule del pref 219 iif eth0 lookup 9027']);
  assert.deepEqual(diffIpState({ routes: [], rules: rules.slice(1) }, { routes: [], rules: [base, hold] }, 9027).map((c) => c.line), ['rule add pref 219 iif eth0 lookup 9027']);
  // Another device: the old rule goes, the new one comes.
  assert.deepEqual(diffIpState({ routes: [], rules }, { routes: [], rules: [base, { ...hold, iif: 'ens5' }] }, 9027).map((c) => c.line), ['rule del pref 219 iif eth0 lookup 9027', 'rule add pref 219 iif ens5 lookup 9027']);
});
