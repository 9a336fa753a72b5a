// Validation in a worker thread (src/sync/validate-worker.ts): the same verdict as validate() in-process, and a
// verdict (ValidationFailed, naming the limit) for a revision that overruns its time or heap limit.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { validate } from '../../src/reconcile/revision.ts';
import { BackgroundValidator, validateInWorker } from '../../src/sync/validate-worker.ts';
import type { ArtifactOk } from '../../src/reconcile/artifact.ts';
import { jsonLogger } from '../../src/shell/log.ts';
import { manyPoolsYaml } from '../support/heavy-topology.ts';
import { corvid } from './cli-support.ts';

const GOOD = `apiVersion: corvid.dev/v1alpha1
kind: Topology
metadata: {name: edge}
spec:
  encryption: {pskSecretRef: {name: corvid-psk, key: psk}}
  pools:
    - name: pool-a
      nodeSelector: {matchLabels: {pool: a}}
      gateways: [{node: a1, publicIP: 203.0.113.1}, {node: a2, publicIP: 203.0.113.2}]
`;
const LIMITS = { timeoutMs: 60_000, memoryMiB: 256 };

function artifact(text: string, revision = 'main@sha1:1'): ArtifactOk {
  return { ok: true, revision, file: 'topology.yaml', text };
}

test('validateInWorker: a valid, an invalid and an unverified revision get the verdict validate() gives in-process', async () => {
  for (const a of [
    artifact(GOOD),
    artifact(GOOD.replace('203.0.113.1', '203.0.113.300')),
    artifact('metadata: {name: edge\nspec: ['),
    { ...artifact(GOOD), verification: { verified: false, message: 'no signature' } },
  ]) {
    assert.deepEqual(await validateInWorker(a, LIMITS), validate(a));
  }
});

test('validateInWorker: a revision that takes longer than the time limit is refused, naming the limit', async () => {
  // 10,000 pools take seconds (and the thread's start-up alone more than 50 ms).
  const t0 = Date.now();
  const v = await validateInWorker(artifact(manyPoolsYaml('many', 10_000)), { timeoutMs: 50, memoryMiB: 1024 });
  assert.deepEqual(v, {
    ok: false,
    reason: 'ValidationFailed',
    message: 'validation took longer than 50ms (the --validation-timeout limit); the revision is refused',
  });
  assert.ok(Date.now() - t0 < 5000, `terminated after ${Date.now() - t0} ms`);
});

test('validateInWorker: a revision that needs more heap than the memory limit is refused, naming the limit', async () => {
  // 10,000 pools need about 150 MiB.
  const v = await validateInWorker(artifact(manyPoolsYaml('many', 10_000)), { timeoutMs: 60_000, memoryMiB: 64 });
  assert.deepEqual(v, {
    ok: false,
    reason: 'ValidationFailed',
    message: 'validation needed more than 64 MiB (the --validation-memory-mib limit); the revision is refused',
  });
  // The process is fine: another validation runs as usual.
  assert.equal((await validateInWorker(artifact(GOOD), LIMITS))?.ok, true);
});

test('validateInWorker: an abort (a newer revision) ends the thread with no verdict', async () => {
  const abort = new AbortController();
  const running = validateInWorker(artifact(manyPoolsYaml('many', 10_000)), LIMITS, abort.signal);
  setTimeout(() => abort.abort(), 100);
  assert.equal(await running, undefined);
  assert.equal(await validateInWorker(artifact(GOOD), LIMITS, abort.signal), undefined);
});

test('validateInWorker and BackgroundValidator: a heap limit too small to set a thread up is a RangeError, never a worker', async () => {
  // Under about 4 MiB V8 would abort the whole process, uncatchably.
  for (const memoryMiB of [0, 2, 63.5, Number.NaN]) {
    assert.throws(() => validateInWorker(artifact(GOOD), { timeoutMs: 1000, memoryMiB }), RangeError);
    assert.throws(() => new BackgroundValidator({ limits: { timeoutMs: 1000, memoryMiB }, onVerdict: () => undefined, logger: jsonLogger() }), RangeError);
  }
  assert.throws(() => validateInWorker(artifact(GOOD), { timeoutMs: 0, memoryMiB: 64 }), RangeError);
});

function background(): { v: BackgroundValidator; verdicts: () => number; logs: Record<string, unknown>[] } {
  let n = 0;
  const logs: Record<string, unknown>[] = [];
  const logger = jsonLogger({ level: 'debug', write: (l) => void logs.push(JSON.parse(l)) });
  const v = new BackgroundValidator({ limits: LIMITS, onVerdict: () => void n++, logger });
  return { v, verdicts: () => n, logs };
}

async function until(what: string, ok: () => boolean): Promise<void> {
  for (const end = Date.now() + 30_000; !ok(); ) {
    if (Date.now() > end) throw new Error(`timed out: ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

test('BackgroundValidator: answers at once (undefined while the worker runs), then keeps the verdict; one worker per revision', async () => {
  const { v, verdicts, logs } = background();
  try {
    const a = artifact(GOOD);
    assert.equal(v.verdict('k1', a), undefined);
    assert.equal(v.verdict('k1', a), undefined, 'asked again while it runs: still the one worker');
    await until('the verdict', () => verdicts() === 1);
    assert.deepEqual(v.verdict('k1', a), validate(a));
    assert.deepEqual(v.verdict('k1', a), validate(a));
    assert.equal(verdicts(), 1);
    assert.equal(logs.filter((l) => l.msg === 'validated in a worker').length, 1);
  } finally {
    await v.stop();
  }
});

test('BackgroundValidator: a newer revision supersedes the one being validated; stop() ends the worker and reports nothing', async () => {
  const { v, verdicts, logs } = background();
  try {
    assert.equal(v.verdict('slow', artifact(manyPoolsYaml('many', 10_000), 'main@sha1:slow')), undefined);
    const b = artifact(GOOD, 'main@sha1:b');
    assert.equal(v.verdict('b', b), undefined);
    await until('the newer verdict', () => verdicts() === 1);
    assert.deepEqual(v.verdict('b', b), validate(b));
    assert.ok(logs.some((l) => l.msg === 'validation superseded by a newer revision' && l.revision === 'main@sha1:b'));
    assert.equal(v.verdict('slow again', artifact(manyPoolsYaml('many', 10_000))), undefined);
  } finally {
    await v.stop();
  }
  assert.equal(verdicts(), 1, 'no verdict after stop()');
  assert.equal(v.verdict('after stop', artifact(GOOD)), undefined);
});

test('validate(): a mapping of 60,000 keys takes seconds, not minutes (no pairwise duplicate-key check)', () => {
  const labels = Array.from({ length: 60_000 }, (_, i) => `    k${i}: v`).join('\n');
  const t0 = Date.now();
  for (const text of [GOOD.replace('metadata: {name: edge}', `metadata:\n  name: edge\n  labels:\n${labels}`), `${GOOD}${labels.replace(/^ {4}/gm, '')}\n`]) {
    validate(artifact(text));
  }
  const ms = Date.now() - t0;
  assert.ok(ms < 20_000, `took ${ms} ms (was over 2 minutes)`);
});

test('corvid sync --validation-timeout and --validation-memory-mib: bad values are usage errors (exit 2)', async () => {
  for (const [flag, pattern] of [
    ['--validation-timeout=soon', /--validation-timeout must be a duration/],
    ['--validation-timeout=0s', /--validation-timeout must be a duration/],
    ['--validation-memory-mib=32', /--validation-memory-mib must be a whole number from 64 to 16384/],
    ['--validation-memory-mib=1G', /--validation-memory-mib must be a whole number from 64 to 16384/],
  ] as const) {
    const r = await corvid(['sync', '--source=file', '--file=x.yaml', flag]);
    assert.equal(r.code, 2, flag);
    assert.match(r.stderr, pattern);
  }
  const help = (await corvid(['sync', '--help'])).stdout;
  assert.match(help, /--validation-timeout DURATION/);
  assert.match(help, /--validation-memory-mib N/);
});
