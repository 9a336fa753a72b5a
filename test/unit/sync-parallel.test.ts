// mapBounded (src/sync/parallel.ts): the bound the sync's dry run and apply phases rely on.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as delay } from 'node:timers/promises';
import { mapBounded } from '../../src/sync/parallel.ts';

/** Counts calls in flight and remembers the most there ever were. */
function gauge(): { enter: () => void; leave: () => void; now: () => number; max: () => number } {
  let n = 0;
  let most = 0;
  return {
    enter: () => void (most = Math.max(most, ++n)),
    leave: () => void n--,
    now: () => n,
    max: () => most,
  };
}

test('mapBounded: never more than `limit` calls in flight, and the limit is used', async () => {
  const items = Array.from({ length: 40 }, (_, i) => i);
  for (const limit of [1, 3, 16]) {
    const g = gauge();
    await mapBounded(items, limit, async (i) => {
      g.enter();
      await delay((i * 7) % 5);
      g.leave();
      return i;
    });
    assert.equal(g.max(), limit, `limit ${limit}`);
    assert.equal(g.now(), 0);
  }
  // A limit above the number of items starts each item once, all together.
  const g = gauge();
  let calls = 0;
  await mapBounded([1, 2, 3], 16, async () => {
    calls++;
    g.enter();
    await delay(2);
    g.leave();
  });
  assert.equal(calls, 3);
  assert.equal(g.max(), 3);
});

test('mapBounded: results come in the order of the items, not of completion', async () => {
  const items = Array.from({ length: 20 }, (_, i) => `item-${i}`);
  const finished: number[] = [];
  const out = await mapBounded(items, 5, async (item, index) => {
    await delay(20 - index); // later items finish first
    finished.push(index);
    return `${item}:${index}`;
  });
  assert.deepEqual(out, items.map((item, i) => `${item}:${i}`));
  assert.notDeepEqual(finished, [...finished].sort((a, b) => a - b), 'the calls really completed out of order');
  assert.deepEqual(await mapBounded([], 4, async () => assert.fail('no item, no call')), []);
});

test('mapBounded: rejects with the first rejection, starts nothing after it, and waits for the calls in flight', async () => {
  const first = new Error('first');
  const later = new Error('later');
  const started: number[] = [];
  let settledInFlight = 0;
  const g = gauge();
  const run = mapBounded(Array.from({ length: 30 }, (_, i) => i), 4, async (i) => {
    started.push(i);
    g.enter();
    try {
      if (i === 1) {
        await delay(30);
        throw later; // lower index, but rejects later
      }
      if (i === 2) {
        await delay(5);
        throw first;
      }
      await delay(15);
      settledInFlight++;
      return i;
    } finally {
      g.leave();
    }
  });
  await assert.rejects(run, (e) => e === first);
  assert.equal(g.now(), 0, 'no call is still running when the map has rejected');
  // 0-3 start at once; 2 fails at 5 ms, before any other call settles: nothing more starts.
  assert.deepEqual(started, [0, 1, 2, 3]);
  assert.equal(settledInFlight, 2);

  // A synchronous throw counts as a rejection too.
  const boom = new Error('sync');
  await assert.rejects(
    mapBounded([0, 1, 2], 2, (i) => {
      if (i === 0) throw boom;
      return Promise.resolve(i);
    }),
    (e) => e === boom,
  );
});

test('mapBounded: a limit that is not a positive integer is refused', async () => {
  for (const limit of [0, -1, 1.5, Number.NaN, Number.POSITIVE_INFINITY]) {
    await assert.rejects(mapBounded([1], limit, async (x) => x), RangeError, String(limit));
  }
});
