// Assertions shared by the e2e scenarios and the failover benchmark: reachability matrices, ping loss, Gateway snapshots.

import type { Gateway } from '../../src/gateway/types.ts';
import type { Fabric, Pinger, PoolName } from './fabric.ts';

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

/** Stop the pingers now and count each one's lost pings since t0: one line per path, and the worst count. */
export async function stopAndCountLoss(f: Fabric, pingers: readonly Pinger[], t0: number): Promise<{ worst: number; lines: string[] }> {
  const t1 = Date.now();
  for (const p of pingers) await p.stop();
  let worst = 0;
  const lines = pingers.map((p) => {
    const w = p.lostBetween(t0, t1);
    worst = Math.max(worst, w.lost);
    return `${p.from} -> ${f.nodeByPod(p.to)}: lost ${w.lost}/${w.sent}`;
  });
  return { worst, lines };
}
