// SerialRunner: one run at a time, requests made meanwhile folded into one more run (src/shell/serial.ts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SerialRunner } from '../../src/shell/serial.ts';

/** A job that waits until released, counting its runs. */
function gatedJob() {
  const state = { runs: 0, release: () => {} };
  const job = (): Promise<void> => {
    state.runs++;
    return new Promise<void>((resolve) => {
      state.release = resolve;
    });
  };
  return { state, job };
}

const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

test('requests made during a run fold into one more run, right after it', async () => {
  const { state, job } = gatedJob();
  let settled = 0;
  const r = new SerialRunner(job, { settled: () => settled++ });
  const first = r.run();
  await tick();
  assert.equal(state.runs, 1);
  assert.equal(r.busy, true);
  const joined = [r.run(), r.run(), r.run()];
  assert.ok(joined.every((p) => p === first), 'every request joins the burst in progress');
  state.release();
  await tick();
  assert.equal(state.runs, 2, 'three requests, one more run');
  state.release();
  await first;
  assert.equal(state.runs, 2);
  assert.equal(r.busy, false);
  assert.equal(settled, 1, 'settled once, after the burst');
});

test('stopped: nothing more runs, and a burst that ends at once is still cleared (idle resolves)', async () => {
  let stopped = false;
  let runs = 0;
  const r = new SerialRunner(async () => {
    runs++;
  }, { stopped: () => stopped });
  await r.run();
  assert.equal(runs, 1);
  stopped = true;
  await r.run();
  assert.equal(runs, 1);
  assert.equal(r.busy, false);
  await r.idle();
});

test('a job that throws rejects its burst, settles, and leaves the runner usable', async () => {
  let settled = 0;
  let fail = true;
  const r = new SerialRunner(async () => {
    if (fail) throw new Error('boom');
  }, { settled: () => settled++ });
  await assert.rejects(r.run(), /boom/);
  assert.equal(settled, 1);
  assert.equal(r.busy, false);
  fail = false;
  await r.run();
  assert.equal(settled, 2);
  await r.idle();
});
