// The network as a graph: pools (groups) with their gateways, and one edge per pool pair saying how the two
// pools reach each other. Pure: built from a Topology and/or the Gateways (desired or live) plus optional health.

import { candidateEndpoints } from '../gateway/candidates.ts';
import type { Endpoint, Gateway } from '../gateway/types.ts';
import { gatewayRoutePool, readGatewayLinks } from '../gateway/annotations.ts';
import type { GatewayLinks } from '../gateway/annotations.ts';
import { poolPairRoute, type RoutePool } from '../topology/route.ts';
import type { Topology } from '../topology/types.ts';
import type { CandidateVerdict } from '../plan/verdict.ts';
import { pairRoute, relayChoice } from '../topology/policy.ts';
import type { RelayChoice } from '../topology/policy.ts';

export type Health = 'healthy' | 'degraded' | 'unhealthy' | 'unknown';

export interface GraphGateway {
  node: string;
  /** Elected (status.activeEndpoints). */
  active: boolean;
  publicIP?: string;
  /** Only when drawing live. */
  health?: Health;
  /** Why the health is what it is, e.g. "not Ready", "2/3 tunnels up". */
  healthDetail?: string;
}

export interface GraphPool {
  name: string;
  behindNAT: boolean;
  relay?: string;
  hub: boolean;
  /** Candidates in preference order; the active ones are flagged. */
  gateways: GraphGateway[];
  /** Nodes in status.nodes, when known. */
  nodeCount?: number;
}

/** direct: a tunnel between the two pools' gateways; relayed: through the relay or the hub;
 *  denied: a rule forbids the pair; unreachable: allowed, but no path (no relay, or a hop of the path is denied). */
export type EdgeKind = 'direct' | 'relayed' | 'denied' | 'unreachable';

export interface GraphEdge {
  /** a < b by name. */
  a: string;
  b: string;
  kind: EdgeKind;
  /** Relay pools the traffic passes through (relayed only), in path order from a. */
  via?: string[];
  /** Live tunnel state of a direct edge, from the agents' Lease annotations. */
  health?: 'up' | 'down' | 'unknown';
}

export interface NetworkGraph {
  title: string;
  mode: 'mesh' | 'hub';
  hub?: string;
  /** Sorted by name. */
  pools: GraphPool[];
  /** Sorted by (a, b). */
  edges: GraphEdge[];
  live: boolean;
}

/** Health signals of the live cluster, per node name. */
export interface LiveHealth {
  /** Node Ready condition. */
  ready: Record<string, boolean>;
  /**
   * The election's verdict on each gateway candidate (plan/verdict.ts, as `corvid status` shows it). When given, it
   * alone decides whether a gateway is drawn unhealthy; the tunnels then only tell degraded from healthy.
   */
  verdicts?: Record<string, CandidateVerdict>;
  /** Agent-reported tunnel state (Lease corvid.dev/tunnels): node -> peer (pool or node name) -> up. */
  tunnels: Record<string, Record<string, boolean>>;
}

export interface GraphInput {
  topology?: Topology;
  gateways: Gateway[];
  health?: LiveHealth;
  title?: string;
}

interface PoolFacts {
  name: string;
  behindNAT: boolean;
  relay?: string;
  preferred: { node: string; publicIP?: string }[];
  links?: GatewayLinks;
  gateway?: Gateway;
  /** The Gateway's part in the route rule, as the agents read it. */
  route?: RoutePool;
}

function collectPools(input: GraphInput, relays: RelayChoice | undefined): Map<string, PoolFacts> {
  const pools = new Map<string, PoolFacts>();
  for (const p of input.topology?.pools ?? []) {
    const relay = relays?.relayOf.get(p.name);
    pools.set(p.name, {
      name: p.name,
      behindNAT: p.behindNAT,
      ...(relay ? { relay } : {}),
      preferred: p.gateways.map((g) => ({ node: g.node, publicIP: g.publicIP })),
    });
  }
  for (const g of input.gateways) {
    const links = readGatewayLinks(g);
    const endpoints: Endpoint[] = candidateEndpoints(g);
    const known = pools.get(links.pool);
    const facts: PoolFacts = known ?? {
      name: links.pool,
      behindNAT: links.underNAT,
      ...(links.relay ? { relay: links.relay } : {}),
      preferred: [],
    };
    for (const e of endpoints) {
      const x = facts.preferred.find((y) => y.node === e.nodeName);
      if (!x) facts.preferred.push({ node: e.nodeName, publicIP: e.publicIP });
      else if (e.publicIP && !x.publicIP) x.publicIP = e.publicIP;
    }
    // spec carries the topology's publicIP only; an elected endpoint carries the effective one (node annotation).
    for (const e of g.status?.activeEndpoints ?? []) {
      const x = facts.preferred.find((y) => y.node === e.nodeName);
      if (x && e.publicIP && !x.publicIP) x.publicIP = e.publicIP;
    }
    facts.links = links;
    facts.gateway = g;
    facts.route = gatewayRoutePool(g, links);
    if (links.relay) facts.relay = links.relay;
    else if (known) delete facts.relay;
    facts.behindNAT = endpoints.length > 0 ? links.underNAT : facts.behindNAT;
    pools.set(links.pool, facts);
  }
  return pools;
}

/** From the Gateways, the way the agents read them: the route rule on each Gateway's part (gatewayRoutePool). */
function classifyFromAnnotations(pools: Map<string, PoolFacts>, a: string, b: string): { kind: EdgeKind; via?: string[] } {
  const ra = pools.get(a)?.route;
  const rb = pools.get(b)?.route;
  if (!ra || !rb) return { kind: 'unreachable' };
  const r = poolPairRoute(ra, rb, (p) => pools.get(p)?.route);
  switch (r.via) {
    case 'direct':
      return { kind: 'direct' };
    case 'relay':
      return { kind: 'relayed', via: [r.relay] };
    case 'none':
      return { kind: r.reason === 'denied' ? 'denied' : 'unreachable' };
  }
}

/** The Gateways decide when both pools have one (that is what the agents act on); otherwise the topology does. */
function classify(input: GraphInput, relays: RelayChoice | undefined, pools: Map<string, PoolFacts>, a: string, b: string): { kind: EdgeKind; via?: string[] } {
  if (pools.get(a)?.route && pools.get(b)?.route) return classifyFromAnnotations(pools, a, b);
  const t = input.topology;
  if (!t || !t.pools.some((p) => p.name === a) || !t.pools.some((p) => p.name === b)) return { kind: 'unreachable' };
  const r = pairRoute(t, a, b, relays);
  switch (r.via) {
    case 'direct':
      return { kind: 'direct' };
    case 'relay':
      return { kind: 'relayed', via: [r.relay] };
    case 'hub':
      return { kind: 'relayed', via: [r.hub] };
    case 'none':
      return { kind: r.reason === 'denied' ? 'denied' : 'unreachable' };
  }
}

function gatewayHealth(node: string, h: LiveHealth): { health: Health; detail: string } {
  const verdict = h.verdicts?.[node];
  if (verdict === 'missing') return { health: 'unknown', detail: 'node not found' };
  // Healthy, but handing its role over: not out, not whole.
  if (verdict === 'drained' || verdict === 'handover-wanted') return { health: 'degraded', detail: verdict };
  if (verdict !== undefined && verdict !== 'ok') return { health: 'unhealthy', detail: verdict };
  const ready = h.ready[node];
  if (ready === false) return { health: 'unhealthy', detail: 'node not Ready' };
  const tunnels = h.tunnels[node];
  const states = tunnels ? Object.values(tunnels) : [];
  if (ready === undefined) return { health: 'unknown', detail: 'node not found' };
  if (states.length === 0) return { health: 'healthy', detail: 'Ready' };
  const up = states.filter(Boolean).length;
  const detail = `Ready, ${up}/${states.length} tunnels up`;
  if (up === states.length) return { health: 'healthy', detail };
  // Tunnels down, but the election still counts the gateway (the tunnel grace has not passed): degraded, not out.
  if (verdict === 'ok') return { health: 'degraded', detail };
  return { health: up === 0 ? 'unhealthy' : 'degraded', detail };
}

/** Build the graph. Deterministic: pools sorted by name, edges by pair. */
export function buildGraph(input: GraphInput): NetworkGraph {
  // The topology's relays (named, or its automatic relay), computed once for all pools and pairs.
  const relays = input.topology ? relayChoice(input.topology) : undefined;
  const facts = collectPools(input, relays);
  const names = [...facts.keys()].sort();
  const mode = input.topology?.connectivity.mode ?? 'mesh';
  const hub = mode === 'hub' ? input.topology?.connectivity.hub : undefined;
  const active = new Map<string, Set<string>>();
  for (const f of facts.values()) {
    active.set(f.name, new Set((f.gateway?.status?.activeEndpoints ?? []).map((e) => e.nodeName)));
  }
  const pools: GraphPool[] = names.map((name) => {
    const f = facts.get(name)!;
    const act = active.get(name)!;
    const gateways: GraphGateway[] = f.preferred.map((p) => {
      const gw: GraphGateway = { node: p.node, active: act.has(p.node) };
      if (p.publicIP) gw.publicIP = p.publicIP;
      if (input.health) {
        const h = gatewayHealth(p.node, input.health);
        gw.health = h.health;
        gw.healthDetail = h.detail;
      }
      return gw;
    });
    // An active endpoint that is not a listed candidate (should not happen) is still shown.
    for (const n of [...act].sort()) if (!gateways.some((g) => g.node === n)) gateways.push({ node: n, active: true });
    const pool: GraphPool = { name, behindNAT: f.behindNAT, hub: name === hub, gateways };
    if (f.relay) pool.relay = f.relay;
    const statusNodes = f.gateway?.status?.nodes;
    if (statusNodes) pool.nodeCount = statusNodes.length;
    return pool;
  });
  const edges: GraphEdge[] = [];
  for (let i = 0; i < names.length; i++) {
    for (let j = i + 1; j < names.length; j++) {
      const a = names[i];
      const b = names[j];
      const c = classify(input, relays, facts, a, b);
      const e: GraphEdge = { a, b, kind: c.kind };
      if (c.via) e.via = c.via;
      if (input.health && c.kind === 'direct') e.health = tunnelState(input.health, a, b, active);
      edges.push(e);
    }
  }
  const graph: NetworkGraph = {
    title: input.title ?? input.topology?.name ?? 'corvid network',
    mode,
    pools,
    edges,
    live: input.health !== undefined,
  };
  if (hub) graph.hub = hub;
  return graph;
}

/** A direct edge is up when an active gateway of either side reports the tunnel to the other side up. */
function tunnelState(h: LiveHealth, a: string, b: string, active: Map<string, Set<string>>): 'up' | 'down' | 'unknown' {
  const reports: boolean[] = [];
  const look = (from: string, to: string): void => {
    const peerNodes = [...(active.get(to) ?? [])];
    for (const node of active.get(from) ?? []) {
      const t = h.tunnels[node];
      if (!t) continue;
      for (const key of [to, ...peerNodes]) if (key in t) reports.push(t[key]);
    }
  };
  look(a, b);
  look(b, a);
  if (reports.length === 0) return 'unknown';
  return reports.every(Boolean) ? 'up' : 'down';
}

export interface GraphCounts {
  pools: number;
  direct: number;
  relayed: number;
  denied: number;
  unreachable: number;
}

export function graphCounts(g: NetworkGraph): GraphCounts {
  const c: GraphCounts = { pools: g.pools.length, direct: 0, relayed: 0, denied: 0, unreachable: 0 };
  for (const e of g.edges) c[e.kind]++;
  return c;
}
