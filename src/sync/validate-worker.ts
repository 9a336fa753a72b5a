// Phase 3 off the event loop. A revision is parsed and validated (validate(), unchanged) in a worker thread with a
// time limit and a heap limit, so a hostile commit (a mapping of 60,000 keys, an alias bomb, a slow check) can
// neither stall /healthz nor delay a failover: the reconciler keeps planning the last good revision meanwhile.
// Overrunning a limit, or a worker that dies, is a verdict like any other: ValidationFailed, with the limit named.

import { Worker } from 'node:worker_threads';
import { formatDuration } from '../topology/duration.ts';
import type { Logger } from '../shell/log.ts';
import { REJECT, type ArtifactOk } from '../reconcile/artifact.ts';
import type { Verdict } from '../reconcile/revision.ts';

export interface ValidationLimits {
  /** Wall time from the worker's start, module loading included (a few hundred ms). */
  timeoutMs: number;
  /** The worker's V8 heap (resourceLimits.maxOldGenerationSizeMb), MiB. */
  memoryMiB: number;
}

/**
 * 10,000 pools validate in 2-9 s (2 busy CPUs) and need 128-192 MiB. The heap limit stays below the sync pod's memory
 * limit (deploy/base): a worker over it must fail on its own, not take the whole sync down with it.
 */
export const DEFAULT_VALIDATION_LIMITS: ValidationLimits = { timeoutMs: 20_000, memoryMiB: 256 };

/** Below about 4 MiB V8 aborts the whole process while it sets the thread up (not a catchable error): keep a margin. */
export const MIN_VALIDATION_MEMORY_MIB = 64;

/** Throws a RangeError for limits a worker cannot run under (a programming or flag error, not a verdict). */
function checkLimits(limits: ValidationLimits): void {
  if (!(Number.isInteger(limits.memoryMiB) && limits.memoryMiB >= MIN_VALIDATION_MEMORY_MIB)) {
    throw new RangeError(`the validation memory limit must be a whole number of MiB, at least ${MIN_VALIDATION_MEMORY_MIB} (got ${limits.memoryMiB})`);
  }
  if (!(limits.timeoutMs > 0)) throw new RangeError(`the validation timeout must be positive (got ${limits.timeoutMs} ms)`);
}

// .js when this module is the npm package's compiled JavaScript (dist/), .ts when Node strips the types of src/.
const THREAD = new URL(`./validate-worker-thread${import.meta.url.slice(import.meta.url.lastIndexOf('.'))}`, import.meta.url);

function refused(message: string): Verdict {
  return { ok: false, reason: REJECT.validationFailed, message };
}

/** By the error's code or name only: its message could quote the file. */
function crashed(e: Error & { code?: string }): Verdict {
  return refused(`validation crashed (${e.code ?? e.name}); the revision is refused`);
}

/**
 * Validate `a` in a worker thread within `limits` (RangeError at once for limits no worker can run under). Never
 * rejects: a limit overrun or a crash is a verdict too.
 * Resolves to undefined only when `signal` aborts first: the revision was superseded, and nothing is known about it.
 * Resolves after the thread has ended.
 */
export function validateInWorker(a: ArtifactOk, limits: ValidationLimits, signal?: AbortSignal): Promise<Verdict | undefined> {
  checkLimits(limits);
  if (signal?.aborted) return Promise.resolve(undefined);
  return new Promise((resolve) => {
    let worker: Worker;
    try {
      worker = new Worker(THREAD, { workerData: a, resourceLimits: { maxOldGenerationSizeMb: limits.memoryMiB } });
    } catch (e) {
      resolve(crashed(e as Error & { code?: string }));
      return;
    }
    let done = false;
    const finish = (v: Verdict | undefined): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      signal?.removeEventListener('abort', abort);
      const end = (): void => resolve(v);
      worker.terminate().then(end, end);
    };
    const abort = (): void => finish(undefined);
    signal?.addEventListener('abort', abort, { once: true });
    const timer = setTimeout(
      () => finish(refused(`validation took longer than ${formatDuration(limits.timeoutMs / 1000)} (the --validation-timeout limit); the revision is refused`)),
      limits.timeoutMs,
    );
    worker.once('message', (v: Verdict) => finish(v));
    worker.once('error', (e: Error & { code?: string }) =>
      finish(
        e.code === 'ERR_WORKER_OUT_OF_MEMORY'
          ? refused(`validation needed more than ${limits.memoryMiB} MiB (the --validation-memory-mib limit); the revision is refused`)
          : crashed(e),
      ),
    );
    worker.once('exit', (code) => finish(refused(`validation ended without a verdict (exit code ${code}); the revision is refused`)));
  });
}

export interface BackgroundValidatorOptions {
  limits: ValidationLimits;
  /** A verdict is in: the reconciler's cue to run again. */
  onVerdict: () => void;
  logger: Logger;
}

/**
 * One validation at a time, in the background. verdict() answers at once: the artifact's verdict when it is in, else
 * undefined while its worker runs (started here when needed; a worker still busy with an older artifact is stopped:
 * only the newest revision matters). The newest verdict is kept, so the reconciles that retry later phases of the same
 * revision never validate it again.
 */
export class BackgroundValidator {
  private readonly o: BackgroundValidatorOptions;
  private known: { key: string; verdict: Verdict } | undefined;
  private running: { key: string; abort: AbortController; done: Promise<void> } | undefined;
  private stopped = false;

  constructor(o: BackgroundValidatorOptions) {
    checkLimits(o.limits);
    this.o = o;
  }

  /** `key` identifies the artifact (revision and content). */
  verdict(key: string, a: ArtifactOk): Verdict | undefined {
    if (this.known?.key === key) return this.known.verdict;
    if (this.running?.key === key || this.stopped) return undefined;
    if (this.running !== undefined) {
      this.o.logger.info('validation superseded by a newer revision', { revision: a.revision });
      this.running.abort.abort();
    }
    const abort = new AbortController();
    const started = Date.now();
    this.o.logger.debug('validating in a worker', { revision: a.revision });
    const entry = {
      key,
      abort,
      done: validateInWorker(a, this.o.limits, abort.signal).then((v) => {
        if (this.running === entry) this.running = undefined;
        if (v === undefined || this.stopped) return;
        this.known = { key, verdict: v };
        this.o.logger.debug('validated in a worker', { revision: a.revision, ok: v.ok, ms: Date.now() - started });
        this.o.onVerdict();
      }),
    };
    this.running = entry;
    return undefined;
  }

  /** Stop the running worker, if any; no verdict is reported after this. */
  async stop(): Promise<void> {
    this.stopped = true;
    const r = this.running;
    this.running = undefined;
    r?.abort.abort();
    await r?.done;
  }
}
