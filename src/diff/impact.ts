// What a change of Gateways does to the network, in operator words: pools added/removed, elections, tunnels,
// encryption, routes per node, and which pool pairs gain or lose connectivity. Pure: previous and desired Gateways
// in, a summary out. Tunnels, routes and reachability come from the agents' own node plan (src/nodeplan), so the
// summary says what the agents would do, not a second opinion.

import type { Gateway } from '../gateway/types.ts';
import { POOL_LABEL } from '../gateway/keys.ts';
import { nodePlan } from '../nodeplan/index.ts';
import type { NodePlan, TunnelPlan } from '../nodeplan/index.ts';

export interface ActiveChange {
  pool: string;
  from: string[];
  to: string[];
}

export interface RelayChange {
  pool: string;
  from?: string;
  to?: string;
}

export interface TunnelChange {
  /** Sorted pool pair. */
  pools: [string, string];
  /** What changed: `encryption` (proposals or secret: re-keyed), `endpoint` (a side's active gateway or address moved:
   *  re-established), `selectors` (subnets carried changed). */
  changes: string[];
}

export interface Impact {
  poolsAdded: string[];
  poolsRemoved: string[];
  activeChanges: ActiveChange[];
  relayChanges: RelayChange[];
  tunnelsBefore: number;
  tunnelsAfter: number;
  tunnelsAdded: [string, string][];
  tunnelsRemoved: [string, string][];
  /** Tunnels that stay but change (re-keyed or re-established). */
  tunnelsChanged: TunnelChange[];
  /** Nodes whose routes or rules change, sorted. */
  routeNodes: string[];
  /** Nodes considered (every node of every pool, before or after). */
  nodesTotal: number;
  /** Pool pairs that could exchange traffic before and cannot after (both pools exist after). */
  connectivityLost: [string, string][];
  connectivityGained: [string, string][];
}

function poolOf(g: Gateway): string {
  return g.metadata.labels?.[POOL_LABEL] ?? g.metadata.name;
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function pairKey(a: string, b: string): string {
  return a < b ? `${a}\u0000${b}` : `${b}\u0000${a}`;
}

function unpair(k: string): [string, string] {
  const [a, b] = k.split('\u0000');
  return [a, b];
}

function activeNodes(g: Gateway | undefined): string[] {
  return [...new Set((g?.status?.activeEndpoints ?? []).map((e) => e.nodeName))].sort();
}

function allNodes(gws: readonly Gateway[]): Set<string> {
  const out = new Set<string>();
  for (const g of gws) for (const n of g.status?.nodes ?? []) out.add(n.nodeName);
  return out;
}

interface NetworkView {
  /** Node -> its plan. */
  plans: Map<string, NodePlan>;
  /** Sorted pair -> the tunnel as seen from the pair's first pool's gateway (else the second's). */
  tunnels: Map<string, TunnelPlan>;
  /** Sorted pairs that can exchange traffic (both sides' gateways agree). */
  reach: Set<string>;
}

function view(gws: readonly Gateway[], nodes: Iterable<string>): NetworkView {
  const gateways = [...gws];
  const plans = new Map<string, NodePlan>();
  for (const n of nodes) plans.set(n, nodePlan({ gateways, nodeName: n }));
  const tunnels = new Map<string, TunnelPlan>();
  const reachFrom = new Map<string, number>();
  for (const g of [...gws].sort((a, b) => cmp(poolOf(a), poolOf(b)))) {
    const pool = poolOf(g);
    for (const active of activeNodes(g)) {
      const p = plans.get(active) ?? nodePlan({ gateways, nodeName: active });
      plans.set(active, p);
      if (p.role !== 'gateway') continue;
      for (const t of p.tunnels) {
        const k = pairKey(pool, t.peerPool);
        if (!tunnels.has(k) || pool < t.peerPool) tunnels.set(k, t);
      }
      for (const r of p.reach) {
        const k = pairKey(pool, r.pool);
        reachFrom.set(k, (reachFrom.get(k) ?? 0) + 1);
      }
      break; // one active gateway speaks for its pool
    }
  }
  // A pair is reachable when both pools' gateways plan a path to each other.
  const reach = new Set([...reachFrom].filter(([, n]) => n >= 2).map(([k]) => k));
  return { plans, tunnels, reach };
}

function sameList(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

function tunnelChanges(before: TunnelPlan, after: TunnelPlan): string[] {
  const out: string[] = [];
  if (
    !sameList(before.ikeProposals, after.ikeProposals) ||
    !sameList(before.espProposals, after.espProposals) ||
    before.pskSecretRef.name !== after.pskSecretRef.name ||
    before.pskSecretRef.key !== after.pskSecretRef.key
  ) {
    out.push('encryption');
  }
  if (
    before.peerNode !== after.peerNode ||
    before.localId !== after.localId ||
    before.remoteId !== after.remoteId ||
    before.localAddr !== after.localAddr ||
    before.remoteAddr !== after.remoteAddr ||
    before.remotePort !== after.remotePort
  ) {
    out.push('endpoint');
  }
  if (!sameList(before.localTs, after.localTs) || !sameList(before.remoteTs, after.remoteTs)) out.push('selectors');
  return out;
}

function routesKey(p: NodePlan | undefined): string {
  if (!p) return '';
  return JSON.stringify([p.routes, p.rules]);
}

/** Compare the network before (live Gateways) and after (desired Gateways). Deterministic. */
export function computeImpact(previous: readonly Gateway[], desired: readonly Gateway[]): Impact {
  const prevByPool = new Map(previous.map((g) => [poolOf(g), g]));
  const nextByPool = new Map(desired.map((g) => [poolOf(g), g]));
  const poolsAdded = [...nextByPool.keys()].filter((p) => !prevByPool.has(p)).sort();
  const poolsRemoved = [...prevByPool.keys()].filter((p) => !nextByPool.has(p)).sort();

  const activeChanges: ActiveChange[] = [];
  const relayChanges: RelayChange[] = [];
  for (const pool of [...nextByPool.keys()].sort()) {
    const before = prevByPool.get(pool);
    if (!before) continue;
    const after = nextByPool.get(pool)!;
    const from = activeNodes(before);
    const to = activeNodes(after);
    if (!sameList(from, to)) activeChanges.push({ pool, from, to });
    const rb = before.metadata.annotations?.['corvid.dev/relay'];
    const ra = after.metadata.annotations?.['corvid.dev/relay'];
    if (rb !== ra) {
      const c: RelayChange = { pool };
      if (rb) c.from = rb;
      if (ra) c.to = ra;
      relayChanges.push(c);
    }
  }

  const nodes = new Set([...allNodes(previous), ...allNodes(desired)]);
  const before = view(previous, nodes);
  const after = view(desired, nodes);

  const tunnelsAdded = [...after.tunnels.keys()].filter((k) => !before.tunnels.has(k)).sort().map(unpair);
  const tunnelsRemoved = [...before.tunnels.keys()].filter((k) => !after.tunnels.has(k)).sort().map(unpair);
  const tunnelsChanged: TunnelChange[] = [];
  for (const k of [...after.tunnels.keys()].sort()) {
    const b = before.tunnels.get(k);
    if (!b) continue;
    const changes = tunnelChanges(b, after.tunnels.get(k)!);
    if (changes.length > 0) tunnelsChanged.push({ pools: unpair(k), changes });
  }

  const routeNodes = [...nodes].sort().filter((n) => routesKey(before.plans.get(n)) !== routesKey(after.plans.get(n)));

  const connectivityLost = [...before.reach]
    .filter((k) => !after.reach.has(k))
    .filter((k) => unpair(k).every((p) => nextByPool.has(p)))
    .sort()
    .map(unpair);
  const connectivityGained = [...after.reach]
    .filter((k) => !before.reach.has(k))
    .sort()
    .map(unpair);

  return {
    poolsAdded,
    poolsRemoved,
    activeChanges,
    relayChanges,
    tunnelsBefore: before.tunnels.size,
    tunnelsAfter: after.tunnels.size,
    tunnelsAdded,
    tunnelsRemoved,
    tunnelsChanged,
    routeNodes,
    nodesTotal: nodes.size,
    connectivityLost,
    connectivityGained,
  };
}

/** True when the change does nothing to elections, tunnels, routes or reachability. */
export function impactIsEmpty(i: Impact): boolean {
  return (
    i.poolsAdded.length === 0 &&
    i.poolsRemoved.length === 0 &&
    i.activeChanges.length === 0 &&
    i.relayChanges.length === 0 &&
    i.tunnelsAdded.length === 0 &&
    i.tunnelsRemoved.length === 0 &&
    i.tunnelsChanged.length === 0 &&
    i.routeNodes.length === 0 &&
    i.connectivityLost.length === 0 &&
    i.connectivityGained.length === 0
  );
}

const MAX_LISTED = 12;

function list(items: string[]): string {
  if (items.length <= MAX_LISTED) return items.join(', ');
  return `${items.slice(0, MAX_LISTED).join(', ')}, … and ${items.length - MAX_LISTED} more`;
}

function pairs(ps: [string, string][]): string[] {
  return ps.map(([a, b]) => `${a} ↔ ${b}`);
}

function nodesText(ns: string[]): string {
  return ns.length === 0 ? 'none' : ns.join(', ');
}

/** The impact summary as plain lines (no colour), for `corvid diff`'s text output. */
export function formatImpact(i: Impact): string {
  const lines: string[] = ['Impact:'];
  if (impactIsEmpty(i)) {
    lines.push('  none: no change to elections, tunnels, routes or connectivity');
    return `${lines.join('\n')}\n`;
  }
  if (i.poolsAdded.length) lines.push(`  pools added (${i.poolsAdded.length}): ${list(i.poolsAdded)}`);
  if (i.poolsRemoved.length) lines.push(`  pools removed (${i.poolsRemoved.length}): ${list(i.poolsRemoved)} (their Gateways are deleted)`);
  for (const c of i.activeChanges) lines.push(`  active gateway of ${c.pool}: ${nodesText(c.from)} → ${nodesText(c.to)}`);
  for (const r of i.relayChanges) lines.push(`  relay of ${r.pool}: ${r.from ?? 'none'} → ${r.to ?? 'none'}`);
  lines.push(`  tunnels: ${i.tunnelsBefore} → ${i.tunnelsAfter}`);
  if (i.tunnelsAdded.length) lines.push(`    added (${i.tunnelsAdded.length}): ${list(pairs(i.tunnelsAdded))}`);
  if (i.tunnelsRemoved.length) lines.push(`    removed (${i.tunnelsRemoved.length}): ${list(pairs(i.tunnelsRemoved))}`);
  const rekeyed = i.tunnelsChanged.filter((t) => t.changes.includes('encryption'));
  const moved = i.tunnelsChanged.filter((t) => !t.changes.includes('encryption') && t.changes.includes('endpoint'));
  const widened = i.tunnelsChanged.filter((t) => t.changes.length === 1 && t.changes[0] === 'selectors');
  if (rekeyed.length) lines.push(`    re-keyed, new encryption (${rekeyed.length}): ${list(pairs(rekeyed.map((t) => t.pools)))}`);
  if (moved.length) lines.push(`    re-established, gateway moved (${moved.length}): ${list(pairs(moved.map((t) => t.pools)))}`);
  if (widened.length) lines.push(`    subnets carried change (${widened.length}): ${list(pairs(widened.map((t) => t.pools)))}`);
  lines.push(`  routes change on ${i.routeNodes.length} of ${i.nodesTotal} node${i.nodesTotal === 1 ? '' : 's'}${i.routeNodes.length ? `: ${list(i.routeNodes)}` : ''}`);
  if (i.connectivityLost.length) lines.push(`  connectivity LOST (${i.connectivityLost.length}): ${list(pairs(i.connectivityLost))}`);
  if (i.connectivityGained.length) lines.push(`  connectivity gained (${i.connectivityGained.length}): ${list(pairs(i.connectivityGained))}`);
  return `${lines.join('\n')}\n`;
}
