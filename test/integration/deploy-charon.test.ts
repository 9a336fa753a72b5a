// The charon sidecar as deploy/base/agent-daemonset.yaml runs it: the shipped deploy/charon/strongswan.conf,
// uid 0 with exactly the capabilities the manifest adds (bounding set), no_new_privs, a read-only root with
// writable /run and the shared VICI directory at /run/corvid. It must start, answer the agent's VICI client and
// the manifest's probe command, and need each capability it is given.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, openSync, closeSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseAllDocuments } from 'yaml';
import { ViciClient, type VersionInfo } from '../../src/agent/vici/index.ts';

const REPO_ROOT = new URL('../../', import.meta.url).pathname;
const CONF = join(REPO_ROOT, 'deploy', 'charon', 'strongswan.conf');
const CHARON = '/usr/lib/ipsec/charon';

const daemonset = parseAllDocuments(readFileSync(join(REPO_ROOT, 'deploy', 'base', 'agent-daemonset.yaml'), 'utf8'))[0].toJS();
const charonSpec = daemonset.spec.template.spec.containers.find((c: { name: string }) => c.name === 'charon');
const CAPS: string[] = charonSpec.securityContext.capabilities.add;

function which(cmd: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
}

function skipReason(): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root (mount and network namespaces, capability sets): run the tests as root';
  const missing = [
    existsSync(CHARON) ? undefined : `${CHARON} (apt-get install strongswan-charon)`,
    ...['unshare', 'setpriv', 'nsenter', 'swanctl'].filter((c) => !which(c)),
  ].filter(Boolean);
  return missing.length > 0 ? `needs ${missing.join(', ')}` : undefined;
}
const SKIP = skipReason();

interface Sidecar {
  child: ChildProcess;
  dir: string;
  socket: string;
  output(): string;
  stop(): Promise<void>;
}

const running = new Set<Sidecar>();
after(async () => {
  for (const s of running) await s.stop();
});

/** Start charon the way the pod does, with `caps` as its whole capability set. */
async function startSidecar(caps: string[]): Promise<Sidecar> {
  const dir = mkdtempSync(join(tmpdir(), 'corvid-charon-sidecar-'));
  mkdirSync(join(dir, 'run'));
  mkdirSync(join(dir, 'vici'));
  const bounding = ['-all', ...caps.map((c) => `+${c.toLowerCase()}`)].join(',');
  // A private mount namespace and a fresh network namespace: nothing reaches the host. Inside it, the pod's
  // filesystem view: /run and /run/corvid writable (the two emptyDirs), everything else read-only.
  const script = [
    'mount --bind "$1/run" /run',
    'mkdir -p /run/corvid',
    'mount --bind "$1/vici" /run/corvid',
    'mount -o remount,bind,ro /',
    `exec setpriv --no-new-privs --inh-caps -all --bounding-set ${bounding} "$2"`,
  ].join(' && ');
  const out = openSync(join(dir, 'charon.out'), 'a');
  let child: ChildProcess;
  try {
    child = spawn('unshare', ['--mount', '--propagation', 'private', '--net', 'sh', '-c', script, 'sh', dir, CHARON], {
      stdio: ['ignore', out, out],
      env: { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin', STRONGSWAN_CONF: CONF },
    });
  } finally {
    closeSync(out);
  }
  const s: Sidecar = {
    child,
    dir,
    socket: join(dir, 'vici', 'charon.vici'),
    output: () => readFileSync(join(dir, 'charon.out'), 'utf8'),
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const done = new Promise((r) => child.once('exit', r));
        if ((await Promise.race([done, sleep(5000).then(() => 'timeout')])) === 'timeout') child.kill('SIGKILL');
      }
      running.delete(s);
      rmSync(dir, { recursive: true, force: true });
    },
  };
  running.add(s);
  return s;
}

/** Resolves when VICI answers `version`; rejects if charon exits or 10 s pass. */
async function viciReady(s: Sidecar): Promise<VersionInfo> {
  const deadline = Date.now() + 10_000;
  let last: unknown;
  while (Date.now() < deadline) {
    if (s.child.exitCode !== null || s.child.signalCode !== null) throw new Error(`charon exited:\n${s.output()}`);
    try {
      const client = await ViciClient.connect(s.socket, { timeoutMs: 1000 });
      try {
        return await client.version();
      } finally {
        await client.close();
      }
    } catch (e) {
      last = e;
    }
    await sleep(25);
  }
  throw new Error(`VICI did not answer: ${(last as Error)?.message}\n${s.output()}`);
}

describe('charon sidecar', { skip: SKIP }, () => {
  test(`starts with only ${CAPS.join(' + ')} and a read-only root, and answers the agent and the probe`, async () => {
    const s = await startSidecar(CAPS);
    try {
      const version = await viciReady(s);
      assert.equal(version.daemon, 'charon');
      // The manifest's own probe command, run inside the sidecar's namespaces.
      const probe: string[] = charonSpec.readinessProbe.exec.command;
      const r = spawnSync('nsenter', ['-t', String(s.child.pid), '-m', '-n', ...probe], {
        encoding: 'utf8',
        env: { PATH: process.env.PATH ?? '', STRONGSWAN_CONF: CONF },
        timeout: 10_000,
      });
      assert.equal(r.status, 0, `probe ${probe.join(' ')}: ${r.stderr}`);
      const load = /^\s*load = (.*)$/m.exec(readFileSync(CONF, 'utf8'))![1];
      assert.match(r.stdout, new RegExp(`loaded plugins: charon ${load}\\n`));
      assert.equal(r.stderr, '', 'swanctl warns about nothing (its plugin list only names plugins the image has)');
      const log = s.output();
      assert.doesNotMatch(log, /requires CAP_|failed|Operation not permitted/, log);
    } finally {
      await s.stop();
    }
  });

  test('needs NET_BIND_SERVICE: without it charon has no IKE socket', async () => {
    const s = await startSidecar(CAPS.filter((c) => c !== 'NET_BIND_SERVICE'));
    try {
      await viciReady(s);
      await sleep(200);
      assert.match(s.output(), /socket-default plugin requires CAP_NET_BIND_SERVICE/);
    } finally {
      await s.stop();
    }
  });

  test('needs NET_ADMIN: without it charon cannot reach the kernel\'s IPsec and gives up', async () => {
    const s = await startSidecar(CAPS.filter((c) => c !== 'NET_ADMIN'));
    try {
      await assert.rejects(viciReady(s), /charon exited/);
      assert.match(s.output(), /kernel-netlink plugin might require CAP_NET_ADMIN|initialization failed/);
    } finally {
      await s.stop();
    }
  });
});
