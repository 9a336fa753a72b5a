// The pool-pair route rule (src/topology/route.ts) and its three callers: the topology's pairRoute, the graph of
// Gateways and the agents' node plan must give every pair the same verdict.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { poolPairRoute, type RoutePool } from '../../src/topology/route.ts';
import { pairRoute } from '../../src/topology/policy.ts';
import type { PairRule, Pool, Topology } from '../../src/topology/types.ts';
import { plan } from '../../src/plan/planner.ts';
import { buildGraph } from '../../src/graph/model.ts';
import { nodePlan } from '../../src/nodeplan/plan.ts';
import { input, node, pool, topology } from './plan-fixtures.ts';

function routePool(name: string, o: Partial<Omit<RoutePool, 'relaysFor' | 'allows'>> & { relaysFor?: string[]; denies?: string[] } = {}): RoutePool {
  const { relaysFor = [], denies = [], ...rest } = o;
  return { name, nat: false, hub: false, ...rest, relaysFor: (p) => relaysFor.includes(p), allows: (p) => p !== name && !denies.includes(p) };
}

function lookupOf(...pools: RoutePool[]): (name: string) => RoutePool | undefined {
  return (name) => pools.find((p) => p.name === name);
}

test('route rule, mesh: two pools behind NAT need their common relay, outside NAT, relaying for both, both hops allowed', () => {
  const a = routePool('a', { nat: true, relay: 'r1' });
  const b = routePool('b', { nat: true, relay: 'r1' });
  const r1 = routePool('r1', { relaysFor: ['a', 'b'] });
  const look = lookupOf(a, b, r1);
  assert.deepEqual(poolPairRoute(a, b, look), { via: 'relay', relay: 'r1' });
  assert.deepEqual(poolPairRoute(a, r1, look), { via: 'direct' });
  assert.deepEqual(poolPairRoute({ ...a, nat: false }, b, look), { via: 'direct' });
  assert.deepEqual(poolPairRoute(a, a, look), { via: 'none', reason: 'same-pool' });
  assert.deepEqual(poolPairRoute(a, routePool('b', { nat: true, relay: 'r1', denies: ['a'] }), look), { via: 'none', reason: 'denied' });
  // Never "the first one's relay": different relays, or a missing one, is no route.
  assert.deepEqual(poolPairRoute(a, { ...b, relay: 'r2' }, look), { via: 'none', reason: 'different-relays' });
  assert.deepEqual(poolPairRoute(a, routePool('b', { nat: true }), look), { via: 'none', reason: 'no-relay', pool: 'b' });
  assert.deepEqual(poolPairRoute(a, routePool('b', { nat: true, relayDenied: true }), look), { via: 'none', reason: 'relay-denied', pool: 'b' });
  // The relay must be known, outside NAT and relay for both.
  assert.deepEqual(poolPairRoute(a, b, lookupOf(a, b)), { via: 'none', reason: 'relay-unknown', relay: 'r1' });
  assert.deepEqual(poolPairRoute(a, b, lookupOf(a, b, { ...r1, nat: true })), { via: 'none', reason: 'relay-behind-nat', relay: 'r1' });
  assert.deepEqual(poolPairRoute(a, b, lookupOf(a, b, routePool('r1', { relaysFor: ['a'] }))), { via: 'none', reason: 'not-relayed', relay: 'r1' });
  // Both hops, each allowed by both of its ends.
  assert.deepEqual(poolPairRoute(a, routePool('b', { nat: true, relay: 'r1', denies: ['r1'] }), look), { via: 'none', reason: 'hop-denied', relay: 'r1', pool: 'b' });
  assert.deepEqual(poolPairRoute(a, b, lookupOf(a, b, routePool('r1', { relaysFor: ['a', 'b'], denies: ['b'] }))), { via: 'none', reason: 'hop-denied', relay: 'r1', pool: 'b' });
  assert.deepEqual(poolPairRoute(a, b, lookupOf(a, b, routePool('r1', { relaysFor: ['a', 'b'], denies: ['a', 'b'] }))), { via: 'none', reason: 'hop-denied', relay: 'r1', pool: 'a' });
});

test('route rule, hub: spoke-hub direct, spoke-spoke through the hub (behind NAT or not), never directly', () => {
  const hub = routePool('hub', { hub: true, relaysFor: ['s1', 's2'] });
  const s1 = routePool('s1', { hub: true, relay: 'hub' });
  const s2 = routePool('s2', { hub: true, relay: 'hub', nat: true });
  const look = lookupOf(hub, s1, s2);
  assert.deepEqual(poolPairRoute(s1, hub, look), { via: 'direct' });
  assert.deepEqual(poolPairRoute(hub, s2, look), { via: 'direct' });
  assert.deepEqual(poolPairRoute(s1, s2, look), { via: 'relay', relay: 'hub' });
  assert.deepEqual(poolPairRoute(s1, routePool('s2', { hub: true, relay: 'hub', denies: ['hub'] }), look), { via: 'none', reason: 'hop-denied', relay: 'hub', pool: 's2' });
  assert.deepEqual(poolPairRoute(s1, routePool('s2', { hub: true }), look), { via: 'none', reason: 'no-relay', pool: 's2' });
});

/** mulberry32: a small seeded generator, so a failure names its seed. */
function random(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let x = Math.imul(s ^ (s >>> 15), 1 | s);
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

test('route rule: symmetric on arbitrary pools (one-sided denials, unknown and odd relays included)', () => {
  for (let seed = 1; seed <= 300; seed++) {
    const rnd = random(seed);
    const names = ['a', 'b', 'c', 'd', 'e'];
    const pick = (): string => names[Math.floor(rnd() * names.length)];
    const hub = rnd() < 0.3;
    const pools = names.map((name) =>
      routePool(name, {
        nat: rnd() < 0.5,
        hub: hub || rnd() < 0.1,
        ...(rnd() < 0.7 ? { relay: rnd() < 0.1 ? 'zz' : pick() } : {}),
        relayDenied: rnd() < 0.3,
        relaysFor: names.filter(() => rnd() < 0.7),
        denies: names.filter(() => rnd() < 0.15),
      }),
    );
    const look = lookupOf(...pools);
    for (const a of pools) for (const b of pools) assert.deepEqual(poolPairRoute(a, b, look), poolPairRoute(b, a, look), `seed ${seed}: ${a.name}-${b.name}`);
  }
});

/** A topology of 3 to 7 pools: random NAT flags, named relays (kept only where usable), rules, mesh or hub. */
function randomTopology(seed: number): Topology {
  const rnd = random(seed);
  const names = Array.from({ length: 3 + Math.floor(rnd() * 5) }, (_, i) => `p${i}`);
  const pick = (): string => names[Math.floor(rnd() * names.length)];
  const rules: PairRule[] = Array.from({ length: Math.floor(rnd() * 4) }, () => ({
    action: rnd() < 0.7 ? 'deny' : 'allow',
    pools: [rnd() < 0.2 ? '*' : pick(), pick()],
  }));
  const hubMode = rnd() < 0.3;
  const pools: Pool[] = names.map((name) => pool(name, [`${name}-1`], { behindNAT: rnd() < 0.5 }));
  const base = topology(pools, { name: `t${seed}`, connectivity: hubMode ? { mode: 'hub', hub: pick(), rules } : { mode: 'mesh', rules } });
  // A named relay the validator would refuse (and the planner replaces) is left out.
  const usable = (p: Pool, r: Pool): boolean => r.name !== p.name && !r.behindNAT && pairRoute(base, p.name, r.name).via !== 'none';
  const named = base.pools.map((p) => {
    const relay = pick();
    const r = base.pools.find((x) => x.name === relay)!;
    return !hubMode && p.behindNAT && rnd() < 0.4 && usable(p, r) ? { ...p, relay: r.name } : p;
  });
  return { ...base, pools: named };
}

const FIXED: Topology[] = (() => {
  const nat = { behindNAT: true };
  return [
    topology([pool('c1', ['c1-1']), pool('c2', ['c2-1']), pool('n1', ['n1-1'], { ...nat, relay: 'c2' }), pool('n2', ['n2-1'], { ...nat, relay: 'c2' }), pool('n3', ['n3-1'], nat), pool('n4', ['n4-1'], nat)], {
      connectivity: { mode: 'mesh', rules: [{ action: 'deny', pools: ['n4', 'c1'] }, { action: 'deny', pools: ['n3', 'n1'] }] },
    }),
    // The automatic relay cannot join the named one (denied for n4): n1 and the automatic pools have different relays.
    topology([pool('c1', ['c1-1']), pool('c2', ['c2-1']), pool('c3', ['c3-1']), pool('n1', ['n1-1'], { ...nat, relay: 'c2' }), pool('n2', ['n2-1'], nat), pool('n3', ['n3-1'], nat), pool('n4', ['n4-1'], nat)], {
      connectivity: { mode: 'mesh', rules: [{ action: 'deny', pools: ['n4', 'c2'] }] },
    }),
    // No candidate is valid for both automatic pools: each falls back to its own relay.
    topology([pool('c1', ['c1-1']), pool('c2', ['c2-1']), pool('n1', ['n1-1'], nat), pool('n2', ['n2-1'], nat)], {
      connectivity: { mode: 'mesh', rules: [{ action: 'deny', pools: ['n1', 'c1'] }, { action: 'deny', pools: ['n2', 'c2'] }] },
    }),
    // The rules deny every relay of n1.
    topology([pool('c1', ['c1-1']), pool('n1', ['n1-1'], nat), pool('n2', ['n2-1'], nat)], { connectivity: { mode: 'mesh', rules: [{ action: 'deny', pools: ['n1', 'c1'] }] } }),
    topology([pool('hub', ['hub-1']), pool('s1', ['s1-1']), pool('s2', ['s2-1'], { ...nat, relay: 'hub' }), pool('s3', ['s3-1'])], {
      connectivity: { mode: 'hub', hub: 'hub', rules: [{ action: 'deny', pools: ['s3', 's1'] }] },
    }),
    // A spoke the rules cut off from the hub reaches no other spoke; a hub behind NAT relays for none.
    topology([pool('hub', ['hub-1']), pool('s1', ['s1-1']), pool('s2', ['s2-1'])], { connectivity: { mode: 'hub', hub: 'hub', rules: [{ action: 'deny', pools: ['s2', 'hub'] }] } }),
    topology([pool('hub', ['hub-1'], nat), pool('s1', ['s1-1']), pool('s2', ['s2-1'], nat)], { connectivity: { mode: 'hub', hub: 'hub', rules: [] } }),
  ];
})();

/** One pair's verdict, in the words all three callers share: `direct`, `via <relay>` or `none`. */
type Verdict = 'direct' | `via ${string}` | 'none';

test('the three callers agree: topology pairRoute, the graph of planned Gateways and nodePlan reach, for every pair', () => {
  const topologies = [...FIXED, ...Array.from({ length: 60 }, (_, i) => randomTopology(i + 1))];
  for (const t of topologies) {
    const gateways = plan(input(t, t.pools.map((p) => node(`${p.name}-1`, p.name)))).gateways;
    assert.equal(gateways.length, t.pools.length, t.name);
    const edges = new Map(buildGraph({ topology: t, gateways }).edges.map((e) => [`${e.a} ${e.b}`, e]));
    const reach = new Map(t.pools.map((p) => [p.name, nodePlan({ gateways, nodeName: `${p.name}-1` }).reach]));
    const names = t.pools.map((p) => p.name).sort();
    for (const a of names) {
      for (const b of names) {
        if (a === b) continue;
        const where = `${t.name}: ${a}-${b}`;
        const r = pairRoute(t, a, b);
        assert.deepEqual(pairRoute(t, b, a), r, `symmetric ${where}`);
        const topo: Verdict = r.via === 'direct' ? 'direct' : r.via === 'relay' ? `via ${r.relay}` : r.via === 'hub' ? `via ${r.hub}` : 'none';
        const e = edges.get(a < b ? `${a} ${b}` : `${b} ${a}`)!;
        const graph: Verdict = e.kind === 'direct' ? 'direct' : e.kind === 'relayed' ? `via ${e.via!.join(' ')}` : 'none';
        assert.equal(e.kind === 'denied', r.via === 'none' && r.reason === 'denied', `graph denied ${where}`);
        const x = reach.get(a)!.find((y) => y.pool === b);
        const agent: Verdict = x === undefined ? 'none' : x.path === 'direct' ? 'direct' : `via ${x.via}`;
        assert.deepEqual({ graph, agent }, { graph: topo, agent: topo }, where);
      }
    }
  }
});

test('graph and agents read "behind NAT" alike: an active tunnel endpoint behind NAT counts, as nodePlan has always read it', () => {
  const nat = { behindNAT: true };
  const t = topology([pool('c1', ['c1-1']), pool('n1', ['n1-1'], nat), pool('n2', ['n2-1'], nat)]);
  // Endpoints that do not say what the active endpoint says (never written by the planner, possible by hand).
  const gateways = plan(input(t, t.pools.map((p) => node(`${p.name}-1`, p.name)))).gateways.map((g) => ({
    ...g,
    spec: { ...g.spec, endpoints: (g.spec.endpoints ?? []).map((e) => ({ ...e, underNAT: false })) },
  }));
  const edge = buildGraph({ gateways }).edges.find((e) => e.a === 'n1' && e.b === 'n2');
  assert.deepEqual(edge, { a: 'n1', b: 'n2', kind: 'relayed', via: ['c1'] });
  assert.deepEqual(nodePlan({ gateways, nodeName: 'n1-1' }).reach.find((r) => r.pool === 'n2'), { pool: 'n2', path: 'relay', via: 'c1', backend: 'ipsec' });
});
