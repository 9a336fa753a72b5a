// A real strongSwan charon for integration tests, one per network namespace.
// How and why (kernel-libipsec, private /run, STRONGSWAN_CONF): docs in the team notes on strongSwan in netns.
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { ViciClient } from '../../src/agent/vici/index.ts';
import { isExecutable, killSync, onPath, onProcessExit } from './host.ts';

export const CHARON_BIN = '/usr/lib/ipsec/charon';
const READY_TIMEOUT_MS = 15_000;
const STOP_GRACE_MS = 5_000;
// kernel-libipsec must precede kernel-netlink; kdf is needed for key derivation.
const PLUGINS = 'random nonce aes sha1 sha2 hmac kdf gmp pem pkcs1 x509 pubkey kernel-libipsec kernel-netlink socket-default vici';

export interface CharonInstance {
  socketPath: string;
  /** PID of charon itself (every wrapper execs). Changes on restart. */
  pid: number;
  dir: string;
  /** SIGTERM, then SIGKILL after a grace period; removes a temp dir it created. Idempotent. */
  stop(): Promise<void>;
  /** Stops and starts charon with the same config and socket; resolves when VICI answers. */
  restart(): Promise<void>;
}

export interface CharonOptions {
  /** Run inside this existing network namespace; without it charon gets a fresh empty one. */
  netns?: string;
  /** Working directory (config, socket, log, private /run); a temp dir by default. */
  dir?: string;
  /**
   * `libipsec` (default): the test config above (ESP in userspace, for kernels without ESP). `shipped`:
   * deploy/charon/strongswan.conf as it is (kernel ESP); its socket /run/corvid/charon.vici lands in <dir>/run/corvid.
   */
  config?: 'libipsec' | 'shipped';
}

/** undefined when charon tests can run; otherwise one line saying how to enable them. */
export function charonSkipReason(): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root (network namespaces, private mounts, TUN): run the tests as root';
  const missing: string[] = [];
  if (!isExecutable(CHARON_BIN)) missing.push(`${CHARON_BIN} (apt-get install strongswan-charon libcharon-extra-plugins)`);
  if (!onPath('ip')) missing.push('ip (apt-get install iproute2)');
  if (!onPath('unshare')) missing.push('unshare (util-linux)');
  if (missing.length === 0) return undefined;
  return `needs ${missing.join(', ')}`;
}

// The IKE retransmission timers of the shipped charon config, so tests see the dead-peer timing production has.
const SHIPPED_CONF = new URL('../../deploy/charon/strongswan.conf', import.meta.url);

/** The `retransmit_*` settings of deploy/charon/strongswan.conf, as lines for a `charon { }` block. */
export function shippedRetransmitSettings(): string[] {
  const lines = readFileSync(SHIPPED_CONF, 'utf8')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => /^retransmit_\w+\s*=/.test(l));
  if (lines.length === 0) throw new Error(`${SHIPPED_CONF.pathname}: no retransmit_* settings found`);
  return lines;
}

function strongswanConf(dir: string): string {
  return `# Written by test/support/charon.ts
charon {
  load_modular = no
  load = ${PLUGINS}
${shippedRetransmitSettings().map((l) => `  ${l}`).join('\n')}
  plugins {
    vici {
      socket = unix://${join(dir, 'charon.vici')}
    }
  }
  filelog {
    corvid {
      path = ${join(dir, 'charon.log')}
      time_format = %H:%M:%S
      time_add_ms = yes
      default = 1
      esp = 0
      flush_line = yes
    }
  }
  syslog {
    daemon {
      default = -1
    }
  }
}
`;
}

// Children of every live instance, killed by PID if the test process goes away early.
const liveChildren = new Set<ChildProcess>();

function killAllSync(): void {
  for (const child of liveChildren) killSync(child);
  liveChildren.clear();
}

function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once('exit', () => resolve()));
}

function logTail(dir: string): string {
  const tail = (file: string): string => {
    try {
      return readFileSync(join(dir, file), 'utf8').split('\n').slice(-15).join('\n');
    } catch {
      return '';
    }
  };
  return [tail('charon.out'), tail('charon.log')].filter((s) => s.trim() !== '').join('\n');
}

export async function startCharon(opts: CharonOptions = {}): Promise<CharonInstance> {
  const skip = charonSkipReason();
  if (skip !== undefined) throw new Error(`cannot start charon: ${skip}`);
  onProcessExit(killAllSync);

  const ownDir = opts.dir === undefined;
  const dir = opts.dir ?? (await mkdtemp(join(tmpdir(), 'corvid-charon-')));
  await mkdir(join(dir, 'run'), { recursive: true });
  const confPath = join(dir, 'strongswan.conf');
  const shipped = opts.config === 'shipped';
  await writeFile(confPath, shipped ? readFileSync(SHIPPED_CONF, 'utf8') : strongswanConf(dir));
  // The shipped socket path is under /run, which is <dir>/run in charon's mount namespace.
  if (shipped) await mkdir(join(dir, 'run', 'corvid'), { recursive: true });
  const socketPath = shipped ? join(dir, 'run', 'corvid', 'charon.vici') : join(dir, 'charon.vici');

  let child: ChildProcess | undefined;
  let stopping: Promise<void> | undefined;

  const launch = async (): Promise<void> => {
    // /run/charon.pid is compiled in: give each instance its own /run in a private mount namespace.
    // Without a netns, a fresh network namespace keeps charon (ipsec0, routes) off the host.
    const unshare = ['unshare', '--mount', '--propagation', 'private', ...(opts.netns === undefined ? ['--net'] : [])];
    const script = 'mount --bind "$1/run" /run && exec "$2"';
    const argv = [...unshare, 'sh', '-c', script, 'sh', dir, CHARON_BIN];
    const full = opts.netns === undefined ? argv : ['ip', 'netns', 'exec', opts.netns, ...argv];
    // A pid file left by a killed instance could name a live, unrelated process.
    await rm(join(dir, 'run', 'charon.pid'), { force: true });
    const out = openSync(join(dir, 'charon.out'), 'a');
    const started = Date.now();
    try {
      child = spawn(full[0], full.slice(1), {
        stdio: ['ignore', out, out],
        env: { ...process.env, STRONGSWAN_CONF: confPath },
      });
    } finally {
      closeSync(out);
    }
    const proc = child;
    liveChildren.add(proc);
    proc.once('exit', () => liveChildren.delete(proc));
    await new Promise<void>((resolve, reject) => {
      proc.once('spawn', resolve);
      proc.once('error', reject);
    });

    // Ready means VICI answers: a stale socket file survives a stop.
    let lastError: unknown;
    while (Date.now() - started < READY_TIMEOUT_MS) {
      if (proc.exitCode !== null || proc.signalCode !== null) {
        throw new Error(`charon exited (${proc.exitCode ?? proc.signalCode}) during start-up:\n${logTail(dir)}`);
      }
      try {
        const client = await ViciClient.connect(socketPath, { timeoutMs: 1_000 });
        try {
          await client.version();
          return;
        } finally {
          await client.close();
        }
      } catch (err) {
        lastError = err;
      }
      await sleep(20);
    }
    await kill();
    throw new Error(`charon not ready after ${READY_TIMEOUT_MS} ms (${(lastError as Error)?.message}):\n${logTail(dir)}`);
  };

  const kill = async (): Promise<void> => {
    const proc = child;
    if (proc === undefined || proc.exitCode !== null || proc.signalCode !== null) return;
    proc.kill('SIGTERM');
    // A cleared timer, so a quick exit doesn't leave the test process waiting out the grace.
    const killer = setTimeout(() => proc.kill('SIGKILL'), STOP_GRACE_MS);
    try {
      await exited(proc);
    } finally {
      clearTimeout(killer);
    }
  };

  try {
    await launch();
  } catch (err) {
    await kill();
    if (ownDir) await rm(dir, { recursive: true, force: true });
    throw err;
  }

  const instance: CharonInstance = {
    socketPath,
    dir,
    get pid(): number {
      return child?.pid ?? -1;
    },
    stop() {
      stopping ??= (async () => {
        await kill();
        if (ownDir) await rm(dir, { recursive: true, force: true });
      })();
      return stopping;
    },
    async restart() {
      if (stopping !== undefined) throw new Error('charon instance already stopped');
      await kill();
      await launch();
    },
  };
  return instance;
}
