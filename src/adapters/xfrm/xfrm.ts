// xfrm adapter: reads the kernel's IPsec state (xfrm policies and states) and charon's routing table 220, and removes
// entries one by one, by their exact identity. It decides nothing: what to remove comes from
// src/nodeplan/stale-ipsec.ts (corvid's share of a dead charon's state).
//
// iproute2 6.1 has no JSON output for xfrm (`-json` is ignored there), so the text of `ip -s xfrm policy|state` is
// parsed; `-s` adds each entry's add time, printed in the local time zone, so ip runs with TZ=UTC0. Key material
// (`enc`, `auth`, `aead` lines of states) is skipped and never kept. Deletions go through one `ip -batch`, and one
// `ip` each when that fails: an xfrm command that fails ends a batch, `-force` or not.
import { runCommand, type CommandResult } from '../command.ts';
import { parseRoutes } from '../iproute/iproute.ts';
import { CHARON_ROUTE_TABLE } from '../../nodeplan/types.ts';
import type { CharonRoute, StaleIpsec, XfrmPolicy, XfrmSa, XfrmTemplate } from '../../nodeplan/stale-ipsec.ts';

export interface XfrmOptions {
  /** Run every command as `ip -n <netns>`; default: the current namespace. */
  netns?: string;
  /** Path of the ip binary; default `ip` from PATH. */
  ipPath?: string;
}

export interface XfrmRead {
  routes: CharonRoute[];
  policies: XfrmPolicy[];
  states: XfrmSa[];
}

export interface XfrmRemoved {
  /** The `ip` commands that removed something (or found it gone already). */
  done: string[];
  /** One line per command that failed otherwise. */
  errors: string[];
}

// ---------------------------------------------------------------- parsing (pure)

/** `ip xfrm` output split into its entries (each starts at column 0). */
function entries(text: string): string[][] {
  return text
    .split(/\n(?=\S)/)
    .map((e) => e.split('\n').map((l) => l.trim()).filter((l) => l !== ''))
    .filter((e) => e.length > 0);
}

/** `add 2026-12-06 10:47:56 use -` of `lifetime current` (printed in UTC, see above): seconds since the epoch. */
function addTime(line: string): number | undefined {
  const m = /^add (\d{4})-(\d\d)-(\d\d) (\d\d):(\d\d):(\d\d)\b/.exec(line);
  if (!m) return undefined;
  const [y, mo, d, h, mi, s] = m.slice(1).map(Number);
  return Date.UTC(y, mo - 1, d, h, mi, s) / 1000;
}

/** `reqid 1(0x00000001)` (with -s) or `reqid 1`. */
function reqidOf(line: string): number | undefined {
  const m = /\breqid (\d+)/.exec(line);
  return m ? Number(m[1]) : undefined;
}

/** The lines policies and states share (mark, if_id, add time) into `e`; false for any other line. */
function sharedLine(line: string, e: { mark?: string; ifId?: string; addedAt?: number }): boolean {
  let m: RegExpExecArray | null;
  if ((m = /^mark (\S+)/.exec(line))) e.mark = m[1];
  else if ((m = /^if_id (\S+)/.exec(line))) e.ifId = m[1];
  else if (line.startsWith('add ')) {
    const t = addTime(line);
    if (t !== undefined) e.addedAt = t;
  } else return false;
  return true;
}

/** Parse `ip -s xfrm policy` (TZ=UTC0). Entries that do not start `src A dst B` are left out. */
export function parsePolicies(text: string): XfrmPolicy[] {
  const out: XfrmPolicy[] = [];
  for (const lines of entries(text)) {
    const head = /^src (\S+) dst (\S+)\s*(.*)$/.exec(lines[0]);
    if (!head) continue;
    const p: XfrmPolicy = { src: head[1], dst: head[2], selectorExtra: head[3].replace(/\s*\buid \d+$/, '').trim(), dir: '', action: '', ptype: '', templates: [] };
    let tmpl: XfrmTemplate | undefined;
    for (const line of lines.slice(1)) {
      let m: RegExpExecArray | null;
      if ((m = /^(?:dir (\S+)|socket (in|out))\b/.exec(line))) {
        p.dir = m[1] ?? `socket ${m[2]}`;
        p.action = /\baction (\S+)/.exec(line)?.[1] ?? 'allow';
        p.ptype = /\bptype (\S+)/.exec(line)?.[1] ?? 'main';
      } else if (sharedLine(line, p)) {
        continue;
      } else if ((m = /^tmpl src (\S+) dst (\S+)/.exec(line))) {
        tmpl = { src: m[1], dst: m[2], proto: '', mode: '', reqid: 0 };
        p.templates.push(tmpl);
      } else if (tmpl !== undefined && (m = /^proto (\S+)/.exec(line))) {
        tmpl.proto = m[1];
        tmpl.mode = /\bmode (\S+)/.exec(line)?.[1] ?? '';
        tmpl.reqid = reqidOf(line) ?? 0;
      }
    }
    out.push(p);
  }
  return out;
}

/** Parse `ip -s xfrm state` (TZ=UTC0). Keys are not kept. */
export function parseStates(text: string): XfrmSa[] {
  const out: XfrmSa[] = [];
  for (const lines of entries(text)) {
    const head = /^src (\S+) dst (\S+)\s*$/.exec(lines[0]);
    if (!head) continue;
    const s: XfrmSa = { src: head[1], dst: head[2], proto: '', spi: '', reqid: 0, mode: '' };
    for (const line of lines.slice(1)) {
      let m: RegExpExecArray | null;
      if (s.proto === '' && (m = /^proto (\S+) spi (0x[0-9a-fA-F]+)/.exec(line))) {
        s.proto = m[1];
        s.spi = m[2];
        s.reqid = reqidOf(line) ?? 0;
        s.mode = /\bmode (\S+)/.exec(line)?.[1] ?? '';
      } else {
        sharedLine(line, s);
      }
    }
    out.push(s);
  }
  return out;
}

/** The `ip` arguments that remove what staleIpsec() found: routes first, then policies, then states. */
export function removalCommands(stale: StaleIpsec): string[][] {
  return [
    ...stale.routes.map((r) => [`-${r.family}`, 'route', 'del', r.dst, 'table', String(CHARON_ROUTE_TABLE)]),
    ...stale.policies.map((p) => ['xfrm', 'policy', 'delete', 'src', p.src, 'dst', p.dst, 'dir', p.dir]),
    ...stale.states.map((s) => ['xfrm', 'state', 'delete', 'src', s.src, 'dst', s.dst, 'proto', s.proto, 'spi', s.spi]),
  ];
}

/** ip's words for "not there" (removed meanwhile): ENOENT for policies and routes, ESRCH for states. */
function alreadyGone(stderr: string): boolean {
  return /No such file or directory|No such process/.test(stderr);
}

// ---------------------------------------------------------------- I/O

export class Xfrm {
  readonly netns: string | undefined;
  private readonly ipPath: string;

  constructor(opts: XfrmOptions = {}) {
    this.netns = opts.netns;
    this.ipPath = opts.ipPath ?? 'ip';
  }

  private run(args: string[], input?: string): Promise<CommandResult> {
    const all = this.netns !== undefined ? ['-n', this.netns, ...args] : args;
    // TZ=UTC0: add times in UTC (ip prints them in local time).
    return runCommand('env', ['TZ=UTC0', this.ipPath, ...all], input);
  }

  /** The policies alone. */
  async policies(): Promise<XfrmPolicy[]> {
    const p = await this.run(['-s', 'xfrm', 'policy', 'list']);
    if (p.code !== 0) throw new Error(`ip xfrm policy: ${p.stderr.trim()}`);
    return parsePolicies(p.stdout);
  }

  /** Table 220 (both families), then the policies, then the states. */
  async read(): Promise<XfrmRead> {
    const routes: CharonRoute[] = [];
    for (const family of [4, 6] as const) {
      const r = await this.run([`-${family}`, '-json', 'route', 'show', 'table', String(CHARON_ROUTE_TABLE)]);
      if (r.code !== 0) {
        if (!/FIB table does not exist/.test(r.stderr)) throw new Error(`ip -${family} route show table ${CHARON_ROUTE_TABLE}: ${r.stderr.trim()}`);
        continue;
      }
      routes.push(...parseRoutes(r.stdout, family).map((x) => ({ family, dst: x.dst })));
    }
    const policies = await this.policies();
    const s = await this.run(['-s', 'xfrm', 'state', 'list']);
    // Never echo stdout here: it holds keys.
    if (s.code !== 0) throw new Error(`ip xfrm state: ${s.stderr.trim()}`);
    return { routes, policies, states: parseStates(s.stdout) };
  }

  /**
   * Remove each entry by its exact identity; an entry gone meanwhile counts as removed. One `ip -batch` (each `ip`
   * costs a second in a busy UML guest); when it fails (a failing xfrm line ends it), one `ip` per entry.
   */
  async remove(stale: StaleIpsec): Promise<XfrmRemoved> {
    const out: XfrmRemoved = { done: [], errors: [] };
    const commands = removalCommands(stale);
    if (commands.length === 0) return out;
    // In a batch a line has no options: the family of a route comes from its prefix.
    const lines = commands.map((a) => (/^-[46]$/.test(a[0]) ? a.slice(1) : a).join(' '));
    const batch = await this.run(['-batch', '-'], lines.join('\n') + '\n');
    if (batch.code === 0) {
      out.done.push(...commands.map((a) => `ip ${a.join(' ')}`));
      return out;
    }
    for (const args of commands) {
      const line = `ip ${args.join(' ')}`;
      const r = await this.run(args);
      if (r.code === 0 || alreadyGone(r.stderr)) out.done.push(line);
      else out.errors.push(`${line}: ${r.stderr.trim() || `exit ${r.code}`}`);
    }
    return out;
  }
}
