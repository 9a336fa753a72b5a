// Proves the end-to-end network itself, before any Corvid part runs on it, for each CNI: pods reach each other within a
// pool (ping, bulk TCP with their own source address, DF at the pod MTU), not across pools (no tunnels yet, no
// default routes), edge gateways reach the Internet through their NAT router with the router's address as the
// source, new connections from the Internet into an edge pool are dropped, and edge-b's router black-holes packets
// over its WAN MTU without telling anyone.
//
// Run as root: npx node --test --test-concurrency=1 test/e2e/fabric.e2e.ts
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Fabric, NARROW_POOL, NARROW_WAN_MTU, POOLS, fabricSkipReason, routerRuleset, type CniFlavour } from './fabric.ts';
import { dfPayload, dfProbe, tcpTransfer } from '../support/traffic.ts';

const skip = fabricSkipReason();

for (const cni of ['flannel', 'calico'] as const satisfies readonly CniFlavour[]) describe(`e2e fabric (${cni})`, { skip, timeout: 120_000 }, () => {
  let f: Fabric;

  before(async () => {
    f = await Fabric.build({ cni });
  });

  after(async () => {
    await f?.cleanup();
  });

  test('pods reach every pod of their own pool and no pod of another pool', async () => {
    const checks: Promise<void>[] = [];
    for (const a of f.nodes.values()) {
      for (const b of f.nodes.values()) {
        if (a === b) continue;
        checks.push(
          f.podPing(a.name, b.name, { waitS: 1 }).then((ok) => {
            assert.equal(ok, a.pool === b.pool, `${a.name} -> ${b.name}: ${ok ? 'reached' : 'not reached'}`);
          }),
        );
      }
    }
    await Promise.all(checks);
  });

  test('within a pool, pods move bulk TCP with their own source address and DF packets at the pod MTU', async () => {
    for (const pool of POOLS) {
      const [a, , c] = f.pool(pool).nodes;
      const r = await tcpTransfer(f.lab, a.pod.ns, c.pod.ns, c.podIP, { timeoutMs: 20_000 });
      assert.ok(r.ok, `${a.name} -> ${c.name}: ${r.error}`);
      assert.equal(r.peer, a.podIP);
      const df = await dfProbe(f.lab, c.pod.ns, a.podIP, dfPayload(c.pod.mtu));
      assert.ok(df.ok, df.output);
    }
  });

  test(`${NARROW_POOL}'s router: WAN MTU ${NARROW_WAN_MTU}, and it never says "fragmentation needed"`, async () => {
    const gw = f.candidates(NARROW_POOL)[0];
    const cloud = f.node('cloud-gw-1');
    const fits = await dfProbe(f.lab, gw.ns, cloud.publicIP!, dfPayload(NARROW_WAN_MTU), { source: gw.lanIP });
    assert.ok(fits.ok, fits.output);
    const big = await dfProbe(f.lab, gw.ns, cloud.publicIP!, dfPayload(NARROW_WAN_MTU + 1), { source: gw.lanIP, count: 2 });
    assert.equal(big.ok, false);
    assert.equal(big.mtu, undefined, `the sender must learn nothing: ${big.output}`);
  });

  test('an edge gateway reaches the cloud gateways through its router, seen from the router\'s address', async () => {
    const cloud = f.node('cloud-gw-1');
    // Count echo requests by source address on the cloud gateway.
    const table = `table inet corvid_probe {
  counter from_router {}
  counter from_lan {}
  chain input {
    type filter hook input priority filter; policy accept;
    ip saddr ${f.pool('edge-a').router!.wanIP} icmp type echo-request counter name "from_router"
    ip saddr ${f.pool('edge-a').lanCIDR} icmp type echo-request counter name "from_lan"
  }
}
`;
    await f.lab.exec(cloud.ns, ['nft', '-f', '-'], { input: table });
    try {
      for (const gw of f.candidates('edge-a')) {
        assert.ok(await f.ping(gw.name, cloud.publicIP!, { source: gw.lanIP, count: 2 }), `${gw.name} -> cloud-gw-1 public`);
      }
      const read = async (name: string): Promise<number> => {
        const out = await f.lab.exec(cloud.ns, ['nft', 'list', 'counter', 'inet', 'corvid_probe', name]);
        return Number(/packets (\d+)/.exec(out.stdout)?.[1]);
      };
      assert.equal(await read('from_router'), 4, 'every echo request arrived from the router\'s WAN address');
      assert.equal(await read('from_lan'), 0, 'no echo request arrived with an edge LAN source address');
    } finally {
      await f.lab.exec(cloud.ns, ['nft', 'delete', 'table', 'inet', 'corvid_probe'], { allowFail: true });
    }
    // Ordinary edge nodes have no way out at all.
    assert.equal(await f.ping('edge-a-node-1', f.node('cloud-gw-1').publicIP!, { source: f.node('edge-a-node-1').lanIP }), false);
  });

  test('new connections from the Internet into an edge pool are dropped by its router', async () => {
    for (const pool of ['edge-a', 'edge-b'] as const) {
      const p = f.pool(pool);
      const cloud = f.node('cloud-gw-2');
      const before = await f.routerDrops(pool);
      // Give the cloud gateway a route into the edge LAN through the router, as if the Internet routed private
      // addresses: the router still must not let a new connection in.
      await f.lab.route(cloud.ns, p.lanCIDR, 'via', p.router!.wanIP);
      try {
        const target = p.nodes[0].lanIP;
        assert.equal(await f.ping(cloud.name, target, { source: cloud.publicIP!, count: 2 }), false, `cloud -> ${pool} LAN must fail`);
        // The router itself is not open either.
        assert.equal(await f.ping(cloud.name, p.router!.wanIP, { source: cloud.publicIP! }), false, `cloud -> ${pool} router must fail`);
      } finally {
        await f.lab.exec(cloud.ns, ['ip', 'route', 'del', p.lanCIDR], { allowFail: true });
      }
      const after = await f.routerDrops(pool);
      assert.ok(after - before >= 3, `${pool} router dropped ${after - before} new inbound packets (expected >= 3)`);
    }
  });

  test('the fabric has every pool, three nodes each, and the ruleset in every router', async () => {
    assert.deepEqual([...f.pools.keys()], [...POOLS]);
    for (const p of f.pools.values()) {
      assert.equal(p.nodes.length, 3);
      if (p.behindNAT) {
        const out = await f.lab.exec(p.router!.ns, ['nft', 'list', 'ruleset']);
        assert.match(out.stdout, /masquerade/);
        assert.match(out.stdout, /ct state new counter name "inbound_new_dropped" drop/);
      }
    }
    assert.match(routerRuleset(), /oifname "wan0" masquerade/);
  });
});
