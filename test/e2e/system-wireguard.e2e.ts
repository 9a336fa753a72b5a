// The whole system with `backend: wireguard` (issue 16), on the flannel fabric of scenarios.ts: the same nine nodes in
// three pools, two behind NAT routers relaying through cloud, pods behind veths, a real kube-apiserver, `corvid sync`
// following a bare Git repository and `corvid agent` on every node, here building corvid.wg with wireguard-go (this
// kernel has no WireGuard module; the agent takes the kernel's where there is one). The node keys are real: each agent
// makes its own once, publishes it on its Lease, the sync carries it into the Gateway, the peers configure it.
//
// W1 push, W2 broken commit, W3 failover, W4 crashes (agent, then wireguard-go), W5 a node's key is lost and rolled,
// W6 mixed backends: edge-a's link to cloud over IPsec, edge-b's over WireGuard, cloud relaying between the two.
// Run as root: npx node --test --test-concurrency=1 test/e2e/system-wireguard.e2e.ts
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { useControlPlane } from '../support/controlplane.ts';
import { NODE_DRAIN_ANNOTATION, WIREGUARD_KEY_LEASE_ANNOTATION, WIREGUARD_KEYS_ANNOTATION } from '../../src/gateway/keys.ts';
import { Fabric, Pinger, type PoolName } from './fabric.ts';
import { CorvidSystem, systemSkipReason, topologyYaml, waitFor } from './system.ts';
import { actives, everyone, scenarioChecks, stopAndCountLoss, versions, waitForMatrix } from './checks.ts';
import { failoverPaths, formatFailover, runFailover } from './failover.ts';
import { DEFAULT_TRANSFER_BYTES } from '../support/traffic.ts';
import { HEAL_BOUND_MS } from './scenarios.ts';
import type { ActualPeer } from '../../src/adapters/wireguard/wireguard.ts';

/**
 * W4: a killed agent on the active cloud gateway: every path answers again within this. The edges' first handshake
 * with the successor may go out before its interface listens; WireGuard would retry only after 5 s, the agent re-adds
 * the peer after 0.5 s.
 */
const AGENT_KILL_RECOVERY_MS = 4_000;

/**
 * W4: a killed wireguard-go on the active edge-b gateway: every path answers again within this. The agent's datapath
 * probe (every 0.5 s) sees the link gone and rebuilds it; the gateway behind NAT initiates its handshake at once.
 * Found at the next tunnel read instead (every lease renewal, 10 s), this took 4.4-9.1 s.
 */
const WIREGUARD_GO_KILL_RECOVERY_MS = 2_500;

/** The peers that carry traffic: a warm session with a standby has no allowed IPs. */
const carrying = (peers: ActualPeer[]): ActualPeer[] => peers.filter((p) => p.allowedIPs.length > 0);

/**
 * W5: pings (100 ms apart) a drain may lose per path. The successor's sessions are warm (no handshake to wait for,
 * 0-2 lost per path; 3 per path when it first had to make its interface and shake hands), but WireGuard takes a
 * packet only from the peer whose allowed IPs hold its source: between the moment the peer gives the pool's subnets
 * to the successor's session and the moment the pool sends through it, one direction drops what the other gateway
 * sends.
 */
const WARM_HANDOVER_LOSS_BOUND = 5;

const cp = useControlPlane();
const skip = systemSkipReason(cp.skip);
const WG_BUDGET_MS = 5 * 60_000;

describe('e2e (flannel, backend wireguard): git push to packets', { skip, timeout: WG_BUDGET_MS }, () => {
  let f: Fabric;
  let sys: CorvidSystem;
  let good = '';
  const topo = (): string => topologyYaml(f, { backend: 'wireguard' });

  before(async () => {
    f = await Fabric.build({ cni: 'flannel' });
    sys = await CorvidSystem.start(cp.get(), f);
  }, { timeout: 120_000 });

  after(async () => {
    await sys?.stop();
    await f?.cleanup();
  });

  const { fail, whole, traffic } = scenarioChecks(() => ({ f, sys }));
  const keysOf = async (pool: PoolName): Promise<Record<string, string>> =>
    JSON.parse((await sys.gateways()).get(pool)?.metadata.annotations?.[WIREGUARD_KEYS_ANNOTATION] ?? '{}') as Record<string, string>;
  const leaseKey = async (node: string): Promise<string | undefined> => (await sys.lease(node))?.metadata?.annotations?.[WIREGUARD_KEY_LEASE_ANNOTATION];

  test('W1: a push with backend wireguard: keys from the Leases into the Gateways, every pod reaches every pod, edges relayed via cloud', { timeout: 120_000 }, async () => {
    const t0 = Date.now();
    good = await sys.push(topo(), 'e2e: three pools over WireGuard');
    await waitFor('every candidate\'s key in its Gateway', async () => {
      for (const p of f.pools.keys()) {
        const keys = await keysOf(p);
        for (const c of f.candidates(p)) if (keys[c.name] === undefined || keys[c.name] !== (await leaseKey(c.name))) return false;
      }
      return true;
    }, 30_000).catch((e) => fail((e as Error).message));
    const bad = await waitForMatrix(f, everyone, 60_000);
    if (bad.length > 0) fail(`not every pod reaches every pod:\n${bad.join('\n')}`);
    console.log(`# W1: push -> all pod pairs reachable over WireGuard in ${Date.now() - t0} ms`);

    // WireGuard only: no IKE SA anywhere.
    for (const c of f.candidates()) assert.deepEqual(await sys.sas(c.name), [], `${c.name} has no IKE SA`);
    const gws = await sys.gateways();
    const edgeGw = actives(gws)['edge-a']!;
    const cloudGw = actives(gws).cloud!;
    // edge-a's gateway: one peer carrying traffic, cloud, which carries edge-b's pod subnets too (the relay).
    const allEdgePeers = (await sys.wireguardPeers(edgeGw)) ?? fail(`${edgeGw} has no corvid.wg`);
    const edgePeers = carrying(allEdgePeers);
    assert.equal(edgePeers.length, 1, `${edgeGw} peers only with cloud`);
    assert.equal(edgePeers[0].publicKey, (await keysOf('cloud'))[cloudGw]);
    for (const n of f.pool('edge-b').nodes) assert.ok(edgePeers[0].allowedIPs.includes(n.podCIDR), `${n.podCIDR} in ${edgePeers[0].allowedIPs}`);
    // Warm sessions: every active gateway has shaken hands with each standby of its peer pools, and each standby with
    // the active gateways of its pool's peers (no allowed IPs: no traffic), so a hand-over waits for no handshake.
    const cloudStandby = f.candidates('cloud').find((c) => c.name !== cloudGw)!.name;
    await waitFor('the warm sessions shaken hands', async () => {
      const standbyKey = (await keysOf('cloud'))[cloudStandby];
      const warm = ((await sys.wireguardPeers(edgeGw)) ?? []).find((p) => p.publicKey === standbyKey);
      if (warm === undefined || warm.allowedIPs.length > 0 || warm.latestHandshake === 0) return false;
      for (const pool of f.pools.keys()) {
        for (const c of f.candidates(pool)) {
          if (c.name === actives(await sys.gateways())[pool]) continue;
          const peers = (await sys.wireguardPeers(c.name)) ?? [];
          if (peers.length === 0 || peers.some((p) => p.latestHandshake === 0)) return false;
        }
      }
      return true;
    }, 30_000).catch((e) => fail((e as Error).message));
    // cloud's gateway learnt each edge's endpoint from its packets: the NAT router's WAN address.
    const cloudPeers = carrying((await sys.wireguardPeers(cloudGw)) ?? fail(`${cloudGw} has no corvid.wg`));
    const endpoints = cloudPeers.map((p) => p.endpoint?.replace(/:\d+$/, '')).sort();
    assert.deepEqual(endpoints, [f.pool('edge-a').router!.wanIP, f.pool('edge-b').router!.wanIP]);
    // The relay forwards: its counters towards both edges move by what edge-a's pod sends edge-b's.
    const bytes = async () => Object.fromEntries(carrying((await sys.wireguardPeers(cloudGw)) ?? []).map((p) => [p.endpoint?.replace(/:\d+$/, ''), p.rxBytes + p.txBytes]));
    const b0 = await bytes();
    assert.ok(await f.podPing('edge-a-node-1', 'edge-b-node-1', { count: 20 }), 'edge-a pod -> edge-b pod');
    const b1 = await bytes();
    for (const ip of endpoints) assert.ok((b1[ip!] ?? 0) - (b0[ip!] ?? 0) >= 20 * 84, `cloud's peer ${ip}: ${(b1[ip!] ?? 0) - (b0[ip!] ?? 0)} bytes moved`);

    const t1 = Date.now();
    await traffic('across pools', DEFAULT_TRANSFER_BYTES);
    console.log(`# W1: ${DEFAULT_TRANSFER_BYTES / 2 ** 20} MiB TCP across all ordered pool pairs and DF probes in ${Date.now() - t1} ms`);
  });

  test('W2: a broken commit changes nothing: pings flow, Gateways unchanged, the last good revision serves', { timeout: 90_000 }, async () => {
    await whole();
    const before = await sys.gateways();
    const pingers = [new Pinger(f, 'edge-a-node-1', f.node('edge-b-node-1').podIP), new Pinger(f, 'cloud-node-1', f.node('edge-a-node-1').podIP)];
    try {
      const t0 = Date.now();
      for (const p of pingers) assert.ok(await p.waitForReply(t0, 10_000), `steady pings ${p.from} -> ${p.to}`);
      const rev = await sys.push(topo().replace('backend: wireguard', 'backend: wirgeuard'), 'e2e: a typo in the backend');
      const t = await waitFor('the broken revision refused', async () => {
        const x = await sys.topology();
        return x?.status?.lastAttemptedRevision === rev && x.status.conditions?.find((c) => c.type === 'Ready')?.status === 'False' ? x : undefined;
      }, 30_000).catch((e) => fail((e as Error).message));
      assert.equal(t.status?.lastAppliedRevision, good);
      await new Promise((r) => setTimeout(r, 4000));
      const { worst, lines } = await stopAndCountLoss(f, pingers, t0);
      console.log(`# W2: broken commit refused; ${lines.join('; ')}`);
      assert.equal(worst, 0, lines.join('; '));
      assert.deepEqual(versions(await sys.gateways()), versions(before), 'no Gateway was written');
    } finally {
      for (const p of pingers) await p.stop();
    }
    good = await sys.push(topo(), 'e2e: fix the typo');
    await waitFor('Ready again', async () => (await sys.topology())?.status?.lastAppliedRevision === good, 30_000);
  });

  test('W3: failover: the active edge-a gateway dies (agent, charon and wireguard-go); the other candidate takes over', { timeout: 120_000 }, async () => {
    await whole();
    const r = await runFailover(sys, 'edge-a', { timeoutMs: 60_000, revive: true });
    console.log(`# W3: ${formatFailover(r).split('\n').join('\n# ')}`);
    if (r.recoveryMs === undefined) fail(`a path never came back:\n${formatFailover(r)}`);
    assert.notEqual(r.successor, r.killed);
    await whole();
    await traffic('after the failover');
  });

  test('W4: a killed agent hands the role to its standby, every path back within 4 s; a killed wireguard-go is rebuilt by the agent, every path back within 2.5 s', { timeout: 150_000 }, async () => {
    await whole();
    for (const [what, pool] of [['agent', 'cloud'], ['wireguard-go', 'edge-b']] as const) {
      const node = (await sys.activeOf(pool))!;
      const keysBefore = await keysOf(pool);
      const pingers = failoverPaths(f, pool).map(([a, b]) => new Pinger(f, a, f.node(b).podIP));
      try {
        const t0 = Date.now();
        for (const p of pingers) assert.ok(await p.waitForReply(t0, 10_000), `steady pings ${p.from} -> ${p.to}`);
        const killAt = Date.now();
        if (what === 'agent') sys.agents.get(node)!.kill();
        else assert.equal(sys.killWireguardGo(node), 1, `one wireguard-go on ${node}`);
        const agent = sys.agents.get(node)!;
        await waitFor(`${node} healed after its ${what} was killed`, async () => {
          if (what === 'agent' && (agent.restarts < 1 || !(await agent.ready()))) return false;
          // The agent rebuilds the interface (a loss shows only a ping interval after the kill).
          if (what === 'wireguard-go' && (Date.now() - killAt < 1000 || ((await sys.wireguardPeers(node))?.length ?? 0) === 0)) return false;
          return pingers.every((p) => {
            const o = p.outage(killAt);
            return o.firstLossAt === undefined || o.recoveredAt !== undefined;
          });
        }, HEAL_BOUND_MS, 100).catch((e) => fail((e as Error).message, [node]));
        await new Promise((r) => setTimeout(r, 2000));
        const detail = pingers.map((p) => {
          const o = p.outage(killAt);
          const back = o.recoveredAt === undefined ? 'not back' : `back after ${o.recoveredAt - killAt} ms`;
          return `${p.from} -> ${f.nodeByPod(p.to)}: ${o.firstLossAt === undefined ? 'no loss' : `${back} (${o.lost} lost)`}`;
        });
        console.log(`# W4 (${what} killed on ${node}): ${detail.join('; ')}`);
        const bound = what === 'agent' ? AGENT_KILL_RECOVERY_MS : WIREGUARD_GO_KILL_RECOVERY_MS;
        assert.ok(
          pingers.every((p) => {
            const o = p.outage(killAt);
            return o.firstLossAt === undefined || (o.recoveredAt !== undefined && o.recoveredAt - killAt <= bound);
          }),
          `every path back within ${bound} ms of the kill: ${detail.join('; ')}`,
        );
        if (what === 'agent') {
          // The agent answers its standby's liveness probes: a killed one is a lost gateway, as a dead VRRP daemon is,
          // and the standby takes the role. wireguard-go (no child of the agent's) forwards meanwhile; the peers
          // handshake with the successor, re-adding it when the first initiation went out before it listened.
          const successor = f.candidates(pool).find((n) => n.name !== node)!.name;
          assert.equal(await sys.activeOf(pool), successor, `the standby took the role from ${node}, whose agent was killed`);
        }
        assert.deepEqual(await keysOf(pool), keysBefore, 'the restarted agent kept its key');
      } finally {
        for (const p of pingers) await p.stop();
      }
    }
    await whole();
    await traffic('after the crashes');
  });

  test('W5: a standby loses its key file: it makes a new one, the Gateway is written once, and traffic flows through it', { timeout: 120_000 }, async () => {
    await whole();
    const pool: PoolName = 'edge-b';
    const active = (await sys.activeOf(pool))!;
    const standby = f.candidates(pool).find((n) => n.name !== active)!.name;
    const oldKey = (await keysOf(pool))[standby];
    // Every version of the pool's Gateway seen from now on: a key change is one write, not one per heartbeat.
    const seen = new Set<string>([(await sys.gateways()).get(pool)!.metadata.resourceVersion!]);
    const look = async (): Promise<Record<string, string>> => {
      const g = (await sys.gateways()).get(pool)!;
      seen.add(g.metadata.resourceVersion!);
      return JSON.parse(g.metadata.annotations?.[WIREGUARD_KEYS_ANNOTATION] ?? '{}') as Record<string, string>;
    };
    // The node is reinstalled: its disk (the key) is gone, its agent starts again.
    rmSync(sys.wireguardKeyFile(standby));
    sys.agents.get(standby)!.kill();
    const newKey = await waitFor('a new key in the Gateway', async () => {
      const k = (await look())[standby];
      return k !== undefined && k !== oldKey ? k : undefined;
    }, 30_000, 100).catch((e) => fail((e as Error).message, [standby]));
    assert.equal(await leaseKey(standby), newKey);
    const until = Date.now() + 5000;
    while (Date.now() < until) {
      await look();
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.equal(seen.size - 1, 1, `the key change wrote the Gateway once (${seen.size - 1} writes seen)`);
    // Hand the pool over to the node with the new key: the peers must use it.
    const pingers = failoverPaths(f, pool).map(([a, b]) => new Pinger(f, a, f.node(b).podIP));
    try {
      const t0 = Date.now();
      for (const p of pingers) assert.ok(await p.waitForReply(t0, 10_000), `steady pings ${p.from} -> ${p.to}`);
      await sys.annotateNode(active, { [NODE_DRAIN_ANNOTATION]: 'true' });
      await waitFor(`${standby} elected`, async () => (await sys.activeOf(pool)) === standby, 30_000).catch((e) => fail((e as Error).message));
      await new Promise((r) => setTimeout(r, 4000));
      const { worst, lines } = await stopAndCountLoss(f, pingers, t0);
      console.log(`# W5: ${standby} rolled its key; drained ${active} -> ${standby}: ${lines.join('; ')}`);
      assert.ok(worst <= WARM_HANDOVER_LOSS_BOUND, lines.join('; '));
    } finally {
      for (const p of pingers) await p.stop();
      await sys.annotateNode(active, { [NODE_DRAIN_ANNOTATION]: null });
    }
    await whole();
  });

  test('W6: mixed backends: edge-a <-> cloud over IPsec (a links[] entry), edge-b <-> cloud over WireGuard; cloud relays between them', { timeout: 120_000 }, async () => {
    await whole();
    const rev = await sys.push(topologyYaml(f, { backend: 'wireguard', linkBackends: [['cloud', 'edge-a', 'ipsec']] }), 'e2e: edge-a to cloud over IPsec');
    await waitFor('applied', async () => (await sys.topology())?.status?.lastAppliedRevision === rev, 30_000).catch((e) => fail((e as Error).message));
    const bad = await waitForMatrix(f, everyone, 60_000);
    if (bad.length > 0) fail(`with mixed backends:\n${bad.join('\n')}`);
    const gws = await sys.gateways();
    const edgeA = actives(gws)['edge-a']!;
    const cloud = actives(gws).cloud!;
    // edge-a: one IKE_SA to cloud carrying edge-b's subnets too, and no WireGuard interface; cloud: both kinds.
    const sas = await sys.sas(edgeA);
    assert.deepEqual(sas.map((x) => x.name), [`corvid-cloud@${cloud}`]);
    for (const n of f.pool('edge-b').nodes) assert.ok(sas[0].children[0].remoteTs.includes(n.podCIDR), `${n.podCIDR} in edge-a's CHILD_SA`);
    for (const c of f.candidates('edge-a')) assert.equal(await sys.wireguardPeers(c.name), undefined, `${c.name} has no corvid.wg`);
    assert.deepEqual((await sys.sas(cloud)).map((x) => x.name), [`corvid-edge-a@${edgeA}`]);
    const peers = carrying((await sys.wireguardPeers(cloud)) ?? fail(`${cloud} has no corvid.wg`));
    assert.equal(peers.length, 1, 'cloud peers over WireGuard with edge-b only');
    // edge-b's gateway takes edge-a's subnets from its one peer, cloud (which decrypts them from IPsec first).
    const edgeB = actives(gws)['edge-b']!;
    const fromCloud = carrying((await sys.wireguardPeers(edgeB)) ?? fail(`${edgeB} has no corvid.wg`))[0];
    for (const n of f.pool('edge-a').nodes) assert.ok(fromCloud.allowedIPs.includes(n.podCIDR), `${edgeB}'s peer cloud allows ${n.podCIDR} (relayed)`);
    await traffic('with mixed backends');
    good = await sys.push(topo(), 'e2e: all WireGuard again');
    await waitFor('applied', async () => (await sys.topology())?.status?.lastAppliedRevision === good, 30_000);
    await whole();
  });
});
