// One VICI connection over charon's unix socket: one command at a time, events dispatched by name, dedicated
// connections for subscriptions.
import { createConnection, type Socket } from 'node:net';
import { PacketType, SegmentReader, encodeSegment, packetTypeName, type ViciMessage, type ViciPacket } from './codec.ts';
import {
  DEFAULT_TIMEOUT_MS,
  ViciCommands,
  ViciConnectionError,
  ViciError,
  ViciTimeoutError,
  type EventHandler,
  type RequestOptions,
  type Subscription,
} from './messages.ts';

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
