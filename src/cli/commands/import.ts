// corvid import: read a live cluster's Raven Gateways and node labels, write a topology file for them
// (src/migrate/raven-import.ts decides), and list on stderr what it could not carry over.

import { writeFile } from 'node:fs/promises';
import type { CliIO } from '../io.ts';
import { EXIT_FINDINGS, EXIT_OK } from '../io.ts';
import { commandFlags, str } from '../flags.ts';
import { clusterErrorMessage, connect, EXIT_ERROR, readLive, resolvePath, usageError } from '../inputs.ts';
import type { Gateway } from '../../gateway/types.ts';
import type { LabelledNode } from '../../migrate/raven-import.ts';

export const HELP = `Usage: corvid import [--kubeconfig K] [--context C] [-f FILE] [--name NAME] [--psk-secret NAME] [--psk-key KEY]

Read the cluster's Raven Gateways (raven.openyurt.io/v1beta1) and its nodes' labels, and write a topology with one
pool per Gateway: its nodeSelector, its tunnel endpoints in order as the gateway candidates (with their publicIP and
publicPort), underNAT as behindNAT. \`corvid validate\` accepts the file, and \`corvid render\` of it gives each
Gateway the spec it has now as Raven reads it, plus what Corvid adds (corvid.dev/priority in the endpoints' config,
publicPort 4500 where none was set).

What cannot be carried over (proxy endpoints, exposeType, natType, an endpoint's config, proxyConfig, Gateways
without a nodeSelector or without a tunnel endpoint, pools that would hold other nodes than Raven's, ...) is listed
on stderr and as comments in the file, never left out silently.

No key is read or written: spec.encryption.pskSecretRef names a Secret you create (the command says how).

Flags:
  -f, --file FILE         write the topology to FILE (default: stdout)
      --name NAME         metadata.name of the topology (default imported)
      --psk-secret NAME   the Secret spec.encryption.pskSecretRef names (default corvid-psk)
      --psk-key KEY       its key (default psk)
      --kubeconfig FILE   kubeconfig (default: $KUBECONFIG, then ~/.kube/config, then in-cluster)
      --context NAME      kubeconfig context
  -h, --help              show this help

The kubeconfig user needs list on gateways.raven.openyurt.io and nodes.

Exit status: 0 everything was carried over; 1 the file was written, but something was not carried over (listed);
2 or more an error (nothing written).

Examples:
  corvid import -f topology.yaml
  corvid import --context edge-prod --name edge-network -f topology.yaml && corvid validate topology.yaml
  corvid render -f topology.yaml      # each Gateway's spec, to compare with kubectl get gw -o yaml
  corvid diff -f topology.yaml        # what Corvid's sync would change on the live Gateways
`;

export async function run(argv: string[], io: CliIO): Promise<number> {
  const parsed = commandFlags(
    'import',
    argv,
    {
      file: { type: 'string', short: 'f' },
      name: { type: 'string' },
      'psk-secret': { type: 'string' },
      'psk-key': { type: 'string' },
      kubeconfig: { type: 'string' },
      context: { type: 'string' },
    },
    HELP,
    io,
  );
  if (typeof parsed === 'number') return parsed;
  const v = parsed.values;
  const file = str(v, 'file');
  if (file === '') return usageError('import', io, '--file must not be empty');

  const kc = await connect('import', io, { kubeconfig: str(v, 'kubeconfig'), context: str(v, 'context') }, 'set --kubeconfig or KUBECONFIG');
  if (typeof kc === 'number') return kc;
  const { importRavenGateways, formatNote, pskInstructions } = await import('../../migrate/raven-import.ts');
  let gateways: Gateway[];
  let nodes: LabelledNode[];
  try {
    // As `corvid diff` and `status` read the cluster (no Gateway CRD reads as no Gateways).
    ({ gateways, nodes } = await readLive(kc));
  } catch (e) {
    io.stderr.write(clusterErrorMessage('import', e));
    return EXIT_ERROR;
  }
  if (gateways.length === 0) {
    io.stderr.write('corvid import: the cluster has no raven.openyurt.io/v1beta1 Gateways (is OpenYurt\'s Gateway CRD installed?); nothing to import\n');
    return EXIT_ERROR;
  }

  const pskSecretRef = { name: str(v, 'psk-secret') ?? 'corvid-psk', key: str(v, 'psk-key') ?? 'psk' };
  let result: ReturnType<typeof importRavenGateways>;
  try {
    result = importRavenGateways(gateways, nodes, { name: str(v, 'name') ?? 'imported', pskSecretRef });
  } catch (e) {
    io.stderr.write(`corvid import: internal error: ${(e as Error).stack ?? e}\n`);
    return EXIT_ERROR;
  }
  for (const n of result.notes) io.stderr.write(`corvid import: ${formatNote(n)}\n`);
  if (!result.ok) {
    for (const e of result.errors) io.stderr.write(`corvid import: ${e}\n`);
    io.stderr.write('corvid import: nothing written\n');
    return EXIT_ERROR;
  }
  for (const w of result.warnings) io.stderr.write(`corvid import: warning: ${w}\n`);
  if (file === undefined) io.stdout.write(result.text);
  else {
    try {
      await writeFile(resolvePath(io, file), result.text);
    } catch (e) {
      io.stderr.write(`corvid import: cannot write ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}\n`);
      return EXIT_ERROR;
    }
  }
  const left = result.notes.length;
  io.stderr.write(
    `corvid import: ${result.pools.length} pool${result.pools.length === 1 ? '' : 's'} from ${gateways.length} Gateway${gateways.length === 1 ? '' : 's'}` +
      `${file === undefined ? '' : ` written to ${file}`}; ${left === 0 ? 'everything carried over' : `${left} note${left === 1 ? '' : 's'} above (also in the file)`}\n`,
  );
  for (const line of pskInstructions(pskSecretRef)) io.stderr.write(`corvid import: ${line}\n`);
  return left === 0 ? EXIT_OK : EXIT_FINDINGS;
}
