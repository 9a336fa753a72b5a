// corvid sync: run the sync controller (topology in, Gateways out) until SIGTERM/SIGINT.

import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHash, randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import type { CliIO } from '../io.ts';
import { EXIT_OK, EXIT_USAGE } from '../io.ts';
import { bool, commandFlags, intFlag, str, type FlagOptions, type FlagValues } from '../flags.ts';
import { parseDuration } from '../../topology/duration.ts';
import type { GitRef, SignatureVerification } from '../../adapters/git/repo.ts';
import { redactUrl } from '../../adapters/git/repo.ts';
import { parseAddress } from '../../adapters/http/server.ts';
import { MIN_VALIDATION_MEMORY_MIB } from '../../sync/validate-worker.ts';
import { connect } from '../inputs.ts';
import type { SyncOptions } from '../../sync/index.ts';

const EXIT_ERROR = 1;

export const HELP = `Usage: corvid sync --source git|file|cluster [flags]

Run the sync controller: read the topology, plan the Gateways against live node health (Node Ready, the agents'
heartbeat Leases, tunnel health), dry-run every change server-side, apply it (server-side apply, field manager
corvid-sync), prune Gateways the topology no longer has, and report on the Topology object's status (kstatus:
Ready/Reconciling/Stalled, lastAppliedRevision, lastAttemptedRevision).

A revision that fails any phase (fetch, signature, validation, dry run) changes nothing live: the last good one
keeps serving, and status, an Event, a metric and the log say why. Runs until SIGTERM or SIGINT.

Source (one of):
      --source KIND            git, file or cluster (default cluster)
  git:
      --git-url URL            repository to follow (credentials in the URL are never logged)
      --git-branch NAME        branch to follow (default main)
      --git-tag NAME           or a tag
      --git-commit SHA         or a fixed commit (40 hex digits)
      --git-path PATH          topology file in the repository (default topology.yaml)
      --git-cache-dir DIR      where the bare mirror is kept (default: a directory under $TMPDIR)
      --verify-signatures MODE none (default), ssh or gpg: refuse commits without a trusted signature
      --allowed-signers-file F ssh: trusted signers (git's gpg.ssh.allowedSignersFile format)
      --gpg-home DIR           gpg: GnuPG home holding the trusted keys
      --webhook-bind-address A serve POST /hooks/git here (GitHub X-Hub-Signature-256, Gitea X-Gitea-Signature)
      --webhook-secret-file F  file holding the webhook's HMAC secret (required with --webhook-bind-address)
  file:
      --file PATH              topology file, e.g. a mounted ConfigMap key (symlink swaps are followed)
  cluster:
      --topology NAME          the Topology object to follow (default: the only one in the cluster)
  git and file:
      --interval DURATION      poll interval (default 1m); a webhook or a file event triggers at once
      --no-status-object       do not keep a Topology object carrying status for git/file sources

Gateways:
      --gateway-spec MODE      who writes the Gateways' metadata and spec: apply (default) = this sync creates,
                               applies and prunes them; external = another writer does (Argo CD with the corvid
                               plugin, deploy/argocd/apps/corvid-gateways.yaml): the sync never creates, changes
                               or deletes a Gateway, writes status and the election annotation only to Gateways
                               whose spec is the planned one, and reports the others in the Topology's status as
                               WaitingForGatewaySpec. Needs --source=git (the branch the spec owner renders, so
                               the corvid.dev/revision annotations agree) or file

Pod subnets (what status.nodes[].subnets, the routes other pools get, are read from):
      --pod-subnets MODE       auto (default): as the topology's spec.podSubnets.source says, itself auto by default:
                               Calico IPAM's BlockAffinities when the cluster serves them (crd.projectcalico.org/v1
                               or projectcalico.org/v3) and has at least one, else node.spec.podCIDRs.
                               podCIDR or calico: that source, whatever the topology says (an install-time
                               override); podCIDR also turns the BlockAffinity watch off

Cluster:
      --kubeconfig FILE        kubeconfig (default: $KUBECONFIG, then ~/.kube/config, then in-cluster)
      --context NAME           kubeconfig context
      --lease-namespace NS     namespace of the agents' heartbeat Leases (default corvid-heartbeats)
      --elect-without-heartbeat
                               elect a candidate whose Corvid agent has never written a heartbeat Lease, by Ready
                               alone (nodes whose datapath another agent runs); by
                               default such a candidate is never elected
      --event-namespace NS     namespace for Events (default kube-system: the only one Kubernetes 1.20 accepts for
                               Events about cluster-scoped objects)

Leader election (two replicas, one writer):
      --leader-elect                       take part in leader election; without it this replica always writes
      --leader-election-namespace NS       namespace of the Lease (default $POD_NAMESPACE, else corvid-system)
      --leader-election-id NAME            name of the Lease (default corvid-sync-leader)
      --leader-election-lease-duration D   default 15s
      --leader-election-renew-deadline D   default 10s
      --leader-election-retry-period D     default 2s

Operations:
      --metrics-bind-address ADDR          /metrics (default :8080; 0 disables)
      --health-probe-bind-address ADDR     /healthz and /readyz (default :8081; 0 disables)
      --resync-interval DURATION           reconcile at least this often (default 10m)
      --apply-concurrency N                Gateways dry-run, then written, at once (default 16; 1-256): lower it
                                           for a slow API server, raise it for a first reconcile of thousands
      --validation-timeout DURATION        a revision is validated in a worker thread, never on the loop that
                                           does failover; one that takes longer is refused (default 20s)
      --validation-memory-mib N            ... or that needs a larger heap than N MiB (default 256; 64-16384);
                                           keep it below the pod's memory limit
      --log-level LEVEL                    debug, info (default), warn or error; JSON lines on stderr
  -h, --help                               show this help

Examples:
  # In the cluster (deploy/base): follow the Topology custom resource, two replicas.
  corvid sync --source=cluster --leader-elect --leader-election-namespace=corvid-system

  # Follow a branch, verify SSH-signed commits, fetch at once on a push webhook.
  corvid sync --source=git --git-url=https://git.example.com/net/edge.git --git-branch=main \\
    --git-path=clusters/edge/topology.yaml --verify-signatures=ssh --allowed-signers-file=/etc/corvid/allowed_signers \\
    --webhook-bind-address=:9292 --webhook-secret-file=/etc/corvid/webhook-secret

  # A topology mounted from a ConfigMap.
  corvid sync --source=file --file=/etc/corvid/topology/topology.yaml

  # Argo CD applies the Gateways (corvid render); the sync follows the same branch and only elects.
  corvid sync --source=git --git-url=https://git.example.com/net/edge.git --git-path=topology/edge.yaml \
    --gateway-spec=external
`;

/** The flags of `corvid sync`, for parseFlags. */
export const FLAGS: FlagOptions = {
  source: { type: 'string', choices: ['git', 'file', 'cluster'] },
  'git-url': { type: 'string' },
  'git-branch': { type: 'string' },
  'git-tag': { type: 'string' },
  'git-commit': { type: 'string' },
  'git-path': { type: 'string' },
  'git-cache-dir': { type: 'string' },
  'verify-signatures': { type: 'string', choices: ['none', 'ssh', 'gpg'] },
  'allowed-signers-file': { type: 'string' },
  'gpg-home': { type: 'string' },
  'webhook-bind-address': { type: 'string' },
  'webhook-secret-file': { type: 'string' },
  file: { type: 'string' },
  topology: { type: 'string' },
  interval: { type: 'string' },
  'no-status-object': { type: 'boolean' },
  'gateway-spec': { type: 'string', choices: ['apply', 'external'] },
  'pod-subnets': { type: 'string', choices: ['auto', 'podCIDR', 'calico'] },
  kubeconfig: { type: 'string' },
  context: { type: 'string' },
  'lease-namespace': { type: 'string' },
  'elect-without-heartbeat': { type: 'boolean' },
  'event-namespace': { type: 'string' },
  'leader-elect': { type: 'boolean' },
  'leader-election-namespace': { type: 'string' },
  'leader-election-id': { type: 'string' },
  'leader-election-lease-duration': { type: 'string' },
  'leader-election-renew-deadline': { type: 'string' },
  'leader-election-retry-period': { type: 'string' },
  'metrics-bind-address': { type: 'string' },
  'health-probe-bind-address': { type: 'string' },
  'resync-interval': { type: 'string' },
  'apply-concurrency': { type: 'string' },
  'validation-timeout': { type: 'string' },
  'validation-memory-mib': { type: 'string' },
  'log-level': { type: 'string', choices: ['debug', 'info', 'warn', 'error'] },
};

/** A flag, value or combination of flags the sync refuses (exit 2). */
export class UsageError extends Error {}

function durationMs(values: Record<string, unknown>, name: string, fallback: string): number {
  const text = str(values as never, name) ?? fallback;
  const s = parseDuration(text);
  if (s === undefined || s <= 0) throw new UsageError(`--${name} must be a duration like 500ms, 15s or 1m (got "${text}")`);
  return s * 1000;
}

/** What the sync needs when it finds no cluster to talk to. */
const SYNC_NO_CLUSTER_HINT = 'pass --kubeconfig FILE, set $KUBECONFIG, create ~/.kube/config, or run in a pod with a ServiceAccount';

/** A bind address flag: `0` or empty disables; anything else must be [host]:port (a usage error before anything starts). */
function bindAddress(name: string, v: string | undefined, fallback: string): string | undefined {
  const a = v ?? fallback;
  if (a === '0' || a === '') return undefined;
  try {
    parseAddress(a);
  } catch (e) {
    throw new UsageError(`--${name}: ${(e as Error).message}`);
  }
  return a;
}

/** What `corvid sync` runs with, short of the cluster connection and the logger. */
export type SyncSettings = Omit<SyncOptions, 'kubeConfig' | 'logger'> & {
  kubeconfig?: string;
  context?: string;
  logLevel: 'debug' | 'info' | 'warn' | 'error';
};

/**
 * The sync's parsed flags, checked in full: a value or combination it refuses throws UsageError, before any cluster
 * is looked for. `env` supplies POD_NAME and POD_NAMESPACE, as in the pod. The deploy/ tests run the manifests' args
 * through parseFlags(FLAGS) and this, as `run` does.
 */
export function syncSettings(v: FlagValues, env: NodeJS.ProcessEnv): SyncSettings {
  const kind = (str(v, 'source') ?? 'cluster') as 'git' | 'file' | 'cluster';
  let source: SyncSettings['source'];
  let webhookSecret: Buffer | undefined;
  const webhookAddress = str(v, 'webhook-bind-address');
  if (kind === 'git') {
    const url = str(v, 'git-url');
    if (!url) throw new UsageError('--source=git needs --git-url');
    const refs = ['git-branch', 'git-tag', 'git-commit'].filter((f) => str(v, f) !== undefined);
    if (refs.length > 1) throw new UsageError('give one of --git-branch, --git-tag, --git-commit');
    const ref: GitRef = str(v, 'git-tag')
      ? { tag: str(v, 'git-tag')! }
      : str(v, 'git-commit')
        ? { commit: str(v, 'git-commit')! }
        : { branch: str(v, 'git-branch') ?? 'main' };
    let verify: SignatureVerification | undefined;
    const mode = str(v, 'verify-signatures') ?? 'none';
    if (mode === 'ssh') {
      const f = str(v, 'allowed-signers-file');
      if (!f) throw new UsageError('--verify-signatures=ssh needs --allowed-signers-file');
      verify = { mode: 'ssh', allowedSignersFile: f };
    } else if (mode === 'gpg') {
      const h = str(v, 'gpg-home');
      if (!h) throw new UsageError('--verify-signatures=gpg needs --gpg-home');
      verify = { mode: 'gpg', gnupgHome: h };
    }
    const cacheDir =
      str(v, 'git-cache-dir') ?? join(tmpdir(), `corvid-git-${createHash('sha256').update(url).digest('hex').slice(0, 16)}`);
    source = { kind: 'git', url, ref, path: str(v, 'git-path') ?? 'topology.yaml', cacheDir, intervalMs: durationMs(v, 'interval', '1m'), verify };
    if (webhookAddress !== undefined) {
      const f = str(v, 'webhook-secret-file');
      if (!f) throw new UsageError('--webhook-bind-address needs --webhook-secret-file');
      webhookSecret = Buffer.from(readFileSync(f, 'utf8').trim());
      if (webhookSecret.length === 0) throw new UsageError(`--webhook-secret-file ${f} is empty`);
    }
  } else if (kind === 'file') {
    const file = str(v, 'file');
    if (!file) throw new UsageError('--source=file needs --file');
    source = { kind: 'file', path: file, intervalMs: durationMs(v, 'interval', '1m') };
  } else {
    source = { kind: 'cluster', name: str(v, 'topology') };
  }
  if (kind !== 'git' && webhookAddress !== undefined) throw new UsageError('--webhook-bind-address needs --source=git');
  // The spec owner stamps corvid.dev/revision from Git (`corvid render --revision`); a Topology object's
  // generation:<n> can never equal it, so every Gateway would wait for ever.
  if (kind === 'cluster' && str(v, 'gateway-spec') === 'external') throw new UsageError('--gateway-spec=external needs --source=git or file');

  const applyConcurrency = intFlag(v, 'apply-concurrency', 1, 256);
  if (typeof applyConcurrency === 'string') throw new UsageError(applyConcurrency);
  const validationMemoryMiB = intFlag(v, 'validation-memory-mib', MIN_VALIDATION_MEMORY_MIB, 16384);
  if (typeof validationMemoryMiB === 'string') throw new UsageError(validationMemoryMiB);

  let leaderElection: SyncSettings['leaderElection'];
  if (bool(v, 'leader-elect')) {
    leaderElection = {
      namespace: str(v, 'leader-election-namespace') ?? env.POD_NAMESPACE ?? 'corvid-system',
      name: str(v, 'leader-election-id'),
      identity: `${env.POD_NAME ?? hostname()}_${randomBytes(4).toString('hex')}`,
      leaseDurationMs: durationMs(v, 'leader-election-lease-duration', '15s'),
      renewDeadlineMs: durationMs(v, 'leader-election-renew-deadline', '10s'),
      retryPeriodMs: durationMs(v, 'leader-election-retry-period', '2s'),
    };
    if (!(leaderElection.retryPeriodMs! < leaderElection.renewDeadlineMs! && leaderElection.renewDeadlineMs! < leaderElection.leaseDurationMs!)) {
      throw new UsageError('leader election needs retry-period < renew-deadline < lease-duration');
    }
  }

  return {
    kubeconfig: str(v, 'kubeconfig'),
    context: str(v, 'context'),
    logLevel: (str(v, 'log-level') ?? 'info') as SyncSettings['logLevel'],
    source,
    leaseNamespace: str(v, 'lease-namespace'),
    electWithoutHeartbeat: bool(v, 'elect-without-heartbeat'),
    eventNamespace: str(v, 'event-namespace'),
    statusObject: !bool(v, 'no-status-object'),
    gatewaySpec: (str(v, 'gateway-spec') ?? 'apply') as 'apply' | 'external',
    podSubnets: (str(v, 'pod-subnets') ?? 'auto') as 'auto' | 'podCIDR' | 'calico',
    healthAddress: bindAddress('health-probe-bind-address', str(v, 'health-probe-bind-address'), ':8081'),
    metricsAddress: bindAddress('metrics-bind-address', str(v, 'metrics-bind-address'), ':8080'),
    webhookAddress: bindAddress('webhook-bind-address', webhookAddress, ''),
    webhookSecret,
    resyncIntervalMs: durationMs(v, 'resync-interval', '10m'),
    applyConcurrency,
    validationTimeoutMs: durationMs(v, 'validation-timeout', '20s'),
    validationMemoryMiB,
    defaultMetrics: true,
    ...(leaderElection ? { leaderElection } : {}),
  };
}

export async function run(argv: string[], io: CliIO): Promise<number> {
  const parsed = commandFlags('sync', argv, FLAGS, HELP, io);
  if (typeof parsed === 'number') return parsed;

  let settings: SyncSettings;
  try {
    settings = syncSettings(parsed.values, io.env);
  } catch (e) {
    io.stderr.write(`corvid sync: ${e instanceof Error ? e.message : String(e)}\n`);
    if (e instanceof UsageError) {
      io.stderr.write('Run "corvid sync --help" for the flags and examples.\n');
      return EXIT_USAGE;
    }
    return EXIT_ERROR;
  }

  // Everything heavy is loaded only when the command really runs.
  const [{ startSync }, { jsonLogger }] = await Promise.all([import('../../sync/index.ts'), import('../../shell/log.ts')]);
  const { kubeconfig, context, logLevel, ...rest } = settings;
  const kubeConfig = await connect('sync', io, { kubeconfig, context }, SYNC_NO_CLUSTER_HINT);
  if (typeof kubeConfig === 'number') return kubeConfig;
  const options: SyncOptions = {
    ...rest,
    kubeConfig,
    logger: jsonLogger({ level: logLevel, write: (line) => io.stderr.write(line), base: { component: 'sync' } }),
  };

  let handle: Awaited<ReturnType<typeof startSync>>;
  try {
    handle = await startSync(options);
  } catch (e) {
    const msg = e instanceof Error ? e.message : String(e);
    io.stderr.write(`corvid sync: ${options.source.kind === 'git' ? msg.split(options.source.url).join(redactUrl(options.source.url)) : msg}\n`);
    return EXIT_ERROR;
  }
  const signal = await new Promise<string>((resolve) => {
    process.once('SIGTERM', () => resolve('SIGTERM'));
    process.once('SIGINT', () => resolve('SIGINT'));
  });
  options.logger?.info('shutting down', { signal });
  await handle.stop();
  return EXIT_OK;
}
