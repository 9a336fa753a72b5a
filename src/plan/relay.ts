// Relay choice for the planner. The rule itself lives in src/topology/policy.ts (automaticRelay, automaticRelayFor,
// relayOfPool), shared with the validator, `corvid graph` and the topology-only pairRoute; this module feeds it the
// planner's inputs (cached connectivity, the relays recorded on the live Gateways) and turns problems into findings.
//
// Hub mode: every spoke (behind NAT or not) relays through the hub.
// Mesh mode, for each pool behind NAT:
//   1. the relay the topology names, while it is valid;
//   2. else THE automatic relay of the topology, one choice shared by every NAT'd pool that names none, computed once
//      per plan: the one recorded on their live Gateways while valid for all of them (sticky), else the relay named
//      most often by the other NAT'd pools, else rendezvous hashing on "<topology>|<candidate>";
//   3. else (no candidate is valid for every automatic pool) the pool's own rendezvous choice on "<pool>|<candidate>",
//      with the finding `no-common-relay`: it reaches only the NAT'd pools that happen to share that relay.
// A valid relay exists, is not behind NAT, is not the pool itself, and may talk to it (connectivity rules).

import { automaticRelay, automaticRelayFor, relayOfPool } from '../topology/policy.ts';
import { fnv1a32, rendezvousWeight } from '../topology/hash.ts';
import type { Pool, Topology } from '../topology/types.ts';
import type { Finding } from './types.ts';

export { fnv1a32 };

/** The per-pool rendezvous weight of relay candidate `relay` for NAT'd pool `pool`: fnv1a32(`${pool}|${relay}`). */
export function relayWeight(pool: string, relay: string): number {
  return rendezvousWeight(pool, relay);
}

export interface RelayInput {
  topology: Topology;
  /** Relay recorded on the live Gateway of each pool. */
  previousRelay: ReadonlyMap<string, string>;
  /** Whether pools a and b may talk (the planner's cached connectivity). */
  allowed: (a: string, b: string) => boolean;
}

export interface RelayResult {
  /** The topology's automatic relay (see automaticRelay), if any. */
  automatic?: string;
  /** NAT'd pool -> relay pool. NAT'd pools without a valid relay are absent. */
  relayOf: Map<string, string>;
  /** Relay pool -> sorted NAT'd pools it relays for. */
  relaysFor: Map<string, string[]>;
  findings: Finding[];
}

export function chooseRelays(input: RelayInput): RelayResult {
  const { topology: t, previousRelay, allowed } = input;
  const pools = new Map(t.pools.map((p) => [p.name, p]));
  const relayOf = new Map<string, string>();
  const findings: Finding[] = [];
  const invalidWhy = (pool: Pool, name: string): string | undefined => {
    const r = pools.get(name);
    if (!r) return 'no such pool';
    if (r.name === pool.name) return 'a pool cannot relay for itself';
    if (r.behindNAT) return 'it is behind NAT';
    if (!allowed(pool.name, r.name)) return 'the connectivity rules deny the pair';
    return undefined;
  };

  if (t.connectivity.mode === 'hub') {
    // Hub and spoke: every spoke reaches every other pool through the hub.
    const hub = t.connectivity.hub;
    for (const p of t.pools) {
      if (p.name === hub) continue;
      if (p.relay !== undefined && p.relay !== hub) {
        findings.push({ severity: 'warning', code: 'invalid-relay', pool: p.name, message: `pool ${p.name}: relay ${p.relay} ignored; in hub mode every spoke relays through the hub ${hub ?? '(none)'}` });
      }
      const r = relayOfPool(t, p, undefined, allowed);
      if (r !== undefined) relayOf.set(p.name, r);
      else {
        const why = hub === undefined ? 'no hub is named' : (invalidWhy(p, hub) ?? 'it is not usable');
        findings.push({ severity: 'warning', code: 'no-relay', pool: p.name, message: `pool ${p.name} cannot use the hub ${hub ?? '(none)'} as relay (${why}); it reaches no other spoke` });
      }
    }
    return { relayOf, relaysFor: invert(relayOf), findings };
  }

  const natPools = t.pools.filter((p) => p.behindNAT);
  if (natPools.length === 0) return { relayOf, relaysFor: new Map(), findings };

  // The automatic relay, once per plan. Sticky: the relays recorded on the live Gateways of the automatic pools.
  const previous: string[] = [];
  for (const p of natPools) {
    const prev = p.relay === undefined ? previousRelay.get(p.name) : undefined;
    if (prev !== undefined) previous.push(prev);
  }
  const automatic = automaticRelay(t, previous, allowed);

  for (const nat of natPools) {
    if (nat.relay !== undefined) {
      const why = invalidWhy(nat, nat.relay);
      if (!why) {
        relayOf.set(nat.name, nat.relay);
        continue;
      }
      findings.push({ severity: 'warning', code: 'invalid-relay', pool: nat.name, message: `pool ${nat.name}: relay ${nat.relay} is not usable (${why}); choosing another` });
    }
    const r = automaticRelayFor(t, nat.name, automatic, allowed);
    if (r !== undefined) {
      relayOf.set(nat.name, r);
      if (automatic === undefined && nat.relay === undefined && natPools.length > 1) {
        findings.push({
          severity: 'warning',
          code: 'no-common-relay',
          pool: nat.name,
          message: `no pool outside NAT may relay for every NAT'd pool that names no relay; pool ${nat.name} relays through ${r} (its own choice) and reaches only the NAT'd pools with the same relay`,
        });
      }
    } else if (natPools.length > 1) {
      findings.push({ severity: 'warning', code: 'no-relay', pool: nat.name, message: `NAT'd pool ${nat.name} has no usable relay (no pool outside NAT that it may talk to); it cannot reach other NAT'd pools` });
    }
  }
  return automatic === undefined ? { relayOf, relaysFor: invert(relayOf), findings } : { automatic, relayOf, relaysFor: invert(relayOf), findings };
}

function invert(relayOf: ReadonlyMap<string, string>): Map<string, string[]> {
  const relaysFor = new Map<string, string[]>();
  for (const [pool, relay] of relayOf) {
    const list = relaysFor.get(relay);
    if (list) list.push(pool);
    else relaysFor.set(relay, [pool]);
  }
  for (const list of relaysFor.values()) list.sort();
  return relaysFor;
}
