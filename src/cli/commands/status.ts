// corvid status: the live network at a glance: per pool the active gateway(s), the candidates and their health,
// tunnels up/expected (from the agents' heartbeat Leases), the revision the sync last applied, and conditions.

import type { CliIO } from '../io.ts';
import { EXIT_OK, useColour } from '../io.ts';
import { commandFlags, str } from '../flags.ts';
import { clusterErrorMessage, connect, EXIT_ERROR, nowFrom, readLive, readTopologies } from '../inputs.ts';
import { statusReport, type CandidateHealthWord, type StatusReport, type TopologySummary } from '../../plan/index.ts';
import type { LiveState } from '../inputs.ts';

export const HELP = `Usage: corvid status [--kubeconfig K] [--context C] [-o table|wide|json]

Show the live network, one row per pool: the active gateway(s), the other candidates with their health, tunnels
up out of expected (as the agents report them on their heartbeat Leases), the topology revision the sync last
applied (Topology status) and conditions; then where the pods' subnets come from (podCIDR or Calico IPAM) and why.

Candidate health, judged as the sync's election judges it (the topology's heartbeatTimeout): ok (Ready, fresh
heartbeat), drained (healthy, but the corvid.dev/drain annotation hands its role over), handover-wanted (healthy,
but its agent asks to hand its role over: its charon restarted), no-heartbeat (Ready, but its agent has never written a heartbeat Lease: never elected), stale (heartbeat expired), released (the agent stopped
cleanly), datapath-down (its agent says the node cannot forward), unreachable-in-pool (another candidate of its
pool cannot reach it over their LAN), tunnels-down (all its tunnels down while others
are up), NotReady, unreachable (Ready Unknown: the kubelet is not heard from), missing (no such Node).

Flags:
      --kubeconfig FILE   kubeconfig (default: $KUBECONFIG, then ~/.kube/config, then in-cluster)
      --context NAME      kubeconfig context
  -o, --output FORMAT     table (default), wide (adds public endpoints, relay, nodes and subnets) or json
      --lease-namespace NS  namespace of the agents' heartbeat Leases (default corvid-heartbeats)
  -h, --help              show this help

Examples:
  corvid status
  corvid status --context prod -o wide
  corvid status -o json | jq '.pools[] | select(.tunnelsUp < .tunnelsExpected)'
`;

function shortRevision(r: string | undefined): string {
  if (!r) return '-';
  // main@sha1:<40 hex> -> main@sha1:<12 hex>; sha256:<64> -> sha256:<12>
  return r.replace(/(sha1|sha256):([0-9a-f]{12})[0-9a-f]+/, '$1:$2');
}

const HEALTH_COLOUR: Record<CandidateHealthWord, string> = {
  ok: '32',
  drained: '33',
  'handover-wanted': '33',
  'no-heartbeat': '31',
  stale: '33',
  released: '33',
  'datapath-down': '31',
  'unreachable-in-pool': '31',
  'tunnels-down': '31',
  NotReady: '31',
  unreachable: '31',
  missing: '31',
};

/** A table with columns padded to the widest cell (kubectl style: two spaces between columns). */
export function formatTable(report: StatusReport, wide: boolean, colour: boolean): string {
  const multiTopology = new Set(report.pools.map((p) => p.topology)).size > 1;
  const header = [
    ...(multiTopology ? ['TOPOLOGY'] : []),
    'POOL',
    'ACTIVE',
    'CANDIDATES',
    'TUNNELS',
    'REVISION',
    'CONDITIONS',
    ...(wide ? ['ENDPOINTS', 'RELAY', 'NODES', 'SUBNETS'] : []),
  ];
  const paint = (text: string, code: string): string => (colour ? `\x1b[${code}m${text}\x1b[0m` : text);
  const rows: { plain: string[]; shown: string[] }[] = report.pools.map((p) => {
    const others = p.candidates.filter((c) => !c.active);
    const candPlain = others.length ? others.map((c) => `${c.node}(${c.health})`).join(',') : '-';
    const candShown = others.length ? others.map((c) => `${c.node}(${paint(c.health, HEALTH_COLOUR[c.health])})`).join(',') : '-';
    const activePlain = p.active.length ? p.active.join(',') : '<none>';
    const activeHealth = p.candidates.filter((c) => c.active);
    const activeShown = p.active.length
      ? p.active.map((n) => {
          const h = activeHealth.find((c) => c.node === n)?.health;
          return h && h !== 'ok' ? paint(n, HEALTH_COLOUR[h]) : n;
        }).join(',')
      : paint('<none>', '31');
    const tunnels = `${p.tunnelsUp}/${p.tunnelsExpected}`;
    const tunnelsShown = p.tunnelsUp < p.tunnelsExpected ? paint(tunnels, '31') : tunnels;
    const revision = shortRevision(p.lastAppliedRevision ?? p.revision);
    const conds = p.conditions.length ? p.conditions.join(',') : 'Ready';
    const condsShown = p.conditions.length ? paint(conds, '31') : paint(conds, '32');
    const wideCols = wide ? [p.publicEndpoints.join(',') || '-', p.relay ?? '-', String(p.nodes), String(p.subnets)] : [];
    const lead = multiTopology ? [p.topology] : [];
    return {
      plain: [...lead, p.pool, activePlain, candPlain, tunnels, revision, conds, ...wideCols],
      shown: [...lead, p.pool, activeShown, candShown, tunnelsShown, revision, condsShown, ...wideCols],
    };
  });
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => [...r.plain[i]].length)));
  const line = (plain: string[], shown: string[]): string =>
    shown
      .map((cell, i) => (i === shown.length - 1 ? cell : cell + ' '.repeat(widths[i] - [...plain[i]].length + 2)))
      .join('')
      .trimEnd();
  return [line(header, header), ...rows.map((r) => line(r.plain, r.shown))].join('\n') + '\n';
}

export async function run(argv: string[], io: CliIO): Promise<number> {
  const parsed = commandFlags(
    'status',
    argv,
    {
      kubeconfig: { type: 'string' },
      context: { type: 'string' },
      output: { type: 'string', short: 'o', choices: ['table', 'wide', 'json'] },
      'lease-namespace': { type: 'string' },
    },
    HELP,
    io,
  );
  if (typeof parsed === 'number') return parsed;
  const v = parsed.values;
  const kc = await connect(
    'status',
    io,
    { kubeconfig: str(v, 'kubeconfig'), context: str(v, 'context') },
    'set --kubeconfig or KUBECONFIG (status reads the live cluster; for a topology file offline use "corvid graph -f FILE" or "corvid render -f FILE")',
  );
  if (typeof kc === 'number') return kc;
  let state: LiveState;
  let topologies: TopologySummary[] = [];
  try {
    state = await readLive(kc, { leaseNamespace: str(v, 'lease-namespace') });
    topologies = await readTopologies(kc);
  } catch (e) {
    io.stderr.write(clusterErrorMessage('status', e));
    return EXIT_ERROR;
  }
  const report = statusReport(state, topologies, nowFrom(io));
  const output = str(v, 'output') ?? 'table';
  if (output === 'json') {
    io.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
    return EXIT_OK;
  }
  if (report.pools.length === 0) {
    io.stderr.write('No Gateways managed by Corvid in this cluster (is the sync running, and has it applied a topology?)\n');
    return EXIT_OK;
  }
  io.stdout.write(formatTable(report, output === 'wide', useColour(io.stdout, io.env)));
  for (const t of topologies) {
    const notReady = t.conditions.find((c) => c.type === 'Ready' && c.status !== 'True');
    if (notReady) io.stdout.write(`\nTopology ${t.name}: not Ready (${notReady.reason}): ${notReady.message}\n`);
  }
  const withSubnets = topologies.filter((t) => t.podSubnets !== undefined);
  if (withSubnets.length > 0) io.stdout.write('\n');
  for (const t of withSubnets) {
    io.stdout.write(`Topology ${t.name}: pod subnets from ${t.podSubnets!.source} (${t.podSubnets!.reason})\n`);
    for (const p of t.podSubnets!.problems ?? []) io.stdout.write(`  left out: ${p}\n`);
  }
  return EXIT_OK;
}
