// Property tests of the planner over random topologies, node sets, health and live Gateways (fast-check).
// Each property makes a single assertion.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { plan } from '../../src/plan/planner.ts';
import { deriveHealth, emptyHealthMemory, tunnelGraceSeconds } from '../../src/plan/health.ts';
import { matchesSelector } from '../../src/plan/selector.ts';
import type { Gateway } from '../../src/gateway/types.ts';
import type { LabelSelector, Pool, Topology } from '../../src/topology/types.ts';
import type { CandidateHealth, InventoryNode, PlanInput } from '../../src/plan/types.ts';
import { DEFAULT_ENCRYPTION, POOL_KEY, REV } from './plan-fixtures.ts';

const T0_MS = Date.parse('2026-01-01T00:00:00Z');
const iso = (ms: number) => new Date(ms).toISOString().replace('.000Z', 'Z');
const NOW_MS = T0_MS + 3600_000;
const RUNS = { numRuns: 300 };

const POOLS = ['p0', 'p1', 'p2', 'p3', 'p4'];
const NODES = Array.from({ length: 12 }, (_, i) => `n${i}`);

// ---------------------------------------------------------------- arbitraries

const arbSelector = (name: string) =>
  fc.oneof(
    fc.constant<LabelSelector>({ matchLabels: { [POOL_KEY]: name } }),
    fc.constantFrom(...POOLS).map((other): LabelSelector => ({ matchExpressions: [{ key: POOL_KEY, operator: 'In' as const, values: [name, other] }] })),
    fc.constant<LabelSelector>({ matchLabels: { [POOL_KEY]: name }, matchExpressions: [{ key: 'drop', operator: 'DoesNotExist' }] }),
  );

const arbPool = (name: string) =>
  fc.record({
    nodeSelector: arbSelector(name),
    gateways: fc.uniqueArray(fc.constantFrom(...NODES, 'ghost'), { maxLength: 4 }),
    behindNAT: fc.boolean(),
    publicIP: fc.option(fc.constantFrom('203.0.113.1', '2001:db8::1'), { nil: undefined }),
  }).map(({ nodeSelector, gateways, behindNAT, publicIP }): Pool => ({
    name,
    nodeSelector,
    gateways: gateways.map((node, i) => ({ node, publicPort: 4500, ...(publicIP && i === 0 ? { publicIP } : {}) })),
    behindNAT,
  }));

const arbTopology: fc.Arbitrary<Topology> = fc
  .record({
    count: fc.integer({ min: 1, max: POOLS.length }),
    pools: fc.tuple(...POOLS.map(arbPool)),
    sticky: fc.boolean(),
    preempt: fc.boolean(),
    minHealthySeconds: fc.constantFrom(0, 10, 30, 600),
    heartbeatTimeoutSeconds: fc.integer({ min: 0, max: 5 }),
    replicas: fc.integer({ min: 1, max: 3 }),
    hub: fc.boolean(),
    denies: fc.array(fc.tuple(fc.constantFrom(...POOLS, '*'), fc.constantFrom(...POOLS)), { maxLength: 3 }),
  })
  .map((r) => {
    const pools = r.pools.slice(0, r.count);
    return {
      name: 'prop',
      allowEmpty: false,
      podSubnets: { source: 'auto' },
      encryption: DEFAULT_ENCRYPTION,
      connectivity: {
        mode: r.hub ? 'hub' : 'mesh',
        ...(r.hub ? { hub: pools[0].name } : {}),
        rules: r.denies.map(([a, b]) => ({ action: 'deny' as const, pools: [a, b] as [string, string] })),
      },
      election: { sticky: r.sticky, preempt: r.preempt, minHealthySeconds: r.minHealthySeconds, heartbeatTimeoutSeconds: r.heartbeatTimeoutSeconds, replicas: r.replicas },
      pools,
      links: [],
    } satisfies Topology;
  });

/** A node; `home` is the pool that lists it as a gateway (if any), which it usually belongs to. */
const arbNode = (name: string, home: string | undefined): fc.Arbitrary<InventoryNode> =>
  fc.record({
    pool: home === undefined ? fc.option(fc.constantFrom(...POOLS), { nil: undefined }) : fc.oneof({ weight: 4, arbitrary: fc.constant(home) }, { weight: 1, arbitrary: fc.option(fc.constantFrom(...POOLS), { nil: undefined }) }),
    drop: fc.boolean(),
    ready: fc.oneof({ weight: 3, arbitrary: fc.constant(true) }, { weight: 1, arbitrary: fc.constant(false) }),
    readyAgo: fc.integer({ min: 0, max: 3600 }),
    ip: fc.boolean(),
    drained: fc.oneof({ weight: 4, arbitrary: fc.constant(false) }, { weight: 1, arbitrary: fc.constant(true) }),
    publicIP: fc.option(fc.constantFrom('198.51.100.9', 'bogus'), { nil: undefined }),
  }).map((r) => ({
    name,
    labels: { ...(r.pool ? { [POOL_KEY]: r.pool } : {}), ...(r.drop ? { drop: '' } : {}) },
    ready: r.ready,
    readySince: iso(NOW_MS - r.readyAgo * 1000),
    ...(r.ip ? { internalIP: `10.0.0.${name.slice(1)}` } : {}),
    podCIDRs: r.ip ? [`10.244.${name.slice(1)}.0/24`] : [],
    unschedulable: false,
    drained: r.drained,
    ...(r.publicIP ? { publicIP: r.publicIP } : {}),
  }));

const arbHealth: fc.Arbitrary<CandidateHealth> = fc.record(
  {
    heartbeatAgeSeconds: fc.double({ min: 0, max: 10, noNaN: true }),
    heartbeatSince: fc.integer({ min: 0, max: 3600 }).map((s) => iso(NOW_MS - s * 1000)),
    tunnelHealthy: fc.boolean(),
    lastUnhealthy: fc.integer({ min: 0, max: 3600 }).map((s) => iso(NOW_MS - s * 1000)),
  },
  { requiredKeys: [] },
);

function liveGateway(name: string, active: string[]): Gateway {
  return {
    apiVersion: 'raven.openyurt.io/v1beta1',
    kind: 'Gateway',
    metadata: { name, labels: { 'app.kubernetes.io/managed-by': 'corvid', 'corvid.dev/topology': 'prop', 'corvid.dev/pool': name } },
    spec: {},
    status: { activeEndpoints: active.map((nodeName) => ({ nodeName, type: 'tunnel' as const })) },
  };
}

const arbInput: fc.Arbitrary<PlanInput> = arbTopology.chain((topology) => {
  const home = (n: string) => topology.pools.find((p) => p.gateways.some((g) => g.node === n))?.name;
  return fc
    .record({
      nodes: fc.tuple(...NODES.map((n) => arbNode(n, home(n)))),
      count: fc.integer({ min: 0, max: NODES.length }),
      health: fc.dictionary(fc.constantFrom(...NODES), arbHealth),
      // Live active endpoints: mostly among the pool's own gateways, sometimes anything.
      previous: fc.tuple(
        ...topology.pools.map((p) =>
          fc.option(
            fc.oneof(
              { weight: 4, arbitrary: p.gateways.length > 0 ? fc.subarray(p.gateways.map((g) => g.node), { maxLength: Math.min(3, p.gateways.length) }) : fc.constant<string[]>([]) },
              { weight: 1, arbitrary: fc.uniqueArray(fc.constantFrom(...NODES, 'ghost'), { maxLength: 3 }) },
            ),
            { nil: undefined },
          ),
        ),
      ),
    })
    .map((r) => ({
      topology,
      revision: REV,
      nodes: r.nodes.slice(0, Math.max(r.count, 6)),
      health: r.health,
      previous: topology.pools.flatMap((p, i) => (r.previous[i] === undefined ? [] : [liveGateway(p.name, r.previous[i]!)])),
      now: iso(NOW_MS),
    }));
});

// ---------------------------------------------------------------- helpers over one plan

function unhealthy(input: PlanInput, n: InventoryNode): boolean {
  const h = input.health[n.name];
  const timeout = input.topology.election.heartbeatTimeoutSeconds;
  const expired = h?.heartbeatAgeSeconds !== undefined && timeout > 0 && h.heartbeatAgeSeconds > timeout;
  return !n.ready || expired || h?.tunnelHealthy === false;
}

function poolOf(input: PlanInput, n: InventoryNode): string | undefined {
  return [...input.topology.pools].sort((a, b) => (a.name < b.name ? -1 : 1)).find((p) => matchesSelector(p.nodeSelector, n.labels))?.name;
}

function actives(gws: Gateway[]): Map<string, string[]> {
  return new Map(gws.map((g) => [g.metadata.name, (g.status?.activeEndpoints ?? []).map((e) => e.nodeName)]));
}

function previousActives(input: PlanInput, pool: string): string[] {
  return input.previous.find((g) => g.metadata.name === pool)?.status?.activeEndpoints?.map((e) => e.nodeName) ?? [];
}

function shuffle<T>(xs: readonly T[], keys: readonly number[]): T[] {
  return xs.map((x, i) => [x, keys[i] ?? 0, i] as const).sort((a, b) => a[1] - b[1] || a[2] - b[2]).map(([x]) => x);
}

// ---------------------------------------------------------------- properties over single plans

test('property: never elects an unready, expired or tunnel-down node; a drained one only if it was already active', () => {
  fc.assert(
    fc.property(arbInput, (input) => {
      const nodes = new Map(input.nodes.map((n) => [n.name, n]));
      const ok = [...actives(plan(input).gateways)].every(([pool, names]) =>
        names.every((name) => {
          const n = nodes.get(name)!;
          return !unhealthy(input, n) && (!n.drained || previousActives(input, pool).includes(name));
        }),
      );
      assert.ok(ok);
    }),
    RUNS,
  );
});

test('property: never leaves a healthy sticky endpoint (sticky, no preemption)', () => {
  fc.assert(
    fc.property(arbInput, (raw) => {
      const input = { ...raw, topology: { ...raw.topology, election: { ...raw.topology.election, sticky: true, preempt: false, replicas: 1 } } };
      const nodes = new Map(input.nodes.map((n) => [n.name, n]));
      const next = actives(plan(input).gateways);
      const ok = input.topology.pools.every((p) => {
        // The previous active endpoints that are still healthy, undrained candidates of p: one of them must stay.
        const stayers = previousActives(input, p.name).filter((name) => {
          const n = nodes.get(name);
          return n !== undefined && p.gateways.some((g) => g.node === name) && poolOf(input, n) === p.name && !unhealthy(input, n) && !n.drained;
        });
        return stayers.length === 0 || stayers.includes(next.get(p.name)![0]);
      });
      assert.ok(ok);
    }),
    RUNS,
  );
});

test('property: peers\' evidence (reachedPools) never makes a new gateway; an endpoint it keeps was active before', () => {
  fc.assert(
    fc.property(arbInput, (raw) => {
      // The most a lying peer can say: every pool is reached.
      const input = { ...raw, reachedPools: raw.topology.pools.map((p) => p.name) };
      const nodes = new Map(input.nodes.map((n) => [n.name, n]));
      const ok = [...actives(plan(input).gateways)].every(([pool, names]) =>
        names.every((name) => !unhealthy(input, nodes.get(name)!) || previousActives(input, pool).includes(name)),
      );
      assert.ok(ok);
    }),
    RUNS,
  );
});

test('property: a pool with a candidate that renewed within half a timeout elects the same, whatever its peers report', () => {
  fc.assert(
    fc.property(arbInput, (raw) => {
      const liar = { ...raw, reachedPools: raw.topology.pools.map((p) => p.name) };
      const honest = { ...raw, reachedPools: [] };
      const a = actives(plan(liar).gateways);
      const b = actives(plan(honest).gateways);
      const timeout = raw.topology.election.heartbeatTimeoutSeconds;
      const ok = raw.topology.pools.every((p) => {
        const live = raw.nodes.some((n) => {
          if (!p.gateways.some((g) => g.node === n.name) || poolOf(raw, n) !== p.name || unhealthy(raw, n)) return false;
          const age = raw.health[n.name]?.heartbeatAgeSeconds;
          return age === undefined || age <= timeout / 2;
        });
        return !live || JSON.stringify(a.get(p.name)) === JSON.stringify(b.get(p.name));
      });
      assert.ok(ok);
    }),
    // The case (an expired active endpoint, a live standby, peers reporting) is rare among random inputs: more runs.
    { numRuns: 5000 },
  );
});

test('property: every active endpoint is a candidate of its own pool', () => {
  fc.assert(
    fc.property(arbInput, (input) => {
      const nodes = new Map(input.nodes.map((n) => [n.name, n]));
      const r = plan(input);
      const ok = r.gateways.every((g) => {
        const pool = input.topology.pools.find((p) => p.name === g.metadata.name)!;
        return (g.status?.activeEndpoints ?? []).every(
          (e) => g.spec.endpoints!.some((c) => c.nodeName === e.nodeName) && pool.gateways.some((x) => x.node === e.nodeName) && poolOf(input, nodes.get(e.nodeName)!) === pool.name,
        );
      });
      assert.ok(ok);
    }),
    RUNS,
  );
});

test('property: at most `replicas` active endpoints, sorted by preference', () => {
  fc.assert(
    fc.property(arbInput, (input) => {
      const ok = plan(input).gateways.every((g) => {
        const a = g.status?.activeEndpoints ?? [];
        const ranks = a.map((e) => Number(e.config?.['corvid.dev/priority']));
        return a.length <= input.topology.election.replicas && ranks.every((x, i) => i === 0 || ranks[i - 1] < x);
      });
      assert.ok(ok);
    }),
    RUNS,
  );
});

test('property: spec depends on the topology alone (no nodes, health or live Gateways: the same spec)', () => {
  fc.assert(
    fc.property(arbInput, (input) => {
      const bare = plan({ ...input, nodes: [], health: {}, previous: [] });
      assert.equal(JSON.stringify(bare.gateways.map((g) => g.spec)), JSON.stringify(plan(input).gateways.map((g) => g.spec)));
    }),
    RUNS,
  );
});

test('property: deterministic, the same input twice gives identical JSON', () => {
  fc.assert(
    fc.property(arbInput, (input) => {
      assert.equal(JSON.stringify(plan(structuredClone(input))), JSON.stringify(plan(input)));
    }),
    RUNS,
  );
});

test('property: shuffled node order gives identical output', () => {
  fc.assert(
    fc.property(arbInput, fc.array(fc.double({ noNaN: true }), { minLength: NODES.length, maxLength: NODES.length }), (input, keys) => {
      assert.equal(JSON.stringify(plan({ ...input, nodes: shuffle(input.nodes, keys) })), JSON.stringify(plan(input)));
    }),
    RUNS,
  );
});

test('property: re-planning with the output as the live Gateways changes nothing (no churn)', () => {
  fc.assert(
    fc.property(arbInput, (input) => {
      const first = plan(input);
      assert.equal(JSON.stringify(plan({ ...input, previous: first.gateways }).gateways), JSON.stringify(first.gateways));
    }),
    RUNS,
  );
});

// ---------------------------------------------------------------- properties over time series of flapping health

interface Step {
  dt: number;
  flips: number[];
}

const CANDIDATES = ['c0', 'c1', 'c2', 'c3'];
const arbSteps = fc.array(
  fc.record({ dt: fc.integer({ min: 1, max: 25 }), flips: fc.uniqueArray(fc.integer({ min: 0, max: CANDIDATES.length - 1 }), { maxLength: 2 }) }),
  { minLength: 5, maxLength: 60 },
);

interface Tick {
  t: number;
  before: string | undefined;
  after: string | undefined;
  /** The previous active was still healthy, so leaving it was the planner's choice. */
  voluntary: boolean;
  elected?: { node: string; healthyFor: number; fallbackAllowed: boolean };
}

/** Feed one pool through random readiness flaps, previous -> next, and record every change of the active endpoint. */
function simulate(steps: Step[], W: number, preempt: boolean): Tick[] {
  const t: Topology = {
    name: 'sim',
    allowEmpty: false,
    podSubnets: { source: 'auto' },
    encryption: DEFAULT_ENCRYPTION,
    connectivity: { mode: 'mesh', rules: [] },
    election: { sticky: true, preempt, minHealthySeconds: W, heartbeatTimeoutSeconds: 3, replicas: 1 },
    pools: [{ name: 'p', nodeSelector: { matchLabels: { [POOL_KEY]: 'p' } }, gateways: CANDIDATES.map((node) => ({ node, publicPort: 4500 })), behindNAT: false }],
    links: [],
  };
  const ready = CANDIDATES.map(() => true);
  const since = CANDIDATES.map(() => T0_MS - 3600_000);
  let now = T0_MS;
  let previous: Gateway[] = [];
  const ticks: Tick[] = [];
  for (const s of steps) {
    now += s.dt * 1000;
    for (const i of s.flips) {
      ready[i] = !ready[i];
      since[i] = now;
    }
    const nodes = CANDIDATES.map((name, i): InventoryNode => ({
      name, labels: { [POOL_KEY]: 'p' }, ready: ready[i], readySince: iso(since[i]), internalIP: `10.0.0.${i}`, podCIDRs: [], unschedulable: false, drained: false,
    }));
    const r = plan({ topology: t, revision: REV, nodes, health: {}, previous, now: iso(now) });
    const before = previous[0]?.status?.activeEndpoints?.[0]?.nodeName;
    const after = r.gateways[0].status?.activeEndpoints?.[0]?.nodeName;
    if (before !== after) {
      const bi = before === undefined ? -1 : CANDIDATES.indexOf(before);
      const ai = after === undefined ? -1 : CANDIDATES.indexOf(after);
      const healthyFor = (i: number) => (ready[i] ? (now - since[i]) / 1000 : -1);
      ticks.push({
        t: now,
        before,
        after,
        voluntary: bi >= 0 && ready[bi],
        ...(ai >= 0
          ? { elected: { node: after!, healthyFor: healthyFor(ai), fallbackAllowed: !(bi >= 0 && ready[bi]) && CANDIDATES.every((_, i) => healthyFor(i) < W) } }
          : {}),
      });
    }
    previous = r.gateways;
  }
  return ticks;
}

test('property (flapping): with sticky and no preemption, only a failed active is ever replaced', () => {
  fc.assert(
    fc.property(arbSteps, fc.constantFrom(10, 30), (steps, W) => {
      assert.ok(simulate(steps, W, false).every((x) => !x.voluntary));
    }),
    RUNS,
  );
});

test('property (flapping): with preemption, a healthy active is replaced at most once per stabilisation window', () => {
  // Two switches away from a still-healthy active, with no forced failover between them, are >= W apart.
  fc.assert(
    fc.property(arbSteps, fc.constantFrom(10, 30), (steps, W) => {
      const ticks = simulate(steps, W, true);
      const ok = ticks.every((x, i) => {
        if (!x.voluntary) return true;
        const prev = ticks.slice(0, i).reverse();
        const lastForcedIdx = prev.findIndex((y) => !y.voluntary);
        const lastVoluntaryIdx = prev.findIndex((y) => y.voluntary);
        if (lastVoluntaryIdx < 0 || (lastForcedIdx >= 0 && lastForcedIdx < lastVoluntaryIdx)) return true;
        return x.t - prev[lastVoluntaryIdx].t >= W * 1000;
      });
      assert.ok(ok);
    }),
    RUNS,
  );
});

test('property (flapping): a newly elected node was healthy for the window, unless nothing else could serve', () => {
  fc.assert(
    fc.property(arbSteps, fc.constantFrom(10, 30), fc.boolean(), (steps, W, preempt) => {
      assert.ok(simulate(steps, W, preempt).every((x) => !x.elected || x.elected.healthyFor >= W || x.elected.fallbackAllowed));
    }),
    RUNS,
  );
});

// deriveHealth's tunnel verdict over random Leases: blamed exactly when (a) it reports tunnels, (b)+(c) all are down
// with a readable `since` at least the grace old, and (d) another node's fresh Lease reports a tunnel up.
const arbTunnelLeases = fc.uniqueArray(
  fc.record({
    node: fc.constantFrom(...NODES),
    renewAgoS: fc.integer({ min: 0, max: 20 }),
    tunnels: fc.dictionary(
      fc.constantFrom(...POOLS),
      fc.record({ up: fc.boolean(), sinceAgoS: fc.oneof(fc.integer({ min: -5, max: 40 }), fc.constant(undefined)) }),
      { maxKeys: 3 },
    ),
  }),
  { selector: (l) => l.node, maxLength: 6 },
);

test('property (health): a node is tunnel-unhealthy exactly under the four clauses, never alone, never within the grace', () => {
  fc.assert(
    fc.property(arbTunnelLeases, fc.integer({ min: 1, max: 6 }), (raw, timeoutS) => {
      const leases = raw.map((l) => ({
        node: l.node,
        renewTime: iso(NOW_MS - l.renewAgoS * 1000),
        tunnels: Object.fromEntries(Object.entries(l.tunnels).map(([p, t]) => [p, { up: t.up, since: t.sinceAgoS === undefined ? 'never' : iso(NOW_MS - t.sinceAgoS * 1000) }])),
      }));
      const { health } = deriveHealth(leases, iso(NOW_MS), emptyHealthMemory(), { heartbeatTimeoutSeconds: timeoutS });
      const grace = tunnelGraceSeconds(timeoutS);
      const fresh = (l: (typeof raw)[number]) => l.renewAgoS <= timeoutS;
      const expected = (l: (typeof raw)[number]) => {
        const ts = Object.values(l.tunnels);
        const othersUp = raw.some((o) => o.node !== l.node && fresh(o) && Object.values(o.tunnels).some((t) => t.up));
        return ts.length > 0 && ts.every((t) => !t.up && t.sinceAgoS !== undefined && t.sinceAgoS >= grace) && othersUp;
      };
      assert.ok(raw.every((l) => (health[l.node].tunnelHealthy === false) === expected(l)));
    }),
    RUNS,
  );
});
