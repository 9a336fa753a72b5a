import { test } from 'node:test';
import assert from 'node:assert/strict';
import { plan } from '../../src/plan/planner.ts';
import { electPool, FIRST_SHOW_GRACE_SECONDS, REASONS } from '../../src/plan/election.ts';
import type { CandidateState } from '../../src/plan/election.ts';
import type { Gateway } from '../../src/gateway/types.ts';
import type { ElectionSettings } from '../../src/topology/types.ts';
import type { CandidateHealth, InventoryNode } from '../../src/plan/types.ts';
import { DEFAULT_ELECTION, input, node, NOW, pool, topology } from './plan-fixtures.ts';

const RECENT = '2026-01-01T00:59:50Z'; // 10 s before NOW: not yet healthy for minHealthySeconds (30 s)
const P = 'p';

function live(active: string[], election?: Record<string, string>): Gateway {
  return {
    apiVersion: 'raven.openyurt.io/v1beta1',
    kind: 'Gateway',
    metadata: {
      name: P,
      labels: { 'app.kubernetes.io/managed-by': 'corvid', 'corvid.dev/topology': 'edge', 'corvid.dev/pool': P },
      ...(election ? { annotations: { 'corvid.dev/election': JSON.stringify(election) } } : {}),
    },
    spec: {},
    status: { activeEndpoints: active.map((nodeName) => ({ nodeName, type: 'tunnel' as const })) },
  };
}

function run(opts: {
  nodes: InventoryNode[];
  gateways?: string[];
  previous?: string[];
  health?: Record<string, CandidateHealth>;
  election?: Partial<ElectionSettings>;
  previousElection?: Record<string, string>;
  reachedPools?: string[];
}) {
  const t = topology([pool(P, opts.gateways ?? ['a', 'b', 'c'])], { election: opts.election });
  const r = plan(
    input(t, opts.nodes, {
      health: opts.health ?? {},
      previous: opts.previous ? [live(opts.previous, opts.previousElection)] : [],
      ...(opts.reachedPools ? { reachedPools: opts.reachedPools } : {}),
    }),
  );
  const gw = r.gateways[0];
  return {
    active: (gw.status?.activeEndpoints ?? []).map((e) => e.nodeName),
    decisions: r.decisions.map((d) => `${d.node} ${d.reason}`),
    kinds: r.decisions.map((d) => d.kind),
    findings: r.findings.map((f) => f.code),
    election: JSON.parse(gw.metadata.annotations?.['corvid.dev/election'] ?? '{}') as Record<string, string>,
    gw,
  };
}

const n = (name: string, o: Partial<InventoryNode> = {}) => node(name, P, o);

test('first election: the most preferred healthy candidate', () => {
  const r = run({ nodes: [n('a'), n('b'), n('c')] });
  assert.deepEqual(r.active, ['a']);
  assert.deepEqual(r.decisions, ['a elected: most preferred healthy candidate']);
  assert.deepEqual(r.kinds, ['elected']);
  assert.deepEqual(r.election, { a: REASONS.elected });
});

test('sticky: a healthy active endpoint is kept even when a more preferred one is healthy', () => {
  const r = run({ nodes: [n('a'), n('b'), n('c')], previous: ['b'] });
  assert.deepEqual(r.active, ['b']);
  assert.deepEqual(r.decisions, []);
  assert.deepEqual(r.election, { b: REASONS.kept });
});

test('kept endpoints carry their previous election reason forward (no churn)', () => {
  const r = run({ nodes: [n('a'), n('b')], previous: ['b'], previousElection: { b: REASONS.elected } });
  assert.deepEqual(r.election, { b: REASONS.elected });
});

test('lost: not ready', () => {
  const r = run({ nodes: [n('a', { ready: false }), n('b'), n('c')], previous: ['a'] });
  assert.deepEqual(r.active, ['b']);
  assert.deepEqual(r.decisions, ['a lost: not ready', 'b elected: most preferred healthy candidate']);
  assert.deepEqual(r.kinds, ['lost', 'elected']);
});

test('lost: heartbeat expired (age > heartbeatTimeoutSeconds)', () => {
  const r = run({ nodes: [n('a'), n('b')], previous: ['a'], health: { a: { heartbeatAgeSeconds: 3.5 } } });
  assert.deepEqual(r.decisions, ['a lost: heartbeat expired', 'b elected: most preferred healthy candidate']);
  const fresh = run({ nodes: [n('a'), n('b')], previous: ['a'], health: { a: { heartbeatAgeSeconds: 3 } } });
  assert.deepEqual(fresh.active, ['a'], 'age equal to the timeout is still fresh');
});

test('lost: heartbeat released (the agent stopped cleanly), even though the Lease is fresh', () => {
  const r = run({ nodes: [n('a'), n('b')], previous: ['a'], health: { a: { heartbeatAgeSeconds: 0.2, released: true } } });
  assert.deepEqual(r.active, ['b']);
  assert.deepEqual(r.decisions, ['a lost: heartbeat released', 'b elected: most preferred healthy candidate']);
  const off = run({ nodes: [n('a'), n('b')], previous: ['a'], health: { a: { released: true } }, election: { heartbeatTimeoutSeconds: 0 } });
  assert.deepEqual(off.active, ['a'], 'a disabled heartbeat check ignores releases too');
});

test('lost: datapath down (its agent says the node cannot forward), though Ready and with a fresh heartbeat', () => {
  const h = { a: { heartbeatAgeSeconds: 0.2, datapathDown: 'IPv4 forwarding is off' } };
  const r = run({ nodes: [n('a'), n('b')], previous: ['a'], health: h });
  assert.deepEqual(r.active, ['b']);
  assert.deepEqual(r.decisions, ['a lost: datapath down', 'b elected: most preferred healthy candidate']);
  const fresh = run({ nodes: [n('a'), n('b')], previous: [], health: h });
  assert.deepEqual(fresh.active, ['b'], 'never elected while it says so');
  const none = run({ nodes: [n('a')], previous: ['a'], health: h });
  assert.deepEqual(none.active, [], 'no other candidate: the pool has no gateway rather than one that cannot forward');
  const off = run({ nodes: [n('a'), n('b')], previous: ['a'], health: h, election: { heartbeatTimeoutSeconds: 0 } });
  assert.deepEqual(off.active, ['a'], 'a disabled heartbeat check ignores what the heartbeat says');
});

test('heartbeatTimeoutSeconds 0 disables the heartbeat check', () => {
  const r = run({ nodes: [n('a'), n('b')], previous: ['a'], health: { a: { heartbeatAgeSeconds: 999 } }, election: { heartbeatTimeoutSeconds: 0 } });
  assert.deepEqual(r.active, ['a']);
});

test('lost: tunnels down (Ready but not forwarding)', () => {
  const r = run({ nodes: [n('a'), n('b')], previous: ['a'], health: { a: { tunnelHealthy: false } } });
  assert.deepEqual(r.decisions, ['a lost: tunnels down', 'b elected: most preferred healthy candidate']);
});

test('not ready wins over the other reasons', () => {
  const r = run({ nodes: [n('a', { ready: false, drained: true }), n('b')], previous: ['a'], health: { a: { heartbeatAgeSeconds: 99, tunnelHealthy: false } } });
  assert.equal(r.decisions[0], 'a lost: not ready');
});

test('lost: no longer a candidate (removed from gateways, or node gone)', () => {
  const removed = run({ nodes: [n('a'), n('b')], gateways: ['b'], previous: ['a'] });
  assert.deepEqual(removed.decisions, ['a lost: no longer a candidate', 'b elected: most preferred healthy candidate']);
  const gone = run({ nodes: [n('b')], previous: ['a'] });
  assert.deepEqual(gone.decisions, ['a lost: no longer a candidate', 'b elected: most preferred healthy candidate']);
});

test('hysteresis: a new election skips candidates healthy for less than minHealthySeconds', () => {
  const r = run({ nodes: [n('a', { ready: false }), n('b', { readySince: RECENT }), n('c')], previous: ['a'] });
  assert.deepEqual(r.active, ['c']);
});

test('healthy-since is the latest of readySince, heartbeatSince and lastUnhealthy', () => {
  for (const h of [{ heartbeatSince: RECENT }, { lastUnhealthy: RECENT }]) {
    const r = run({ nodes: [n('a'), n('b')], health: { a: h } });
    assert.deepEqual(r.active, ['b'], JSON.stringify(h));
  }
});

test('availability beats hysteresis: no mature candidate and no healthy active -> most preferred healthy', () => {
  const r = run({ nodes: [n('a', { ready: false }), n('b', { readySince: RECENT }), n('c', { readySince: RECENT })], previous: ['a'] });
  assert.deepEqual(r.active, ['b']);
  assert.deepEqual(r.decisions, ['a lost: not ready', `b ${REASONS.electedForAvailability(30)}`]);
  const fresh = run({ nodes: [n('a', { readySince: RECENT })] });
  assert.deepEqual(fresh.active, ['a'], 'also on a first election');
});

test('no healthy candidate: activeEndpoints empty, error finding', () => {
  const r = run({ nodes: [n('a', { ready: false }), n('b', { ready: false })], gateways: ['a', 'b'], previous: ['a'] });
  assert.deepEqual(r.active, []);
  assert.deepEqual(r.decisions, ['a lost: not ready']);
  assert.deepEqual(r.findings, ['no-healthy-candidate']);
  assert.equal(r.gw.metadata.annotations?.['corvid.dev/election'], undefined);
});

test('no candidate at all: error finding', () => {
  const r = run({ nodes: [n('x')], gateways: [] });
  assert.deepEqual(r.active, []);
  assert.deepEqual(r.findings, ['no-candidate']);
});

test('preemption: back to a more preferred node healthy for minHealthySeconds', () => {
  const r = run({ nodes: [n('a'), n('b')], previous: ['b'], election: { preempt: true } });
  assert.deepEqual(r.active, ['a']);
  assert.deepEqual(r.decisions, ['b preempted: a is more preferred and healthy for 30s', 'a elected: most preferred healthy candidate']);
  assert.deepEqual(r.kinds, ['preempted', 'elected']);
});

test('preemption waits until the preferred node is mature', () => {
  const r = run({ nodes: [n('a', { readySince: RECENT }), n('b')], previous: ['b'], election: { preempt: true } });
  assert.deepEqual(r.active, ['b']);
  assert.deepEqual(r.decisions, []);
});

test('preemption waits for the most preferred healthy node instead of hopping through intermediate ones', () => {
  const r = run({ nodes: [n('a', { readySince: RECENT }), n('b'), n('c')], previous: ['c'], election: { preempt: true } });
  assert.deepEqual(r.active, ['c']);
});

test('preemption skips unhealthy and drained better nodes', () => {
  const r = run({ nodes: [n('a', { drained: true }), n('b'), n('c')], previous: ['c'], election: { preempt: true } });
  assert.deepEqual(r.active, ['b']);
});

test('sticky: false behaves as preempt: true', () => {
  const r = run({ nodes: [n('a'), n('b')], previous: ['b'], election: { sticky: false } });
  assert.deepEqual(r.active, ['a']);
  assert.deepEqual(r.kinds, ['preempted', 'elected']);
});

test('drain: the active endpoint is handed over to another healthy candidate', () => {
  const r = run({ nodes: [n('a', { drained: true }), n('b')], previous: ['a'] });
  assert.deepEqual(r.active, ['b']);
  assert.deepEqual(r.decisions, ['a handed-over: drained', 'b elected: most preferred healthy candidate']);
  assert.deepEqual(r.kinds, ['handed-over', 'elected']);
});

test('drain: hands over even to a candidate healthy for less than minHealthySeconds', () => {
  const r = run({ nodes: [n('a', { drained: true }), n('b', { readySince: RECENT })], previous: ['a'] });
  assert.deepEqual(r.active, ['b']);
  assert.deepEqual(r.decisions, ['a handed-over: drained', `b ${REASONS.electedForHandover(30)}`]);
});

test('drain: with no other healthy candidate the drained gateway stays, with a finding', () => {
  const r = run({ nodes: [n('a', { drained: true }), n('b', { ready: false })], gateways: ['a', 'b'], previous: ['a'] });
  assert.deepEqual(r.active, ['a']);
  assert.deepEqual(r.decisions, []);
  assert.deepEqual(r.findings, ['drained-gateway-kept']);
  assert.deepEqual(r.election, { a: REASONS.keptDrained });
});

test('an agent that asks to hand over (its charon restarted) is drained by its own word: handed over if it can be, kept if not', () => {
  const why = 'charon restarted; its tunnels to edge wait for those peers to initiate again';
  const h = { a: { heartbeatAgeSeconds: 0.2, handoverWanted: why } };
  const r = run({ nodes: [n('a'), n('b', { readySince: RECENT })], previous: ['a'], health: h });
  assert.deepEqual(r.active, ['b'], 'a standby still maturing takes it, as for a drain');
  assert.deepEqual(r.decisions, [`a ${REASONS.handedOverAsked(why)}`, `b ${REASONS.electedForHandover(30)}`]);
  assert.deepEqual(r.kinds, ['handed-over', 'elected']);
  const alone = run({ nodes: [n('a'), n('b', { ready: false })], gateways: ['a', 'b'], previous: ['a'], health: h });
  assert.deepEqual(alone.active, ['a'], 'nothing better: it stays (its peers come back to it by themselves)');
  assert.deepEqual(alone.findings, [], 'no finding: the request ends by itself');
  assert.deepEqual(alone.election, { a: REASONS.keptAsked });
  const later = run({ nodes: [n('a'), n('b', { ready: false })], gateways: ['a', 'b'], previous: ['a'], previousElection: { a: REASONS.keptAsked } });
  assert.deepEqual(later.election, { a: REASONS.kept }, 'once it no longer asks, a plain kept reason');
  const standby = run({ nodes: [n('a'), n('b')], previous: [], health: h });
  assert.deepEqual(standby.active, ['b'], 'never newly elected while it asks');
  const off = run({ nodes: [n('a'), n('b')], previous: ['a'], health: h, election: { heartbeatTimeoutSeconds: 0 } });
  assert.deepEqual(off.active, ['a'], 'a disabled heartbeat check ignores what the heartbeat says');
  const down = run({ nodes: [n('a'), n('b')], previous: ['a'], health: { a: { heartbeatAgeSeconds: 0.2, handoverWanted: why, datapathDown: 'x' } } });
  assert.deepEqual(down.decisions, ['a lost: datapath down', 'b elected: most preferred healthy candidate'], 'cannot forward outranks the request');
});

test('a drained node is never newly elected', () => {
  const r = run({ nodes: [n('a', { drained: true }), n('b')] });
  assert.deepEqual(r.active, ['b']);
  const only = run({ nodes: [n('a', { drained: true })] });
  assert.deepEqual(only.active, []);
});

test('an undrained gateway that was kept while drained gets a plain kept reason', () => {
  const r = run({ nodes: [n('a')], previous: ['a'], previousElection: { a: REASONS.keptDrained } });
  assert.deepEqual(r.election, { a: REASONS.kept });
});

test('replicas 2: two active endpoints; tunnelConfig says 1 for upstream, corvid.dev/replicas says 2', () => {
  const r = run({ nodes: [n('a'), n('b'), n('c')], election: { replicas: 2 } });
  assert.deepEqual(r.active, ['a', 'b']);
  assert.deepEqual(r.gw.spec.tunnelConfig, { Replicas: 1 });
  assert.equal(r.gw.metadata.annotations?.['corvid.dev/replicas'], '2');
  const one = run({ nodes: [n('a')] });
  assert.equal(one.gw.metadata.annotations?.['corvid.dev/replicas'], undefined);
});

test('replicas 2: a drained active with another active and no replacement is dropped', () => {
  const r = run({ nodes: [n('a', { drained: true }), n('b')], gateways: ['a', 'b'], previous: ['a', 'b'], election: { replicas: 2 } });
  assert.deepEqual(r.active, ['b']);
  assert.deepEqual(r.decisions, ['a lost: drained']);
});

test('replicas 2: only a missing slot is filled; sticky endpoints stay', () => {
  const r = run({ nodes: [n('a'), n('b'), n('c', { ready: false })], previous: ['b', 'c'], election: { replicas: 2 } });
  assert.deepEqual(r.active, ['a', 'b']);
  assert.deepEqual(r.decisions, ['c lost: not ready', 'a elected: most preferred healthy candidate']);
});

test('more kept endpoints than replicas: the most preferred survive (not random)', () => {
  const r = run({ nodes: [n('a'), n('b'), n('c')], previous: ['c', 'b'] });
  assert.deepEqual(r.active, ['b']);
  assert.deepEqual(r.decisions, [`c ${REASONS.lostOverReplicas(1)}`]);
});

test('duplicate previous active endpoints are counted once', () => {
  const r = run({ nodes: [n('a'), n('b')], previous: ['b', 'b'] });
  assert.deepEqual(r.active, ['b']);
  assert.deepEqual(r.decisions, []);
});

test('electPool directly: replicas 2 with preemption pairs the worst displaced with the best newcomer', () => {
  const c = (node: string, rank: number, o: Partial<CandidateState> = {}): CandidateState => ({ node, rank, drained: false, healthyForSeconds: 3600, ...o });
  const settings: ElectionSettings = { ...DEFAULT_ELECTION, replicas: 2, preempt: true };
  const r = electPool({ pool: P, candidates: [c('a', 0), c('b', 1), c('c', 2), c('d', 3)], previousActive: ['c', 'd'], previousReasons: {}, settings });
  assert.deepEqual(r.active, ['a', 'b']);
  assert.deepEqual(
    r.decisions.map((d) => `${d.node} ${d.reason}`),
    [
      'd preempted: a is more preferred and healthy for 30s',
      'c preempted: b is more preferred and healthy for 30s',
      'a elected: most preferred healthy candidate',
      'b elected: most preferred healthy candidate',
    ],
  );
});

test('now is the only clock: the same candidate is immature at one now and mature later', () => {
  const t = topology([pool(P, ['a', 'b'])]);
  const nodes = [n('a', { readySince: RECENT }), n('b', { ready: false })];
  assert.deepEqual(plan(input(t, nodes, { previous: [live(['b'])] })).decisions.map((d) => d.reason)[1], REASONS.electedForAvailability(30));
  const later = plan(input(t, nodes, { previous: [live(['b'])], now: '2026-01-01T01:01:00Z' }));
  assert.deepEqual(later.decisions.map((d) => d.reason)[1], REASONS.elected);
  assert.equal(NOW, '2026-01-01T01:00:00Z');
});

// ---------------------------------------------------------------- fail-static (a site cut off from the API server)

const EXPIRED: CandidateHealth = { heartbeatAgeSeconds: 40 };

test('fail-static: every candidate out of the API\'s reach while a peer reaches the pool -> the active endpoint stays, unchanged', () => {
  const r = run({ nodes: [n('a'), n('b')], gateways: ['a', 'b'], previous: ['a'], previousElection: { a: REASONS.elected }, health: { a: EXPIRED, b: EXPIRED }, reachedPools: [P] });
  assert.deepEqual(r.active, ['a']);
  assert.deepEqual(r.decisions, [`a ${REASONS.keptCutOff}`]);
  assert.deepEqual(r.kinds, ['kept']);
  assert.deepEqual(r.election, { a: REASONS.elected }, 'the annotation is unchanged: no Gateway write about it');
  // Ready Unknown (the node controller lost the kubelet, 40 s into a partition) is out of reach too.
  const unknown = run({ nodes: [n('a', { ready: false, readyUnknown: true }), n('b', { ready: false, readyUnknown: true })], gateways: ['a', 'b'], previous: ['a'], health: { a: EXPIRED, b: EXPIRED }, reachedPools: [P] });
  assert.deepEqual(unknown.active, ['a']);
});

test('fail-static does not hold: no peer reaches the pool, a standby is healthy, or a candidate is known down', () => {
  const base = { nodes: [n('a'), n('b')], gateways: ['a', 'b'], previous: ['a'] };
  const unreached = run({ ...base, health: { a: EXPIRED, b: EXPIRED }, reachedPools: ['other'] });
  assert.deepEqual(unreached.active, [], 'nobody reports a tunnel to it: the pool is gone, not cut off');
  assert.deepEqual(unreached.decisions, ['a lost: heartbeat expired']);
  // A node died while its standby still talks to the API server: a failover, whatever a peer (or a liar) reports.
  const died = run({ ...base, health: { a: EXPIRED }, reachedPools: [P] });
  assert.deepEqual(died.active, ['b']);
  assert.deepEqual(died.decisions, ['a lost: heartbeat expired', 'b elected: most preferred healthy candidate']);
  // A kubelet that reports NotReady (Ready False) is in touch: the node is known down.
  const notReady = run({ ...base, nodes: [n('a', { ready: false }), n('b')], health: { b: EXPIRED }, reachedPools: [P] });
  assert.deepEqual(notReady.active, []);
  assert.deepEqual(notReady.decisions, ['a lost: not ready']);
  // Ready Unknown alone, the standby healthy: an unreachable node, and a failover.
  const unreachable = run({ ...base, nodes: [n('a', { ready: false, readyUnknown: true }), n('b')], reachedPools: [P] });
  assert.deepEqual(unreachable.decisions, ['a lost: node unreachable', 'b elected: most preferred healthy candidate']);
});

test('fail-static: a standby cut off at the same moment expires a moment later; one that renews after the active fell silent is a live link', () => {
  const base = { nodes: [n('a'), n('b')], gateways: ['a', 'b'], previous: ['a'], reachedPools: [P] };
  // Timeout 3 s. a renewed last 3.5 s ago (expired); b 2.6 s ago: its last renewal came 0.9 s after a's, as a renewal
  // interval apart when both lost the API at once. Not a live link: a stays, b is not elected.
  const together = run({ ...base, health: { a: { heartbeatAgeSeconds: 3.5 }, b: { heartbeatAgeSeconds: 2.6 } } });
  assert.deepEqual(together.active, ['a']);
  assert.deepEqual(together.decisions, [`a ${REASONS.keptCutOff}`]);
  // b renewed 0.5 s ago, 3 s after a's last renewal: b's link to the API server works, a is dead to it: failover.
  const alive = run({ ...base, health: { a: { heartbeatAgeSeconds: 3.5 }, b: { heartbeatAgeSeconds: 0.5 } } });
  assert.deepEqual(alive.active, ['b']);
  assert.deepEqual(alive.decisions, ['a lost: heartbeat expired', 'b elected: most preferred healthy candidate']);
  // A disabled heartbeat check (timeout 0) has no fail-static either: Ready alone decides, as before.
  const off = run({ ...base, nodes: [n('a', { ready: false, readyUnknown: true }), n('b', { ready: false, readyUnknown: true })], election: { heartbeatTimeoutSeconds: 0 } });
  assert.deepEqual(off.active, []);
});

test('fail-static: when the partition heals, a standby back first waits half a timeout for the active endpoint to be back too', () => {
  const base = { nodes: [n('a'), n('b')], gateways: ['a', 'b'], previous: ['a'], previousElection: { a: REASONS.elected }, reachedPools: [P] };
  // Timeout 3 s. a is still silent (its last renewal 120 s ago); b renewed 0.5 s ago, unhealthy (expired) until 1 s
  // ago: the whole site was cut off, b's agent simply renewed first. a stays, unchanged.
  const back = run({ ...base, health: { a: { heartbeatAgeSeconds: 120 }, b: { heartbeatAgeSeconds: 0.5, lastUnhealthy: '2026-01-01T00:59:59Z' } } });
  assert.deepEqual(back.active, ['a']);
  assert.deepEqual(back.decisions, [`a ${REASONS.keptCutOff}`]);
  assert.deepEqual(back.election, { a: REASONS.elected }, 'no Gateway write');
  // a is back a moment later: kept, as ever.
  const both = run({ ...base, health: { a: { heartbeatAgeSeconds: 0.2, lastUnhealthy: '2026-01-01T00:59:59.5Z' }, b: { heartbeatAgeSeconds: 0.5, lastUnhealthy: '2026-01-01T00:59:59Z' } } });
  assert.deepEqual(both.active, ['a']);
  assert.deepEqual(both.kinds, []);
  // a is not back half a timeout after b: a is dead, not cut off, and b takes the role.
  const dead = run({ ...base, health: { a: { heartbeatAgeSeconds: 122 }, b: { heartbeatAgeSeconds: 0.5, lastUnhealthy: '2026-01-01T00:59:58Z' } } });
  assert.deepEqual(dead.active, ['b']);
  assert.deepEqual(dead.decisions.slice(0, 1), ['a lost: heartbeat expired']);
});

test('fail-static keeps, it never elects: a cut-off pool without an active endpoint stays without one', () => {
  const r = run({ nodes: [n('a'), n('b')], gateways: ['a', 'b'], previous: [], health: { a: EXPIRED, b: EXPIRED }, reachedPools: [P] });
  assert.deepEqual(r.active, []);
});

test('requireHeartbeat: a candidate whose agent never wrote a heartbeat is never elected; an active one loses its role', () => {
  const t = topology([pool(P, ['a', 'b'])]);
  const nodes = [n('a'), n('b')];
  const none = plan(input(t, nodes, { health: {}, requireHeartbeat: true }));
  assert.deepEqual(none.gateways[0].status?.activeEndpoints, []);
  assert.match(none.findings.find((f) => f.code === 'no-healthy-candidate')!.message, /a: no heartbeat, b: no heartbeat/);
  // b's agent shows itself (15 s ago: past the first-start wait for a): elected, for availability (live for less
  // than minHealthy).
  const one = plan(input(t, nodes, { health: { b: { heartbeatAgeSeconds: 1, heartbeatSince: '2026-01-01T00:59:45Z' } }, requireHeartbeat: true }));
  assert.deepEqual(one.gateways[0].status?.activeEndpoints?.map((e) => e.nodeName), ['b']);
  const lost = plan(input(t, nodes, { health: {}, requireHeartbeat: true, previous: [live(['b'])] }));
  assert.ok(lost.decisions.some((d) => d.node === 'b' && d.reason === REASONS.lost('no heartbeat')));
  // Without the requirement (an offline plan with no Lease data), Ready alone elects, as before.
  assert.deepEqual(plan(input(t, nodes, { health: {} })).gateways[0].status?.activeEndpoints?.map((e) => e.nodeName), ['a']);
});

test('an adopted active gateway whose agent has not shown itself (Raven\'s, at a migration) is awaited, then elected first', () => {
  const t = topology([pool(P, ['a', 'b'])]);
  const nodes = [n('a'), n('b')];
  const since = (s: number) => new Date(Date.parse(NOW) - s * 1000).toISOString().replace('.000Z', 'Z');
  const shown = (s: number): CandidateHealth => ({ heartbeatAgeSeconds: 0, heartbeatSince: since(s) });
  const round = (health: Record<string, CandidateHealth>, previous: Gateway) => {
    const gw = plan(input(t, nodes, { health, requireHeartbeat: true, previous: [previous] })).gateways[0];
    return { active: (gw.status?.activeEndpoints ?? []).map((e) => e.nodeName), election: JSON.parse(gw.metadata.annotations?.['corvid.dev/election'] ?? '{}') as Record<string, string> };
  };
  // Adopted as Raven left it: b active, no agent of Corvid's has shown itself. Nobody is active (no live agent), and b
  // is remembered.
  const adopted = round({}, live(['b']));
  assert.deepEqual(adopted, { active: [], election: { b: REASONS.awaited } });
  const after = live([], adopted.election);
  // a shows itself first: it waits for b as for a more preferred candidate.
  assert.deepEqual(round({ a: shown(1) }, after), { active: [], election: { b: REASONS.awaited } });
  // b shows itself too: b is elected, though a is more preferred.
  assert.deepEqual(round({ a: shown(2), b: shown(1) }, after).active, ['b']);
  assert.deepEqual(round({ b: shown(1) }, after).active, ['b']);
  // b never shows: a after the grace, and b is forgotten.
  assert.deepEqual(round({ a: shown(FIRST_SHOW_GRACE_SECONDS + 1) }, after), { active: ['a'], election: { a: REASONS.electedForAvailability(30) } });
  // Only an agent that never showed itself is awaited: a dead active gateway (heartbeat expired) is replaced at once.
  assert.deepEqual(round({ a: shown(1), b: { heartbeatAgeSeconds: 100, heartbeatSince: since(200) } }, live(['b'])).active, ['a']);
  // And a healthy previous active endpoint is simply kept, as always.
  assert.deepEqual(round({ a: shown(100), b: shown(100) }, live(['b'])).active, ['b']);
});

test('first start: a candidate that has just shown itself waits briefly for a more preferred one whose agent has not yet', () => {
  const t = topology([pool(P, ['a', 'b'])]);
  const nodes = [n('a'), n('b')];
  const since = (s: number) => new Date(Date.parse(NOW) - s * 1000).toISOString().replace('.000Z', 'Z');
  const b = (s: number): CandidateHealth => ({ heartbeatAgeSeconds: 0, heartbeatSince: since(s) });
  const active = (health: Record<string, CandidateHealth>, previous?: string[]) =>
    (plan(input(t, nodes, { health, requireHeartbeat: true, ...(previous ? { previous: [live(previous)] } : {}) })).gateways[0].status?.activeEndpoints ?? []).map((e) => e.nodeName);
  assert.deepEqual(active({ b: b(2) }), [], 'b waits for a (Ready, agent not shown yet)');
  assert.deepEqual(active({ a: b(1), b: b(2) }), ['a'], 'a showed itself: the preferred gateway is elected');
  assert.deepEqual(active({ b: b(FIRST_SHOW_GRACE_SECONDS + 1) }), ['b'], 'a never shows: b after the grace');
  // Not a first start: a dead preferred candidate (its heartbeat expired) makes nobody wait.
  assert.deepEqual(active({ a: { heartbeatAgeSeconds: 100, heartbeatSince: since(200) }, b: b(2) }, ['a']), ['b']);
});
