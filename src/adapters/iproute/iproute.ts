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
import { execFile, spawn } from 'node:child_process';

export type Family = 4 | 6;

/** A unicast route in our table: `dst via via`. */
export interface RouteEntry {
  family: Family;
  /** Canonical CIDR (host routes carry /32 or /128). */
  dst: string;
  /** Next hop; its family may differ from `family` for IPv4 routes via an IPv6 next hop (RFC 5549). */
  via: string;
}

/** A plain rule `from all lookup <table> pref <priority>`. */
export interface RuleEntry {
  family: Family;
  priority: number;
  table: number;
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
  /** True when the route is exactly `dst via X` with nothing else we would not have written. */
  plain: boolean;
}

export interface ActualRule {
  family: Family;
  priority: number;
  table: number;
  /** True when the rule is exactly `from all lookup table pref priority`. */
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

const RESERVED_TABLES = new Set([0, 220, 253, 254, 255]);

export function validateTable(table: number): string | undefined {
  if (!Number.isInteger(table) || table < 1 || table > 0xffffffff) return `route table must be an integer in 1..4294967295, got ${table}`;
  if (RESERVED_TABLES.has(table)) {
    return `route table ${table} is reserved (${table === 220 ? 'charon installs its IPsec routes there' : 'kernel table'})`;
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

const ROUTE_KEYS_PLAIN = new Set(['dst', 'gateway', 'via', 'dev', 'flags', 'metric', 'pref', 'table', 'protocol', 'scope']);

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
    // flags (linkdown, ...) describe the link, not the route we wrote: ignored.
    const plain =
      type === 'unicast' &&
      via !== undefined &&
      Object.keys(r).every((k) => ROUTE_KEYS_PLAIN.has(k)) &&
      (family === 4 ? r.metric === undefined : r.metric === undefined || r.metric === 1024);
    const out: ActualRoute = { family, dst, type, plain };
    if (via !== undefined) out.via = via;
    if (typeof r.dev === 'string') out.dev = r.dev;
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
    const plain = r.src === 'all' && Object.keys(r).every((k) => k === 'priority' || k === 'src' || k === 'table');
    out.push({ family, priority, table, plain });
  }
  return out;
}

// ---------------------------------------------------------------- diff (pure)

function routeLine(op: 'replace' | 'del', r: { dst: string; via?: string }, table: number): string {
  if (op === 'del') return `route del ${r.dst} table ${table}`;
  const via = r.via as string;
  const cross = familyOf(via) !== familyOf(r.dst) ? `inet${familyOf(via) === 6 ? '6' : ''} ` : '';
  return `route replace ${r.dst} via ${cross}${via} table ${table}`;
}

function ruleLine(op: 'add' | 'del', r: { priority: number }, table: number): string {
  return `rule ${op} pref ${r.priority} lookup ${table}`;
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
    const ok = list.length === 1 && list[0].plain && list[0].via === w.via;
    if (ok) {
      want.delete(k);
    } else if (list.length > 1 || !list[0].plain) {
      // Several routes or a foreign shape for one prefix in our table: remove them all, then add ours.
      for (const r of list) dels.push({ family: r.family, kind: 'route', op: 'del', line: routeLine('del', r, table) });
    }
  }
  for (const w of want.values()) adds.push({ family: w.family, kind: 'route', op: 'replace', line: routeLine('replace', w, table) });

  const wantRules = new Map<string, RuleEntry>();
  for (const r of desired.rules) wantRules.set(`${r.family} ${r.priority}`, r);
  for (const r of actual.rules) {
    const k = `${r.family} ${r.priority}`;
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

interface Ran {
  code: number;
  stdout: string;
  stderr: string;
}

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

  private run(args: string[], input?: string): Promise<Ran> {
    return new Promise((resolve, reject) => {
      if (input === undefined) {
        execFile(this.ipPath, this.args(args), { maxBuffer: 32 * 1024 * 1024 }, (err, stdout, stderr) => {
          if (err && typeof (err as { code?: unknown }).code !== 'number') {
            reject(new Error(`ip ${args.join(' ')}: ${err.message}`));
            return;
          }
          resolve({ code: err ? Number((err as { code: number }).code) : 0, stdout: String(stdout), stderr: String(stderr) });
        });
        return;
      }
      const child = spawn(this.ipPath, this.args(args), { stdio: ['pipe', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
      child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
      child.once('error', (e) => reject(new Error(`ip ${args.join(' ')}: ${e.message}`)));
      child.once('close', (code) => resolve({ code: code ?? 1, stdout, stderr }));
      child.stdin.end(input);
    });
  }

  /** Routes in our table and rules that look it up, both families. */
  async read(): Promise<ActualState> {
    const routes: ActualRoute[] = [];
    const rules: ActualRule[] = [];
    for (const family of [4, 6] as const) {
      const r = await this.run([`-${family}`, '-json', 'route', 'show', 'table', String(this.table)]);
      if (r.code !== 0) {
        // A table that never held an IPv4 route does not exist yet: that is an empty table.
        if (!/FIB table does not exist/.test(r.stderr)) throw new Error(`ip -${family} route show table ${this.table}: ${r.stderr.trim()}`);
      } else {
        routes.push(...parseRoutes(r.stdout, family));
      }
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
