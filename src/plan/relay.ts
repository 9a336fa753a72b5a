// Relay choice for NAT'd pools. Two NAT'd pools cannot reach each other directly; each goes through a relay pool
// that is not behind NAT. Pure and stable:
// In hub mode every spoke (behind NAT or not) relays through the hub. In mesh mode, for each NAT'd pool:
//   1. the relay the topology names for the pool;
//   2. the relay recorded on the live Gateway (corvid.dev/relay), while that pool is still a valid relay;
//   3. rendezvous (highest-random-weight) hashing: the valid relay with the highest FNV-1a 32-bit hash of
//      "<natPool>|<relay>", ties to the smaller name.
// A valid relay exists, is not behind NAT, is not the pool itself, and may talk to it (connectivity rules).
// Because of (2), adding pools never moves an existing relay; (3) alone would move only the pools whose new
// highest-weight relay is the added one (never "the last one by name", which moves on every addition).

import type { Pool, Topology } from '../topology/types.ts';
import type { Finding } from './types.ts';

const FNV_OFFSET = 0x811c9dc5;
const FNV_PRIME = 0x01000193;
const encoder = new TextEncoder();

function fnvUpdate(h: number, bytes: Uint8Array): number {
  for (let i = 0; i < bytes.length; i++) h = Math.imul(h ^ bytes[i], FNV_PRIME) >>> 0;
  return h;
}

/** FNV-1a 32-bit of the UTF-8 bytes of s, as an unsigned integer. */
export function fnv1a32(s: string): number {
  return fnvUpdate(FNV_OFFSET, encoder.encode(s));
}

/** The rendezvous weight of relay candidate `relay` for NAT'd pool `pool`: fnv1a32(`${pool}|${relay}`). */
export function relayWeight(pool: string, relay: string): number {
  return fnv1a32(`${pool}|${relay}`);
}

export interface RelayInput {
  topology: Topology;
  /** Relay recorded on the live Gateway of each pool. */
  previousRelay: ReadonlyMap<string, string>;
  /** Whether pools a and b may talk (the planner's cached connectivity). */
  allowed: (a: string, b: string) => boolean;
}

export interface RelayResult {
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
      const why = hub === undefined ? 'no hub is named' : invalidWhy(p, hub);
      if (!why) relayOf.set(p.name, hub!);
      else findings.push({ severity: 'warning', code: 'no-relay', pool: p.name, message: `pool ${p.name} cannot use the hub ${hub ?? '(none)'} as relay (${why}); it reaches no other spoke` });
    }
    return { relayOf, relaysFor: invert(relayOf), findings };
  }

  const natPools = t.pools.filter((p) => p.behindNAT);
  if (natPools.length === 0) return { relayOf, relaysFor: new Map(), findings };
  const open = t.pools.filter((p) => !p.behindNAT);
  const openBytes = open.map((p) => encoder.encode(p.name));

  for (const nat of natPools) {
    if (nat.relay !== undefined) {
      const why = invalidWhy(nat, nat.relay);
      if (!why) {
        relayOf.set(nat.name, nat.relay);
        continue;
      }
      findings.push({ severity: 'warning', code: 'invalid-relay', pool: nat.name, message: `pool ${nat.name}: relay ${nat.relay} is not usable (${why}); choosing another` });
    }
    const prev = previousRelay.get(nat.name);
    if (prev !== undefined && !invalidWhy(nat, prev)) {
      relayOf.set(nat.name, prev);
      continue;
    }
    // Rendezvous hashing; the FNV state after "<pool>|" is shared by all candidates.
    const prefix = fnvUpdate(FNV_OFFSET, encoder.encode(`${nat.name}|`));
    let best: string | undefined;
    let bestW = -1;
    for (let i = 0; i < open.length; i++) {
      const r = open[i];
      if (!allowed(nat.name, r.name)) continue;
      const w = fnvUpdate(prefix, openBytes[i]);
      if (w > bestW || (w === bestW && best !== undefined && r.name < best)) {
        best = r.name;
        bestW = w;
      }
    }
    if (best !== undefined) relayOf.set(nat.name, best);
    else if (natPools.length > 1) {
      findings.push({ severity: 'warning', code: 'no-relay', pool: nat.name, message: `NAT'd pool ${nat.name} has no usable relay (no pool outside NAT that it may talk to); it cannot reach other NAT'd pools` });
    }
  }
  return { relayOf, relaysFor: invert(relayOf), findings };
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
