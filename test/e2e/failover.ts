// Scenario 4 as a reusable runner (the e2e test and bench/failover.ts): the active gateway of a pool dies (agent and
// charon SIGKILLed: its heartbeat stops and it answers no liveness probe), the other candidate takes over; measured with 100 ms pings across pools,
// timed by ping's own reply timestamps.

import type { Fabric, PoolName } from './fabric.ts';
import { Pinger } from './fabric.ts';
import type { CorvidSystem } from './system.ts';
import { waitFor } from './system.ts';

export interface PathRecovery {
  /** `from -> to` (node names; pod addresses). */
  path: string;
  /** Kill -> first reply after the outage (ms); undefined when it never came back within the timeout. */
  recoveryMs?: number;
  /** Requests lost in the outage. */
  lost: number;
}

export interface FailoverResult {
  pool: PoolName;
  killed: string;
  successor: string;
  /** Kill -> the Gateway's status names the successor (ms, polled every 50 ms). */
  electedMs: number;
  paths: PathRecovery[];
  /** Kill -> every path answers again (the slowest path); undefined when one never did. */
  recoveryMs?: number;
  /** Kill -> the first path that answers again. */
  firstRecoveryMs?: number;
}

/** Cross-pool paths that depend on `pool`'s gateway: to and from it, and relayed between the two edges. */
export function failoverPaths(f: Fabric, pool: PoolName): Array<[string, string]> {
  const member = (p: PoolName) => f.pool(p).nodes.find((n) => n.kind === 'member')!.name;
  const others = (['cloud', 'edge-a', 'edge-b'] as PoolName[]).filter((p) => p !== pool);
  const paths: Array<[string, string]> = [];
  for (const o of others) paths.push([member(pool), member(o)], [member(o), member(pool)]);
  return paths;
}

/**
 * Kill the active gateway of `pool` and measure until every path answers again. With `revive`, the dead node is
 * brought back afterwards (as a healthy, non-active candidate) and the runner waits for its heartbeat, so the next
 * run starts from a pool with two healthy candidates again.
 */
export async function runFailover(sys: CorvidSystem, pool: PoolName, opts: { timeoutMs?: number; revive?: boolean } = {}): Promise<FailoverResult> {
  const f = sys.fabric;
  const timeoutMs = opts.timeoutMs ?? 60_000;
  const killed = await sys.activeOf(pool);
  if (!killed) throw new Error(`pool ${pool} has no active gateway`);
  const successor = f.candidates(pool).find((n) => n.name !== killed)!.name;
  await waitFor(`${successor} live (heartbeat fresh, reachable in its pool)`, () => sys.candidateLive(successor), 30_000);

  const pingers = failoverPaths(f, pool).map(([a, b]) => new Pinger(f, a, f.node(b).podIP));
  try {
    const start = Date.now();
    for (const p of pingers) {
      if (!(await p.waitForReply(start, 10_000))) throw new Error(`no steady pings ${p.from} -> ${p.to} before the kill`);
    }
    await new Promise((r) => setTimeout(r, 500));

    const killAt = sys.die(killed);
    const electedAt = await waitFor(`${successor} elected in ${pool}`, async () => ((await sys.activeOf(pool)) === successor ? Date.now() : undefined), timeoutMs, 50);
    const paths: PathRecovery[] = [];
    await Promise.all(
      pingers.map(async (p) => {
        const r = await p.waitForRecovery(killAt, Math.max(0, killAt + timeoutMs - Date.now()));
        const o = p.outage(killAt);
        paths.push({ path: `${p.from} -> ${f.nodeByPod(p.to)}`, recoveryMs: r ? r.at - killAt : undefined, lost: o.lost });
      }),
    );
    paths.sort((a, b) => (a.path < b.path ? -1 : 1));
    const times = paths.map((p) => p.recoveryMs);
    const all = times.every((t) => t !== undefined) ? Math.max(...(times as number[])) : undefined;
    const some = times.filter((t) => t !== undefined) as number[];
    return {
      pool,
      killed,
      successor,
      electedMs: electedAt - killAt,
      paths,
      recoveryMs: all,
      firstRecoveryMs: some.length > 0 ? Math.min(...some) : undefined,
    };
  } finally {
    await Promise.all(pingers.map((p) => p.stop()));
    if (opts.revive) {
      const revivedAt = Date.now();
      await sys.revive(killed);
      await waitFor(`${killed} back (agent ready, heartbeat renewed, reachable in its pool)`, async () => {
        if (!(await sys.agents.get(killed)!.ready())) return false;
        return sys.candidateLive(killed, revivedAt);
      }, 30_000);
    }
  }
}

export function formatFailover(r: FailoverResult): string {
  const ms = (v: number | undefined) => (v === undefined ? 'never' : `${v} ms`);
  const lines = [
    `failover in ${r.pool}: killed ${r.killed}, ${r.successor} elected after ${r.electedMs} ms; ` +
      `first path back after ${ms(r.firstRecoveryMs)}, all paths after ${ms(r.recoveryMs)}`,
    ...r.paths.map((p) => `  ${p.path.padEnd(32)} back after ${ms(p.recoveryMs).padStart(9)}  (${p.lost} pings lost)`),
  ];
  return lines.join('\n');
}
