// Assertions shared by the e2e scenarios and the failover benchmark: reachability matrices, ping loss, Gateway snapshots.

import type { Gateway } from '../../src/gateway/types.ts';
import type { Fabric, FabricNode, Pinger, PoolName } from './fabric.ts';
import type { CorvidSystem } from './system.ts';
import { failoverPaths } from './failover.ts';
import { dfPayload, dfProbe, iperf3, tcpTransfer } from '../support/traffic.ts';

export interface PairResult {
  from: string;
  to: string;
  ok: boolean;
}

/** Ping every pod from every other pod once (in parallel). */
export async function podMatrix(f: Fabric, opts: { waitS?: number } = {}): Promise<PairResult[]> {
  const nodes = [...f.nodes.values()];
  const jobs: Promise<PairResult>[] = [];
  for (const a of nodes) {
    for (const b of nodes) {
      if (a === b) continue;
      jobs.push(f.podPing(a.name, b.name, { waitS: opts.waitS ?? 1 }).then((ok) => ({ from: a.name, to: b.name, ok })));
    }
  }
  return Promise.all(jobs);
}

/** Pairs whose result differs from `expected(fromPool, toPool)`; empty when the matrix is as expected. */
export function unexpected(results: PairResult[], f: Fabric, expected: (a: PoolName, b: PoolName) => boolean): string[] {
  return results
    .filter((r) => r.ok !== expected(f.node(r.from).pool, f.node(r.to).pool))
    .map((r) => `${r.from} -> ${r.to}: ${r.ok ? 'reached (expected not)' : 'NOT reached'}`);
}

/** Every pod reaches every pod, until timeoutMs; returns the failures of the last round (empty on success). */
export async function waitForMatrix(f: Fabric, expected: (a: PoolName, b: PoolName) => boolean, timeoutMs: number): Promise<string[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const bad = unexpected(await podMatrix(f), f, expected);
    if (bad.length === 0 || Date.now() > deadline) return bad;
    await new Promise((r) => setTimeout(r, 250));
  }
}

export const everyone = (): boolean => true;

/** name -> resourceVersion of every Gateway. */
export function versions(gws: Map<string, Gateway>): Record<string, string | undefined> {
  return Object.fromEntries([...gws].map(([n, g]) => [n, g.metadata.resourceVersion]).sort());
}

/** name -> active tunnel endpoint node. */
export function actives(gws: Map<string, Gateway>): Record<string, string | undefined> {
  return Object.fromEntries([...gws].map(([n, g]) => [n, g.status?.activeEndpoints?.find((e) => e.type === 'tunnel')?.nodeName]).sort());
}

/**
 * Stop the pingers now and count each one's lost pings since t0: one line per path, and the worst count. With `at`
 * (an event's time), each line also says when its lost pings went out, relative to it.
 */
export async function stopAndCountLoss(f: Fabric, pingers: readonly Pinger[], t0: number, at?: number): Promise<{ worst: number; lines: string[] }> {
  const t1 = Date.now();
  for (const p of pingers) await p.stop();
  let worst = 0;
  const lines = pingers.map((p) => {
    const w = p.lostBetween(t0, t1);
    worst = Math.max(worst, w.lost);
    const when = at === undefined || w.lost === 0 ? '' : ` (sent at ${w.lostSentAt.map((x) => `${x - at >= 0 ? '+' : ''}${Math.round(x - at)}`).join(', ')} ms)`;
    return `${p.from} -> ${f.nodeByPod(p.to)}: lost ${w.lost}/${w.sent}${when}`;
  });
  return { worst, lines };
}

/** A TCP stream's sending rate (iperf3 -b) and report interval across a hand-over. */
export const HANDOVER_STREAM = { bitrate: '8M', intervalS: 0.5 };

/**
 * A rate-limited TCP stream from a member's pod of `pool` to a pod of another pool, for `seconds`, begun before a
 * hand-over and judged after it: it must finish (no reset, no timeout), and no report interval may pass with nothing
 * sent (TCP stalled on a lost window for that long). Returns one line for the log and the problems, if any.
 */
export function handoverStream(f: Fabric, pool: PoolName, seconds: number): Promise<{ line: string; problems: string[] }> {
  const [from, to] = failoverPaths(f, pool)[0];
  const a = f.node(from).pod;
  const b = f.node(to).pod;
  return iperf3(f.lab, a.ns, b.ns, b.ip, { seconds, ...HANDOVER_STREAM }).then((r) => {
    const stalls = r.intervals.filter((i) => i.bytes === 0).map((i) => `${i.start.toFixed(1)}-${i.end.toFixed(1)} s`);
    const problems = [...(r.ok ? [] : [`the stream did not finish: ${r.error ?? 'iperf3 failed'}`]), ...stalls.map((s) => `nothing sent in ${s}`)];
    const line = `TCP ${from} -> ${to} at ${HANDOVER_STREAM.bitrate}bit/s for ${seconds} s: ${r.ok ? `${(r.bitsPerSecond / 1e6).toFixed(1)} Mbit/s received, ${r.retransmits} retransmits, ${stalls.length} stalled intervals of ${HANDOVER_STREAM.intervalS} s` : `failed: ${r.error}`}`;
    return { line, problems };
  });
}

/** The IP and ICMP counters that tell where a forwarded packet died without IPsec's doing (a TTL spent in a loop...). */
const DROP_COUNTERS = new Set(['Ip:OutNoRoutes', 'Ip:InAddrErrors', 'Ip:InDiscards', 'Ip:OutDiscards', 'Icmp:OutTimeExcds', 'Icmp:OutDestUnreachs']);

/** Each node's XFRM error counters (/proc/net/xfrm_stat of its namespace) and its IP drop counters (/proc/net/snmp). */
export async function dropCounters(f: Fabric, nodes: readonly string[]): Promise<Map<string, Map<string, number>>> {
  const out = new Map<string, Map<string, number>>();
  for (const n of nodes) {
    const counters = new Map<string, number>();
    const xfrm = await f.lab.exec(f.node(n).ns, ['cat', '/proc/net/xfrm_stat'], { allowFail: true });
    for (const line of xfrm.stdout.split('\n')) {
      const [name, value] = line.trim().split(/\s+/);
      if (name && value !== undefined) counters.set(name, Number(value));
    }
    // /proc/net/snmp: a line of names, then a line of values, per protocol.
    const lines = (await f.lab.exec(f.node(n).ns, ['cat', '/proc/net/snmp'], { allowFail: true })).stdout.split('\n');
    for (let i = 0; i + 1 < lines.length; i += 2) {
      const names = lines[i].trim().split(/\s+/);
      const values = lines[i + 1].trim().split(/\s+/);
      for (let j = 1; j < names.length; j++) {
        const key = `${names[0]}${names[j]}`;
        if (DROP_COUNTERS.has(key)) counters.set(key, Number(values[j]));
      }
    }
    out.set(n, counters);
  }
  return out;
}

/** The counters that grew between two readings, as "node Counter +n" (a packet dropped for want of an SA...). */
export function counterGrowth(before: Map<string, Map<string, number>>, after: Map<string, Map<string, number>>): string[] {
  const lines: string[] = [];
  for (const [node, counters] of after) {
    for (const [name, value] of counters) {
      const grew = value - (before.get(node)?.get(name) ?? 0);
      if (grew > 0) lines.push(`${node} ${name} +${grew}`);
    }
  }
  return lines;
}

// ---------------------------------------------------------------- real traffic beyond ping

/** The ordered pool pairs (a, b), a ≠ b, with the ordinary node of each, or with the given node of a pool. */
function memberPairs(f: Fabric, pick: Partial<Record<PoolName, string>> = {}): Array<[FabricNode, FabricNode]> {
  const members = [...f.pools.values()].map((p) => (pick[p.name] ? f.node(pick[p.name]!) : p.nodes.find((n) => n.kind === 'member')!));
  return members.flatMap((a) => members.filter((b) => b !== a).map((b): [FabricNode, FabricNode] => [a, b]));
}

/**
 * A bulk TCP transfer (20 MiB by default) between the ordinary nodes' pods (or `nodes`' pods) of every ordered pool
 * pair, direct and relayed, one at a time. An allowed pair must arrive whole with the sending pod's own address; a denied pair must not
 * arrive at all. Returns one line per problem (empty: as expected).
 */
export async function tcpAcrossPools(
  f: Fabric,
  expected: (a: PoolName, b: PoolName) => boolean,
  opts: { bytes?: number; nodes?: Partial<Record<PoolName, string>> } = {},
): Promise<string[]> {
  const bad: string[] = [];
  for (const [a, b] of memberPairs(f, opts.nodes)) {
    const want = expected(a.pool, b.pool);
    const r = await tcpTransfer(f.lab, a.pod.ns, b.pod.ns, b.podIP, { bytes: opts.bytes, timeoutMs: want ? 15_000 : 3_000 });
    if (want && !r.ok) bad.push(`${a.name} -> ${b.name}: TCP failed: ${r.error}`);
    else if (want && r.peer !== a.podIP) bad.push(`${a.name} -> ${b.name}: the receiver saw ${r.peer}, not the pod's ${a.podIP}`);
    else if (!want && r.bytes > 0) bad.push(`${a.name} -> ${b.name}: ${r.bytes} bytes arrived over a denied pair`);
  }
  return bad;
}

/**
 * A DF probe at the sending pod's MTU between the ordinary nodes' pods of every ordered pool pair. Allowed pairs must
 * pass, at once or after the path told the pod its MTU ("fragmentation needed" from Corvid's route, never from the
 * broken router); denied pairs must not. Returns one line per problem, and the path MTU each allowed pair ended with.
 */
export async function dfAcrossPools(f: Fabric, expected: (a: PoolName, b: PoolName) => boolean): Promise<{ bad: string[]; mtus: string[] }> {
  const bad: string[] = [];
  const mtus: string[] = [];
  for (const [a, b] of memberPairs(f)) {
    const want = expected(a.pool, b.pool);
    const first = await dfProbe(f.lab, a.pod.ns, b.podIP, dfPayload(a.pod.mtu), { count: 2 });
    let ok = first.ok;
    let mtu = a.pod.mtu;
    // Follow what the path says, as a pod's TCP would: twice more at most (a path MTU the pod cached from an earlier
    // path, larger than the new one, is corrected by the next "fragmentation needed").
    let last = first;
    for (let i = 0; i < 2 && !ok && last.mtu !== undefined && last.mtu < mtu; i++) {
      mtu = last.mtu;
      last = await dfProbe(f.lab, a.pod.ns, b.podIP, dfPayload(mtu), { count: 2 });
      ok = last.ok;
    }
    if (want && !ok) bad.push(`${a.name} -> ${b.name}: no DF packet got through (first probe: ${first.output.split('\n').slice(-3).join(' / ')})`);
    if (!want && ok) bad.push(`${a.name} -> ${b.name}: a DF probe crossed a denied pair`);
    if (want && ok) mtus.push(`${a.pool}->${b.pool} ${mtu}`);
  }
  return { bad, mtus };
}

/**
 * spec.nodeAddresses: a TCP transfer from the ordinary node of each pool to a sink bound on every other pool's ordinary
 * node's own address (its InternalIP), node namespace to node namespace. `on`: each arrives whole with the sending
 * node's address; off: not one byte arrives (run in parallel, each fails at once without a route). One line per problem.
 */
export async function nodeTcpAcrossPools(f: Fabric, on: boolean, opts: { bytes?: number; timeoutMs?: number } = {}): Promise<string[]> {
  const one = async ([a, b]: [FabricNode, FabricNode]): Promise<string | undefined> => {
    const r = await tcpTransfer(f.lab, a.ns, b.ns, b.lanIP, { bytes: opts.bytes ?? 1 << 20, timeoutMs: opts.timeoutMs ?? (on ? 15_000 : 3_000) });
    if (on && !r.ok) return `${a.name} -> ${b.name} (${b.lanIP}): TCP failed: ${r.error}`;
    if (on && r.peer !== a.lanIP) return `${a.name} -> ${b.name} (${b.lanIP}): the receiver saw ${r.peer}, not the node's ${a.lanIP}`;
    if (!on && r.bytes > 0) return `${a.name} -> ${b.name} (${b.lanIP}): ${r.bytes} bytes arrived with node addresses off`;
    return undefined;
  };
  const pairs = memberPairs(f);
  const results: Array<string | undefined> = [];
  if (on) for (const p of pairs) results.push(await one(p));
  else results.push(...(await Promise.all(pairs.map(one))));
  return results.filter((r): r is string => r !== undefined);
}

/**
 * Bulk TCP after a scenario: 4 MiB a pair (thousands of full-size segments: MSS, path MTU and the pod's own source
 * are proved as well as by the 20 MiB of a first push, in a quarter of the time; each suite checks this 5-7 times).
 */
export const RECHECK_TRANSFER_BYTES = 4 * 1024 * 1024;

/**
 * The checks every scenario file repeats, bound to its (late-built) fabric and system: fail with the logs, "the
 * network is whole" as a precondition, and real traffic (bulk TCP with the pod's own source, DF at the pod MTU;
 * RECHECK_TRANSFER_BYTES unless `bytes` says otherwise).
 */
export function scenarioChecks(env: () => { f: Fabric; sys: CorvidSystem }) {
  const fail = (msg: string, nodes?: string[]): never => {
    throw new Error(`${msg}\n${env().sys.logTail(nodes)}`);
  };
  const whole = async (): Promise<void> => {
    const bad = await waitForMatrix(env().f, everyone, 30_000);
    if (bad.length > 0) fail(`precondition: the network is not whole (left so by an earlier scenario):\n${bad.join('\n')}`);
  };
  const traffic = async (when: string, bytes = RECHECK_TRANSFER_BYTES): Promise<void> => {
    const { f } = env();
    const tcp = await tcpAcrossPools(f, everyone, { bytes });
    if (tcp.length > 0) fail(`bulk TCP ${when}:\n${tcp.join('\n')}`);
    const df = await dfAcrossPools(f, everyone);
    if (df.bad.length > 0) fail(`DF probes ${when}:\n${df.bad.join('\n')}`);
  };
  return { fail, whole, traffic };
}
