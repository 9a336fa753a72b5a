// Prometheus metrics of the agent, and the HTTP endpoints /healthz, /readyz, /metrics.

import type { ServerResponse } from 'node:http';
import { serve, type Handler, type Listening } from '../adapters/http/server.ts';
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import { restClientRequests } from '../adapters/kube/request-metrics.ts';
import type { ReconcileResult } from './reconciler.ts';

export class AgentMetrics {
  readonly registry = new Registry();
  /** Every API request of this agent (count them with countRequests). */
  readonly restClientRequests = restClientRequests(this.registry);
  private readonly tunnelUp: Gauge<'peer'>;
  private readonly bytesIn: Counter<'peer'>;
  private readonly bytesOut: Counter<'peer'>;
  private readonly routes: Gauge<'table'>;
  private readonly lastApply: Gauge;
  private readonly applyErrors: Counter;
  /** CHILD_SA unique id -> bytes already counted (SA counters restart with every new SA). */
  private readonly seen = new Map<string, { peer: string; bytesIn: number; bytesOut: number }>();
  private readonly peers = new Set<string>();

  /** `defaultMetrics`: the process_* and nodejs_* metrics too (the CLI turns them on, as for the sync). */
  constructor(opts: { defaultMetrics?: boolean } = {}) {
    if (opts.defaultMetrics) collectDefaultMetrics({ register: this.registry });
    const registers = [this.registry];
    this.tunnelUp = new Gauge({ name: 'corvid_tunnel_up', help: '1 when the tunnel to the peer pool is up (an installed CHILD_SA, or a recent WireGuard handshake)', labelNames: ['peer'], registers });
    this.bytesIn = new Counter({ name: 'corvid_tunnel_receive_bytes_total', help: 'Bytes received through the tunnel to the peer pool', labelNames: ['peer'], registers });
    this.bytesOut = new Counter({ name: 'corvid_tunnel_transmit_bytes_total', help: 'Bytes sent through the tunnel to the peer pool', labelNames: ['peer'], registers });
    this.routes = new Gauge({ name: 'corvid_routes', help: 'Routes the agent holds in its table', labelNames: ['table'], registers });
    this.lastApply = new Gauge({ name: 'corvid_agent_last_apply_timestamp_seconds', help: 'Unix time of the last apply without errors', registers });
    this.applyErrors = new Counter({ name: 'corvid_agent_apply_errors_total', help: 'Applies that ended with at least one error', registers });
  }

  record(res: ReconcileResult, table: number, now: Date): void {
    this.routes.set({ table: String(table) }, res.routeCount);
    if (res.ok) this.lastApply.set(now.getTime() / 1000);
    else this.applyErrors.inc();
    this.recordTunnels(res.tunnels, res.viciChecked || res.wireguardChecked);
  }

  /** Tunnel state and byte counters from a list-sas read; `complete` = the list covers every tunnel of the plan. */
  recordTunnels(tunnels: ReconcileResult['tunnels'], complete: boolean): void {
    const current = new Set<string>();
    for (const t of tunnels) {
      current.add(t.peer);
      this.tunnelUp.set({ peer: t.peer }, t.up ? 1 : 0);
      for (const c of t.children) {
        const prev = this.seen.get(c.uniqueId) ?? { peer: t.peer, bytesIn: 0, bytesOut: 0 };
        const dIn = c.bytesIn >= prev.bytesIn ? c.bytesIn - prev.bytesIn : c.bytesIn;
        const dOut = c.bytesOut >= prev.bytesOut ? c.bytesOut - prev.bytesOut : c.bytesOut;
        if (dIn > 0) this.bytesIn.inc({ peer: t.peer }, dIn);
        if (dOut > 0) this.bytesOut.inc({ peer: t.peer }, dOut);
        this.seen.set(c.uniqueId, { peer: t.peer, bytesIn: c.bytesIn, bytesOut: c.bytesOut });
      }
      // Make the counters exist (at 0) as soon as the tunnel does.
      this.bytesIn.inc({ peer: t.peer }, 0);
      this.bytesOut.inc({ peer: t.peer }, 0);
    }
    if (complete) {
      for (const p of this.peers) {
        if (!current.has(p)) {
          this.tunnelUp.remove({ peer: p });
          this.bytesIn.remove({ peer: p });
          this.bytesOut.remove({ peer: p });
        }
      }
      this.peers.clear();
      for (const p of current) this.peers.add(p);
      const live = new Set(tunnels.flatMap((t) => t.children.map((c) => c.uniqueId)));
      for (const id of [...this.seen.keys()]) if (!live.has(id)) this.seen.delete(id);
    }
  }

  text(): Promise<string> {
    return this.registry.metrics();
  }
}

export interface HealthSource {
  /** The process loop is alive. */
  healthy(): boolean;
  /** Gateways synced and the last apply had no errors. */
  ready(): { ready: boolean; reason?: string };
}

/** Serve /healthz, /readyz and /metrics (GET and HEAD) on `addr` (`[host]:port`; port 0 picks one). */
export async function serveHttp(addr: string, metrics: AgentMetrics, health: HealthSource): Promise<Listening> {
  const send = (res: ServerResponse, code: number, body: string, type = 'text/plain; charset=utf-8'): void => {
    res.writeHead(code, { 'Content-Type': type });
    res.end(body);
  };
  const healthz: Handler = (_req, res) => (health.healthy() ? send(res, 200, 'ok\n') : send(res, 503, 'unhealthy\n'));
  const readyz: Handler = (_req, res) => {
    const r = health.ready();
    return r.ready ? send(res, 200, 'ok\n') : send(res, 503, `not ready: ${r.reason ?? 'starting'}\n`);
  };
  const metricsText: Handler = async (_req, res) => {
    try {
      send(res, 200, await metrics.text(), metrics.registry.contentType);
    } catch (e) {
      send(res, 500, `${(e as Error).message}\n`);
    }
  };
  const routes: Record<string, Handler> = {};
  for (const method of ['GET', 'HEAD']) {
    routes[`${method} /healthz`] = healthz;
    routes[`${method} /readyz`] = readyz;
    routes[`${method} /metrics`] = metricsText;
  }
  return serve(addr, routes);
}
