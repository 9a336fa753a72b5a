// Pure checks of the agent's helpers (kept with the agent's tests): PSK rules, conn building, SA summaries, CLI
// durations, listen addresses, metrics bookkeeping, the CLI's usage errors.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { weakPskReason, MIN_PSK_BYTES, SecretReader } from '../../src/agent/secrets.ts';
import { connHash, saMatchesTunnel, summariseSas, tunnelConns } from '../../src/agent/conns.ts';
import { AgentMetrics } from '../../src/agent/metrics.ts';
import { parseAddress } from '../../src/adapters/http/server.ts';
import { run as runAgent } from '../../src/cli/commands/agent.ts';
import { jsonLogger } from '../../src/shell/log.ts';
import type { NodePlan, TunnelPlan } from '../../src/nodeplan/index.ts';
import { forwardingSysctls } from '../../src/nodeplan/datapath-health.ts';
import { canonicalPrefix, comparePrefixes } from '../../src/nodeplan/cidr.ts';
import type { IkeSaInfo } from '../../src/agent/vici/index.ts';

test('PSK rules: length, repeated patterns, placeholders; strong random keys pass', () => {
  assert.match(weakPskReason(Buffer.from('short'))!, /shorter than 32/);
  assert.match(weakPskReason(Buffer.alloc(40, 'a'))!, /short pattern repeated/);
  assert.match(weakPskReason(Buffer.from('abcd'.repeat(10)))!, /short pattern repeated/);
  assert.match(weakPskReason(Buffer.from('password-changeme-secret-2024-password'))!, /placeholder/);
  assert.match(weakPskReason(Buffer.from('openyurt-raven-openyurt-raven-openyurt-raven'))!, /placeholder/);
  assert.match(weakPskReason(Buffer.from(' '.repeat(10) + 'x'.repeat(10) + ' '.repeat(20)))!, /whitespace|pattern/);
  for (let i = 0; i < 20; i++) assert.equal(weakPskReason(Buffer.from(randomBytes(32).toString('base64'))), undefined);
  assert.equal(weakPskReason(Buffer.from(randomBytes(MIN_PSK_BYTES).map((x) => (x % 94) + 33))), undefined);
});

const T: TunnelPlan = {
  name: 'corvid-b',
  peerPool: 'b',
  peerNode: 'b-gw',
  role: 'initiator',
  localId: 'a-gw.a.node.corvid',
  remoteId: 'b-gw.b.node.corvid',
  localAddr: '10.1.0.10',
  remoteAddr: '192.0.2.2',
  remotePort: 4500,
  localTs: ['10.101.0.0/24', '10.101.1.0/24'],
  remoteTs: ['10.102.0.0/24', 'fd00:102::/64'],
  ikeProposals: ['aes256-sha256-modp2048'],
  espProposals: ['aes256-sha256'],
  pskSecretRef: { name: 'corvid-psk', key: 'psk' },
  relayed: [],
  peers: [
    { node: 'b-gw', conn: 'corvid-b@b-gw', id: 'b-gw.b.node.corvid', addr: '192.0.2.2', port: 4500 },
    { node: 'b-gw2', conn: 'corvid-b@b-gw2', id: 'b-gw2.b.node.corvid', addr: '192.0.2.3' },
  ],
};

/** The connection of the tunnel's one peer candidate, alone. */
function connOf(t: TunnelPlan): ReturnType<typeof tunnelConns>[number]['conn'] {
  const [only] = tunnelConns({ ...t, peers: [{ node: t.peerNode, conn: `${t.name}@${t.peerNode}`, id: t.remoteId, addr: t.remoteAddr, ...(t.remotePort === undefined ? {} : { port: t.remotePort }) }] });
  return only.conn;
}

test('tunnelConns: one IKEv2 conn per peer candidate, one CHILD_SA with TS lists, only the agent starts it, childless IKE_SAs allowed, NAT-T port from the first packet', () => {
  const all = tunnelConns(T);
  assert.deepEqual(all.map((c) => [c.name, c.conn.remote.id, c.conn.remote_addrs, c.conn.remote_port]), [
    ['corvid-b@b-gw', 'b-gw.b.node.corvid', ['192.0.2.2'], 4500],
    ['corvid-b@b-gw2', 'b-gw2.b.node.corvid', ['192.0.2.3'], undefined],
  ]);
  const c = all[0].conn;
  assert.deepEqual(c, {
    version: 2,
    remote_addrs: ['192.0.2.2'],
    remote_port: 4500,
    local_port: 4500,
    proposals: ['aes256-sha256-modp2048'],
    dpd_delay: '5s',
    local: { auth: 'psk', id: 'a-gw.a.node.corvid' },
    remote: { auth: 'psk', id: 'b-gw.b.node.corvid' },
    unique: 'replace',
    childless: 'allow',
    children: {
      'corvid-b': {
        local_ts: ['10.101.0.0/24', '10.101.1.0/24'],
        remote_ts: ['10.102.0.0/24', 'fd00:102::/64'],
        esp_proposals: ['aes256-sha256'],
        mode: 'tunnel',
        start_action: 'none',
        dpd_action: 'clear',
        close_action: 'none',
      },
    },
  });
  const r = connOf({ ...T, role: 'responder', remoteAddr: '%any', remotePort: undefined });
  assert.deepEqual(r.remote_addrs, ['%any']);
  assert.equal(r.remote_port, undefined);
  assert.equal(r.local_port, undefined);
  // IKE to port 500 floats to 4500 as usual; to any other port it leaves from 4500 with the non-ESP marker.
  assert.equal(connOf({ ...T, remotePort: 500 }).local_port, undefined);
  assert.equal(connOf({ ...T, remotePort: 4501 }).local_port, 4500);
  assert.equal(connOf({ ...T, role: 'responder', remotePort: 4500 }).local_port, 4500);
  assert.equal(r.children['corvid-b'].dpd_action, 'clear');
  assert.equal(r.children['corvid-b'].close_action, 'none');
  assert.equal(r.children['corvid-b'].start_action, 'none');
  assert.equal(connHash(connOf(T)), connHash(connOf({ ...T })));
  assert.notEqual(connHash(connOf(T)), connHash(connOf({ ...T, remoteTs: ['10.102.0.0/24'] })));
});

function sa(state: string, childState: string, localTs = T.localTs, remoteTs = T.remoteTs): IkeSaInfo {
  return {
    name: 'corvid-b@b-gw',
    uniqueId: '1',
    state,
    initiator: true,
    natAny: false,
    children: [
      { name: 'corvid-b', uniqueId: '7', state: childState, encap: false, bytesIn: 10, bytesOut: 20, packetsIn: 1, packetsOut: 2, localTs, remoteTs },
    ],
  };
}

test('SA summaries: up, pending, TS match', () => {
  assert.equal(summariseSas([sa('ESTABLISHED', 'INSTALLED')], 'corvid-b@b-gw', 'corvid-b').up, true);
  assert.equal(summariseSas([sa('ESTABLISHED', 'INSTALLED')], 'corvid-b@b-gw2', 'corvid-b').up, false);
  assert.equal(summariseSas([sa('CONNECTING', 'CREATED')], 'corvid-b@b-gw', 'corvid-b').pending, true);
  assert.equal(summariseSas([sa('ESTABLISHED', 'INSTALLING')], 'corvid-b@b-gw', 'corvid-b').up, false);
  assert.equal(saMatchesTunnel(summariseSas([sa('ESTABLISHED', 'INSTALLED')], 'corvid-b@b-gw', 'corvid-b'), T), true);
  assert.equal(saMatchesTunnel(summariseSas([sa('ESTABLISHED', 'INSTALLED', ['10.101.1.0/24', '10.101.0.0/24'])], 'corvid-b@b-gw', 'corvid-b'), T), true);
  assert.equal(saMatchesTunnel(summariseSas([sa('ESTABLISHED', 'INSTALLED', ['10.101.0.0/24'])], 'corvid-b@b-gw', 'corvid-b'), T), false);
});

test('metrics: byte counters stay monotonic across SA replacements; gone peers disappear', async () => {
  const m = new AgentMetrics();
  const res = (children: Array<{ uniqueId: string; bytesIn: number; bytesOut: number }>, peers = ['b']) => ({
    ok: true,
    errors: [],
    warnings: [],
    ipChanges: [],
    packetChanges: [],
    viciActions: [],
    routeCount: 0,
    viciChecked: true,
    wireguardChecked: false,
    tunnels: peers.map((peer) => ({
      peer,
      conn: `corvid-${peer}`,
      up: true,
      pending: false,
      bytesIn: 0,
      bytesOut: 0,
      children: children.map((c) => ({ ...c, localTs: [], remoteTs: [], up: true })),
    })),
  });
  m.record(res([{ uniqueId: '1', bytesIn: 100, bytesOut: 50 }]), 9027, new Date(1000_000));
  m.record(res([{ uniqueId: '1', bytesIn: 150, bytesOut: 50 }]), 9027, new Date(1001_000));
  m.record(res([{ uniqueId: '2', bytesIn: 30, bytesOut: 5 }]), 9027, new Date(1002_000)); // rekeyed: new SA from 0
  let text = await m.text();
  assert.match(text, /corvid_tunnel_receive_bytes_total\{peer="b"\} 180/);
  assert.match(text, /corvid_tunnel_transmit_bytes_total\{peer="b"\} 55/);
  assert.match(text, /corvid_tunnel_up\{peer="b"\} 1/);
  assert.match(text, /corvid_agent_last_apply_timestamp_seconds 1002/);
  assert.match(text, /corvid_routes\{table="9027"\} 0/);
  m.record(res([], []), 9027, new Date(1003_000));
  text = await m.text();
  assert.doesNotMatch(text, /peer="b"/);
});

test('listen addresses', () => {
  assert.deepEqual(parseAddress('127.0.0.1:9471'), { host: '127.0.0.1', port: 9471 });
  // Every interface, IPv4 and IPv6, as for the sync.
  assert.deepEqual(parseAddress(':9471'), { host: undefined, port: 9471 });
  assert.deepEqual(parseAddress('[::1]:0'), { host: '::1', port: 0 });
  assert.throws(() => parseAddress('9471'), /host\]:port/);
});

test('corvid agent: usage errors exit 2 with one clear line', async () => {
  const run = async (argv: string[], env: NodeJS.ProcessEnv = {}) => {
    let err = '';
    let out = '';
    const code = await runAgent(argv, { stdout: { write: (s: string) => (out += s) }, stderr: { write: (s: string) => (err += s) }, env, cwd: '/' });
    return { code, err, out };
  };
  assert.match((await run([])).err, /--node-name is required/);
  assert.equal((await run([])).code, 2);
  assert.match((await run(['--node-name', 'n', '--route-table', '220'])).err, /charon/);
  assert.match((await run(['--node-name', 'n', '--route-table', 'x'])).err, /non-negative integer/);
  assert.match((await run(['--node-name', 'n', '--lease-renew', '3s', '--lease-duration', '3s'])).err, /shorter than/);
  assert.match((await run(['--node-name', 'n', '--repair-interval', '0s'])).err, /positive duration/);
  // Durations are written as in the topology: units h, m, s, ms, largest first; no fractions, no bare numbers.
  assert.match((await run(['--node-name', 'n', '--lease-renew', '1m30s', '--lease-duration', '1m'])).err, /shorter than/);
  for (const bad of ['1.5s', '3', 'x', '1s1m']) assert.match((await run(['--node-name', 'n', '--lease-renew', bad])).err, /positive duration like/, bad);
  assert.match((await run(['--node-name', 'n', '--metrics-addr', 'nope'])).err, /\[host\]:port/);
  assert.match((await run(['--node-name', 'n', '--kubeconfig', '/nonexistent'])).err, /cannot load kubeconfig/);
  const help = await run(['--help']);
  assert.equal(help.code, 0);
  assert.match(help.out, /Examples:/);
});

test('JSON logs: one object per line, errors as messages', () => {
  let out = '';
  const log = jsonLogger({ write: (s: string) => void (out += s), now: () => new Date(0), base: { node: 'n' } });
  log.debug('hidden');
  log.with({ component: 'c' }).error('boom', { error: new Error('bad'), skip: undefined });
  assert.deepEqual(out.trim().split('\n').map((l) => JSON.parse(l)), [
    { ts: '1970-01-01T00:00:00.000Z', level: 'error', msg: 'boom', node: 'n', component: 'c', error: 'bad' },
  ]);
});

test('cidr helpers: canonical forms match iproute2 output', () => {
  assert.equal(canonicalPrefix('2001:DB8:0:0:1:0:0:1/128'), '2001:db8::1:0:0:1/128');
  assert.equal(canonicalPrefix('2001:db8:0:1:0:0:0:0/64'), '2001:db8:0:1::/64');
  assert.equal(canonicalPrefix('::/0'), '::/0');
  assert.equal(canonicalPrefix('10.1.2.3'), '10.1.2.3/32');
  assert.equal(canonicalPrefix('10.1.2.3/33'), undefined);
  assert.equal(canonicalPrefix('::ffff:10.1.2.3/128'), '::ffff:10.1.2.3/128'); // as inet_ntop prints it
  assert.ok(comparePrefixes('10.2.0.0/16', '10.10.0.0/16') < 0);
  assert.ok(comparePrefixes('fd00::/8', '10.0.0.0/8') > 0);
});

test('secret references cannot escape the secret directory', async () => {
  const r = new SecretReader('/etc/corvid/secrets');
  for (const ref of [{ name: '..', key: 'psk' }, { name: 'a/b', key: 'psk' }, { name: 'ok', key: '..' }, { name: 'ok', key: 'x/../../y' }, { name: 'Upper', key: 'k' }]) {
    const res = await r.read(ref);
    assert.equal(res.ok, false);
    assert.match((res as { reason: string }).reason, /not a valid Secret name and key/);
  }
  const dotted = await r.read({ name: 'corvid-psk', key: '.hidden_key-1' });
  assert.match((dotted as { reason: string }).reason, /cannot read PSK file \/etc\/corvid\/secrets\/corvid-psk\/\.hidden_key-1/);
});

test('forwarding check: IPv4 always, IPv6 only when the plan carries IPv6 prefixes', () => {
  const base: NodePlan = {
    nodeName: 'a-gw',
    role: 'gateway',
    tunnels: [],
    routes: [],
    rules: [],
    reach: [],
    findings: [],
    packet: { local: [], remote: [], mss: [] },
    poolNeighbours: [],
    routeTable: 9027,
    rulePriority: 9027,
  };
  const families = (p: NodePlan) => forwardingSysctls(p).map((s) => [s.family, s.path]);
  const v4 = [4, '/proc/sys/net/ipv4/ip_forward'];
  const v6 = [6, '/proc/sys/net/ipv6/conf/all/forwarding'];
  assert.deepEqual(families({ ...base, tunnels: [{ ...T, remoteTs: ['10.102.0.0/24'] }] }), [v4]);
  assert.deepEqual(families({ ...base, tunnels: [T] }), [v4, v6]);
  assert.deepEqual(families({ ...base, tunnels: [{ ...T, localTs: ['fd00:101::/64'], remoteTs: ['10.102.0.0/24'] }] }), [v4, v6]);
  assert.deepEqual(families({ ...base, routes: [{ family: 6, dst: 'fd00:102::/64', via: 'fd00:2::10', pool: 'b' }] }), [v4, v6]);
});
