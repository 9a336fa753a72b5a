// The UDP side of data-plane liveness (nodeplan/liveness.ts decides): every gateway candidate answers probes on one
// UDP port, and probes the other candidates of its pool from that same port every interval. A probe and its answer
// are 19 bytes each (no amplification), and only a probe from one of those candidates is answered.
import dgram from 'node:dgram';
import { ipVersion, usableIPVersion } from '../../topology/ip.ts';
import type { TargetObservation } from '../../nodeplan/liveness.ts';

/** The UDP port candidates answer probes on (agent flag --liveness-port). */
export const DEFAULT_LIVENESS_PORT = 9472;

const TAG = 'corvid-liveness/1 ';
const PROBE = Buffer.from(`${TAG}?`);
/** The answer of a candidate whose datapath holds its pool's active role... */
const ANSWER_ACTIVE = Buffer.from(`${TAG}!`);
/** ...and of one whose datapath does not (a standby, or a predecessor that has let go: see nodeplan's handoverFrom). */
const ANSWER_STANDBY = Buffer.from(`${TAG}-`);

/** What was sent to and heard from each address: the observations the verdict is made from. */
export class ProbeBook {
  private readonly seen = new Map<string, { lastReplyMs?: number; unansweredProbes: number; active?: boolean }>();
  private readonly now: () => number;

  constructor(now: () => number = Date.now) {
    this.now = now;
  }

  /** Watch exactly these addresses (new ones start with a clean slate; dropped ones are forgotten). */
  setTargets(addresses: readonly string[]): void {
    const want = new Set(addresses);
    for (const a of [...this.seen.keys()]) if (!want.has(a)) this.seen.delete(a);
    for (const a of want) if (!this.seen.has(a)) this.seen.set(a, { unansweredProbes: 0 });
  }

  targets(): string[] {
    return [...this.seen.keys()];
  }

  /** The prober was away (nodeplan/liveness.ts, proberWasAway): every target's silence starts now, as if just heard. */
  restart(): void {
    const now = this.now();
    for (const o of this.seen.values()) {
      if (o.lastReplyMs !== undefined) o.lastReplyMs = now;
      o.unansweredProbes = 0;
    }
  }

  sent(address: string): void {
    const o = this.seen.get(address);
    if (o !== undefined) o.unansweredProbes++;
  }

  /** An answer from `address`; `active`: whether its datapath holds the pool's active role, as it said. */
  answered(address: string, active: boolean): void {
    const o = this.seen.get(address);
    if (o === undefined) return;
    o.lastReplyMs = this.now();
    o.unansweredProbes = 0;
    o.active = active;
  }

  /** The observations of an address. */
  observation(address: string): Omit<TargetObservation, 'node'> | undefined {
    const o = this.seen.get(address);
    if (o === undefined) return undefined;
    const { active: _active, ...rest } = o;
    return rest;
  }

  /**
   * Whether `address` last said its datapath holds the active role, if it answered within `withinMs`; undefined when
   * it did not (never heard, or silent since).
   */
  saysActive(address: string, withinMs: number): boolean | undefined {
    const o = this.seen.get(address);
    if (o?.lastReplyMs === undefined || this.now() - o.lastReplyMs > withinMs) return undefined;
    return o.active;
  }
}

export interface UdpLivenessOptions {
  port: number;
  intervalMs: number;
  /** Called for every probe sent and every answer received, with the peer's address. */
  onSent?: (address: string) => void;
  onAnswer?: (address: string, active: boolean) => void;
  onError?: (message: string) => void;
  /** Whether to answer probes now (default always); a worker answers only while its agent is alive. */
  answering?: () => boolean;
  /** Whether this node's datapath holds its pool's active role now (said in every answer; default false). */
  active?: () => boolean;
}

/**
 * Answers probes and probes `targets` every interval, on one socket per address family bound to the liveness port
 * on every address of this network namespace.
 */
export class UdpLiveness {
  private readonly o: UdpLivenessOptions;
  private readonly sockets = new Map<4 | 6, dgram.Socket>();
  private targets: string[] = [];
  private timer: NodeJS.Timeout | undefined;

  constructor(o: UdpLivenessOptions) {
    this.o = o;
  }

  /** Bind the port (IPv4 always; IPv6 where the namespace has it). Rejects when IPv4 cannot be bound. */
  async start(): Promise<void> {
    this.sockets.set(4, await this.bind('udp4', '0.0.0.0'));
    try {
      this.sockets.set(6, await this.bind('udp6', '::'));
    } catch {
      // No IPv6 in this namespace: IPv4 targets only.
    }
    const tick = (): void => {
      for (const t of this.targets) this.send(t);
      this.timer = setTimeout(tick, this.o.intervalMs);
    };
    this.timer = setTimeout(tick, 0);
  }

  setTargets(addresses: readonly string[]): void {
    this.targets = addresses.filter((a) => usableIPVersion(a) !== 0);
  }

  async close(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    await Promise.all([...this.sockets.values()].map((s) => new Promise<void>((r) => s.close(() => r()))));
    this.sockets.clear();
  }

  private bind(type: 'udp4' | 'udp6', address: string): Promise<dgram.Socket> {
    return new Promise((resolve, reject) => {
      const s = dgram.createSocket({ type, ipv6Only: type === 'udp6' });
      s.once('error', reject);
      s.bind(this.o.port, address, () => {
        s.removeListener('error', reject);
        // Send errors (an unreachable network while a link is down) are not fatal: the silence is the signal.
        s.on('error', (e) => this.o.onError?.(e.message));
        s.on('message', (msg, from) => this.receive(s, msg, from));
        resolve(s);
      });
    });
  }

  private receive(s: dgram.Socket, msg: Buffer, from: dgram.RemoteInfo): void {
    const peer = unmapped(from.address);
    // Only the candidates it watches are answered (they watch it in turn): to anyone else the port is silent.
    if (!this.targets.includes(peer)) return;
    if (msg.equals(PROBE)) {
      if (this.o.answering?.() !== false) s.send(this.o.active?.() === true ? ANSWER_ACTIVE : ANSWER_STANDBY, from.port, from.address);
    } else if (msg.equals(ANSWER_ACTIVE)) this.o.onAnswer?.(peer, true);
    else if (msg.equals(ANSWER_STANDBY)) this.o.onAnswer?.(peer, false);
  }

  private send(address: string): void {
    const s = this.sockets.get(ipVersion(address) === 6 ? 6 : 4);
    if (s === undefined) return;
    this.o.onSent?.(address);
    s.send(PROBE, this.o.port, address, (e) => {
      if (e) this.o.onError?.(e.message);
    });
  }
}

/** An IPv4 address as the socket may report it (`::ffff:a.b.c.d` on a dual-stack socket) -> a.b.c.d. */
function unmapped(a: string): string {
  return a.startsWith('::ffff:') && ipVersion(a.slice(7)) === 4 ? a.slice(7) : a;
}
