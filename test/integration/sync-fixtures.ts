// Shared helpers of the sync/kube/git integration tests (real control plane, real git; nothing mocked).
import { mkdtemp, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import { installCrds } from '../support/controlplane.ts';
import { CONTENT_TYPE, kubeRequest, statusCode } from '../../src/adapters/kube/client.ts';
import { leasesPath } from '../../src/adapters/kube/leases.ts';
import { microTime } from '../../src/adapters/kube/events.ts';
import { execFile } from 'node:child_process';
import { startSync, type SyncHandle, type SyncOptions } from '../../src/sync/index.ts';
import { jsonLogger } from '../../src/shell/log.ts';
import { createServer as createTcpServer, connect as tcpConnect, type Socket } from 'node:net';
import { waitFor as pollUntil } from '../support/wait.ts';
import { parseAllDocuments } from 'yaml';
import { main } from '../../src/cli/main.ts';
import type { Gateway } from '../../src/gateway/types.ts';


/** Install the Gateway and Topology CRDs from deploy/crds/ and wait until they are Established. */
export async function installCorvidCrds(kc: KubeConfig): Promise<void> {
  await installCrds(kc);
}

export { ensureNamespace } from '../support/controlplane.ts';

/** Write (create or replace) a heartbeat Lease the way an agent would. */
export async function writeHeartbeat(
  kc: KubeConfig,
  namespace: string,
  node: string,
  opts: { renewTime: Date; acquireTime?: Date; leaseDurationSeconds?: number; tunnels?: Record<string, { up: boolean; since: string }> },
): Promise<void> {
  const path = `${leasesPath(namespace)}/${node}`;
  const annotations = opts.tunnels ? { 'corvid.dev/tunnels': JSON.stringify(opts.tunnels) } : undefined;
  const spec = {
    holderIdentity: node,
    leaseDurationSeconds: opts.leaseDurationSeconds ?? 3,
    renewTime: microTime(opts.renewTime),
    acquireTime: microTime(opts.acquireTime ?? opts.renewTime),
  };
  for (let attempt = 0; ; attempt++) {
    let cur: any;
    try {
      cur = await kubeRequest(kc, { method: 'GET', path });
    } catch (e) {
      if (statusCode(e) !== 404) throw e;
    }
    try {
      if (cur === undefined) {
        await kubeRequest(kc, {
          method: 'POST',
          path: leasesPath(namespace),
          body: { apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: { name: node, namespace, annotations }, spec },
        });
      } else {
        cur.spec = spec;
        cur.metadata.annotations = annotations;
        await kubeRequest(kc, { method: 'PUT', path, body: cur });
      }
      return;
    } catch (e) {
      if (statusCode(e) !== 409 || attempt > 5) throw e;
    }
  }
}

export async function deleteLease(kc: KubeConfig, namespace: string, name: string): Promise<void> {
  try {
    await kubeRequest(kc, { method: 'DELETE', path: `${leasesPath(namespace)}/${name}` });
  } catch (e) {
    if (statusCode(e) !== 404) throw e;
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** waitFor with the sync tests' defaults (10 s, every 50 ms). */
export function waitFor<T>(what: string, fn: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs = 10_000, everyMs = 50): Promise<T> {
  return pollUntil(what, fn, timeoutMs, everyMs);
}

// ---------------------------------------------------------------- git: a local bare "remote" and a work tree

function run(cmd: string, args: string[], cwd?: string, env?: Record<string, string>): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { cwd, env: { ...process.env, ...env } }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${cmd} ${args.join(' ')}: ${err.message}\n${stderr}`));
      else resolve(stdout);
    });
  });
}

export interface GitRemote {
  /** The bare repository (the URL the sync clones). */
  url: string;
  /** A work tree with a push remote. */
  work: string;
  /** An SSH signing key and an allowed_signers file trusting it. */
  signingKey: string;
  allowedSigners: string;
  /** A second key that is NOT in allowed_signers. */
  untrustedKey: string;
  /** Write a file, commit (signed with `sign`), push to `branch`; returns the commit sha. */
  commit(path: string, text: string, opts?: { sign?: 'trusted' | 'untrusted'; branch?: string; message?: string }): Promise<string>;
  tag(name: string): Promise<void>;
  root: string;
  cleanup(): Promise<void>;
}

export async function makeGitRemote(): Promise<GitRemote> {
  const root = await mkdtemp(join(tmpdir(), 'corvid-git-'));
  const url = join(root, 'remote.git');
  const work = join(root, 'work');
  await run('git', ['init', '--bare', '--quiet', '--initial-branch=main', url]);
  await run('git', ['init', '--quiet', '--initial-branch=main', work]);
  await run('git', ['remote', 'add', 'origin', url], work);
  for (const [k, v] of [
    ['user.name', 'Corvid Test'],
    ['user.email', 'test@corvid.dev'],
    ['commit.gpgsign', 'false'],
    ['tag.gpgsign', 'false'],
  ]) {
    await run('git', ['config', k, v], work);
  }
  const signingKey = join(root, 'signing');
  const untrustedKey = join(root, 'untrusted');
  await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'test@corvid.dev', '-f', signingKey]);
  await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'mallory@corvid.dev', '-f', untrustedKey]);
  const pub = (await readFile(`${signingKey}.pub`, 'utf8')).trim().split(' ').slice(0, 2).join(' ');
  const allowedSigners = join(root, 'allowed_signers');
  await writeFile(allowedSigners, `test@corvid.dev ${pub}\n`);
  return {
    url,
    work,
    root,
    signingKey,
    allowedSigners,
    untrustedKey,
    async commit(path, text, opts = {}) {
      const branch = opts.branch ?? 'main';
      const current = (await run('git', ['rev-parse', '--abbrev-ref', 'HEAD'], work).catch(() => 'main\n')).trim();
      if (current !== branch) await run('git', ['checkout', '--quiet', '-B', branch], work);
      const full = join(work, path);
      await import('node:fs/promises').then((fs) => fs.mkdir(join(full, '..'), { recursive: true }));
      await writeFile(full, text);
      await run('git', ['add', path], work);
      const sign =
        opts.sign === undefined
          ? []
          : ['-c', 'gpg.format=ssh', '-c', `user.signingkey=${opts.sign === 'trusted' ? signingKey : untrustedKey}`, '-c', 'commit.gpgsign=true'];
      await run('git', [...sign, 'commit', '--quiet', '--allow-empty', '-m', opts.message ?? `update ${path}`], work);
      await run('git', ['push', '--quiet', '--force', 'origin', `${branch}:${branch}`], work);
      return (await run('git', ['rev-parse', 'HEAD'], work)).trim();
    },
    async tag(name) {
      await run('git', ['tag', '-f', name], work);
      await run('git', ['push', '--quiet', '--force', 'origin', `refs/tags/${name}`], work);
    },
    async cleanup() {
      await rm(root, { recursive: true, force: true });
    },
  };
}

// ---------------------------------------------------------------- the sync under test

export interface PoolSpec {
  name: string;
  /** Value of the `pool` node label. */
  label: string;
  gateways: string[];
  behindNAT?: boolean;
}

/** A topology document: pools selected by the `pool` label, gateways with documentation public IPs. */
export function topologyYaml(o: {
  name: string;
  pools: PoolSpec[];
  allowEmpty?: boolean;
  heartbeatTimeout?: string;
  minHealthy?: string;
}): string {
  let ip = 1;
  const lines = [
    'apiVersion: corvid.dev/v1alpha1',
    'kind: Topology',
    'metadata:',
    `  name: ${o.name}`,
    'spec:',
    ...(o.allowEmpty ? ['  allowEmpty: true'] : []),
    '  encryption:',
    '    pskSecretRef: {name: corvid-psk, key: psk}',
    '  election:',
    `    heartbeatTimeout: ${o.heartbeatTimeout ?? '2s'}`,
    `    minHealthy: ${o.minHealthy ?? '0s'}`,
  ];
  if (o.pools.length === 0) lines.push('  pools: []');
  else lines.push('  pools:');
  for (const p of o.pools) {
    lines.push(`    - name: ${p.name}`, `      nodeSelector: {matchLabels: {pool: ${p.label}}}`, '      gateways:');
    for (const g of p.gateways) lines.push(`        - {node: ${g}, publicIP: 203.0.113.${ip++}}`);
    if (p.behindNAT) lines.push('      behindNAT: true');
  }
  return `${lines.join('\n')}\n`;
}

export interface TestSync {
  handle: SyncHandle;
  logs: Record<string, unknown>[];
}

/** Start a sync in-process with test timings (fast informer retries, short debounce); logs are captured. */
export async function startTestSync(kc: KubeConfig, o: Partial<SyncOptions> & Pick<SyncOptions, 'source'>): Promise<TestSync> {
  const logs: Record<string, unknown>[] = [];
  const logger = jsonLogger({
    level: 'debug',
    write: (line) => {
      const rec = JSON.parse(line) as Record<string, unknown>;
      logs.push(rec);
      if (process.env.CORVID_TEST_LOGS) process.stderr.write(line);
    },
  });
  const handle = await startSync({
    kubeConfig: kc,
    leaseNamespace: 'corvid-system',
    // Most of these tests run no agent and judge candidates by Ready; sync-health runs heartbeats and the default.
    electWithoutHeartbeat: true,
    informerInitialBackoffMs: 100,
    informerMaxBackoffMs: 1000,
    retryInitialMs: 100,
    retryMaxMs: 1000,
    healthAddress: '127.0.0.1:0',
    metricsAddress: '127.0.0.1:0',
    ...o,
    logger,
  });
  return { handle, logs };
}

/** Gateways and Topologies with their resourceVersions, to prove nothing was written. */
export async function resourceVersions(kc: KubeConfig): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const gws = await kubeRequest<{ items: any[] }>(kc, { method: 'GET', path: '/apis/raven.openyurt.io/v1beta1/gateways' });
  for (const g of gws.items) out[`gateway/${g.metadata.name}`] = g.metadata.resourceVersion;
  const tps = await kubeRequest<{ items: any[] }>(kc, { method: 'GET', path: '/apis/corvid.dev/v1alpha1/topologies' });
  for (const t of tps.items) out[`topology/${t.metadata.name}`] = t.metadata.resourceVersion;
  return out;
}

export async function deleteAllGateways(kc: KubeConfig): Promise<void> {
  const gws = await kubeRequest<{ items: any[] }>(kc, { method: 'GET', path: '/apis/raven.openyurt.io/v1beta1/gateways' });
  for (const g of gws.items) {
    await kubeRequest(kc, { method: 'DELETE', path: `/apis/raven.openyurt.io/v1beta1/gateways/${g.metadata.name}` }).catch(() => undefined);
  }
}

/** A Topology applied as a user applies it (kubectl apply = server-side apply under the manager kubectl). */
export async function applyTopologyCr(kc: KubeConfig, doc: string): Promise<void> {
  const obj = parseAllDocuments(doc)[0].toJS() as { metadata: { name: string } };
  await kubeRequest(kc, {
    method: 'PATCH',
    path: `/apis/corvid.dev/v1alpha1/topologies/${obj.metadata.name}`,
    query: { fieldManager: 'kubectl', force: true },
    contentType: CONTENT_TYPE.apply,
    body: obj,
  });
}

/** Replace a file the way an editor or a config tool does: a new file renamed over the old one. */
export async function writeAtomically(path: string, text: string): Promise<void> {
  await writeFile(`${path}.tmp`, text);
  await rename(`${path}.tmp`, path);
}

export async function deleteTopology(kc: KubeConfig, name: string): Promise<void> {
  await kubeRequest(kc, { method: 'DELETE', path: `/apis/corvid.dev/v1alpha1/topologies/${name}` }).catch(() => undefined);
}

/** Agents' heartbeats: renew one Lease per node every periodMs (acquireTime fixed), until stopped. */
export function startHeartbeats(kc: KubeConfig, namespace: string, nodes: string[], periodMs = 500) {
  const acquired = new Date();
  const last = new Map<string, Date>();
  const timers = new Map<string, NodeJS.Timeout>();
  const inflight = new Map<string, Promise<void>>();
  const beat = (node: string): Promise<void> => {
    const renewTime = new Date();
    const p = writeHeartbeat(kc, namespace, node, { renewTime, acquireTime: acquired, leaseDurationSeconds: 2 })
      .then(() => void last.set(node, renewTime))
      .catch(() => undefined);
    inflight.set(node, p);
    return p;
  };
  const start = async (node: string): Promise<void> => {
    await beat(node);
    timers.set(node, setInterval(() => void beat(node), periodMs));
  };
  return {
    async start(): Promise<void> {
      await Promise.all(nodes.map(start));
    },
    /** Stop one node's heartbeat; resolves to the last renewTime written. */
    async stop(node: string): Promise<Date> {
      clearInterval(timers.get(node));
      timers.delete(node);
      await inflight.get(node);
      return last.get(node)!;
    },
    resume: start,
    async stopAll(): Promise<void> {
      for (const t of timers.values()) clearInterval(t);
      timers.clear();
      await Promise.all(inflight.values());
    },
  };
}

// ---------------------------------------------------------------- a TCP proxy to cut the sync off the API server

export interface CuttableProxy {
  /** A kubeconfig like `kc` whose server is the proxy. */
  kubeConfig: KubeConfig;
  /** Drop every connection and refuse new ones until resume(). */
  cut(): void;
  resume(): void;
  close(): Promise<void>;
}

export async function cuttableProxy(kc: KubeConfig): Promise<CuttableProxy> {
  const target = new URL(kc.getCurrentCluster()!.server);
  const sockets = new Set<Socket>();
  let open = true;
  const server = createTcpServer((client) => {
    if (!open) {
      client.destroy();
      return;
    }
    const upstream = tcpConnect(Number(target.port), target.hostname);
    sockets.add(client);
    sockets.add(upstream);
    const drop = (): void => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on('error', drop).on('close', drop);
    upstream.on('error', drop).on('close', drop);
    client.pipe(upstream).pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const port = (server.address() as { port: number }).port;
  const proxied = new KubeConfig();
  proxied.loadFromString(kc.exportConfig());
  proxied.clusters = proxied.clusters.map((c) => ({ ...c, server: `https://127.0.0.1:${port}` }));
  return {
    kubeConfig: proxied,
    cut() {
      open = false;
      for (const s of sockets) s.destroy();
      sockets.clear();
    },
    resume() {
      open = true;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

/** `corvid render -f FILE` (no nodes, default revision = sha256 of the file, as the file source's), parsed: what an
 * Argo CD Config Management Plugin would apply. */
export async function renderGateways(file: string): Promise<Gateway[]> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await main(['render', '-f', file], { stdout: { write: (s: string) => out.push(s) }, stderr: { write: (s: string) => err.push(s) }, env: {}, cwd: process.cwd() });
  if (code !== 0) throw new Error(`corvid render exited ${code}: ${err.join('')}`);
  return parseAllDocuments(out.join('')).map((d) => d.toJS() as Gateway);
}
