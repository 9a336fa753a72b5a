// VICI client over charon's unix socket: one command at a time per connection, events
// dispatched by name, dedicated connections for subscriptions, and a reconnecting session.
import { createConnection, type Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  PacketType,
  SegmentReader,
  encodeSegment,
  packetTypeName,
  type ViciMessage,
  type ViciPacket,
  type ViciValue,
} from './codec.ts';

export const DEFAULT_TIMEOUT_MS = 10_000;
// charon answers initiate/terminate after its own timeout; give the reply time to arrive.
const CHARON_TIMEOUT_MARGIN_MS = 2_000;

/** charon answered `success = no`. */
export class ViciError extends Error {
  override name = 'ViciError';
  readonly command: string;
  readonly errmsg: string;
  constructor(command: string, errmsg: string) {
    super(`VICI ${command} failed: ${errmsg}`);
    this.command = command;
    this.errmsg = errmsg;
  }
}

/** The connection is gone or could not be made; `code` is the socket error code when known. */
export class ViciConnectionError extends Error {
  override name = 'ViciConnectionError';
  readonly code: string | undefined;
  constructor(message: string, code?: string) {
    super(message);
    this.code = code;
  }
}

/** No answer in time; the connection was destroyed so a late answer cannot be mismatched. */
export class ViciTimeoutError extends Error {
  override name = 'ViciTimeoutError';
  readonly command: string;
  constructor(command: string, timeoutMs: number) {
    super(`VICI ${command} got no answer within ${timeoutMs} ms; connection closed`);
    this.command = command;
  }
}

export interface RequestOptions {
  timeoutMs?: number;
}

export type EventHandler = (name: string, msg: ViciMessage) => void;

export interface Subscription {
  /** Resolves once the events are registered on a live connection. */
  ready(): Promise<void>;
  close(): Promise<void>;
}

// ---------------------------------------------------------------- typed shapes

export interface VersionInfo {
  daemon: string;
  version: string;
  sysname: string;
  release: string;
  machine: string;
}

export type ChildAction = 'none' | 'clear' | 'trap' | 'start' | 'restart';

export interface AuthConfig {
  auth: 'psk';
  id?: string;
}

export interface ChildConfig {
  local_ts?: string[];
  remote_ts?: string[];
  esp_proposals?: string[];
  start_action?: ChildAction;
  dpd_action?: ChildAction;
  close_action?: ChildAction;
  mode?: 'tunnel' | 'transport' | 'pass' | 'drop';
}

/** The subset of swanctl.conf connection settings the agent uses; names as in swanctl.conf. */
export interface ConnConfig {
  version?: 0 | 1 | 2;
  local_addrs?: string[];
  remote_addrs?: string[];
  local_port?: number;
  remote_port?: number;
  proposals?: string[];
  encap?: boolean;
  /** Seconds, or a swanctl duration such as "30s". */
  dpd_delay?: number | string;
  /** Uniqueness policy for IKE_SAs with the same identities (swanctl's `unique`). */
  unique?: 'no' | 'never' | 'keep' | 'replace';
  local: AuthConfig;
  remote: AuthConfig;
  children: Record<string, ChildConfig>;
}

export interface SharedKey {
  id: string;
  type: 'IKE';
  /** Never echoed in errors or logs. */
  data: string | Buffer;
  owners: string[];
}

export interface ChildSaInfo {
  name: string;
  uniqueId: string;
  reqid?: string;
  state: string;
  mode?: string;
  protocol?: string;
  encap: boolean;
  spiIn?: string;
  spiOut?: string;
  bytesIn: number;
  bytesOut: number;
  packetsIn: number;
  packetsOut: number;
  /** Seconds since installation. */
  installTime?: number;
  rekeyTime?: number;
  lifeTime?: number;
  localTs: string[];
  remoteTs: string[];
}

export interface IkeSaInfo {
  name: string;
  uniqueId: string;
  version?: string;
  state: string;
  localHost?: string;
  localPort?: number;
  localId?: string;
  remoteHost?: string;
  remotePort?: number;
  remoteId?: string;
  initiator: boolean;
  natAny: boolean;
  /** Seconds since establishment. */
  established?: number;
  children: ChildSaInfo[];
}

export interface SaFilter {
  ike?: string;
  ikeId?: string | number;
  noblock?: boolean;
}

export interface InitiateOptions {
  child: string;
  ike?: string;
  timeoutMs?: number;
}

export interface TerminateOptions {
  ike?: string;
  child?: string;
  ikeId?: string | number;
  force?: boolean;
  timeoutMs?: number;
}

// ---------------------------------------------------------------- message conversion

function yesNo(value: boolean): string {
  return value ? 'yes' : 'no';
}

function withoutUndefined(msg: Record<string, ViciValue | undefined>): ViciMessage {
  const out: ViciMessage = {};
  for (const [key, value] of Object.entries(msg)) if (value !== undefined) out[key] = value;
  return out;
}

/** ConnConfig to the load-conn section; list-typed keys become VICI lists (charon refuses plain values). */
export function connToMessage(conn: ConnConfig): ViciMessage {
  const children: ViciMessage = {};
  for (const [name, child] of Object.entries(conn.children)) {
    children[name] = withoutUndefined({
      local_ts: child.local_ts,
      remote_ts: child.remote_ts,
      esp_proposals: child.esp_proposals,
      start_action: child.start_action,
      dpd_action: child.dpd_action,
      close_action: child.close_action,
      mode: child.mode,
    });
  }
  const auth = (a: AuthConfig): ViciMessage => withoutUndefined({ auth: a.auth, id: a.id });
  return withoutUndefined({
    version: conn.version === undefined ? undefined : String(conn.version),
    local_addrs: conn.local_addrs,
    remote_addrs: conn.remote_addrs,
    local_port: conn.local_port === undefined ? undefined : String(conn.local_port),
    remote_port: conn.remote_port === undefined ? undefined : String(conn.remote_port),
    proposals: conn.proposals,
    encap: conn.encap === undefined ? undefined : yesNo(conn.encap),
    dpd_delay: conn.dpd_delay === undefined ? undefined : String(conn.dpd_delay),
    unique: conn.unique,
    local: auth(conn.local),
    remote: auth(conn.remote),
    children,
  });
}

function str(section: ViciMessage, key: string): string | undefined {
  const v = section[key];
  return typeof v === 'string' ? v : undefined;
}

function num(section: ViciMessage, key: string): number | undefined {
  const v = str(section, key);
  if (v === undefined || v === '') return undefined;
  const n = Number(v);
  return Number.isFinite(n) ? n : undefined;
}

function list(section: ViciMessage, key: string): string[] {
  const v = section[key];
  return Array.isArray(v) ? v : [];
}

function isSection(v: ViciValue | undefined): v is ViciMessage {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !Buffer.isBuffer(v);
}

export function parseChildSa(key: string, sa: ViciMessage): ChildSaInfo {
  return {
    // list-sa keys children as "<name>-<uniqueid>" and carries the config name inside.
    name: str(sa, 'name') ?? key,
    uniqueId: str(sa, 'uniqueid') ?? '',
    reqid: str(sa, 'reqid'),
    state: str(sa, 'state') ?? '',
    mode: str(sa, 'mode'),
    protocol: str(sa, 'protocol'),
    encap: str(sa, 'encap') === 'yes',
    spiIn: str(sa, 'spi-in'),
    spiOut: str(sa, 'spi-out'),
    bytesIn: num(sa, 'bytes-in') ?? 0,
    bytesOut: num(sa, 'bytes-out') ?? 0,
    packetsIn: num(sa, 'packets-in') ?? 0,
    packetsOut: num(sa, 'packets-out') ?? 0,
    installTime: num(sa, 'install-time'),
    rekeyTime: num(sa, 'rekey-time'),
    lifeTime: num(sa, 'life-time'),
    localTs: list(sa, 'local-ts'),
    remoteTs: list(sa, 'remote-ts'),
  };
}

export function parseIkeSa(name: string, sa: ViciMessage): IkeSaInfo {
  const childSection = sa['child-sas'];
  const children = isSection(childSection)
    ? Object.entries(childSection).flatMap(([key, child]) => (isSection(child) ? [parseChildSa(key, child)] : []))
    : [];
  return {
    name,
    uniqueId: str(sa, 'uniqueid') ?? '',
    version: str(sa, 'version'),
    state: str(sa, 'state') ?? '',
    localHost: str(sa, 'local-host'),
    localPort: num(sa, 'local-port'),
    localId: str(sa, 'local-id'),
    remoteHost: str(sa, 'remote-host'),
    remotePort: num(sa, 'remote-port'),
    remoteId: str(sa, 'remote-id'),
    initiator: str(sa, 'initiator') === 'yes',
    natAny: str(sa, 'nat-any') === 'yes',
    established: num(sa, 'established'),
    children,
  };
}

/** The IKE_SAs in a list-sa, ike-updown or child-updown message (every section at the root). */
export function parseSaMessage(msg: ViciMessage): IkeSaInfo[] {
  return Object.entries(msg).flatMap(([name, sa]) => (isSection(sa) ? [parseIkeSa(name, sa)] : []));
}

/** ike-updown / child-updown: a down event simply lacks `up`. */
export function parseUpdownEvent(msg: ViciMessage): { up: boolean; sas: IkeSaInfo[] } {
  return { up: msg.up === 'yes', sas: parseSaMessage(msg) };
}

// ---------------------------------------------------------------- typed commands

/** Typed helpers shared by ViciClient and ViciSession. */
export abstract class ViciCommands {
  abstract request(cmd: string, msg?: ViciMessage, opts?: RequestOptions): Promise<ViciMessage>;
  abstract streamed(cmd: string, eventName: string, msg?: ViciMessage, opts?: RequestOptions): Promise<ViciMessage[]>;

  async version(): Promise<VersionInfo> {
    const res = await this.request('version');
    return {
      daemon: str(res, 'daemon') ?? '',
      version: str(res, 'version') ?? '',
      sysname: str(res, 'sysname') ?? '',
      release: str(res, 'release') ?? '',
      machine: str(res, 'machine') ?? '',
    };
  }

  stats(): Promise<ViciMessage> {
    return this.request('stats');
  }

  async loadConn(name: string, conn: ConnConfig): Promise<void> {
    await this.request('load-conn', { [name]: connToMessage(conn) });
  }

  async unloadConn(name: string): Promise<void> {
    await this.request('unload-conn', { name });
  }

  async getConns(): Promise<string[]> {
    return list(await this.request('get-conns'), 'conns');
  }

  async loadShared(key: SharedKey): Promise<void> {
    await this.request('load-shared', { id: key.id, type: key.type, data: key.data, owners: key.owners });
  }

  async unloadShared(id: string): Promise<void> {
    await this.request('unload-shared', { id });
  }

  /** IDs of shared keys loaded with an id. */
  async getShared(): Promise<string[]> {
    return list(await this.request('get-shared'), 'keys');
  }

  async initiate(opts: InitiateOptions): Promise<void> {
    const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    await this.request(
      'initiate',
      withoutUndefined({ child: opts.child, ike: opts.ike, timeout: String(timeoutMs) }),
      { timeoutMs: timeoutMs + CHARON_TIMEOUT_MARGIN_MS },
    );
  }

  async terminate(opts: TerminateOptions): Promise<void> {
    const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    await this.request(
      'terminate',
      withoutUndefined({
        ike: opts.ike,
        child: opts.child,
        'ike-id': opts.ikeId === undefined ? undefined : String(opts.ikeId),
        force: opts.force === undefined ? undefined : yesNo(opts.force),
        timeout: String(timeoutMs),
      }),
      { timeoutMs: timeoutMs + CHARON_TIMEOUT_MARGIN_MS },
    );
  }

  async listSas(filter: SaFilter = {}): Promise<IkeSaInfo[]> {
    const events = await this.streamed(
      'list-sas',
      'list-sa',
      withoutUndefined({
        ike: filter.ike,
        'ike-id': filter.ikeId === undefined ? undefined : String(filter.ikeId),
        noblock: filter.noblock ? 'yes' : undefined,
      }),
    );
    return events.flatMap(parseSaMessage);
  }
}

// ---------------------------------------------------------------- one connection

type Answer = Exclude<ViciPacket, { type: typeof PacketType.EVENT }>;

interface Outstanding {
  label: string;
  resolve(packet: Answer): void;
  reject(err: Error): void;
  timer: NodeJS.Timeout;
}

function connectSocket(socketPath: string, timeoutMs: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = createConnection({ path: socketPath });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new ViciConnectionError(`connecting to VICI socket ${socketPath} timed out after ${timeoutMs} ms`, 'ETIMEDOUT'));
    }, timeoutMs);
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.removeAllListeners('error');
      resolve(socket);
    });
    socket.once('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      socket.destroy();
      reject(new ViciConnectionError(`cannot connect to VICI socket ${socketPath}: ${err.message}`, err.code));
    });
  });
}

export class ViciClient extends ViciCommands {
  readonly socketPath: string;
  private readonly socket: Socket;
  private readonly timeoutMs: number;
  private readonly reader = new SegmentReader();
  private readonly handlers = new Map<string, EventHandler>();
  private readonly closeListeners: ((err: Error) => void)[] = [];
  private outstanding: Outstanding | undefined;
  private queueTail: Promise<void> = Promise.resolve();
  private closeError: Error | undefined;

  private constructor(socket: Socket, socketPath: string, timeoutMs: number) {
    super();
    this.socket = socket;
    this.socketPath = socketPath;
    this.timeoutMs = timeoutMs;
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', (err: NodeJS.ErrnoException) => {
      this.fail(new ViciConnectionError(`VICI connection to ${socketPath} failed: ${err.message}`, err.code));
    });
    socket.on('close', () => {
      this.fail(new ViciConnectionError(`VICI connection to ${socketPath} closed`, 'ECONNRESET'));
    });
  }

  /** `timeoutMs` bounds the connect and is the default per-command timeout. */
  static async connect(socketPath: string, opts: { timeoutMs?: number } = {}): Promise<ViciClient> {
    const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    return new ViciClient(await connectSocket(socketPath, timeoutMs), socketPath, timeoutMs);
  }

  get closed(): boolean {
    return this.closeError !== undefined;
  }

  /** Called once when the connection ends, for whatever reason. */
  onClose(listener: (err: Error) => void): void {
    if (this.closeError !== undefined) queueMicrotask(() => listener(this.closeError as Error));
    else this.closeListeners.push(listener);
  }

  async close(): Promise<void> {
    if (this.closeError === undefined) {
      this.fail(new ViciConnectionError(`VICI connection to ${this.socketPath} closed by client`, 'ECLOSED'));
    }
  }

  async request(cmd: string, msg: ViciMessage = {}, opts: RequestOptions = {}): Promise<ViciMessage> {
    return this.enqueue(async () => {
      const answer = await this.exchange({ type: PacketType.CMD_REQUEST, name: cmd, message: msg }, cmd, opts.timeoutMs);
      return this.responseOf(cmd, answer);
    });
  }

  /** Runs a command that streams `eventName` events before its response; returns the events. */
  async streamed(cmd: string, eventName: string, msg: ViciMessage = {}, opts: RequestOptions = {}): Promise<ViciMessage[]> {
    return this.enqueue(async () => {
      const events: ViciMessage[] = [];
      await this.registerNow(eventName, (_name, event) => events.push(event), opts.timeoutMs);
      try {
        const answer = await this.exchange({ type: PacketType.CMD_REQUEST, name: cmd, message: msg }, cmd, opts.timeoutMs);
        this.responseOf(cmd, answer);
      } finally {
        if (!this.closed) await this.unregisterNow(eventName, opts.timeoutMs);
        this.handlers.delete(eventName);
      }
      return events;
    });
  }

  /**
   * Registers events on THIS connection. Events can arrive between any request and its
   * response; use subscribe() to keep long-lived listeners on a connection of their own.
   */
  registerEvents(events: string[], handler: EventHandler, opts: RequestOptions = {}): Promise<void> {
    return this.enqueue(async () => {
      for (const event of events) await this.registerNow(event, handler, opts.timeoutMs);
    });
  }

  /** Opens a dedicated connection and registers `events` on it. */
  async subscribe(events: string[], handler: EventHandler): Promise<Subscription> {
    const conn = await ViciClient.connect(this.socketPath, { timeoutMs: this.timeoutMs });
    try {
      await conn.registerEvents(events, handler);
    } catch (err) {
      await conn.close();
      throw err;
    }
    return { ready: async () => {}, close: () => conn.close() };
  }

  // ------------------------------------------------------------ internals

  private enqueue<T>(task: () => Promise<T>): Promise<T> {
    const run = this.queueTail.then(() => {
      if (this.closeError !== undefined) throw this.closeError;
      return task();
    });
    this.queueTail = run.then(
      () => undefined,
      () => undefined,
    );
    return run;
  }

  private responseOf(cmd: string, answer: Answer): ViciMessage {
    if (answer.type === PacketType.CMD_UNKNOWN) throw new ViciError(cmd, `unknown VICI command ${cmd}`);
    if (answer.type !== PacketType.CMD_RESPONSE) {
      throw this.protocolError(`expected CMD_RESPONSE to ${cmd}, got ${packetTypeName(answer.type)}`);
    }
    const res = answer.message;
    if (res.success === 'no') {
      throw new ViciError(cmd, typeof res.errmsg === 'string' && res.errmsg !== '' ? res.errmsg : 'no reason given');
    }
    return res;
  }

  private async registerNow(event: string, handler: EventHandler, timeoutMs?: number): Promise<void> {
    // Install first: events may follow the confirm in the same read.
    this.handlers.set(event, handler);
    const answer = await this.exchange({ type: PacketType.EVENT_REGISTER, name: event }, `register ${event}`, timeoutMs);
    if (answer.type === PacketType.EVENT_UNKNOWN) {
      this.handlers.delete(event);
      throw new ViciError(`register ${event}`, `unknown VICI event ${event}`);
    }
    if (answer.type !== PacketType.EVENT_CONFIRM) {
      throw this.protocolError(`expected EVENT_CONFIRM to register ${event}, got ${packetTypeName(answer.type)}`);
    }
  }

  private async unregisterNow(event: string, timeoutMs?: number): Promise<void> {
    const answer = await this.exchange({ type: PacketType.EVENT_UNREGISTER, name: event }, `unregister ${event}`, timeoutMs);
    if (answer.type !== PacketType.EVENT_CONFIRM && answer.type !== PacketType.EVENT_UNKNOWN) {
      throw this.protocolError(`expected EVENT_CONFIRM to unregister ${event}, got ${packetTypeName(answer.type)}`);
    }
  }

  /** Sends one packet and waits for the next non-EVENT packet. Caller holds the queue. */
  private exchange(packet: ViciPacket, label: string, timeoutMs = this.timeoutMs): Promise<Answer> {
    if (this.closeError !== undefined) return Promise.reject(this.closeError);
    // Encode before claiming the slot: an encoding error leaves the connection usable.
    const bytes = encodeSegment(packet);
    return new Promise<Answer>((resolve, reject) => {
      const timer = setTimeout(() => this.fail(new ViciTimeoutError(label, timeoutMs)), timeoutMs);
      this.outstanding = { label, resolve, reject, timer };
      this.socket.write(bytes);
    });
  }

  private onData(chunk: Buffer): void {
    let packets: ViciPacket[];
    try {
      packets = this.reader.push(chunk);
    } catch (err) {
      this.fail(this.protocolError((err as Error).message));
      return;
    }
    for (const packet of packets) {
      if (packet.type === PacketType.EVENT) {
        const handler = this.handlers.get(packet.name);
        if (handler === undefined) continue;
        try {
          handler(packet.name, packet.message);
        } catch (err) {
          // Like an EventEmitter listener: surface the bug rather than swallow it.
          process.nextTick(() => {
            throw err;
          });
        }
        continue;
      }
      const outstanding = this.outstanding;
      if (outstanding === undefined) {
        this.fail(this.protocolError(`unexpected ${packetTypeName(packet.type)} with no command outstanding`));
        return;
      }
      this.outstanding = undefined;
      clearTimeout(outstanding.timer);
      outstanding.resolve(packet);
    }
  }

  private protocolError(detail: string): ViciConnectionError {
    return new ViciConnectionError(`VICI protocol error on ${this.socketPath}: ${detail}`, 'EPROTO');
  }

  private fail(err: Error): void {
    if (this.closeError !== undefined) return;
    this.closeError = err;
    this.socket.destroy();
    const outstanding = this.outstanding;
    this.outstanding = undefined;
    if (outstanding !== undefined) {
      clearTimeout(outstanding.timer);
      outstanding.reject(err);
    }
    this.handlers.clear();
    for (const listener of this.closeListeners.splice(0)) listener(err);
  }
}

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
