// iproute2 adapter: reads and changes exactly one policy-routing table and the rules that look it up.
//
// What the agent owns, and the only thing this module ever changes:
// - every route in table `table` (both families);
// - every rule (both families) whose action is `lookup <table>`.
// Nothing global is flushed; other tables and other rules are never touched (not even read beyond `ip rule show`).
//
// Reads use `ip -json`. Changes go through one `ip -batch -` process per address family and apply (iproute2 cannot
// switch family per batch line, and an IPv6 rule needs `-6`). `-force` lets the rest of a batch run when one line
// fails; failures are returned, and the next reconcile retries them.
import { runCommand, type CommandResult } from '../command.ts';
import { CHARON_ROUTE_TABLE, mssFor } from '../../nodeplan/types.ts';
import { canonicalAddress, familyOfPrefix } from '../../nodeplan/cidr.ts';

export type Family = 4 | 6;

/** A unicast route in our table: `dst via via`, or `dst dev dev` into a point-to-point device (WireGuard). */
export interface RouteEntry {
  family: Family;
  /** Canonical CIDR (host routes carry /32 or /128). */
  dst: string;
  /**
   * Next hop; its family may differ from `family` for IPv4 routes via an IPv6 next hop (RFC 5549). Absent: a device
   * route (`dev` is then required).
   */
  via?: string;
  /** Path MTU towards dst (the tunnel's); the route then also carries advmss = mtu - 40 (IPv4) or - 60 (IPv6). */
  mtu?: number;
  /**
   * With `via`, the member VXLAN: `via <via> dev <dev> onlink` (the next hop is a neighbour entry on that device).
   * Without: `dev <dev>`, a device route.
   */
  dev?: string;
}

/** A plain rule `from all lookup <table> pref <priority>`, or `from all iif <dev> lookup ...`. */
export interface RuleEntry {
  family: Family;
  priority: number;
  table: number;
  iif?: string;
}

export interface IpState {
  routes: RouteEntry[];
  rules: RuleEntry[];
}

/** What a route or rule actually looks like in the kernel (more detail than the desired form). */
export interface ActualRoute {
  family: Family;
  dst: string;
  via?: string;
  dev?: string;
  /** `unicast` unless the kernel reports another type (blackhole, unreachable, ...). */
  type: string;
  mtu?: number;
  advmss?: number;
  /** The route carries the onlink flag. */
  onlink?: boolean;
  /** True when the route is exactly `dst via X` (or `dst dev D`) with nothing else we would not have written. */
  plain: boolean;
}

export interface ActualRule {
  family: Family;
  priority: number;
  table: number;
  iif?: string;
  /** True when the rule is exactly `from all [iif dev] lookup table pref priority`. */
  plain: boolean;
}

export interface ActualState {
  routes: ActualRoute[];
  rules: ActualRule[];
}

export interface IpChange {
  family: Family;
  kind: 'route' | 'rule';
  op: 'replace' | 'add' | 'del';
  /** The `ip -batch` line. */
  line: string;
}

export interface ApplyResult {
  changes: IpChange[];
  /** One message per failed batch line (ip's own words). */
  errors: string[];
}

export interface IprouteOptions {
  /** Our routing table number (never 0, 253-255 or 220). */
  table: number;
  /** Run every command as `ip -n <netns>`; default: the current namespace. */
  netns?: string;
  /** Path of the ip binary; default `ip` from PATH. */
  ipPath?: string;
}

const RESERVED_TABLES = new Set([0, CHARON_ROUTE_TABLE, 253, 254, 255]);

export function validateTable(table: number): string | undefined {
  if (!Number.isInteger(table) || table < 1 || table > 0xffffffff) return `route table must be an integer in 1..4294967295, got ${table}`;
  if (RESERVED_TABLES.has(table)) {
    return `route table ${table} is reserved (${table === CHARON_ROUTE_TABLE ? 'charon installs its IPsec routes there' : 'kernel table'})`;
  }
  return undefined;
}

// ---------------------------------------------------------------- parsing (pure)

function familyOf(addr: string): Family {
  return addr.includes(':') ? 6 : 4;
}

/** Canonical prefix as ip prints it, with an explicit length (`10.0.0.1` -> `10.0.0.1/32`). */
export function withPrefixLength(dst: string, family: Family): string {
  if (dst.includes('/')) return dst;
  return `${dst}/${family === 4 ? 32 : 128}`;
}

const ROUTE_KEYS_PLAIN = new Set(['dst', 'gateway', 'via', 'dev', 'flags', 'metric', 'pref', 'table', 'protocol', 'scope', 'metrics']);
const ROUTE_METRICS_PLAIN = new Set(['mtu', 'advmss']);

/** `metrics: [{mtu, advmss}]` of `ip -json route`; undefined when it holds anything else. */
function routeMetrics(v: unknown): { mtu?: number; advmss?: number } | undefined {
  if (v === undefined) return {};
  if (!Array.isArray(v)) return undefined;
  const out: { mtu?: number; advmss?: number } = {};
  for (const m of v) {
    if (typeof m !== 'object' || m === null) return undefined;
    for (const [k, x] of Object.entries(m as Record<string, unknown>)) {
      if (!ROUTE_METRICS_PLAIN.has(k) || typeof x !== 'number') return undefined;
      out[k as 'mtu' | 'advmss'] = x;
    }
  }
  return out;
}

/** Parse `ip -json [-6] route show table N` output. */
export function parseRoutes(json: string, family: Family): ActualRoute[] {
  const trimmed = json.trim();
  if (trimmed === '') return [];
  const rows = JSON.parse(trimmed) as Array<Record<string, unknown>>;
  return rows.map((r) => {
    const type = typeof r.type === 'string' ? r.type : 'unicast';
    const via =
      typeof r.gateway === 'string'
        ? r.gateway
        : r.via && typeof (r.via as { host?: unknown }).host === 'string'
          ? (r.via as { host: string }).host
          : undefined;
    const dst = typeof r.dst === 'string' ? (r.dst === 'default' ? (family === 4 ? '0.0.0.0/0' : '::/0') : withPrefixLength(r.dst, family)) : '?';
    // flags (linkdown, ...) describe the link, not the route we wrote: ignored, but for onlink, which we write.
    const metrics = routeMetrics(r.metrics);
    const plain =
      type === 'unicast' &&
      metrics !== undefined &&
      (via !== undefined || typeof r.dev === 'string') &&
      Object.keys(r).every((k) => ROUTE_KEYS_PLAIN.has(k)) &&
      (family === 4 ? r.metric === undefined : r.metric === undefined || r.metric === 1024);
    const out: ActualRoute = { family, dst, type, plain };
    if (via !== undefined) out.via = via;
    if (typeof r.dev === 'string') out.dev = r.dev;
    if (metrics?.mtu !== undefined) out.mtu = metrics.mtu;
    if (metrics?.advmss !== undefined) out.advmss = metrics.advmss;
    if (Array.isArray(r.flags) && r.flags.includes('onlink')) out.onlink = true;
    return out;
  });
}

/** Parse `ip -json [-6] rule show`, keeping only rules that look up `table`. */
export function parseRules(json: string, family: Family, table: number): ActualRule[] {
  const trimmed = json.trim();
  if (trimmed === '') return [];
  const rows = JSON.parse(trimmed) as Array<Record<string, unknown>>;
  const out: ActualRule[] = [];
  for (const r of rows) {
    if (String(r.table) !== String(table)) continue;
    const priority = typeof r.priority === 'number' ? r.priority : Number(r.priority);
    const plain = r.src === 'all' && Object.keys(r).every((k) => k === 'priority' || k === 'src' || k === 'table' || k === 'iif');
    const rule: ActualRule = { family, priority, table, plain };
    if (typeof r.iif === 'string') rule.iif = r.iif;
    out.push(rule);
  }
  return out;
}

interface AddressLink {
  ifname?: unknown;
  mtu?: unknown;
  addr_info?: Array<{ local?: unknown; prefixlen?: unknown; scope?: unknown }>;
}

/** From `ip -json address show`: the link that holds `address`. */
function linkOfAddress(json: string, address: string): AddressLink | undefined {
  const trimmed = json.trim();
  if (trimmed === '') return undefined;
  return (JSON.parse(trimmed) as AddressLink[]).find((l) => (l.addr_info ?? []).some((a) => a.local === address));
}

/** From `ip -json address show`: the MTU of the link that holds `address`. */
export function mtuOfAddress(json: string, address: string): number | undefined {
  const link = linkOfAddress(json, address);
  return typeof link?.mtu === 'number' ? link.mtu : undefined;
}

/**
 * From `ip -json address show`: the connected prefixes of the link that holds `address` (global scope, as ip prints
 * them), for memberRouting auto's on-link test.
 */
export function prefixesOfAddress(json: string, address: string): string[] | undefined {
  const link = linkOfAddress(json, address);
  if (link === undefined) return undefined;
  return (link.addr_info ?? [])
    .filter((a) => typeof a.local === 'string' && typeof a.prefixlen === 'number' && a.scope === 'global')
    .map((a) => `${a.local as string}/${a.prefixlen as number}`);
}

/** From `ip -json address show`: the name of the link that holds `address`. */
export function deviceOfAddress(json: string, address: string): string | undefined {
  const link = linkOfAddress(json, address);
  return typeof link?.ifname === 'string' ? link.ifname : undefined;
}

// ---------------------------------------------------------------- diff (pure)

function routeLine(op: 'replace' | 'del', r: { dst: string; via?: string; mtu?: number; dev?: string }, table: number): string {
  if (op === 'del') return `route del ${r.dst} table ${table}`;
  const mtu = r.mtu === undefined ? '' : ` mtu ${r.mtu} advmss ${mssFor(r.mtu, familyOf(r.dst))}`;
  if (r.via === undefined) return `route replace ${r.dst} dev ${r.dev as string} table ${table}${mtu}`;
  const via = r.via;
  const cross = familyOf(via) !== familyOf(r.dst) ? `inet${familyOf(via) === 6 ? '6' : ''} ` : '';
  const dev = r.dev === undefined ? '' : ` dev ${r.dev} onlink`;
  return `route replace ${r.dst} via ${cross}${via}${dev} table ${table}${mtu}`;
}

/** Whether a live route is exactly the one we want (next hop, its device when onlink or a device route, MTU, advmss). */
function sameRoute(a: ActualRoute, w: RouteEntry): boolean {
  if (!a.plain || a.via !== w.via || a.mtu !== w.mtu) return false;
  if (w.via === undefined) {
    if (a.dev !== w.dev || a.onlink === true) return false;
  } else if (w.dev === undefined ? a.onlink === true : a.dev !== w.dev || a.onlink !== true) return false;
  return a.advmss === (w.mtu === undefined ? undefined : mssFor(w.mtu, w.family));
}

function ruleLine(op: 'add' | 'del', r: { priority: number; iif?: string }, table: number): string {
  return `rule ${op} pref ${r.priority}${r.iif === undefined ? '' : ` iif ${r.iif}`} lookup ${table}`;
}

function ruleKey(r: { family: Family; priority: number; iif?: string }): string {
  return `${r.family} ${r.priority} ${r.iif ?? ''}`;
}

/**
 * The batch lines that turn `actual` into `desired`, for one table. Deletions come first, then additions;
 * a route whose next hop changed is replaced in place (no window without a route).
 */
export function diffIpState(actual: ActualState, desired: IpState, table: number): IpChange[] {
  const dels: IpChange[] = [];
  const adds: IpChange[] = [];

  const want = new Map<string, RouteEntry>();
  for (const r of desired.routes) want.set(`${r.family} ${r.dst}`, r);
  const have = new Map<string, ActualRoute[]>();
  for (const r of actual.routes) {
    const k = `${r.family} ${r.dst}`;
    const list = have.get(k) ?? [];
    list.push(r);
    have.set(k, list);
  }
  for (const [k, list] of have) {
    const w = want.get(k);
    if (w === undefined) {
      for (const r of list) dels.push({ family: r.family, kind: 'route', op: 'del', line: routeLine('del', r, table) });
      continue;
    }
    const ok = list.length === 1 && sameRoute(list[0], w);
    if (ok) {
      want.delete(k);
    } else if (list.length > 1 || !list[0].plain) {
      // Several routes or a foreign shape for one prefix in our table: remove them all, then add ours.
      for (const r of list) dels.push({ family: r.family, kind: 'route', op: 'del', line: routeLine('del', r, table) });
    }
  }
  for (const w of want.values()) adds.push({ family: w.family, kind: 'route', op: 'replace', line: routeLine('replace', w, table) });

  const wantRules = new Map<string, RuleEntry>();
  for (const r of desired.rules) wantRules.set(ruleKey(r), r);
  for (const r of actual.rules) {
    const k = ruleKey(r);
    if (r.plain && wantRules.has(k)) {
      wantRules.delete(k);
      continue;
    }
    dels.push({ family: r.family, kind: 'rule', op: 'del', line: ruleLine('del', r, table) });
  }
  for (const w of wantRules.values()) adds.push({ family: w.family, kind: 'rule', op: 'add', line: ruleLine('add', w, table) });

  return [...dels, ...adds];
}

// ---------------------------------------------------------------- I/O

export class Iproute {
  readonly table: number;
  readonly netns: string | undefined;
  private readonly ipPath: string;

  constructor(opts: IprouteOptions) {
    const bad = validateTable(opts.table);
    if (bad) throw new Error(bad);
    this.table = opts.table;
    this.netns = opts.netns;
    this.ipPath = opts.ipPath ?? 'ip';
  }

  private args(extra: string[]): string[] {
    return this.netns !== undefined ? ['-n', this.netns, ...extra] : extra;
  }

  private run(args: string[], input?: string): Promise<CommandResult> {
    return runCommand(this.ipPath, this.args(args), input);
  }

  /** Routes of any table (`main`, a number), both families; an absent table is empty. */
  async routes(table: number | 'main'): Promise<ActualRoute[]> {
    const out: ActualRoute[] = [];
    for (const family of [4, 6] as const) {
      const r = await this.run([`-${family}`, '-json', 'route', 'show', 'table', String(table)]);
      if (r.code !== 0) {
        // A table that never held a route of this family does not exist yet: that is an empty table.
        if (!/FIB table does not exist/.test(r.stderr)) throw new Error(`ip -${family} route show table ${table}: ${r.stderr.trim()}`);
      } else {
        out.push(...parseRoutes(r.stdout, family));
      }
    }
    return out;
  }

  /** The name, MTU and connected prefixes of the device that holds `address` (none when no device does). */
  async uplinkOf(address: string): Promise<{ device?: string; mtu?: number; prefixes?: string[] }> {
    const r = await this.run(['-json', 'address', 'show']);
    if (r.code !== 0) throw new Error(`ip address show: ${r.stderr.trim()}`);
    const device = deviceOfAddress(r.stdout, address);
    const mtu = mtuOfAddress(r.stdout, address);
    const prefixes = prefixesOfAddress(r.stdout, address);
    return { ...(device !== undefined ? { device } : {}), ...(mtu !== undefined ? { mtu } : {}), ...(prefixes !== undefined ? { prefixes } : {}) };
  }

  /**
   * The addresses among `addresses` this node has a route to (the full lookup, rules included), in one `ip -batch`
   * per family. An address with no route, or an unreachable, blackhole or prohibit one, is not in the result.
   */
  async routable(addresses: readonly string[]): Promise<Set<string>> {
    const out = new Set<string>();
    for (const family of [4, 6] as const) {
      const mine = addresses.filter((a) => familyOfPrefix(a) === family);
      if (mine.length === 0) continue;
      const r = await this.run([`-${family}`, '-json', '-force', '-batch', '-'], mine.map((a) => `route get ${a}`).join('\n') + '\n');
      for (const dst of routedDestinations(r.stdout)) out.add(dst);
    }
    return new Set(addresses.filter((a) => out.has(canonicalAddress(a) ?? a)));
  }

  /** Routes in our table and rules that look it up, both families. */
  async read(): Promise<ActualState> {
    const routes = await this.routes(this.table);
    const rules: ActualRule[] = [];
    for (const family of [4, 6] as const) {
      const q = await this.run([`-${family}`, '-json', 'rule', 'show']);
      if (q.code !== 0) throw new Error(`ip -${family} rule show: ${q.stderr.trim()}`);
      rules.push(...parseRules(q.stdout, family, this.table));
    }
    return { routes, rules };
  }

  /** Make our table and our rules equal `desired`. Only lines that differ are sent. */
  async apply(desired: IpState): Promise<ApplyResult> {
    for (const r of desired.rules) {
      if (r.table !== this.table) throw new Error(`rule for table ${r.table} passed to the adapter of table ${this.table}`);
    }
    const actual = await this.read();
    const changes = diffIpState(actual, desired, this.table);
    const errors = await this.batch(changes);
    return { changes, errors };
  }

  /** Remove every route of our table and every rule that looks it up; nothing else. */
  async removeAll(): Promise<ApplyResult> {
    return this.apply({ routes: [], rules: [] });
  }

  /** Run the lines through one `ip -<family> -force -batch -` per family. Returns failures. */
  async batch(changes: IpChange[]): Promise<string[]> {
    const errors: string[] = [];
    for (const family of [4, 6] as const) {
      const lines = changes.filter((c) => c.family === family).map((c) => c.line);
      if (lines.length === 0) continue;
      const r = await this.run([`-${family}`, '-force', '-batch', '-'], lines.join('\n') + '\n');
      if (r.code !== 0) errors.push(...batchErrors(r.stderr, lines));
    }
    return errors;
  }
}

/** Pair ip's "Command failed -:N" markers with the failing line. */
export function batchErrors(stderr: string, lines: string[]): string[] {
  const out: string[] = [];
  let pending: string[] = [];
  for (const raw of stderr.split('\n')) {
    const line = raw.trim();
    if (line === '') continue;
    const m = /^Command failed -:(\d+)$/.exec(line);
    if (m) {
      out.push(`${lines[Number(m[1]) - 1] ?? `line ${m[1]}`}: ${pending.join('; ') || 'failed'}`);
      pending = [];
    } else {
      pending.push(line);
    }
  }
  if (pending.length > 0 || out.length === 0) out.push(pending.join('; ') || 'ip -batch failed');
  return out;
}

/** The destinations `ip -json route get` printed a route for, one JSON array a line (failed lines print nothing). */
export function routedDestinations(stdout: string): string[] {
  const out: string[] = [];
  for (const line of stdout.split('\n')) {
    if (line.trim() === '') continue;
    try {
      for (const r of JSON.parse(line) as Array<{ dst?: unknown }>) if (typeof r.dst === 'string') out.push(canonicalAddress(r.dst) ?? r.dst);
    } catch {
      // Not JSON: not a route.
    }
  }
  return out;
}
