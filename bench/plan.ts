// Planner benchmark: plan() at 1k, 10k and 100k nodes, 10 nodes per pool, inputs built in memory.
// `npx node bench/plan.ts`, or through bench/run.ts. Goal: < 100 ms at 10k nodes, linear growth.
//
// Topology shape (an edge fleet): 3 public cloud pools, then sites of 10 nodes; 1 site in 20 is public, the rest are
// behind NAT; two gateway candidates per pool; two deny rules; the cloud pools share an encryption override and one
// links[] override exists. "cold" = first plan (no live Gateways: every relay is chosen by rendezvous hashing);
// "steady" = the sync loop's usual case, re-planning with the previous output as the live Gateways. Medians after a
// warm-up; growth per 10x compares steady medians.

import { fileURLToPath } from 'node:url';
import { machine, machineLine, type Machine } from './machine.ts';
import { plan } from '../src/plan/planner.ts';
import type { CandidateHealth, InventoryNode, PlanInput } from '../src/plan/types.ts';
import type { Pool, Topology } from '../src/topology/types.ts';

const POOL_KEY = 'topology.corvid.dev/pool';
const NODES_PER_POOL = 10;
const NOW = '2026-01-01T01:00:00Z';

export function buildPlanInput(nodeCount: number): PlanInput {
  const poolCount = Math.max(4, Math.round(nodeCount / NODES_PER_POOL));
  const names = Array.from({ length: poolCount }, (_, i) => (i < 3 ? `cloud-${'abc'[i]}` : `site-${String(i).padStart(6, '0')}`));
  const pools: Pool[] = names.map((name, i) => ({
    name,
    nodeSelector: { matchLabels: { [POOL_KEY]: name } },
    gateways: [0, 1].map((k) => ({ node: `${name}-n${k}`, publicPort: 4500, ...(i < 3 ? { publicIP: `203.0.113.${i * 2 + k + 1}` } : {}) })),
    behindNAT: i >= 3 && i % 20 !== 0,
    ...(i < 3 ? { encryption: { espProposals: ['aes256gcm16-prfsha384'] } } : {}),
  }));
  const topology: Topology = {
    name: 'bench',
    allowEmpty: false,
    podSubnets: { source: 'auto' },
    encryption: { backend: 'ipsec', ikeProposals: ['aes256-sha256-modp2048'], espProposals: ['aes256-sha256'], pskSecretRef: { name: 'corvid-psk', key: 'psk' }, allowInsecure: false },
    connectivity: {
      mode: 'mesh',
      rules: [
        { action: 'deny', pools: [names[3], names[4]] },
        { action: 'deny', pools: [names[names.length - 1], 'cloud-c'] },
      ],
    },
    election: { sticky: true, preempt: false, minHealthySeconds: 30, heartbeatTimeoutSeconds: 3, replicas: 1 },
    pools: [...pools].sort((a, b) => (a.name < b.name ? -1 : 1)),
    links: [{ pools: ['cloud-a', names[3]], encryption: { ikeProposals: ['aes256-sha384-modp3072'] } }],
  };
  const nodes: InventoryNode[] = [];
  const health: Record<string, CandidateHealth> = {};
  for (let p = 0; p < poolCount && nodes.length < nodeCount; p++) {
    for (let k = 0; k < NODES_PER_POOL && nodes.length < nodeCount; k++) {
      const n = nodes.length;
      const name = `${names[p]}-n${k}`;
      nodes.push({
        name,
        labels: { [POOL_KEY]: names[p], 'kubernetes.io/hostname': name, 'kubernetes.io/os': 'linux', 'topology.kubernetes.io/zone': `z${p % 3}` },
        ready: true,
        readySince: '2026-01-01T00:00:00Z',
        internalIP: `10.${(n >> 16) & 255}.${(n >> 8) & 255}.${n & 255}`,
        podCIDRs: [`100.${(n >> 8) & 255}.${n & 255}.0/24`],
        unschedulable: false,
        drained: false,
      });
      if (k < 2) health[name] = { heartbeatAgeSeconds: 1, heartbeatSince: '2026-01-01T00:00:00Z', tunnelHealthy: true };
    }
  }
  // Deterministic shuffle: the planner must not depend on input order, and real lists are not sorted by pool.
  let seed = 42;
  for (let i = nodes.length - 1; i > 0; i--) {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    const j = seed % (i + 1);
    [nodes[i], nodes[j]] = [nodes[j], nodes[i]];
  }
  // Through JSON, as the sync gets it from the API server and the topology loader (flat strings, fresh objects).
  return JSON.parse(JSON.stringify({ topology, revision: `main@sha1:${'0'.repeat(40)}`, nodes, health, previous: [], now: NOW })) as PlanInput;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/**
 * Median and minimum wall time, and median CPU time of this process (user + system, all threads: less disturbed by
 * other load on the machine, but it includes parallel GC work), of `runs` calls after `warmup` calls.
 */
function time(fn: () => void, runs: number, warmup: number): { median: number; min: number; cpu: number } {
  for (let i = 0; i < warmup; i++) fn();
  const samples: number[] = [];
  const cpu: number[] = [];
  for (let i = 0; i < runs; i++) {
    const c = process.cpuUsage();
    const t = performance.now();
    fn();
    samples.push(performance.now() - t);
    const d = process.cpuUsage(c);
    cpu.push((d.user + d.system) / 1000);
  }
  return { median: median(samples), min: Math.min(...samples), cpu: median(cpu) };
}

export interface PlanBenchRow {
  nodes: number;
  pools: number;
  runs: number;
  coldMs: number;
  steadyMs: number;
  /** Fastest steady run: the figure least disturbed by other load on the machine. */
  steadyMinMs: number;
  /** Median CPU time of the steady runs. */
  steadyCpuMs: number;
  /** steadyMs / steadyMs of the previous row (10× fewer nodes). */
  growth?: number;
}

export interface PlanBenchResult {
  name: 'plan';
  machine: Machine;
  rows: PlanBenchRow[];
}

export function formatPlanBench(r: PlanBenchResult): string {
  const head = ['nodes', 'pools', 'runs', 'cold median ms', 'steady median ms', 'steady min ms', 'steady cpu ms', 'growth per 10x'];
  const rows = r.rows.map((x) => [
    String(x.nodes),
    String(x.pools),
    String(x.runs),
    x.coldMs.toFixed(1),
    x.steadyMs.toFixed(1),
    x.steadyMinMs.toFixed(1),
    x.steadyCpuMs.toFixed(1),
    x.growth === undefined ? '-' : `${x.growth.toFixed(2)}x`,
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i].length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => c.padStart(widths[i])).join(' | ')} |`;
  return [
    'plan() benchmark',
    machineLine(r.machine),
    line(head),
    `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`,
    ...rows.map(line),
  ].join('\n');
}

export async function benchPlan(options: { sizes?: number[]; log?: (line: string) => void } = {}): Promise<PlanBenchResult> {
  const sizes = options.sizes ?? [1_000, 10_000, 100_000];
  const log = options.log ?? ((l: string) => console.log(l));
  const result: PlanBenchResult = { name: 'plan', machine: machine(), rows: [] };
  for (const n of sizes) {
    const input = buildPlanInput(n);
    const runs = n >= 100_000 ? 7 : n >= 10_000 ? 21 : 41;
    const warmup = n >= 100_000 ? 2 : n >= 10_000 ? 5 : 20;
    const cold = time(() => plan(input), runs, warmup);
    const steadyInput: PlanInput = { ...input, previous: plan(input).gateways };
    const steady = time(() => plan(steadyInput), runs, warmup);
    const prev = result.rows.at(-1);
    result.rows.push({
      nodes: n,
      pools: input.topology.pools.length,
      runs,
      coldMs: cold.median,
      steadyMs: steady.median,
      steadyMinMs: steady.min,
      steadyCpuMs: steady.cpu,
      ...(prev ? { growth: steady.median / prev.steadyMs } : {}),
    });
  }
  log(formatPlanBench(result));
  return result;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  await benchPlan();
}
