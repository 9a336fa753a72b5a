// Network namespaces for integration tests: unique names, veth pairs, bridges, addresses, routes, forwarding,
// and a cleanup registry that removes everything a test made, even when the test fails or the process exits early.
//
// Every namespace is named `cvd-<pid>-<n>-<label>`; interfaces are created directly inside their namespaces, so
// nothing ever appears in the host's own namespace and concurrent test processes cannot collide.
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { killSync, onPath, onProcessExit, stopChild } from './host.ts';

const IP = '/usr/sbin/ip';

function ipBin(): string {
  return existsSync(IP) ? IP : 'ip';
}

let skipReasonCache: string | null | undefined;

/** undefined when netns tests can run; otherwise one line saying how to enable them. */
export function netnsSkipReason(): string | undefined {
  if (skipReasonCache !== undefined) return skipReasonCache ?? undefined;
  skipReasonCache = probe();
  return skipReasonCache ?? undefined;
}

function probe(): string | null {
  if (process.platform !== 'linux') return 'network-namespace tests need Linux';
  if (typeof process.getuid === 'function' && process.getuid() !== 0) {
    return 'network-namespace tests need root (run the tests as root, with iproute2 installed)';
  }
  const name = `cvd-${process.pid}-probe`;
  try {
    execFileSync(ipBin(), ['netns', 'add', name], { stdio: 'pipe' });
    execFileSync(ipBin(), ['netns', 'del', name], { stdio: 'pipe' });
    return null;
  } catch (e) {
    return `cannot create a network namespace (${firstLine(e)}): needs root and iproute2`;
  }
}

function firstLine(e: unknown): string {
  const err = e as { stderr?: Buffer | string; message?: string };
  const text = String(err.stderr ?? '').trim() || String(err.message ?? e);
  return text.split('\n')[0];
}

export function run(cmd: string, args: string[], opts: { input?: string; allowFail?: boolean } = {}): Promise<{ stdout: string; stderr: string; code: number }> {
  return new Promise((resolve, reject) => {
    const child = execFile(cmd, args, { maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? ((err as { code: number }).code) : 1) : 0;
      if (err && !opts.allowFail) reject(new Error(`${cmd} ${args.join(' ')} failed (${code}): ${String(stderr).trim() || err.message}`));
      else resolve({ stdout: String(stdout), stderr: String(stderr), code });
    });
    if (opts.input !== undefined) child.stdin?.end(opts.input);
  });
}

/** Run `ip` with arguments. */
export function ip(...args: string[]): Promise<string> {
  return run(ipBin(), args).then((r) => r.stdout);
}

// ---------------------------------------------------------------- cleanup registry (process-wide)

const liveNamespaces = new Set<string>();
const liveProcesses = new Set<ChildProcess>();

function cleanupSync(): void {
  for (const child of liveProcesses) killSync(child);
  liveProcesses.clear();
  for (const ns of liveNamespaces) {
    killInNamespace(ns);
    try {
      execFileSync(ipBin(), ['netns', 'del', ns], { stdio: 'ignore' });
    } catch {
      // gone
    }
  }
  liveNamespaces.clear();
}


/** SIGKILL every process still in a namespace: daemons a test's commands forked (wireguard-go) have no PID of ours. */
function killInNamespace(ns: string): void {
  let pids: string[] = [];
  try {
    pids = execFileSync(ipBin(), ['netns', 'pids', ns], { encoding: 'utf8' }).split('\n').filter((p) => /^\d+$/.test(p.trim()));
  } catch {
    return;
  }
  for (const p of pids) {
    try {
      process.kill(Number(p), 'SIGKILL');
    } catch {
      // gone already
    }
  }
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Remove namespaces left behind by earlier test processes that died (named `cvd-<deadpid>-...`). */
export function sweepStaleNamespaces(): string[] {
  let names: string[] = [];
  try {
    names = readdirSync('/run/netns');
  } catch {
    return [];
  }
  const removed: string[] = [];
  for (const name of names) {
    const m = /^cvd-(\d+)-/.exec(name);
    if (!m || Number(m[1]) === process.pid || pidAlive(Number(m[1]))) continue;
    try {
      execFileSync(ipBin(), ['netns', 'del', name], { stdio: 'ignore' });
      removed.push(name);
    } catch {
      // someone else removed it
    }
  }
  return removed;
}

let labCounter = 0;

/**
 * A set of namespaces and processes that one test (file) owns. `cleanup()` kills the processes (by PID) and
 * deletes the namespaces (and with them every interface inside); it is idempotent and also runs on process exit.
 */
export class NetnsLab {
  readonly prefix: string;
  private readonly namespaces: string[] = [];
  private readonly processes: ChildProcess[] = [];
  private n = 0;

  constructor() {
    onProcessExit(cleanupSync);
    this.prefix = `cvd-${process.pid}-${++labCounter}`;
  }

  /** Create a namespace `<prefix>-<label>` with loopback up; returns its full name. */
  async addNs(label: string): Promise<string> {
    const name = `${this.prefix}-${label}-${++this.n}`;
    liveNamespaces.add(name);
    this.namespaces.push(name);
    await ip('netns', 'add', name);
    await ip('-n', name, 'link', 'set', 'lo', 'up');
    return name;
  }

  /** A veth pair from (nsA, ifA) to (nsB, ifB), both ends up. Interface names are at most 15 characters. */
  async veth(nsA: string, ifA: string, nsB: string, ifB: string): Promise<void> {
    await ip('-n', nsA, 'link', 'add', ifA, 'type', 'veth', 'peer', 'name', ifB, 'netns', nsB);
    await ip('-n', nsA, 'link', 'set', ifA, 'up');
    await ip('-n', nsB, 'link', 'set', ifB, 'up');
  }

  /** A bridge `name` inside `ns`, up. */
  async bridge(ns: string, name: string): Promise<void> {
    await ip('-n', ns, 'link', 'add', name, 'type', 'bridge');
    await ip('-n', ns, 'link', 'set', name, 'up');
  }

  /** Attach interface `ifName` (in `ns`) to bridge `br` (same namespace). */
  async attach(ns: string, ifName: string, br: string): Promise<void> {
    await ip('-n', ns, 'link', 'set', ifName, 'master', br);
  }

  /** Connect (nsNode, ifNode) to the bridge `br` living in `nsSwitch` through a veth. */
  async plug(nsSwitch: string, br: string, portName: string, nsNode: string, ifNode: string): Promise<void> {
    await this.veth(nsSwitch, portName, nsNode, ifNode);
    await this.attach(nsSwitch, portName, br);
  }

  /** Add an address (CIDR notation). IPv6 addresses skip duplicate address detection. */
  async addr(ns: string, dev: string, cidr: string): Promise<void> {
    const extra = cidr.includes(':') ? ['nodad'] : [];
    await ip('-n', ns, 'addr', 'add', cidr, 'dev', dev, ...extra);
  }

  /** `ip route add <args...>` inside ns. */
  async route(ns: string, ...args: string[]): Promise<void> {
    const fam = args.some((a) => a.includes(':')) ? ['-6'] : [];
    await ip('-n', ns, ...fam, 'route', 'add', ...args);
  }

  /** Enable IPv4 and IPv6 forwarding inside ns (these sysctls are per namespace). */
  async forwarding(ns: string): Promise<void> {
    await this.exec(ns, ['sysctl', '-q', '-w', 'net.ipv4.ip_forward=1', 'net.ipv6.conf.all.forwarding=1']);
  }

  /** Run a command inside ns and wait for it. */
  exec(ns: string, argv: string[], opts: { input?: string; allowFail?: boolean } = {}): Promise<{ stdout: string; stderr: string; code: number }> {
    return run(ipBin(), ['netns', 'exec', ns, ...argv], opts);
  }

  /** Start a long-running process inside ns; it is killed by cleanup(). */
  spawn(ns: string, argv: string[], opts: { env?: NodeJS.ProcessEnv; stdio?: Parameters<typeof spawn>[2]['stdio'] } = {}): ChildProcess {
    const child = spawn(ipBin(), ['netns', 'exec', ns, ...argv], { env: opts.env ?? process.env, stdio: opts.stdio ?? ['ignore', 'pipe', 'pipe'] });
    this.track(child);
    return child;
  }

  /** Register a process started elsewhere so cleanup() kills it. */
  track(child: ChildProcess): void {
    liveProcesses.add(child);
    this.processes.push(child);
    child.once('exit', () => liveProcesses.delete(child));
  }

  /** Namespaces this lab created (still present or not). */
  names(): string[] {
    return [...this.namespaces];
  }

  /** Kill this lab's processes (SIGTERM, then SIGKILL after graceMs) and delete its namespaces. Idempotent. */
  async cleanup(graceMs = 3000): Promise<void> {
    await Promise.all(this.processes.map((p) => stopChild(p, graceMs)));
    this.processes.length = 0;
    for (const ns of this.namespaces) {
      killInNamespace(ns);
      await run(ipBin(), ['netns', 'del', ns], { allowFail: true });
      liveNamespaces.delete(ns);
    }
    this.namespaces.length = 0;
  }
}

// Processes leave liveProcesses through their own 'exit' listener.
export { stopChild } from './host.ts';

/**
 * undefined when every [command, Debian package] is on PATH; otherwise one line for a skip naming what to install,
 * e.g. `missingToolsReason('the CNI emulation', [['nft', 'nftables']])`.
 */
export function missingToolsReason(what: string, tools: Array<[cmd: string, pkg: string]>): string | undefined {
  const missing = tools.filter(([cmd]) => !onPath(cmd));
  if (missing.length === 0) return undefined;
  return `${what} needs ${missing.map(([c, p]) => `${c} (apt-get install ${p})`).join(', ')}`;
}
