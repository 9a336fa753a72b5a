// Failover benchmark: scenario 4 of the e2e suite (test/e2e/failover.ts) run N times per tunnel backend, IPsec first,
// then WireGuard, with the default settings of sync, agent and topology; prints one line per run as it goes, then one
// row per backend (median and range) and the machine.
//
//   sudo npx node bench/failover.ts [runs]          (default 5 runs per backend, at least 5 for a median worth printing)
//
// Each backend gets a fresh system (control plane, fabric, sync, agents) rather than one system re-pushed from IPsec
// to WireGuard: a backend switch is a transition of its own (IKE SAs torn down, corvid.wg built, keys published), and
// its leftovers or its timing must not leak into the other backend's runs. Both systems are built the same way, so
// the rows differ only in `spec.encryption.backend`.
//
// Each run kills the active gateway of edge-a (agent, charon and wireguard-go SIGKILLed, heartbeat stops), measures
// until every cross-pool path answers 100 ms pings again, then brings the dead node back as a healthy non-active
// candidate, so successive runs alternate between edge-a-gw-1 and edge-a-gw-2.
// API writes (issue 17: steady state at most 0.1 per second per gateway candidate) are the API server's own count
// (apiserver_request_total of its /metrics, write verbs, every client), not Corvid's counters: once over a window with
// the network whole and nothing touched, before the first failover, and in each run from the kill to every path
// answering again.
// Experiments (stated in the output): CORVID_BENCH_BACKEND=ipsec or wireguard (one backend only),
// CORVID_E2E_AGENT_FLAGS="--repair-interval 1s", CORVID_E2E_PUBLIC_PORT=500 (IKE only; WireGuard always uses 51820).
// Needs root (network namespaces), charon (strongswan-charon, libcharon-extra-plugins), wireguard-go and wireguard-tools
// where the kernel has no WireGuard, nftables and the cached kube-apiserver (test/support/build-kube-apiserver.sh);
// prints one line saying what is missing otherwise.
import { controlPlaneSkipReason, startControlPlane, type ControlPlane } from '../test/support/controlplane.ts';
import { Fabric } from '../test/e2e/fabric.ts';
import { CorvidSystem, systemSkipReason, topologyYaml, waitFor } from '../test/e2e/system.ts';
import { everyone, waitForMatrix } from '../test/e2e/checks.ts';
import { formatFailover, runFailover, type FailoverResult } from '../test/e2e/failover.ts';
import { readWrites, writeRate, writesBetween, type ApiWrites } from '../test/support/apiserver-writes.ts';
import type { KubeConfig } from '../src/adapters/kube/client.ts';
import { BACKENDS, benchBackends, machineLine, median, strongswanVersion, table, wireguardDatapath, type Backend } from './machine.ts';

const RUN_TIMEOUT_MS = 60_000;
/** The steady-state window of API writes, and how long after the network came up whole it starts. */
const STEADY_MS = 60_000;
const STEADY_SETTLE_MS = 10_000;
/** How often the write count is read during a failover run (it bounds the error at the window's end). */
const RUN_SAMPLE_MS = 250;
/** Issue 17: steady-state API writes per second per gateway candidate. */
const GOAL_PER_CANDIDATE = 0.1;

/** The fleet's API writes over a window with the network whole: all of them, per second, and per candidate. */
export interface SteadyWrites {
  seconds: number;
  writes: ApiWrites;
  perSecond: number;
  candidates: number;
}

export interface BackendFailover {
  backend: Backend;
  /** strongSwan's kernel-libipsec, wireguard-go or the kernel's WireGuard, as found while the system ran. */
  datapath: string;
  runs: number;
  results: FailoverResult[];
  /** API writes of each of `results`, from the kill to every path answering; undefined when that never happened. */
  runWrites: (ApiWrites | undefined)[];
  /** Steady-state API writes, measured before the first failover. */
  steady?: SteadyWrites;
  /** Why the backend has no results (the system never came up whole), if so. */
  error?: string;
}

export async function benchFailover(runs = 5, backends: Backend[] = benchBackends()): Promise<BackendFailover[]> {
  const skip = systemSkipReason(controlPlaneSkipReason());
  if (skip) {
    console.log(`failover bench skipped: ${skip}`);
    return [];
  }
  const agentFlags = (process.env.CORVID_E2E_AGENT_FLAGS ?? '').split(' ').filter((a) => a !== '');
  const publicPort = process.env.CORVID_E2E_PUBLIC_PORT ? Number(process.env.CORVID_E2E_PUBLIC_PORT) : undefined;
  const started = Date.now();
  const out: BackendFailover[] = [];
  for (const backend of backends) out.push(await failoverOf(backend, runs, agentFlags, publicPort));

  const changed = [
    ...(agentFlags.length > 0 ? [`agent flags ${agentFlags.join(' ')}`] : []),
    ...(publicPort !== undefined ? [`cloud publicPort ${publicPort} (IKE)`] : []),
    ...(backends.length < BACKENDS.length ? [`backend ${backends.join(', ')} only`] : []),
  ];
  const settings =
    'defaults (agent: lease renew 10s, lease 40s, repair 10s, liveness probes every 50ms, unreachable after 400ms; topology: heartbeatTimeout 40s, minHealthy 30s; cloud publicPort 4500 for IKE, WireGuard on 51820)' +
    (changed.length > 0 ? `, EXCEPT ${changed.join(', ')}` : '');
  const range = (xs: number[]): string => {
    if (xs.length === 0) return 'never';
    const m = Math.round(median(xs));
    return `${m} (${Math.min(...xs)}-${Math.max(...xs)})`;
  };
  const done = (xs: (number | undefined)[]): number[] => xs.filter((x): x is number => x !== undefined);
  const maxLost = (r: FailoverResult): number => Math.max(...r.paths.map((p) => p.lost));
  console.log('');
  console.log(`failover of edge-a's active gateway (kill -> every cross-pool path answers 100 ms pings), per backend: median (range) over the runs measured`);
  console.log(`settings: ${settings}`);
  console.log(
    table(
      ['backend', 'datapath', 'runs', 'kill -> every path answers, ms', 'kill -> first path, ms', 'kill -> successor elected, ms', 'pings lost, worst path'],
      out.map((b) => [
        b.backend,
        b.datapath,
        `${b.results.length}/${b.runs}`,
        range(done(b.results.map((r) => r.recoveryMs))),
        range(done(b.results.map((r) => r.firstRecoveryMs))),
        range(b.results.map((r) => r.electedMs)),
        range(b.results.map(maxLost)),
      ]),
    ),
  );
  const perS = (n: number, s: number): string => (n / s).toFixed(3);
  console.log('');
  console.log(
    `API writes as the API server counted them (apiserver_request_total, write verbs): steady over ${STEADY_MS / 1000} s ` +
      `from ${STEADY_SETTLE_MS / 1000} s after the network came up whole, nothing touched; per failover from the kill to every path answering`,
  );
  console.log(
    table(
      ['backend', 'steady API writes, whole fleet, per s', 'candidates', 'per candidate per s', `goal ≤ ${GOAL_PER_CANDIDATE} per candidate`, 'writes per failover'],
      out.map((b) => [
        b.backend,
        b.steady ? b.steady.perSecond.toFixed(2) : '-',
        b.steady ? String(b.steady.candidates) : '-',
        b.steady ? perS(b.steady.perSecond, b.steady.candidates) : '-',
        b.steady ? (b.steady.perSecond / b.steady.candidates <= GOAL_PER_CANDIDATE ? 'met' : 'MISSED') : '-',
        range(done(b.runWrites.map((w) => w?.total))),
      ]),
    ),
  );
  for (const b of out) {
    if (!b.steady) continue;
    const { writes: w, seconds } = b.steady;
    const parts = Object.entries(w.byResource).sort((x, y) => y[1] - x[1]).map(([k, n]) => `${k} ${perS(n, seconds)} (${n})`);
    console.log(`${b.backend} steady writes by resource, per s (count): ${parts.join(', ') || 'none'}${w.dryRun > 0 ? `; ${w.dryRun} of them dry runs` : ''}`);
  }
  console.log(`${machineLine()}, kube-apiserver 1.20.2`);
  for (const b of out) {
    if (b.error) console.log(`${b.backend}: ${b.error}`);
    const never = b.results.filter((r) => r.recoveryMs === undefined).length;
    if (never > 0) console.log(`${b.backend}: ${never} run(s) never recovered within ${RUN_TIMEOUT_MS} ms; the figures are over the runs that did`);
  }
  console.log(`(bench took ${Math.round((Date.now() - started) / 1000)} s)`);
  return out;
}

/** One backend on its own fresh system: bring it up whole, then `runs` failovers of edge-a. */
async function failoverOf(backend: Backend, runs: number, agentFlags: string[], publicPort: number | undefined): Promise<BackendFailover> {
  let cp: ControlPlane | undefined;
  let fabric: Fabric | undefined;
  let sys: CorvidSystem | undefined;
  const r: BackendFailover = { backend, datapath: backend === 'ipsec' ? `${strongswanVersion()} kernel-libipsec (userspace ESP)` : 'WireGuard (not seen)', runs, results: [], runWrites: [] };
  try {
    cp = await startControlPlane();
    fabric = await Fabric.build();
    sys = await CorvidSystem.start(cp, fabric, { agentFlags });
    const rev = await sys.push(topologyYaml(fabric, { publicPort, backend }), `bench: three pools, ${backend}`);
    await waitFor('the topology applied', async () => (await sys!.topology())?.status?.lastAppliedRevision === rev, 30_000);
    const bad = await waitForMatrix(fabric, everyone, 60_000);
    if (bad.length > 0) throw new Error(`the network never came up whole:\n${bad.join('\n')}`);
    if (backend === 'wireguard') r.datapath = wireguardDatapath(fabric.candidates().map((c) => c.ns));
    await new Promise((resolve) => setTimeout(resolve, STEADY_SETTLE_MS));
    const steady = await writeRate(cp.kubeConfig, STEADY_MS);
    r.steady = { ...steady, candidates: fabric.candidates().length };
    console.log(`${backend} steady: ${steady.writes.total} API writes in ${steady.seconds.toFixed(1)} s, ${r.steady.candidates} candidates`);
    for (let i = 1; i <= runs; i++) {
      let one: FailoverResult;
      let writes: ApiWrites | undefined;
      try {
        ({ one, writes } = await failoverCountingWrites(sys, cp.kubeConfig));
      } catch (e) {
        console.log(`${backend} run ${i}: ${(e as Error).message.split('\n')[0]}`);
        continue;
      }
      r.results.push(one);
      r.runWrites.push(writes);
      const lost = Math.max(...one.paths.map((p) => p.lost));
      const w = writes === undefined ? '' : `; ${writes.total} API writes`;
      console.log(`${backend} run ${i}: ${formatFailover(one).split('\n')[0]}; at most ${lost} pings lost on a path${w}`);
      // Start the next run from a whole network.
      await waitForMatrix(fabric, everyone, 30_000);
    }
  } catch (e) {
    r.error = (e as Error).message.split('\n')[0];
    console.log(`${backend}: ${(e as Error).message}`);
  } finally {
    await sys?.stop();
    await fabric?.cleanup();
    await cp?.stop();
  }
  return r;
}

/**
 * One runFailover() of edge-a, with the API server's write count read from the kill (its sys.die() call, wrapped for
 * the run) every RUN_SAMPLE_MS until it returns. The writes of the run are those between the reading at the kill and
 * the first reading after every path answered; undefined when a path never did or the readings failed.
 */
async function failoverCountingWrites(sys: CorvidSystem, kc: KubeConfig): Promise<{ one: FailoverResult; writes?: ApiWrites }> {
  const samples: { at: number; w: ApiWrites }[] = [];
  let killAt = 0;
  let stop = false;
  let sampling: Promise<void> = Promise.resolve();
  const die = sys.die;
  sys.die = (node: string): number => {
    killAt = die.call(sys, node);
    sampling = (async () => {
      while (!stop) {
        const at = Date.now();
        samples.push({ at, w: await readWrites(kc) });
        await new Promise((resolve) => setTimeout(resolve, RUN_SAMPLE_MS));
      }
    })().catch((e) => console.log(`API write count during the run: ${(e as Error).message}`));
    return killAt;
  };
  let one: FailoverResult;
  try {
    one = await runFailover(sys, 'edge-a', { timeoutMs: RUN_TIMEOUT_MS, revive: true });
  } finally {
    stop = true;
    // The prototype's method again.
    delete (sys as { die?: unknown }).die;
    await sampling;
  }
  const recovered = one.recoveryMs === undefined ? undefined : killAt + one.recoveryMs;
  const end = recovered === undefined ? undefined : samples.find((s) => s.at >= recovered);
  return { one, writes: end === undefined ? undefined : writesBetween(samples[0].w, end.w) };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const runs = Number(process.argv[2] ?? 5);
  await benchFailover(Number.isInteger(runs) && runs > 0 ? runs : 5);
}
