// Every key Corvid adds to a Gateway. Documented in docs/gateway-annotations.md.

export const MANAGED_BY_LABEL = 'app.kubernetes.io/managed-by';
export const MANAGED_BY_VALUE = 'corvid';
/**
 * The Gateways an agent builds its datapath from: Corvid's only. Another controller's (Raven's, before the sync adopts
 * them, or ones it never imports) name nodes as gateways too, and are not ours to act on.
 */
export const MANAGED_SELECTOR = `${MANAGED_BY_LABEL}=${MANAGED_BY_VALUE}`;
/** Label: the Topology that owns this Gateway (prune selects on it). */
export const TOPOLOGY_LABEL = 'corvid.dev/topology';
/** Label: the pool this Gateway serves. */
export const POOL_LABEL = 'corvid.dev/pool';
/** The labels Corvid owns on a Gateway (what it writes, and what a diff leaves out of the live object's others). */
export const OWNED_LABELS: readonly string[] = [MANAGED_BY_LABEL, TOPOLOGY_LABEL, POOL_LABEL];

interface Labelled {
  metadata: { labels?: Record<string, string> };
}

/** Whether an object is Corvid's: the filter form of MANAGED_SELECTOR. */
export function managedByCorvid(o: Labelled): boolean {
  return o.metadata.labels?.[MANAGED_BY_LABEL] === MANAGED_BY_VALUE;
}

/** Whether an object is Corvid's and belongs to this Topology (what prune, diff and graph select). */
export function ownedByTopology(o: Labelled, topology: string): boolean {
  return managedByCorvid(o) && o.metadata.labels?.[TOPOLOGY_LABEL] === topology;
}

/** Annotation: revision of the topology that produced the object, e.g. `main@sha1:<40 hex>`. */
export const REVISION_ANNOTATION = 'corvid.dev/revision';
/** Annotation: the relay pool through which this NAT'd pool reaches other NAT'd pools. */
export const RELAY_ANNOTATION = 'corvid.dev/relay';
/** Annotation: JSON array of pool names this pool may exchange traffic with (sorted), or `["*"]`. */
export const PEERS_ANNOTATION = 'corvid.dev/peers';
/** Annotation: JSON array of pool names explicitly denied (sorted). Takes precedence over peers. */
export const DENIED_PEERS_ANNOTATION = 'corvid.dev/denied-peers';
/**
 * Annotation: JSON object, this pool's default link encryption {backend, ikeProposals, espProposals, pskSecretRef}
 * (global defaults <- the pool's own override). For humans and upstream tooling; agents merge the parts below.
 */
export const ENCRYPTION_ANNOTATION = 'corvid.dev/encryption';
/** Annotation: JSON object, the topology's global encryption defaults (a complete policy, same shape as encryption). */
export const ENCRYPTION_DEFAULTS_ANNOTATION = 'corvid.dev/encryption-defaults';
/** Annotation: JSON object, this pool's own partial encryption override (only the fields it sets); omitted when none. */
export const ENCRYPTION_POOL_ANNOTATION = 'corvid.dev/encryption-pool';
/** Annotation: JSON object peer pool -> the partial links[] encryption override of the pair; omitted when empty. */
export const ENCRYPTION_LINKS_ANNOTATION = 'corvid.dev/encryption-links';
/**
 * Annotation (old format, no longer written): JSON object peer pool -> full encryption policy, for the links that
 * differed from the default. Still read, for one release, from Gateways without encryption-defaults.
 */
export const ENCRYPTION_OVERRIDES_ANNOTATION = 'corvid.dev/encryption-overrides';
/** Annotation: JSON array of the NAT'd pools this pool relays for (set on relay pools only). */
export const RELAYS_FOR_ANNOTATION = 'corvid.dev/relays-for';
/** Annotation: human-readable reason of the last election decision per active endpoint. */
export const ELECTION_ANNOTATION = 'corvid.dev/election';

/**
 * Annotation: the MTU of this pool's uplink/WAN path, decimal (`"1400"`), from the topology's pool `mtu`; written only
 * when set. The largest packet the pool's gateways can send to other pools (576..9000).
 */
export const MTU_ANNOTATION = 'corvid.dev/mtu';

/**
 * Annotation: how the pool's members reach its active gateway, `vxlan` or `auto` (the topology's pool memberRouting);
 * written only when it is not `direct`, the default.
 */
export const MEMBER_ROUTING_ANNOTATION = 'corvid.dev/member-routing';
/** Annotation: JSON `{"port":N,"vni":N}`, the member VXLAN's settings; written only with member-routing. */
export const MEMBER_VXLAN_ANNOTATION = 'corvid.dev/member-vxlan';

/**
 * Annotation: `"true"` when the topology routes nodes' addresses across pools (spec.nodeAddresses) and this pool's
 * node subnet overlaps no other pool's; the agents then route its status.nodes addresses like its pod subnets.
 */
export const NODE_ADDRESSES_ANNOTATION = 'corvid.dev/node-addresses';

/** Node annotation: overrides the node's public IP. */
export const NODE_PUBLIC_IP_ANNOTATION = 'corvid.dev/public-ip';
/** Node annotation: `"true"` drains this node as a gateway for planned maintenance. */
export const NODE_DRAIN_ANNOTATION = 'corvid.dev/drain';

/** endpoints[].config: the endpoint's rank in the pool's preference order (0 = most preferred). */
export const ENDPOINT_PRIORITY_CONFIG = 'corvid.dev/priority';
/**
 * status.activeEndpoints[].config, dual-stack gateways only: the node's first InternalIP of each family, IPv4 first,
 * comma-separated (`192.168.1.10,fd00::10`). Lets members route the family that status.nodes' privateIP lacks.
 */
export const ENDPOINT_PRIVATE_IPS_CONFIG = 'corvid.dev/private-ips';

/**
 * Lease annotation written by the agent on its heartbeat Lease: the node's WireGuard public key (base64 of 32 bytes).
 * The private key never leaves the node (a file on it, created once).
 */
export const WIREGUARD_KEY_LEASE_ANNOTATION = 'corvid.dev/wireguard-public-key';
/**
 * Annotation: JSON object node -> WireGuard public key, for the pool's gateway candidates that published one; written
 * only when the topology uses backend wireguard anywhere. An annotation, not spec: the topology owns spec.
 */
export const WIREGUARD_KEYS_ANNOTATION = 'corvid.dev/wireguard-keys';

/**
 * Annotations that come from the cluster's live state (who is elected, which keys the nodes published), not from
 * the topology: `corvid render` prints neither, a change of either keeps the Gateway's revision stamp, and with the
 * Gateway spec owned by another writer (--gateway-spec=external) the sync patches them alone.
 */
export const LIVE_STATE_ANNOTATIONS: readonly string[] = [ELECTION_ANNOTATION, WIREGUARD_KEYS_ANNOTATION];

/**
 * Lease annotation written by the agent on its heartbeat Lease while its own datapath cannot carry traffic (charon not
 * answering, forwarding off): a short reason. Absent when the datapath is fine. Written on a change of verdict only.
 */
export const DATAPATH_DOWN_ANNOTATION = 'corvid.dev/datapath-down';

/**
 * Lease annotation written by an active gateway's agent on its heartbeat Lease while it asks for its role to go to
 * another candidate (nodeplan/datapath-health.ts: its charon restarted and lost tunnels only the peers can bring
 * back): a short reason. The election treats it as a drain. Absent otherwise; written on a change only.
 */
export const HANDOVER_WANTED_ANNOTATION = 'corvid.dev/handover-wanted';

/**
 * Lease annotation written by a gateway candidate's agent on its heartbeat Lease: the other candidates of its pool it
 * cannot reach over their LAN (nodeplan/liveness.ts), comma-separated, sorted. Absent when it reaches them all.
 * Written on a change of verdict only.
 */
export const UNREACHABLE_ANNOTATION = 'corvid.dev/unreachable';

/** Lease annotation written by the agent on its heartbeat Lease: JSON peer -> {up, since}. */
export const TUNNEL_HEALTH_ANNOTATION = 'corvid.dev/tunnels';

/**
 * Annotation: the configured number of active tunnel endpoints, written only when it is above 1 (upstream's webhook
 * caps spec.tunnelConfig.Replicas at 1, so that field says min(replicas, 1)); status.activeEndpoints lists them all.
 */
export const REPLICAS_ANNOTATION = 'corvid.dev/replicas';
/**
 * Annotation: `hub` when the topology's connectivity mode is hub (every Gateway of the topology carries it); absent
 * means mesh. In hub mode every spoke's corvid.dev/relay is the hub and spokes reach each other only through it.
 */
export const CONNECTIVITY_ANNOTATION = 'corvid.dev/connectivity';
