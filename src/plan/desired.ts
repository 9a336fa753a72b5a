// One plan step for the sync and for `corvid diff`, `render` and `graph`: nodes, heartbeats and the live Gateways
// in; the Gateways to write, the health memory to keep, and when to plan again with no event out. Pure.

import type { Gateway } from '../gateway/types.ts';
import type { Topology } from '../topology/types.ts';
import { candidatePools, deriveHealth, emptyHealthMemory, wireguardKeysFrom, type HealthMemory, type HeartbeatLease } from './health.ts';
import { plan } from './planner.ts';
import { parseTime } from './time.ts';
import type { InventoryNode, PlanResult } from './types.ts';
import type { PodSubnetInput } from './podsubnets.ts';
import { nextWake } from './wake.ts';

export interface DesiredInput {
  topology: Topology;
  revision: string;
  nodes: InventoryNode[];
  heartbeats: readonly HeartbeatLease[];
  /** The live Gateways: the election's memory of who is active and why. */
  previous: Gateway[];
  /** RFC 3339. */
  now: string;
  /** What the sync remembers between plans (when each candidate was last unhealthy); none for a one-off plan. */
  memory?: HealthMemory;
  /** A candidate whose agent has never written a heartbeat is not elected (PlanInput.requireHeartbeat). */
  requireHeartbeat: boolean;
  podSubnets?: PodSubnetInput;
}

export interface Desired {
  planned: PlanResult;
  memory: HealthMemory;
  /** The next instant (ms) at which health changes by the clock alone, if any (nextWake). */
  wakeAt?: number;
}

export function desiredGateways(i: DesiredInput): Desired {
  const timeoutS = i.topology.election.heartbeatTimeoutSeconds;
  // deriveHealth itself treats a timeout ≤ 0 as none.
  const { health, memory, reachedPools } = deriveHealth(i.heartbeats, i.now, i.memory ?? emptyHealthMemory(), {
    heartbeatTimeoutSeconds: timeoutS,
    candidatePools: candidatePools(i.previous),
  });
  const planned = plan({
    topology: i.topology,
    revision: i.revision,
    nodes: i.nodes,
    health,
    reachedPools,
    requireHeartbeat: i.requireHeartbeat,
    previous: i.previous,
    now: i.now,
    wireguardKeys: wireguardKeysFrom(i.heartbeats),
    ...(i.podSubnets ? { podSubnets: i.podSubnets } : {}),
  });
  const nowMs = parseTime(i.now);
  const wakeAt = nowMs === undefined ? undefined : nextWake(nowMs, i.heartbeats, health, i.nodes, timeoutS, i.topology.election.minHealthySeconds);
  return wakeAt === undefined ? { planned, memory } : { planned, memory, wakeAt };
}
