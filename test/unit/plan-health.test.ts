import { test } from 'node:test';
import assert from 'node:assert/strict';
import { deriveHealth, emptyHealthMemory, poolExplainsOutage, tunnelGraceSeconds, UPLINK_SUSPECT_DAMPING_SECONDS, type HeartbeatLease } from '../../src/plan/health.ts';

const NOW = '2026-01-01T01:00:00Z';

test('heartbeat age and since come from renewTime and acquireTime', () => {
  const { health } = deriveHealth(
    [{ node: 'a', acquireTime: '2026-01-01T00:00:00Z', renewTime: '2026-01-01T00:59:58Z', leaseDurationSeconds: 3 }],
    NOW,
    emptyHealthMemory(),
  );
  assert.deepEqual(health.a, { heartbeatAgeSeconds: 2, heartbeatSince: '2026-01-01T00:00:00Z' });
});

test('a stale heartbeat is remembered as lastUnhealthy, and kept after recovery', () => {
  const stale = deriveHealth([{ node: 'a', renewTime: '2026-01-01T00:59:50Z' }], NOW, emptyHealthMemory(), { heartbeatTimeoutSeconds: 3 });
  assert.equal(stale.health.a.lastUnhealthy, NOW);
  assert.equal(stale.memory.lastUnhealthy.a, NOW);
  const later = '2026-01-01T01:00:10Z';
  const fresh = deriveHealth([{ node: 'a', renewTime: '2026-01-01T01:00:09Z', acquireTime: '2026-01-01T01:00:05Z' }], later, stale.memory, { heartbeatTimeoutSeconds: 3 });
  assert.equal(fresh.health.a.lastUnhealthy, NOW);
  assert.equal(fresh.health.a.heartbeatAgeSeconds, 1);
});

test('the Lease duration is the timeout when none is given', () => {
  const r = deriveHealth([{ node: 'a', renewTime: '2026-01-01T00:59:50Z', leaseDurationSeconds: 5 }], NOW, emptyHealthMemory());
  assert.equal(r.health.a.lastUnhealthy, NOW);
  const ok = deriveHealth([{ node: 'a', renewTime: '2026-01-01T00:59:50Z', leaseDurationSeconds: 15 }], NOW, emptyHealthMemory());
  assert.equal(ok.health.a.lastUnhealthy, undefined);
});

// Tunnel health. With heartbeatTimeoutSeconds 3 the grace is max(10 s, 3 × 3 s) = 10 s.
type Tunnels = Record<string, { up: boolean; since: string }>;
const T3 = { heartbeatTimeoutSeconds: 3 };
const at = (secondsBeforeNow: number) => new Date(Date.parse(NOW) - secondsBeforeNow * 1000).toISOString();
const down = (secondsBeforeNow: number) => ({ up: false, since: at(secondsBeforeNow) });
const up = (secondsBeforeNow: number) => ({ up: true, since: at(secondsBeforeNow) });
const hb = (node: string, tunnels?: Tunnels, renewedSecondsAgo = 0) => ({ node, renewTime: at(renewedSecondsAgo), ...(tunnels ? { tunnels } : {}) });
/** Another node whose tunnel is up: the network as a whole works (clause d). */
const witness = hb('w', { a: up(60) });

test('tunnel grace: max(10 s, min(3 × heartbeat timeout, 30 s)): longer than short timeouts, capped for long ones', () => {
  assert.equal(tunnelGraceSeconds(3), 10);
  assert.equal(tunnelGraceSeconds(2), 10);
  assert.equal(tunnelGraceSeconds(5), 15);
  assert.equal(tunnelGraceSeconds(undefined), 10);
  assert.equal(tunnelGraceSeconds(0), 10);
  for (const t of [0.5, 1, 3, 4, 9]) assert.ok(tunnelGraceSeconds(t) > t);
  // The default 40 s timeout (and anything longer): a dead uplink moves the pool within 30 s, not 2 minutes.
  assert.equal(tunnelGraceSeconds(40), 30);
  assert.equal(tunnelGraceSeconds(300), 30);
});

test('tunnels: all down for longer than the grace while another node has a tunnel up -> tunnelHealthy false', () => {
  const r = deriveHealth([hb('a', { b: down(60), c: down(120) }), witness], NOW, emptyHealthMemory(), T3);
  assert.equal(r.health.a.tunnelHealthy, false);
  assert.equal(r.health.a.lastUnhealthy, NOW);
  assert.equal(r.health.w.tunnelHealthy, true);
  assert.equal(r.health.w.lastUnhealthy, undefined);
});

test('tunnels (a): a Lease that reports no tunnels gives no tunnel signal', () => {
  const r = deriveHealth([hb('a', {}), hb('b'), witness], NOW, emptyHealthMemory(), T3);
  assert.equal(r.health.a.tunnelHealthy, undefined);
  assert.equal(r.health.b.tunnelHealthy, undefined);
});

test('tunnels (b): one tunnel up, or one down for less than the grace -> healthy', () => {
  const oneUp = deriveHealth([hb('a', { b: down(60), c: up(60) }), witness], NOW, emptyHealthMemory(), T3);
  assert.equal(oneUp.health.a.tunnelHealthy, true);
  const oneRecent = deriveHealth([hb('a', { b: down(60), c: down(9) }), witness], NOW, emptyHealthMemory(), T3);
  assert.equal(oneRecent.health.a.tunnelHealthy, true);
});

test('tunnels (b): down for longer than the heartbeat timeout but less than the grace -> healthy (the old 3 s rule)', () => {
  for (const s of [3.5, 4, 9.9]) {
    assert.equal(deriveHealth([hb('a', { b: down(s) }), witness], NOW, emptyHealthMemory(), T3).health.a.tunnelHealthy, true, `down ${s}s`);
  }
  // The boundary: down for exactly the grace counts.
  assert.equal(deriveHealth([hb('a', { b: down(10) }), witness], NOW, emptyHealthMemory(), T3).health.a.tunnelHealthy, false);
  // A longer timeout stretches the grace: 3 × 5 s.
  const t5 = { heartbeatTimeoutSeconds: 5 };
  assert.equal(deriveHealth([hb('a', { b: down(14) }), witness], NOW, emptyHealthMemory(), t5).health.a.tunnelHealthy, true);
  assert.equal(deriveHealth([hb('a', { b: down(15) }), witness], NOW, emptyHealthMemory(), t5).health.a.tunnelHealthy, false);
});

test('tunnels (c): freshly elected — conns loaded down and unchanged since — counts only after the grace', () => {
  // The agent started 4 s ago (acquireTime) and loaded its conns then: all down since then.
  const fresh = { node: 'a', acquireTime: at(4), renewTime: at(0), tunnels: { b: down(4), c: down(4) } };
  assert.equal(deriveHealth([fresh, witness], NOW, emptyHealthMemory(), T3).health.a.tunnelHealthy, true);
  // Nothing changed for 11 s: now it counts.
  const later = new Date(Date.parse(NOW) + 7000).toISOString();
  const still = { ...fresh, renewTime: later };
  const w = { ...witness, renewTime: later };
  assert.equal(deriveHealth([still, w], later, emptyHealthMemory(), T3).health.a.tunnelHealthy, false);
  // A `since` that cannot be read (or lies in the future) is not known to be old: not blamed.
  assert.equal(deriveHealth([hb('a', { b: { up: false, since: 'garbage' } }), witness], NOW, emptyHealthMemory(), T3).health.a.tunnelHealthy, true);
  assert.equal(deriveHealth([hb('a', { b: { up: false, since: '' } }), witness], NOW, emptyHealthMemory(), T3).health.a.tunnelHealthy, true);
  assert.equal(deriveHealth([hb('a', { b: down(-30) }), witness], NOW, emptyHealthMemory(), T3).health.a.tunnelHealthy, true);
});

test('tunnels (d): nobody is blamed when no other node reports a tunnel up (the network is down as a whole)', () => {
  // Alone.
  assert.equal(deriveHealth([hb('a', { b: down(60) })], NOW, emptyHealthMemory(), T3).health.a.tunnelHealthy, true);
  // Everyone's tunnels down for long: nobody blamed.
  const all = deriveHealth([hb('a', { b: down(60) }), hb('b', { a: down(60) }), hb('c', {})], NOW, emptyHealthMemory(), T3);
  assert.deepEqual([all.health.a.tunnelHealthy, all.health.b.tunnelHealthy, all.health.c.tunnelHealthy], [true, true, undefined]);
  assert.deepEqual(all.memory, { lastUnhealthy: {}, uplinkSuspected: {} });
  // The only "up" report comes from a stale Lease (its agent stopped renewing): it does not count.
  const staleWitness = hb('w', { a: up(60) }, 30);
  const r = deriveHealth([hb('a', { b: down(60) }), staleWitness], NOW, emptyHealthMemory(), T3);
  assert.equal(r.health.a.tunnelHealthy, true);
  assert.equal(r.health.w.lastUnhealthy, NOW, 'the stale witness itself is unhealthy (heartbeat)');
});

test('cascade: a new responder gateway whose tunnels are down while no one else has tunnels up is not blamed', () => {
  // The e2e scenario: cloud-1 was just elected (responder only, behind no NAT; the edges reach it). It loaded its
  // conns and reports them down; the edges' tunnels went down with the previous cloud gateway. Even after the
  // heartbeat timeout (and after the grace), with nobody up, nobody is blamed.
  for (const s of [3.5, 5, 30]) {
    const r = deriveHealth(
      [
        { node: 'cloud-1', acquireTime: at(s), renewTime: at(0), tunnels: { 'edge-a': down(s), 'edge-b': down(s) } },
        hb('edge-a-1', { cloud: down(s + 1) }),
        hb('edge-b-1', { cloud: down(s + 1) }),
      ],
      NOW,
      emptyHealthMemory(),
      T3,
    );
    for (const n of ['cloud-1', 'edge-a-1', 'edge-b-1']) assert.equal(r.health[n].tunnelHealthy, true, `${n} after ${s}s`);
    assert.deepEqual(r.memory, { lastUnhealthy: {}, uplinkSuspected: {} });
  }
});

// The e2e fabric's shape: cloud is the hub, both edges reach each other through it.
const STAR = { ...T3, candidatePools: { 'cloud-1': 'cloud', 'cloud-2': 'cloud', 'edge-a-1': 'edge-a', 'edge-a-2': 'edge-a', 'edge-b-1': 'edge-b', 'edge-b-2': 'edge-b' } };
const hubUplinkDown = (active: string, standby: string, downFor = 60) => [
  hb(active, { 'edge-a': down(downFor), 'edge-b': down(downFor) }),
  hb(standby),
  hb('edge-a-1', { cloud: down(downFor - 5) }),
  hb('edge-a-2'),
  hb('edge-b-1', { cloud: down(downFor - 5) }),
];

test("tunnels (d'): the hub's active gateway lost its uplink: nobody has a tunnel up, every down tunnel leads to its pool: it alone is blamed", () => {
  const r = deriveHealth(hubUplinkDown('cloud-1', 'cloud-2'), NOW, emptyHealthMemory(), STAR);
  assert.equal(r.health['cloud-1'].tunnelHealthy, false);
  assert.equal(r.health['edge-a-1'].tunnelHealthy, true, 'an edge is not blamed: the other edge reports cloud down, not edge-a');
  assert.equal(r.health['edge-b-1'].tunnelHealthy, true);
  assert.deepEqual(r.memory.uplinkSuspected, { 'cloud-1': NOW });
  // Within the grace (the hub was just elected, or its tunnels just went down): nobody.
  const recent = deriveHealth(hubUplinkDown('cloud-1', 'cloud-2', 9), NOW, emptyHealthMemory(), STAR);
  assert.equal(recent.health['cloud-1'].tunnelHealthy, true);
  // Without the pools (no live Gateways known), clause (d) alone: nobody.
  assert.equal(deriveHealth(hubUplinkDown('cloud-1', 'cloud-2'), NOW, emptyHealthMemory(), T3).health['cloud-1'].tunnelHealthy, true);
});

test("tunnels (d'): when the successor reaches nobody either, the pool's uplinks are down: it is not blamed until the damping has passed", () => {
  const first = deriveHealth(hubUplinkDown('cloud-1', 'cloud-2'), NOW, emptyHealthMemory(), STAR);
  // cloud-2 took over; 100 s later its tunnels have been down past the grace too.
  const later = (s: number) => new Date(Date.parse(NOW) + s * 1000).toISOString();
  const leases = (nowS: number): HeartbeatLease[] => [
    { node: 'cloud-1', renewTime: later(nowS) },
    { node: 'cloud-2', renewTime: later(nowS), tunnels: { 'edge-a': { up: false, since: later(nowS - 60) }, 'edge-b': { up: false, since: later(nowS - 60) } } },
    { node: 'edge-a-1', renewTime: later(nowS), tunnels: { cloud: { up: false, since: later(nowS - 70) } } },
  ];
  const damped = deriveHealth(leases(100), later(100), first.memory, STAR);
  assert.equal(damped.health['cloud-2'].tunnelHealthy, true);
  assert.deepEqual(damped.memory.uplinkSuspected, { 'cloud-1': NOW }, 'cloud-1 stays remembered within the window');
  const after = deriveHealth(leases(UPLINK_SUSPECT_DAMPING_SECONDS + 1), later(UPLINK_SUSPECT_DAMPING_SECONDS + 1), damped.memory, STAR);
  assert.equal(after.health['cloud-2'].tunnelHealthy, false, 'the window has passed: blamed, one switch more');
  assert.deepEqual(Object.keys(after.memory.uplinkSuspected ?? {}), ['cloud-2']);
});

test("tunnels (d'): no blame for a network down as a whole (a mesh), with no live candidate to take over, or on stale reports", () => {
  const mesh = { ...T3, candidatePools: { a1: 'a', a2: 'a', b1: 'b', b2: 'b', c1: 'c', c2: 'c' } };
  const r = deriveHealth([hb('a1', { b: down(60), c: down(60) }), hb('a2'), hb('b1', { a: down(60), c: down(60) }), hb('c1', { a: down(60), b: down(60) })], NOW, emptyHealthMemory(), mesh);
  for (const n of ['a1', 'b1', 'c1']) assert.equal(r.health[n].tunnelHealthy, true, n);
  // The standby's heartbeat expired: nobody could take over.
  const noStandby = deriveHealth([...hubUplinkDown('cloud-1', 'cloud-2').filter((l) => l.node !== 'cloud-2'), hb('cloud-2', undefined, 30)], NOW, emptyHealthMemory(), STAR);
  assert.equal(noStandby.health['cloud-1'].tunnelHealthy, true);
  // The edges' Leases are stale (their agents cannot reach the API server): no evidence from them.
  const staleEdges = deriveHealth([hb('cloud-1', { 'edge-a': down(60), 'edge-b': down(60) }), hb('cloud-2'), hb('edge-a-1', { cloud: down(55) }, 30)], NOW, emptyHealthMemory(), STAR);
  assert.equal(staleEdges.health['cloud-1'].tunnelHealthy, true);
  // Two pools, each with a standby: either end explains a lone tunnel down, so both are blamed (one switch each).
  const pair = { ...T3, candidatePools: { a1: 'a', a2: 'a', b1: 'b', b2: 'b' } };
  const two = deriveHealth([hb('a1', { b: down(60) }), hb('a2'), hb('b1', { a: down(60) }), hb('b2')], NOW, emptyHealthMemory(), pair);
  assert.deepEqual([two.health.a1.tunnelHealthy, two.health.b1.tunnelHealthy], [false, false]);
});

test("poolExplainsOutage: every down tunnel other pools report leads to the pool, and one does", () => {
  assert.equal(poolExplainsOutage('cloud', [{ pool: 'edge-a', peers: ['cloud'] }, { pool: 'edge-b', peers: ['cloud'] }]), true);
  assert.equal(poolExplainsOutage('cloud', [{ pool: 'edge-a', peers: ['cloud', 'edge-b'] }]), false);
  assert.equal(poolExplainsOutage('cloud', [{ pool: 'cloud', peers: ['edge-a'] }, { pool: 'edge-a', peers: [] }]), false, 'its own pool and empty reports are no evidence');
  assert.equal(poolExplainsOutage('cloud', []), false);
});

test('cascade: all down for longer than the grace while others are up is blamed; the verdict clears when a tunnel comes up', () => {
  const leases = (aTunnels: Tunnels) => [hb('cloud-1', aTunnels), hb('cloud-2', { 'edge-a': up(120) }), hb('edge-a-1', { cloud: up(120) })];
  const blamed = deriveHealth(leases({ 'edge-a': down(11), 'edge-b': down(40) }), NOW, emptyHealthMemory(), T3);
  assert.equal(blamed.health['cloud-1'].tunnelHealthy, false);
  assert.equal(blamed.health['cloud-1'].lastUnhealthy, NOW);
  assert.equal(blamed.health['cloud-2'].tunnelHealthy, true);
  // One tunnel comes up a second later: tunnel-healthy again; lastUnhealthy is remembered (hysteresis).
  const later = new Date(Date.parse(NOW) + 1000).toISOString();
  const cleared = deriveHealth(
    [{ ...hb('cloud-1', { 'edge-a': { up: true, since: later }, 'edge-b': down(41) }), renewTime: later }, ...leases({}).slice(1)],
    later,
    blamed.memory,
    T3,
  );
  assert.equal(cleared.health['cloud-1'].tunnelHealthy, true);
  assert.equal(cleared.health['cloud-1'].lastUnhealthy, NOW);
});

test('tunnels: the verdict does not depend on the order of the Leases', () => {
  const ls = [hb('a', { b: down(60) }), hb('b', { a: up(60) }), hb('c', { a: down(5) }), hb('d', {})];
  const x = deriveHealth(ls, NOW, emptyHealthMemory(), T3);
  const y = deriveHealth([...ls].reverse(), NOW, emptyHealthMemory(), T3);
  assert.deepEqual(x, y);
  assert.equal(x.health.a.tunnelHealthy, false);
  assert.equal(x.health.c.tunnelHealthy, true);
});

test('a heartbeat timeout ≤ 0 is no timeout: the Lease duration applies (as the sync and the CLI pass it)', () => {
  const stale = { node: 'a', renewTime: at(20), leaseDurationSeconds: 15 };
  assert.deepEqual(
    deriveHealth([stale], NOW, emptyHealthMemory(), { heartbeatTimeoutSeconds: 0 }),
    deriveHealth([stale], NOW, emptyHealthMemory()),
  );
  assert.equal(deriveHealth([stale], NOW, emptyHealthMemory(), { heartbeatTimeoutSeconds: 0 }).health.a.lastUnhealthy, NOW);
  assert.equal(deriveHealth([{ ...stale, leaseDurationSeconds: 30 }], NOW, emptyHealthMemory(), { heartbeatTimeoutSeconds: 0 }).health.a.lastUnhealthy, undefined);
});

test('a Lease without times gives no heartbeat signal', () => {
  assert.deepEqual(deriveHealth([{ node: 'a' }], NOW, emptyHealthMemory(), { heartbeatTimeoutSeconds: 3 }).health.a, {});
});

test('memory forgets nodes without a Lease and is not mutated', () => {
  const memory = { lastUnhealthy: { gone: '2026-01-01T00:00:00Z', a: '2026-01-01T00:30:00Z' } };
  const r = deriveHealth([{ node: 'a', renewTime: NOW }], NOW, memory, { heartbeatTimeoutSeconds: 3 });
  assert.deepEqual(r.memory, { lastUnhealthy: { a: '2026-01-01T00:30:00Z' }, uplinkSuspected: {} });
  assert.deepEqual(memory.lastUnhealthy, { gone: '2026-01-01T00:00:00Z', a: '2026-01-01T00:30:00Z' });
});

test('two Leases for one node: the most recently renewed wins, whatever the order', () => {
  const older = { node: 'a', renewTime: '2026-01-01T00:50:00Z' };
  const newer = { node: 'a', renewTime: '2026-01-01T00:59:59Z' };
  const x = deriveHealth([older, newer], NOW, emptyHealthMemory(), { heartbeatTimeoutSeconds: 3 });
  const y = deriveHealth([newer, older], NOW, emptyHealthMemory(), { heartbeatTimeoutSeconds: 3 });
  assert.deepEqual(x, y);
  assert.equal(x.health.a.heartbeatAgeSeconds, 1);
});

test('a malformed now is a caller bug', () => {
  assert.throws(() => deriveHealth([], 'yesterday', emptyHealthMemory()), RangeError);
});

test('a released Lease (the agent stopped cleanly) is unhealthy at once, however fresh, and its tunnels do not count', () => {
  const fresh = '2026-01-01T00:59:59Z';
  const r = deriveHealth(
    [{ node: 'a', renewTime: fresh, leaseDurationSeconds: 3, released: true, tunnels: { b: { up: true, since: '2026-01-01T00:00:00Z' } } }, hb('c', { b: down(60) })],
    NOW,
    emptyHealthMemory(),
    T3,
  );
  assert.equal(r.health.a.released, true);
  assert.equal(r.health.a.lastUnhealthy, NOW);
  assert.equal(r.health.a.tunnelHealthy, undefined, 'a released Lease gives no tunnel verdict');
  // a's "up" no longer makes c's down tunnels blameworthy (clause d): nobody fresh reports a tunnel up.
  assert.equal(r.health.c.tunnelHealthy, true);
  const held = deriveHealth([{ node: 'a', renewTime: fresh, leaseDurationSeconds: 3 }], NOW, emptyHealthMemory(), T3);
  assert.equal(held.health.a.released, undefined);
  assert.equal(held.health.a.lastUnhealthy, undefined);
});

test('a fresh Lease whose agent asks to hand over passes the request on, healthy; a stale or released one says nothing', () => {
  const fresh = '2026-01-01T00:59:59Z';
  const asked = deriveHealth([{ node: 'a', renewTime: fresh, leaseDurationSeconds: 3, handoverWanted: 'charon restarted' }], NOW, emptyHealthMemory(), T3);
  assert.equal(asked.health.a.handoverWanted, 'charon restarted');
  assert.equal(asked.health.a.lastUnhealthy, undefined, 'not unhealthy: it forwards, and its maturity is not reset');
  const stale = deriveHealth([{ node: 'a', renewTime: '2026-01-01T00:50:00Z', leaseDurationSeconds: 3, handoverWanted: 'x' }], NOW, emptyHealthMemory(), T3);
  assert.equal(stale.health.a.handoverWanted, undefined);
  const released = deriveHealth([{ node: 'a', renewTime: fresh, leaseDurationSeconds: 3, released: true, handoverWanted: 'x' }], NOW, emptyHealthMemory(), T3);
  assert.equal(released.health.a.handoverWanted, undefined);
});

test('a fresh Lease whose agent says its node cannot forward is unhealthy at once; a stale or released one says nothing', () => {
  const fresh = '2026-01-01T00:59:59Z';
  const down = deriveHealth([{ node: 'a', renewTime: fresh, leaseDurationSeconds: 3, datapathDown: 'charon does not answer on its VICI socket' }], NOW, emptyHealthMemory(), T3);
  assert.equal(down.health.a.datapathDown, 'charon does not answer on its VICI socket');
  assert.equal(down.health.a.lastUnhealthy, NOW, 'remembered: maturity counts from here once it can forward again');
  const back = deriveHealth([{ node: 'a', renewTime: fresh, leaseDurationSeconds: 3 }], NOW, down.memory, T3);
  assert.equal(back.health.a.datapathDown, undefined);
  assert.equal(back.health.a.lastUnhealthy, NOW);
  const stale = deriveHealth([{ node: 'a', renewTime: '2026-01-01T00:50:00Z', leaseDurationSeconds: 3, datapathDown: 'x' }], NOW, emptyHealthMemory(), T3);
  assert.equal(stale.health.a.datapathDown, undefined, 'an expired heartbeat is unhealthy anyway; its last word is not carried');
  const released = deriveHealth([{ node: 'a', renewTime: fresh, leaseDurationSeconds: 3, released: true, datapathDown: 'x' }], NOW, emptyHealthMemory(), T3);
  assert.equal(released.health.a.datapathDown, undefined);
  assert.equal(released.health.a.released, true);
});

test('reachedPools: the pools a fresh Lease reports a tunnel up to; stale and released Leases are no evidence', () => {
  const fresh = '2026-01-01T00:59:59Z';
  const up = { up: true, since: '2026-01-01T00:00:00Z' };
  const r = deriveHealth(
    [
      { node: 'c1', renewTime: fresh, leaseDurationSeconds: 3, tunnels: { 'edge-a': up, 'edge-b': { up: false, since: '2026-01-01T00:00:00Z' } } },
      { node: 'c2', renewTime: '2026-01-01T00:50:00Z', leaseDurationSeconds: 3, tunnels: { 'edge-c': up } },
      { node: 'c3', renewTime: fresh, leaseDurationSeconds: 3, released: true, tunnels: { 'edge-d': up } },
      { node: 'c4', renewTime: fresh, leaseDurationSeconds: 3, tunnels: { 'edge-e': up } },
    ],
    NOW,
    emptyHealthMemory(),
    T3,
  );
  assert.deepEqual(r.reachedPools, ['edge-a', 'edge-e']);
});
