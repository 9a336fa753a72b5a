// The machine a benchmark ran on, printed with every table: CPU model and cores, memory, Node, kernel, load.
// `npx node bench/machine.ts` prints it alone.
import { execFileSync, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { cpus, loadavg, release, totalmem } from 'node:os';

export interface Machine {
  cpu: string;
  cores: number;
  memGiB: number;
  node: string;
  kernel: string;
  platform: string;
  /** 1, 5 and 15 minute load averages when the description was taken. */
  load: string;
}

/** `AMD EPYC` from /proc/cpuinfo when os.cpus() has no model (some VMs). */
function cpuModel(): string {
  const model = cpus()[0]?.model?.trim();
  if (model) return model;
  try {
    const m = /^model name\s*:\s*(.+)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'));
    if (m) return m[1].trim();
  } catch {
    // not Linux
  }
  return 'unknown CPU';
}

export function machine(): Machine {
  return {
    cpu: cpuModel(),
    cores: cpus().length,
    memGiB: Math.round((totalmem() / 2 ** 30) * 10) / 10,
    node: process.version,
    kernel: `${process.platform === 'linux' ? 'Linux' : process.platform} ${release()}`,
    platform: `${process.platform}/${process.arch}`,
    load: loadavg().map((x) => x.toFixed(2)).join(' '),
  };
}

/** One line: `machine: AMD EPYC, 2 cores, 23.5 GiB, Node v24.9.0, Linux 6.1.0 (linux/x64), load 0.12 0.30 0.41`. */
export function machineLine(m: Machine = machine()): string {
  return `machine: ${m.cpu}, ${m.cores} cores, ${m.memGiB} GiB, Node ${m.node}, ${m.kernel} (${m.platform}), load ${m.load}`;
}

/** The installed strongSwan (Debian package), for benches that drive charon. */
export function strongswanVersion(): string {
  try {
    return `strongSwan ${execFileSync('dpkg-query', ['-W', '-f', '${Version}', 'strongswan-charon'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim()}`;
  } catch {
    return 'strongSwan (version unknown)';
  }
}

/** The ip utility's version line, e.g. `iproute2-6.1.0`. */
export function iprouteVersion(): string {
  try {
    const out = execFileSync('ip', ['-V'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    return /iproute2-[\w.]+/.exec(out)?.[0] ?? out.trim();
  } catch {
    return 'iproute2 (version unknown)';
  }
}

/** wireguard-go's version, e.g. `wireguard-go v0.0.20220316`. */
export function wireguardGoVersion(): string {
  try {
    const out = execFileSync('wireguard-go', ['--version'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    return /wireguard-go v[\w.]+/.exec(out)?.[0] ?? 'wireguard-go (version unknown)';
  } catch {
    return 'wireguard-go (version unknown)';
  }
}

/**
 * Which WireGuard the agents in these network namespaces built corvid.wg with: wireguard-go (userspace, a process in
 * the namespace) or the kernel's. Ask while the system runs.
 */
export function wireguardDatapath(netns: readonly string[]): string {
  for (const ns of netns) {
    let pids: string[] = [];
    try {
      pids = execFileSync('ip', ['netns', 'pids', ns], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).split('\n');
    } catch {
      continue;
    }
    for (const pid of pids.filter((p) => /^\d+$/.test(p))) {
      try {
        if (readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === 'wireguard-go') return `${wireguardGoVersion()} (userspace)`;
      } catch {
        // gone
      }
    }
  }
  return 'kernel WireGuard';
}

/** The two tunnel backends, in the order the benches run them. */
export type Backend = 'ipsec' | 'wireguard';
export const BACKENDS: readonly Backend[] = ['ipsec', 'wireguard'];

/**
 * The backends a bench measures: both (IPsec first), or those named in CORVID_BENCH_BACKEND (`ipsec`, `wireguard`,
 * or both comma-separated) for an experiment. An unknown name is an error, not a silent default.
 */
export function benchBackends(env: string | undefined = process.env.CORVID_BENCH_BACKEND): Backend[] {
  if (env === undefined || env.trim() === '') return [...BACKENDS];
  const names = env.split(',').map((s) => s.trim()).filter((s) => s !== '');
  for (const n of names) if (!(BACKENDS as readonly string[]).includes(n)) throw new Error(`CORVID_BENCH_BACKEND: unknown backend ${JSON.stringify(n)} (ipsec, wireguard)`);
  return BACKENDS.filter((b) => names.includes(b));
}

// ---------------------------------------------------------------- shared helpers of the benches

export function median(xs: readonly number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** A plain text table, numbers right-aligned: `| a | b |`. */
export function table(head: string[], rows: string[][]): string {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]): string => `| ${cells.map((c, i) => (/^[-\d.,<>~ x%()]+$/.test(c) ? c.padStart(widths[i]) : c.padEnd(widths[i]))).join(' | ')} |`;
  return [line(head), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...rows.map(line)].join('\n');
}

/** Milliseconds with one decimal below 100, none above. */
export function ms(x: number | undefined): string {
  if (x === undefined || Number.isNaN(x)) return '-';
  return x < 100 ? x.toFixed(1) : x.toFixed(0);
}

/** VmRSS and VmHWM (peak) of a process from /proc/<pid>/status, in MiB; undefined when it is gone. */
export function processMemory(pid: number): { rssMiB: number; peakMiB: number } | undefined {
  try {
    const text = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (key: string): number => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(text)?.[1] ?? NaN);
    return { rssMiB: kb('VmRSS') / 1024, peakMiB: kb('VmHWM') / 1024 };
  } catch {
    return undefined;
  }
}

/**
 * VmRSS of a fresh Node process (this Node binary) that only imports `modules` (paths from the repository root) and
 * then idles: the floor under a `corvid` process's memory. No modules: Node alone.
 */
export async function baselineRssMiB(modules: string[], settleMs = 2000): Promise<number> {
  const root = fileURLToPath(new URL('../', import.meta.url));
  const imports = modules.map((m) => `await import(${JSON.stringify(pathToFileURL(join(root, m)).href)});`).join(' ');
  const child = spawn(process.execPath, ['--input-type=module', '-e', `${imports} setInterval(() => {}, 60000);`], { stdio: 'ignore' });
  const kill = (): void => void child.kill('SIGKILL');
  process.once('exit', kill);
  try {
    await new Promise<void>((resolve, reject) => {
      child.once('spawn', resolve);
      child.once('error', reject);
    });
    await new Promise((r) => setTimeout(r, settleMs));
    const m = processMemory(child.pid ?? -1);
    if (m === undefined) throw new Error(`baseline process for ${modules.join(', ') || 'node'} exited (${child.exitCode})`);
    return m.rssMiB;
  } finally {
    const gone = new Promise<void>((r) => (child.exitCode !== null || child.signalCode !== null ? r() : child.once('exit', () => r())));
    child.kill('SIGKILL');
    await gone;
    process.removeListener('exit', kill);
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  console.log(machineLine());
}

// `corvid` as deployed (compiled, cached per state of the sources): the e2e starts its processes from the same build.
export { compiledCorvid } from '../test/support/compiled.ts';

