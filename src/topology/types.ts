// The normalised, fully defaulted topology that the rest of Corvid consumes.
// The YAML shape is defined by schemas/topology.schema.json; this is what the
// validator returns after defaults are filled in and meaning is checked.

export const TOPOLOGY_API_VERSION = 'corvid.dev/v1alpha1';
export const TOPOLOGY_KIND = 'Topology';

export type Backend = 'ipsec' | 'wireguard' | 'none';

export interface SecretKeyRef {
  /** Secret name; the agent reads it as a mounted file `<secretDir>/<name>/<key>`. */
  name: string;
  key: string;
}

/** A complete encryption policy for one link (after defaults and overrides). */
export interface EncryptionPolicy {
  backend: Backend;
  ikeProposals: string[];
  espProposals: string[];
  /** Absent only when backend is `none`. */
  pskSecretRef?: SecretKeyRef;
  allowInsecure: boolean;
}

/** A partial policy as written in a per-pool or per-pair override. */
export type EncryptionOverride = Partial<EncryptionPolicy>;

export type SelectorOperator = 'In' | 'NotIn' | 'Exists' | 'DoesNotExist';

export interface LabelSelectorRequirement {
  key: string;
  operator: SelectorOperator;
  values?: string[];
}

export interface LabelSelector {
  matchLabels?: Record<string, string>;
  matchExpressions?: LabelSelectorRequirement[];
}

export interface GatewayPreference {
  node: string;
  publicIP?: string;
  /** Default 4500 (IKE NAT-T). */
  publicPort: number;
}

export interface Pool {
  name: string;
  nodeSelector: LabelSelector;
  /** In priority order, most preferred first. */
  gateways: GatewayPreference[];
  behindNAT: boolean;
  /** Pool through which this (NAT'd) pool reaches other NAT'd pools. */
  relay?: string;
  encryption?: EncryptionOverride;
  /** MTU of the pool's uplink/WAN path (576..9000), published as corvid.dev/mtu; absent when not set. */
  mtu?: number;
  /** How members reach the pool's active gateway; absent means `direct`. */
  memberRouting?: MemberRouting;
}

/**
 * How a pool's members send cross-pool traffic to their gateway:
 * - `direct`: routed to the gateway's node address on the LAN (the gateway must be on-link and the LAN must pass
 *   pod source addresses);
 * - `vxlan`: inside Corvid's own VXLAN device, so the LAN sees node addresses only (cloud VPCs, routed sites);
 * - `auto`: `vxlan` for a member whose gateway is not in a connected subnet of its uplink, `direct` otherwise.
 */
export type MemberRouting = 'direct' | 'vxlan' | 'auto';

/** The VXLAN between members and their gateway (pools whose memberRouting is vxlan or auto). */
export interface MemberVxlan {
  vni: number;
  /** UDP destination port. */
  port: number;
}

export type RuleAction = 'allow' | 'deny';

/** A rule for a pool pair; `*` matches any pool. */
export interface PairRule {
  action: RuleAction;
  pools: [string, string];
}

export interface Connectivity {
  mode: 'mesh' | 'hub';
  /** Required when mode is `hub`. */
  hub?: string;
  /** Evaluated in order, first match wins; no match means allowed. */
  rules: PairRule[];
}

export interface LinkOverride {
  pools: [string, string];
  encryption: EncryptionOverride;
}

export interface ElectionSettings {
  /** Keep a healthy active gateway even when a more preferred one is healthy. */
  sticky: boolean;
  /** Return to a more preferred gateway once it has been healthy for minHealthySeconds. */
  preempt: boolean;
  /** A candidate must be continuously healthy this long before it may be elected (hysteresis). */
  minHealthySeconds: number;
  /** A candidate whose heartbeat is older than this is unhealthy. */
  heartbeatTimeoutSeconds: number;
  /** Active gateways per pool. */
  replicas: number;
}

/** Where node pod subnets come from: `auto` (detect), node.spec.podCIDRs, or Calico IPAM's BlockAffinities. */
export type PodSubnetMode = 'auto' | 'podCIDR' | 'calico';

export interface PodSubnets {
  /** Default `auto`. The sync's --pod-subnets flag wins over it. */
  source: PodSubnetMode;
}

export interface Topology {
  name: string;
  /** Allow a revision that yields no Gateways at all (prune everything). */
  allowEmpty: boolean;
  encryption: EncryptionPolicy;
  connectivity: Connectivity;
  election: ElectionSettings;
  podSubnets: PodSubnets;
  /** Route nodes' InternalIPs across pools like pod subnets; present only when true. */
  nodeAddresses?: true;
  /** VXLAN settings of member routing, when spec.memberVxlan is written (defaults filled in); else DEFAULT_MEMBER_VXLAN. */
  memberVxlan?: MemberVxlan;
  /** Sorted by name. */
  pools: Pool[];
  /** Per-pair encryption overrides, each pair sorted, list sorted. */
  links: LinkOverride[];
}
