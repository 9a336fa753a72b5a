// corvid render: print the desired Gateway manifests (a YAML stream) on stdout and nothing else.
// Made for GitOps generators (Argo CD Config Management Plugin): deterministic per input, and any error is a
// non-zero exit with an empty stdout, so a broken topology never reaches `kubectl apply --prune`.

import type { CliIO } from '../io.ts';
import { EXIT_OK } from '../io.ts';
import { commandFlags, str } from '../flags.ts';
import { contentRevision, EXIT_ERROR, planDesired, podSubnetInputOf, POD_SUBNETS_FLAG, readSnapshot, readTopologyFile, reportFindings, usageError } from '../inputs.ts';
import { renderGatewaysYaml } from '../../gateway/render.ts';

export const HELP = `Usage: corvid render -f FILE [--nodes SNAPSHOT.yaml] [--pod-subnets MODE] [--revision REV]

Print the Gateway manifests a topology produces, as a YAML stream on stdout. Nothing else is printed on stdout:
warnings and errors go to stderr, and any error exits non-zero with an empty stdout (a broken topology must never
look like "no Gateways" to a GitOps tool that prunes). With --nodes, that includes errors the plan finds in the
snapshot (a podCIDR that is not a CIDR or is wider than /8, a pool with no healthy candidate, ...).

Flags:
  -f, --file FILE        topology file (required)
      --nodes SNAPSHOT   node snapshot (kubectl get nodes -o yaml > nodes.yaml): fills status (nodes,
                         subnets, elected gateways) as the sync would. Without it status is left out (no
                         election). spec depends on the topology alone, so it is the same either way and
                         the same as the sync writes. Calico IPAM's BlockAffinity items in the same
                         stream (kubectl get blockaffinities.crd.projectcalico.org -o yaml) are read too.
      --pod-subnets MODE auto (default: the topology's spec.podSubnets.source; auto there = Calico's blocks
                         when the snapshot has BlockAffinities, else podCIDRs), podCIDR or calico; as the
                         sync's flag of the same name
      --revision REV     revision written to the corvid.dev/revision annotation
                         (default: sha256:<hex> of the file's content)
  -h, --help             show this help

The output is byte-identical for the same file, snapshot and revision. The election uses CORVID_NOW (RFC 3339)
as "now" when set, else the clock.

Examples:
  corvid render -f topology/example.yaml
  corvid render -f topology/example.yaml --nodes nodes.yaml > gateways.yaml
  corvid render -f topology.yaml --revision "main@sha1:$(git rev-parse HEAD)"

  # Argo CD Config Management Plugin (generate command): the app's commit as the revision
  corvid render -f "$ARGOCD_ENV_TOPOLOGY" --revision "sha1:$ARGOCD_APP_REVISION"
`;

export async function run(argv: string[], io: CliIO): Promise<number> {
  const parsed = commandFlags(
    'render',
    argv,
    { file: { type: 'string', short: 'f' }, nodes: { type: 'string' }, revision: { type: 'string' }, 'pod-subnets': POD_SUBNETS_FLAG },
    HELP,
    io,
  );
  if (typeof parsed === 'number') return parsed;
  const file = str(parsed.values, 'file');
  if (!file) return usageError('render', io, 'a topology file is required (-f FILE)');

  const loaded = await readTopologyFile('render', io, file);
  if (typeof loaded === 'number') return loaded;
  const revision = str(parsed.values, 'revision') ?? contentRevision(loaded.text);
  if (revision.trim() === '') return usageError('render', io, '--revision must not be empty');

  const snapshotFile = str(parsed.values, 'nodes');
  let output: string;
  try {
    if (snapshotFile !== undefined) {
      const snap = await readSnapshot('render', io, snapshotFile);
      if (typeof snap === 'number') return snap;
      const now = io.env.CORVID_NOW || new Date().toISOString();
      const podSubnets = podSubnetInputOf(str(parsed.values, 'pod-subnets'), snap.calico);
      const result = planDesired({ topology: loaded.topology, revision, nodes: snap.nodes, leases: snap.leases, previous: [], now, podSubnets });
      io.stderr.write(`corvid render: pod subnets: ${result.podSubnets.source} (${result.podSubnets.reason})\n`);
      reportFindings(io, result.findings);
      if (result.findings.some((f) => f.severity === 'error')) {
        io.stderr.write('corvid render: the plan has errors (above); nothing printed\n');
        return EXIT_ERROR;
      }
      output = renderGatewaysYaml(result.gateways);
    } else {
      // Specs only: no nodes, so no election and no status. spec (every declared gateway as an endpoint) is what the
      // sync writes too, so an Argo CD plugin and the sync never fight over it. A fixed "now" keeps the output
      // independent of the clock.
      const result = planDesired({ topology: loaded.topology, revision, nodes: [], leases: [], previous: [], now: '1970-01-01T00:00:00Z' });
      const gateways = result.gateways.map((g) => {
        const { status: _status, ...rest } = g;
        return rest;
      });
      output = renderGatewaysYaml(gateways);
      io.stderr.write('corvid render: no --nodes snapshot: rendering specs only (no election, no status)\n');
    }
  } catch (e) {
    io.stderr.write(`corvid render: internal error: ${(e as Error).stack ?? e}\n`);
    return EXIT_ERROR;
  }
  if (output === '' && !loaded.topology.allowEmpty) {
    io.stderr.write(`corvid render: ${file} yields no Gateways; refusing to print an empty set (set allowEmpty: true to mean it)\n`);
    return EXIT_ERROR;
  }
  io.stdout.write(output);
  return EXIT_OK;
}
