// The agent's node plan: what one node must hold (IKE connections, routes, rules) given the Gateways it sees.
// Pure data; computed by nodePlan() in plan.ts.

import type { Gateway } from '../gateway/types.ts';
import type { Backend, SecretKeyRef } from '../topology/types.ts';

/** The table charon (kernel-netlink, kernel-libipsec) installs its IPsec routes in; never ours. */
export const CHARON_ROUTE_TABLE = 220;
/** Default policy-routing table for the routes of ordinary nodes (upstream Raven's number; never charon's 220). */
export const DEFAULT_ROUTE_TABLE = 9027;
/** Default priority of the one rule per family that sends lookups to our table. */
export const DEFAULT_RULE_PRIORITY = 9027;
/**
 * The rule that looks our table up ahead of charon's during a hand-over's hold (NodePlanInput.handoverReleased):
 * charon's routes for its CHILD_SAs are in table 220, looked up at 220 (its default routing_table_prio).
 */
export const HANDOVER_RULE_PRIORITY = 219;
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
  /**
   * The MTU of this node's uplink (the device of its InternalIP): the pool's MTU when its Gateway publishes none
   * (corvid.dev/mtu). Undefined: no MTU is known, and nothing is clamped.
   */
  uplinkMtu?: number;
  /**
   * The connected prefixes of this node's uplink (the device of its InternalIP), for memberRouting `auto`: a gateway
   * inside one of them is on-link. Undefined: not known, and `auto` takes vxlan (which works either way).
   */
  uplinkPrefixes?: string[];
  /** The uplink's name: the member VXLAN sends out of it only (see VxlanPlan.uplink). */
  uplinkDevice?: string;
  /** This node's WireGuard public key, when it has one: a finding says when its Gateway does not publish it (yet). */
  wireguardPublicKey?: string;
  /**
   * A hand-over in progress: the node that was this pool's active gateway until a moment ago (the agent names it for
   * HANDOVER_WINDOW_MS after it saw the change). Make before break: the new active gateway routes the pool's IPsec
   * traffic through it until its own tunnels are up (and held: handoverReleased), and it keeps its tunnels, never
   * initiating them again, until the peers retire them (NodePlan.retiring).
   */
  handoverFrom?: string;
  /**
   * On a hand-over's successor whose predecessor is alive: the hold. Its members' IPsec traffic keeps going through the
   * predecessor, ahead of charon's table (a rule at HANDOVER_RULE_PRIORITY), for every peer pool but these: the ones
   * whose gateway has been seen sending on the successor's new CHILD_SA, so has installed it. The peer creates that
   * CHILD_SA and installs it last; until then a packet sent on it would be dropped there. Undefined: no hold.
   */
  handoverReleased?: string[];
}

/** Corvid's VXLAN device between a pool's members and its gateway. */
export const VXLAN_DEVICE = 'corvid.vx';

/** Bytes a VXLAN adds, by the family of its outer header: outer IP, UDP 8, VXLAN 8, inner Ethernet 14. */
export const VXLAN_OVERHEAD: Record<Family, number> = { 4: 20 + 8 + 8 + 14, 6: 40 + 8 + 8 + 14 };

/** A node at the other end of our VXLAN: one FDB entry (its MAC to its address) and its permanent neighbours. */
export interface VxlanPeer {
  node: string;
  /** The node's address, the outer destination (FDB `dst`). */
  address: string;
  /** Its device's MAC (vxlanMac of its address). */
  mac: string;
  /** Inner next hops that resolve to that MAC (its node addresses: routes go `via <it> dev corvid.vx onlink`), sorted. */
  neighbours: string[];
}

/**
 * The VXLAN device of a node in a pool whose memberRouting is vxlan or auto: every node of such a pool has it (so a
 * failover only moves a member's FDB and neighbour entries). No learning: the peers are exactly the entries listed.
 */
export interface VxlanPlan {
  device: string;
  vni: number;
  port: number;
  /** This node's address: the outer source, and a host address of the device (reverse-path checks need one). */
  local: string;
  /** The device's MAC, derived from `local` (vxlanMac), so peers know it without asking. */
  mac: string;
  /** Uplink MTU less VXLAN_OVERHEAD; undefined when the uplink's MTU is not known (the kernel's default then). */
  mtu?: number;
  /**
   * The lower device (the link's `dev`, each FDB entry's `via`): the outer packets are routed out of it only, so a
   * route of our table towards a peer's own address (a gateway's return route to a member) never takes them back
   * into the VXLAN. Undefined: not known.
   */
  uplink?: string;
  /**
   * A member routing through it: its gateway. A gateway: none (replies to members' pods take the CNI's path), but in
   * a `vxlan` pool with node addresses across pools every member (replies to the members themselves).
   */
  peers: VxlanPeer[];
}

/**
 * Bytes IPsec adds to a packet, worst case for the proposals Corvid accepts: outer IP header (IPv4 20, IPv6 40),
 * UDP 8 (NAT-T encapsulation, always assumed), ESP header 8, IV 16 (AES-CBC), padding up to 15, trailer 2 and an
 * ICV of up to 32 (HMAC-SHA2-512).
 */
export const IPSEC_OVERHEAD: Record<Family, number> = { 4: 20 + 8 + 8 + 16 + 15 + 2 + 32, 6: 40 + 8 + 8 + 16 + 15 + 2 + 32 };

/** The TCP MSS that fits an MTU: IPv4 header 20, IPv6 header 40, TCP header 20. */
export function mssFor(mtu: number, family: Family): number {
  return mtu - (family === 4 ? 40 : 60);
}

/** Corvid's WireGuard interface on an active gateway with WireGuard links. */
export const WIREGUARD_DEVICE = 'corvid.wg';
/** The UDP port every gateway's WireGuard listens on, and so the port of every peer's endpoint. */
export const WIREGUARD_PORT = 51820;
/**
 * Keepalive (s) on every peer: a gateway behind NAT keeps its mapping open for its peers (WireGuard's own advice),
 * and an idle tunnel still renews its handshake, so a handshake older than WIREGUARD_SESSION_SECONDS means a dead
 * peer and never merely a quiet one.
 */
export const WIREGUARD_KEEPALIVE_SECONDS = 25;
/** WireGuard's REJECT_AFTER_TIME: a session whose handshake is older carries nothing. */
export const WIREGUARD_SESSION_SECONDS = 180;
/** Bytes WireGuard adds: outer IP header (20, 40), UDP 8, its message header 16 and authentication tag 16. */
export const WIREGUARD_OVERHEAD: Record<Family, number> = { 4: 20 + 8 + 16 + 16, 6: 40 + 8 + 16 + 16 };
/** WireGuard pads the packets it encrypts to a multiple of this (never past its interface's MTU). */
export const WIREGUARD_PADDING = 16;

/** One WireGuard peer: a peer pool's active gateway. */
export interface WireguardPeerPlan {
  /** `corvid-<peerPool>`: the same name as an IPsec tunnel's, for status, metrics and health. */
  name: string;
  peerPool: string;
  peerNode: string;
  /** The peer gateway's public key (its Gateway's corvid.dev/wireguard-keys). */
  publicKey: string;
  /** `address:port` (`[v6]:port`) to send to; absent when the peer is behind NAT (it comes to us). */
  endpoint?: string;
  /** The traffic the peer may send and is sent: its pool's subnets and those it relays (an IPsec tunnel's remoteTs). */
  allowedIPs: string[];
  /** WIREGUARD_KEEPALIVE_SECONDS (sent once the peer's endpoint is known, configured or learnt). */
  persistentKeepalive: number;
  /** The Secret whose key is the link's PSK (WireGuard's preshared key is derived from it). */
  pskSecretRef: SecretKeyRef;
  /** Pools whose subnets this peer carries besides the two ends' own (relay traffic), sorted. */
  relayed: string[];
  /**
   * A warm session, not a tunnel: on an active gateway, one per standby candidate of a peer pool
   * (`corvid-<pool>@<node>`), with no allowed IPs. Standby candidates keep `corvid.wg` up with the peers they would
   * have as the active gateway, and no route into it. So a hand-over only moves allowed IPs and routes: the
   * successor's sessions are already there, no handshake is waited for.
   */
  standby?: true;
}

/**
 * The WireGuard interface of an active gateway, or of a standby candidate (warm: see WireguardPeerPlan.standby):
 * present when at least one of the pool's direct links uses WireGuard.
 */
export interface WireguardPlan {
  device: string;
  listenPort: number;
  /**
   * The interface's MTU: the pool's uplink MTU (published, else this node's) less WireGuard's overhead for the family
   * of our endpoint address, rounded down to WireGuard's padding. Undefined when no MTU is known (the kernel's or
   * wireguard-go's default then).
   */
  mtu?: number;
  /** Sorted by name. A link whose peer has published no key has no peer (its traffic is routed here and dropped). */
  peers: WireguardPeerPlan[];
}

/** How the two gateways of a tunnel find each other. */
export type TunnelRole =
  /** We initiate (we are behind NAT, or both are public and our pool's name sorts first). */
  | 'initiator'
  /** We only answer (the peer is behind NAT, or both are public and the peer's pool name sorts first). */
  | 'responder';

/** The IKE connection for one gateway candidate of a peer pool. */
export interface IkePeerPlan {
  node: string;
  /** `corvid-<peerPool>@<node>` (ikeConnName). */
  conn: string;
  /** The candidate's IKE identity (ikeIdentity). */
  id: string;
  /** Its publicIP, else its privateIP; `%any` when its pool is behind NAT (or no address is known). */
  addr: string;
  port?: number;
}

/**
 * The tunnel to a peer pool: one CHILD_SA, from this node (an active gateway) to the peer pool's active gateway, on
 * the IKE connection of that gateway (one of `peers`).
 */
export interface TunnelPlan {
  /** The CHILD_SA name and the shared-secret id: `corvid-<peerPool>`. */
  name: string;
  peerPool: string;
  /** The peer pool's active gateway node. */
  peerNode: string;
  role: TunnelRole;
  /** IKE identities (ikeIdentity): this node's, and the peer pool's active gateway's. */
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
  /**
   * One IKE connection per gateway candidate of the peer pool, by node name; the active gateway's (peerNode) carries
   * the tunnel, the others accept a successor's handshake or hold a predecessor's IKE_SA during a hand-over.
   */
  peers: IkePeerPlan[];
}

/** A route in our table. */
export interface RoutePlan {
  family: Family;
  /** Canonical CIDR. */
  dst: string;
  /** Next hop; absent for a route into the WireGuard interface (`dst dev corvid.wg`). */
  via?: string;
  /** The pool this prefix belongs to. */
  pool: string;
  /** The path MTU towards dst through the tunnel(s), when an MTU is known (the route's `mtu`, and `advmss` from it). */
  mtu?: number;
  /**
   * A member in vxlan mode: the route goes `via <via> dev <dev> onlink` (the neighbour entry gives its MAC). A gateway
   * with WireGuard links: `dev corvid.wg`, no next hop.
   */
  dev?: string;
}

/** TCP MSS clamping on an active gateway, for SYNs to and from these remote prefixes. */
export interface MssClamp {
  family: Family;
  mss: number;
  /** Canonical CIDRs of `family`, sorted. */
  remote: string[];
}

/**
 * What this node's packet filter does for cross-pool traffic (the agent's nftables table): flows between `local` and
 * `remote`, and between two remote pools (a relay), keep their pod source address whatever the CNI's masquerade
 * rules say; active gateways clamp TCP MSS to the tunnel's MTU.
 */
export interface PacketPolicy {
  /** This pool's subnets (canonical, sorted). */
  local: string[];
  /** Subnets of every pool this node's pool reaches, directly or through a relay (canonical, sorted). */
  remote: string[];
  /** Sorted by family, then mss. Empty unless role is `gateway`. */
  mss: MssClamp[];
  /**
   * An active gateway with WireGuard links: the remote prefixes whose first hop is WireGuard (canonical, sorted), which
   * may leave this node only through `device`. Their routes go with the device (wireguard-go killed, a link deleted)
   * or are never made (no key): the main table's default route would then send them in the clear.
   */
  tunnelOnly?: { device: string; remote: string[] };
}

/** Nothing to exempt or clamp: no cross-pool traffic on this node (what a teardown applies). */
export const NO_PACKET_POLICY: PacketPolicy = Object.freeze({ local: [], remote: [], mss: [] }) as PacketPolicy;

/** A rule `from all lookup <table> pref <priority>` (one per family that has routes). */
export interface RulePlan {
  family: Family;
  priority: number;
  table: number;
  /** Only packets that came in on this device (a hand-over's hold: the members' traffic, not the peers'). */
  iif?: string;
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
  packet: PacketPolicy;
  /**
   * The other nodes of this pool as prefixes: their pod subnets and their addresses (canonical, sorted). The devices
   * this node routes them through carry pool traffic that meets cross-pool traffic on another path (rp_filter).
   * Empty when this node exchanges no traffic with another pool.
   */
  poolNeighbours: string[];
  routeTable: number;
  rulePriority: number;
  /** The member VXLAN device this node holds (its pool's memberRouting is vxlan or auto); absent: none. */
  vxlan?: VxlanPlan;
  /** The WireGuard interface of an active gateway with WireGuard links; absent: none. */
  wireguard?: WireguardPlan;
  /**
   * The pool's previous active gateway during a hand-over (NodePlanInput.handoverFrom is this node): the tunnels it
   * held, by name, sorted. Their IKE connections and SAs are left as they are (never initiated, never terminated)
   * while the successor's replace them at the peers, which then retire them. Absent: none.
   */
  retiring?: string[];
}
