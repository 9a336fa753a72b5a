// Data-plane liveness in the pure core: whom a candidate watches (nodeplan/liveness.ts), when silence is a verdict,
// and how reports become health (plan/health.ts) and election decisions (plan/election.ts). Plus the properties the
// issue asks for: one lying agent cannot move another pool's gateway, nor keep a dead one elected.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { DEFAULT_LIVENESS, livenessTargets, proberWasAway, unreachableTargets } from '../../src/nodeplan/liveness.ts';
import { ProbeBook } from '../../src/adapters/liveness/udp.ts';
import { candidatePools, deriveHealth, emptyHealthMemory, type HeartbeatLease } from '../../src/plan/health.ts';
import { plan } from '../../src/plan/planner.ts';
import { REASONS } from '../../src/plan/election.ts';
import { parseUnreachable } from '../../src/adapters/kube/leases.ts';
import type { Gateway } from '../../src/gateway/types.ts';
import { input, node, NOW, pool, topology } from './plan-fixtures.ts';

function gw(name: string, candidates: string[], active: string[], ips: Record<string, string> = {}): Gateway {
  return {
    apiVersion: 'raven.openyurt.io/v1beta1',
    kind: 'Gateway',
    metadata: { name },
    spec: { endpoints: candidates.map((nodeName) => ({ nodeName, type: 'tunnel' as const })) },
    status: {
      nodes: Object.entries(ips).map(([nodeName, privateIP]) => ({ nodeName, privateIP, subnets: [] })),
      activeEndpoints: active.map((nodeName) => ({ nodeName, type: 'tunnel' as const })),
    },
  };
}

test('targets: the other candidates of this node\'s pool, at their LAN address; none for a node that is no candidate', () => {
  const gws = [
    gw('a', ['a1', 'a2', 'a3'], ['a1'], { a1: '10.0.0.1', a2: '10.0.0.2', a3: '10.0.0.3', m: '10.0.0.9' }),
    gw('b', ['b1', 'b2'], ['b1'], { b1: '10.1.0.1', b2: '10.1.0.2' }),
  ];
  assert.deepEqual(livenessTargets(gws, 'a2'), [{ node: 'a1', address: '10.0.0.1' }, { node: 'a3', address: '10.0.0.3' }]);
  assert.deepEqual(livenessTargets(gws, 'a1'), [{ node: 'a2', address: '10.0.0.2' }, { node: 'a3', address: '10.0.0.3' }], 'the active gateway watches its standbys too');
  assert.deepEqual(livenessTargets(gws, 'm'), [], 'a member watches nobody');
  // A candidate whose address the Gateway does not give is not probed.
  assert.deepEqual(livenessTargets([gw('a', ['a1', 'a2'], ['a1'], { a2: '10.0.0.2' })], 'a2'), []);
});

test('verdict: heard, then silent for downAfter and probed all along -> unreachable; never heard -> no verdict', () => {
  const s = { probeIntervalMs: 50, downAfterMs: 500 };
  const t0 = 1_000_000;
  const heard = { lastReplyMs: t0 + 100 };
  assert.deepEqual(unreachableTargets([{ node: 'x', ...heard, unansweredProbes: 10 }], t0 + 599, s), []);
  assert.deepEqual(unreachableTargets([{ node: 'x', ...heard, unansweredProbes: 10 }], t0 + 600, s), ['x']);
  // Never heard (its agent has not opened its socket yet, or a firewall drops the port): not judged, however long.
  assert.deepEqual(unreachableTargets([{ node: 'x', unansweredProbes: 1000 }], t0 + 60_000, s), []);
  // A prober that stalled (sent 3 probes in 600 ms) does not blame the target for its own silence.
  assert.deepEqual(unreachableTargets([{ node: 'x', ...heard, unansweredProbes: 3 }], t0 + 700, s), []);
  assert.deepEqual(
    unreachableTargets([{ node: 'z', ...heard, unansweredProbes: 10 }, { node: 'y', ...heard, unansweredProbes: 10 }], t0 + 700, s),
    ['y', 'z'],
  );
});

test('the defaults survive 5 % random loss each way: eight probes lost in a row is a once-in-10^8 event', () => {
  const lostRoundTrip = 1 - 0.95 * 0.95;
  const inARow = Math.floor(DEFAULT_LIVENESS.downAfterMs / DEFAULT_LIVENESS.probeIntervalMs);
  assert.ok(inARow >= 8);
  assert.ok(lostRoundTrip ** inARow < 1e-8);
  // 20 windows a second for 60 s (the loss test) on one pair: far below one in a thousand.
  assert.ok(lostRoundTrip ** inARow * 20 * 60 < 1e-4);
  assert.ok(DEFAULT_LIVENESS.downAfterMs + DEFAULT_LIVENESS.probeIntervalMs <= 500, 'a dead candidate is seen within 0.5 s');
});

test('probe book: sends count until an answer; the answer says whether the peer holds the active role; new targets start clean, dropped ones are forgotten', () => {
  let now = 0;
  const b = new ProbeBook(() => now);
  b.setTargets(['10.0.0.1']);
  b.sent('10.0.0.1');
  b.sent('10.0.0.1');
  b.sent('10.9.9.9'); // not a target: ignored
  assert.deepEqual(b.observation('10.0.0.1'), { unansweredProbes: 2 });
  assert.equal(b.saysActive('10.0.0.1', 1000), undefined, 'never heard: no word on its role');
  now = 70;
  b.answered('10.0.0.1', true);
  assert.deepEqual(b.observation('10.0.0.1'), { lastReplyMs: 70, unansweredProbes: 0 });
  assert.equal(b.saysActive('10.0.0.1', 100), true);
  now = 80;
  b.answered('10.0.0.1', false);
  assert.equal(b.saysActive('10.0.0.1', 100), false, 'the last answer counts');
  now = 181;
  assert.equal(b.saysActive('10.0.0.1', 100), undefined, 'silent for longer than asked: no word');
  now = 100;
  b.setTargets(['10.0.0.2']);
  assert.equal(b.observation('10.0.0.1'), undefined);
  assert.deepEqual(b.observation('10.0.0.2'), { unansweredProbes: 0 });
});

test('the report annotation: node names only, sorted, deduplicated, bounded', () => {
  assert.deepEqual(parseUnreachable('b, a,a,,NOT_A_NAME,'), ['a', 'b']);
  assert.deepEqual(parseUnreachable(undefined), []);
  assert.equal(parseUnreachable(Array.from({ length: 100 }, (_, i) => `n${i}`).join(',')).length, 16);
});

// ---------------------------------------------------------------- health

const AT = (s: number) => new Date(Date.parse(NOW) - s * 1000).toISOString().replace('.000Z', 'Z');
const POOLS = candidatePools([gw('a', ['a1', 'a2', 'a3'], ['a1']), gw('b', ['b1', 'b2'], ['b1'])]);
const fresh = (node: string, unreachable?: string[]): HeartbeatLease => ({ node, renewTime: AT(1), leaseDurationSeconds: 40, ...(unreachable ? { unreachable } : {}) });
const from = (leases: HeartbeatLease[]) => {
  const h = deriveHealth(leases, NOW, emptyHealthMemory(), { heartbeatTimeoutSeconds: 40, candidatePools: POOLS }).health;
  return Object.fromEntries(Object.entries(h).filter(([, v]) => v.unreachableFrom !== undefined).map(([k, v]) => [k, v.unreachableFrom]));
};

test('health: a candidate reported unreachable by another candidate of its pool is unhealthy, and remembered so', () => {
  const leases = [fresh('a1'), fresh('a2', ['a1']), fresh('a3', ['a1'])];
  assert.deepEqual(from(leases), { a1: ['a2', 'a3'] });
  const r = deriveHealth(leases, NOW, emptyHealthMemory(), { heartbeatTimeoutSeconds: 40, candidatePools: POOLS });
  assert.equal(r.health.a1.lastUnhealthy, NOW);
});

test('health: reports from another pool, from a non-candidate, from a stale or released Lease, or with no pools known, count for nothing', () => {
  assert.deepEqual(from([fresh('a1'), fresh('b1', ['a1']), fresh('member', ['a1'])]), {});
  assert.deepEqual(from([fresh('a1'), { ...fresh('a2', ['a1']), renewTime: AT(41) }]), {});
  assert.deepEqual(from([fresh('a1'), { ...fresh('a2', ['a1']), released: true }]), {});
  const none = deriveHealth([fresh('a1'), fresh('a2', ['a1'])], NOW, emptyHealthMemory(), { heartbeatTimeoutSeconds: 40 }).health;
  assert.equal(none.a1.unreachableFrom, undefined);
});

test('health: a fresh report counts at once, also from an agent that just started or came back (it judges only silences it was there for)', () => {
  const opts = { heartbeatTimeoutSeconds: 40, candidatePools: POOLS };
  const reported = (memory: { lastUnhealthy: Record<string, string> }, a2: HeartbeatLease) =>
    deriveHealth([fresh('a1'), a2], NOW, memory, opts).health.a1.unreachableFrom;
  // A standby restarted 5 s ago (a rolling update, a revived node) that sees its active gateway die: the pool moves
  // now, not once the standby has been back for half a timeout (that cost 19 s per failover).
  assert.deepEqual(reported(emptyHealthMemory(), { ...fresh('a2', ['a1']), acquireTime: AT(5) }), ['a2']);
  // Back from being unhealthy itself 5 s ago, likewise.
  assert.deepEqual(reported({ lastUnhealthy: { a2: AT(5) } }, fresh('a2', ['a1'])), ['a2']);
});

test('liveness: a prober that was away (paused, stalled) times every silence afresh: its backlog blames nobody', () => {
  const s = DEFAULT_LIVENESS;
  assert.equal(proberWasAway(1000, 1000 + s.probeIntervalMs / 2, s), false, 'judged on time');
  assert.equal(proberWasAway(1000, 1000 + s.downAfterMs - 1, s), false);
  assert.equal(proberWasAway(1000, 1000 + s.downAfterMs, s), true, 'away for as long as a silence that condemns');
  // Partitioned with its site for two minutes: the target last answered then; on the way back the prober's socket
  // hands it the probes it sent meanwhile, unanswered (the target's agent was paused too).
  let now = 0;
  const b = new ProbeBook(() => now);
  b.setTargets(['10.0.0.1', '10.0.0.2']);
  b.answered('10.0.0.1', true);
  now = 120_000;
  for (let i = 0; i < 2400; i++) b.sent('10.0.0.1');
  const judge = () => unreachableTargets(['10.0.0.1', '10.0.0.2'].map((a, i) => ({ node: `n${i}`, ...b.observation(a)! })), now, s);
  assert.deepEqual(judge(), ['n0'], 'without the restart: a false verdict at once');
  b.restart();
  assert.deepEqual(b.observation('10.0.0.1'), { lastReplyMs: 120_000, unansweredProbes: 0 });
  assert.deepEqual(b.observation('10.0.0.2'), { unansweredProbes: 0 }, 'never heard: still not judged');
  for (let i = 0; i < 20; i++) b.sent('10.0.0.1');
  assert.deepEqual(judge(), [], 'after the restart: nothing until a silence of its own');
  // The target really is gone: a full silence later it is reported.
  now += s.downAfterMs;
  assert.deepEqual(judge(), ['n0']);
});

test('health: two candidates that cannot reach each other say nothing about which is dead', () => {
  assert.deepEqual(from([fresh('a1', ['a2']), fresh('a2', ['a1'])]), {});
  // a3 still sees a1 dead; a1's answer to a2 cancels only that pair.
  assert.deepEqual(from([fresh('a1', ['a2']), fresh('a2', ['a1']), fresh('a3', ['a1'])]), { a1: ['a3'] });
});

test('election: the active gateway reported unreachable in its pool loses its role at once', () => {
  const t = topology([pool('a', ['a1', 'a2'])]);
  const nodes = [node('a1', 'a'), node('a2', 'a')];
  const previous = [gw('a', ['a1', 'a2'], ['a1'])];
  const health = deriveHealth([fresh('a1'), fresh('a2', ['a1'])], NOW, emptyHealthMemory(), { heartbeatTimeoutSeconds: 40, candidatePools: candidatePools(previous) }).health;
  const r = plan(input(t, nodes, { health, previous }));
  assert.deepEqual(r.gateways[0].status?.activeEndpoints?.map((e) => e.nodeName), ['a2']);
  assert.ok(r.decisions.some((d) => d.node === 'a1' && d.reason === REASONS.lost('unreachable in its pool')));
});

// ---------------------------------------------------------------- properties: one liar

const NODES = ['a1', 'a2', 'a3', 'b1', 'b2', 'm'];
const arbLease = (node: string) =>
  fc.record({
    present: fc.boolean(),
    age: fc.integer({ min: 0, max: 60 }),
    released: fc.boolean(),
    unreachable: fc.subarray(NODES),
  }).map((o) => (o.present ? { node, renewTime: AT(o.age), leaseDurationSeconds: 40, ...(o.released ? { released: true } : {}), unreachable: o.unreachable } : undefined));
const arbLeases = fc.tuple(...NODES.map(arbLease)).map((ls) => ls.filter((l): l is NonNullable<typeof l> => l !== undefined));

test('property: one lying agent moves nothing outside its own pool, and clears no report about anyone but itself', () => {
  fc.assert(
    fc.property(arbLeases, fc.constantFrom(...NODES), fc.subarray(NODES), (leases, liar, lie) => {
      const honest = from(leases);
      const lied = from([...leases.filter((l) => l.node !== liar), { node: liar, renewTime: AT(0), leaseDurationSeconds: 40, unreachable: lie }]);
      for (const n of NODES) {
        if (n === liar) continue;
        const before = honest[n] ?? [];
        const after = lied[n] ?? [];
        // Outside the liar's pool, nothing changes at all.
        if (POOLS[liar] === undefined || POOLS[n] !== POOLS[liar]) assert.deepEqual(after, before, `${liar} changed ${n}`);
        // Inside it, the liar can only add itself as a reporter: every other reporter's word stands (a dead
        // gateway reported by a live standby stays reported, whatever anyone else says).
        for (const r of before) if (r !== liar) assert.ok(after.includes(r), `${liar} cleared ${r}'s report about ${n}`);
      }
    }),
    { numRuns: 2000 },
  );
});
