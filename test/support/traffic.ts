// Real traffic between namespaces beyond ping: a bulk TCP transfer whose receiver reports the bytes, their sha256 and
// the peer address it saw (so a test can tell a masqueraded flow from one that kept its pod address), and a DF probe
// that reports the path MTU the kernel knows. Both ends are Node processes (traffic-peer.ts) started with the test's
// own Node (`process.execPath`) inside the namespaces, tracked by the lab and killed at a deadline.
import type { ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { stopChild, type NetnsLab } from './netns.ts';

const PEER_SCRIPT = fileURLToPath(new URL('./traffic-peer.ts', import.meta.url));

export const DEFAULT_TRANSFER_BYTES = 20 * 1024 * 1024;

export interface TransferResult {
  /** The receiver got every byte sent, with the same sha256. */
  ok: boolean;
  /** Bytes the receiver got. */
  bytes: number;
  /** Receiver's time from accept to EOF. */
  seconds: number;
  /** The source address the receiver saw. */
  peer?: string;
  /** sha256 of what the receiver got and of what the sender sent. */
  sha256?: string;
  sentSha256?: string;
  /** The sender's local address. */
  local?: string;
  error?: string;
}

export interface TransferOptions {
  /** Bytes to send; default 20 MiB. */
  bytes?: number;
  /** Whole transfer, set-up included; default 30 s. Both processes are killed at the deadline. */
  timeoutMs?: number;
  /** Seed of the pseudo-random content; default 1. */
  seed?: number;
  /** Port the sink listens on; default 0 (any free one). */
  port?: number;
  /** Bind the sender to this local address. */
  from?: string;
}

interface JsonLine {
  listening?: number;
  bytes?: number;
  sha256?: string;
  peer?: string;
  local?: string;
  seconds?: number;
  error?: string;
}

/** Collects a child's JSON lines; `next(pred)` resolves with the first line matching pred, or at exit with undefined. */
function jsonLines(child: ChildProcess): { next: (pred: (l: JsonLine) => boolean) => Promise<JsonLine | undefined>; stderr: () => string } {
  const lines: JsonLine[] = [];
  const waiters: Array<() => void> = [];
  let buf = '';
  let err = '';
  let exited = false;
  const wake = (): void => {
    for (const w of waiters.splice(0)) w();
  };
  child.stdout!.setEncoding('utf8').on('data', (c: string) => {
    buf += c;
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      try {
        lines.push(JSON.parse(line) as JsonLine);
      } catch {
        err += line + '\n';
      }
    }
    wake();
  });
  child.stderr!.setEncoding('utf8').on('data', (c: string) => {
    err += c;
  });
  child.once('exit', () => {
    exited = true;
    wake();
  });
  const next = async (pred: (l: JsonLine) => boolean): Promise<JsonLine | undefined> => {
    for (;;) {
      const hit = lines.find(pred);
      if (hit) return hit;
      if (exited) return undefined;
      await new Promise<void>((r) => waiters.push(r));
    }
  };
  return { next, stderr: () => err.trim() };
}

function within<T>(p: Promise<T>, ms: number): Promise<T | 'timeout'> {
  let timer: NodeJS.Timeout | undefined;
  const t = new Promise<'timeout'>((r) => {
    timer = setTimeout(() => r('timeout'), ms);
  });
  return Promise.race([p, t]).finally(() => clearTimeout(timer));
}

/**
 * Send `bytes` of pseudo-random data over one TCP connection from namespace `fromNs` to `toIP`, where a sink in
 * `toNs` listens. Never throws for a network failure: `ok` is false and `error` says what happened.
 */
export async function tcpTransfer(lab: NetnsLab, fromNs: string, toNs: string, toIP: string, opts: TransferOptions = {}): Promise<TransferResult> {
  const bytes = opts.bytes ?? DEFAULT_TRANSFER_BYTES;
  const timeoutMs = opts.timeoutMs ?? 30_000;
  const started = Date.now();
  const left = (): number => Math.max(1, timeoutMs - (Date.now() - started));
  const sink = lab.spawn(toNs, [process.execPath, PEER_SCRIPT, 'sink', toIP, String(opts.port ?? 0), String(timeoutMs)]);
  const sinkOut = jsonLines(sink);
  let source: ChildProcess | undefined;
  const fail = (error: string, partial: Partial<TransferResult> = {}): TransferResult => ({ ok: false, bytes: 0, seconds: (Date.now() - started) / 1000, ...partial, error });
  try {
    const listening = await within(sinkOut.next((l) => l.listening !== undefined || l.error !== undefined), left());
    if (listening === 'timeout' || listening?.listening === undefined) {
      return fail(`sink did not start: ${listening === 'timeout' ? 'timeout' : (listening?.error ?? sinkOut.stderr())}`);
    }
    source = lab.spawn(fromNs, [process.execPath, PEER_SCRIPT, 'source', toIP, String(listening.listening), String(bytes), String(opts.seed ?? 1), String(timeoutMs), opts.from ?? '']);
    const srcOut = jsonLines(source);
    const both = Promise.all([
      sinkOut.next((l) => l.sha256 !== undefined || l.error !== undefined),
      srcOut.next((l) => l.sha256 !== undefined || l.error !== undefined),
    ]);
    const r = await within(both, left());
    if (r === 'timeout') return fail(`no result within ${timeoutMs} ms`);
    const [got, sent] = r;
    if (!got || got.error !== undefined) return fail(`sink: ${got?.error ?? (sinkOut.stderr() || 'exited without a result')}`, { bytes: got?.bytes ?? 0 });
    if (!sent || sent.error !== undefined) return fail(`source: ${sent?.error ?? (srcOut.stderr() || 'exited without a result')}`, { bytes: got.bytes ?? 0, peer: got.peer });
    const result: TransferResult = {
      ok: got.bytes === bytes && sent.bytes === bytes && got.sha256 === sent.sha256,
      bytes: got.bytes ?? 0,
      seconds: got.seconds ?? 0,
      peer: got.peer,
      sha256: got.sha256,
      sentSha256: sent.sha256,
      local: sent.local,
    };
    if (!result.ok) result.error = `received ${result.bytes} of ${bytes} bytes${got.sha256 !== sent.sha256 ? ', sha256 differs' : ''}`;
    return result;
  } finally {
    await Promise.all([stopChild(sink, 1000), source ? stopChild(source, 1000) : undefined]);
  }
}

// ---------------------------------------------------------------- DF probes

export interface DfProbeResult {
  /** Every echo came back, unfragmented. */
  ok: boolean;
  /** The MTU the kernel reported ("message too long, mtu=N" locally, or "Frag needed ... (mtu = N)" from a hop). */
  mtu?: number;
  output: string;
}

/** The ICMP payload (`ping -s`) that fills a packet of `mtu` bytes exactly. */
export function dfPayload(mtu: number): number {
  return mtu - 28;
}

/**
 * `ping -M do -s <size>` from ns to dst. A too-big packet fails with the MTU the kernel reports; with count ≥ 2 a
 * path MTU learned from a hop's "fragmentation needed" shows up as well.
 */
export async function dfProbe(lab: NetnsLab, ns: string, dst: string, size: number, opts: { count?: number; waitS?: number; source?: string } = {}): Promise<DfProbeResult> {
  const argv = ['ping', '-n', '-M', 'do', '-s', String(size), '-c', String(opts.count ?? 1), '-i', '0.2', '-W', String(opts.waitS ?? 1)];
  if (opts.source) argv.push('-I', opts.source);
  const r = await lab.exec(ns, [...argv, dst], { allowFail: true });
  const output = `${r.stdout}${r.stderr}`;
  const m = /mtu\s*=\s*(\d+)/.exec(output);
  return { ok: r.code === 0, mtu: m ? Number(m[1]) : undefined, output: output.trim() };
}

// ---------------------------------------------------------------- iperf3 (benchmarks)

export interface IperfResult {
  ok: boolean;
  /** Receiver's throughput. */
  bitsPerSecond: number;
  /** TCP retransmits seen by the sender (UDP: lost datagrams). */
  retransmits: number;
  /** UDP only: lost / sent datagrams, in percent. */
  lostPercent?: number;
  /** The sender's report per interval (`intervalS`): seconds from the start, and bytes sent in it. */
  intervals: Array<{ start: number; end: number; bytes: number }>;
  error?: string;
}

/**
 * One iperf3 run from `fromNs` to a one-shot server (`-s -1`) on `toIP` in `toNs`: for throughput benchmarks, where
 * iperf3 (about 4x faster than tcpTransfer here, which hashes every byte) keeps the tool out of the measurement and
 * reports retransmits. Needs Debian's iperf3; without it `ok` is false and `error` says so.
 */
export async function iperf3(
  lab: NetnsLab,
  fromNs: string,
  toNs: string,
  toIP: string,
  opts: { seconds?: number; udp?: boolean; bitrate?: string; port?: number; bind?: string; intervalS?: number } = {},
): Promise<IperfResult> {
  const seconds = opts.seconds ?? 3;
  const port = String(opts.port ?? 5201);
  const fail = (error: string): IperfResult => ({ ok: false, bitsPerSecond: 0, retransmits: 0, intervals: [], error });
  const server = lab.spawn(toNs, ['iperf3', '-s', '-1', '--forceflush', '-B', toIP, '-p', port]);
  const serverOut = outputOf(server);
  try {
    // The server prints its banner once it listens.
    const up = await within(serverOut.waitFor(/listening/i), 5000);
    if (up !== true) return fail(`iperf3 server did not start: ${serverOut.text().trim() || 'timeout'}`);
    const argv = ['timeout', String(seconds + 10), 'iperf3', '-J', '-c', toIP, '-p', port, '-t', String(seconds)];
    if (opts.intervalS !== undefined) argv.push('-i', String(opts.intervalS));
    if (opts.bind !== undefined) argv.push('-B', opts.bind);
    if (opts.udp) argv.push('-u', '-b', opts.bitrate ?? '1G');
    else if (opts.bitrate) argv.push('-b', opts.bitrate);
    const r = await lab.exec(fromNs, argv, { allowFail: true });
    let j: {
      error?: string;
      intervals?: Array<{ sum?: { start: number; end: number; bytes: number } }>;
      end?: { sum_received?: { bits_per_second: number }; sum_sent?: { retransmits?: number }; sum?: { bits_per_second: number; lost_packets: number; lost_percent: number } };
    };
    try {
      j = JSON.parse(r.stdout);
    } catch {
      return fail(`iperf3 client: ${(r.stderr || r.stdout).trim().split('\n')[0]}`);
    }
    if (j.error) return fail(`iperf3: ${j.error}`);
    const intervals = (j.intervals ?? []).flatMap((i) => (i.sum === undefined ? [] : [{ start: i.sum.start, end: i.sum.end, bytes: i.sum.bytes }]));
    if (opts.udp) {
      const sum = j.end?.sum;
      return { ok: r.code === 0, bitsPerSecond: sum?.bits_per_second ?? 0, retransmits: sum?.lost_packets ?? 0, lostPercent: sum?.lost_percent, intervals };
    }
    return { ok: r.code === 0, bitsPerSecond: j.end?.sum_received?.bits_per_second ?? 0, retransmits: j.end?.sum_sent?.retransmits ?? 0, intervals };
  } finally {
    await stopChild(server, 1000);
  }
}

/** A child's stdout and stderr as text, with a wait for a pattern. */
function outputOf(child: ChildProcess): { text: () => string; waitFor: (re: RegExp) => Promise<boolean> } {
  let text = '';
  const waiters: Array<() => void> = [];
  const feed = (c: string): void => {
    text += c;
    for (const w of waiters.splice(0)) w();
  };
  child.stdout!.setEncoding('utf8').on('data', feed);
  child.stderr!.setEncoding('utf8').on('data', feed);
  let exited = false;
  child.once('exit', () => {
    exited = true;
    feed('');
  });
  return {
    text: () => text,
    waitFor: async (re) => {
      for (;;) {
        if (re.test(text)) return true;
        if (exited) return false;
        await new Promise<void>((r) => waiters.push(r));
      }
    },
  };
}
