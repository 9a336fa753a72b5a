// The election's verdict on the gateway candidates of live Gateways, for every reader that shows health (corvid
// status, corvid graph --live): the very functions the sync elects with (deriveHealth, then candidateState), with each
// Gateway's own heartbeat timeout. One rule, so what is drawn or listed as healthy is what the sync would elect. Pure.
import { candidateEndpoints } from '../gateway/candidates.ts';
import type { Gateway } from '../gateway/types.ts';
import { candidateState, yieldOf, type Unhealth } from './election.ts';
import { candidatePools, deriveHealth, emptyHealthMemory, type HeartbeatLease } from './health.ts';
import type { CandidateHealth, InventoryNode } from './types.ts';
import { TOPOLOGY_LABEL } from '../gateway/keys.ts';
import { DEFAULT_HEARTBEAT_TIMEOUT, durationSeconds } from '../topology/normalise.ts';

/** The heartbeat timeout of the topology that wrote a Gateway (absent: the topology default), in seconds. */
export function heartbeatTimeoutOf(g: Gateway, topologies: ReadonlyMap<string, { heartbeatTimeoutSeconds?: number }>): number {
  return topologies.get(g.metadata.labels?.[TOPOLOGY_LABEL] ?? '')?.heartbeatTimeoutSeconds ?? durationSeconds(undefined, DEFAULT_HEARTBEAT_TIMEOUT);
}

/**
 * A candidate as the election sees it: healthy ('ok'), healthy but yielding its role ('drained' by the operator,
 * 'handover-wanted' by its agent: not elected while another candidate is healthy), unhealthy and why, or no Node.
 */
export type CandidateVerdict = 'ok' | 'drained' | 'handover-wanted' | Unhealth | 'missing';

export interface VerdictInput {
  nodes: readonly InventoryNode[];
  leases: readonly HeartbeatLease[];
  gateways: readonly Gateway[];
  now: string;
  /** The heartbeat timeout (seconds) of the topology that wrote a Gateway. */
  heartbeatTimeoutOf: (g: Gateway) => number;
}

/** Gateway name -> candidate (spec.endpoints of type tunnel) -> verdict, as the sync judges it (heartbeats required). */
export function candidateVerdicts(o: VerdictInput): Map<string, Map<string, CandidateVerdict>> {
  const nodes = new Map(o.nodes.map((n) => [n.name, n]));
  const nowMs = Date.parse(o.now);
  const pools = candidatePools(o.gateways);
  const byTimeout = new Map<number, Record<string, CandidateHealth>>();
  const healthFor = (timeoutS: number): Record<string, CandidateHealth> => {
    let h = byTimeout.get(timeoutS);
    if (h === undefined) {
      h = deriveHealth(o.leases, o.now, emptyHealthMemory(), { heartbeatTimeoutSeconds: timeoutS, candidatePools: pools }).health;
      byTimeout.set(timeoutS, h);
    }
    return h;
  };
  const out = new Map<string, Map<string, CandidateVerdict>>();
  for (const g of o.gateways) {
    const timeoutS = o.heartbeatTimeoutOf(g);
    const health = healthFor(timeoutS);
    const verdicts = new Map<string, CandidateVerdict>();
    for (const e of candidateEndpoints(g)) {
      const n = nodes.get(e.nodeName);
      if (n === undefined) {
        verdicts.set(e.nodeName, 'missing');
        continue;
      }
      const c = candidateState(n, 0, health[e.nodeName], { heartbeatTimeoutSeconds: timeoutS, requireHeartbeat: true }, nowMs);
      verdicts.set(e.nodeName, c.unhealthy ?? yieldOf(c) ?? 'ok');
    }
    out.set(g.metadata.name, verdicts);
  }
  return out;
}
