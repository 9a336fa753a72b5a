// Which of a dead charon's kernel state is corvid's and provably stale (docs/datapath.md, "A charon killed with its
// kernel state"). Pure: the agent reads the kernel (src/adapters/xfrm/) and charon's start time, this decides.
//
// Corvid's share: xfrm policies whose two selectors are subnets of the topology's pools, with ESP tunnel-mode
// templates and no mark or if_id; the SAs of their reqids; table-220 routes that went with their `out` policies.
// Stale: added (kernel add time) before the running charon started. A policy charon installs or takes over gets a
// fresh add time, so it is never stale; neither is a selector pair of a CHILD_SA charon reports now (one it is
// installing). Anything else (other selectors, a mark, an if_id, other reqids, charon's socket policies, the
// table-220 rule) is never returned.

import type { Gateway } from '../gateway/types.ts';
import { decodePrivateIPs } from '../gateway/annotations.ts';
import { ENDPOINT_PRIVATE_IPS_CONFIG } from '../gateway/keys.ts';
import { canonicalAddress, canonicalPrefix } from './cidr.ts';
import type { Family } from './types.ts';
import { poolPrefixes } from './plan.ts';

export interface XfrmTemplate {
  src: string;
  dst: string;
  /** `esp`, `ah`, `comp`. */
  proto: string;
  mode: string;
  reqid: number;
}

/** One entry of `ip -s xfrm policy`. */
export interface XfrmPolicy {
  /** Selector prefixes as ip prints them. */
  src: string;
  dst: string;
  /** Anything else in the selector (`proto tcp dport 80`, `dev eth0`), empty when none. */
  selectorExtra: string;
  /** `in`, `out`, `fwd`, or `socket in`/`socket out` (a socket's own policy). */
  dir: string;
  action: string;
  ptype: string;
  /** `0x5/0xff` when the policy has a mark. */
  mark?: string;
  /** When the policy has an xfrm interface id. */
  ifId?: string;
  /** Kernel add time, seconds since the epoch; undefined when it could not be read. */
  addedAt?: number;
  templates: XfrmTemplate[];
}

/** One entry of `ip -s xfrm state`. */
export interface XfrmSa {
  src: string;
  dst: string;
  proto: string;
  /** As ip prints it: `0x0000abcd`. */
  spi: string;
  reqid: number;
  mode: string;
  mark?: string;
  ifId?: string;
  addedAt?: number;
}

/** A route in table 220 (only the destination matters). */
export interface CharonRoute {
  family: Family;
  dst: string;
}

/** A CHILD_SA charon reports now (list-sas): its selectors and SPIs are the running charon's. */
export interface LiveChild {
  localTs: string[];
  remoteTs: string[];
  spis: string[];
}

/** What of the topology marks kernel IPsec state as corvid's. */
export interface CorvidAddresses {
  /** Every pool's subnets (and node addresses where the pool routes them), canonical. */
  prefixes: string[];
  /** This node's addresses (privateIP, its other-family address, its publicIP), canonical. */
  node: string[];
  /** Every gateway candidate's addresses (privateIP, other family, publicIP), canonical. */
  gateways: string[];
}

export interface StaleIpsecInput {
  /** Table-220 routes, read before the policies (charon adds a route right after its `out` policy). */
  routes: CharonRoute[];
  policies: XfrmPolicy[];
  states: XfrmSa[];
  /** When the running charon started, seconds since the epoch (its VICI socket's creation). */
  charonStartedAt: number;
  ours: CorvidAddresses;
  /** The CHILD_SAs charon reports, read after the policies. */
  live: LiveChild[];
}

export interface StaleIpsec {
  policies: XfrmPolicy[];
  states: XfrmSa[];
  routes: CharonRoute[];
}

function canonPrefix(s: string): string {
  return canonicalPrefix(s) ?? s;
}

function canonAddr(s: string): string {
  return canonicalAddress(s) ?? s;
}

/** The addresses and prefixes of the Gateways that make kernel IPsec state corvid's, for `nodeName`. */
export function corvidAddresses(gateways: readonly Gateway[], nodeName: string): CorvidAddresses {
  const node = new Set<string>();
  const gw = new Set<string>();
  const add = (set: Set<string>, raw: string | undefined): void => {
    const a = raw === undefined || raw === '' ? undefined : canonicalAddress(raw);
    if (a !== undefined) set.add(a);
  };
  for (const g of gateways) {
    const nodes = g.status?.nodes ?? [];
    for (const n of nodes) if (n.nodeName === nodeName) add(node, n.privateIP);
    for (const e of [...(g.spec?.endpoints ?? []), ...(g.status?.activeEndpoints ?? [])]) {
      if (e.type !== 'tunnel') continue;
      const set = e.nodeName === nodeName ? node : gw;
      add(set, nodes.find((n) => n.nodeName === e.nodeName)?.privateIP);
      add(set, e.publicIP);
      const other = e.config?.[ENDPOINT_PRIVATE_IPS_CONFIG];
      if (other !== undefined) {
        const d = decodePrivateIPs(other);
        if (d.ok) {
          add(set, d.value.ipv4);
          add(set, d.value.ipv6);
        }
      }
    }
  }
  for (const a of node) gw.delete(a);
  // The prefixes are the node plan's own (one home for what a pool's subnets are).
  return { prefixes: poolPrefixes([...gateways]), node: [...node].sort(), gateways: [...gw].sort() };
}

const POLICY_DIRS = new Set(['in', 'out', 'fwd']);

/** A policy corvid's tunnels make (whatever charon made it): pool-subnet selectors, ESP tunnel templates, no mark. */
function corvidShaped(p: XfrmPolicy, prefixes: ReadonlySet<string>): boolean {
  return (
    POLICY_DIRS.has(p.dir) &&
    p.action === 'allow' &&
    p.ptype === 'main' &&
    p.selectorExtra === '' &&
    p.mark === undefined &&
    p.ifId === undefined &&
    p.templates.length > 0 &&
    p.templates.every((t) => t.proto === 'esp' && t.mode === 'tunnel') &&
    prefixes.has(canonPrefix(p.src)) &&
    prefixes.has(canonPrefix(p.dst))
  );
}

function olderThan(addedAt: number | undefined, startedAt: number): boolean {
  return addedAt !== undefined && addedAt < startedAt;
}

/** Whether charon reports a CHILD_SA carrying this selector pair (either direction). */
function liveSelector(p: XfrmPolicy, live: readonly LiveChild[]): boolean {
  const src = canonPrefix(p.src);
  const dst = canonPrefix(p.dst);
  return live.some((c) => {
    const l = c.localTs.map(canonPrefix);
    const r = c.remoteTs.map(canonPrefix);
    return (l.includes(src) && r.includes(dst)) || (r.includes(src) && l.includes(dst));
  });
}

/**
 * Corvid's share of a dead charon's kernel state: what to remove. Routes first in the result's use (a route without
 * its policy sends in the clear for a moment, a policy without its route is never reached), then policies, then SAs.
 */
export function staleIpsec(input: StaleIpsecInput): StaleIpsec {
  const prefixes = new Set(input.ours.prefixes.map(canonPrefix));
  const started = input.charonStartedAt;

  const policies: XfrmPolicy[] = [];
  const kept: XfrmPolicy[] = [];
  for (const p of input.policies) {
    if (corvidShaped(p, prefixes) && olderThan(p.addedAt, started) && !liveSelector(p, input.live)) policies.push(p);
    else kept.push(p);
  }

  // SAs: those of corvid's reqids (of its policies, removed or kept: a new charon numbers its reqids from 1 again, so
  // it may use a dead one's), and the dead charon's SAs between this node and a gateway whose reqid no policy names
  // any more (the new charon took their policies over). Never a reqid another policy names, whoever's SA it is.
  const corvidReqids = new Set<number>();
  const otherReqids = new Set<number>();
  for (const p of input.policies) {
    const isCorvid = corvidShaped(p, prefixes);
    for (const t of p.templates) {
      if (isCorvid) corvidReqids.add(t.reqid);
      else otherReqids.add(t.reqid);
    }
  }
  const node = new Set(input.ours.node.map(canonAddr));
  const gateways = new Set(input.ours.gateways.map(canonAddr));
  const liveSpis = new Set(input.live.flatMap((c) => c.spis.map(normSpi)));
  const betweenGateways = (s: XfrmSa): boolean => {
    const a = canonAddr(s.src);
    const b = canonAddr(s.dst);
    return (node.has(a) && gateways.has(b)) || (gateways.has(a) && node.has(b));
  };
  const states = input.states.filter(
    (s) =>
      s.proto === 'esp' &&
      s.mode === 'tunnel' &&
      s.mark === undefined &&
      s.ifId === undefined &&
      s.reqid !== 0 &&
      olderThan(s.addedAt, started) &&
      !liveSpis.has(normSpi(s.spi)) &&
      !otherReqids.has(s.reqid) &&
      (corvidReqids.has(s.reqid) || betweenGateways(s)),
  );

  // A route to a prefix whose stale `out` policy goes, when no other `out` policy of that shape to it stays (a marked
  // one is someone else's and routes nothing of charon's).
  const goneOut = new Set(policies.filter((p) => p.dir === 'out').map((p) => canonPrefix(p.dst)));
  const keptOut = new Set(kept.filter((p) => p.dir === 'out' && corvidShaped(p, prefixes)).map((p) => canonPrefix(p.dst)));
  const routes = input.routes.filter((r) => {
    const d = canonPrefix(r.dst);
    return goneOut.has(d) && !keptOut.has(d) && prefixes.has(d);
  });
  return { policies, states, routes };
}

/** SPIs compared as numbers: list-sas says `c1a2b3c4`, ip `0xc1a2b3c4`. */
function normSpi(spi: string): string {
  const hex = spi.toLowerCase().replace(/^0x/, '');
  return /^[0-9a-f]+$/.test(hex) ? BigInt(`0x${hex}`).toString(16) : spi;
}
