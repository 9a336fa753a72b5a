// A real Kubernetes control plane (etcd + kube-apiserver v1.20.2) for integration tests.
// See test/support/README.md. With TEST_KUBECONFIG set, an existing cluster is used instead.
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { existsSync, openSync, closeSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { request as httpsRequest } from 'node:https';
import { createServer, type Server } from 'node:net';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { before, after } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseAllDocuments, stringify as toYaml } from 'yaml';
import {
  ApiextensionsV1Api,
  CoreV1Api,
  KubeConfig,
  PatchStrategy,
  setHeaderOptions,
  type V1Node,
  type V1NodeCondition,
} from '@kubernetes/client-node';
import { exited, isExecutable, killSync, onPath, onProcessExit, stopChild } from './host.ts';
import { kubeRequest, statusCode as kubeStatusCode } from '../../src/adapters/kube/client.ts';

export interface ControlPlane {
  /** Admin kubeconfig file (token auth, CA data). */
  kubeconfigPath: string;
  /** Admin client config. */
  kubeConfig: KubeConfig;
  /** Unprivileged user (no RBAC grants) for RBAC tests. */
  userKubeConfig(): KubeConfig;
  /** Stop and start kube-apiserver only (etcd keeps data); resolves when /readyz is ok. */
  restartApiServer(): Promise<void>;
  /** Compact etcd at its current revision, so watches from older resourceVersions get 410 Gone. */
  compactEtcd(): Promise<void>;
  /** Kill only this control plane's processes and remove its temp dir. Idempotent. */
  stop(): Promise<void>;
  /** True when TEST_KUBECONFIG is used; restartApiServer/compactEtcd then throw. */
  external: boolean;
}

const ETCD_BIN = '/usr/bin/etcd';
const READY_TIMEOUT_MS = 60_000;
const ADMIN_USER = 'corvid-admin';
const UNPRIVILEGED_USER = 'corvid-user';
const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** Same location test/support/build-kube-apiserver.sh writes to. */
export function kubeApiServerPath(): string {
  const cache = process.env.CORVID_CACHE_DIR || join(homedir(), '.cache', 'corvid');
  return join(cache, 'kube-apiserver-1.20.2', 'bin', 'kube-apiserver');
}

/** undefined when control-plane tests can run; otherwise one line saying how to enable them. */
export function controlPlaneSkipReason(): string | undefined {
  const external = process.env.TEST_KUBECONFIG;
  if (external) {
    return existsSync(external) ? undefined : `TEST_KUBECONFIG=${external} does not exist`;
  }
  const missing: string[] = [];
  if (!isExecutable(kubeApiServerPath())) missing.push('the cached kube-apiserver');
  if (!isExecutable(ETCD_BIN)) missing.push(ETCD_BIN);
  if (!onPath('openssl')) missing.push('openssl');
  if (missing.length === 0) return undefined;
  return `needs ${missing.join(', ')}: run (as root) test/support/build-kube-apiserver.sh, or set TEST_KUBECONFIG`;
}

// ---------------------------------------------------------------- process bookkeeping

// Children and temp dirs of every live control plane, cleaned up by PID and path if the test
// process goes away without stop().
const liveChildren = new Set<ChildProcess>();
const liveDirs = new Set<string>();

function cleanupSync(): void {
  for (const child of liveChildren) killSync(child);
  liveChildren.clear();
  for (const dir of liveDirs) rmSync(dir, { recursive: true, force: true });
  liveDirs.clear();
}

async function freePorts(n: number): Promise<number[]> {
  // Hold all listeners open at once so the OS hands out distinct ports.
  const servers: Server[] = [];
  try {
    for (let i = 0; i < n; i++) {
      const srv = createServer();
      servers.push(srv);
      await new Promise<void>((resolve, reject) => {
        srv.once('error', reject);
        srv.listen(0, '127.0.0.1', () => resolve());
      });
    }
    return servers.map((s) => {
      const addr = s.address();
      if (addr === null || typeof addr === 'string') throw new Error('unexpected listener address');
      return addr.port;
    });
  } finally {
    await Promise.all(servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
  }
}

function run(cmd: string, args: string[], cwd: string): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { cwd }, (err, _stdout, stderr) => {
      if (err) reject(new Error(`${cmd} ${args.join(' ')} failed: ${err.message}\n${stderr}`));
      else resolve();
    });
  });
}

function startProcess(bin: string, args: string[], logPath: string): ChildProcess {
  const fd = openSync(logPath, 'a');
  try {
    const child = spawn(bin, args, { stdio: ['ignore', fd, fd] });
    liveChildren.add(child);
    child.once('exit', () => liveChildren.delete(child));
    // Do not keep the test process alive on the child's account; exit hooks kill it.
    child.unref();
    return child;
  } finally {
    closeSync(fd);
  }
}

// Children leave liveChildren through their own 'exit' listener.
async function stopProcess(child: ChildProcess | undefined): Promise<void> {
  if (child !== undefined) await stopChild(child, 10_000);
}

async function logTail(path: string, lines = 30): Promise<string> {
  try {
    const text = await readFile(path, 'utf8');
    return text.trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

function httpsGet(url: string, ca: string, token: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(url, { ca, headers: { Authorization: `Bearer ${token}` }, timeout: 5_000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}

async function etcdPost(clientUrl: string, path: string, body: unknown): Promise<any> {
  const res = await fetch(`${clientUrl}${path}`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify(body),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`etcd ${path}: HTTP ${res.status}: ${text}`);
  return JSON.parse(text);
}

// ---------------------------------------------------------------- start

interface Local {
  dir: string;
  etcdUrl: string;
  apiPort: number;
  ca: string;
  adminToken: string;
  etcd?: ChildProcess;
  apiserver?: ChildProcess;
}

function addressInUse(log: string): boolean {
  return /address already in use/i.test(log);
}

async function startEtcd(l: Local): Promise<void> {
  const log = join(l.dir, 'etcd.log');
  for (let attempt = 1; ; attempt++) {
    const [clientPort, peerPort] = await freePorts(2);
    l.etcdUrl = `http://127.0.0.1:${clientPort}`;
    const peerUrl = `http://127.0.0.1:${peerPort}`;
    l.etcd = startProcess(
      ETCD_BIN,
      [
        '--name=corvid-test',
        `--data-dir=${join(l.dir, 'etcd-data')}`,
        `--listen-client-urls=${l.etcdUrl}`,
        `--advertise-client-urls=${l.etcdUrl}`,
        `--listen-peer-urls=${peerUrl}`,
        `--initial-advertise-peer-urls=${peerUrl}`,
        `--initial-cluster=corvid-test=${peerUrl}`,
        '--logger=zap',
        '--log-outputs=stderr',
      ],
      log,
    );
    const deadline = Date.now() + READY_TIMEOUT_MS;
    while (Date.now() < deadline) {
      if (exited(l.etcd)) break;
      try {
        const res = await fetch(`${l.etcdUrl}/health`);
        if (res.ok && ((await res.json()) as { health?: string }).health === 'true') return;
      } catch {
        // not listening yet
      }
      await sleep(100);
    }
    const tail = await logTail(log);
    await stopProcess(l.etcd);
    // The free port may have been taken between probing and binding: try fresh ports.
    if (attempt < 3 && addressInUse(tail)) continue;
    throw new Error(`etcd did not become healthy within ${READY_TIMEOUT_MS / 1000}s; log tail:\n${tail}`);
  }
}

function apiServerArgs(l: Local): string[] {
  const d = l.dir;
  return [
    `--etcd-servers=${l.etcdUrl}`,
    '--bind-address=127.0.0.1',
    `--secure-port=${l.apiPort}`,
    // 1.20 otherwise opens plain HTTP on 8080.
    '--insecure-port=0',
    `--cert-dir=${join(d, 'certs')}`,
    `--tls-cert-file=${join(d, 'serving.crt')}`,
    `--tls-private-key-file=${join(d, 'serving.key')}`,
    `--token-auth-file=${join(d, 'tokens.csv')}`,
    '--authorization-mode=RBAC',
    '--service-account-issuer=https://kubernetes.default.svc.cluster.local',
    `--service-account-key-file=${join(d, 'sa.pub')}`,
    `--service-account-signing-key-file=${join(d, 'sa.key')}`,
    '--service-cluster-ip-range=10.96.0.0/16',
    '--advertise-address=127.0.0.1',
    // No kubelets or nodes to reach; a loopback endpoint for the kubernetes Service is invalid.
    '--endpoint-reconciler-type=none',
    // Watches go straight to etcd, so compactEtcd() deterministically yields 410 Gone for old watches.
    '--watch-cache=false',
    '--profiling=false',
  ];
}

async function startApiServer(l: Local): Promise<void> {
  const log = join(l.dir, 'kube-apiserver.log');
  l.apiserver = startProcess(kubeApiServerPath(), apiServerArgs(l), log);
  const child = l.apiserver;
  const url = `https://127.0.0.1:${l.apiPort}/readyz`;
  const deadline = Date.now() + READY_TIMEOUT_MS;
  let last = 'no answer';
  while (Date.now() < deadline && !exited(child)) {
    try {
      const res = await httpsGet(url, l.ca, l.adminToken);
      if (res.status === 200) return;
      last = `HTTP ${res.status}: ${res.body.trim().split('\n').filter((x) => x.includes('failed')).join('; ')}`;
    } catch (e) {
      last = (e as Error).message;
    }
    await sleep(200);
  }
  const why = exited(child)
    ? `exited (code ${child.exitCode}, signal ${child.signalCode})`
    : `not ready within ${READY_TIMEOUT_MS / 1000}s (last /readyz: ${last})`;
  await stopProcess(child);
  throw new Error(`kube-apiserver ${why}; log tail:\n${await logTail(log)}`);
}

async function makeCredentials(dir: string): Promise<{ ca: string; adminToken: string; userToken: string }> {
  const san = 'subjectAltName=IP:127.0.0.1,DNS:localhost';
  await Promise.all([
    run(
      'openssl',
      ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-sha256', '-days', '7', '-subj', '/CN=127.0.0.1',
        '-addext', san, '-keyout', 'serving.key', '-out', 'serving.crt'],
      dir,
    ),
    run('openssl', ['genrsa', '-out', 'sa.key', '2048'], dir).then(() =>
      run('openssl', ['rsa', '-in', 'sa.key', '-pubout', '-out', 'sa.pub'], dir),
    ),
  ]);
  const adminToken = randomBytes(24).toString('hex');
  const userToken = randomBytes(24).toString('hex');
  // token,user,uid,"groups"; the unprivileged user only gets system:authenticated implicitly.
  await writeFile(
    join(dir, 'tokens.csv'),
    `${adminToken},${ADMIN_USER},${ADMIN_USER},"system:masters"\n${userToken},${UNPRIVILEGED_USER},${UNPRIVILEGED_USER}\n`,
    { mode: 0o600 },
  );
  return { ca: await readFile(join(dir, 'serving.crt'), 'utf8'), adminToken, userToken };
}

function kubeconfigFor(server: string, ca: string, user: string, token: string): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: 'corvid-test', server, caData: Buffer.from(ca).toString('base64'), skipTLSVerify: false }],
    users: [{ name: user, token }],
    contexts: [{ name: user, cluster: 'corvid-test', user }],
    currentContext: user,
  });
  return kc;
}

function unsupported(what: string): () => Promise<void> {
  return async () => {
    throw new Error(`${what} is unsupported on external cluster (TEST_KUBECONFIG)`);
  };
}

function startExternal(path: string): ControlPlane {
  const kc = new KubeConfig();
  kc.loadFromFile(path);
  return {
    kubeconfigPath: path,
    kubeConfig: kc,
    userKubeConfig() {
      // An external cluster has no user we know of; let the caller provide one.
      const userPath = process.env.TEST_USER_KUBECONFIG;
      if (!userPath) throw new Error('userKubeConfig() on external cluster needs TEST_USER_KUBECONFIG');
      const u = new KubeConfig();
      u.loadFromFile(userPath);
      return u;
    },
    restartApiServer: unsupported('restartApiServer()'),
    compactEtcd: unsupported('compactEtcd()'),
    stop: async () => {},
    external: true,
  };
}

/** Start etcd + kube-apiserver on free loopback ports, or use TEST_KUBECONFIG's cluster. */
export async function startControlPlane(): Promise<ControlPlane> {
  const external = process.env.TEST_KUBECONFIG;
  if (external) return startExternal(external);
  const skip = controlPlaneSkipReason();
  if (skip !== undefined) throw new Error(`cannot start control plane: ${skip}`);

  onProcessExit(cleanupSync);
  const dir = await mkdtemp(join(tmpdir(), 'corvid-cp-'));
  liveDirs.add(dir);
  const l: Local = { dir, etcdUrl: '', apiPort: 0, ca: '', adminToken: '' };
  let stopped = false;
  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    await stopProcess(l.apiserver);
    await stopProcess(l.etcd);
    await rm(dir, { recursive: true, force: true });
    liveDirs.delete(dir);
  };

  try {
    const creds = await makeCredentials(dir);
    l.ca = creds.ca;
    l.adminToken = creds.adminToken;
    await startEtcd(l);
    for (let attempt = 1; ; attempt++) {
      [l.apiPort] = await freePorts(1);
      try {
        await startApiServer(l);
        break;
      } catch (e) {
        if (attempt < 3 && addressInUse((e as Error).message)) continue;
        throw e;
      }
    }
    const server = `https://127.0.0.1:${l.apiPort}`;
    const kubeConfig = kubeconfigFor(server, l.ca, ADMIN_USER, l.adminToken);
    const kubeconfigPath = join(dir, 'kubeconfig');
    await writeFile(
      kubeconfigPath,
      toYaml({
        apiVersion: 'v1',
        kind: 'Config',
        clusters: [{ name: 'corvid-test', cluster: { server, 'certificate-authority-data': Buffer.from(l.ca).toString('base64') } }],
        users: [{ name: ADMIN_USER, user: { token: l.adminToken } }],
        contexts: [{ name: ADMIN_USER, context: { cluster: 'corvid-test', user: ADMIN_USER } }],
        'current-context': ADMIN_USER,
      }),
      { mode: 0o600 },
    );
    return {
      kubeconfigPath,
      kubeConfig,
      userKubeConfig: () => kubeconfigFor(server, l.ca, UNPRIVILEGED_USER, creds.userToken),
      async restartApiServer() {
        if (stopped) throw new Error('control plane is stopped');
        await stopProcess(l.apiserver);
        await startApiServer(l);
      },
      async compactEtcd() {
        if (stopped) throw new Error('control plane is stopped');
        // etcd's gRPC gateway: read the current revision, then compact to it and wait for it to apply.
        const range = await etcdPost(l.etcdUrl, '/v3/kv/range', { key: Buffer.from('/').toString('base64') });
        const revision = range.header?.revision;
        if (revision === undefined) throw new Error(`etcd range gave no revision: ${JSON.stringify(range)}`);
        await etcdPost(l.etcdUrl, '/v3/kv/compaction', { revision, physical: true });
      },
      stop,
      external: false,
    };
  } catch (e) {
    await stop();
    throw e;
  }
}

/**
 * Registers file-level before/after hooks (node:test): one control plane per test file,
 * stopped after the file's tests even if they fail. Use `{ skip: cp.skip }` on each test.
 */
export function useControlPlane(): { get(): ControlPlane; skip: string | undefined } {
  const skip = controlPlaneSkipReason();
  let cp: ControlPlane | undefined;
  before(async () => {
    if (skip === undefined) cp = await startControlPlane();
  }, { timeout: 3 * READY_TIMEOUT_MS });
  after(async () => {
    await cp?.stop();
  });
  return {
    skip,
    get() {
      if (cp === undefined) throw new Error(skip ?? 'control plane not started (did the before hook fail?)');
      return cp;
    },
  };
}

// ---------------------------------------------------------------- cluster helpers

function statusCode(e: unknown): number | undefined {
  const code = (e as { code?: unknown })?.code;
  return typeof code === 'number' ? code : undefined;
}

/**
 * Server-side apply every CustomResourceDefinition in the YAML files of `dir` (default deploy/crds/), or only in the
 * files named by `only`, then wait until each is Established. Documents of other kinds are skipped.
 */
export async function installCrds(kc: KubeConfig, dir: string = join(REPO_ROOT, 'deploy', 'crds'), only?: readonly string[]): Promise<void> {
  const api = kc.makeApiClient(ApiextensionsV1Api);
  const files = readdirSync(dir).filter((f) => /\.ya?ml$/.test(f) && (only === undefined || only.includes(f))).sort();
  const names: string[] = [];
  for (const file of files) {
    const docs = parseAllDocuments(readFileSync(join(dir, file), 'utf8'));
    for (const doc of docs) {
      if (doc.errors.length > 0) throw new Error(`${file}: ${doc.errors[0].message}`);
      const obj = doc.toJS() as { kind?: string; metadata?: { name?: string } } | null;
      // Other documents (kustomization.yaml) are not for the API server.
      if (obj === null || obj === undefined || obj.kind !== 'CustomResourceDefinition') continue;
      if (!obj.metadata?.name) throw new Error(`${file}: CustomResourceDefinition without metadata.name`);
      await api.patchCustomResourceDefinition(
        { name: obj.metadata.name, body: obj, fieldManager: 'corvid-test', force: true },
        setHeaderOptions('Content-Type', PatchStrategy.ServerSideApply),
      );
      names.push(obj.metadata.name);
    }
  }
  if (names.length === 0) throw new Error(`installCrds: no CustomResourceDefinition YAML in ${dir}`);
  const deadline = Date.now() + 30_000;
  for (const name of names) {
    for (;;) {
      const crd = await api.readCustomResourceDefinition({ name });
      if (crd.status?.conditions?.some((c) => c.type === 'Established' && c.status === 'True')) break;
      if (Date.now() > deadline) {
        throw new Error(`CRD ${name} not Established within 30s: ${JSON.stringify(crd.status?.conditions)}`);
      }
      await sleep(100);
    }
  }
}

export interface NodeSpec {
  name: string;
  labels?: Record<string, string>;
  internalIP?: string;
  podCIDRs?: string[];
  ready?: boolean;
  annotations?: Record<string, string>;
  unschedulable?: boolean;
}

/** Ready True/False as a kubelet posts it; 'Unknown' as the node lifecycle controller sets it when the kubelet is silent. */
function readyCondition(ready: boolean | 'Unknown', lastTransitionTime: Date, now: Date): V1NodeCondition {
  if (ready === 'Unknown') {
    return { type: 'Ready', status: 'Unknown', reason: 'NodeStatusUnknown', message: 'Kubelet stopped posting node status.', lastHeartbeatTime: now, lastTransitionTime };
  }
  return {
    type: 'Ready',
    status: ready ? 'True' : 'False',
    reason: ready ? 'KubeletReady' : 'KubeletNotReady',
    message: ready ? 'kubelet is posting ready status' : 'set not ready by test',
    lastHeartbeatTime: now,
    lastTransitionTime,
  };
}

const mergePatch = (): ReturnType<typeof setHeaderOptions> => setHeaderOptions('Content-Type', PatchStrategy.MergePatch);

/** Create a Node; nothing runs a kubelet, so its status is whatever the test sets. `ready` defaults to true. */
export async function createNode(kc: KubeConfig, n: NodeSpec): Promise<void> {
  const core = kc.makeApiClient(CoreV1Api);
  const body: V1Node = {
    apiVersion: 'v1',
    kind: 'Node',
    metadata: { name: n.name, labels: n.labels, annotations: n.annotations },
    spec: {
      podCIDR: n.podCIDRs?.[0],
      podCIDRs: n.podCIDRs,
      unschedulable: n.unschedulable,
    },
  };
  await core.createNode({ body });
  const now = new Date();
  const status: Record<string, unknown> = { conditions: [readyCondition(n.ready ?? true, now, now)] };
  if (n.internalIP !== undefined) status.addresses = [{ type: 'InternalIP', address: n.internalIP }];
  await core.patchNodeStatus({ name: n.name, body: { status } }, mergePatch());
}

/** Set the Ready condition through /status; lastTransitionTime changes only when the status does. */
export async function setNodeReady(kc: KubeConfig, name: string, ready: boolean | 'Unknown'): Promise<void> {
  const core = kc.makeApiClient(CoreV1Api);
  for (let attempt = 1; ; attempt++) {
    const node = await core.readNodeStatus({ name });
    const now = new Date();
    const conditions = node.status?.conditions ?? [];
    const old = conditions.find((c) => c.type === 'Ready');
    const want = ready === 'Unknown' ? 'Unknown' : ready ? 'True' : 'False';
    const transition = old?.status === want && old.lastTransitionTime ? old.lastTransitionTime : now;
    const next = conditions.filter((c) => c.type !== 'Ready').concat(readyCondition(ready, transition, now));
    // A merge patch replaces the whole list, so other conditions are carried over; the
    // resourceVersion turns a concurrent status write into a 409 (retried) rather than a lost update.
    try {
      await core.patchNodeStatus(
        { name, body: { metadata: { resourceVersion: node.metadata?.resourceVersion }, status: { conditions: next } } },
        mergePatch(),
      );
      return;
    } catch (e) {
      if (statusCode(e) !== 409 || attempt >= 5) throw e;
    }
  }
}

/** Delete Nodes; ones that do not exist are ignored. */
export async function deleteNodes(kc: KubeConfig, names: string[]): Promise<void> {
  const core = kc.makeApiClient(CoreV1Api);
  await Promise.all(
    names.map(async (name) => {
      try {
        await core.deleteNode({ name });
      } catch (e) {
        if (statusCode(e) !== 404) throw e;
      }
    }),
  );
}

/** Create a namespace; an existing one is fine. */
export async function ensureNamespace(kc: KubeConfig, name: string): Promise<void> {
  await kubeRequest(kc, { method: 'POST', path: '/api/v1/namespaces', body: { apiVersion: 'v1', kind: 'Namespace', metadata: { name } } }).catch((e) => {
    if (kubeStatusCode(e) !== 409) throw e;
  });
}
