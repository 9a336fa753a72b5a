// Prometheus metrics of the sync, on a registry of its own (several syncs may run in one process in tests).
// Names, labels and buckets follow controller-runtime and client-go where the metric means the same thing; the
// corvid_* ones have no equivalent there. Counters exist from the start for every label value known in advance.

import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { LEADER_LEASE_NAME } from '../adapters/kube/leases.ts';
import { restClientRequests, type RestClientRequests } from '../adapters/kube/request-metrics.ts';
import { REJECT } from '../reconcile/artifact.ts';
import { WorkqueueMetrics } from './workqueue-metrics.ts';

/** The controller label of the controller_runtime_* and workqueue_* metrics. */
export const CONTROLLER = 'gateway';

/** controller-runtime's result label values. */
export const RECONCILE_RESULTS = ['success', 'error', 'requeue', 'requeue_after'] as const;

/** The (verb, resource) pairs the sync writes (apply.ts, reconciler.ts), for their zero series. */
const API_WRITES = [
  ['apply', 'gateways'],
  ['replace', 'gateways'],
  ['patch', 'gateways'],
  ['delete', 'gateways'],
  ['apply', 'gateways/status'],
  ['replace', 'gateways/status'],
  ['apply', 'topologies'],
  ['apply', 'topologies/status'],
] as const;

export interface SyncMetrics {
  registry: Registry;
  reconcileTotal: Counter<'controller' | 'result'>;
  reconcileErrors: Counter<'controller'>;
  reconcileTime: Histogram<'controller'>;
  /** The reconcile loop seen as a work queue (workqueue-metrics.ts). */
  queue: WorkqueueMetrics;
  /** Every API request of this sync (count them with countRequests). */
  restClientRequests: RestClientRequests;
  gatewayActive: Gauge<'pool' | 'node'>;
  failoverTotal: Counter<'pool'>;
  topologyInfo: Gauge<'revision'>;
  topologyRejected: Counter<'reason'>;
  writesTotal: Counter<'verb' | 'resource'>;
  /**
   * A reconcile that ran (not a standby's skipped one), labelled as controller-runtime labels its outcome: a success
   * that armed the health timer (wakeAt) is `requeue_after`, the timer playing RequeueAfter's part.
   */
  recordReconcile(r: { result: 'success' | 'error' | 'requeue'; wakeAt?: number; durationMs: number }): void;
  /** leader_election_master_status: 1 while this replica leads (or runs without leader election), else 0. */
  setLeader(leading: boolean): void;
  /** corvid_failover_total{pool} exists (at 0) for each of these pools from now on. */
  notePools(pools: string[]): void;
  /** Replace the active-endpoint gauge with exactly these (pool, node) pairs. */
  setActive(active: { pool: string; node: string }[]): void;
  /** corvid_topology_info{revision} = 1 for the revision in force, and only it. */
  setRevision(revision: string | undefined): void;
}

/**
 * `defaultMetrics`: the process_* and nodejs_* metrics too (the CLI turns them on). `leaseName`: the leader election
 * Lease, the name label of leader_election_master_status (default corvid-sync-leader).
 */
export function createMetrics(opts: { defaultMetrics?: boolean; leaseName?: string } = {}): SyncMetrics {
  const registry = new Registry();
  if (opts.defaultMetrics) collectDefaultMetrics({ register: registry });
  const controller = { controller: CONTROLLER };
  const reconcileTotal = new Counter({
    name: 'controller_runtime_reconcile_total',
    help: 'Total number of reconciliations per controller',
    labelNames: ['controller', 'result'] as const,
    registers: [registry],
  });
  for (const result of RECONCILE_RESULTS) reconcileTotal.inc({ ...controller, result }, 0);
  const reconcileErrors = new Counter({
    name: 'controller_runtime_reconcile_errors_total',
    help: 'Total number of reconciliation errors per controller',
    labelNames: ['controller'] as const,
    registers: [registry],
  });
  reconcileErrors.inc(controller, 0);
  const reconcileTime = new Histogram({
    name: 'controller_runtime_reconcile_time_seconds',
    help: 'Length of time per reconciliation per controller',
    labelNames: ['controller'] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
    registers: [registry],
  });
  reconcileTime.zero(controller);
  const queue = new WorkqueueMetrics(registry, CONTROLLER);
  const leaseName = opts.leaseName ?? LEADER_LEASE_NAME;
  const leaderStatus = new Gauge({
    name: 'leader_election_master_status',
    help: "Gauge of if the reporting system is master of the relevant lease, 0 indicates backup, 1 indicates master. 'name' is the string used to identify the lease. Please make sure to group by name.",
    labelNames: ['name'] as const,
    registers: [registry],
  });
  leaderStatus.set({ name: leaseName }, 0);
  const gatewayActive = new Gauge({
    name: 'corvid_gateway_active',
    help: '1 for each (pool, node) that is an active gateway endpoint',
    labelNames: ['pool', 'node'] as const,
    registers: [registry],
  });
  const failoverTotal = new Counter({
    name: 'corvid_failover_total',
    help: 'Times a pool moved its active gateway away from an endpoint that became unhealthy or unavailable',
    labelNames: ['pool'] as const,
    registers: [registry],
  });
  const topologyInfo = new Gauge({
    name: 'corvid_topology_info',
    help: 'The topology revision in force (value always 1)',
    labelNames: ['revision'] as const,
    registers: [registry],
  });
  const topologyRejected = new Counter({
    name: 'corvid_topology_rejected_total',
    help: 'Topology revisions rejected, by reason',
    labelNames: ['reason'] as const,
    registers: [registry],
  });
  for (const reason of Object.values(REJECT)) topologyRejected.inc({ reason }, 0);
  const writesTotal = new Counter({
    name: 'corvid_sync_api_writes_total',
    help: 'API writes made by the sync (dry runs excluded), by verb and resource',
    labelNames: ['verb', 'resource'] as const,
    registers: [registry],
  });
  for (const [verb, resource] of API_WRITES) writesTotal.inc({ verb, resource }, 0);
  let active = new Set<string>();
  let revision: string | undefined;
  return {
    registry,
    reconcileTotal,
    reconcileErrors,
    reconcileTime,
    queue,
    restClientRequests: restClientRequests(registry),
    gatewayActive,
    failoverTotal,
    topologyInfo,
    topologyRejected,
    writesTotal,
    recordReconcile(r) {
      const result = r.result === 'success' && r.wakeAt !== undefined ? 'requeue_after' : r.result;
      reconcileTotal.inc({ ...controller, result });
      if (r.result === 'error') reconcileErrors.inc(controller);
      reconcileTime.observe(controller, r.durationMs / 1000);
    },
    setLeader(leading) {
      leaderStatus.set({ name: leaseName }, leading ? 1 : 0);
    },
    notePools(pools) {
      for (const pool of pools) failoverTotal.inc({ pool }, 0);
    },
    setActive(pairs) {
      const next = new Set(pairs.map((p) => JSON.stringify([p.pool, p.node])));
      for (const k of active) {
        if (!next.has(k)) {
          const [pool, node] = JSON.parse(k) as [string, string];
          gatewayActive.remove({ pool, node });
        }
      }
      for (const k of next) {
        const [pool, node] = JSON.parse(k) as [string, string];
        gatewayActive.set({ pool, node }, 1);
      }
      active = next;
    },
    setRevision(r) {
      if (r === revision) return;
      if (revision !== undefined) topologyInfo.remove({ revision });
      if (r !== undefined) topologyInfo.set({ revision: r }, 1);
      revision = r;
    },
  };
}
