import { test } from 'node:test';
import assert from 'node:assert/strict';
import { deriveHealth, emptyHealthMemory } from '../../src/plan/health.ts';

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

test('tunnels: all down for longer than the timeout -> tunnelHealthy false', () => {
  const opts = { heartbeatTimeoutSeconds: 3 };
  const lease = (tunnels: Record<string, { up: boolean; since: string }>) => [{ node: 'a', renewTime: NOW, tunnels }];
  const allDownLong = deriveHealth(lease({ b: { up: false, since: '2026-01-01T00:59:00Z' }, c: { up: false, since: '2026-01-01T00:58:00Z' } }), NOW, emptyHealthMemory(), opts);
  assert.equal(allDownLong.health.a.tunnelHealthy, false);
  assert.equal(allDownLong.health.a.lastUnhealthy, NOW);
  const oneUp = deriveHealth(lease({ b: { up: false, since: '2026-01-01T00:59:00Z' }, c: { up: true, since: '2026-01-01T00:58:00Z' } }), NOW, emptyHealthMemory(), opts);
  assert.equal(oneUp.health.a.tunnelHealthy, true);
  const downBriefly = deriveHealth(lease({ b: { up: false, since: '2026-01-01T00:59:59Z' } }), NOW, emptyHealthMemory(), opts);
  assert.equal(downBriefly.health.a.tunnelHealthy, true);
  const none = deriveHealth(lease({}), NOW, emptyHealthMemory(), opts);
  assert.equal(none.health.a.tunnelHealthy, undefined);
});

test('a Lease without times gives no heartbeat signal', () => {
  assert.deepEqual(deriveHealth([{ node: 'a' }], NOW, emptyHealthMemory(), { heartbeatTimeoutSeconds: 3 }).health.a, {});
});

test('memory forgets nodes without a Lease and is not mutated', () => {
  const memory = { lastUnhealthy: { gone: '2026-01-01T00:00:00Z', a: '2026-01-01T00:30:00Z' } };
  const r = deriveHealth([{ node: 'a', renewTime: NOW }], NOW, memory, { heartbeatTimeoutSeconds: 3 });
  assert.deepEqual(r.memory, { lastUnhealthy: { a: '2026-01-01T00:30:00Z' } });
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
