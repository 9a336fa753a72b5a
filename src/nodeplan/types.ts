// The agent's node plan: what one node must hold (IKE connections, routes, rules) given the Gateways it sees.
// Pure data; computed by nodePlan() in plan.ts.

import type { Gateway } from '../gateway/types.ts';
import type { Backend, SecretKeyRef } from '../topology/types.ts';

/** Default policy-routing table for the routes of ordinary nodes (upstream Raven's number; never charon's 220). */
export const DEFAULT_ROUTE_TABLE = 9027;
/** Default priority of the one rule per family that sends lookups to our table. */
export const DEFAULT_RULE_PRIORITY = 9027;
/** Every IKE connection, CHILD_SA and shared-secret id the agent loads starts with this prefix. */
export const CONN_PREFIX = 'corvid-';

export type NodeRole = 'gateway' | 'member' | 'outside';

export type Family = 4 | 6;

export interface NodePlanInput {
  /** All Gateways the agent sees (any order). */
  gateways: Gateway[];
  /** This node. */
  nodeName: string;
  /** Our policy-routing table (default DEFAULT_ROUTE_TABLE). */
  routeTable?: number;
  /** Priority of our rules (default DEFAULT_RULE_PRIORITY). */
  rulePriority?: number;
}

/** How the two gateways of a tunnel find each other. */
export type TunnelRole =
  /** We initiate (we are behind NAT, or both are public and our pool's name sorts first). */
  | 'initiator'
  /** We only answer (the peer is behind NAT, or both are public and the peer's pool name sorts first). */
  | 'responder';

/** One IKE connection with exactly one CHILD_SA, from this node (an active gateway) to a peer pool's active gateway. */
export interface TunnelPlan {
  /** IKE connection name, also the CHILD_SA name and the shared-secret id: `corvid-<peerPool>`. */
  name: string;
  peerPool: string;
  /** The peer pool's active gateway node. */
  peerNode: string;
  role: TunnelRole;
  /** IKE identities: the node names. */
  localId: string;
  remoteId: string;
  /** Our privateIP (informational: IKE binds to any local address; the kernel picks the source towards the peer). */
  localAddr: string;
  /** The peer's publicIP, else its privateIP; `%any` when the peer is behind NAT (we cannot reach it). */
  remoteAddr: string;
  /** The peer endpoint's publicPort, when one is set (otherwise IKE's default 500 with NAT-T floating to 4500). */
  remotePort?: number;
  /** Traffic selectors (canonical CIDRs, sorted: IPv4 first, then IPv6, numerically). */
  localTs: string[];
  remoteTs: string[];
  ikeProposals: string[];
  espProposals: string[];
  pskSecretRef: SecretKeyRef;
  /** Pools whose subnets this tunnel carries besides the two ends' own (relay traffic), sorted. */
  relayed: string[];
}

/** A route in our table. */
export interface RoutePlan {
  family: Family;
  /** Canonical CIDR. */
  dst: string;
  /** Next hop. */
  via: string;
  /** The pool this prefix belongs to. */
  pool: string;
}

/** A rule `from all lookup <table> pref <priority>` (one per family that has routes). */
export interface RulePlan {
  family: Family;
  priority: number;
  table: number;
}

export type FindingSeverity = 'warning' | 'error';

export interface NodePlanFinding {
  severity: FindingSeverity;
  /** Stable code, e.g. `unsupported-backend`, `no-active-gateway`, `relay-missing`. */
  code: string;
  pool?: string;
  peer?: string;
  message: string;
}

/** A peer pool this node's pool exchanges traffic with, and how. */
export interface Reach {
  pool: string;
  /** `direct`: a tunnel (or clear route) between the two gateways; `relay`: through the named relay pool. */
  path: 'direct' | 'relay';
  via?: string;
  backend: Backend;
}

export interface NodePlan {
  nodeName: string;
  /** The pool whose Gateway lists this node in status.nodes. */
  pool?: string;
  role: NodeRole;
  /** The local pool's active gateway node (for members and the gateway itself). */
  gatewayNode?: string;
  /** Sorted by name. Empty unless role is `gateway`. */
  tunnels: TunnelPlan[];
  /** Sorted (family, prefix). */
  routes: RoutePlan[];
  /** Sorted by family. */
  rules: RulePlan[];
  /** Which pools this node's pool reaches, sorted by pool. */
  reach: Reach[];
  /** Sorted by code, pool, peer. */
  findings: NodePlanFinding[];
  routeTable: number;
  rulePriority: number;
}
