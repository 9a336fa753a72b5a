// corvid graph: draw the network (pools, gateways, tunnels) as SVG, Graphviz DOT or Mermaid.

import { writeFile } from 'node:fs/promises';
import type { CliIO } from '../io.ts';
import { EXIT_OK } from '../io.ts';
import { bool, commandFlags, str } from '../flags.ts';
import {
  clusterErrorMessage,
  connect,
  contentRevision,
  EXIT_ERROR,
  nowFrom,
  ownedBy,
  NO_CALICO,
  planDesired,
  readLive,
  readSnapshot,
  readTopologyFile,
  resolvePath,
  usageError,
} from '../inputs.ts';
import { candidateVerdicts, heartbeatTimeoutOf, type CandidateVerdict, type HeartbeatLease } from '../../plan/index.ts';
import { managedByCorvid } from '../../gateway/keys.ts';
import type { Gateway } from '../../gateway/types.ts';
import type { Topology } from '../../topology/types.ts';
import { buildGraph } from '../../graph/model.ts';
import type { LiveHealth } from '../../graph/model.ts';
import { renderSvg } from '../../graph/svg.ts';
import { renderDot } from '../../graph/dot.ts';
import { renderMermaid } from '../../graph/mermaid.ts';

export const HELP = `Usage: corvid graph [-f FILE | --live] [--nodes SNAPSHOT.yaml] [--format svg|dot|mermaid] [-o OUT]

Draw the network: pools as boxes with their gateway candidates (the elected ones highlighted), and one line per
pool pair: a direct tunnel, relayed through the relay or hub pool (dotted blue), or denied by a rule (dashed red).
With --live the gateways are coloured by health (Node Ready and the agents' tunnel reports) and tunnels reported
down are drawn red.

Up to 16 pools every pair is drawn, pools on a circle (the hub in the middle). Above that the pools are laid out
on a grid and only the exceptions are drawn (denied pairs, pairs without a path, tunnels down) and listed; use
--edges all to draw every pair anyway.

Flags:
  -f, --file FILE         topology file: draw what it would produce (offline unless --live)
      --nodes SNAPSHOT    node snapshot for the election (kubectl get nodes -o yaml > nodes.yaml)
      --live              draw the live cluster's Gateways (with -f: only the ones that topology owns)
      --kubeconfig FILE   kubeconfig for --live (default: $KUBECONFIG, ~/.kube/config, in-cluster)
      --context NAME      kubeconfig context for --live
      --format FORMAT     svg (default), dot or mermaid; default from the -o file's extension
                          (.svg, .dot/.gv, .mmd/.mermaid)
  -o, --out FILE          write to FILE instead of stdout
      --edges MODE        auto (default) or all
      --lease-namespace NS  namespace of the agents' heartbeat Leases for --live (default corvid-heartbeats)
  -h, --help              show this help

The SVG is self-contained (inline presentation attributes, generic fonts, no external references) and
deterministic: the same input gives the same bytes.

Examples:
  corvid graph -f topology/example.yaml -o network.svg
  corvid graph -f topology/example.yaml --nodes nodes.yaml --format mermaid
  corvid graph --live -o live.svg
  corvid graph --live --format dot | dot -Tpng > live.png
`;

type Format = 'svg' | 'dot' | 'mermaid';

function formatFromPath(p: string | undefined): Format | undefined {
  if (!p) return undefined;
  if (/\.svg$/i.test(p)) return 'svg';
  if (/\.(dot|gv)$/i.test(p)) return 'dot';
  if (/\.(mmd|mermaid)$/i.test(p)) return 'mermaid';
  return undefined;
}

/** Ready, the election's verdicts (as `corvid status` shows them) and the agents' tunnel reports. */
function liveHealth(ready: Record<string, boolean>, leases: readonly HeartbeatLease[], verdicts: Map<string, Map<string, CandidateVerdict>>): LiveHealth {
  const byNode: Record<string, CandidateVerdict> = {};
  for (const g of [...verdicts.keys()].sort()) for (const [node, v] of verdicts.get(g)!) if (byNode[node] === undefined || byNode[node] === 'ok') byNode[node] = v;
  const tunnels: LiveHealth['tunnels'] = {};
  for (const l of leases) {
    if (!l.tunnels) continue;
    const t: Record<string, boolean> = {};
    for (const [peer, s] of Object.entries(l.tunnels)) t[peer] = s.up;
    tunnels[l.node] = t;
  }
  return { ready, verdicts: byNode, tunnels };
}

export async function run(argv: string[], io: CliIO): Promise<number> {
  const parsed = commandFlags(
    'graph',
    argv,
    {
      file: { type: 'string', short: 'f' },
      nodes: { type: 'string' },
      live: { type: 'boolean' },
      kubeconfig: { type: 'string' },
      context: { type: 'string' },
      format: { type: 'string', choices: ['svg', 'dot', 'mermaid'] },
      out: { type: 'string', short: 'o' },
      edges: { type: 'string', choices: ['auto', 'all'] },
      'lease-namespace': { type: 'string' },
    },
    HELP,
    io,
  );
  if (typeof parsed === 'number') return parsed;
  const v = parsed.values;
  const file = str(v, 'file');
  const live = bool(v, 'live');
  if (!file && !live) return usageError('graph', io, 'give a topology file (-f FILE) or --live');
  if (live && str(v, 'nodes') !== undefined) return usageError('graph', io, '--nodes and --live exclude each other (--live reads the cluster\'s nodes)');
  const out = str(v, 'out');
  const format: Format = (str(v, 'format') as Format | undefined) ?? formatFromPath(out) ?? 'svg';

  let topology: Topology | undefined;
  let revision = '';
  if (file) {
    const loaded = await readTopologyFile('graph', io, file);
    if (typeof loaded === 'number') return loaded;
    topology = loaded.topology;
    revision = contentRevision(loaded.text);
  }

  let gateways: Gateway[] = [];
  let health: LiveHealth | undefined;
  if (live) {
    const kc = await connect('graph', io, { kubeconfig: str(v, 'kubeconfig'), context: str(v, 'context') }, 'set --kubeconfig or KUBECONFIG, or drop --live and draw a topology file offline (-f FILE [--nodes SNAPSHOT])');
    if (typeof kc === 'number') return kc;
    try {
      const state = await readLive(kc, { leaseNamespace: str(v, 'lease-namespace') });
      gateways = topology
        ? ownedBy(state.gateways, topology.name)
        : state.gateways.filter(managedByCorvid);
      const { readTopologies } = await import('../inputs.ts');
      const topologies = new Map((await readTopologies(kc)).map((t) => [t.name, t]));
      const verdicts = candidateVerdicts({ nodes: state.nodes, leases: state.leases, gateways, now: nowFrom(io), heartbeatTimeoutOf: (g) => heartbeatTimeoutOf(g, topologies) });
      health = liveHealth(state.ready, state.leases, verdicts);
    } catch (e) {
      io.stderr.write(clusterErrorMessage('graph', e));
      return EXIT_ERROR;
    }
    if (gateways.length === 0 && !topology) {
      io.stderr.write('corvid graph: the cluster has no Gateways managed by Corvid (is the sync running?)\n');
    }
  } else if (topology) {
    const snapshotFile = str(v, 'nodes');
    let nodes: Awaited<ReturnType<typeof readSnapshot>> = { nodes: [], leases: [], calico: NO_CALICO };
    if (snapshotFile !== undefined) nodes = await readSnapshot('graph', io, snapshotFile);
    if (typeof nodes === 'number') return nodes;
    const result = planDesired({
      topology,
      revision,
      nodes: nodes.nodes,
      leases: nodes.leases,
      previous: [],
      now: snapshotFile !== undefined ? nowFrom(io) : '1970-01-01T00:00:00Z',
      podSubnets: { calico: nodes.calico },
    });
    gateways = result.gateways;
  }

  const graph = buildGraph({ topology, gateways, health, title: topology?.name ?? 'corvid network (live)' });
  const edges = (str(v, 'edges') as 'auto' | 'all' | undefined) ?? 'auto';
  const text = format === 'svg' ? renderSvg(graph, { edges }) : format === 'dot' ? renderDot(graph) : renderMermaid(graph);
  if (out && out !== '-') {
    try {
      await writeFile(resolvePath(io, out), text);
    } catch (e) {
      io.stderr.write(`corvid graph: cannot write ${out}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}\n`);
      return EXIT_ERROR;
    }
    io.stderr.write(`corvid graph: wrote ${out} (${format}, ${graph.pools.length} pools)\n`);
  } else {
    io.stdout.write(text);
  }
  return EXIT_OK;
}
