// The webhook's rate limit and replay protection, on a clock of the test's own.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { WebhookGuard } from '../../src/sync/webhook-guard.ts';

test('rate: a burst, then the long-run rate; Retry-After says when a token is back', () => {
  let t = 0;
  const g = new WebhookGuard({ ratePerSecond: 2, burst: 3, now: () => t });
  assert.deepEqual([g.admit().ok, g.admit().ok, g.admit().ok], [true, true, true]);
  const refused = g.admit();
  assert.equal(refused.ok, false);
  assert.deepEqual(refused.ok ? undefined : [refused.status, refused.retryAfterS], [429, 1]);
  t += 500; // one token back at 2/s
  assert.equal(g.admit().ok, true);
  assert.equal(g.admit().ok, false);
  t += 60_000; // never more than the burst
  assert.deepEqual([1, 2, 3, 4].map(() => g.admit().ok), [true, true, true, false]);
});

test('replays: the same body or the same delivery id inside the window is refused; after the window it is forgotten', () => {
  let t = 1_000_000;
  const g = new WebhookGuard({ windowMs: 60_000, now: () => t });
  const body = Buffer.from('{"after":"abc"}');
  assert.equal(g.accept({ 'x-github-delivery': 'one' }, body).ok, true);
  const again = g.accept({ 'x-github-delivery': 'two' }, body);
  assert.deepEqual(again.ok ? undefined : again.status, 409);
  // Another body under a delivery id already seen (from either header): refused too.
  assert.equal(g.accept({ 'x-github-delivery': 'one' }, Buffer.from('{"after":"def"}')).ok, false);
  assert.equal(g.accept({ 'x-gitea-delivery': 'one' }, Buffer.from('{"after":"ghi"}')).ok, false);
  assert.equal(g.accept({ 'x-gitea-delivery': 'three' }, Buffer.from('{"after":"jkl"}')).ok, true);
  t += 60_001;
  assert.equal(g.accept({}, body).ok, true, 'forgotten after the window');
});

test('replays: a push older than the window (repository.pushed_at) is refused; bodies without it are judged by memory alone', () => {
  const t = 1_000_000_000;
  const g = new WebhookGuard({ windowMs: 60_000, now: () => t });
  const old = g.accept({}, Buffer.from(JSON.stringify({ repository: { pushed_at: t / 1000 - 61 } })));
  assert.deepEqual(old.ok ? undefined : [old.status, /older than the replay window/.test(old.reason)], [403, true]);
  assert.equal(g.accept({}, Buffer.from(JSON.stringify({ repository: { pushed_at: t / 1000 - 59 } }))).ok, true);
  assert.equal(g.accept({}, Buffer.from('not json')).ok, true);
});

test('memory is bounded: the oldest deliveries are forgotten first', () => {
  const g = new WebhookGuard({ maxRemembered: 10, now: () => 0 });
  for (let i = 0; i < 100; i++) assert.equal(g.accept({}, Buffer.from(String(i))).ok, true);
  assert.equal(g.accept({}, Buffer.from('0')).ok, true, 'forgotten');
  assert.equal(g.accept({}, Buffer.from('99')).ok, false, 'remembered');
});
