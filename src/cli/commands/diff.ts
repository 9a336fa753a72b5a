// corvid diff: what applying a topology would change in the live cluster, without writing anything.
// Plans exactly as the sync does (same plan(), live nodes, heartbeat Leases, live Gateways as `previous`), then
// compares with the live Gateways the topology owns. Exit codes as kubectl diff: 0 none, 1 differences, >1 error.

import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { CliIO } from '../io.ts';
import { EXIT_FINDINGS, EXIT_OK, useColour } from '../io.ts';
import { commandFlags, str } from '../flags.ts';
import {
  clusterErrorMessage,
  connect,
  contentRevision,
  EXIT_ERROR,
  nowFrom,
  ownedBy,
  NO_CALICO,
  planDesired,
  podSubnetInputOf,
  POD_SUBNETS_FLAG,
  readLive,
  readSnapshot,
  readTopologyFile,
  reportFindings,
  usageError,
} from '../inputs.ts';
import type { HeartbeatLease, InventoryNode } from '../../plan/index.ts';
import { canonicalGateway, CORVID_PREFIX, YAML_OPTIONS } from '../../gateway/render.ts';
import { OWNED_LABELS, REVISION_ANNOTATION } from '../../gateway/keys.ts';
import { GATEWAY_GROUP, GATEWAY_KIND, GATEWAY_VERSION } from '../../gateway/types.ts';
import type { Gateway } from '../../gateway/types.ts';
import { stringify } from 'yaml';
import { unifiedDiff } from '../../diff/unified.ts';
import { computeImpact, formatImpact } from '../../diff/impact.ts';
import type { Impact } from '../../diff/impact.ts';

export const HELP = `Usage: corvid diff -f FILE [--kubeconfig K] [--context C] [--nodes SNAPSHOT.yaml] [--output text|json]

Show what the sync would change if it applied this topology now: the Gateways it would create, update or delete,
as a unified diff per object, then the impact in plain words (elections, tunnels added/removed/re-keyed, routes
changed on how many nodes, pool pairs that lose connectivity). Nothing is written.

The desired Gateways are planned exactly as the sync plans them: the cluster's Nodes, the agents' heartbeat Leases
(namespace corvid-heartbeats) and the live Gateways (for sticky elections and stable relays). Server-owned fields
(resourceVersion, uid, generation, creationTimestamp, managedFields) and labels/annotations owned by others are
not compared.

Flags:
  -f, --file FILE         topology file (required)
      --kubeconfig FILE   kubeconfig (default: $KUBECONFIG, then ~/.kube/config, then in-cluster)
      --context NAME      kubeconfig context
      --nodes SNAPSHOT    offline: the nodes (and Leases) from a snapshot instead of the cluster's
                          (kubectl get nodes -o yaml > nodes.yaml). The live set is then empty, so every
                          Gateway is a "create", unless --kubeconfig or --context is also given: then the live
                          Gateways still come from that cluster.
      --pod-subnets MODE  auto (default: the topology's spec.podSubnets.source), podCIDR or calico, as the
                          sync's flag of the same name. Calico's BlockAffinities come from the cluster (or
                          from BlockAffinity items in the --nodes snapshot).
      --revision REV      revision for the corvid.dev/revision annotation. Without it the annotation is not
                          compared (live objects keep theirs; new ones get sha256:<hex> of the file).
  -o, --output FORMAT     text (default) or json: {changed, objects:[{name, action, diff}], impact}
      --lease-namespace NS  namespace of the agents' heartbeat Leases (default corvid-heartbeats)
      --elect-without-heartbeat
                            plan as a sync started with the same flag does: candidates without a heartbeat Lease
                            are judged by Ready alone (without it, and with Leases to read, they are never elected)
  -h, --help              show this help

Exit status: 0 no differences, 1 differences, 2 or more an error (as kubectl diff).

KUBECTL_EXTERNAL_DIFF is honoured like kubectl does: the live and merged objects are written to two temporary
directories (LIVE-*, MERGED-*; one file per object named raven.openyurt.io.v1beta1.Gateway..<name>) and the
program runs with the two directories as its last arguments (the variable is split on spaces). Its output is
passed through and its exit status becomes ours (0 same, 1 different, >1 error). The impact summary then goes to
stderr.

Examples:
  corvid diff -f topology.yaml
  corvid diff -f topology.yaml --context prod -o json | jq .impact
  corvid diff -f topology.yaml --nodes nodes.yaml          # offline, against an empty cluster
  KUBECTL_EXTERNAL_DIFF="meld" corvid diff -f topology.yaml
  KUBECTL_EXTERNAL_DIFF="diff -u -N --color=always" corvid diff -f topology.yaml
`;

const OWNED = new Set(OWNED_LABELS);

export type DiffAction = 'create' | 'update' | 'delete';

export interface ObjectDiff {
  name: string;
  action: DiffAction;
  live?: Gateway;
  merged?: Gateway;
  diff: string;
}

/** The object after a server-side apply of `desired` onto `live`: others' labels and annotations stay. */
export function mergedObject(desired: Gateway, live: Gateway | undefined): Gateway {
  if (!live) return canonicalGateway(desired);
  const labels: Record<string, string> = {};
  for (const [k, v] of Object.entries(live.metadata.labels ?? {})) if (!OWNED.has(k)) labels[k] = v;
  Object.assign(labels, desired.metadata.labels ?? {});
  const annotations: Record<string, string> = {};
  for (const [k, v] of Object.entries(live.metadata.annotations ?? {})) if (!k.startsWith(CORVID_PREFIX)) annotations[k] = v;
  Object.assign(annotations, desired.metadata.annotations ?? {});
  return canonicalGateway({ ...desired, metadata: { ...desired.metadata, labels, annotations } });
}

export function objectYaml(g: Gateway | undefined): string {
  if (!g) return '';
  return stringify(canonicalGateway(g), YAML_OPTIONS);
}

/** Per-object comparison of live (owned) and desired Gateways, sorted by name; unchanged objects are left out. */
export function compareGateways(live: readonly Gateway[], desired: readonly Gateway[]): ObjectDiff[] {
  const liveBy = new Map(live.map((g) => [g.metadata.name, g]));
  const desiredBy = new Map(desired.map((g) => [g.metadata.name, g]));
  const names = [...new Set([...liveBy.keys(), ...desiredBy.keys()])].sort();
  const out: ObjectDiff[] = [];
  for (const name of names) {
    const l = liveBy.get(name);
    const d = desiredBy.get(name);
    const liveObj = l ? canonicalGateway(l) : undefined;
    const merged = d ? mergedObject(d, l) : undefined;
    const from = objectYaml(liveObj);
    const to = objectYaml(merged);
    if (from === to) continue;
    const action: DiffAction = !l ? 'create' : !d ? 'delete' : 'update';
    const diff = unifiedDiff(`live/gateway/${name}`, `merged/gateway/${name}`, from, to);
    const o: ObjectDiff = { name, action, diff };
    if (liveObj) o.live = liveObj;
    if (merged) o.merged = merged;
    out.push(o);
  }
  return out;
}

/** kubectl's file name for an object in the LIVE/MERGED directories: group.version.kind.namespace.name. */
export function externalDiffFileName(name: string): string {
  return `${GATEWAY_GROUP}.${GATEWAY_VERSION}.${GATEWAY_KIND}..${name}`;
}

function colourDiff(text: string): string {
  return text
    .split('\n')
    .map((l) =>
      l.startsWith('+++') || l.startsWith('---')
        ? `\x1b[1m${l}\x1b[0m`
        : l.startsWith('@@')
          ? `\x1b[36m${l}\x1b[0m`
          : l.startsWith('+')
            ? `\x1b[32m${l}\x1b[0m`
            : l.startsWith('-')
              ? `\x1b[31m${l}\x1b[0m`
              : l,
    )
    .join('\n');
}

async function runExternalDiff(io: CliIO, program: string, objects: ObjectDiff[]): Promise<number> {
  const words = program.split(' ').filter((w) => w !== '');
  if (words.length === 0) return usageErrorExternal(io);
  const live = await mkdtemp(join(tmpdir(), 'LIVE-'));
  const merged = await mkdtemp(join(tmpdir(), 'MERGED-'));
  try {
    for (const o of objects) {
      if (o.live) await writeFile(join(live, externalDiffFileName(o.name)), objectYaml(o.live));
      if (o.merged) await writeFile(join(merged, externalDiffFileName(o.name)), objectYaml(o.merged));
    }
    return await new Promise<number>((resolve) => {
      const child = spawn(words[0], [...words.slice(1), live, merged], { env: io.env, cwd: io.cwd, stdio: ['ignore', 'pipe', 'pipe'] });
      child.stdout.on('data', (b: Buffer) => io.stdout.write(b.toString()));
      child.stderr.on('data', (b: Buffer) => io.stderr.write(b.toString()));
      child.on('error', (e: NodeJS.ErrnoException) => {
        io.stderr.write(`corvid diff: cannot run KUBECTL_EXTERNAL_DIFF program "${words[0]}": ${e.code ?? e.message}\n`);
        resolve(EXIT_ERROR);
      });
      child.on('close', (code, signal) => {
        if (signal) {
          io.stderr.write(`corvid diff: KUBECTL_EXTERNAL_DIFF program killed by ${signal}\n`);
          resolve(EXIT_ERROR);
        } else resolve(code ?? EXIT_ERROR);
      });
    });
  } finally {
    await rm(live, { recursive: true, force: true });
    await rm(merged, { recursive: true, force: true });
  }
}

function usageErrorExternal(io: CliIO): number {
  io.stderr.write('corvid diff: KUBECTL_EXTERNAL_DIFF is set but empty of a program\n');
  return EXIT_ERROR;
}

export interface DiffJson {
  changed: boolean;
  objects: { name: string; action: DiffAction; diff: string }[];
  impact: Impact;
}

export async function run(argv: string[], io: CliIO): Promise<number> {
  const parsed = commandFlags(
    'diff',
    argv,
    {
      file: { type: 'string', short: 'f' },
      kubeconfig: { type: 'string' },
      context: { type: 'string' },
      nodes: { type: 'string' },
      revision: { type: 'string' },
      output: { type: 'string', short: 'o', choices: ['text', 'json'] },
      'lease-namespace': { type: 'string' },
      'elect-without-heartbeat': { type: 'boolean' },
      'pod-subnets': POD_SUBNETS_FLAG,
    },
    HELP,
    io,
  );
  if (typeof parsed === 'number') return parsed;
  const v = parsed.values;
  const file = str(v, 'file');
  if (!file) {
    usageError('diff', io, 'a topology file is required (-f FILE)');
    return EXIT_ERROR;
  }
  const output = str(v, 'output') ?? 'text';
  const loaded = await readTopologyFile('diff', io, file);
  if (typeof loaded === 'number') return loaded;
  const topology = loaded.topology;
  const revisionFlag = str(v, 'revision');
  const revision = revisionFlag ?? contentRevision(loaded.text);

  let nodes: InventoryNode[] = [];
  let leases: HeartbeatLease[] = [];
  let calico = NO_CALICO;
  let liveAll: Gateway[] = [];
  const snapshotFile = str(v, 'nodes');
  const wantCluster = snapshotFile === undefined || str(v, 'kubeconfig') !== undefined || str(v, 'context') !== undefined;
  if (snapshotFile !== undefined) {
    const snap = await readSnapshot('diff', io, snapshotFile);
    if (typeof snap === 'number') return snap;
    nodes = snap.nodes;
    leases = snap.leases;
    calico = snap.calico;
  }
  if (wantCluster) {
    const kc = await connect('diff', io, { kubeconfig: str(v, 'kubeconfig'), context: str(v, 'context') });
    if (typeof kc === 'number') return kc;
    try {
      const fromCluster = snapshotFile === undefined;
      const live = await readLive(kc, { withNodes: fromCluster, withCalico: fromCluster, leaseNamespace: str(v, 'lease-namespace') });
      liveAll = live.gateways;
      if (fromCluster) {
        nodes = live.nodes;
        leases = live.leases;
        calico = live.calico ?? NO_CALICO;
      }
    } catch (e) {
      io.stderr.write(clusterErrorMessage('diff', e));
      return EXIT_ERROR;
    }
  }

  const previous = ownedBy(liveAll, topology.name);
  let desired: Gateway[];
  try {
    const result = planDesired({ topology, revision, nodes, leases, previous, now: nowFrom(io), podSubnets: podSubnetInputOf(str(v, 'pod-subnets'), calico), heartbeatsObserved: v['elect-without-heartbeat'] !== true && (snapshotFile === undefined || leases.length > 0) });
    reportFindings(io, result.findings);
    desired = result.gateways;
  } catch (e) {
    io.stderr.write(`corvid diff: internal error: ${(e as Error).stack ?? e}\n`);
    return EXIT_ERROR;
  }
  if (revisionFlag === undefined) {
    // The revision is bookkeeping: without --revision, a live object keeps its own, so only real changes show.
    const liveBy = new Map(previous.map((g) => [g.metadata.name, g]));
    desired = desired.map((g) => {
      const liveRev = liveBy.get(g.metadata.name)?.metadata.annotations?.[REVISION_ANNOTATION];
      if (liveRev === undefined) return g;
      return { ...g, metadata: { ...g.metadata, annotations: { ...g.metadata.annotations, [REVISION_ANNOTATION]: liveRev } } };
    });
  }

  // A live Gateway of the same name that Corvid does not own yet is what the apply would overwrite: compare with it.
  const desiredNames = new Set(desired.map((g) => g.metadata.name));
  const liveForCompare = [...previous, ...liveAll.filter((g) => desiredNames.has(g.metadata.name) && !previous.includes(g))];
  const objects = compareGateways(liveForCompare, desired);
  const impact = computeImpact(previous, desired);
  const changed = objects.length > 0;

  const external = io.env.KUBECTL_EXTERNAL_DIFF;
  if (output === 'json') {
    const json: DiffJson = { changed, objects: objects.map((o) => ({ name: o.name, action: o.action, diff: o.diff })), impact };
    io.stdout.write(`${JSON.stringify(json, null, 2)}\n`);
    return changed ? EXIT_FINDINGS : EXIT_OK;
  }
  if (external !== undefined && external.trim() !== '') {
    const code = await runExternalDiff(io, external, objects);
    if (code <= 1) io.stderr.write(formatImpact(impact));
    return code;
  }
  const colour = useColour(io.stdout, io.env);
  for (const o of objects) io.stdout.write(colour ? colourDiff(o.diff) : o.diff);
  if (changed) {
    const counts = (['create', 'update', 'delete'] as const)
      .map((a) => [a, objects.filter((o) => o.action === a).length] as const)
      .filter(([, n]) => n > 0)
      .map(([a, n]) => `${n} to ${a}`);
    io.stdout.write(`\nGateways: ${counts.join(', ')}\n`);
  } else {
    io.stdout.write(`No differences: the ${desired.length} Gateway${desired.length === 1 ? '' : 's'} of ${topology.name} are up to date.\n`);
  }
  io.stdout.write(formatImpact(impact));
  return changed ? EXIT_FINDINGS : EXIT_OK;
}
