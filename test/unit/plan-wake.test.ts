// When the sync plans again with no event (src/plan/wake.ts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { nextWake } from '../../src/plan/wake.ts';

test('nextWake: the earliest heartbeat expiry or maturity after now', () => {
  const now = Date.parse('2026-01-01T00:00:10Z');
  const hb = [
    { node: 'a', renewTime: '2026-01-01T00:00:09Z' },
    { node: 'b', renewTime: '2026-01-01T00:00:05Z' }, // already expired: no wake
  ];
  assert.equal(nextWake(now, hb, {}, [], 2, 0), Date.parse('2026-01-01T00:00:11Z') + 1);
  const nodes = [{ name: 'a', labels: {}, ready: true, readySince: '2026-01-01T00:00:09.500Z', podCIDRs: [], unschedulable: false, drained: false }];
  assert.equal(nextWake(now, [], {}, nodes, 2, 1), Date.parse('2026-01-01T00:00:10.500Z'));
  assert.equal(nextWake(now, [], {}, [], 2, 0), undefined);
});

test('nextWake: a tunnel down wakes at since + the tunnel grace (max(10 s, min(3 × timeout, 30 s))), as deriveHealth decides', () => {
  const now = Date.parse('2026-01-01T00:00:10Z');
  const since = '2026-01-01T00:00:08Z';
  const down = [{ node: 'a', tunnels: { b: { up: false, since } } }]; // no renewTime: only the tunnel can wake
  assert.equal(nextWake(now, down, {}, [], 2, 0), Date.parse(since) + 10_000);
  assert.equal(nextWake(now, down, {}, [], 5, 0), Date.parse(since) + 15_000);
  assert.equal(nextWake(now, down, {}, [], 0, 0), Date.parse(since) + 10_000, 'no timeout at all: the minimum grace');
  assert.equal(nextWake(now, down, {}, [], 40, 0), Date.parse(since) + 30_000, 'the default 40 s timeout: the capped grace');
  assert.equal(nextWake(now, [{ node: 'a', tunnels: { b: { up: true, since } } }], {}, [], 2, 0), undefined);
});

test('nextWake: a standby back from a partition becomes a live link half a heartbeat timeout after it is healthy again', () => {
  const now = Date.parse('2026-01-01T00:00:10Z');
  // b was unhealthy until 9 s (its heartbeat had expired with its whole pool's); timeout 40 s: fail-static waits for
  // the active endpoint until 9 s + 20 s, and the sync must plan again then, with no event to wake it.
  const health = { b: { heartbeatAgeSeconds: 1, heartbeatSince: '2025-12-31T23:00:00Z', lastUnhealthy: '2026-01-01T00:00:09Z' } };
  assert.equal(nextWake(now, [], health, [], 40, 0), Date.parse('2026-01-01T00:00:29Z'));
  // Heartbeat checks off: no fail-static, no such boundary.
  assert.equal(nextWake(now, [], health, [], 0, 0), undefined);
});
