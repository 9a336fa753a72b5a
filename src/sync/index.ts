// `startSync`: wires the sources, informers, leader election, reconciler, HTTP endpoints and timers together.
//
// When a reconcile runs (debounced, one at a time):
// - a source has a new artifact (git poll/webhook, file event, Topology change);
// - a Gateway, Node or heartbeat Lease changed (drift repair, the election reacting within one reconcile, and with
//   gatewaySpec 'external' the spec owner applying a Gateway the sync was waiting for);
// - a timer: the next heartbeat expiry or maturity (failover never waits for a periodic resync), a retry with
//   exponential backoff after a failure, the periodic resync;
// - this replica became the leader.
// Only the leader reconciles; a standby keeps its caches warm and writes nothing at all.

import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import type { KubeConfig } from '../adapters/kube/kubeconfig.ts';
import { errorMessage } from '../adapters/kube/client.ts';
import { DEFAULT_EVENT_NAMESPACE, eventRecorder } from '../adapters/kube/events.ts';
import { gatewayInformer } from '../adapters/kube/gateways.ts';
import type { Informer, InformerEvent } from '../adapters/kube/informer.ts';
import { LeaderElector } from '../adapters/kube/leader.ts';
import { DEFAULT_LEASE_NAMESPACE, LEADER_LEASE_NAME, heartbeatFromLease, leaseInformer } from '../adapters/kube/leases.ts';
import { nodeInformer, type NodeJson } from '../adapters/kube/nodes.ts';
import { canonicalJson } from '../gateway/canonical.ts';
import { inventoryFromNode, NO_CALICO, podSubnetInput, type PodSubnetMode } from '../plan/index.ts';
import { topologyInformer, type TopologyObject } from '../adapters/kube/topologies.ts';
import type { GitRef, SignatureVerification } from '../adapters/git/repo.ts';
import type { ServerResponse } from 'node:http';
import { verifyWebhookSignature } from '../adapters/git/webhook.ts';
import { WebhookGuard, type GuardVerdict } from './webhook-guard.ts';
import { CalicoWatch } from './calico.ts';
import { jsonLogger, type Logger } from '../shell/log.ts';
import { createMetrics, type SyncMetrics } from './metrics.ts';
import { countRequests } from '../adapters/kube/request-metrics.ts';
import { GatewayReconciler, type GatewaySpecMode, type ReconcileReport } from './reconciler.ts';
import { serve, type Handler, type Listening } from '../adapters/http/server.ts';
import { ClusterSource } from './source-cluster.ts';
import { FileSource } from './source-file.ts';
import { GitSource } from './source-git.ts';
import { checkServedGatewayCrd } from './preflight.ts';
import type { TopologySource } from './source.ts';
import { BackgroundValidator, DEFAULT_VALIDATION_LIMITS } from './validate-worker.ts';
import { SerialRunner } from '../shell/serial.ts';
import { kubeWrites } from './writes.ts';

export type SourceOptions =
  | {
      kind: 'git';
      url: string;
      ref: GitRef;
      /** Path of the topology file in the repository. */
      path: string;
      /** Where the bare mirror lives. */
      cacheDir: string;
      /** Poll interval. */
      intervalMs: number;
      verify?: SignatureVerification;
      /** A git command that makes no progress for this long is killed (default 60 s). */
      timeoutMs?: number;
    }
  | { kind: 'file'; path: string; intervalMs: number }
  | { kind: 'cluster'; name?: string };

export interface LeaderElectionSettings {
  namespace: string;
  name?: string;
  identity?: string;
  leaseDurationMs?: number;
  renewDeadlineMs?: number;
  retryPeriodMs?: number;
}

export interface SyncOptions {
  kubeConfig: KubeConfig;
  source: SourceOptions;
  /** Namespace of the agents' heartbeat Leases. Default corvid-heartbeats. */
  leaseNamespace?: string;
  /**
   * Elect candidates whose agent has never written a heartbeat Lease, by Ready alone. Default false: a candidate
   * needs a live Corvid agent. For clusters whose nodes run another agent (raven-agent, during a migration).
   */
  electWithoutHeartbeat?: boolean;
  /** Leader election; leave out to run as the only writer. */
  leaderElection?: LeaderElectionSettings;
  /** Namespace for Events. Default kube-system (see adapters/kube/events.ts). */
  eventNamespace?: string;
  /** git/file sources: keep a Topology object carrying status (spec = last applied revision). Default true. */
  statusObject?: boolean;
  /** e.g. `:8081`, `127.0.0.1:0`. /healthz and /readyz. */
  healthAddress?: string;
  /** /metrics. May equal healthAddress. */
  metricsAddress?: string;
  /** POST /hooks/git (git source only). Needs webhookSecret. */
  webhookAddress?: string;
  webhookSecret?: Buffer;
  /** Coalescing window for events. Default 25 ms. */
  debounceMs?: number;
  /** Periodic reconcile even without events. Default 10 min. */
  resyncIntervalMs?: number;
  /** Retry backoff after a failed reconcile. Default 500 ms doubling to 60 s. */
  retryInitialMs?: number;
  retryMaxMs?: number;
  /** Gateways dry-run, then written, at once by a reconcile. Default 16 (DEFAULT_APPLY_CONCURRENCY). */
  applyConcurrency?: number;
  /**
   * 'apply' (default): the sync creates, applies and prunes the Gateways. 'external': another writer (Argo CD
   * applying `corvid render`) owns their metadata and spec; the sync writes only status and the live-state annotations (election, WireGuard keys),
   * to Gateways whose spec is already the planned one, and waits for the others.
   */
  gatewaySpec?: GatewaySpecMode;
  /**
   * Where pod subnets come from (--pod-subnets). 'auto' (default): as the topology's spec.podSubnets.source says
   * (itself auto by default: Calico BlockAffinities when served and present, else node.spec.podCIDRs). 'podCIDR' or
   * 'calico': that source, whatever the topology says; 'podCIDR' also turns the BlockAffinity watch off.
   */
  podSubnets?: PodSubnetMode;
  /** A revision whose validation (in a worker thread) takes longer is refused (--validation-timeout). Default 20 s. */
  validationTimeoutMs?: number;
  /** ... or needs a larger heap (--validation-memory-mib). Default 256 MiB. */
  validationMemoryMiB?: number;
  /** How often the served Calico BlockAffinity group/versions are discovered again. Default 30 s. */
  calicoRediscoverMs?: number;
  /** Informer backoff. Defaults 250 ms to 30 s. */
  informerInitialBackoffMs?: number;
  informerMaxBackoffMs?: number;
  logger?: Logger;
  /** Register process metrics (CPU, memory, event loop) too. Default false. */
  defaultMetrics?: boolean;
  now?: () => Date;
}

export interface SyncHandle {
  stop(): Promise<void>;
  isLeader(): boolean;
  /** What /readyz answers. */
  ready(): boolean;
  /** The revision in force. */
  revision(): string | undefined;
  /** Ask for a reconcile now (debounced). */
  trigger(reason: string): void;
  /** Called after every reconcile that ran (not the skipped ones of a standby). Returns an unsubscribe function. */
  onReconcile(cb: (r: ReconcileReport) => void): () => void;
  metrics: SyncMetrics;
  /** Counters of each informer (lists, watches, 410s, errors). */
  informerStats(): Record<string, { lists: number; watches: number; gone: number; errors: number }>;
  /** Discover the served Calico BlockAffinity group/versions now (it happens periodically anyway). */
  rediscoverCalico(): Promise<void>;
  addresses: { health?: string; metrics?: string; webhook?: string };
  identity: string;
}

/** The planner's view of a Node, as one string ('' when it has none). */
function nodeView(n: NodeJson): string {
  try {
    return canonicalJson(inventoryFromNode(n));
  } catch {
    return '';
  }
}

function makeSource(o: SyncOptions, logger: Logger): TopologySource {
  const s = o.source;
  const backoff = { initialBackoffMs: o.informerInitialBackoffMs, maxBackoffMs: o.informerMaxBackoffMs };
  switch (s.kind) {
    case 'git':
      return new GitSource({ url: s.url, ref: s.ref, path: s.path, cacheDir: s.cacheDir, intervalMs: s.intervalMs, verify: s.verify, timeoutMs: s.timeoutMs, logger: logger.with({ source: 'git' }) });
    case 'file':
      return new FileSource({ path: s.path, intervalMs: s.intervalMs, logger: logger.with({ source: 'file' }) });
    case 'cluster':
      return new ClusterSource({ kubeConfig: o.kubeConfig, name: s.name, logger: logger.with({ source: 'cluster' }), informerBackoff: backoff });
  }
}

export async function startSync(o: SyncOptions): Promise<SyncHandle> {
  const logger = o.logger ?? jsonLogger();
  const kc = o.kubeConfig;
  // Before anything starts: a Gateway CRD that would prune or refuse what the sync writes stops it here, saying why.
  await checkServedGatewayCrd(kc, logger);
  const metrics = createMetrics({ defaultMetrics: o.defaultMetrics, leaseName: o.leaderElection?.name });
  const stopCountingRequests = countRequests(metrics.restClientRequests, kc);
  const now = o.now ?? (() => new Date());
  const identity = o.leaderElection?.identity ?? `${hostname()}_${randomBytes(4).toString('hex')}`;
  const backoff = { initialBackoffMs: o.informerInitialBackoffMs, maxBackoffMs: o.informerMaxBackoffMs };
  const leaseNamespace = o.leaseNamespace ?? DEFAULT_LEASE_NAMESPACE;

  const source = makeSource(o, logger);
  const gateways = gatewayInformer(kc, backoff);
  const nodes = nodeInformer(kc, backoff);
  const leases = leaseInformer(kc, leaseNamespace, backoff);
  const topologies: Informer<TopologyObject> = source instanceof ClusterSource ? source.informer : topologyInformer(kc, backoff);
  const informers: [string, Informer<any>][] = [
    ['gateways', gateways],
    ['nodes', nodes],
    ['leases', leases],
    ...(source instanceof ClusterSource ? [] : [['topologies', topologies] as [string, Informer<any>]]),
  ];

  // Calico IPAM, unless the flag says podCIDR. Its events before start-up completes only mark the work (trigger).
  const podSubnetMode = o.podSubnets ?? 'auto';
  let triggerLater: (reason: string) => void = () => undefined;
  const calico =
    podSubnetMode === 'podCIDR'
      ? undefined
      : new CalicoWatch({ kc, logger, onChange: (reason) => triggerLater(reason), rediscoverMs: o.calicoRediscoverMs, informerBackoff: backoff });

  let elector: LeaderElector | undefined;
  const canWrite = (): boolean => (elector === undefined ? true : elector.isLeader());
  const events = eventRecorder(kc, {
    namespace: o.eventNamespace ?? DEFAULT_EVENT_NAMESPACE,
    instance: identity,
    onError: (e) => logger.warn('event not recorded', { error: errorMessage(e) }),
  });
  const validator = new BackgroundValidator({
    limits: {
      timeoutMs: o.validationTimeoutMs ?? DEFAULT_VALIDATION_LIMITS.timeoutMs,
      memoryMiB: o.validationMemoryMiB ?? DEFAULT_VALIDATION_LIMITS.memoryMiB,
    },
    onVerdict: () => trigger('validated'),
    logger,
  });
  const reconciler = new GatewayReconciler({
    writes: kubeWrites(kc),
    source,
    gateways,
    nodes,
    leases,
    topologies,
    statusObject: o.statusObject ?? true,
    events,
    metrics,
    logger,
    canWrite,
    now,
    applyConcurrency: o.applyConcurrency,
    gatewaySpec: o.gatewaySpec ?? 'apply',
    requireHeartbeat: o.electWithoutHeartbeat !== true,
    podSubnets: () => podSubnetInput(podSubnetMode, calico?.state() ?? NO_CALICO),
    validator,
  });

  // ---------------------------------------------------------------- scheduling
  const debounceMs = o.debounceMs ?? 25;
  const retryInitial = o.retryInitialMs ?? 500;
  const retryMax = o.retryMaxMs ?? 60_000;
  let stopped = false;
  let debounce: NodeJS.Timeout | undefined;
  let retryTimer: NodeJS.Timeout | undefined;
  let wakeTimer: NodeJS.Timeout | undefined;
  let resyncTimer: NodeJS.Timeout | undefined;
  let dirty = false;
  let retryDelay = retryInitial;
  const listeners = new Set<(r: ReconcileReport) => void>();
  // The work queue of the loop: one item, the topology, waiting with the reasons it was triggered for. Its metrics
  // (workqueue_*) count a trigger -> reconcile start as the queue wait (src/sync/workqueue-metrics.ts).
  const pendingReasons = new Set<string>();

  // Events before the caches and the source are up only mark the work; the first reconcile runs after start-up.
  let accepting = false;
  const trigger = (reason: string): void => {
    if (stopped) return;
    metrics.queue.add();
    pendingReasons.add(reason);
    if (!accepting) return;
    if (runner.busy) {
      dirty = true;
      return;
    }
    if (debounce === undefined) debounce = setTimeout(kick, debounceMs);
  };

  // One reconcile at a time (SerialRunner). Events that come during one (often its own writes coming back) mark the
  // work dirty and get one more pass once it has settled, after the debounce, so a burst of echoes folds into it.
  const reconcileOnce = async (): Promise<void> => {
    const reasons = [...pendingReasons].sort();
    pendingReasons.clear();
    metrics.queue.start();
    let report: ReconcileReport;
    try {
      report = await reconciler.reconcile();
    } catch (e) {
      logger.error('reconcile crashed', { error: errorMessage(e) });
      report = { result: 'error', writes: 0, durationMs: 0 };
    }
    metrics.queue.done();
    if (report.result === 'skipped') return;
    metrics.recordReconcile({ ...report, result: report.result });
    logger.debug('reconciled', { result: report.result, revision: report.revision, writes: report.writes, durationMs: report.durationMs, reasons });
    afterReconcile(report);
    for (const cb of [...listeners]) {
      try {
        cb(report);
      } catch {
        // ignore
      }
    }
  };
  const runner = new SerialRunner(reconcileOnce, {
    stopped: () => stopped,
    settled: () => {
      if (dirty && !stopped && debounce === undefined) debounce = setTimeout(kick, debounceMs);
    },
  });
  const kick = (): void => {
    debounce = undefined;
    if (stopped || runner.busy) return;
    dirty = false;
    void runner.run();
  };

  const afterReconcile = (r: ReconcileReport): void => {
    clearTimeout(retryTimer);
    clearTimeout(wakeTimer);
    if (r.result === 'error' || r.result === 'requeue') {
      const delay = Math.round(retryDelay * (0.9 + Math.random() * 0.2));
      retryDelay = Math.min(retryDelay * 2, retryMax);
      retryTimer = setTimeout(() => trigger('retry'), delay);
      metrics.queue.retry();
    } else {
      retryDelay = retryInitial;
    }
    // The health timer runs whatever the result: failover must not wait for a retry.
    if (r.wakeAt !== undefined) {
      const delay = Math.max(0, r.wakeAt - now().getTime() + 5);
      wakeTimer = setTimeout(() => trigger('health-timer'), Math.min(delay, 2 ** 31 - 1));
    }
  };

  // ---------------------------------------------------------------- wiring
  // Kubelets rewrite Node status every few seconds and agents renew Leases every second; with many nodes that is a
  // steady stream of events that change nothing the planner sees. Those are filtered out here: a Node event counts
  // when the planner's view of the Node changed, a Lease event when anything but a fresh renewal changed. An expiry
  // needs no event: the health timer fires at renewTime + timeout.
  const matters: Record<string, (e: InformerEvent<any>) => boolean> = {
    nodes: (e) => e.type !== 'update' || e.previous === undefined || nodeView(e.previous) !== nodeView(e.object),
    leases: (e) => {
      if (e.type !== 'update' || e.previous === undefined) return true;
      const before = heartbeatFromLease(e.previous);
      const after = heartbeatFromLease(e.object);
      if (before === undefined || after === undefined) return before !== after;
      if (canonicalJson({ ...before, renewTime: undefined }) !== canonicalJson({ ...after, renewTime: undefined })) return true;
      // A renewal after the heartbeat had expired: the node is healthy again.
      const timeoutS = reconciler.heartbeatTimeoutSeconds() ?? before.leaseDurationSeconds;
      const last = Date.parse(before.renewTime ?? before.acquireTime ?? '');
      return timeoutS === undefined || Number.isNaN(last) || now().getTime() - last > timeoutS * 1000;
    },
  };
  for (const [name, inf] of informers) {
    const filter = matters[name];
    inf.onChange((e) => {
      if (filter === undefined || filter(e)) trigger(name);
    });
    inf.onError((e, info) => logger.warn('watch failed; retrying', { resource: name, error: errorMessage(e), attempt: info.attempt, retryInMs: info.retryInMs }));
  }
  // ---------------------------------------------------------------- HTTP
  // Before anything that can hang (the API server's first lists, a Git remote that never answers): the liveness probe
  // must find /healthz while the caches fill; /readyz says not ready until then.
  const synced = (): boolean => informers.every(([, inf]) => inf.hasSynced()) && (calico?.synced() ?? true);
  const ready = (): boolean => synced() && (!canWrite() || reconciler.ranOnce);
  const text = (code: number, body: string): Handler => (_req, res) => void res.writeHead(code, { 'Content-Type': 'text/plain' }).end(body);
  const routesByAddress = new Map<string, Record<string, Handler>>();
  const add = (addr: string | undefined, routes: Record<string, Handler>): void => {
    if (addr === undefined || addr === '' || addr === '0') return;
    routesByAddress.set(addr, { ...(routesByAddress.get(addr) ?? {}), ...routes });
  };
  add(o.healthAddress, {
    'GET /healthz': text(200, 'ok\n'),
    'GET /readyz': (req, res, body) => (ready() ? text(200, 'ok\n') : text(503, 'not ready\n'))(req, res, body),
  });
  add(o.metricsAddress, {
    'GET /metrics': async (_req, res) => {
      const out = await metrics.registry.metrics();
      res.writeHead(200, { 'Content-Type': metrics.registry.contentType }).end(out);
    },
  });
  if (o.webhookAddress) {
    if (o.source.kind !== 'git') throw new Error('the git webhook needs the git source');
    if (!o.webhookSecret || o.webhookSecret.length === 0) throw new Error('the git webhook needs a secret');
    const secret = o.webhookSecret;
    const guard = new WebhookGuard({ now: () => now().getTime() });
    const refuse = (res: ServerResponse, g: Exclude<GuardVerdict, { ok: true }>, remote: string | undefined): void => {
      logger.warn('webhook refused', { reason: g.reason, remote });
      res.writeHead(g.status, { 'Content-Type': 'text/plain', ...(g.retryAfterS ? { 'Retry-After': String(g.retryAfterS) } : {}) }).end(`${g.reason}\n`);
    };
    add(o.webhookAddress, {
      'POST /hooks/git': (req, res, body) => {
        if (!accepting) {
          res.writeHead(503, { 'Content-Type': 'text/plain', 'Retry-After': '5' }).end('starting\n');
          return;
        }
        const admitted = guard.admit();
        if (!admitted.ok) {
          refuse(res, admitted, req.socket.remoteAddress);
          return;
        }
        const v = verifyWebhookSignature(req.headers, body, secret);
        if (!v.ok) {
          logger.warn('webhook refused', { reason: v.reason, remote: req.socket.remoteAddress });
          res.writeHead(401, { 'Content-Type': 'text/plain' }).end('signature mismatch\n');
          return;
        }
        const fresh = guard.accept(req.headers, body);
        if (!fresh.ok) {
          refuse(res, fresh, req.socket.remoteAddress);
          return;
        }
        logger.info('webhook accepted; fetching', { provider: v.provider });
        source.refresh();
        res.writeHead(202, { 'Content-Type': 'text/plain' }).end('fetch scheduled\n');
      },
    });
  }
  const servers: Listening[] = [];
  const addresses: SyncHandle['addresses'] = {};
  try {
    for (const [addr, routes] of routesByAddress) {
      const l = await serve(addr, routes);
      servers.push(l);
      if (addr === o.healthAddress) addresses.health = l.address;
      if (addr === o.metricsAddress) addresses.metrics = l.address;
      if (addr === o.webhookAddress) addresses.webhook = l.address;
    }
  } catch (e) {
    await Promise.all(servers.map((s) => s.close()));
    stopCountingRequests();
    throw e;
  }

  triggerLater = trigger;
  try {
    await Promise.all([...informers.map(([, inf]) => inf.start()), calico?.start()]);
    await source.start(() => trigger('source'));
  } catch (e) {
    await Promise.all(servers.map((l) => l.close()));
    stopCountingRequests();
    throw e;
  }
  logger.info('caches synced', { source: source.kind, leaseNamespace, podSubnets: podSubnetMode, calico: calico?.state().served ?? 'off' });
  accepting = true;

  if (o.leaderElection) {
    const le = o.leaderElection;
    elector = new LeaderElector(kc, {
      namespace: le.namespace,
      name: le.name ?? LEADER_LEASE_NAME,
      identity,
      leaseDurationMs: le.leaseDurationMs,
      renewDeadlineMs: le.renewDeadlineMs,
      retryPeriodMs: le.retryPeriodMs,
      onStartedLeading: () => {
        reconciler.forgetWrites();
        metrics.setLeader(true);
        logger.info('became the leader', { identity });
        trigger('leader');
      },
      onStoppedLeading: () => {
        metrics.setLeader(false);
        logger.warn('lost leadership; writing stopped', { identity });
      },
      onNewLeader: (id) => logger.info('leader observed', { leader: id }),
      onError: (e) => logger.warn('leader election error', { error: errorMessage(e) }),
    });
    elector.start();
  } else {
    metrics.setLeader(true);
    trigger('start');
  }

  const resyncMs = o.resyncIntervalMs ?? 10 * 60_000;
  resyncTimer = setInterval(() => trigger('resync'), resyncMs);

  return {
    identity,
    metrics,
    addresses,
    isLeader: canWrite,
    ready,
    revision: () => reconciler.revision(),
    informerStats: () => ({ ...Object.fromEntries(informers.map(([name, inf]) => [name, { ...inf.stats }])), ...(calico?.stats() ?? {}) }),
    rediscoverCalico: async () => calico?.rediscover(),
    trigger,
    onReconcile(cb) {
      listeners.add(cb);
      return () => listeners.delete(cb);
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      clearTimeout(debounce);
      clearTimeout(retryTimer);
      clearTimeout(wakeTimer);
      clearInterval(resyncTimer);
      // Stop writing first (no write after this point), then let a running reconcile finish its reads.
      const leaving = elector?.stop();
      await runner.idle();
      await leaving;
      await validator.stop();
      await source.stop();
      await Promise.all([...informers.map(([, inf]) => inf.stop()), calico?.stop()]);
      await Promise.all(servers.map((s) => s.close()));
      stopCountingRequests();
      logger.info('sync stopped', { identity });
    },
  };
}
