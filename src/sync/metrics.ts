// Prometheus metrics of the sync, on a registry of its own (several syncs may run in one process in tests).
// Names follow controller-runtime where one exists.

import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export const CONTROLLER = 'gateway';

export interface SyncMetrics {
  registry: Registry;
  reconcileTotal: Counter<'controller' | 'result'>;
  reconcileTime: Histogram<'controller'>;
  gatewayActive: Gauge<'pool' | 'node'>;
  failoverTotal: Counter<'pool'>;
  topologyInfo: Gauge<'revision'>;
  topologyRejected: Counter<'reason'>;
  writesTotal: Counter<'verb' | 'resource'>;
  leader: Gauge;
  /** Replace the active-endpoint gauge with exactly these (pool, node) pairs. */
  setActive(active: { pool: string; node: string }[]): void;
  /** corvid_topology_info{revision} = 1 for the revision in force, and only it. */
  setRevision(revision: string | undefined): void;
}

export function createMetrics(opts: { defaultMetrics?: boolean } = {}): SyncMetrics {
  const registry = new Registry();
  if (opts.defaultMetrics) collectDefaultMetrics({ register: registry });
  const reconcileTotal = new Counter({
    name: 'controller_runtime_reconcile_total',
    help: 'Total number of reconciliations per controller',
    labelNames: ['controller', 'result'] as const,
    registers: [registry],
  });
  for (const result of ['success', 'error', 'requeue']) reconcileTotal.inc({ controller: CONTROLLER, result }, 0);
  const reconcileTime = new Histogram({
    name: 'controller_runtime_reconcile_time_seconds',
    help: 'Length of time per reconciliation per controller',
    labelNames: ['controller'] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
    registers: [registry],
  });
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
  const writesTotal = new Counter({
    name: 'corvid_sync_api_writes_total',
    help: 'API writes made by the sync (dry runs excluded), by verb and resource',
    labelNames: ['verb', 'resource'] as const,
    registers: [registry],
  });
  const leader = new Gauge({
    name: 'corvid_sync_leader',
    help: '1 while this replica is the leader',
    registers: [registry],
  });
  let active = new Set<string>();
  let revision: string | undefined;
  return {
    registry,
    reconcileTotal,
    reconcileTime,
    gatewayActive,
    failoverTotal,
    topologyInfo,
    topologyRejected,
    writesTotal,
    leader,
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
