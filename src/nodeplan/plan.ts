// nodePlan(): the pure heart of the node agent. Gateways + this node's name -> role, IKE connections, routes, rules.
//
// Decisions (see docs in the report / README of the agent):
// - Membership: a node belongs to the pool whose Gateway lists it in status.nodes (or as an active endpoint).
// - Role: `gateway` when the node is its pool's active tunnel endpoint, `member` otherwise, `outside` in no pool.
// - A link between pools A and B exists when both Gateways' peers/denied-peers annotations allow it, both pools have
//   an active gateway with an address and at least one subnet, no subnet of A overlaps one of B, and both sides agree
//   on the backend. Two NAT'd pools never connect directly: they go through their common relay pool; in hub mode
//   (corvid.dev/connectivity: hub) two spokes go through the hub, their common relay, in the same way.
// - Active gateways get one IKE connection (one CHILD_SA with traffic-selector lists) per reachable peer pool.
//   Ordinary nodes get routes for every reachable remote prefix via the local gateway's privateIP (a prefix of the
//   other family: via the gateway's address of that family from corvid.dev/private-ips), in our table, plus
//   one rule per family `from all lookup <table> pref <priority>` (a lookup that finds no route falls through to the
//   next rule, so one rule covers every prefix and never needs rewriting).
// - Gateways need no routes of ours for ipsec links: charon installs routes for the remote traffic selectors in table
//   220 (kernel ESP, as deployed: source the gateway's own address in its local subnets, the xfrm policy does the rest;
//   kernel-libipsec, in most tests: via ipsec0), which serve both the gateway's own traffic and traffic forwarded from
//   its pool's members (forwarding must be on, as on every Kubernetes node). Backend `none` links are plain routes via the peer
//   gateway's address on the gateway (in our table), and via the gateway on members, exactly as for ipsec.

import { candidateEndpoints, candidateNodes } from '../gateway/candidates.ts';
import type { Gateway } from '../gateway/types.ts';
import { decodePrivateIPs, encryptionFor, gatewayRoutePool, readGatewayLinks, type GatewayLinks } from '../gateway/annotations.ts';
import { ENDPOINT_PRIVATE_IPS_CONFIG } from '../gateway/keys.ts';
import { poolPairRoute, type PoolPairRoute, type RoutePool } from '../topology/route.ts';
import type { Backend, EncryptionPolicy } from '../topology/types.ts';
import {
  canonicalAddress,
  compareParsedPrefixes,
  contains,
  parseAddress,
  parsePrefix,
  endpointText,
  familyOfPrefix,
  overlaps,
  sortCanonicalPrefixes,
  toCanonicalPrefix,
  type CanonicalPrefix,
  type Prefix,
} from './cidr.ts';
import {
  CONN_PREFIX,
  DEFAULT_ROUTE_TABLE,
  DEFAULT_RULE_PRIORITY,
  HANDOVER_RULE_PRIORITY,
  IPSEC_OVERHEAD,
  mssFor,
  VXLAN_DEVICE,
  VXLAN_OVERHEAD,
  WIREGUARD_DEVICE,
  WIREGUARD_KEEPALIVE_SECONDS,
  WIREGUARD_OVERHEAD,
  WIREGUARD_PADDING,
  WIREGUARD_PORT,
  type VxlanPlan,
  type WireguardPeerPlan,
  type Family,
  type MssClamp,
  NO_PACKET_POLICY,
  type PacketPolicy,
  type NodePlan,
  type NodePlanFinding,
  type NodePlanInput,
  type Reach,
  type RoutePlan,
  type RulePlan,
  type IkePeerPlan,
  type TunnelPlan,
} from './types.ts';

interface Active {
  node: string;
  privateIP: string;
  /** Dual-stack gateway: its address of the other family than privateIP (corvid.dev/private-ips), canonical. */
  otherIP?: string;
  publicIP?: string;
  publicPort?: number;
}

interface PoolInfo {
  name: string;
  gw: Gateway;
  links: GatewayLinks;
  /** Its part in the route rule (poolPairRoute). */
  route: RoutePool;
  nat: boolean;
  active?: Active;
  /** Canonical, sorted, each parsed once here: the per-pair checks (overlap, traffic selectors, routes) never parse. */
  subnets: CanonicalPrefix[];
  nodes: Set<string>;
  /** The pool's uplink MTU from its Gateway, when published. */
  mtu?: number;
  /** Node -> its canonical privateIP from status.nodes. */
  ipOf: Map<string, string>;
}

class Findings {
  private readonly byKey = new Map<string, NodePlanFinding>();
  add(f: NodePlanFinding): void {
    const k = `${f.code}\u0000${f.pool ?? ''}\u0000${f.peer ?? ''}\u0000${f.message}`;
    if (!this.byKey.has(k)) this.byKey.set(k, f);
  }
  sorted(): NodePlanFinding[] {
    return [...this.byKey.values()].sort(
      (a, b) =>
        cmp(a.code, b.code) || cmp(a.pool ?? '', b.pool ?? '') || cmp(a.peer ?? '', b.peer ?? '') || cmp(a.message, b.message),
    );
  }
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** The connection name for the tunnel to a peer pool. */
export function connName(peerPool: string): string {
  return `${CONN_PREFIX}${peerPool}`;
}

/** The IKE connection for one candidate of a peer pool: `corvid-<peerPool>@<node>` (TunnelPlan.peers). */
export function ikeConnName(tunnel: string, node: string): string {
  return `${tunnel}@${node}`;
}

/** The IKE connection that carries a tunnel: its peer pool's active gateway's (one of TunnelPlan.peers). */
export function activeConn(t: TunnelPlan): string {
  return ikeConnName(t.name, t.peerNode);
}

/**
 * The IKE identity of a gateway candidate: its node's, within its pool. A peer keeps one connection per candidate of
 * our pool (TunnelPlan.peers), so during a hand-over it can tell the successor's IKE_SA from the predecessor's, keep
 * both, and create the new CHILD_SA on the successor's itself (docs/datapath.md, "A planned hand-over").
 */
export function ikeIdentity(pool: string, node: string): string {
  return `${node}.${pool}.node.corvid`;
}

function readPools(gateways: Gateway[], f: Findings): Map<string, PoolInfo> {
  const pools = new Map<string, PoolInfo>();
  const sorted = [...gateways].sort((a, b) => cmp(a.metadata.name, b.metadata.name));
  for (const gw of sorted) {
    const links = readGatewayLinks(gw);
    if (pools.has(links.pool)) {
      f.add({ severity: 'error', code: 'duplicate-pool', pool: links.pool, message: `Gateway ${gw.metadata.name} serves pool ${links.pool} again; ignored` });
      continue;
    }
    for (const p of links.problems) f.add({ severity: 'error', code: 'bad-annotation', pool: links.pool, message: p });
    const nodes = new Set<string>();
    const subnets: CanonicalPrefix[] = [];
    const ipOf = new Map<string, string>();
    for (const n of gw.status?.nodes ?? []) {
      nodes.add(n.nodeName);
      const ip = canonicalAddress(n.privateIP ?? '');
      if (ip !== undefined) ipOf.set(n.nodeName, ip);
      for (const s of n.subnets ?? []) {
        const c = toCanonicalPrefix(s);
        if (c === undefined) f.add({ severity: 'warning', code: 'bad-subnet', pool: links.pool, message: `node ${n.nodeName}: "${s}" is not a CIDR; ignored` });
        else subnets.push(c);
      }
    }
    const tunnelActives = (gw.status?.activeEndpoints ?? []).filter((e) => e.type === 'tunnel');
    if (tunnelActives.length > 1) {
      f.add({ severity: 'warning', code: 'multiple-active', pool: links.pool, message: `${tunnelActives.length} active tunnel endpoints; using ${tunnelActives[0].nodeName}` });
    }
    const route = gatewayRoutePool(gw, links);
    const info: PoolInfo = { name: links.pool, gw, links, route, nat: route.nat, subnets: sortCanonicalPrefixes(subnets), nodes, ipOf };
    if (links.mtu !== undefined) info.mtu = links.mtu;
    const a = tunnelActives[0];
    if (a !== undefined) {
      nodes.add(a.nodeName);
      const privateIP = ipOf.get(a.nodeName);
      if (privateIP === undefined) {
        f.add({ severity: 'error', code: 'active-without-address', pool: links.pool, message: `active gateway ${a.nodeName} has no valid privateIP in status.nodes` });
      } else {
        const active: Active = { node: a.nodeName, privateIP };
        const otherIP = otherFamilyAddress(a.config?.[ENDPOINT_PRIVATE_IPS_CONFIG], privateIP, a.nodeName, links.pool, f);
        if (otherIP !== undefined) active.otherIP = otherIP;
        if (a.publicIP !== undefined && a.publicIP !== '') {
          const pub = canonicalAddress(a.publicIP);
          if (pub === undefined) f.add({ severity: 'warning', code: 'bad-public-ip', pool: links.pool, message: `active gateway ${a.nodeName}: publicIP "${a.publicIP}" is not an IP; ignored` });
          else {
            active.publicIP = pub;
            if (a.publicPort !== undefined && a.publicPort > 0) active.publicPort = a.publicPort;
          }
        }
        info.active = active;
      }
    }
    pools.set(info.name, info);
  }
  return pools;
}

/**
 * The active gateway's address of the other family than privateIP, from its corvid.dev/private-ips config. Fail safe:
 * a value that is not a string, not one or two addresses of distinct families, or whose entry of privateIP's family
 * contradicts privateIP is ignored with a `bad-private-ips` finding (no route rather than a wrong one).
 */
function otherFamilyAddress(raw: unknown, privateIP: string, node: string, pool: string, f: Findings): string | undefined {
  if (raw === undefined) return undefined;
  const bad = (why: string): undefined => {
    f.add({ severity: 'warning', code: 'bad-private-ips', pool, message: `active gateway ${node}: ${ENDPOINT_PRIVATE_IPS_CONFIG} ${JSON.stringify(raw)} ${why}; ignored` });
    return undefined;
  };
  if (typeof raw !== 'string') return bad('is not a string');
  const d = decodePrivateIPs(raw);
  if (!d.ok) return bad(`is malformed (${d.error})`);
  const v4 = d.value.ipv4 === undefined ? undefined : canonicalAddress(d.value.ipv4);
  const v6 = d.value.ipv6 === undefined ? undefined : canonicalAddress(d.value.ipv6);
  const [same, other] = familyOfPrefix(privateIP) === 4 ? [v4, v6] : [v6, v4];
  if (same !== undefined && same !== privateIP) return bad(`contradicts privateIP ${privateIP} in status.nodes`);
  return other;
}

type LinkVerdict =
  | { ok: true; backend: Backend; policy: EncryptionPolicy }
  | { ok: false; finding?: Omit<NodePlanFinding, 'pool' | 'peer'> };

function samePolicy(a: EncryptionPolicy, b: EncryptionPolicy): boolean {
  return (
    a.backend === b.backend &&
    a.ikeProposals.join(',') === b.ikeProposals.join(',') &&
    a.espProposals.join(',') === b.espProposals.join(',') &&
    a.pskSecretRef?.name === b.pskSecretRef?.name &&
    a.pskSecretRef?.key === b.pskSecretRef?.key &&
    a.allowInsecure === b.allowInsecure
  );
}

function hasOverlap(a: PoolInfo, b: PoolInfo): boolean {
  return a.subnets.some((x) => b.subnets.some((y) => overlaps(x.prefix, y.prefix)));
}

/**
 * Whether pools a and b, which the route rule joins directly (or by a hop to their relay), can have a link (tunnel or
 * clear route), symmetric in a and b except that the policy returned is a's view (its proposals and secret). Two
 * gateways behind NAT cannot reach each other (a spoke and its hub, both behind NAT, by their Gateways).
 */
function directLink(a: PoolInfo, b: PoolInfo): LinkVerdict {
  if (!a.active || !b.active || a.subnets.length === 0 || b.subnets.length === 0) return { ok: false };
  if (a.nat && b.nat) return { ok: false };
  if (hasOverlap(a, b)) {
    return { ok: false, finding: { severity: 'error', code: 'subnet-overlap', message: 'the two pools have overlapping subnets; no link' } };
  }
  const pa = encryptionFor(a.links, b.links);
  const pb = encryptionFor(b.links, a.links);
  if (!pa || !pb) {
    return { ok: false, finding: { severity: 'error', code: 'no-encryption', message: 'no usable encryption policy on one side (missing or malformed annotation); no link' } };
  }
  if (pa.backend !== pb.backend) {
    return { ok: false, finding: { severity: 'error', code: 'encryption-mismatch', message: `backends differ (${pa.backend} vs ${pb.backend}); no link` } };
  }
  if (pa.backend === 'none') {
    if (!pa.allowInsecure || !pb.allowInsecure) {
      return { ok: false, finding: { severity: 'error', code: 'insecure-not-allowed', message: 'backend none without allowInsecure; no link' } };
    }
    if (a.nat || b.nat) {
      return { ok: false, finding: { severity: 'error', code: 'none-behind-nat', message: 'backend none needs both gateways reachable without NAT; no link' } };
    }
    return { ok: true, backend: 'none', policy: pa };
  }
  if (!pa.pskSecretRef || !pb.pskSecretRef) {
    return { ok: false, finding: { severity: 'error', code: 'no-psk', message: `${pa.backend} link without pskSecretRef; no link` } };
  }
  if (pa.backend === 'wireguard') return { ok: true, backend: 'wireguard', policy: pa };
  if (pa.ikeProposals.length === 0 || pa.espProposals.length === 0) {
    return { ok: false, finding: { severity: 'error', code: 'no-proposals', message: 'ipsec link without IKE or ESP proposals; no link' } };
  }
  return { ok: true, backend: 'ipsec', policy: pa };
}

/** The route rule (poolPairRoute) between pools a and b, on their Gateways. */
function routeOf(pools: Map<string, PoolInfo>, a: PoolInfo, b: PoolInfo): PoolPairRoute {
  return poolPairRoute(a.route, b.route, (name) => pools.get(name)?.route);
}

/**
 * The common relay pool through which pools a and x exchange traffic (`route`: routeOf(a, x)), or why they cannot;
 * neither for a direct or denied pair. Symmetric.
 */
function relayPath(pools: Map<string, PoolInfo>, a: PoolInfo, x: PoolInfo, route: PoolPairRoute): { relay?: PoolInfo; why?: string } {
  if (route.via === 'direct' || !a.active || !x.active || a.subnets.length === 0 || x.subnets.length === 0) return {};
  const [p, q] = a.name < x.name ? [a, x] : [x, a];
  const both = p.links.connectivity === 'hub' || q.links.connectivity === 'hub' ? 'both pools are spokes' : 'both pools are behind NAT';
  if (route.via === 'none') {
    switch (route.reason) {
      case 'same-pool':
      case 'denied':
        return {};
      case 'no-relay':
      case 'relay-denied':
        return { why: `${both} and ${route.pool} has no relay` };
      case 'different-relays':
        return { why: `${both} and use different relays (${p.links.relay}, ${q.links.relay})` };
      case 'relay-unknown':
        return { why: `relay pool ${route.relay} has no Gateway` };
      case 'relay-behind-nat':
        return { why: `relay pool ${route.relay} is itself behind NAT` };
      case 'not-relayed':
        return { why: `relay pool ${route.relay} does not list both pools in its relays-for annotation` };
    }
  }
  if (hasOverlap(p, q)) return { why: 'the two pools have overlapping subnets' };
  const r = pools.get(route.relay) as PoolInfo;
  // Any mix of encrypting backends: the relay decrypts from one tunnel and encrypts into the other.
  for (const y of [p, q]) {
    const denied = route.via === 'none' && route.reason === 'hop-denied' && route.pool === y.name;
    const l = denied ? undefined : directLink(y, r);
    if (l === undefined || !l.ok || l.backend === 'none') return { why: `no encrypted tunnel between ${y.name} and relay ${r.name}` };
  }
  return route.via === 'relay' ? { relay: r } : {};
}

/** Pools whose traffic with `a` goes through relay `r` (sorted by name). */
function relayedVia(pools: Map<string, PoolInfo>, r: PoolInfo, a: PoolInfo): PoolInfo[] {
  const out: PoolInfo[] = [];
  for (const x of pools.values()) {
    if (x.name === a.name || x.name === r.name) continue;
    if (relayPath(pools, a, x, routeOf(pools, a, x)).relay?.name === r.name) out.push(x);
  }
  return out.sort((p, q) => cmp(p.name, q.name));
}

/** The subnets of these pools as traffic-selector texts: sorted, de-duplicated, without parsing again. */
function subnetTexts(list: PoolInfo[]): string[] {
  return sortCanonicalPrefixes(list.flatMap((x) => x.subnets)).map((c) => c.text);
}

function remoteAddress(peer: PoolInfo): string {
  const a = peer.active as Active;
  return a.publicIP ?? a.privateIP;
}

/** A next hop: the address to use, and the same node's address of the other family when it is known. */
interface NextHop {
  via: string;
  other?: string;
}

/** A gateway's private address(es) as a next hop. */
function privateHop(a: Active): NextHop {
  return a.otherIP !== undefined ? { via: a.privateIP, other: a.otherIP } : { via: a.privateIP };
}

/** The next hop towards a peer's gateway: its public address (one family only), else its private address(es). */
function remoteHop(peer: PoolInfo): NextHop {
  const a = peer.active as Active;
  return a.publicIP !== undefined ? { via: a.publicIP } : privateHop(a);
}

/** A route with its destination parsed, for sorting without parsing again. */
interface ParsedRoute {
  route: RoutePlan;
  prefix: Prefix;
}

/**
 * Routes to these prefixes via the hop: a prefix of the hop's family goes via `via`; one of the other family via the
 * same node's address of that family (`other`) when known. Without it, an IPv6 prefix gets no route (Linux cannot
 * route IPv6 via an IPv4 next hop: finding `no-ipv6-next-hop`); an IPv4 prefix goes via the IPv6 address (RFC 5549).
 */
function routesVia(prefixes: Array<{ dst: CanonicalPrefix; pool: string; mtu?: number }>, hop: NextHop, f: Findings, pool: string): ParsedRoute[] {
  const viaFamily = familyOfPrefix(hop.via);
  const other = hop.other !== undefined && familyOfPrefix(hop.other) !== viaFamily ? hop.other : undefined;
  const out: ParsedRoute[] = [];
  for (const { dst: { text: dst, prefix }, pool: peer, mtu } of prefixes) {
    const family = prefix.family;
    let via = hop.via;
    if (family !== viaFamily && other !== undefined) via = other;
    else if (family === 6 && viaFamily === 4) {
      f.add({
        severity: 'warning',
        code: 'no-ipv6-next-hop',
        pool,
        peer,
        message: `no route for ${dst}: the next hop ${hop.via} is IPv4, no IPv6 address of it is published (${ENDPOINT_PRIVATE_IPS_CONFIG}), and Linux cannot route IPv6 via an IPv4 next hop (the traffic selectors still carry it)`,
      });
      continue;
    }
    out.push({ route: mtu === undefined ? { family, dst, via, pool: peer } : { family, dst, via, pool: peer, mtu }, prefix });
  }
  return out;
}

/**
 * The MTU inside the path from our pool to a peer pool through `hops` (the peer, or the relay then the peer): the
 * smallest uplink MTU of the pools on the way (ours: published, else this node's uplink; another pool's: published,
 * else unknown and left out), less the overhead of each hop's backend for its outer family. Undefined when no MTU is
 * known at all.
 */
function pathMtu(me: PoolInfo, hops: Array<{ pool: PoolInfo; backend: Backend }>, uplinkMtu: number | undefined): number | undefined {
  let mtu: number | undefined;
  const own = me.mtu ?? uplinkMtu;
  for (const { pool: hop, backend } of hops) {
    const outer = [own, hop.mtu].filter((x): x is number => x !== undefined);
    if (outer.length === 0) continue;
    const inner = innerMtu(backend, Math.min(...outer), familyOfPrefix(remoteAddress(hop)));
    mtu = mtu === undefined ? inner : Math.min(mtu, inner);
  }
  return mtu;
}

/**
 * The largest packet a tunnel of this backend carries inside an outer MTU, for an outer header of this family. IPsec:
 * its worst-case overhead. WireGuard pads what it encrypts to a multiple of 16 bytes (up to its interface's MTU,
 * which may be larger than this path allows): so the inner MTU is rounded down to one, or a packet of a few bytes
 * less than the path's limit would grow past it.
 */
function innerMtu(backend: Backend, outer: number, family: Family): number {
  if (backend === 'ipsec') return outer - IPSEC_OVERHEAD[family];
  if (backend === 'wireguard') return Math.floor((outer - WIREGUARD_OVERHEAD[family]) / WIREGUARD_PADDING) * WIREGUARD_PADDING;
  return outer;
}

/** MSS clamps for the remote prefixes with a known path MTU, one per (family, MSS). */
function mssClamps(remote: Array<{ dst: CanonicalPrefix; mtu?: number }>): MssClamp[] {
  const groups = new Map<string, { clamp: MssClamp; list: CanonicalPrefix[] }>();
  for (const { dst, mtu } of remote) {
    if (mtu === undefined) continue;
    const family = dst.prefix.family;
    const mss = mssFor(mtu, family);
    const k = `${family} ${mss}`;
    const g = groups.get(k) ?? { clamp: { family, mss, remote: [] }, list: [] };
    g.list.push(dst);
    groups.set(k, g);
  }
  return [...groups.values()]
    .map((g) => ({ ...g.clamp, remote: sortCanonicalPrefixes(g.list).map((c) => c.text) }))
    .sort((a, b) => a.family - b.family || a.mss - b.mss);
}

/** The other nodes of our pool as prefixes: their pod subnets and addresses (rp_filter's devices come from them). */
function poolNeighbours(me: PoolInfo, nodeName: string): string[] {
  const out: CanonicalPrefix[] = [];
  for (const n of me.gw.status?.nodes ?? []) {
    if (n.nodeName === nodeName) continue;
    for (const s of [n.privateIP ?? '', ...(n.subnets ?? [])]) {
      const c = toCanonicalPrefix(s);
      if (c !== undefined) out.push(c);
    }
  }
  return sortCanonicalPrefixes(out).map((c) => c.text);
}

/**
 * Every pool's subnets as the node plans route and carry them (node addresses included where a pool routes them),
 * canonical, sorted, each once.
 */
export function poolPrefixes(gateways: Gateway[]): string[] {
  const pools = readPools(gateways, new Findings());
  addNodeAddresses(pools);
  return [...new Set(sortCanonicalPrefixes([...pools.values()].flatMap((p) => p.subnets)).map((c) => c.text))];
}

/** This node's role and desired state. Deterministic: equal inputs give deep-equal, sorted outputs. */
export function nodePlan(input: NodePlanInput): NodePlan {
  const routeTable = input.routeTable ?? DEFAULT_ROUTE_TABLE;
  const rulePriority = input.rulePriority ?? DEFAULT_RULE_PRIORITY;
  const f = new Findings();
  const pools = readPools(input.gateways, f);
  const base: NodePlan = {
    nodeName: input.nodeName,
    role: 'outside',
    tunnels: [],
    routes: [],
    rules: [],
    reach: [],
    findings: [],
    packet: NO_PACKET_POLICY,
    poolNeighbours: [],
    routeTable,
    rulePriority,
  };

  addNodeAddresses(pools);
  const mine = [...pools.values()].filter((p) => p.nodes.has(input.nodeName));
  if (mine.length !== 1) {
    if (mine.length > 1) {
      f.add({ severity: 'error', code: 'node-in-two-pools', message: `node ${input.nodeName} is listed by pools ${mine.map((p) => p.name).join(', ')}; acting as outside` });
    }
    return { ...base, findings: f.sorted() };
  }
  const me = mine[0];
  const plan: NodePlan = { ...base, pool: me.name };
  const device = vxlanDevice(me, input, f);
  if (device !== undefined) plan.vxlan = device;
  if (!me.active) {
    f.add({ severity: 'warning', code: 'no-active-gateway', pool: me.name, message: `pool ${me.name} has no active gateway; no routes` });
    return { ...plan, role: 'member', findings: f.sorted() };
  }
  plan.gatewayNode = me.active.node;
  plan.role = me.active.node === input.nodeName ? 'gateway' : 'member';
  if (me.subnets.length === 0) {
    f.add({ severity: 'warning', code: 'no-subnets', pool: me.name, message: `pool ${me.name} has no subnets in status.nodes; no links` });
  }

  const reach: Reach[] = [];
  const tunnels: TunnelPlan[] = [];
  /** Backend-none peers of an active gateway: routed in the clear via their gateway. */
  const clearPeers: Array<{ pool: string; hop: NextHop }> = [];
  const wgPeers: WireguardPeerPlan[] = [];
  const standby = plan.role === 'member' && candidateNodes(me.gw).includes(input.nodeName);

  for (const peer of [...pools.values()].sort((a, b) => cmp(a.name, b.name))) {
    if (peer.name === me.name) continue;
    const route = routeOf(pools, me, peer);
    if (route.via === 'none' && route.reason === 'denied') continue;
    if (route.via !== 'direct') {
      const rp = relayPath(pools, me, peer, route);
      // The backend of the first hop, ours to the relay: it decides how this node sends the traffic.
      if (rp.relay) reach.push({ pool: peer.name, path: 'relay', via: rp.relay.name, backend: (directLink(me, rp.relay) as { backend: Backend }).backend });
      else if (rp.why) f.add({ severity: 'warning', code: 'relay-unavailable', pool: me.name, peer: peer.name, message: `no path: ${rp.why}` });
      continue;
    }
    const link = directLink(me, peer);
    if (!link.ok) {
      if (link.finding) f.add({ ...link.finding, pool: me.name, peer: peer.name });
      continue;
    }
    const pb = encryptionFor(peer.links, me.links) as EncryptionPolicy;
    if (!samePolicy(link.policy, pb)) {
      f.add({ severity: 'warning', code: 'encryption-differs', pool: me.name, peer: peer.name, message: 'the two Gateways give this link different proposals or secrets; using ours' });
    }
    reach.push({ pool: peer.name, path: 'direct', backend: link.backend });
    // A standby candidate keeps its WireGuard sessions warm (see WireguardPeerPlan.standby); nothing else.
    if (plan.role !== 'gateway' && !(standby && link.backend === 'wireguard')) continue;

    if (link.backend === 'none') {
      const hop = remoteHop(peer);
      clearPeers.push({ pool: peer.name, hop });
      continue;
    }
    // Relay traffic: as the relay we carry to a peer the subnets of the pools it reaches through us; as a pool
    // behind a relay (NAT'd, or a spoke) we receive them from our relay.
    const extraLocal = peer.links.relay === me.name ? relayedVia(pools, me, peer) : [];
    const extraRemote = me.links.relay === peer.name ? relayedVia(pools, peer, me) : [];
    const localTs = subnetTexts([me, ...extraLocal]);
    const remoteTs = subnetTexts([peer, ...extraRemote]);
    const relayed = [...extraLocal, ...extraRemote].map((x) => x.name).sort();
    if (link.backend === 'wireguard') {
      const pa = peer.active as Active;
      const key = Object.hasOwn(peer.links.wireguardKeys, pa.node) ? peer.links.wireguardKeys[pa.node] : undefined;
      if (key === undefined) {
        f.add({ severity: 'warning', code: 'wireguard-key-missing', pool: me.name, peer: peer.name, message: `gateway ${pa.node} of pool ${peer.name} has published no WireGuard key; its traffic is held back until it has` });
        continue;
      }
      const wp: WireguardPeerPlan = {
        name: connName(peer.name),
        peerPool: peer.name,
        peerNode: pa.node,
        publicKey: key,
        allowedIPs: remoteTs,
        pskSecretRef: { ...(link.policy.pskSecretRef as { name: string; key: string }) },
        persistentKeepalive: WIREGUARD_KEEPALIVE_SECONDS,
        relayed,
      };
      if (!peer.nat) wp.endpoint = endpointText(remoteAddress(peer), WIREGUARD_PORT);
      wgPeers.push(wp);
      if (plan.role === 'gateway') wgPeers.push(...standbyPeers(peer, wp));
      continue;
    }
    const role = me.nat ? 'initiator' : peer.nat ? 'responder' : me.name < peer.name ? 'initiator' : 'responder';
    const pa = peer.active as Active;
    const t: TunnelPlan = {
      name: connName(peer.name),
      peerPool: peer.name,
      peerNode: pa.node,
      role,
      localId: ikeIdentity(me.name, me.active.node),
      remoteId: ikeIdentity(peer.name, pa.node),
      localAddr: me.active.privateIP,
      remoteAddr: peer.nat ? '%any' : remoteAddress(peer),
      localTs,
      remoteTs,
      ikeProposals: [...link.policy.ikeProposals],
      espProposals: [...link.policy.espProposals],
      pskSecretRef: { ...(link.policy.pskSecretRef as { name: string; key: string }) },
      relayed,
      peers: [],
    };
    const port = peer.nat ? undefined : pa.publicIP !== undefined ? pa.publicPort : undefined;
    if (port !== undefined) t.remotePort = port;
    t.peers = ikePeers(peer, t);
    tunnels.push(t);
  }

  // Every remote prefix this pool reaches, with the MTU of its path and the backend of its first hop.
  // `hop`: the pool of the first tunnel (the relay's, for a relayed pool).
  const remote: Array<{ dst: CanonicalPrefix; pool: string; hop: string; mtu?: number; backend: Backend }> = [];
  for (const r of reach) {
    const peer = pools.get(r.pool) as PoolInfo;
    let hops = [{ pool: peer, backend: r.backend }];
    if (r.path === 'relay') {
      const relay = pools.get(r.via as string) as PoolInfo;
      hops = [{ pool: relay, backend: r.backend }, { pool: peer, backend: (directLink(relay, peer) as { backend: Backend }).backend }];
    }
    const mtu = pathMtu(me, hops, input.uplinkMtu);
    const hop = r.path === 'relay' ? (r.via as string) : r.pool;
    for (const dst of peer.subnets) remote.push(mtu === undefined ? { dst, pool: r.pool, hop, backend: r.backend } : { dst, pool: r.pool, hop, mtu, backend: r.backend });
  }

  let parsedRoutes: ParsedRoute[] = [];
  let holdFamilies: Family[] = [];
  if (plan.role === 'member') {
    parsedRoutes = routesVia(remote, privateHop(me.active), f, me.name);
    if (device !== undefined && overVxlan(me, device, input.uplinkPrefixes, f)) {
      const a = me.active;
      // IPv4 first: the addresses the routes use as next hops, all behind the gateway's one MAC.
      const neighbours = [a.privateIP, ...(a.otherIP !== undefined ? [a.otherIP] : [])].sort((x, y) => familyOfPrefix(x) - familyOfPrefix(y));
      device.peers = [{ node: a.node, address: a.privateIP, mac: vxlanMac(a.privateIP), neighbours }];
      for (const r of parsedRoutes) {
        r.route.dev = device.device;
        // The packet crosses the VXLAN before the tunnel: the route carries the smaller of the two MTUs.
        if (r.route.mtu !== undefined && device.mtu !== undefined) r.route.mtu = Math.min(r.route.mtu, device.mtu);
      }
    }
  } else {
    for (const { pool, hop } of clearPeers) parsedRoutes.push(...routesVia(remote.filter((r) => r.pool === pool), hop, f, me.name));
    // Every prefix whose first hop is WireGuard goes into the interface, a peer's or not: without a peer (no key
    // yet) WireGuard drops it, where the main table would send it in the clear.
    for (const { dst, pool, mtu, backend } of remote) {
      if (backend !== 'wireguard') continue;
      const route: RoutePlan = { family: dst.prefix.family, dst: dst.text, pool, dev: WIREGUARD_DEVICE };
      if (mtu !== undefined) route.mtu = mtu;
      parsedRoutes.push({ route, prefix: dst.prefix });
    }
    if (device !== undefined && remote.length > 0) parsedRoutes.push(...memberReturns(me, device));
    // Make before break: the members send here from the moment the Gateway names us. Until our own tunnels are up,
    // their IPsec traffic goes on through the previous active gateway, which still holds its tunnels; charon's table
    // is looked up before ours, so each of our tunnels takes over its traffic as it comes up.
    // The hold (NodePlanInput.handoverReleased): until a peer has installed our new CHILD_SA, its traffic goes on
    // through the previous gateway ahead of charon's table, whose route to the new CHILD_SA is there from the moment
    // we installed it, a moment before the peer.
    const previous = handoverHop(me, input, device);
    const released = new Set(input.handoverReleased ?? []);
    const handedOver = remote.filter((r) => r.backend === 'ipsec' && !released.has(r.hop));
    if (previous !== undefined) parsedRoutes.push(...routesVia(handedOver, previous, f, me.name));
    // Only what the members send (it comes in on the uplink): a packet from a peer on the new CHILD_SA must still
    // find its reverse path through charon's table, or reverse-path filtering drops it.
    if (previous !== undefined && input.handoverReleased !== undefined && input.uplinkDevice !== undefined) holdFamilies = [...new Set(handedOver.map((r) => r.dst.prefix.family))];
  }
  const routes = dedupeRoutes(parsedRoutes, f, me.name);

  const families = [...new Set(routes.map((r) => r.family))].sort() as Family[];
  const rules: RulePlan[] = families.map((family) => ({ family, priority: rulePriority, table: routeTable }));
  if (rulePriority !== HANDOVER_RULE_PRIORITY) for (const family of holdFamilies.sort()) rules.push({ family, priority: HANDOVER_RULE_PRIORITY, table: routeTable, iif: input.uplinkDevice as string });
  const packet: PacketPolicy =
    remote.length === 0
      ? base.packet
      : {
          local: me.subnets.map((c) => c.text),
          remote: sortCanonicalPrefixes(remote.map((r) => r.dst)).map((c) => c.text),
          mss: plan.role === 'gateway' ? mssClamps(remote) : [],
        };
  const sealed = plan.role === 'gateway' ? remote.filter((r) => r.backend === 'wireguard').map((r) => r.dst) : [];
  if (sealed.length > 0) packet.tunnelOnly = { device: WIREGUARD_DEVICE, remote: sortCanonicalPrefixes(sealed).map((c) => c.text) };

  if ((plan.role === 'gateway' || standby) && reach.some((r) => r.backend === 'wireguard')) {
    plan.wireguard = { device: WIREGUARD_DEVICE, listenPort: WIREGUARD_PORT, peers: wgPeers.sort((a, b) => cmp(a.name, b.name)) };
    const own = me.mtu ?? input.uplinkMtu;
    if (own !== undefined) plan.wireguard.mtu = innerMtu('wireguard', own, familyOfPrefix(remoteAddress(me)));
    ownKeyFinding(me, input, f);
  }
  // The previous active gateway during a hand-over keeps the tunnels it held (see NodePlan.retiring).
  const retiring = plan.role === 'member' && input.handoverFrom === input.nodeName ? reach.filter((r) => r.path === 'direct' && r.backend === 'ipsec').map((r) => connName(r.pool)).sort(cmp) : [];
  if (retiring.length > 0) plan.retiring = retiring;
  return {
    ...plan,
    packet,
    poolNeighbours: remote.length === 0 ? [] : poolNeighbours(me, input.nodeName),
    tunnels: tunnels.sort((a, b) => cmp(a.name, b.name)),
    routes,
    rules,
    reach: reach.sort((a, b) => cmp(a.pool, b.pool)),
    findings: f.sorted(),
  };
}

/**
 * The previous active gateway as a next hop, on an active gateway during a hand-over: another node of our pool with an
 * address, in a pool whose members route directly (the previous gateway is then on the LAN as they are; a VXLAN
 * pool's members reach the gateway over a device the previous one does not answer on for them).
 */
function handoverHop(me: PoolInfo, input: NodePlanInput, device: VxlanPlan | undefined): NextHop | undefined {
  const from = input.handoverFrom;
  if (from === undefined || from === input.nodeName || device !== undefined || !me.nodes.has(from)) return undefined;
  const via = me.ipOf.get(from);
  return via === undefined ? undefined : { via };
}

/**
 * On an active gateway, the warm sessions with a WireGuard peer pool's standby candidates (those with a published
 * key): no allowed IPs, so no traffic, only the handshake; sent to when the peer pool is not behind NAT (a standby
 * behind NAT comes to us). Sorted by node.
 */
function standbyPeers(peer: PoolInfo, active: WireguardPeerPlan): WireguardPeerPlan[] {
  const out: WireguardPeerPlan[] = [];
  const endpoints = candidateEndpoints(peer.gw).filter((e) => e.nodeName !== active.peerNode);
  for (const e of [...endpoints].sort((a, b) => cmp(a.nodeName, b.nodeName))) {
    const key = Object.hasOwn(peer.links.wireguardKeys, e.nodeName) ? peer.links.wireguardKeys[e.nodeName] : undefined;
    if (key === undefined || key === active.publicKey || out.some((p) => p.publicKey === key)) continue;
    // The link's PSK and keepalive; none of the active's traffic (allowed IPs) nor its address.
    const wp: WireguardPeerPlan = {
      name: `${active.name}@${e.nodeName}`,
      peerPool: active.peerPool,
      peerNode: e.nodeName,
      publicKey: key,
      allowedIPs: [],
      persistentKeepalive: active.persistentKeepalive,
      pskSecretRef: { ...active.pskSecretRef },
      relayed: [],
      standby: true,
    };
    const address = (e.publicIP ? canonicalAddress(e.publicIP) : undefined) ?? peer.ipOf.get(e.nodeName);
    if (!peer.nat && address !== undefined) wp.endpoint = endpointText(address, WIREGUARD_PORT);
    out.push(wp);
  }
  return out;
}

/**
 * One IKE connection per candidate of the peer pool, the active's first by name order as any other: a successor's
 * handshake is accepted before this node has seen the Gateway move, and the predecessor's IKE_SA stays on its own
 * connection until the successor's CHILD_SA has replaced it.
 */
function ikePeers(peer: PoolInfo, t: TunnelPlan): IkePeerPlan[] {
  const out: IkePeerPlan[] = [{ node: t.peerNode, conn: ikeConnName(t.name, t.peerNode), id: t.remoteId, addr: t.remoteAddr, ...(t.remotePort === undefined ? {} : { port: t.remotePort }) }];
  for (const e of candidateEndpoints(peer.gw)) {
    if (out.some((p) => p.node === e.nodeName)) continue;
    const address = peer.nat ? undefined : ((e.publicIP ? canonicalAddress(e.publicIP) : undefined) ?? peer.ipOf.get(e.nodeName));
    const p: IkePeerPlan = { node: e.nodeName, conn: ikeConnName(t.name, e.nodeName), id: ikeIdentity(peer.name, e.nodeName), addr: address ?? '%any' };
    if (address !== undefined && e.publicIP && e.publicPort !== undefined && e.publicPort > 0) p.port = e.publicPort;
    out.push(p);
  }
  return out.sort((a, b) => cmp(a.node, b.node));
}

/** The WireGuard peers that are this node's tunnels (health, metrics): an active gateway's, not its warm sessions. */
export function wireguardTunnels(plan: NodePlan): WireguardPeerPlan[] {
  return plan.role === 'gateway' ? (plan.wireguard?.peers ?? []).filter((p) => p.standby !== true) : [];
}

/** Our own key as our Gateway publishes it, compared with the one this node holds (when the caller knows it). */
function ownKeyFinding(me: PoolInfo, input: NodePlanInput, f: Findings): void {
  if (input.wireguardPublicKey === undefined) return;
  const published = Object.hasOwn(me.links.wireguardKeys, input.nodeName) ? me.links.wireguardKeys[input.nodeName] : undefined;
  if (published === input.wireguardPublicKey) return;
  f.add({
    severity: 'warning',
    code: 'wireguard-key-unpublished',
    pool: me.name,
    message: `our Gateway ${published === undefined ? 'carries no WireGuard key' : 'carries another WireGuard key'} for this node yet; peers reach us once the sync has published it from our Lease`,
  });
}

/** Sort routes and drop duplicate prefixes (two remote pools claiming the same prefix: the first pool by name wins). */
function dedupeRoutes(routes: ParsedRoute[], f: Findings, pool: string): RoutePlan[] {
  const sorted = [...routes]
    .sort((a, b) => a.route.family - b.route.family || compareParsedPrefixes(a.prefix, b.prefix) || cmp(a.route.pool, b.route.pool))
    .map((x) => x.route);
  const out: RoutePlan[] = [];
  for (const r of sorted) {
    const prev = out[out.length - 1];
    if (prev && prev.family === r.family && prev.dst === r.dst) {
      f.add({ severity: 'warning', code: 'duplicate-prefix', pool, peer: r.pool, message: `${r.dst} is claimed by ${prev.pool} and ${r.pool}; routed to ${prev.pool}` });
      continue;
    }
    out.push(r);
  }
  return out;
}

/**
 * The MAC of a node's VXLAN device: locally administered unicast `0a:c7:` and the last four bytes of its address, so
 * every node knows every other's without asking (two IPv6 nodes that share their last 32 bits would collide).
 */
export function vxlanMac(address: string): string {
  const a = parseAddress(address);
  const low = a === undefined ? 0n : a.value & 0xffffffffn;
  const bytes = [0x0a, 0xc7, ...[24n, 16n, 8n, 0n].map((sh) => Number((low >> sh) & 0xffn))];
  return bytes.map((b) => b.toString(16).padStart(2, '0')).join(':');
}

/** This node's VXLAN device when its pool's memberRouting is vxlan or auto (peers filled in by the caller). */
function vxlanDevice(me: PoolInfo, input: NodePlanInput, f: Findings): VxlanPlan | undefined {
  const mode = me.links.memberRouting;
  const vx = me.links.memberVxlan;
  if (mode === undefined || vx === undefined) return undefined;
  const local = me.ipOf.get(input.nodeName);
  if (local === undefined) {
    f.add({ severity: 'warning', code: 'vxlan-without-address', pool: me.name, message: `memberRouting ${mode}: node ${input.nodeName} has no valid privateIP in status.nodes; no VXLAN device, members route directly` });
    return undefined;
  }
  const out: VxlanPlan = { device: VXLAN_DEVICE, vni: vx.vni, port: vx.port, local, mac: vxlanMac(local), peers: [] };
  if (input.uplinkMtu !== undefined) out.mtu = input.uplinkMtu - VXLAN_OVERHEAD[familyOfPrefix(local)];
  if (input.uplinkDevice !== undefined) out.uplink = input.uplinkDevice;
  return out;
}

/** Whether a member sends through the VXLAN: vxlan mode, or auto with a gateway outside its uplink's prefixes. */
function overVxlan(me: PoolInfo, device: VxlanPlan, uplinkPrefixes: string[] | undefined, f: Findings): boolean {
  const gw = (me.active as Active).privateIP;
  if (familyOfPrefix(gw) !== familyOfPrefix(device.local)) {
    f.add({ severity: 'warning', code: 'vxlan-family-mismatch', pool: me.name, message: `memberRouting ${me.links.memberRouting}: gateway ${gw} and this node ${device.local} differ in family; routing directly` });
    return false;
  }
  if (me.links.memberRouting === 'vxlan' || uplinkPrefixes === undefined) return true;
  const target = parsePrefix(gw) as Prefix;
  return !uplinkPrefixes.some((p) => {
    const q = parsePrefix(p);
    return q !== undefined && q.family === target.family && contains(q, target);
  });
}

/**
 * corvid.dev/node-addresses: a pool's node addresses (status.nodes privateIP, as host prefixes) join its subnets, so
 * they are routed, carried in traffic selectors and kept from masquerade like pod subnets. Never an active gateway's
 * tunnel endpoint address (its publicIP, else its privateIP): routed into its own tunnel, it would loop. Every agent
 * sees the same Gateways, so both ends of a tunnel compute the same selectors.
 */
function addNodeAddresses(pools: Map<string, PoolInfo>): void {
  const endpoints = new Set<string>();
  for (const p of pools.values()) if (p.active !== undefined) endpoints.add(remoteAddress(p));
  for (const p of pools.values()) {
    if (p.links.nodeAddresses !== true) continue;
    const hosts = [...p.ipOf.values()].filter((ip) => !endpoints.has(ip)).map((ip) => toCanonicalPrefix(ip) as CanonicalPrefix);
    if (hosts.length === 0) continue;
    const seen = new Set(p.subnets.map((c) => c.text));
    p.subnets = sortCanonicalPrefixes([...p.subnets, ...hosts.filter((h) => !seen.has(h.text))]);
  }
}

/**
 * A gateway of a `vxlan` pool that routes node addresses across pools: the members' addresses via the VXLAN, each
 * member a peer. Replies to a member's pods take the CNI's path, but replies to the member itself would cross the LAN
 * with another pool's node as their source, which a VPC drops. The gateway's own traffic to its members takes the
 * same way (the same addresses on both ends). Not in `auto` pools: there the LAN routes any source.
 */
function memberReturns(me: PoolInfo, device: VxlanPlan): ParsedRoute[] {
  if (me.links.memberRouting !== 'vxlan' || me.links.nodeAddresses !== true) return [];
  const gw = (me.active as Active).node;
  const family = familyOfPrefix(device.local);
  const out: ParsedRoute[] = [];
  for (const [node, ip] of [...me.ipOf].sort(([a], [b]) => cmp(a, b))) {
    if (node === gw || familyOfPrefix(ip) !== family) continue;
    const dst = toCanonicalPrefix(ip) as CanonicalPrefix;
    device.peers.push({ node, address: ip, mac: vxlanMac(ip), neighbours: [ip] });
    const route: RoutePlan = { family, dst: dst.text, via: ip, pool: me.name, dev: device.device };
    if (device.mtu !== undefined) route.mtu = device.mtu;
    out.push({ route, prefix: dst.prefix });
  }
  return out;
}
