// A VICI session that outlives charon's restarts: it reconnects, repeats the commands that may be repeated, and
// re-registers its subscriptions.
import { setTimeout as sleep } from 'node:timers/promises';
import type { ViciMessage } from './codec.ts';
import { ViciClient } from './connection.ts';
import { DEFAULT_TIMEOUT_MS, ViciCommands, ViciConnectionError, type EventHandler, type RequestOptions, type Subscription } from './messages.ts';

// ---------------------------------------------------------------- reconnecting session

export interface ViciSessionOptions {
  /** Per-command and connect timeout. */
  timeoutMs?: number;
  /** First pause between reconnect attempts; doubles up to maxDelayMs. */
  initialDelayMs?: number;
  maxDelayMs?: number;
  /** How long a command waits for charon to come back before failing. */
  reconnectTimeoutMs?: number;
  /** Reconnect notices (never contain message contents). */
  log?: (line: string) => void;
}

// Errors that mean "charon is not there (yet)": worth waiting for.
const RETRYABLE_CODES = new Set(['ECONNREFUSED', 'ENOENT', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT']);

function isRetryable(err: unknown): boolean {
  return err instanceof ViciConnectionError && err.code !== undefined && RETRYABLE_CODES.has(err.code);
}

// Commands whose repetition cannot change the outcome; initiate/terminate are not among them.
const REPEATABLE_COMMANDS = new Set([
  'version',
  'stats',
  'get-conns',
  'get-shared',
  'list-sas',
  'list-conns',
  'load-conn',
  'unload-conn',
  'load-shared',
  'unload-shared',
]);

/**
 * Whether charon answers on its VICI socket within `timeoutMs`: a fresh connection and a `version` command, closed
 * after. A connection of its own, so that a charon that died is seen at once rather than after a session's retries.
 */
export async function viciAnswers(socketPath: string, timeoutMs: number): Promise<boolean> {
  let client: ViciClient | undefined;
  try {
    client = await ViciClient.connect(socketPath, { timeoutMs });
    await client.version();
    return true;
  } catch {
    return false;
  } finally {
    await client?.close();
  }
}

/**
 * Survives charon restarts: commands (re)connect with backoff when the socket is gone, and
 * subscriptions re-register on a fresh connection after each restart.
 */
export class ViciSession extends ViciCommands {
  readonly socketPath: string;
  private readonly timeoutMs: number;
  private readonly initialDelayMs: number;
  private readonly maxDelayMs: number;
  private readonly reconnectTimeoutMs: number;
  private readonly log: (line: string) => void;
  private client: ViciClient | undefined;
  private connecting: Promise<ViciClient> | undefined;
  private readonly subscriptions = new Set<SessionSubscription>();
  private readonly abort = new AbortController();
  private isClosed = false;

  constructor(socketPath: string, opts: ViciSessionOptions = {}) {
    super();
    this.socketPath = socketPath;
    this.timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.initialDelayMs = opts.initialDelayMs ?? 50;
    this.maxDelayMs = opts.maxDelayMs ?? 2_000;
    this.reconnectTimeoutMs = opts.reconnectTimeoutMs ?? 30_000;
    this.log = opts.log ?? (() => {});
  }

  async request(cmd: string, msg?: ViciMessage, opts?: RequestOptions): Promise<ViciMessage> {
    return this.withClient(cmd, (client) => client.request(cmd, msg, opts));
  }

  async streamed(cmd: string, eventName: string, msg?: ViciMessage, opts?: RequestOptions): Promise<ViciMessage[]> {
    return this.withClient(cmd, (client) => client.streamed(cmd, eventName, msg, opts));
  }

  /**
   * `onRegistered` runs every time the events are registered, the first time and after each reconnect (a charon
   * restart: whatever happened meanwhile raised no event here).
   */
  async subscribe(events: string[], handler: EventHandler, opts: { onRegistered?: () => void } = {}): Promise<Subscription> {
    if (this.isClosed) throw new ViciConnectionError(`VICI session for ${this.socketPath} is closed`, 'ECLOSED');
    const sub = new SessionSubscription(this, events, handler, opts.onRegistered);
    this.subscriptions.add(sub);
    sub.start();
    // The first registration waits as long as a command would; later ones retry forever.
    let timer: NodeJS.Timeout | undefined;
    const expired = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new ViciConnectionError(`VICI socket ${this.socketPath} unavailable for ${this.reconnectTimeoutMs} ms; subscription not registered`, 'ETIMEDOUT')),
        this.reconnectTimeoutMs,
      );
    });
    try {
      await Promise.race([sub.ready(), expired]);
    } catch (err) {
      await sub.close();
      throw err;
    } finally {
      clearTimeout(timer);
    }
    return sub;
  }

  async close(): Promise<void> {
    this.isClosed = true;
    this.abort.abort();
    await Promise.all([...this.subscriptions].map((s) => s.close()));
    await this.client?.close();
    this.client = undefined;
  }

  /** @internal used by SessionSubscription */
  forget(sub: SessionSubscription): void {
    this.subscriptions.delete(sub);
  }

  /** @internal */
  note(line: string): void {
    this.log(line);
  }

  /** @internal */
  get closedByUser(): boolean {
    return this.isClosed;
  }

  /** @internal connects, waiting with backoff while charon is away; `deadlineMs` of Infinity waits forever. */
  async connectWithBackoff(deadlineMs: number, stillWanted: () => boolean, signal: AbortSignal): Promise<ViciClient> {
    const started = Date.now();
    let delay = this.initialDelayMs;
    for (let attempt = 1; ; attempt++) {
      try {
        return await ViciClient.connect(this.socketPath, { timeoutMs: this.timeoutMs });
      } catch (err) {
        if (!isRetryable(err) || !stillWanted()) throw err;
        if (Date.now() - started + delay > deadlineMs) {
          throw new ViciConnectionError(
            `VICI socket ${this.socketPath} unavailable for ${Date.now() - started} ms: ${(err as Error).message}`,
            (err as ViciConnectionError).code,
          );
        }
        if (attempt === 1) this.log(`VICI ${this.socketPath} unavailable (${(err as ViciConnectionError).code}); retrying`);
      }
      // Aborted on close, so a pending backoff does not keep the process alive.
      await sleep(delay, undefined, { signal }).catch(() => {});
      if (!stillWanted()) throw new ViciConnectionError(`VICI connection to ${this.socketPath} abandoned: closed`, 'ECLOSED');
      delay = Math.min(delay * 2, this.maxDelayMs);
    }
  }

  private async connected(): Promise<ViciClient> {
    if (this.isClosed) throw new ViciConnectionError(`VICI session for ${this.socketPath} is closed`, 'ECLOSED');
    if (this.client !== undefined && !this.client.closed) return this.client;
    this.connecting ??= this.connectWithBackoff(this.reconnectTimeoutMs, () => !this.isClosed, this.abort.signal)
      .then((client) => {
        if (this.isClosed) {
          void client.close();
          throw new ViciConnectionError(`VICI session for ${this.socketPath} is closed`, 'ECLOSED');
        }
        this.client = client;
        return client;
      })
      .finally(() => {
        this.connecting = undefined;
      });
    return this.connecting;
  }

  private async withClient<T>(cmd: string, run: (client: ViciClient) => Promise<T>): Promise<T> {
    const client = await this.connected();
    try {
      return await run(client);
    } catch (err) {
      // A connection that died under us (charon restarting): repeat only harmless commands.
      if (!(isRetryable(err) && REPEATABLE_COMMANDS.has(cmd) && client.closed)) throw err;
      this.log(`VICI ${cmd} lost its connection; retrying on a new one`);
      return run(await this.connected());
    }
  }
}

const REGISTER_RETRY_DELAY_MS = 100;

class SessionSubscription implements Subscription {
  private readonly session: ViciSession;
  private readonly events: string[];
  private readonly handler: EventHandler;
  private readonly onRegistered: (() => void) | undefined;
  private client: ViciClient | undefined;
  private readonly abort = new AbortController();
  private isClosed = false;
  private readyPromise!: Promise<void>;
  private markReady!: () => void;
  private markFailed!: (err: Error) => void;

  constructor(session: ViciSession, events: string[], handler: EventHandler, onRegistered?: () => void) {
    this.session = session;
    this.events = events;
    this.handler = handler;
    this.onRegistered = onRegistered;
    this.resetReady();
  }

  ready(): Promise<void> {
    return this.readyPromise;
  }

  start(): void {
    void this.run();
  }

  async close(): Promise<void> {
    this.isClosed = true;
    this.abort.abort();
    this.session.forget(this);
    this.markFailed(new ViciConnectionError('subscription closed', 'ECLOSED'));
    await this.client?.close();
  }

  private resetReady(): void {
    this.readyPromise = new Promise<void>((resolve, reject) => {
      this.markReady = resolve;
      this.markFailed = reject;
    });
    // Nobody may be waiting; an unobserved rejection must not crash the process.
    this.readyPromise.catch(() => {});
  }

  private wanted = (): boolean => !this.isClosed && !this.session.closedByUser;

  // Connect, register, and on loss start over; ends only when closed or on a non-retryable error.
  private async run(): Promise<void> {
    while (this.wanted()) {
      let client: ViciClient;
      try {
        client = await this.session.connectWithBackoff(Infinity, this.wanted, this.abort.signal);
        this.client = client;
        if (!this.wanted()) {
          await client.close();
          return;
        }
        await client.registerEvents(this.events, this.handler);
      } catch (err) {
        if (this.wanted() && isRetryable(err)) {
          // charon accepted the connection but went away again (still starting or stopping).
          await sleep(REGISTER_RETRY_DELAY_MS);
          continue;
        }
        if (this.wanted()) this.session.note(`VICI subscription to ${this.events.join(', ')} stopped: ${(err as Error).message}`);
        this.markFailed(err as Error);
        return;
      }
      const lost = new Promise<void>((resolve) => client.onClose(() => resolve()));
      this.markReady();
      try {
        this.onRegistered?.();
      } catch {
        // the caller's business
      }
      await lost;
      if (this.wanted()) this.resetReady();
    }
  }
}
