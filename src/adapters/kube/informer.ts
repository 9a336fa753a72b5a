// A resilient informer: list + watch into a cache, with change callbacks.
//
// - A watch that ends (server timeout, client inactivity timeout) resumes from the last resourceVersion.
// - 410 Gone (an etcd compaction, either as the HTTP answer or as a watch ERROR event) relists, and the relist is
//   diffed against the cache so callbacks see the adds, updates and deletes that were missed.
// - Every other error (network, API server restart, 5xx, 403) is reported to onError and retried with exponential
//   backoff and jitter; the cache keeps its last content meanwhile. It never gives up until stop().
//
// Objects are the wire JSON (see client.ts), passed through the optional `transform` as they arrive (list pages and
// watch events alike), so a cache can keep only the part of each object its user reads.

import { errorMessage, kubeWatch, listAll, statusCode, type KubeConfig, type KubeObject, type WatchEvent } from './client.ts';
import { setTimeout as delay } from 'node:timers/promises';

const WATCH_MIN_TIMEOUT_S = 300;
/** How long past its timeoutSeconds a watch may stay silent before its connection counts as dead. */
const WATCH_GRACE_S = 30;

export type InformerEventType = 'add' | 'update' | 'delete';

export interface InformerEvent<T> {
  type: InformerEventType;
  object: T;
  /** The cached object before an update. */
  previous?: T;
}

export interface InformerErrorInfo {
  /** Consecutive failures so far (1 for the first). */
  attempt: number;
  /** Milliseconds until the next try. */
  retryInMs: number;
}

export interface InformerOptions {
  /** Collection path, e.g. `/api/v1/nodes`, `/apis/coordination.k8s.io/v1/namespaces/x/leases`. */
  path: string;
  labelSelector?: string;
  fieldSelector?: string;
  /** First retry delay after an error; doubles up to maxBackoffMs. Default 250 ms. */
  initialBackoffMs?: number;
  /** Default 30 s. */
  maxBackoffMs?: number;
}

/** What the Informer takes: the options, and what to keep of each object received (default: all of it). */
export interface InformerSettings<T extends KubeObject> extends InformerOptions {
  /**
   * Applied to every object as it arrives, before it is cached or passed to a callback. It must keep
   * metadata.name, metadata.namespace and metadata.resourceVersion (the cache's key and version).
   */
  transform?: (o: T) => T;
}

// Resolves after ms, or at once when the signal aborts (never rejects).
function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return delay(ms, undefined, { signal }).then(
    () => undefined,
    () => undefined,
  );
}

function key(o: KubeObject): string {
  const m = o.metadata ?? {};
  return `${m.namespace ?? ''}/${m.name ?? ''}`;
}

type WatchEnd = { kind: 'closed' } | { kind: 'gone' } | { kind: 'error'; err: unknown };

/** What a reconcile reads of an informer: its cache. */
export type ObjectCache<T extends KubeObject> = Pick<Informer<T>, 'list' | 'get'>;

export class Informer<T extends KubeObject> {
  readonly path: string;
  private readonly kc: KubeConfig;
  private readonly opts: InformerSettings<T>;
  private cache = new Map<string, T>();
  private rv = '';
  private synced = false;
  private running: Promise<void> | undefined;
  private abort: AbortController | undefined;
  private readonly changeCbs = new Set<(e: InformerEvent<T>) => void>();
  private readonly errorCbs = new Set<(err: unknown, info: InformerErrorInfo) => void>();
  private syncWaiters: { resolve: () => void; reject: (e: Error) => void }[] = [];
  /** Counters for tests and metrics: full lists, watch connections, 410s, failures. */
  readonly stats = { lists: 0, watches: 0, gone: 0, errors: 0 };

  constructor(kc: KubeConfig, opts: InformerSettings<T>) {
    this.kc = kc;
    this.opts = opts;
    this.path = opts.path;
  }

  /**
   * Start listing and watching in the background. Resolves once the cache holds a first complete list. After stop(),
   * start() resumes from the last resourceVersion (a 410 then relists and reports the differences as events).
   */
  start(): Promise<void> {
    if (this.running === undefined) {
      this.abort = new AbortController();
      this.running = this.loop(this.abort.signal);
    }
    return this.waitForSync();
  }

  /** Stop the watch and the retries. The cache keeps its content. Pending waitForSync() calls reject. */
  async stop(): Promise<void> {
    this.abort?.abort();
    const r = this.running;
    this.running = undefined;
    const waiters = this.syncWaiters;
    this.syncWaiters = [];
    for (const w of waiters) w.reject(new Error(`informer ${this.path} stopped before it synced`));
    await r;
  }

  /** True once a first list has been stored. */
  hasSynced(): boolean {
    return this.synced;
  }

  /** Resolves when synced; rejects on stop() or after timeoutMs. */
  waitForSync(timeoutMs?: number): Promise<void> {
    if (this.synced) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const w = { resolve, reject };
      this.syncWaiters.push(w);
      if (timeoutMs !== undefined) {
        setTimeout(() => {
          if (!this.syncWaiters.includes(w)) return;
          this.syncWaiters = this.syncWaiters.filter((x) => x !== w);
          reject(new Error(`informer ${this.path} did not sync within ${timeoutMs} ms`));
        }, timeoutMs).unref();
      }
    });
  }

  /** The cached objects (optionally of one namespace), sorted by namespace/name. */
  list(namespace?: string): T[] {
    const out: T[] = [];
    for (const [k, v] of [...this.cache.entries()].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))) {
      if (namespace === undefined || k.startsWith(`${namespace}/`)) out.push(v);
    }
    return out;
  }

  get(name: string, namespace?: string): T | undefined {
    return this.cache.get(`${namespace ?? ''}/${name}`);
  }

  /** resourceVersion the cache is current to. */
  resourceVersion(): string {
    return this.rv;
  }

  /** Called for every add, update and delete (also the ones a relist discovers). Returns an unsubscribe function. */
  onChange(cb: (e: InformerEvent<T>) => void): () => void {
    this.changeCbs.add(cb);
    return () => this.changeCbs.delete(cb);
  }

  /** Called for every list or watch failure before the retry. Returns an unsubscribe function. */
  onError(cb: (err: unknown, info: InformerErrorInfo) => void): () => void {
    this.errorCbs.add(cb);
    return () => this.errorCbs.delete(cb);
  }

  private emit(e: InformerEvent<T>): void {
    for (const cb of [...this.changeCbs]) {
      try {
        cb(e);
      } catch {
        // A callback's failure is its own business; the informer keeps going.
      }
    }
  }

  private async loop(signal: AbortSignal): Promise<void> {
    const initial = this.opts.initialBackoffMs ?? 250;
    const max = this.opts.maxBackoffMs ?? 30_000;
    let backoff = initial;
    let attempt = 0;
    const fail = async (err: unknown): Promise<void> => {
      attempt++;
      this.stats.errors++;
      const retryInMs = Math.round(backoff * (0.8 + Math.random() * 0.4));
      for (const cb of [...this.errorCbs]) {
        try {
          cb(err, { attempt, retryInMs });
        } catch {
          // ignore
        }
      }
      await sleep(retryInMs, signal);
      backoff = Math.min(backoff * 2, max);
    };
    while (!signal.aborted) {
      if (this.rv === '') {
        try {
          await this.relist();
          backoff = initial;
          attempt = 0;
        } catch (err) {
          if (signal.aborted) break;
          await fail(err);
          continue;
        }
      }
      const started = Date.now();
      const end = await this.watchOnce(signal);
      if (signal.aborted) break;
      if (end.kind === 'gone') {
        this.stats.gone++;
        this.rv = '';
        continue;
      }
      if (end.kind === 'error') {
        await fail(end.err);
        continue;
      }
      // A clean end. One that comes right away, over and over, must not spin.
      if (Date.now() - started < 1000) await fail(new Error(`watch ${this.path} closed at once`));
      else {
        backoff = initial;
        attempt = 0;
      }
    }
  }

  private async relist(): Promise<void> {
    const { labelSelector, fieldSelector } = this.opts;
    const list = await listAll<T>(this.kc, this.path, { labelSelector, fieldSelector }, this.opts.transform);
    this.stats.lists++;
    const fresh = new Map<string, T>();
    for (const o of list.items) fresh.set(key(o), o);
    const old = this.cache;
    this.cache = fresh;
    this.rv = list.resourceVersion;
    const events: InformerEvent<T>[] = [];
    for (const [k, o] of old) if (!fresh.has(k)) events.push({ type: 'delete', object: o });
    for (const [k, o] of fresh) {
      const prev = old.get(k);
      if (prev === undefined) events.push({ type: 'add', object: o });
      else if (prev.metadata?.resourceVersion !== o.metadata?.resourceVersion) {
        events.push({ type: 'update', object: o, previous: prev });
      }
    }
    if (!this.synced) {
      this.synced = true;
      const waiters = this.syncWaiters;
      this.syncWaiters = [];
      for (const w of waiters) w.resolve();
    }
    for (const e of events) this.emit(e);
  }

  private async watchOnce(signal: AbortSignal): Promise<WatchEnd> {
    // The server ends a watch after timeoutSeconds, spread as client-go spreads it (5-10 min) so that many
    // clients do not all come back at once; a connection silent for longer than that is dead.
    const timeoutSeconds = WATCH_MIN_TIMEOUT_S + Math.floor(Math.random() * WATCH_MIN_TIMEOUT_S);
    const query: Record<string, string | number | boolean> = { resourceVersion: this.rv, allowWatchBookmarks: true, timeoutSeconds };
    if (this.opts.labelSelector) query.labelSelector = this.opts.labelSelector;
    if (this.opts.fieldSelector) query.fieldSelector = this.opts.fieldSelector;
    const controller = new AbortController();
    const onAbort = (): void => controller.abort();
    signal.addEventListener('abort', onAbort, { once: true });
    let end: WatchEnd | undefined;
    const onEvent = (e: WatchEvent): void => {
      if (end !== undefined) return;
      const obj = e.object;
      if (e.type === 'ERROR') {
        end = obj?.code === 410 ? { kind: 'gone' } : { kind: 'error', err: new Error(`watch ${this.path}: ${obj?.code ?? ''} ${obj?.message ?? 'error event'}`) };
        controller.abort();
        return;
      }
      const rv: string | undefined = obj?.metadata?.resourceVersion;
      if (e.type === 'BOOKMARK') {
        if (rv) this.rv = rv;
        return;
      }
      const o = this.opts.transform ? this.opts.transform(obj as T) : (obj as T);
      const k = key(o);
      if (e.type === 'ADDED' || e.type === 'MODIFIED') {
        const prev = this.cache.get(k);
        this.cache.set(k, o);
        if (rv) this.rv = rv;
        this.emit(prev === undefined ? { type: 'add', object: o } : { type: 'update', object: o, previous: prev });
      } else if (e.type === 'DELETED') {
        const prev = this.cache.get(k);
        this.cache.delete(k);
        if (rv) this.rv = rv;
        this.emit({ type: 'delete', object: prev ?? o });
      }
    };
    this.stats.watches++;
    try {
      await kubeWatch(this.kc, this.path, query, onEvent, { signal: controller.signal, idleTimeoutMs: (timeoutSeconds + WATCH_GRACE_S) * 1000 });
      return end ?? { kind: 'closed' };
    } catch (err) {
      if (end !== undefined) return end;
      if (signal.aborted) return { kind: 'closed' };
      if (statusCode(err) === 410) return { kind: 'gone' };
      return { kind: 'error', err: err instanceof Error ? err : new Error(errorMessage(err)) };
    } finally {
      signal.removeEventListener('abort', onAbort);
    }
  }
}

/** Shorthand for `new Informer<T>(kc, opts)`. */
export function makeResilientInformer<T extends KubeObject>(kc: KubeConfig, opts: InformerSettings<T>): Informer<T> {
  return new Informer<T>(kc, opts);
}
