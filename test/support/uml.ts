// A User-Mode Linux guest for tests that need a kernel this machine lacks (ESP in the xfrm layer). Debian's
// `user-mode-linux` runs a 6.1 kernel as a process; its root is the host's `/`, read-only, so the guest runs the
// same Node, repository and tools. One directory (`dir`) is shared read-write: the init script, its output and
// whatever the test puts there. Recipe and caveats: the team note on kernel ESP in UML.
//
// The guest always ends with `halt -f`; the host kills the whole UML process tree (UML runs one host process per
// guest address space) at a deadline, on stop(), and on test-process exit.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isExecutable, onPath, onProcessExit } from './host.ts';

export const UML_BIN = '/usr/bin/linux.uml';
const MODULES_DIR = '/usr/lib/uml/modules';
const MODPROBE = '/usr/sbin/modprobe';

/** undefined when a UML guest can boot here; otherwise one line saying what is missing. */
export function umlSkipReason(): string | undefined {
  if (process.platform !== 'linux') return 'User-Mode Linux needs Linux';
  if (process.getuid?.() !== 0) return 'the UML guest needs root (tap device, network namespaces): run the tests as root';
  const missing: string[] = [];
  if (!isExecutable(UML_BIN) || !existsSync(MODULES_DIR)) missing.push('linux.uml (apt-get install user-mode-linux)');
  if (!isExecutable(MODPROBE)) missing.push('modprobe (apt-get install kmod)');
  if (!onPath('ip')) missing.push('ip (apt-get install iproute2)');
  if (missing.length > 0) return `needs ${missing.join(', ')}`;
  return runsHere();
}

let probed: { reason: string | undefined } | undefined;

/**
 * Whether this host can run a UML guest's processes at all: boot one whose init only halts. Debian bookworm's UML
 * 6.1 kernel cannot on a CPU with AMX (its XSAVE state is larger than that kernel handles): the guest panics at its
 * first process with "ptrace set fp regs failed". Trixie's 6.12 fails the same way (tried by hand, 2026-12-07).
 * Probed once per process (about a second).
 */
function runsHere(): string | undefined {
  if (probed !== undefined) return probed.reason;
  const dir = mkdtempSync(join(tmpdir(), 'corvid-uml-probe-'));
  try {
    writeFileSync(join(dir, 'init.sh'), `#!/bin/sh\necho corvid-uml-probe-ok\nhalt -f\n`, { mode: 0o755 });
    const args = ['mem=64M', `uml_dir=${dir}`, 'rootfstype=hostfs', 'rootflags=/', 'ro', `init=${join(dir, 'init.sh')}`, 'con=null', 'con0=fd:0,fd:1'];
    const r = spawnSync(UML_BIN, args, { encoding: 'utf8', timeout: 30_000, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, TMPDIR: dir } });
    const out = `${r.stdout ?? ''}${r.stderr ?? ''}`;
    if (out.includes('corvid-uml-probe-ok')) probed = { reason: undefined };
    else if (/ptrace set fp regs failed/.test(out)) {
      probed = { reason: "Debian's UML kernel cannot run processes on this host CPU (AMX: \"ptrace set fp regs failed\"; so does trixie's 6.12); kernel ESP needs a host CPU without AMX" };
    } else probed = { reason: `a UML guest does not boot here: ${out.split('\n').filter((l) => /panic|error|failed/i.test(l)).slice(0, 2).join('; ') || `exit ${r.status ?? r.signal}`}` };
  } finally {
    // A guest that panicked may leave its helper processes behind, re-parented: they carry its uml_dir argument.
    for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
      try {
        if (readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(`uml_dir=${dir}`)) process.kill(Number(pid), 'SIGKILL');
      } catch {
        // gone, or not ours to read
      }
    }
    rmSync(dir, { recursive: true, force: true });
  }
  return probed.reason;
}

export interface UmlOptions {
  /** Shell commands run as root in the guest once /proc, /sys, /run, /tmp and the modules are ready; $UML_DIR is `dir`. */
  script: string;
  /** Modules loaded before the script. */
  modules?: string[];
  /** Guest memory. Default 1024 MiB. */
  memMiB?: number;
  /** Run the UML process inside this (host) network namespace, e.g. the one holding its tap device. */
  netns?: string;
  /** A tap device (in `netns`) that becomes the guest's `vec0`. */
  tap?: string;
  /** The guest is killed after this long. Default 150 s. */
  timeoutMs?: number;
  /** Use this directory (created by the caller) as the shared one instead of a fresh temp dir. */
  dir?: string;
}

export interface UmlGuest {
  /** Shared read-write directory, the same path inside the guest and on the host. */
  dir: string;
  /** Resolves when the UML process has exited (halted, crashed or killed). */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; timedOut: boolean }>;
  /** The guest's console (kernel messages and the script's stdout/stderr). */
  console(): string;
  /** Kill the UML process tree (if running) and remove the temp dir it created. Idempotent. */
  stop(): Promise<void>;
}

// UML trees of every live guest, killed by PID if the test process goes away early.
const liveRoots = new Set<number>();
const liveDirs = new Set<string>();

/** Every descendant of pid (children first found through /proc/<pid>/task/<tid>/children). */
function descendants(pid: number): number[] {
  const out: number[] = [];
  const queue = [pid];
  while (queue.length > 0) {
    const p = queue.shift()!;
    let tasks: string[] = [];
    try {
      tasks = readdirSync(`/proc/${p}/task`);
    } catch {
      continue;
    }
    for (const t of tasks) {
      let kids: string[] = [];
      try {
        kids = readFileSync(`/proc/${p}/task/${t}/children`, 'utf8').trim().split(/\s+/).filter(Boolean);
      } catch {
        // gone
      }
      for (const k of kids) {
        out.push(Number(k));
        queue.push(Number(k));
      }
    }
  }
  return out;
}

function killTree(root: number): void {
  // Collect first: once the UML kernel process dies its ptraced children are re-parented.
  for (const pid of [root, ...descendants(root)]) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone
    }
  }
}

function cleanupSync(): void {
  for (const pid of liveRoots) killTree(pid);
  liveRoots.clear();
  for (const d of liveDirs) rmSync(d, { recursive: true, force: true });
  liveDirs.clear();
}

/** The checkout, which the guest runs its code from. */
const PROJECT = fileURLToPath(new URL('../../', import.meta.url)).replace(/\/$/, '');

function initScript(dir: string, o: UmlOptions): string {
  const mods = o.modules ?? [];
  return `#!/bin/sh
# PID 1 of the guest (written by test/support/uml.ts). The host's / is our read-only root.
trap 'halt -f' EXIT
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t tmpfs run /run
mount -t tmpfs tmp /tmp
# The shared directory: tmpfs over /tmp may have hidden it.
mkdir -p '${dir}'
mount -t hostfs none '${dir}' -o '${dir}'
# So may it have hidden the checkout (a clone under /tmp): show it again, read-only as the rest of the host.
case '${PROJECT}/' in /tmp/*) mkdir -p '${PROJECT}' && mount -t hostfs none '${PROJECT}' -o '${PROJECT}' && mount -o remount,ro '${PROJECT}' ;; esac
echo '${dir}/modprobe.sh' > /proc/sys/kernel/modprobe
export UML_DIR='${dir}' HOME=/tmp PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
ip link set lo up
${mods.length > 0 ? `'${dir}/modprobe.sh' -a ${mods.join(' ')} || echo "modprobe failed: $?"` : ''}
(
${o.script}
)
echo "guest script exited with $?" > '${dir}/guest-exit'
halt -f
`;
}

/** Boot a guest that runs `script` and halts. The caller awaits `exited`, reads `dir`, then calls stop(). */
export async function startUml(o: UmlOptions): Promise<UmlGuest> {
  const skip = umlSkipReason();
  if (skip !== undefined) throw new Error(`cannot boot UML: ${skip}`);
  onProcessExit(cleanupSync);
  const ownDir = o.dir === undefined;
  const dir = o.dir ?? (await mkdtemp(join(tmpdir(), 'corvid-uml-')));
  if (ownDir) liveDirs.add(dir);

  // The kernel's own module requests (crypto algorithms, xfrm) go through modprobe.sh to the UML modules.
  const version = readdirSync(MODULES_DIR)[0];
  mkdirSync(join(dir, 'modroot', 'lib', 'modules'), { recursive: true });
  symlinkSync(join(MODULES_DIR, version), join(dir, 'modroot', 'lib', 'modules', version));
  writeFileSync(join(dir, 'modprobe.sh'), `#!/bin/sh\nexec ${MODPROBE} -d '${join(dir, 'modroot')}' "$@"\n`, { mode: 0o755 });
  writeFileSync(join(dir, 'init.sh'), initScript(dir, o), { mode: 0o755 });

  // uml_dir: UML's own run directory (mconsole socket), else ~/.uml/<random>, left behind by a killed guest.
  const args = [`mem=${o.memMiB ?? 1024}M`, `uml_dir=${dir}`, 'rootfstype=hostfs', 'rootflags=/', 'ro', `init=${join(dir, 'init.sh')}`, 'con=null', 'con0=fd:0,fd:1'];
  if (o.tap !== undefined) args.push(`vec0:transport=tap,ifname=${o.tap}`);
  const argv = o.netns === undefined ? [UML_BIN, ...args] : ['ip', 'netns', 'exec', o.netns, UML_BIN, ...args];
  const consolePath = join(dir, 'console.log');
  const fd = openSync(consolePath, 'a');
  let child: ChildProcess;
  try {
    // UML's memory file goes to TMPDIR; ours is removed with the dir.
    child = spawn(argv[0], argv.slice(1), { stdio: ['ignore', fd, fd], env: { ...process.env, TMPDIR: dir } });
  } finally {
    closeSync(fd);
  }
  const pid = child.pid!;
  liveRoots.add(pid);

  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    killTree(pid);
  }, o.timeoutMs ?? 150_000);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; timedOut: boolean }>((resolve) => {
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      // Helper processes of a guest that crashed may outlive it.
      killTree(pid);
      liveRoots.delete(pid);
      resolve({ code, signal, timedOut });
    });
  });

  let stopping: Promise<void> | undefined;
  return {
    dir,
    exited,
    console: () => {
      try {
        return readFileSync(consolePath, 'utf8');
      } catch {
        return '';
      }
    },
    stop() {
      stopping ??= (async () => {
        killTree(pid);
        await exited;
        if (ownDir) {
          rmSync(dir, { recursive: true, force: true });
          liveDirs.delete(dir);
        }
      })();
      return stopping;
    },
  };
}
