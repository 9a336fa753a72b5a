// Pure questions about a normalised Topology: which pools may talk, with which encryption, and through which relay.
// The relay rule lives here only (automaticRelay, relayOfPool); the planner (src/plan/relay.ts) calls it. The pair
// route rule lives in route.ts; pairRoute feeds it the topology's pools.

import { rendezvousChoice, rendezvousOrder } from './hash.ts';
import { poolPairRoute, type NoRoute, type RoutePool } from './route.ts';
import type { EncryptionOverride, EncryptionPolicy, LinkOverride, Pool, Topology } from './types.ts';

/** Pools by name. */
export function poolByName(t: Topology): Map<string, Pool> {
  return new Map(t.pools.map((p) => [p.name, p]));
}

/** poolByName, built once per Topology object (topologies are never mutated), for per-pool lookups in loops. */
const indexes = new WeakMap<Topology, ReadonlyMap<string, Pool>>();
function poolIndex(t: Topology): ReadonlyMap<string, Pool> {
  let m = indexes.get(t);
  if (m === undefined) {
    m = poolByName(t);
    indexes.set(t, m);
  }
  return m;
}

function ruleSideMatches(pattern: string, pool: string): boolean {
  return pattern === '*' || pattern === pool;
}

/** Whether a rule's pair (with `*` wildcards) covers the unordered pair {a, b}. */
export function ruleMatches(rule: readonly [string, string], a: string, b: string): boolean {
  return (
    (ruleSideMatches(rule[0], a) && ruleSideMatches(rule[1], b)) ||
    (ruleSideMatches(rule[0], b) && ruleSideMatches(rule[1], a))
  );
}

/**
 * The first rule index of every written pair of sides, in both orders (`a\0b` and `b\0a`), built once per Topology
 * object: matchingRule is then a handful of lookups instead of a scan of every rule.
 */
const ruleIndexes = new WeakMap<Topology, ReadonlyMap<string, number>>();
function ruleIndex(t: Topology): ReadonlyMap<string, number> {
  let m = ruleIndexes.get(t);
  if (m === undefined) {
    const built = new Map<string, number>();
    t.connectivity.rules.forEach((r, i) => {
      for (const key of [`${r.pools[0]}\u0000${r.pools[1]}`, `${r.pools[1]}\u0000${r.pools[0]}`]) if (!built.has(key)) built.set(key, i);
    });
    m = built;
    ruleIndexes.set(t, m);
  }
  return m;
}

/**
 * Index of the first rule that matches {a, b}, or -1 when none does. A rule matches when its sides cover a and b in
 * one order or the other (ruleMatches); the index holds both orders, so the sides that can cover the ordered (a, b)
 * are looked up: (a, b), (*, b), (a, *), (*, *).
 */
export function matchingRule(t: Topology, a: string, b: string): number {
  const index = ruleIndex(t);
  let first = -1;
  for (const key of [`${a}\u0000${b}`, `*\u0000${b}`, `${a}\u0000*`, '*\u0000*']) {
    const i = index.get(key);
    if (i !== undefined && (first < 0 || i < first)) first = i;
  }
  return first;
}

/** Rules in order, first match wins (`*` matches any pool, the order of a and b is irrelevant); no match means allow. */
export function pairVerdict(t: Topology, a: string, b: string): 'allow' | 'deny' {
  const i = matchingRule(t, a, b);
  return i < 0 ? 'allow' : t.connectivity.rules[i].action;
}

/** The two pool names in canonical (sorted) order. */
export function sortedPair(a: string, b: string): [string, string] {
  return a <= b ? [a, b] : [b, a];
}

/** The first links[] entry of every sorted pair, built once per Topology object. */
const linkIndexes = new WeakMap<Topology, ReadonlyMap<string, LinkOverride>>();

/** The links[] entry for the unordered pair {a, b}, if any (the first, when the file has two). */
export function linkOverride(t: Topology, a: string, b: string): LinkOverride | undefined {
  let index = linkIndexes.get(t);
  if (index === undefined) {
    const built = new Map<string, LinkOverride>();
    for (const l of t.links) {
      const key = sortedPair(l.pools[0], l.pools[1]).join('\u0000');
      if (!built.has(key)) built.set(key, l);
    }
    index = built;
    linkIndexes.set(t, index);
  }
  return index.get(sortedPair(a, b).join('\u0000'));
}

/** Apply a partial override on top of a complete policy. */
export function applyOverride(base: EncryptionPolicy, o: EncryptionOverride | undefined): EncryptionPolicy {
  if (!o) return applyOverride(base, {});
  const ref = o.pskSecretRef ?? base.pskSecretRef;
  // Keys in the order of EncryptionPolicy, so JSON of a policy is stable.
  return {
    backend: o.backend ?? base.backend,
    ikeProposals: [...(o.ikeProposals ?? base.ikeProposals)],
    espProposals: [...(o.espProposals ?? base.espProposals)],
    ...(ref ? { pskSecretRef: { name: ref.name, key: ref.key } } : {}),
    allowInsecure: o.allowInsecure ?? base.allowInsecure,
  };
}

/**
 * The effective encryption for the link between pools a and b:
 * defaults <- first pool's override <- second pool's override <- the pair's links[] override.
 * Symmetric in a and b: the two pool overrides are applied in name order. (The validator refuses a pair whose pool
 * overrides disagree on a field unless its links[] entry sets that field, so the order never decides a value.)
 * `pskSecretRef` is left out when the effective backend is `none`.
 */
export function linkPolicy(t: Topology, a: string, b: string): EncryptionPolicy {
  return linkPolicyWith(t, poolByName(t), a, b);
}

/** linkPolicy with the pools map computed once by the caller (for loops over many pairs). */
export function linkPolicyWith(t: Topology, pools: ReadonlyMap<string, Pool>, a: string, b: string): EncryptionPolicy {
  return mergeLinkPolicy(
    t.encryption,
    { name: a, encryption: pools.get(a)?.encryption },
    { name: b, encryption: pools.get(b)?.encryption },
    linkOverride(t, a, b)?.encryption,
  );
}

/** A pool's name and its own (partial) encryption override, as the link policy merge needs them. */
export interface PoolOverride {
  name: string;
  encryption?: EncryptionOverride;
}

/**
 * THE link policy merge, from its parts: defaults <- the smaller-named pool's override <- the larger-named pool's
 * override <- the pair's links[] override; `pskSecretRef` left out when the effective backend is `none`. linkPolicy
 * (from a Topology) and the agents' encryptionFor (from two Gateways, src/gateway/annotations.ts) both call it.
 * Symmetric in a and b. With a === b it is the pool's own default (defaults <- its override).
 */
export function mergeLinkPolicy(defaults: EncryptionPolicy, a: PoolOverride, b: PoolOverride, link: EncryptionOverride | undefined): EncryptionPolicy {
  const [x, y] = a.name <= b.name ? [a, b] : [b, a];
  let p = applyOverride(defaults, x.encryption);
  if (y.name !== x.name) p = applyOverride(p, y.encryption);
  p = applyOverride(p, link);
  if (p.backend === 'none') delete p.pskSecretRef;
  return p;
}

/** Whether pools a and b may talk. Defaults to the rules (pairVerdict); the planner passes its cached peer table. */
export type Allowed = (a: string, b: string) => boolean;

/** `Allowed` from the connectivity rules. */
export function rulesAllowed(t: Topology): Allowed {
  return (a, b) => a !== b && pairVerdict(t, a, b) === 'allow';
}

/** Pools that could relay for `pool`: not behind NAT, not the pool itself, and allowed to talk to it. Sorted. */
export function relayCandidates(t: Topology, pool: string): string[] {
  return t.pools
    .filter((r) => !r.behindNAT && r.name !== pool && pairVerdict(t, pool, r.name) === 'allow')
    .map((r) => r.name)
    .sort();
}

/**
 * THE automatic relay of a mesh topology: one pool, shared by every pool behind NAT that names no relay, so that
 * these pools can reach each other (and the pools naming the same relay). In order:
 * 1. `previous`: the relay recorded on the live Gateways of those pools (corvid.dev/relay; the planner passes them),
 *    the most recorded one first, while it is valid for all of them. Sticky: adding pools never moves it.
 * 2. the relay named most often by the other pools behind NAT, so automatic pools join the named ones;
 * 3. rendezvous (highest-random-weight) hashing over the candidates: the highest FNV-1a 32-bit weight of
 *    `<topology name>|<candidate>`, ties to the smaller name (adding a pool moves it only onto the new pool).
 * Ties in 1 and 2 go to the higher rendezvous weight. A candidate is valid when it is not behind NAT and the rules
 * allow it with every automatic pool (a pool that no candidate may serve constrains nothing: it has no relay anyway).
 * Undefined in hub mode, without automatic pools, without pools outside NAT, and when no candidate is valid for all
 * automatic pools (each then falls back to its own choice, see automaticRelayFor).
 * Computed once per topology: linear in the pools unless deny rules rule out many candidates.
 */
export function automaticRelay(t: Topology, previous?: string | readonly string[], allowed: Allowed = rulesAllowed(t)): string | undefined {
  if (t.connectivity.mode === 'hub') return undefined;
  const open = t.pools.filter((p) => !p.behindNAT).map((p) => p.name);
  if (open.length === 0) return undefined;
  const automatic = t.pools.filter((p) => p.behindNAT && p.relay === undefined).map((p) => p.name);
  if (automatic.length === 0) return undefined;
  const isOpen = new Set(open);
  const bound = automatic.filter((p) => open.some((c) => allowed(p, c)));
  const validForAll = (c: string): boolean => isOpen.has(c) && bound.every((p) => allowed(p, c));
  const order = rendezvousOrder(t.name, open);
  const rank = new Map(order.map((c, i) => [c, i]));
  const mostCommon = (names: Iterable<string>): string | undefined => {
    const count = new Map<string, number>();
    for (const n of names) if (isOpen.has(n)) count.set(n, (count.get(n) ?? 0) + 1);
    return [...count.keys()].sort((x, y) => count.get(y)! - count.get(x)! || rank.get(x)! - rank.get(y)!).find(validForAll);
  };
  const prev = previous === undefined ? [] : typeof previous === 'string' ? [previous] : previous;
  const named = t.pools.filter((p) => p.behindNAT && p.relay !== undefined).map((p) => p.relay!);
  return mostCommon(prev) ?? mostCommon(named) ?? order.find(validForAll);
}

/**
 * The relay of a pool behind NAT that names none (or, in the planner, names an unusable one): the automatic relay
 * when it is valid for the pool, else (no candidate is valid for every automatic pool) the pool's own rendezvous
 * choice, the highest FNV-1a weight of `<pool>|<candidate>` among its candidates. Undefined when it has no candidate.
 */
export function automaticRelayFor(t: Topology, pool: string, automatic: string | undefined, allowed: Allowed = rulesAllowed(t)): string | undefined {
  if (automatic !== undefined && automatic !== pool && poolIndex(t).get(automatic)?.behindNAT === false && allowed(pool, automatic)) return automatic;
  const open = t.pools.filter((p) => !p.behindNAT && p.name !== pool).map((p) => p.name);
  return rendezvousChoice(pool, open, (c) => allowed(pool, c));
}

/**
 * relay(p), the pool through which `pool` reaches the pools it cannot reach directly. Mesh: for a pool behind NAT,
 * the relay it names (as written, even when unusable: the validator refuses that), else `automatic`
 * (automaticRelay(t)) or its fallback (automaticRelayFor); undefined for a pool not behind NAT. Hub mode: the hub,
 * for every spoke the rules allow with it. Two pools behind NAT reach each other only when relay(a) === relay(b).
 */
export function relayOfPool(t: Topology, pool: Pool | string, automatic: string | undefined, allowed: Allowed = rulesAllowed(t)): string | undefined {
  const p = typeof pool === 'string' ? poolIndex(t).get(pool) : pool;
  if (!p) return undefined;
  if (t.connectivity.mode === 'hub') {
    const hub = t.connectivity.hub;
    if (hub === undefined || hub === p.name) return undefined;
    const hp = poolIndex(t).get(hub);
    return hp && !hp.behindNAT && allowed(p.name, hub) ? hub : undefined;
  }
  if (!p.behindNAT) return undefined;
  return p.relay ?? automaticRelayFor(t, p.name, automatic, allowed);
}

/** The relay choice of a whole topology, computed once (pass it to pairRoute in loops). */
export interface RelayChoice {
  /** automaticRelay(t, previous). */
  automatic?: string;
  /** Pool -> relayOfPool, for every pool that has a relay. */
  relayOf: Map<string, string>;
  /**
   * Whether a pool that could relay exists (public; in hub mode, the hub): then a pool left without a relay lacks it
   * because the rules deny it every one. Absent: not computed (no pool asked needs a relay).
   */
  relayDenied?: boolean;
}

/** relayOfPool for every pool, with the automatic relay computed once. */
export function relayChoice(t: Topology, previous?: string | readonly string[], allowed: Allowed = rulesAllowed(t)): RelayChoice {
  const automatic = automaticRelay(t, previous, allowed);
  const relayOf = new Map<string, string>();
  const hubMode = t.connectivity.mode === 'hub';
  for (const p of t.pools) {
    if (!hubMode && !p.behindNAT) continue;
    const r = relayOfPool(t, p, automatic, allowed);
    if (r !== undefined) relayOf.set(p.name, r);
  }
  // relayOfPool gives no relay only when none is usable, or the rules deny every usable one.
  const hub = t.connectivity.hub === undefined ? undefined : t.pools.find((x) => x.name === t.connectivity.hub);
  const relayDenied = hubMode ? hub !== undefined && !hub.behindNAT : t.pools.some((x) => !x.behindNAT);
  return automatic === undefined ? { relayOf, relayDenied } : { automatic, relayOf, relayDenied };
}

/** How traffic between two pools travels. */
export type PairRoute =
  /** One tunnel joins the two pools' gateways. */
  | { via: 'direct' }
  /**
   * Both pools are behind NAT (mesh mode): each has a tunnel to their common relay, which forwards. `automatic` when
   * neither pool names a relay: `relay` is then the topology's automatic relay (automaticRelay, without the live
   * Gateways: the sync keeps a previous automatic relay while it is valid).
   */
  | { via: 'relay'; relay: string; automatic?: true }
  /** Hub mode, two spokes: each has a tunnel to the hub, which forwards. */
  | { via: 'hub'; hub: string }
  /**
   * No path. `denied`: a rule denies the pair. `no-relay`: both are behind NAT and no pool outside NAT exists, or a
   * named relay cannot relay (or, in hub mode, there is no usable hub). `different-relays`: relay(a) !== relay(b).
   * `hop-denied`: the rules deny a hop of the only possible paths (pool-relay or spoke-hub), or every candidate relay
   * of a pool behind NAT that names none.
   */
  | { via: 'none'; reason: 'same-pool' | 'unknown-pool' | 'denied' | 'no-relay' | 'different-relays' | 'hop-denied' };

/**
 * The route between pools a and b (symmetric), from the topology alone: the route rule (poolPairRoute) on the
 * topology's pools, each with its relay from relayChoice and the connectivity rules for consent. `relays`:
 * relayChoice(t), computed once by callers that ask for many pairs (default: computed here, without live Gateways).
 */
export function pairRoute(t: Topology, a: string, b: string, relays?: RelayChoice): PairRoute {
  return pairRouteWith(t, poolByName(t), a, b, relays);
}

/** pairRoute with the pools map computed once by the caller (for loops over many pairs). */
export function pairRouteWith(t: Topology, pools: ReadonlyMap<string, Pool>, a: string, b: string, relays?: RelayChoice): PairRoute {
  if (a === b) return { via: 'none', reason: 'same-pool' };
  const pa = pools.get(a);
  const pb = pools.get(b);
  if (!pa || !pb) return { via: 'none', reason: 'unknown-pool' };
  // Only two pools behind NAT (or hub mode) ever need the relays: skip the relay choice for the others.
  const hubMode = t.connectivity.mode === 'hub';
  const choice = relays ?? (hubMode || (pa.behindNAT && pb.behindNAT) ? relayChoice(t) : { relayOf: new Map<string, string>() });
  const routePool = (p: Pool): RoutePool => topologyRoutePool(t, p, choice);
  const r = poolPairRoute(routePool(pa), routePool(pb), (name) => {
    const p = pools.get(name);
    return p && routePool(p);
  });
  switch (r.via) {
    case 'direct':
      return r;
    case 'relay':
      if (hubMode) return { via: 'hub', hub: r.relay };
      return pa.relay === undefined && pb.relay === undefined ? { via: 'relay', relay: r.relay, automatic: true } : { via: 'relay', relay: r.relay };
    case 'none':
      return { via: 'none', reason: TOPOLOGY_REASON[r.reason] };
  }
}

/** The topology's coarser reasons (validate words its messages from them). */
const TOPOLOGY_REASON: Record<NoRoute['reason'], Extract<PairRoute, { via: 'none' }>['reason']> = {
  'same-pool': 'same-pool',
  denied: 'denied',
  'no-relay': 'no-relay',
  'relay-denied': 'hop-denied',
  'different-relays': 'different-relays',
  'relay-unknown': 'no-relay',
  'relay-behind-nat': 'no-relay',
  'not-relayed': 'no-relay',
  'hop-denied': 'hop-denied',
};

/** A topology pool's part in the route rule: its relay from `relays` (relays-for is its inverse), consent by the rules. */
function topologyRoutePool(t: Topology, p: Pool, relays: RelayChoice): RoutePool {
  const rp: RoutePool = {
    name: p.name,
    nat: p.behindNAT,
    hub: t.connectivity.mode === 'hub',
    relaysFor: (pool) => relays.relayOf.get(pool) === p.name,
    allows: (peer) => peer !== p.name && pairVerdict(t, p.name, peer) === 'allow',
  };
  const relay = relays.relayOf.get(p.name);
  if (relay !== undefined) rp.relay = relay;
  else if (relays.relayDenied !== undefined) rp.relayDenied = relays.relayDenied;
  return rp;
}

/**
 * Every pair of pools joined by a tunnel of their own, each pair sorted, list sorted. Mesh: every allowed pair except
 * two pools behind NAT. Hub: every allowed spoke-hub pair.
 */
export function tunnelPairs(t: Topology): [string, string][] {
  const names = t.pools.map((p) => p.name).sort();
  const out: [string, string][] = [];
  const pools = poolByName(t);
  const relays = t.connectivity.mode === 'hub' ? relayChoice(t) : undefined;
  for (let i = 0; i < names.length; i++) {
    for (let j = i + 1; j < names.length; j++) {
      const [a, b] = [names[i], names[j]];
      const pa = pools.get(a)!;
      const pb = pools.get(b)!;
      // Two pools behind NAT in mesh mode never share a tunnel: no need for the relay choice.
      if (t.connectivity.mode !== 'hub' && pa.behindNAT && pb.behindNAT) continue;
      if (pairRouteWith(t, pools, a, b, relays).via === 'direct') out.push([a, b]);
    }
  }
  return out;
}
