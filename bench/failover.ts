// Failover benchmark: scenario 4 of the e2e suite (test/e2e/failover.ts) run N times on one system, with the
// default settings of sync, agent and topology; prints one row per run, the medians, and the machine.
//
//   sudo npx node bench/failover.ts [runs]          (default 5 runs, at least 5 for a median worth printing)
//
// Each run kills the active gateway of edge-a (agent and charon SIGKILLed, heartbeat stops), measures until every
// cross-pool path answers 100 ms pings again, then brings the dead node back as a healthy non-active candidate, so
// successive runs alternate between edge-a-gw-1 and edge-a-gw-2.
// Experiments (stated in the output): CORVID_E2E_AGENT_FLAGS="--repair-interval 1s", CORVID_E2E_PUBLIC_PORT=500.
// Needs root (network namespaces), charon (strongswan-charon, libcharon-extra-plugins), nftables and the cached
// kube-apiserver (test/support/build-kube-apiserver.sh); prints one line saying what is missing otherwise.
import { execFileSync } from 'node:child_process';
import { cpus, release, totalmem } from 'node:os';
import { controlPlaneSkipReason, startControlPlane, type ControlPlane } from '../test/support/controlplane.ts';
import { Fabric } from '../test/e2e/fabric.ts';
import { CorvidSystem, systemSkipReason, topologyYaml, waitFor } from '../test/e2e/system.ts';
import { everyone, waitForMatrix } from '../test/e2e/checks.ts';
import { formatFailover, runFailover, type FailoverResult } from '../test/e2e/failover.ts';

const RUN_TIMEOUT_MS = 60_000;

function median(xs: number[]): number | undefined {
  if (xs.length === 0) return undefined;
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[m] : Math.round((s[m - 1] + s[m]) / 2);
}

function charonVersion(): string {
  try {
    const out = execFileSync('dpkg-query', ['-W', '-f', '${Version}', 'strongswan-charon'], { encoding: 'utf8' });
    return `strongSwan ${out.trim()} (kernel-libipsec)`;
  } catch {
    return 'strongSwan (version unknown, kernel-libipsec)';
  }
}

export function machineLine(): string {
  const cpu = cpus();
  return `${cpu[0]?.model ?? 'unknown CPU'} x${cpu.length}, ${Math.round(totalmem() / 2 ** 30)} GiB, Linux ${release()}, Node ${process.version}, ${charonVersion()}, kube-apiserver 1.20.2`;
}

export async function benchFailover(runs = 5): Promise<FailoverResult[]> {
  const skip = systemSkipReason(controlPlaneSkipReason());
  if (skip) {
    console.log(`failover bench skipped: ${skip}`);
    return [];
  }
  const agentFlags = (process.env.CORVID_E2E_AGENT_FLAGS ?? '').split(' ').filter((a) => a !== '');
  const publicPort = process.env.CORVID_E2E_PUBLIC_PORT ? Number(process.env.CORVID_E2E_PUBLIC_PORT) : undefined;
  let cp: ControlPlane | undefined;
  let fabric: Fabric | undefined;
  let sys: CorvidSystem | undefined;
  const results: FailoverResult[] = [];
  const started = Date.now();
  try {
    cp = await startControlPlane();
    fabric = await Fabric.build();
    sys = await CorvidSystem.start(cp, fabric, { agentFlags });
    const rev = await sys.push(topologyYaml(fabric, { publicPort }), 'bench: three pools');
    await waitFor('the topology applied', async () => (await sys!.topology())?.status?.lastAppliedRevision === rev, 30_000);
    const bad = await waitForMatrix(fabric, everyone, 60_000);
    if (bad.length > 0) throw new Error(`the network never came up whole:\n${bad.join('\n')}`);
    for (let i = 1; i <= runs; i++) {
      let r: FailoverResult;
      try {
        r = await runFailover(sys, 'edge-a', { timeoutMs: RUN_TIMEOUT_MS, revive: true });
      } catch (e) {
        console.log(`run ${i}: ${(e as Error).message.split('\n')[0]}`);
        continue;
      }
      results.push(r);
      console.log(`run ${i}: ${formatFailover(r).split('\n')[0]}`);
      // Start the next run from a whole network.
      await waitForMatrix(fabric, everyone, 30_000);
    }
  } finally {
    await sys?.stop();
    await fabric?.cleanup();
    await cp?.stop();
  }

  const ms = (v: number | undefined) => (v === undefined ? 'never' : String(v));
  const changed = [
    ...(agentFlags.length > 0 ? [`agent flags ${agentFlags.join(' ')}`] : []),
    ...(publicPort !== undefined ? [`cloud publicPort ${publicPort}`] : []),
  ];
  const settings =
    'defaults (agent: lease renew 1s, lease 3s, repair 10s; topology: heartbeatTimeout 3s, minHealthy 30s; cloud publicPort 4500)' +
    (changed.length > 0 ? `, EXCEPT ${changed.join(', ')}` : '');
  const rows = results.map((r, i) => [String(i + 1), r.killed, r.successor, String(r.electedMs), ms(r.firstRecoveryMs), ms(r.recoveryMs), String(Math.max(...r.paths.map((p) => p.lost)))]);
  const head = ['run', 'killed', 'successor', 'elected ms', 'first path ms', 'all paths ms', 'max lost'];
  const done = (xs: (number | undefined)[]) => xs.filter((x): x is number => x !== undefined);
  const med = [
    'median',
    '',
    '',
    ms(median(results.map((r) => r.electedMs))),
    ms(median(done(results.map((r) => r.firstRecoveryMs)))),
    ms(median(done(results.map((r) => r.recoveryMs)))),
    ms(median(results.map((r) => Math.max(...r.paths.map((p) => p.lost))))),
  ];
  const table = [head, ...rows, med];
  const widths = head.map((_, c) => Math.max(...table.map((row) => row[c].length)));
  console.log('');
  console.log(`failover of edge-a's active gateway (kill -> every cross-pool path answers 100 ms pings), ${results.length}/${runs} runs measured`);
  console.log(`settings: ${settings}`);
  console.log(`machine:  ${machineLine()}`);
  for (const row of table) console.log(row.map((cell, c) => cell.padEnd(widths[c])).join('  '));
  const never = results.filter((r) => r.recoveryMs === undefined).length;
  if (never > 0) console.log(`${never} run(s) never recovered within ${RUN_TIMEOUT_MS} ms; medians are over the runs that did`);
  console.log(`(bench took ${Math.round((Date.now() - started) / 1000)} s)`);
  return results;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const runs = Number(process.argv[2] ?? 5);
  await benchFailover(Number.isInteger(runs) && runs > 0 ? runs : 5);
}
