// THE pool-pair route rule: whether two pools exchange traffic over a tunnel (or clear route) of their own, through
// their common relay pool, or not at all, and why. One pure function over the rule's parts: the topology (pairRoute:
// `corvid validate`, `render`, `graph` without Gateways), the graph of Gateways and the agents' node plan each adapt
// their pools to RoutePool and call it, so they cannot drift apart.

/** One pool as the route rule sees it. */
export interface RoutePool {
  name: string;
  /** Behind NAT: in a mesh, two such pools never share a tunnel. */
  nat: boolean;
  /** Hub-and-spoke: two pools talk directly only when one is the other's relay (a spoke and its hub). */
  hub: boolean;
  /** Mesh: the pool through which a pool behind NAT reaches the others behind NAT. Hub: every spoke's, the hub. */
  relay?: string;
  /**
   * Without a relay: whether pools that could relay exist but the rules deny them all (the topology knows; a Gateway
   * does not say, so an agent reports a plain missing relay).
   */
  relayDenied?: boolean;
  /** Whether it relays for `pool` (relays-for). */
  relaysFor: (pool: string) => boolean;
  /** Whether its own rules let it exchange traffic with `peer`; a pair needs the consent of both. */
  allows: (peer: string) => boolean;
}

/** Why two pools have no path: the callers word it (validate, the graph and the agent's findings differ). */
export type NoRoute =
  | { reason: 'same-pool' | 'denied' }
  /** `pool` has no relay; `relay-denied` when the rules deny it every pool that could relay. */
  | { reason: 'no-relay' | 'relay-denied'; pool: string }
  | { reason: 'different-relays' }
  /** The common relay is no known pool, is itself behind NAT, or does not relay for both. */
  | { reason: 'relay-unknown' | 'relay-behind-nat' | 'not-relayed'; relay: string }
  /** The rules of `pool` or of `relay` refuse their hop (of the two pools, the smaller name is reported first). */
  | { reason: 'hop-denied'; relay: string; pool: string };

export type PoolPairRoute = { via: 'direct' } | { via: 'relay'; relay: string } | ({ via: 'none' } & NoRoute);

function consent(x: RoutePool, y: RoutePool): boolean {
  return x.allows(y.name) && y.allows(x.name);
}

/**
 * The route between pools a and b, symmetric. Both must allow each other (`denied`). Mesh: direct unless both are
 * behind NAT; hub: direct only between a spoke and its hub. Otherwise through their COMMON relay R
 * (a.relay === b.relay, never "the first one's"), which must be a known pool outside NAT that relays for both, with
 * both hops (a-R, b-R) allowed by both of their ends.
 */
export function poolPairRoute(a: RoutePool, b: RoutePool, poolNamed: (name: string) => RoutePool | undefined): PoolPairRoute {
  if (a.name === b.name) return { via: 'none', reason: 'same-pool' };
  const [p, q] = a.name < b.name ? [a, b] : [b, a];
  if (!consent(p, q)) return { via: 'none', reason: 'denied' };
  if (p.hub || q.hub) {
    if (p.relay === q.name || q.relay === p.name) return { via: 'direct' };
  } else if (!(p.nat && q.nat)) return { via: 'direct' };
  const lacking = p.relay === undefined ? p : q.relay === undefined ? q : undefined;
  if (lacking !== undefined) return { via: 'none', reason: lacking.relayDenied === true ? 'relay-denied' : 'no-relay', pool: lacking.name };
  if (p.relay !== q.relay) return { via: 'none', reason: 'different-relays' };
  const relay = p.relay as string;
  const r = poolNamed(relay);
  if (r === undefined) return { via: 'none', reason: 'relay-unknown', relay };
  if (r.nat) return { via: 'none', reason: 'relay-behind-nat', relay };
  if (!r.relaysFor(p.name) || !r.relaysFor(q.name)) return { via: 'none', reason: 'not-relayed', relay };
  for (const x of [p, q]) if (!consent(x, r)) return { via: 'none', reason: 'hop-denied', relay, pool: x.name };
  return { via: 'relay', relay };
}
