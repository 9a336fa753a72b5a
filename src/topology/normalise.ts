// Raw parsed data -> Topology. `buildModel` is lenient (it takes whatever is well-typed and defaults the rest, so the
// meaning checks can run even when the shape has errors); `finalise` gives the canonical, normalised Topology.

import { parseDuration } from './duration.ts';
import { sortedPair } from './policy.ts';
import type {
  Backend,
  EncryptionOverride,
  EncryptionPolicy,
  GatewayPreference,
  LabelSelector,
  LabelSelectorRequirement,
  LinkOverride,
  MemberRouting,
  MemberVxlan,
  PairRule,
  PodSubnetMode,
  Pool,
  SecretKeyRef,
  SelectorOperator,
  Topology,
} from './types.ts';

export const DEFAULT_ENCRYPTION: Readonly<EncryptionPolicy> = Object.freeze({
  backend: 'ipsec' as Backend,
  ikeProposals: ['aes256-sha256-modp2048'],
  espProposals: ['aes256-sha256'],
  allowInsecure: false,
});
export const DEFAULT_PUBLIC_PORT = 4500;
export const DEFAULT_MIN_HEALTHY = '30s';
export const DEFAULT_HEARTBEAT_TIMEOUT = '40s';
/**
 * Member VXLAN defaults: VNI 9027 (Raven's route table number, as ours) and UDP 4793, clear of flannel (8472, VNI 1),
 * Calico and the IANA port (4789, VNI 4096), VXLAN-GPE (4790), Raven (4472) and Submariner (4800).
 */
export const DEFAULT_MEMBER_VXLAN: Readonly<MemberVxlan> = Object.freeze({ vni: 9027, port: 4793 });
const MEMBER_ROUTING: readonly string[] = ['direct', 'vxlan', 'auto'];

type Obj = Record<string, unknown>;

/**
 * A duration field in seconds: its own value, else (absent, or not a duration) its default's. Also how readers of a
 * live Topology object (corvid status, graph --live) read it, so they judge as the sync does.
 */
export function durationSeconds(x: unknown, fallback: string): number {
  return (typeof x === 'string' ? parseDuration(x) : undefined) ?? parseDuration(fallback)!;
}

export function isObj(x: unknown): x is Obj {
  return x !== null && typeof x === 'object' && !Array.isArray(x);
}
export function arr(x: unknown): unknown[] {
  return Array.isArray(x) ? x : [];
}
function str(x: unknown): string | undefined {
  return typeof x === 'string' ? x : undefined;
}
function bool(x: unknown): boolean | undefined {
  return typeof x === 'boolean' ? x : undefined;
}
function strings(x: unknown): string[] | undefined {
  return Array.isArray(x) ? x.filter((s): s is string => typeof s === 'string') : undefined;
}

const BACKENDS: readonly string[] = ['ipsec', 'wireguard', 'none'];
const OPERATORS: readonly string[] = ['In', 'NotIn', 'Exists', 'DoesNotExist'];

function secretRef(x: unknown): SecretKeyRef | undefined {
  if (!isObj(x)) return undefined;
  const name = str(x.name);
  const key = str(x.key);
  return name !== undefined && key !== undefined ? { name, key } : undefined;
}

/** The fields of an encryption mapping that are well-typed, in canonical order. */
export function encryptionOverride(x: unknown): EncryptionOverride {
  const out: EncryptionOverride = {};
  if (!isObj(x)) return out;
  if (typeof x.backend === 'string' && BACKENDS.includes(x.backend)) out.backend = x.backend as Backend;
  const ike = strings(x.ikeProposals);
  if (ike && ike.length > 0) out.ikeProposals = ike;
  const esp = strings(x.espProposals);
  if (esp && esp.length > 0) out.espProposals = esp;
  const ref = secretRef(x.pskSecretRef);
  if (ref) out.pskSecretRef = ref;
  const insecure = bool(x.allowInsecure);
  if (insecure !== undefined) out.allowInsecure = insecure;
  return out;
}

function selector(x: unknown): LabelSelector {
  const out: LabelSelector = {};
  if (!isObj(x)) return out;
  if (isObj(x.matchLabels)) {
    const labels: Record<string, string> = {};
    for (const k of Object.keys(x.matchLabels).sort()) {
      const v = x.matchLabels[k];
      if (typeof v === 'string') labels[k] = v;
    }
    out.matchLabels = labels;
  }
  if (Array.isArray(x.matchExpressions)) {
    const exprs: LabelSelectorRequirement[] = [];
    for (const e of x.matchExpressions) {
      if (!isObj(e) || typeof e.key !== 'string' || typeof e.operator !== 'string' || !OPERATORS.includes(e.operator)) {
        continue;
      }
      const req: LabelSelectorRequirement = { key: e.key, operator: e.operator as SelectorOperator };
      const values = strings(e.values);
      if (values !== undefined) req.values = values;
      exprs.push(req);
    }
    out.matchExpressions = exprs;
  }
  return out;
}

function gateway(x: unknown): GatewayPreference | undefined {
  if (!isObj(x) || typeof x.node !== 'string') return undefined;
  const port = typeof x.publicPort === 'number' && Number.isInteger(x.publicPort) ? x.publicPort : DEFAULT_PUBLIC_PORT;
  return { node: x.node, ...(typeof x.publicIP === 'string' ? { publicIP: x.publicIP } : {}), publicPort: port };
}

function pair(x: unknown): [string, string] | undefined {
  return Array.isArray(x) && x.length === 2 && typeof x[0] === 'string' && typeof x[1] === 'string'
    ? [x[0], x[1]]
    : undefined;
}

/** A lenient Topology plus where each of its parts came from in the file. */
export interface Model {
  /** Pools in file order, first of each name only; relays only where written. */
  topology: Topology;
  /** Index in spec.pools of each of topology.pools. */
  poolIndex: number[];
  /** Every pool with a name, duplicates included, with its index in spec.pools (for checks local to one pool). */
  allPools: { pool: Pool; index: number }[];
  /** Index in spec.links of each of topology.links (pairs as written). */
  linkIndex: number[];
  /** Index in spec.connectivity.rules of each of topology.connectivity.rules. */
  ruleIndex: number[];
}

export function buildModel(data: unknown): Model {
  const root = isObj(data) ? data : {};
  const metadata = isObj(root.metadata) ? root.metadata : {};
  const spec = isObj(root.spec) ? root.spec : {};
  const enc = encryptionOverride(spec.encryption);
  const encryption: EncryptionPolicy = {
    backend: enc.backend ?? DEFAULT_ENCRYPTION.backend,
    ikeProposals: enc.ikeProposals ?? [...DEFAULT_ENCRYPTION.ikeProposals],
    espProposals: enc.espProposals ?? [...DEFAULT_ENCRYPTION.espProposals],
    ...(enc.pskSecretRef ? { pskSecretRef: enc.pskSecretRef } : {}),
    allowInsecure: enc.allowInsecure ?? DEFAULT_ENCRYPTION.allowInsecure,
  };

  const conn = isObj(spec.connectivity) ? spec.connectivity : {};
  const rules: PairRule[] = [];
  const ruleIndex: number[] = [];
  arr(conn.rules).forEach((r, i) => {
    if (!isObj(r) || (r.action !== 'allow' && r.action !== 'deny')) return;
    const pools = pair(r.pools);
    if (!pools) return;
    rules.push({ action: r.action, pools });
    ruleIndex.push(i);
  });
  const mode = conn.mode === 'hub' ? 'hub' : 'mesh';
  const hub = str(conn.hub);

  const el = isObj(spec.election) ? spec.election : {};
  const replicas = typeof el.replicas === 'number' && Number.isInteger(el.replicas) && el.replicas >= 1 ? el.replicas : 1;

  const pools: Pool[] = [];
  const poolIndex: number[] = [];
  const allPools: { pool: Pool; index: number }[] = [];
  const seen = new Set<string>();
  arr(spec.pools).forEach((p, i) => {
    if (!isObj(p) || typeof p.name !== 'string') return;
    const pool: Pool = {
      name: p.name,
      nodeSelector: selector(p.nodeSelector),
      gateways: arr(p.gateways)
        .map(gateway)
        .filter((g): g is GatewayPreference => g !== undefined),
      behindNAT: bool(p.behindNAT) ?? false,
    };
    if (typeof p.relay === 'string') pool.relay = p.relay;
    if (isObj(p.encryption)) pool.encryption = encryptionOverride(p.encryption);
    if (typeof p.mtu === 'number' && Number.isInteger(p.mtu)) pool.mtu = p.mtu;
    // `direct` is the default and stays implicit, so existing topologies keep their canonical form.
    if (typeof p.memberRouting === 'string' && p.memberRouting !== 'direct' && MEMBER_ROUTING.includes(p.memberRouting)) {
      pool.memberRouting = p.memberRouting as MemberRouting;
    }
    allPools.push({ pool, index: i });
    if (seen.has(p.name)) return;
    seen.add(p.name);
    pools.push(pool);
    poolIndex.push(i);
  });

  const links: LinkOverride[] = [];
  const linkIndex: number[] = [];
  arr(spec.links).forEach((l, i) => {
    if (!isObj(l)) return;
    const pools = pair(l.pools);
    if (!pools) return;
    links.push({ pools, encryption: encryptionOverride(l.encryption) });
    linkIndex.push(i);
  });

  const ps = isObj(spec.podSubnets) ? spec.podSubnets : {};
  const podSubnetSource: PodSubnetMode = ps.source === 'podCIDR' || ps.source === 'calico' ? ps.source : 'auto';

  const whole = (x: unknown, d: number): number => (typeof x === 'number' && Number.isInteger(x) ? x : d);
  const mv = spec.memberVxlan;
  const memberVxlan: MemberVxlan | undefined = isObj(mv)
    ? { vni: whole(mv.vni, DEFAULT_MEMBER_VXLAN.vni), port: whole(mv.port, DEFAULT_MEMBER_VXLAN.port) }
    : undefined;

  const topology: Topology = {
    name: isObj(metadata) && typeof metadata.name === 'string' ? metadata.name : '',
    allowEmpty: bool(spec.allowEmpty) ?? false,
    encryption,
    connectivity: { mode, ...(hub !== undefined ? { hub } : {}), rules },
    election: {
      sticky: bool(el.sticky) ?? true,
      preempt: bool(el.preempt) ?? false,
      minHealthySeconds: durationSeconds(el.minHealthy, DEFAULT_MIN_HEALTHY),
      heartbeatTimeoutSeconds: durationSeconds(el.heartbeatTimeout, DEFAULT_HEARTBEAT_TIMEOUT),
      replicas,
    },
    podSubnets: { source: podSubnetSource },
    ...(spec.nodeAddresses === true ? { nodeAddresses: true as const } : {}),
    ...(memberVxlan !== undefined ? { memberVxlan } : {}),
    pools,
    links,
  };
  return { topology, poolIndex, allPools, linkIndex, ruleIndex };
}

/**
 * The canonical Topology of a model that passed every check: pools sorted by name, relays kept only on pools behind
 * NAT (and only where written: the automatic choice belongs to the sync controller), rules in file order, link pairs
 * sorted and the links list sorted by pair.
 */
export function finalise(model: Model): Topology {
  const t = model.topology;
  const pools = [...t.pools]
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
    .map((p): Pool => {
      const relay = p.behindNAT ? p.relay : undefined;
      return {
        name: p.name,
        nodeSelector: p.nodeSelector,
        gateways: p.gateways,
        behindNAT: p.behindNAT,
        ...(relay !== undefined ? { relay } : {}),
        ...(p.encryption !== undefined ? { encryption: p.encryption } : {}),
        ...(p.mtu !== undefined ? { mtu: p.mtu } : {}),
        ...(p.memberRouting !== undefined ? { memberRouting: p.memberRouting } : {}),
      };
    });
  const links = t.links
    .map((l): LinkOverride => ({ pools: sortedPair(l.pools[0], l.pools[1]), encryption: l.encryption }))
    .sort((x, y) => {
      const kx = `${x.pools[0]}\u0000${x.pools[1]}`;
      const ky = `${y.pools[0]}\u0000${y.pools[1]}`;
      return kx < ky ? -1 : kx > ky ? 1 : 0;
    });
  return {
    name: t.name,
    allowEmpty: t.allowEmpty,
    encryption: t.encryption,
    connectivity: t.connectivity,
    election: t.election,
    podSubnets: t.podSubnets,
    ...(t.nodeAddresses === true ? { nodeAddresses: true as const } : {}),
    ...(t.memberVxlan !== undefined ? { memberVxlan: t.memberVxlan } : {}),
    pools,
    links,
  };
}
