// Inputs and outputs of the pure planner. No I/O anywhere in src/plan.

import type { Gateway } from '../gateway/types.ts';
import type { Topology } from '../topology/types.ts';
import type { PodSubnetDecision, PodSubnetInput } from './podsubnets.ts';

/** What the planner needs from a Kubernetes Node (see inventory.ts). */
export interface InventoryNode {
  name: string;
  labels: Record<string, string>;
  ready: boolean;
  /**
   * Ready is Unknown: the node controller has not heard from the kubelet (the node is down, or cut off from the API
   * server). Not Ready either; see "Fail-static" in docs/gateway-annotations.md.
   */
  readyUnknown?: boolean;
  /** RFC 3339 lastTransitionTime of the Ready condition, if any. */
  readySince?: string;
  /** First InternalIP. */
  internalIP?: string;
  /**
   * Dual-stack nodes: the first InternalIP of the other family than internalIP (IPv6 when internalIP is IPv4, and
   * the reverse). Absent on single-stack nodes and when internalIP is not a valid address.
   */
  internalIPOtherFamily?: string;
  /** All pod CIDRs (IPv4 and IPv6), in the node's order. */
  podCIDRs: string[];
  unschedulable: boolean;
  /** From the corvid.dev/public-ip annotation. */
  publicIP?: string;
  /** From the corvid.dev/drain annotation. */
  drained: boolean;
}

/** Fresher health signals than Ready, per gateway candidate. All optional. */
export interface CandidateHealth {
  /** Seconds since the candidate last renewed its heartbeat Lease. */
  heartbeatAgeSeconds?: number;
  /** RFC 3339 time since which the heartbeat has been continuously fresh. */
  heartbeatSince?: string;
  /** Tunnel-health verdict from the agents: false means Ready but not forwarding. */
  tunnelHealthy?: boolean;
  /** RFC 3339 time of the last time this candidate was seen unhealthy (the sync remembers it). */
  lastUnhealthy?: string;
  /** The agent stopped and gave its heartbeat Lease up (no holder): gone now, whatever the Lease's age. */
  released?: boolean;
  /** The agent says its node cannot forward (charon not answering, forwarding off), and why. */
  datapathDown?: string;
  /**
   * The agent asks for its gateway role to go to another candidate, and why (its charon restarted and lost tunnels
   * only the peers can bring back). Treated as a drain: handed over when another candidate is healthy.
   */
  handoverWanted?: string;
  /**
   * Nodes whose agents report this one unreachable over their LAN (fresh Leases; mutual reports cancel out). Only
   * candidates of its own pool count (the election's rule).
   */
  unreachableFrom?: string[];
}

export interface PlanInput {
  topology: Topology;
  /** Revision string written into annotations, e.g. `main@sha1:<sha>`. */
  revision: string;
  nodes: InventoryNode[];
  /** Keyed by node name. */
  health: Record<string, CandidateHealth>;
  /**
   * A candidate with no heartbeat Lease is unhealthy ('no heartbeat'): the sync's default, since only a live agent
   * runs a gateway's datapath. Off (the pure planner's default): judged by Ready alone, for plans made without Lease
   * data (an offline render) or for clusters whose nodes run another agent.
   */
  requireHeartbeat?: boolean;
  /** Pools that a fresh heartbeat Lease of another pool's gateway reports a tunnel up to (deriveHealth). */
  reachedPools?: readonly string[];
  /** The Gateways currently live (for stickiness and relay stability). */
  previous: Gateway[];
  /** RFC 3339 "now"; the only clock the planner sees. */
  now: string;
  /**
   * Where pod subnets come from (the flag's override, Calico IPAM as read from the cluster or a snapshot). Absent:
   * node.spec.podCIDRs, whatever the topology says.
   */
  podSubnets?: PodSubnetInput;
  /**
   * Node -> the WireGuard public key its agent published (heartbeat Lease); written into the Gateways of topologies
   * that use WireGuard, for each pool's gateway candidates. Absent: none known.
   */
  wireguardKeys?: Readonly<Record<string, string>>;
}

export type FindingSeverity = 'warning' | 'error';

export interface Finding {
  severity: FindingSeverity;
  /** Stable machine code, e.g. `node-in-two-pools`, `gateway-not-in-pool`, `no-healthy-candidate`. */
  code: string;
  pool?: string;
  node?: string;
  message: string;
}

export type DecisionKind = 'elected' | 'kept' | 'lost' | 'preempted' | 'handed-over';

export interface Decision {
  pool: string;
  node: string;
  kind: DecisionKind;
  /** e.g. "elected: most preferred healthy candidate", "lost: not ready", "lost: heartbeat expired". */
  reason: string;
}

export interface PlanResult {
  /** One per pool, sorted by name; byte-stable for equal inputs. */
  gateways: Gateway[];
  findings: Finding[];
  /** Election changes relative to `previous` (empty when nothing changed). */
  decisions: Decision[];
  /** The pod-subnet source in force, and why. */
  podSubnets: PodSubnetDecision;
}
