// The agent's packet policy on nodes that run a real CNI's set-up (flannel, vxlan backend, iptables-mode masquerade,
// RHEL's strict rp_filter), with pods in namespaces of their own:
//
//   pod ── a-n1 ══ flannel.1 / eth0 ══ a-gw ──── wan0 192.0.2.0/24 ──── b-gw ══ flannel.1 / eth0 ══ b-n1 ── pod
//        10.1.0.11                  10.1.0.10                                10.2.0.10                10.2.0.11
//   podCIDRs: a-gw 10.244.1.0/24, a-n1 10.244.2.0/24, b-gw 10.244.3.0/24, b-n1 10.244.4.0/24 (flannel Network 10.244.0.0/16)
//
// The link between the gateways is backend `none` (clear routes, allowInsecure): what is under test is how the
// agent's routes meet the CNI's rules on the nodes, not the tunnel (the e2e suite runs IPsec). Without the agent's
// packet policy, pod traffic across pools dies on the CNI's own rules: strict rp_filter drops it where it arrives
// off its reverse path (the gateway's LAN, the member's flannel.1), and flannel's masquerade rewrites what the
// gateway forwards (Raven issue 184). With it: 20 MiB of TCP arrive intact with the pod's own source address, SYNs are
// clamped to the pools' MTU, a DF probe learns the path MTU, hand-made drift is repaired, and a restarted agent's
// teardown leaves nothing of ours behind.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NetnsLab } from '../support/netns.ts';
import { cniSkipReason, installFlannel, readRpFilter, type FlannelCluster, type Pod } from '../support/cni.ts';
import { dfPayload, dfProbe, tcpTransfer } from '../support/traffic.ts';
import { encodeGatewayAnnotations } from '../../src/gateway/annotations.ts';
import { POOL_LABEL } from '../../src/gateway/keys.ts';
import { GATEWAY_API_VERSION, GATEWAY_KIND, type Gateway } from '../../src/gateway/types.ts';
import type { EncryptionPolicy } from '../../src/topology/types.ts';
import { nodePlan } from '../../src/nodeplan/index.ts';
import { DatapathReconciler } from '../../src/agent/reconciler.ts';
import { Iproute } from '../../src/adapters/iproute/iproute.ts';
import { Nft } from '../../src/adapters/nft/nft.ts';
import { RpFilter } from '../../src/adapters/sysctl/rpfilter.ts';
import { SecretReader } from '../../src/agent/secrets.ts';
import { silentLogger } from '../../src/shell/log.ts';
import { onPath } from '../support/host.ts';

const skip = cniSkipReason() ?? (onPath('tcpdump') ? undefined : 'needs tcpdump (apt-get install tcpdump)');
const TABLE = 9027;
/** The pools' uplink MTU as the topology declares it; the LAN and WAN links themselves are 1500. */
const POOL_MTU = 1400;

const CLEAR: EncryptionPolicy = { backend: 'none', ikeProposals: [], espProposals: [], allowInsecure: true };

interface NodeDef {
  name: string;
  pool: 'a' | 'b';
  lan: string;
  podCIDR: string;
  wan?: string;
}
const NODES: NodeDef[] = [
  { name: 'a-gw', pool: 'a', lan: '10.1.0.10', podCIDR: '10.244.1.0/24', wan: '192.0.2.1' },
  { name: 'a-n1', pool: 'a', lan: '10.1.0.11', podCIDR: '10.244.2.0/24' },
  { name: 'b-gw', pool: 'b', lan: '10.2.0.10', podCIDR: '10.244.3.0/24', wan: '192.0.2.2' },
  { name: 'b-n1', pool: 'b', lan: '10.2.0.11', podCIDR: '10.244.4.0/24' },
];

function gateway(pool: 'a' | 'b'): Gateway {
  const nodes = NODES.filter((n) => n.pool === pool);
  const gw = nodes.find((n) => n.wan !== undefined)!;
  const endpoint = { nodeName: gw.name, type: 'tunnel' as const, port: 4500, underNAT: false, publicIP: gw.wan };
  return {
    apiVersion: GATEWAY_API_VERSION,
    kind: GATEWAY_KIND,
    metadata: {
      name: pool,
      labels: { [POOL_LABEL]: pool },
      annotations: encodeGatewayAnnotations({ peers: ['*'], encryption: CLEAR, encryptionDefaults: CLEAR, mtu: POOL_MTU }),
    },
    spec: { nodeSelector: { matchLabels: { [POOL_LABEL]: pool } }, endpoints: [endpoint], tunnelConfig: { Replicas: 1 } },
    status: { nodes: nodes.map((n) => ({ nodeName: n.name, privateIP: n.lan, subnets: [n.podCIDR] })), activeEndpoints: [endpoint] },
  };
}
const GATEWAYS = [gateway('a'), gateway('b')];

const lab = new NetnsLab();
const ns = new Map<string, string>();
let flannel: FlannelCluster;
let stateDir = '';
const reconcilers = new Map<string, DatapathReconciler>();

function pod(node: string): Pod {
  return flannel.podsOn(node)[0]!;
}

function reconciler(node: string, withPolicy: boolean): DatapathReconciler {
  const netns = ns.get(node)!;
  return new DatapathReconciler({
    iproute: new Iproute({ table: TABLE, netns }),
    ...(withPolicy ? { nft: new Nft({ netns }), rpFilter: new RpFilter({ statePath: join(stateDir, `${node}.json`), netns }) } : {}),
    secrets: new SecretReader(stateDir),
    log: silentLogger,
  });
}

async function reconcileAll(withPolicy: boolean): Promise<void> {
  for (const n of NODES) {
    const r = reconciler(n.name, withPolicy);
    reconcilers.set(n.name, r);
    const res = await r.reconcile(nodePlan({ gateways: GATEWAYS, nodeName: n.name }));
    assert.deepEqual(res.errors, [], `${n.name}: ${res.errors.join('; ')}`);
  }
}

before(async () => {
  if (skip) return;
  stateDir = await mkdtemp(join(tmpdir(), 'corvid-agent-cni-'));
  for (const n of NODES) ns.set(n.name, await lab.addNs(n.name.replace('-', '')));
  for (const pool of ['a', 'b'] as const) {
    const [gw, member] = NODES.filter((n) => n.pool === pool);
    await lab.veth(ns.get(gw.name)!, 'eth0', ns.get(member.name)!, 'eth0');
    for (const n of [gw, member]) await lab.addr(ns.get(n.name)!, 'eth0', `${n.lan}/24`);
  }
  await lab.veth(ns.get('a-gw')!, 'wan0', ns.get('b-gw')!, 'wan0');
  await lab.addr(ns.get('a-gw')!, 'wan0', '192.0.2.1/24');
  await lab.addr(ns.get('b-gw')!, 'wan0', '192.0.2.2/24');
  // One flannel cluster over both pools: every node gets every other node's lease, other pools' included.
  flannel = await installFlannel(
    lab,
    NODES.map((n) => ({ name: n.name, ip: n.lan, podCIDR: n.podCIDR, ns: ns.get(n.name)! })),
    { mode: 'iptables', rpFilter: 'rhel', pods: 1 },
  );
});

after(async () => {
  await lab.cleanup();
  if (stateDir) await rm(stateDir, { recursive: true, force: true });
});

test('without the packet policy, cross-pool pod traffic dies on the CNI\'s own rules', { skip, timeout: 60_000 }, async () => {
  await reconcileAll(false);
  // Within a pool, flannel works as it should (the lab is not simply broken).
  const inPool = await tcpTransfer(lab, pod('a-n1').ns, pod('a-gw').ns, pod('a-gw').ip, { bytes: 1 << 20, timeoutMs: 10_000 });
  assert.ok(inPool.ok, inPool.error);
  assert.equal(inPool.peer, pod('a-n1').ip);
  // Across pools, member to member: the gateway's strict rp_filter drops what arrives on eth0 (its route back to
  // a-n1's pods is flannel.1).
  const across = await tcpTransfer(lab, pod('a-n1').ns, pod('b-n1').ns, pod('b-n1').ip, { bytes: 1 << 20, timeoutMs: 4_000 });
  assert.equal(across.ok, false, 'strict rp_filter should have dropped it');
  // From a-gw's own pod (its own podCIDR is exempt on a-gw) to b-n1's: b-gw forwards it into pool b over flannel.1
  // and flannel masquerades it there (-s C ! -d 224.0.0.0/4), so it arrives, from the wrong address.
  const fromGw = await tcpTransfer(lab, pod('a-gw').ns, pod('b-n1').ns, pod('b-n1').ip, { bytes: 1 << 20, timeoutMs: 8_000 });
  assert.ok(fromGw.ok, fromGw.error);
  assert.equal(fromGw.peer, '10.244.3.0', 'flannel (iptables mode) masquerades a forwarded cross-pool flow on the gateway');
});

test('with it: 20 MiB of TCP across pools in every direction, pod sources kept, SYNs clamped, PMTU learned', { skip, timeout: 120_000 }, async () => {
  await reconcileAll(true);
  const pairs: Array<[string, string]> = [
    ['a-n1', 'b-n1'],
    ['b-n1', 'a-n1'],
    ['a-gw', 'b-n1'],
    ['a-n1', 'b-gw'],
    ['b-gw', 'a-gw'],
  ];
  for (const [from, to] of pairs) {
    const r = await tcpTransfer(lab, pod(from).ns, pod(to).ns, pod(to).ip, { timeoutMs: 30_000 });
    assert.ok(r.ok, `${from} -> ${to}: ${r.error}`);
    assert.equal(r.peer, pod(from).ip, `${from} -> ${to}: the receiver must see the sending pod's address`);
  }
  // Adjacent subnets are merged by nft (auto-merge).
  const nft = await lab.exec(ns.get('a-gw')!, ['nft', 'list', 'table', 'inet', 'corvid']);
  assert.match(nft.stdout, /set local4 \{[^}]*elements = \{ 10\.244\.1\.0-10\.244\.2\.255 \}/s);
  assert.match(nft.stdout, /set remote4 \{[^}]*elements = \{ 10\.244\.3\.0-10\.244\.4\.255 \}/s);

  // The SYN that reaches b-n1's pod carries the clamped MSS (pool MTU 1400, backend none: 1360), not the pod's 1410.
  const dump = lab.spawn(pod('b-n1').ns, ['tcpdump', '-l', '-n', '-v', '-c', '1', '-i', 'eth0', 'tcp[tcpflags] & tcp-syn != 0 and tcp[tcpflags] & tcp-ack == 0']);
  let seen = '';
  dump.stdout!.setEncoding('utf8').on('data', (c: string) => (seen += c));
  dump.stderr!.resume();
  await new Promise((r) => setTimeout(r, 800));
  const small = await tcpTransfer(lab, pod('a-n1').ns, pod('b-n1').ns, pod('b-n1').ip, { bytes: 1 << 16, timeoutMs: 10_000 });
  assert.ok(small.ok, small.error);
  await new Promise((r) => setTimeout(r, 300));
  dump.kill('SIGINT');
  assert.match(seen, /mss 1360\b/, `SYN seen at the receiver: ${seen}`);

  // A DF probe at the pod's MTU (1450) hears the member's own route MTU (the pools' 1400), then fits.
  const big = await dfProbe(lab, pod('a-n1').ns, pod('b-n1').ip, dfPayload(pod('a-n1').mtu), { count: 2 });
  assert.equal(big.ok, false, big.output);
  assert.equal(big.mtu, POOL_MTU, big.output);
  const fits = await dfProbe(lab, pod('a-n1').ns, pod('b-n1').ip, dfPayload(POOL_MTU), { count: 2 });
  assert.ok(fits.ok, fits.output);
});

test('drift: a table or an rp_filter value changed by hand is put back at the next reconcile; foreign rules are untouched', { skip, timeout: 60_000 }, async () => {
  const gw = ns.get('a-gw')!;
  const plan = nodePlan({ gateways: GATEWAYS, nodeName: 'a-gw' });
  const before = (await lab.exec(gw, ['nft', 'list', 'table', 'inet', 'corvid'])).stdout;
  await lab.exec(gw, ['nft', 'flush', 'chain', 'inet', 'corvid', 'keep-pod-source']);
  await lab.exec(gw, ['sysctl', '-qw', 'net/ipv4/conf/eth0/rp_filter=1']);
  const res = await reconcilers.get('a-gw')!.reconcile(plan);
  assert.deepEqual(res.errors, []);
  assert.deepEqual(res.packetChanges, ['nft table inet corvid written', 'rp_filter eth0=2']);
  assert.equal((await lab.exec(gw, ['nft', 'list', 'table', 'inet', 'corvid'])).stdout, before);
  // Nothing changed: nothing written.
  assert.deepEqual((await reconcilers.get('a-gw')!.reconcile(plan)).packetChanges, []);
  const r = await tcpTransfer(lab, pod('a-n1').ns, pod('b-n1').ns, pod('b-n1').ip, { bytes: 1 << 20, timeoutMs: 10_000 });
  assert.ok(r.ok, r.error);
  assert.equal(r.peer, pod('a-n1').ip);
  assert.match((await lab.exec(gw, ['nft', 'list', 'chain', 'ip', 'nat', 'FLANNEL-POSTRTG'])).stdout, /masquerade/);
});

test('rp_filter: only strict devices that carry the pool\'s traffic were loosened; a restarted agent\'s teardown puts every value back', { skip, timeout: 60_000 }, async () => {
  const gwBefore = await readRpFilter(lab, ns.get('a-gw')!);
  assert.equal(gwBefore['eth0'], 2, 'the gateway receives its members\' cross-pool traffic on eth0');
  assert.equal(gwBefore['flannel.1'], 2);
  assert.equal(gwBefore['wan0'], 1, 'the WAN carries no pool traffic: left strict');
  assert.equal(gwBefore['all'], 1);
  const memberBefore = await readRpFilter(lab, ns.get('b-n1')!);
  assert.equal(memberBefore['flannel.1'], 2, 'replies from other pools arrive on flannel.1');

  // A restarted agent (a new process: only the state file knows the values found) tears down.
  for (const n of NODES) {
    const res = await reconciler(n.name, true).teardown();
    assert.deepEqual(res.errors, [], `${n.name}: ${res.errors.join('; ')}`);
    const rp = await readRpFilter(lab, ns.get(n.name)!);
    for (const [dev, v] of Object.entries(rp)) if (dev !== 'default' && dev !== 'all' && dev !== 'lo') assert.equal(v, 1, `${n.name} ${dev}`);
    const table = await lab.exec(ns.get(n.name)!, ['nft', 'list', 'table', 'inet', 'corvid'], { allowFail: true });
    assert.notEqual(table.code, 0, `${n.name}: table inet corvid left behind`);
    const routes = await lab.exec(ns.get(n.name)!, ['ip', 'route', 'show', 'table', String(TABLE)], { allowFail: true });
    assert.equal(routes.stdout.trim(), '', `${n.name}: routes left behind`);
  }
  // flannel's own rules are untouched.
  const flannelRules = await lab.exec(ns.get('a-gw')!, ['nft', 'list', 'chain', 'ip', 'nat', 'FLANNEL-POSTRTG']);
  assert.match(flannelRules.stdout, /masquerade/);
});
