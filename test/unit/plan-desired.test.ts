// desiredGateways: the one plan step of the sync and of `corvid diff`/`render`/`graph` (src/plan/desired.ts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { desiredGateways } from '../../src/plan/desired.ts';
import { emptyHealthMemory, type HeartbeatLease } from '../../src/plan/health.ts';
import { plan } from '../../src/plan/planner.ts';
import { NOW, REV, input, node, pool, topology } from './plan-fixtures.ts';

const t = topology([pool('p', ['a', 'b'])], { election: { heartbeatTimeoutSeconds: 40 } });
const nodes = [node('a', 'p'), node('b', 'p')];
const fresh = (n: string, secondsAgo: number): HeartbeatLease => ({ node: n, renewTime: new Date(Date.parse(NOW) - secondsAgo * 1000).toISOString(), acquireTime: '2026-01-01T00:00:00Z' });

test('desiredGateways plans as plan() does, on the health it derives, and returns the memory to keep', () => {
  const heartbeats = [fresh('a', 1), fresh('b', 1)];
  const d = desiredGateways({ topology: t, revision: REV, nodes, heartbeats, previous: [], now: NOW, requireHeartbeat: true });
  const direct = plan(input(t, nodes, { health: { a: { heartbeatAgeSeconds: 1, heartbeatSince: '2026-01-01T00:00:00.000Z' }, b: { heartbeatAgeSeconds: 1, heartbeatSince: '2026-01-01T00:00:00.000Z' } }, requireHeartbeat: true }));
  assert.deepEqual(d.planned.gateways, direct.gateways);
  assert.deepEqual(d.memory, emptyHealthMemory(), 'nobody was unhealthy');
  // a's heartbeat expired: remembered as unhealthy now, and the standby takes over.
  const expired = desiredGateways({ topology: t, revision: REV, nodes, heartbeats: [fresh('a', 50), fresh('b', 1)], previous: d.planned.gateways, now: NOW, requireHeartbeat: true });
  assert.deepEqual(expired.memory.lastUnhealthy, { a: NOW });
  assert.deepEqual(expired.planned.gateways[0].status?.activeEndpoints?.map((e) => e.nodeName), ['b']);
  // The next change by the clock alone: half a timeout after a was last unhealthy (nextWake), before b's heartbeat
  // would expire (40 s after its renewal).
  assert.equal(expired.wakeAt, Date.parse(NOW) + 20_000);
});

test('desiredGateways: without heartbeats required, a Ready candidate with no Lease is elected (an offline plan)', () => {
  const offline = desiredGateways({ topology: t, revision: REV, nodes, heartbeats: [], previous: [], now: NOW, requireHeartbeat: false });
  assert.deepEqual(offline.planned.gateways[0].status?.activeEndpoints?.map((e) => e.nodeName), ['a']);
  const strict = desiredGateways({ topology: t, revision: REV, nodes, heartbeats: [], previous: [], now: NOW, requireHeartbeat: true });
  assert.deepEqual(strict.planned.gateways[0].status?.activeEndpoints ?? [], []);
});
