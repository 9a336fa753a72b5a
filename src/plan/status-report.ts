// The report `corvid status` prints, from what it read of the cluster: per pool the active gateway(s), each
// candidate's health as the election judges it (verdict.ts), tunnels up as the agents report them, the Topology's
// conditions. Pure: the CLI reads, this builds, the CLI prints.

import { candidateNodes } from '../gateway/candidates.ts';
import { candidateVerdicts, heartbeatTimeoutOf, type CandidateVerdict } from './verdict.ts';
import type { Unhealth } from './election.ts';
import type { HeartbeatLease } from './health.ts';
import type { InventoryNode } from './types.ts';
import { managedByCorvid, POOL_LABEL, REVISION_ANNOTATION, TOPOLOGY_LABEL } from '../gateway/keys.ts';
import { readGatewayLinks } from '../gateway/annotations.ts';
import type { Gateway } from '../gateway/types.ts';
import { nodePlan } from '../nodeplan/index.ts';

/** What the report is built from: the cluster's Nodes, heartbeat Leases and Gateways. */
export interface LiveInput {
  nodes: InventoryNode[];
  leases: HeartbeatLease[];
  /** Every Gateway in the cluster. */
  gateways: Gateway[];
}

export interface TopologySummary {
  name: string;
  lastAppliedRevision?: string;
  lastAttemptedRevision?: string;
  /** Where the Gateways' status.nodes[].subnets come from (podCIDR or calico) and why, as the sync last planned. */
  podSubnets?: { source: string; reason: string; problems?: string[] };
  conditions: { type: string; status: string; reason: string; message: string }[];
  /** spec.election.heartbeatTimeout of the Topology object, in seconds (absent: the topology default). */
  heartbeatTimeoutSeconds?: number;
}


/**
 * A candidate's health as the election sees it (plan/election.ts candidateState over plan/health.ts deriveHealth):
 * ok, or the reason it is out (`no-heartbeat`: its agent has never shown itself, so the sync does not elect it).
 */
export type CandidateHealthWord =
  | 'ok'
  | 'drained'
  | 'handover-wanted'
  | 'no-heartbeat'
  | 'stale'
  | 'released'
  | 'datapath-down'
  | 'unreachable-in-pool'
  | 'tunnels-down'
  | 'NotReady'
  | 'unreachable'
  | 'missing';

export interface PoolStatus {
  topology: string;
  pool: string;
  gateway: string;
  active: string[];
  candidates: { node: string; active: boolean; health: CandidateHealthWord }[];
  tunnelsUp: number;
  tunnelsExpected: number;
  /** Tunnels the agent reports down, by peer. */
  tunnelsDown: string[];
  revision?: string;
  lastAppliedRevision?: string;
  conditions: string[];
  publicEndpoints: string[];
  relay?: string;
  nodes: number;
  subnets: number;
}

export interface StatusReport {
  topologies: TopologySummary[];
  pools: PoolStatus[];
}

const WORD: Record<Unhealth, CandidateHealthWord> = {
  'not ready': 'NotReady',
  'node unreachable': 'unreachable',
  'heartbeat released': 'released',
  'heartbeat expired': 'stale',
  'no heartbeat': 'no-heartbeat',
  'datapath down': 'datapath-down',
  'unreachable in its pool': 'unreachable-in-pool',
  'tunnels down': 'tunnels-down',
};

/** The election's verdict as the word status prints. */
function word(v: CandidateVerdict): CandidateHealthWord {
  return v === 'ok' || v === 'missing' || v === 'drained' || v === 'handover-wanted' ? v : WORD[v];
}

/** Build the report from what was read. Pure apart from `now`. */
export function statusReport(state: LiveInput, topologies: TopologySummary[], now: string): StatusReport {
  const leases = new Map(state.leases.map((l) => [l.node, l]));
  const managed = state.gateways.filter(managedByCorvid);
  const topoBy = new Map(topologies.map((t) => [t.name, t]));
  // The election's verdicts, each Gateway judged with its topology's heartbeat timeout, as in the sync.
  const verdicts = candidateVerdicts({ nodes: state.nodes, leases: state.leases, gateways: managed, now, heartbeatTimeoutOf: (g) => heartbeatTimeoutOf(g, topoBy) });
  const pools: PoolStatus[] = [];
  for (const g of [...managed].sort(byTopologyAndPool)) {
    const topology = g.metadata.labels?.[TOPOLOGY_LABEL] ?? '';
    const pool = g.metadata.labels?.[POOL_LABEL] ?? g.metadata.name;
    const active = [...new Set((g.status?.activeEndpoints ?? []).map((e) => e.nodeName))].sort();
    const verdictOf = verdicts.get(g.metadata.name)!;
    const candidates = candidateNodes(g).map((node) => ({ node, active: active.includes(node), health: word(verdictOf.get(node)!) }));
    let expected = 0;
    let up = 0;
    const down: string[] = [];
    for (const node of active) {
      const plan = nodePlan({ gateways: managed, nodeName: node });
      const reported = leases.get(node)?.tunnels ?? {};
      for (const t of plan.tunnels) {
        expected++;
        const r = reported[t.peerPool] ?? reported[t.peerNode] ?? reported[t.name];
        if (r?.up) up++;
        else down.push(t.peerPool);
      }
    }
    const topo = topoBy.get(topology);
    const conditions: string[] = [];
    if (active.length === 0) conditions.push('NoActiveGateway');
    if (candidates.length > 0 && candidates.every((c) => c.health !== 'ok')) conditions.push('NoHealthyCandidate');
    if (down.length > 0) conditions.push('TunnelsDown');
    const links = readGatewayLinks(g);
    if (links.problems.length > 0) conditions.push('BadAnnotations');
    for (const c of topo?.conditions ?? []) {
      const bad = (c.type === 'Ready' && c.status !== 'True') || (c.type !== 'Ready' && c.status === 'True');
      if (bad) conditions.push(`${c.type}${c.reason ? `:${c.reason}` : ''}`);
    }
    const nodes = g.status?.nodes ?? [];
    const ps: PoolStatus = {
      topology,
      pool,
      gateway: g.metadata.name,
      active,
      candidates,
      tunnelsUp: up,
      tunnelsExpected: expected,
      tunnelsDown: down.sort(),
      conditions,
      publicEndpoints: (g.status?.activeEndpoints ?? []).filter((e) => e.publicIP).map((e) => `${e.publicIP}:${e.publicPort ?? e.port ?? 4500}`),
      nodes: nodes.length,
      subnets: nodes.reduce((n, x) => n + (x.subnets?.length ?? 0), 0),
    };
    const rev = g.metadata.annotations?.[REVISION_ANNOTATION];
    if (rev) ps.revision = rev;
    if (topo?.lastAppliedRevision) ps.lastAppliedRevision = topo.lastAppliedRevision;
    if (links.relay) ps.relay = links.relay;
    pools.push(ps);
  }
  return { topologies, pools };
}

function byTopologyAndPool(a: Gateway, b: Gateway): number {
  const ka = `${a.metadata.labels?.[TOPOLOGY_LABEL] ?? ''}\u0000${a.metadata.labels?.[POOL_LABEL] ?? a.metadata.name}`;
  const kb = `${b.metadata.labels?.[TOPOLOGY_LABEL] ?? ''}\u0000${b.metadata.labels?.[POOL_LABEL] ?? b.metadata.name}`;
  return ka < kb ? -1 : ka > kb ? 1 : 0;
}

