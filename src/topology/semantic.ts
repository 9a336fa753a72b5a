// The meaning checks: everything the schema cannot say. They run on the lenient model, so they also work on a file
// with shape errors; every finding points at the most specific node. Messages name pools that exist and fields, but
// never repeat a value the check refused.

import { WIREGUARD_PORT } from '../nodeplan/types.ts';
import type { TopologyError } from './errors.ts';
import { ipVersion, usableIPVersion } from './ip.ts';
import type { Locator, PathSegment } from './parse.ts';
import { closest, TOPOLOGY_SCHEMA } from './schema.ts';
import { looksLikeKeyMaterial } from './keymaterial.ts';
import { ALGORITHM_KEYWORDS, checkProposal, isWeakProposal, weakFamily } from './proposals.ts';
import type { ProposalReport } from './proposals.ts';
import { arr, DEFAULT_MEMBER_VXLAN, isObj } from './normalise.ts';
import { overlappingSelectors, selectorMeaning } from './selectors.ts';
import type { SelectorMeaning } from './selectors.ts';
import type { Model } from './normalise.ts';
import { applyOverride, linkOverride, linkPolicyWith, matchingRule, mergeLinkPolicy, pairRouteWith, pairVerdict, relayCandidates, relayChoice, sortedPair } from './policy.ts';
import type { PairRoute, RelayChoice } from './policy.ts';
import type { EncryptionOverride, EncryptionPolicy, Pool, Topology } from './types.ts';

export interface Findings {
  errors: TopologyError[];
  warnings: TopologyError[];
}

/** Pair findings listed one by one per check; the pairs beyond are counted in one finding. */
export const MAX_PAIR_FINDINGS = 100;

/** Why charon would refuse a proposal's combination of algorithms (checkProposal's `invalid`), and what to do. */
const PROPOSAL_PROBLEMS: Record<ProposalReport['invalid'][number], string> = {
  mixed: 'mixes AEAD encryption (gcm, ccm, chacha20poly1305) with classic encryption, which strongSwan refuses; keep one kind',
  integrity: 'uses classic encryption without an integrity algorithm, which strongSwan refuses in IKE proposals; add one such as sha256',
  prf: 'uses AEAD encryption without a PRF (nor an integrity algorithm to derive one from), which strongSwan refuses in IKE proposals; add one such as prfsha256',
  'key-exchange': 'has no key exchange group, which strongSwan refuses in IKE proposals; add one such as modp2048 or ecp256',
};

/** What the member routing modes mean, for messages that refuse a combination. */
const MEMBER_ROUTING_MEANING =
  'memberRouting direct routes a member\'s cross-pool traffic to its gateway\'s node address on the LAN, vxlan sends it to the gateway inside Corvid\'s VXLAN (spec.memberVxlan) so the network sees node addresses only, auto picks vxlan for a member whose gateway is not on-link';
const VXLAN_MEANING = 'members of pools with memberRouting vxlan or auto reach their gateway over a VXLAN of Corvid\'s own';
/** VNIs and ports of the VXLANs a cluster already runs (CNIs, IKE). */
const TAKEN_VNIS = new Map([[1, 'flannel\'s'], [4096, 'Calico\'s']]);
const TAKEN_PORTS = new Map([
  [8472, 'flannel\'s (and the kernel\'s default)'],
  [4789, 'Calico\'s (and the IANA VXLAN port)'],
  [4790, 'VXLAN-GPE\'s'],
  [4500, 'IKE NAT traversal\'s'],
  [WIREGUARD_PORT, 'WireGuard\'s (every gateway with WireGuard links listens on it)'],
]);

/** A name no pool can have (pool names are DNS labels) and that no rule names: any pool no rule names. */
const UNNAMED_POOL = '\u0000any-other-pool';

/** Unknown pool references that get a "did you mean" suggestion; the rest are listed plainly. */
const MAX_GUESSES = 50;

const PROPOSAL_SHAPE = new RegExp(((TOPOLOGY_SCHEMA.$defs as Record<string, { items: { pattern: string } }>).proposals.items.pattern));

/** 1st, 2nd, 3rd, 4th, 11th, 21st, 111th. */
function ordinal(n: number): string {
  const teen = n % 100 >= 11 && n % 100 <= 13;
  return `${n}${teen ? 'th' : (['th', 'st', 'nd', 'rd'][n % 10] ?? 'th')}`;
}

const ENCRYPTION_FIELDS = ['backend', 'ikeProposals', 'espProposals', 'pskSecretRef', 'allowInsecure'] as const;
type EncryptionField = (typeof ENCRYPTION_FIELDS)[number];

const POOLS: PathSegment[] = ['spec', 'pools'];
const RULES: PathSegment[] = ['spec', 'connectivity', 'rules'];
const LINKS: PathSegment[] = ['spec', 'links'];

const POOL_NAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

/** Whether a name is a well-formed pool name (the schema reports the others). */
function wellFormed(name: string): boolean {
  return POOL_NAME.test(name) && name.length <= 63;
}

/** Whether a name may be quoted back: a well-formed pool name that does not look like key material. */
function quotable(name: string): boolean {
  return wellFormed(name) && !looksLikeKeyMaterial(name);
}

function same(x: unknown, y: unknown): boolean {
  return JSON.stringify(x) === JSON.stringify(y);
}

class Checker {
  readonly errors: TopologyError[] = [];
  readonly warnings: TopologyError[] = [];
  readonly t: Topology;
  readonly spec: Record<string, unknown>;
  readonly names: Set<string>;
  readonly pools: Map<string, Pool>;
  /** Raw index in spec.pools of each pool (first of its name). */
  readonly poolAt: Map<string, number>;
  private readonly loc: Locator;
  private readonly model: Model;

  /** Every pool a class of its own: the plain walk over every pair (for tests that compare the two). */
  private readonly pairwise: boolean;

  constructor(data: unknown, model: Model, loc: Locator, pairwise = false) {
    this.pairwise = pairwise;
    this.loc = loc;
    this.model = model;
    this.t = model.topology;
    const root = isObj(data) ? data : {};
    this.spec = isObj(root.spec) ? root.spec : {};
    this.pools = new Map(this.t.pools.map((p) => [p.name, p]));
    this.names = new Set(this.pools.keys());
    this.poolAt = new Map(this.t.pools.map((p, k) => [p.name, model.poolIndex[k]]));
  }

  error(path: readonly PathSegment[], message: string, part: 'key' | 'value' = 'value'): void {
    if (this.muted) this.muted.errors++;
    else this.errors.push(this.loc.error(path, message, part));
  }

  warn(path: readonly PathSegment[], message: string, part: 'key' | 'value' = 'value'): void {
    if (this.muted) this.muted.warnings++;
    else this.warnings.push(this.loc.error(path, message, part));
  }

  pool(name: string): PathSegment[] {
    return [...POOLS, this.poolAt.get(name) ?? 0];
  }

  raw(path: readonly PathSegment[]): unknown {
    let cur: unknown = { spec: this.spec };
    for (const seg of path) {
      if (cur === null || typeof cur !== 'object') return undefined;
      cur = (cur as Record<string | number, unknown>)[seg];
    }
    return cur;
  }

  private unknownPoolText: string | undefined;

  unknownPool(): string {
    if (this.unknownPoolText === undefined) {
      const list = [...this.names].filter(quotable).sort();
      this.unknownPoolText =
        list.length === 0
          ? 'no pool has this name (spec.pools declares none)'
          : `no pool has this name; declared pools: ${list.slice(0, 12).join(', ')}${list.length > 12 ? ', ...' : ''}`;
    }
    return this.unknownPoolText;
  }

  /** Whether a reference is a well-formed pool name (malformed ones are already reported by the schema). */
  wellFormed(name: string): boolean {
    return wellFormed(name);
  }

  /** A pool name quoted for a message, or the pool's path when the name is malformed. */
  q(name: string): string {
    return quotable(name) ? `"${name}"` : this.n(name);
  }

  /** A pool name as is, or the pool's path when the name is malformed. */
  n(name: string): string {
    if (quotable(name)) return name;
    const i = this.poolAt.get(name);
    return i === undefined ? 'a pool with an invalid name' : `spec.pools[${i}]`;
  }

  /** Unknown references that still get a "did you mean": each guess compares the word with every pool name. */
  private guessesLeft = MAX_GUESSES;

  unknownPoolNear(word: string): string {
    if (this.guessesLeft <= 0) return this.unknownPool();
    this.guessesLeft--;
    this.nameList ??= [...this.names];
    const guess = closest(word, this.nameList);
    return guess !== undefined ? `no pool has this name; did you mean ${this.q(guess)}?` : this.unknownPool();
  }

  private relayView: RelayChoice | undefined;
  private nameList: string[] | undefined;

  /** relayChoice(t): the relay of every pool (named, or the topology's automatic relay), computed once. */
  relays(): RelayChoice {
    this.relayView ??= relayChoice(this.t);
    return this.relayView;
  }

  route(a: string, b: string): PairRoute {
    return pairRouteWith(this.t, this.pools, a, b, this.relays());
  }

  private linkAt: Map<string, number> | undefined;

  /** The raw index in spec.links of the pair's (first) entry. */
  linkEntry(a: string, b: string): number | undefined {
    if (this.linkAt === undefined) {
      this.linkAt = new Map();
      this.t.links.forEach((l, k) => {
        const key = sortedPair(l.pools[0], l.pools[1]).join('\u0000');
        if (!this.linkAt!.has(key)) this.linkAt!.set(key, this.model.linkIndex[k]);
      });
    }
    return this.linkAt.get(sortedPair(a, b).join('\u0000'));
  }

  // ---------------------------------------------------------------- pool classes

  private classList: string[][] | undefined;
  /** Class index of every known pool. */
  readonly classOf = new Map<string, number>();
  /** Pairs of known pools that one rule names side by side (sortedPair, joined by NUL), and per pool its partners. */
  private readonly exceptional = new Set<string>();
  private readonly partners = new Map<string, Set<string>>();
  /** Exceptional pairs per class pair (`i,j` with i <= j). */
  private readonly exceptionalIn = new Map<string, number>();

  /**
   * The known pools in classes that behave alike in every pair check. A pool that a link, the hub or a relay names
   * (or a relay Corvid chose) is a class of its own. Any other pool's verdict with a pool that no rule names beside it
   * is decided by the first rule naming it beside `*` (or `* *`), so its verdicts, routes and link policies with
   * the other pools depend only on that rule, its NAT flag, relay, encryption override, and its verdicts with the
   * pools that could relay for it: pools equal in those form one class. The pairs a rule names side by side
   * (exceptional pairs, at most one per rule) are checked one by one. Classes and members are sorted by name.
   */
  classes(): string[][] {
    if (this.classList) return this.classList;
    const t = this.t;
    const relays = this.relays();
    const own = new Set<string>();
    for (const l of t.links) for (const side of l.pools) own.add(side);
    if (t.connectivity.hub !== undefined) own.add(t.connectivity.hub);
    if (relays.automatic !== undefined) own.add(relays.automatic);
    for (const r of relays.relayOf.values()) own.add(r);
    for (const p of t.pools) if (p.relay !== undefined) own.add(p.relay);
    for (const r of t.connectivity.rules) {
      const [x, y] = r.pools;
      if (x === '*' || y === '*' || x === y || !this.names.has(x) || !this.names.has(y)) continue;
      this.exceptional.add(sortedPair(x, y).join('\u0000'));
      for (const [u, v] of [[x, y], [y, x]]) {
        const set = this.partners.get(u);
        if (set) set.add(v);
        else this.partners.set(u, new Set([v]));
      }
    }
    const byKey = new Map<string, string[]>();
    for (const name of [...this.names].sort()) {
      const p = this.pools.get(name)!;
      let key = `=${name}`;
      if (!this.pairwise && !own.has(name)) {
        // Verdicts with the pools that could relay (named by rules beside this pool) are part of its behaviour.
        const relayLike = [...(this.partners.get(name) ?? [])].filter((q) => own.has(q) || !this.pools.get(q)!.behindNAT).sort();
        key = JSON.stringify([
          p.behindNAT,
          p.relay ?? null,
          relays.relayOf.get(name) ?? null,
          p.encryption ?? null,
          matchingRule(t, name, UNNAMED_POOL),
          relayLike.map((q) => [q, matchingRule(t, name, q)]),
        ]);
      }
      const members = byKey.get(key);
      if (members) members.push(name);
      else byKey.set(key, [name]);
    }
    this.classList = [...byKey.values()];
    this.classList.forEach((members, i) => {
      for (const name of members) this.classOf.set(name, i);
    });
    for (const pair of this.exceptional) {
      const [a, b] = pair.split('\u0000').map((n) => this.classOf.get(n)!);
      const key = `${Math.min(a, b)},${Math.max(a, b)}`;
      this.exceptionalIn.set(key, (this.exceptionalIn.get(key) ?? 0) + 1);
    }
    return this.classList;
  }

  isExceptional(a: string, b: string): boolean {
    return this.exceptional.has(sortedPair(a, b).join('\u0000'));
  }

  /** Partners of `pool` in class `k` that the pair walk checks as members of the class pair (not exceptional). */
  plainPartners(pool: string, k: number): number {
    const members = this.classList![k];
    let n = members.length - (this.classOf.get(pool) === k ? 1 : 0);
    for (const q of this.partners.get(pool) ?? []) if (this.classOf.get(q) === k) n--;
    return n;
  }

  /** While set, error() and warn() only count (a class pair beyond the budget is still checked, not listed). */
  private muted: { errors: number; warnings: number } | undefined;

  /**
   * Runs `check` on every pair of distinct known pools (in name order, as messages name them), a class pair at a
   * time. The first pair of a class pair that is not exceptional stands for all of them: when `check` says it is not
   * relevant (it would emit nothing, whatever was reported before), the others are skipped. Relevant class pairs
   * are walked pair by pair, then the exceptional pairs one by one, until this walk has emitted MAX_PAIR_FINDINGS;
   * the pairs beyond are counted, not listed. O(K² + R + findings) checks for K classes and R rules.
   */
  eachPair(check: (a: string, b: string, exceptional: boolean) => boolean): void {
    const classes = this.classes();
    const emitted = (): number => this.errors.length + this.warnings.length;
    const start = emitted();
    let omitted = 0;
    let omittedErrors = false;
    /** Checks one pair; false when over budget (the pair was checked muted, and counted when relevant). */
    const listed = (a: string, b: string, exceptional: boolean, rest: number): { relevant: boolean; listed: boolean } => {
      if (emitted() - start < MAX_PAIR_FINDINGS) return { relevant: check(a, b, exceptional), listed: true };
      const count = { errors: 0, warnings: 0 };
      this.muted = count;
      const relevant = check(a, b, exceptional);
      this.muted = undefined;
      if (relevant) {
        omitted += rest;
        omittedErrors ||= count.errors > 0;
      }
      return { relevant, listed: false };
    };
    for (let i = 0; i < classes.length; i++) {
      for (let j = i; j < classes.length; j++) {
        const [ci, cj] = [classes[i], classes[j]];
        if (i === j && ci.length < 2) continue;
        const total = (i === j ? (ci.length * (ci.length - 1)) / 2 : ci.length * cj.length) - (this.exceptionalIn.get(`${i},${j}`) ?? 0);
        let done = 0;
        walk: for (let x = 0; x < ci.length; x++) {
          for (let y = i === j ? x + 1 : 0; y < cj.length; y++) {
            const [a, b] = sortedPair(ci[x], cj[y]);
            if (this.isExceptional(a, b)) continue;
            const r = listed(a, b, false, total - done);
            done++;
            if (!r.relevant || !r.listed) break walk;
          }
        }
      }
    }
    for (const pair of [...this.exceptional].sort()) {
      const [a, b] = pair.split('\u0000');
      listed(a, b, true, 1);
    }
    if (omitted > 0) {
      const message = `${omitted} more pair${omitted === 1 ? '' : 's'} of pools have problems of the kinds listed here; they are not listed one by one (fix the listed ones first)`;
      if (omittedErrors) this.error(POOLS, message, 'key');
      else this.warn(POOLS, message, 'key');
    }
  }

  // ---------------------------------------------------------------- pools

  checkPools(): void {
    const rawPools = this.raw(POOLS);
    if (Array.isArray(rawPools) && rawPools.length === 0 && this.t.allowEmpty !== true) {
      this.error(
        POOLS,
        'the topology has no pools; add pools, or set spec.allowEmpty: true if removing every Gateway is intended',
      );
    }
    const firstByName = new Map<string, number>();
    const gatewayAt = new Map<string, [number, number]>();
    const meanings: (SelectorMeaning | undefined)[] = [];
    arr(rawPools).forEach((p, i) => {
      if (!isObj(p)) return;
      const here: PathSegment[] = [...POOLS, i];
      if (typeof p.name === 'string') {
        const first = firstByName.get(p.name);
        if (first !== undefined) {
          this.error([...here, 'name'], `another pool already has this name (spec.pools[${first}]); pool names must be unique`);
        } else {
          firstByName.set(p.name, i);
        }
      }
      this.checkSelector(p.nodeSelector, [...here, 'nodeSelector']);
      const model = typeof p.name === 'string' && this.poolAt.get(p.name) === i ? this.pools.get(p.name) : undefined;
      if (model && isObj(p.nodeSelector)) {
        const m = (meanings[i] = selectorMeaning(model.nodeSelector));
        // The model drops malformed expressions; point at the expression only when its index is the file's.
        const exact = arr(p.nodeSelector.matchExpressions).length === (model.nodeSelector.matchExpressions ?? []).length;
        if (m.kind === 'none') {
          this.error(
            exact ? [...here, 'nodeSelector', 'matchExpressions', m.expression] : [...here, 'nodeSelector'],
            'contradicts the requirements before it on the same label key, so the pool can match no node; remove one of them',
          );
        }
      }
      arr(p.gateways).forEach((g, j) => {
        if (!isObj(g)) return;
        const gpath: PathSegment[] = [...here, 'gateways', j];
        if (typeof g.node === 'string') {
          const prev = gatewayAt.get(g.node);
          if (prev && prev[0] === i) {
            this.error([...gpath, 'node'], `this node is already listed at spec.pools[${i}].gateways[${prev[1]}]; list each gateway once`);
          } else if (prev) {
            const owner = arr(rawPools)[prev[0]];
            const ownerName = isObj(owner) && typeof owner.name === 'string' ? ` ${this.q(owner.name)}` : '';
            this.error(
              [...gpath, 'node'],
              `this node is already a gateway of pool${ownerName} (spec.pools[${prev[0]}].gateways[${prev[1]}].node); a node can be a gateway of one pool only`,
            );
          } else {
            gatewayAt.set(g.node, [i, j]);
          }
        }
        if (typeof g.publicIP === 'string' && g.publicIP !== '') this.checkPublicIP(g.publicIP, [...gpath, 'publicIP']);
      });
    });
    for (const o of overlappingSelectors(meanings)) {
      const other = arr(rawPools)[o.other];
      const name = isObj(other) && typeof other.name === 'string' ? `pool ${this.q(other.name)} (spec.pools[${o.other}])` : `spec.pools[${o.other}]`;
      this.error(
        [...POOLS, o.index, 'nodeSelector'],
        o.kind === 'same'
          ? `selects the same nodes as spec.pools[${o.other}]; every node belongs to one pool, so give each pool its own selector`
          : `selects only nodes that ${name} selects too; every node belongs to one pool, so make the selectors exclusive, e.g. with a NotIn or DoesNotExist requirement in spec.pools[${o.other}]`,
        'key',
      );
    }
    for (const p of this.t.pools) {
      if (p.gateways.length > 0 && p.gateways.length < this.t.election.replicas) {
        this.warn(
          [...this.pool(p.name), 'gateways'],
          `lists ${p.gateways.length} gateway${p.gateways.length === 1 ? '' : 's'} but spec.election.replicas is ${this.t.election.replicas}; the pool will run with fewer active gateways than asked`,
          'key',
        );
      }
    }
  }

  checkSelector(sel: unknown, path: PathSegment[]): void {
    if (!isObj(sel)) return;
    const labels = isObj(sel.matchLabels) ? Object.keys(sel.matchLabels).length : 0;
    const exprs = Array.isArray(sel.matchExpressions) ? sel.matchExpressions.length : 0;
    if (labels === 0 && exprs === 0) {
      this.error(path, 'is empty and would select every node of the cluster; set matchLabels or matchExpressions', 'key');
    }
    arr(sel.matchExpressions).forEach((e, k) => {
      if (!isObj(e) || typeof e.operator !== 'string') return;
      const epath: PathSegment[] = [...path, 'matchExpressions', k];
      const values = Array.isArray(e.values) ? e.values : undefined;
      if ((e.operator === 'In' || e.operator === 'NotIn') && (values === undefined || values.length === 0)) {
        if (values === undefined) this.error([...epath, 'operator'], `operator ${e.operator} needs a non-empty values list; add values`);
        else this.error([...epath, 'values'], `operator ${e.operator} needs at least one value`);
      }
      if ((e.operator === 'Exists' || e.operator === 'DoesNotExist') && values !== undefined && values.length > 0) {
        this.error([...epath, 'values'], `operator ${e.operator} takes no values; remove values`, 'key');
      }
    });
  }

  checkPublicIP(ip: string, path: PathSegment[]): void {
    const v = usableIPVersion(ip);
    if (v === 0) {
      this.error(
        path,
        ipVersion(ip) === 6
          ? 'must be an address without a %zone: a zone names an interface of one host and means nothing to other pools; remove it'
          : 'must be an IPv4 or IPv6 address, e.g. 203.0.113.10 or 2001:db8::10',
      );
      return;
    }
    const lower = ip.toLowerCase();
    const unusable =
      v === 4
        ? /^(0|127)\./.test(ip) || /^169\.254\./.test(ip) || /^(22[4-9]|2[3-5][0-9])\./.test(ip)
        : /^::1?$|^0*:?(0*:)*0*1?$/.test(lower) || /^ff/.test(lower) || /^fe[89ab]/.test(lower);
    if (unusable) {
      this.warn(path, 'is a loopback, unspecified, link-local or multicast address, which other pools cannot reach');
    }
  }

  // ---------------------------------------------------------------- references, relays, hub

  checkRelaysAndHub(): void {
    const hubMode = this.t.connectivity.mode === 'hub';
    const hub = this.t.connectivity.hub;
    const connPath: PathSegment[] = ['spec', 'connectivity'];
    if (hubMode && hub === undefined && this.raw([...connPath, 'hub']) === undefined) {
      this.error([...connPath, 'mode'], 'mode hub needs connectivity.hub: the name of the hub pool');
    }
    if (hub !== undefined) {
      const hp = this.pools.get(hub);
      if (!hp) {
        if (this.wellFormed(hub)) this.error([...connPath, 'hub'], this.unknownPoolNear(hub));
      }
      else if (hp.behindNAT && hubMode) {
        this.error([...connPath, 'hub'], `pool ${this.q(hub)} is behind NAT and cannot be the hub; pick a pool with behindNAT: false`);
      }
      if (!hubMode) this.warn([...connPath, 'hub'], 'is used only when mode is hub; remove it or set mode: hub', 'key');
    }
    for (const { pool: p, index } of this.model.allPools) {
      if (p.relay === undefined) continue;
      const rpath = [...POOLS, index, 'relay'];
      const r = this.pools.get(p.relay);
      if (p.relay === p.name) {
        this.error(rpath, 'a pool cannot relay through itself; name a pool that is not behind NAT, or remove relay');
      } else if (!r) {
        if (this.wellFormed(p.relay)) this.error(rpath, this.unknownPoolNear(p.relay));
      } else if (r.behindNAT) {
        this.error(rpath, `pool ${this.q(p.relay)} is itself behind NAT and cannot relay; name a pool with behindNAT: false`);
      } else if (pairVerdict(this.t, p.name, p.relay) === 'deny') {
        const k = this.model.ruleIndex[matchingRule(this.t, p.name, p.relay)];
        this.error(rpath, `spec.connectivity.rules[${k}] denies this pool and ${this.q(p.relay)}, so it cannot relay for it; allow the pair or name another relay`);
      } else if (hubMode && hub !== undefined && p.relay !== hub) {
        this.error(rpath, `in hub mode pools behind NAT relay through the hub ${this.q(hub)}; remove relay or set it to the hub`);
      }
      if (!p.behindNAT) {
        this.warn(rpath, 'is used only by pools behind NAT; remove it, or set behindNAT: true if the pool is behind NAT', 'key');
      }
    }
  }

  checkRules(): void {
    const rules = this.t.connectivity.rules;
    const earlier = new Map<string, number>();
    rules.forEach((r, k) => {
      const i = this.model.ruleIndex[k];
      const path: PathSegment[] = [...RULES, i, 'pools'];
      r.pools.forEach((name, s) => {
        if (name !== '*' && !this.names.has(name) && this.wellFormed(name)) this.error([...path, s], this.unknownPoolNear(name));
      });
      if (r.pools[0] === r.pools[1] && r.pools[0] !== '*') {
        this.error(path, 'names the same pool twice; a rule is about two different pools (traffic inside a pool is never touched)');
      }
      // Rule j covers rule k when each side of k is covered by a side of j (equal, or `*`), in either order: the
      // earlier rules are indexed by their sides in both orders, so the sides that could cover k are looked up.
      const [x, y] = r.pools;
      const cover = [`${x}\u0000${y}`, `*\u0000${y}`, `${x}\u0000*`, '*\u0000*']
        .map((key) => earlier.get(key))
        .filter((j): j is number => j !== undefined);
      if (cover.length > 0) {
        this.warn([...RULES, i], `never applies: spec.connectivity.rules[${this.model.ruleIndex[Math.min(...cover)]}] comes first and matches every pair it covers`);
      }
      for (const key of [`${x}\u0000${y}`, `${y}\u0000${x}`]) if (!earlier.has(key)) earlier.set(key, k);
    });
  }

  /** Pairs that must talk but have no path; relays that matter. */
  checkPaths(): void {
    const t = this.t;
    const hubMode = t.connectivity.mode === 'hub';
    const brokenRelay = (x: Pool): boolean =>
      x.relay !== undefined &&
      (x.relay === x.name || !this.pools.has(x.relay) || this.pools.get(x.relay)!.behindNAT || pairVerdict(t, x.name, x.relay) === 'deny');
    const warnedPool = new Set<string>();
    // Per class: whether its pools reach another pool, and whether its pools have more than one relay candidate.
    const talkingClasses = new Set<string>();
    const talkingPools = new Set<string>();
    const manyCandidates = new Map<number, boolean>();
    this.eachPair((a, b, exceptional) => {
      if (pairVerdict(t, a, b) === 'deny') return false;
      const ri = matchingRule(t, a, b);
      const explicit = ri >= 0;
      const rulePath: PathSegment[] = [...RULES, explicit ? this.model.ruleIndex[ri] : 0];
      const pa = this.pools.get(a)!;
      const pb = this.pools.get(b)!;
      const later = (this.poolAt.get(a) ?? 0) > (this.poolAt.get(b) ?? 0) ? pa : pb;
      const route = this.route(a, b);
      if (route.via !== 'none') {
        if (exceptional) {
          talkingPools.add(a);
          talkingPools.add(b);
        } else {
          const [i, j] = [this.classOf.get(a)!, this.classOf.get(b)!];
          talkingClasses.add(`${Math.min(i, j)},${Math.max(i, j)}`);
        }
      }
      const natPair = pa.behindNAT && pb.behindNAT;
      let relevant = false;
      if (route.via === 'relay' && !hubMode && (pa.relay === undefined) !== (pb.relay === undefined)) {
        // The automatic relay (shared by every pool behind NAT that names none) joins the named one today, but the
        // sync keeps the automatic relay it chose earlier while that stays valid, so it may not follow a new name.
        const [unset, set] = pa.relay === undefined ? [pa, pb] : [pb, pa];
        const k = this.classOf.get(unset.name)!;
        if (!manyCandidates.has(k)) manyCandidates.set(k, relayCandidates(t, unset.name).length > 1);
        if (manyCandidates.get(k)) {
          relevant = true;
          if (!warnedPool.has(unset.name)) {
            warnedPool.add(unset.name);
            this.warn(
              [...this.pool(unset.name), 'behindNAT'],
              `names no relay while pool ${this.q(set.name)} (also behind NAT) relays through ${this.q(set.relay!)}; pools behind NAT reach each other only through a common relay, so set relay: ${this.n(set.relay!)} here too`,
            );
          }
        }
      }
      if (route.via !== 'none') return relevant;
      if (natPair && !hubMode && (brokenRelay(pa) || brokenRelay(pb))) return relevant; // reported at the relay
      const pairText = `pools ${this.q(a)} and ${this.q(b)}`;
      switch (route.reason) {
        case 'no-relay': {
          if (hubMode) break; // reported at connectivity.hub
          const msg = `${pairText} are both behind NAT and may talk, but no pool can relay between them: add a pool with behindNAT: false, or deny the pair in spec.connectivity.rules`;
          if (explicit) this.error(rulePath, msg);
          else this.error([...this.pool(later.name), 'behindNAT'], msg);
          break;
        }
        case 'different-relays': {
          const ra = this.relays().relayOf.get(a)!;
          const rb = this.relays().relayOf.get(b)!;
          if (pa.relay !== undefined && pb.relay !== undefined) {
            this.error(
              [...this.pool(later.name), 'relay'],
              `${pairText} are both behind NAT and may talk, but relay through different pools (${this.q(ra)} and ${this.q(rb)}); pools behind NAT reach each other only through a common relay: set the same relay on both, or deny the pair`,
            );
            break;
          }
          // At least one relay is Corvid's automatic choice (it could not join the other, see automaticRelay).
          const auto = pb.relay === undefined ? pb : pa;
          const chosen = `${this.q(ra)} and ${this.q(rb)}, Corvid's choice for pools that name no relay`;
          if (explicit) {
            this.error(rulePath, `allows ${pairText}, but they are both behind NAT and relay through different pools (${chosen}); set the same relay on both, or remove this rule`);
          } else {
            this.warn(
              [...this.pool(auto.name), 'behindNAT'],
              `${pairText} are both behind NAT but relay through different pools (${chosen}), so they cannot reach each other; pools behind NAT reach each other only through a common relay: set the same relay on both, or deny the pair`,
            );
          }
          break;
        }
        case 'hop-denied': {
          const via = hubMode ? t.connectivity.hub : (this.relays().relayOf.get(a) ?? this.relays().relayOf.get(b));
          if (via === undefined) {
            const msg = `${pairText} are both behind NAT, but the rules deny every pool outside NAT that could relay for both`;
            if (explicit) this.error(rulePath, `allows ${pairText}, but they are both behind NAT and the rules deny every pool outside NAT that could relay for both; allow a relay pool for both, or remove this rule`);
            else this.warn([...this.pool(later.name), 'behindNAT'], `${msg}, so they cannot reach each other; deny the pair to say so, or allow a relay pool for both`);
            break;
          }
          const deniedPeer = pairVerdict(t, a, via) === 'deny' ? a : b;
          const denyIdx = this.model.ruleIndex[matchingRule(t, deniedPeer, via)];
          const through = hubMode ? `the hub ${this.q(via)}` : `their relay ${this.q(via)}`;
          if (explicit) {
            this.error(
              rulePath,
              `allows ${pairText}, but their traffic must pass through ${through} and spec.connectivity.rules[${denyIdx}] denies ${this.q(deniedPeer)} and ${this.q(via)}; allow that pair in an earlier rule, or remove this rule`,
            );
          } else {
            this.warn(
              [...RULES, denyIdx],
              `also cuts ${pairText} off from each other, because their traffic must pass through ${through}; add a deny rule for them to say so, or allow ${this.q(deniedPeer)} and ${this.q(via)}`,
            );
          }
          break;
        }
        default:
          break;
      }
      return relevant || (route.reason === 'no-relay' ? !hubMode : route.reason === 'different-relays' || route.reason === 'hop-denied');
    });
    // A pool talks through a class pair whose pairs have a path when that class pair holds a plain pair with it.
    const talkingWith = new Map<number, number[]>();
    for (const key of talkingClasses) {
      const [i, j] = key.split(',').map(Number);
      for (const [u, v] of i === j ? [[i, j]] : [[i, j], [j, i]]) {
        const list = talkingWith.get(u);
        if (list) list.push(v);
        else talkingWith.set(u, [v]);
      }
    }
    const talksInClassPair = (pool: string): boolean => (talkingWith.get(this.classOf.get(pool)!) ?? []).some((k) => this.plainPartners(pool, k) > 0);
    if (t.pools.length > 1) {
      for (const p of t.pools) {
        if (!talkingPools.has(p.name) && !talksInClassPair(p.name)) {
          this.warn([...this.pool(p.name), 'name'], 'can reach no other pool: every pair with it is denied or has no path');
        }
      }
    }
  }

  // ---------------------------------------------------------------- links

  checkLinks(): void {
    const seen = new Map<string, number>();
    this.t.links.forEach((l, k) => {
      const i = this.model.linkIndex[k];
      const path: PathSegment[] = [...LINKS, i, 'pools'];
      let known = true;
      l.pools.forEach((name, s) => {
        if (!this.names.has(name)) {
          known = false;
          if (this.wellFormed(name)) this.error([...path, s], this.unknownPoolNear(name));
        }
      });
      if (l.pools[0] === l.pools[1]) {
        this.error(path, 'names the same pool twice; a link joins two different pools');
        return;
      }
      const key = sortedPair(l.pools[0], l.pools[1]).join('\u0000');
      const prev = seen.get(key);
      if (prev !== undefined) {
        this.error(path, `this pair already has an entry at spec.links[${prev}]; merge the two entries into one`);
        return;
      }
      seen.set(key, i);
      if (!known) return;
      const [a, b] = l.pools;
      if (this.route(a, b).via !== 'direct') {
        this.warn(
          path,
          'no tunnel joins these two pools (the pair is denied, both are behind NAT and talk through a relay, or in hub mode neither is the hub), so this entry has no effect',
        );
        return;
      }
      const pa = { name: a, encryption: this.pools.get(a)!.encryption };
      const pb = { name: b, encryption: this.pools.get(b)!.encryption };
      if (same(mergeLinkPolicy(this.t.encryption, pa, pb, l.encryption), mergeLinkPolicy(this.t.encryption, pa, pb, undefined))) {
        this.warn([...LINKS, i, 'encryption'], 'changes nothing: the pools already get this encryption without it; remove the entry', 'key');
      }
    });
  }

  // ---------------------------------------------------------------- encryption

  /** Errors already reported per place (`defaults`, `pool:<name>`, `link:<index>`) and kind. */
  private readonly reported = new Set<string>();

  private levelChecks(o: EncryptionOverride, eff: EncryptionPolicy, path: PathSegment[], place: string, isDefaults: boolean): void {
    if ((isDefaults ? eff.backend : o.backend) === 'none' && !eff.allowInsecure) {
      this.reported.add(`${place}:insecure`);
      this.error([...path, 'backend'], 'backend none sends pod traffic unencrypted; set allowInsecure: true next to it to accept that, or use ipsec');
    }
    const backendSet = isDefaults ? eff.backend : o.backend;
    if (backendSet !== undefined && backendSet !== 'none' && !eff.pskSecretRef) {
      this.reported.add(`${place}:psk`);
      this.error(
        isDefaults ? path : [...path, 'backend'],
        `backend ${backendSet} needs a pre-shared key: add pskSecretRef {name, key} naming the Secret that holds it (Corvid has no built-in key)`,
        isDefaults ? 'key' : 'value',
      );
    }
    for (const field of ['ikeProposals', 'espProposals'] as const) {
      (o[field] ?? []).forEach((proposal, n) => {
        // A proposal the schema refuses is reported there once.
        if (!PROPOSAL_SHAPE.test(proposal) || proposal.length > 256) return;
        const protocol = field === 'ikeProposals' ? 'ike' : 'esp';
        const report = checkProposal(proposal, protocol);
        const words = proposal.split('-');
        for (const i of report.unknown) {
          // The keyword itself is never quoted (it might be a pasted secret); a close known keyword may be.
          const guess = closest(words[i], ALGORITHM_KEYWORDS);
          this.error(
            [...path, field, n],
            `the ${ordinal(i + 1)} algorithm of this proposal is not a strongSwan algorithm keyword${guess !== undefined ? ` (did you mean ${guess}?)` : ''}; use keywords such as aes256, aes256gcm16, sha256, prfsha256, modp2048 or ecp256 (see docs/topology.md)`,
          );
        }
        if (report.unknown.length === 0 && !report.hasEncryption) {
          this.error([...path, field, n], 'names no encryption algorithm; start it with one such as aes256 or aes256gcm16');
        }
        for (const problem of report.invalid) this.error([...path, field, n], PROPOSAL_PROBLEMS[problem]);
        if (report.unauthenticated && !eff.allowInsecure) {
          this.reported.add(`${place}:weak`);
          this.error(
            [...path, field, n],
            'encrypts without authenticating (classic encryption and no integrity algorithm), so forged packets go undetected; add one such as sha256, use an AEAD such as aes256gcm16, or set allowInsecure: true to accept it',
          );
        }
        if (report.weak.length > 0 && !eff.allowInsecure) {
          this.reported.add(`${place}:weak`);
          const named = report.weak.map((w) => {
            const f = weakFamily(w)!;
            return `${w} (${f.family}: ${f.why})`;
          });
          this.error(
            [...path, field, n],
            `uses weak algorithms: ${named.join('; ')}; use strong ones such as aes256-sha256-modp2048, or set allowInsecure: true to accept them`,
          );
        }
      });
    }
  }

  checkEncryption(): void {
    const t = this.t;
    const defaultsRaw = this.raw(['spec', 'encryption']);
    this.levelChecks(isObj(defaultsRaw) ? pick(defaultsRaw) : {}, t.encryption, ['spec', 'encryption'], 'defaults', true);

    for (const { pool: p, index } of this.model.allPools) {
      if (!p.encryption) continue;
      const path = [...POOLS, index, 'encryption'];
      const eff = applyOverride(t.encryption, p.encryption);
      this.levelChecks(p.encryption, eff, path, this.poolAt.get(p.name) === index ? `pool:${p.name}` : `pool#${index}`, false);
      const keys = Object.keys(p.encryption) as EncryptionField[];
      if (keys.every((f) => same(p.encryption![f], t.encryption[f]))) {
        this.warn(
          path,
          keys.length === 0 ? 'is empty; remove it' : 'changes nothing: every field it sets matches spec.encryption; remove it',
          'key',
        );
      }
    }

    const linkAt = new Map<string, number>();
    this.t.links.forEach((l, k) => {
      if (!this.names.has(l.pools[0]) || !this.names.has(l.pools[1]) || l.pools[0] === l.pools[1]) return;
      const key = sortedPair(l.pools[0], l.pools[1]).join('\u0000');
      if (linkAt.has(key)) return;
      linkAt.set(key, k);
      const i = this.model.linkIndex[k];
      const eff = linkPolicyWith(t, this.pools, l.pools[0], l.pools[1]);
      this.levelChecks(l.encryption, eff, [...LINKS, i, 'encryption'], `link:${i}`, false);
    });

    this.eachPair((a, b) => {
      if (this.route(a, b).via !== 'direct') return false;
      const before = this.errors.length + this.warnings.length + (this.muted ? this.muted.errors + this.muted.warnings : 0);
      const pa = this.pools.get(a)!;
      const pb = this.pools.get(b)!;
      const li = this.linkEntry(a, b);
      this.checkConflict(pa, pb, li, linkOverride(t, a, b)?.encryption);
      const eff = linkPolicyWith(t, this.pools, a, b);
      const places = ['defaults', `pool:${a}`, `pool:${b}`, ...(li !== undefined ? [`link:${li}`] : [])];
      const seenKind = (kind: string): boolean => places.some((pl) => this.reported.has(`${pl}:${kind}`));
      const later = (this.poolAt.get(a) ?? 0) > (this.poolAt.get(b) ?? 0) ? pa : pb;
      const other = later === pa ? pb : pa;
      const target: PathSegment[] =
        li !== undefined
          ? [...LINKS, li, 'encryption']
          : [...this.pool(later.encryption ? later.name : other.encryption ? other.name : later.name), 'encryption'];
      const pairText = `the link between pools ${this.q(a)} and ${this.q(b)}`;
      if (eff.backend === 'none' && !eff.allowInsecure && !seenKind('insecure')) {
        this.error(
          target,
          `${pairText} ends up with backend none and allowInsecure false; set allowInsecure: true for it in a spec.links entry, or choose an encrypting backend`,
          'key',
        );
      }
      if (eff.backend !== 'none' && !eff.pskSecretRef && !seenKind('psk')) {
        this.error(target, `${pairText} uses backend ${eff.backend} without a pre-shared key; set pskSecretRef {name, key}`, 'key');
      }
      if (!eff.allowInsecure && !seenKind('weak')) {
        const weak = eff.ikeProposals.some((x) => isWeakProposal(x, 'ike')) || eff.espProposals.some((x) => isWeakProposal(x, 'esp'));
        if (weak) {
          this.error(
            target,
            `${pairText} ends up with weak proposals and allowInsecure false; set strong proposals or allowInsecure: true for it in a spec.links entry`,
            'key',
          );
        }
      }
      // Nothing here is reported once for many pairs, so a pair is relevant exactly when it emitted.
      return this.errors.length + this.warnings.length + (this.muted ? this.muted.errors + this.muted.warnings : 0) > before;
    });
  }

  private checkConflict(pa: Pool, pb: Pool, linkRawIndex: number | undefined, link: EncryptionOverride | undefined): void {
    if (!pa.encryption || !pb.encryption) return;
    const conflicts = ENCRYPTION_FIELDS.filter(
      (f) => pa.encryption![f] !== undefined && pb.encryption![f] !== undefined && !same(pa.encryption![f], pb.encryption![f]),
    );
    const open = conflicts.filter((f) => link?.[f] === undefined);
    if (open.length === 0) return;
    const fields = open.join(', ');
    const [a, b] = [pa.name, pb.name];
    if (linkRawIndex === undefined) {
      const later = (this.poolAt.get(a) ?? 0) > (this.poolAt.get(b) ?? 0) ? a : b;
      this.error(
        [...this.pool(later), 'encryption', open[0]],
        `pools ${this.q(a)} and ${this.q(b)} set different ${fields} and are joined by a tunnel; add a spec.links entry for the pair [${this.n(a)}, ${this.n(b)}] that sets encryption.${open.join(' and encryption.')}`,
        'key',
      );
    } else {
      this.error(
        [...LINKS, linkRawIndex, 'encryption'],
        `pools ${this.q(a)} and ${this.q(b)} set different ${fields}; set ${open.map((f) => `encryption.${f}`).join(' and ')} in this entry to decide`,
        'key',
      );
    }
  }

  // ---------------------------------------------------------------- member routing

  /** VXLAN settings that would collide with the CNI's VXLAN, IKE, or a gateway's port; settings no pool uses. */
  checkMemberRouting(): void {
    const raw = this.raw(['spec', 'memberVxlan']);
    const vx = this.t.memberVxlan ?? DEFAULT_MEMBER_VXLAN;
    const users = this.t.pools.filter((p) => p.memberRouting === 'vxlan' || p.memberRouting === 'auto');
    const here = ['spec', 'memberVxlan'];
    if (isObj(raw)) {
      const cni = TAKEN_VNIS.get(vx.vni);
      if (typeof raw.vni === 'number' && cni !== undefined) {
        this.error([...here, 'vni'], `VNI ${vx.vni} is ${cni}; ${VXLAN_MEANING}, and a device of the CNI's VNI on the same port would take its traffic; choose another (default ${DEFAULT_MEMBER_VXLAN.vni})`);
      }
      const owner = TAKEN_PORTS.get(vx.port);
      if (typeof raw.port === 'number' && owner !== undefined) {
        this.error([...here, 'port'], `UDP port ${vx.port} is ${owner}; ${VXLAN_MEANING}, and sharing the port would mix its packets with the other's; choose another (default ${DEFAULT_MEMBER_VXLAN.port})`);
      }
      if (users.length === 0) {
        this.warn(here, `no pool uses it: ${MEMBER_ROUTING_MEANING}; set memberRouting: vxlan or auto on a pool, or remove spec.memberVxlan`, 'key');
      }
    }
    for (const p of users) {
      const j = p.gateways.findIndex((g) => g.publicPort === vx.port);
      if (j < 0) continue;
      this.error(
        [...this.pool(p.name), 'gateways', j, 'publicPort'],
        `is the member VXLAN's UDP port (spec.memberVxlan.port ${vx.port}), and pool ${this.n(p.name)} has memberRouting: ${p.memberRouting} (${MEMBER_ROUTING_MEANING}); a gateway cannot receive IKE and VXLAN on one port: change one of them, or use memberRouting: direct`,
      );
    }
  }

  // ---------------------------------------------------------------- election

  checkElection(): void {
    const e = this.t.election;
    const el = this.raw(['spec', 'election']);
    if (e.preempt && e.sticky) {
      this.error(
        ['spec', 'election', 'preempt'],
        isObj(el) && el.sticky === true
          ? 'preempt: true moves back to the preferred gateway while sticky: true keeps the current one; set sticky: false to use preempt'
          : 'preempt: true moves back to the preferred gateway, but sticky defaults to true and keeps the current one; add sticky: false to use preempt',
      );
    }
  }
}

function pick(raw: Record<string, unknown>): EncryptionOverride {
  const out: EncryptionOverride = {};
  if (raw.backend === 'ipsec' || raw.backend === 'wireguard' || raw.backend === 'none') out.backend = raw.backend;
  for (const f of ['ikeProposals', 'espProposals'] as const) {
    const v = raw[f];
    if (Array.isArray(v) && v.every((s) => typeof s === 'string')) out[f] = v as string[];
  }
  return out;
}

/** The pool classes and exceptional pairs the pair checks walk (see Checker.classes), for tests of their soundness. */
export function poolClasses(data: unknown, model: Model, loc: Locator): { classes: string[][]; exceptional: (a: string, b: string) => boolean } {
  const c = new Checker(data, model, loc);
  return { classes: c.classes(), exceptional: (a, b) => c.isExceptional(a, b) };
}

/**
 * Every meaning check, on the lenient model of `data`. O(P + K² + R + L) for P pools in K classes (see classes()),
 * R rules and L links; `pairwise` makes every pool a class of its own (K = P), the reference the tests compare with.
 */
export function checkMeaning(data: unknown, model: Model, loc: Locator, pairwise = false): Findings {
  const c = new Checker(data, model, loc, pairwise);
  c.checkPools();
  c.checkRelaysAndHub();
  c.checkRules();
  c.checkLinks();
  c.checkPaths();
  c.checkEncryption();
  c.checkElection();
  c.checkMemberRouting();
  return { errors: c.errors, warnings: c.warnings };
}

