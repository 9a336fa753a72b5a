// What the operator commands read: the topology file, an offline node snapshot, or the live cluster; and the one
// planning step they share with the sync (src/plan's plan(), nothing else decides).

import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { inputFileProblem, readBoundedFile } from '../adapters/fs/bounded.ts';
import { isAbsolute, resolve } from 'node:path';
import { parseAllDocuments } from 'yaml';
import type { CliIO } from './io.ts';
import { EXIT_USAGE } from './io.ts';
import { formatTopologyError, loadTopology } from '../topology/index.ts';
import { yamlMessage } from '../topology/parse.ts';
import type { Topology } from '../topology/types.ts';
import { CALICO_BLOCK_AFFINITY_VERSIONS, NO_CALICO, podSubnetInput, desiredGateways, inventoryFromNodeList } from '../plan/index.ts';
import type { CalicoGroupVersion, CalicoIpamState, HeartbeatLease, InventoryNode, PlanResult, PodSubnetInput, PodSubnetMode, TopologySummary } from '../plan/index.ts';
import type { Gateway } from '../gateway/types.ts';
import { ownedByTopology, REVISION_ANNOTATION } from '../gateway/keys.ts';
import type { KubeConfig } from '../adapters/kube/client.ts';
import { DEFAULT_HEARTBEAT_TIMEOUT, durationSeconds } from '../topology/normalise.ts';

/** Exit code for errors (bad input, cluster unreachable), as kubectl diff uses >1 for errors. */
export const EXIT_ERROR = 2;

export function resolvePath(io: CliIO, p: string): string {
  return isAbsolute(p) ? p : resolve(io.cwd, p);
}

export interface LoadedTopology {
  topology: Topology;
  text: string;
  file: string;
}

/**
 * Read and check a topology file. On failure prints every `file:line:col: ...` error (or the read error) to stderr
 * and returns the exit code; warnings go to stderr too.
 */
export async function readTopologyFile(command: string, io: CliIO, file: string): Promise<LoadedTopology | number> {
  let text: string;
  try {
    text = await readBoundedFile(resolvePath(io, file));
  } catch (e) {
    io.stderr.write(`corvid ${command}: topology file ${file} ${inputFileProblem(e)}\n`);
    return EXIT_ERROR;
  }
  const r = loadTopology(text, file);
  if (!r.ok) {
    for (const e of r.errors) io.stderr.write(`${formatTopologyError(e)}\n`);
    io.stderr.write(`corvid ${command}: ${file} has ${r.errors.length} error${r.errors.length === 1 ? '' : 's'}; nothing rendered\n`);
    return EXIT_ERROR;
  }
  for (const w of r.warnings) io.stderr.write(`warning: ${formatTopologyError(w)}\n`);
  return { topology: r.topology, text, file };
}

/** Default revision: the content hash of the topology file, `sha256:<64 hex>`. */
export function contentRevision(text: string): string {
  return `sha256:${createHash('sha256').update(text).digest('hex')}`;
}

export interface Snapshot {
  nodes: InventoryNode[];
  /** Heartbeat Leases found in the snapshot (kind Lease items), for offline health. */
  leases: HeartbeatLease[];
  /**
   * Calico IPAM as the snapshot shows it: the BlockAffinity items, and as "served" the Calico group/versions they
   * carry (a snapshot cannot show a served resource without objects, which `auto` treats as no Calico anyway).
   */
  calico: CalicoIpamState;
}

export { NO_CALICO };

/**
 * A node snapshot: what `kubectl get nodes -o yaml` prints (a List/NodeList), a single Node, or a YAML stream of
 * those. Items of kind Lease (`kubectl get leases -n corvid-heartbeats -o yaml`) are read as heartbeats, items of kind
 * BlockAffinity (`kubectl get blockaffinities.crd.projectcalico.org -o yaml`) as Calico IPAM's blocks.
 */
export async function readSnapshot(command: string, io: CliIO, file: string): Promise<Snapshot | number> {
  let text: string;
  try {
    text = await readBoundedFile(resolvePath(io, file));
  } catch (e) {
    io.stderr.write(`corvid ${command}: node snapshot ${file} ${inputFileProblem(e)}\n`);
    return EXIT_ERROR;
  }
  try {
    return parseSnapshot(text);
  } catch (e) {
    io.stderr.write(`corvid ${command}: ${file}: ${(e as Error).message} (make it with: kubectl get nodes -o yaml > ${file})\n`);
    return EXIT_ERROR;
  }
}

export function parseSnapshot(text: string): Snapshot {
  const nodeItems: unknown[] = [];
  const leases: HeartbeatLease[] = [];
  const blockAffinities: unknown[] = [];
  const served = new Set<CalicoGroupVersion>();
  const docs = parseAllDocuments(text);
  const list = Array.isArray(docs) ? docs : [docs];
  for (const doc of list) {
    // yaml's own message quotes the line, which might hold a key: the topology's plain words, and the line number.
    const e = doc.errors[0];
    if (e !== undefined) throw new Error(`line ${e.linePos?.[0].line ?? '?'}: ${yamlMessage(e.message, e.code)}`);
    const v = doc.toJS() as unknown;
    if (v === null || v === undefined) continue;
    const items =
      typeof v === 'object' && !Array.isArray(v) && Array.isArray((v as { items?: unknown }).items)
        ? (v as { items: unknown[] }).items
        : Array.isArray(v)
          ? v
          : [v];
    for (const item of items) {
      const kind = (item as { kind?: unknown } | null)?.kind;
      if (kind === 'Lease') {
        const hb = leaseToHeartbeat(item as LeaseLike);
        if (hb) leases.push(hb);
      } else if (kind === 'BlockAffinity') {
        // Malformed ones too: the planner reports them.
        blockAffinities.push(item);
        const gv = (item as { apiVersion?: unknown }).apiVersion as CalicoGroupVersion;
        if (CALICO_BLOCK_AFFINITY_VERSIONS.includes(gv)) served.add(gv);
      } else nodeItems.push(item);
    }
  }
  return {
    nodes: inventoryFromNodeList(nodeItems),
    leases,
    calico: { served: CALICO_BLOCK_AFFINITY_VERSIONS.filter((gv) => served.has(gv)), blockAffinities },
  };
}

interface LeaseLike {
  metadata?: { name?: string; annotations?: Record<string, string> };
  spec?: { renewTime?: string; acquireTime?: string; leaseDurationSeconds?: number };
}

function leaseToHeartbeat(l: LeaseLike): HeartbeatLease | undefined {
  const name = l.metadata?.name;
  if (!name) return undefined;
  const hb: HeartbeatLease = { node: name };
  // YAML may have turned timestamps into strings already; keep them as sent.
  if (l.spec?.renewTime) hb.renewTime = String(l.spec.renewTime);
  if (l.spec?.acquireTime) hb.acquireTime = String(l.spec.acquireTime);
  if (typeof l.spec?.leaseDurationSeconds === 'number') hb.leaseDurationSeconds = l.spec.leaseDurationSeconds;
  const raw = l.metadata?.annotations?.['corvid.dev/tunnels'];
  if (raw) {
    try {
      const t = JSON.parse(raw) as Record<string, { up?: unknown; since?: unknown }>;
      const tunnels: NonNullable<HeartbeatLease['tunnels']> = {};
      for (const [peer, s] of Object.entries(t)) {
        if (s && typeof s.up === 'boolean') tunnels[peer] = { up: s.up, since: typeof s.since === 'string' ? s.since : '' };
      }
      hb.tunnels = tunnels;
    } catch {
      // A malformed annotation is no signal.
    }
  }
  return hb;
}

// ---------------------------------------------------------------- the live cluster

export const NO_CLUSTER_HINT = 'set --kubeconfig or KUBECONFIG, or pass --nodes to work offline';

/** Load the kubeconfig (lazily importing the Kubernetes client). Prints a helpful error and returns an exit code. */
export async function connect(
  command: string,
  io: CliIO,
  opts: { kubeconfig?: string; context?: string },
  hint = NO_CLUSTER_HINT,
): Promise<KubeConfig | number> {
  const { loadKubeConfig, NoKubeconfigError } = await import('../adapters/kube/kubeconfig.ts');
  try {
    return await loadKubeConfig({ kubeconfig: opts.kubeconfig ? resolvePath(io, opts.kubeconfig) : undefined, context: opts.context, env: io.env });
  } catch (e) {
    if (e instanceof NoKubeconfigError) io.stderr.write(`corvid ${command}: no kubeconfig found: ${hint}\n`);
    else io.stderr.write(`corvid ${command}: cannot load kubeconfig: ${(e as Error).message}; ${hint}\n`);
    return EXIT_ERROR;
  }
}

export interface LiveState {
  /** Calico IPAM, when readLive was asked withCalico. */
  calico?: CalicoIpamState;
  nodes: InventoryNode[];
  /** Node name -> Ready. */
  ready: Record<string, boolean>;
  leases: HeartbeatLease[];
  /** Every Gateway in the cluster. */
  gateways: Gateway[];
}

/**
 * Read Nodes, heartbeat Leases and Gateways from the cluster, and with `withCalico` the served Calico BlockAffinities
 * (as the sync does: discovery, then a list per served group/version; no permission to list them reads as none).
 * Throws on API errors (the caller reports them).
 */
export async function readLive(kc: KubeConfig, opts: { leaseNamespace?: string; withNodes?: boolean; withCalico?: boolean } = {}): Promise<LiveState> {
  const [{ listNodes }, { listHeartbeatLeases, DEFAULT_LEASE_NAMESPACE }, { listGateways }, { statusCode }] = await Promise.all([
    import('../adapters/kube/nodes.ts'),
    import('../adapters/kube/leases.ts'),
    import('../adapters/kube/gateways.ts'),
    import('../adapters/kube/client.ts'),
  ]);
  const nodeList = opts.withNodes === false ? { items: [] } : await listNodes(kc);
  let leases: HeartbeatLease[] = [];
  try {
    leases = await listHeartbeatLeases(kc, opts.leaseNamespace ?? DEFAULT_LEASE_NAMESPACE);
  } catch (e) {
    // No namespace or no permission: no heartbeat signal, as for a cluster without agents.
    if (statusCode(e) !== 404 && statusCode(e) !== 403) throw e;
  }
  let gateways: Gateway[] = [];
  try {
    gateways = (await listGateways(kc)).items;
  } catch (e) {
    // The CRD is not installed yet: no live Gateways.
    if (statusCode(e) !== 404) throw e;
  }
  const nodes = inventoryFromNodeList(nodeList.items);
  const ready: Record<string, boolean> = {};
  for (const n of nodes) ready[n.name] = n.ready;
  return { ...(opts.withCalico ? { calico: await readCalico(kc) } : {}), nodes, ready, leases, gateways };
}

async function readCalico(kc: KubeConfig): Promise<CalicoIpamState> {
  const [{ discoverBlockAffinities, listBlockAffinities }, { statusCode }] = await Promise.all([
    import('../adapters/kube/blockaffinities.ts'),
    import('../adapters/kube/client.ts'),
  ]);
  const served: CalicoGroupVersion[] = [];
  const blockAffinities: unknown[] = [];
  for (const gv of await discoverBlockAffinities(kc)) {
    try {
      blockAffinities.push(...(await listBlockAffinities(kc, gv)).items);
      served.push(gv);
    } catch (e) {
      if (statusCode(e) !== 404 && statusCode(e) !== 403) throw e;
    }
  }
  return { served, blockAffinities };
}

/** The planner's pod-subnet input for a command's --pod-subnets value (the flag's choices are the modes). */
export function podSubnetInputOf(flag: string | undefined, calico: CalicoIpamState): PodSubnetInput {
  return podSubnetInput(flag as PodSubnetMode | undefined, calico);
}

/** The --pod-subnets flag of render, diff and graph (the sync has its own help text). */
export const POD_SUBNETS_FLAG = { type: 'string', choices: ['auto', 'podCIDR', 'calico'] } as const;

/** The Gateways a topology owns: managed by Corvid and labelled with the topology's name. */
export function ownedBy(gateways: readonly Gateway[], topologyName: string): Gateway[] {
  return gateways.filter((g) => ownedByTopology(g, topologyName));
}

export function clusterErrorMessage(command: string, e: unknown): string {
  const msg = e instanceof Error ? e.message : String(e);
  const code = (e as { code?: unknown })?.code;
  const hint =
    code === 'ECONNREFUSED' || code === 'ENOTFOUND' || code === 'EHOSTUNREACH' || /ECONNREFUSED|ENOTFOUND|timed out/.test(msg)
      ? `; is the cluster reachable? (check --kubeconfig/--context, or pass --nodes to work offline)`
      : code === 401 || code === 403
        ? '; the kubeconfig user needs get/list on nodes, leases (corvid-heartbeats), gateways.raven.openyurt.io and, with Calico, blockaffinities'
        : '';
  return `corvid ${command}: cannot read the cluster: ${msg}${hint}\n`;
}

// ---------------------------------------------------------------- planning, exactly as the sync does it

export interface PlanOptions {
  topology: Topology;
  revision: string;
  nodes: InventoryNode[];
  leases: HeartbeatLease[];
  previous: Gateway[];
  now: string;
  podSubnets?: PodSubnetInput;
  /**
   * Whether the Leases were observed (read from a cluster, or a snapshot that holds some): then, as the sync does, a
   * candidate without one is not elected. Otherwise (an offline plan with no Lease data) every Ready candidate's
   * agent is assumed live.
   */
  heartbeatsObserved?: boolean;
}

/** The sync's plan step (desiredGateways) with a fresh memory, as a sync that just started. */
export function planDesired(o: PlanOptions): PlanResult {
  return desiredGateways({
    topology: o.topology,
    revision: o.revision,
    nodes: o.nodes,
    heartbeats: o.leases,
    previous: o.previous,
    now: o.now,
    requireHeartbeat: o.heartbeatsObserved ?? o.leases.length > 0,
    ...(o.podSubnets ? { podSubnets: o.podSubnets } : {}),
  }).planned;
}

/** Print planner findings to stderr, one line each. */
export function reportFindings(io: CliIO, findings: PlanResult['findings']): void {
  for (const f of findings) io.stderr.write(`${f.severity}: ${f.message}${f.code ? ` [${f.code}]` : ''}\n`);
}

/** The revision annotation of a Gateway, if any. */
export function revisionOf(g: Gateway | undefined): string | undefined {
  return g?.metadata.annotations?.[REVISION_ANNOTATION];
}

/** Usage error helper. */
export function usageError(command: string, io: CliIO, message: string): number {
  io.stderr.write(`corvid ${command}: ${message}\nRun "corvid ${command} --help" for the flags and examples.\n`);
  return EXIT_USAGE;
}

/** RFC 3339 now from the environment (CORVID_NOW, for reproducible output and tests) or the clock. */
export function nowFrom(io: CliIO): string {
  const fixed = io.env.CORVID_NOW;
  if (fixed) return fixed;
  return new Date().toISOString();
}

// ---------------------------------------------------------------- Topology objects


/** The Topology objects' names, revisions, conditions and election timing, by name; none when the CRD is absent. */
export async function readTopologies(kc: KubeConfig): Promise<TopologySummary[]> {
  const [{ listTopologies }, { statusCode }] = await Promise.all([import('../adapters/kube/topologies.ts'), import('../adapters/kube/client.ts')]);
  try {
    const { items } = await listTopologies(kc);
    return items
      .map((t) => {
        const s: TopologySummary = {
          name: t.metadata?.name ?? '',
          conditions: (t.status?.conditions ?? []).map((c) => ({ type: c.type, status: c.status, reason: c.reason, message: c.message })),
        };
        const timeout = (t.spec as { election?: { heartbeatTimeout?: unknown } } | undefined)?.election?.heartbeatTimeout;
        if (timeout !== undefined) s.heartbeatTimeoutSeconds = durationSeconds(timeout, DEFAULT_HEARTBEAT_TIMEOUT);
        if (t.status?.lastAppliedRevision) s.lastAppliedRevision = t.status.lastAppliedRevision;
        if (t.status?.lastAttemptedRevision) s.lastAttemptedRevision = t.status.lastAttemptedRevision;
        const ps = t.status?.podSubnets;
        if (ps && typeof ps.source === 'string') {
          s.podSubnets = { source: ps.source, reason: typeof ps.reason === 'string' ? ps.reason : '' };
          const problems = Array.isArray(ps.problems) ? ps.problems.filter((x): x is string => typeof x === 'string') : [];
          if (problems.length > 0) s.podSubnets.problems = problems;
        }
        return s;
      })
      .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  } catch (e) {
    // Topology CRD not installed (the sync may run from Git only): no revision or conditions to show.
    if (statusCode(e) === 404) return [];
    throw e;
  }
}
