// Sync benchmarks against a real kube-apiserver (1.20, test/support/controlplane.ts), with `corvid sync` run as a
// child process exactly as deployed (bin/corvid.js, leader election on, default timings unless stated).
// `npx node bench/sync.ts`, or through bench/run.ts. Needs the cached kube-apiserver (and git for the first part);
// each part prints one "skipped: <why>" line otherwise.
//
// 3. commit -> Gateway on the webhook path: 50 pools x 4 nodes, a local bare repository followed with a 1 h poll
//    interval (so only the webhook triggers a fetch), 100 gateway candidates heartbeating every second through the
//    agent's own Heartbeat writer. Each run pushes a commit that changes one pool's ESP proposals, POSTs /hooks/git
//    with a valid HMAC-SHA256 signature, and times the moment this process's Gateway watch sees that pool's
//    encryption annotation change. The sync's own log gives the split (webhook -> fetched, reconcile).
// 4. idle API writes: the same sync left alone for 60 s with the heartbeats still renewing. Counted three ways:
//    the sync's corvid_sync_api_writes_total, the resourceVersions of every Gateway and the Topology, and the Events
//    the sync recorded. Leader-Lease renewals (leader election, by design) are counted apart. Goal: 0.
// 5. memory and first reconcile at scale: Nodes created in batches (16 at a time; no kubelet, status set at create),
//    10 per pool, 2 declared gateways per pool, one topology file; `corvid sync --source=file` started afresh per
//    size. Reported: the first full reconcile (from the sync's log), spawn -> settled, and VmRSS / VmHWM of the process
//    from /proc/<pid>/status, sampled once a second while it idles with a 2 s resync. Then a full GC, asked for through
//    the inspector (the process runs with --inspect on loopback), and the heap in use and VmRSS after it: the live
//    set, which VmRSS alone hides (V8 collects lazily while memory is plentiful).
//
// Latencies are medians; nothing is asserted about timings. Everything started here (control planes, processes,
// temp dirs) is stopped or removed in `finally` and by exit hooks.

import { spawn, type ChildProcess } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { controlPlaneSkipReason, startControlPlane, type ControlPlane } from '../test/support/controlplane.ts';
import { deleteAllGateways, deleteTopology, ensureNamespace, installCorvidCrds, makeGitRemote, resourceVersions, type GitRemote } from '../test/integration/sync-fixtures.ts';
import { kubeRequest, statusCode, type KubeConfig } from '../src/adapters/kube/client.ts';
import { gatewayInformer } from '../src/adapters/kube/gateways.ts';
import { getTopology } from '../src/adapters/kube/topologies.ts';
import { Heartbeat } from '../src/adapters/kube/heartbeat.ts';
import { Informer } from '../src/adapters/kube/informer.ts';
import { LEADER_LEASE_NAME, leasesPath, type LeaseJson } from '../src/adapters/kube/leases.ts';
import { listEvents } from '../src/adapters/kube/events.ts';
import { ENCRYPTION_ANNOTATION } from '../src/gateway/keys.ts';
import type { Gateway } from '../src/gateway/types.ts';
import { deployedNodeOptions } from '../test/support/manifests.ts';
import { baselineRssMiB, compiledCorvid, machineLine, median, ms, processMemory, table } from './machine.ts';

const REPO_ROOT = fileURLToPath(new URL('../', import.meta.url));
const NS = 'corvid-system';
const POOL_LABEL = 'topology.corvid.dev/pool';
const TOPOLOGY = 'bench';
const SECRET = 'bench-webhook-secret';

/** The control plane must be a throwaway one of our own: the bench creates 10k Nodes and deletes every Gateway. */
function controlPlaneSkip(): string | undefined {
  if (process.env.TEST_KUBECONFIG) return 'TEST_KUBECONFIG is set, and this bench creates thousands of Nodes and deletes every Gateway in its cluster: it runs only on a control plane of its own (unset TEST_KUBECONFIG)';
  return controlPlaneSkipReason();
}

// ---------------------------------------------------------------- fleet and topology

interface Fleet {
  pools: number;
  nodesPerPool: number;
}

function poolName(i: number): string {
  return `site-${String(i).padStart(4, '0')}`;
}

function nodeName(i: number, k: number): string {
  return `${poolName(i)}-n${k}`;
}

/**
 * The topology: every pool public (gateways in 198.18.0.0/15, the benchmarking range), mesh, one PSK. `esp` sets
 * the ESP proposals of pool `espPool` (the change a commit makes).
 */
function topologyYaml(f: Fleet, o: { esp?: { pool: number; proposals: string[] }; heartbeatTimeout?: string; minHealthy?: string } = {}): string {
  const lines = [
    'apiVersion: corvid.dev/v1alpha1',
    'kind: Topology',
    'metadata:',
    `  name: ${TOPOLOGY}`,
    'spec:',
    '  encryption:',
    '    backend: ipsec',
    '    ikeProposals: [aes256-sha256-modp2048]',
    '    espProposals: [aes256-sha256]',
    '    pskSecretRef: {name: corvid-psk, key: psk}',
    // Always written: 1.20 answers 422 when an apply drops a nested object the manager owned (test/e2e/system.ts).
    '  connectivity:',
    '    mode: mesh',
    '    rules: []',
    '  election:',
    `    heartbeatTimeout: ${o.heartbeatTimeout ?? '3s'}`,
    `    minHealthy: ${o.minHealthy ?? '10s'}`,
    '  pools:',
  ];
  for (let i = 0; i < f.pools; i++) {
    lines.push(`    - name: ${poolName(i)}`, `      nodeSelector: {matchLabels: {${POOL_LABEL}: ${poolName(i)}}}`, '      gateways:');
    for (let k = 0; k < 2; k++) lines.push(`        - {node: ${nodeName(i, k)}, publicIP: 198.${18 + (i >> 14)}.${(i >> 6) & 255}.${((i & 63) << 2) + k + 1}}`);
    if (o.esp?.pool === i) lines.push('      encryption:', `        espProposals: [${o.esp.proposals.join(', ')}]`);
  }
  return `${lines.join('\n')}\n`;
}

/** Create the fleet's Nodes, `concurrency` at a time. A Node may carry its status at create (as a kubelet's does). */
async function createNodes(kc: KubeConfig, f: Fleet, fromPool: number, concurrency = 16): Promise<{ created: number; ms: number }> {
  const specs: { name: string; pool: number; n: number }[] = [];
  for (let i = fromPool; i < f.pools; i++) for (let k = 0; k < f.nodesPerPool; k++) specs.push({ name: nodeName(i, k), pool: i, n: i * f.nodesPerPool + k });
  const now = new Date().toISOString();
  const started = performance.now();
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < specs.length) {
      const s = specs[next++];
      const podCIDR = `10.${(s.n >> 8) & 255}.${s.n & 255}.0/24`;
      const body = {
        apiVersion: 'v1',
        kind: 'Node',
        metadata: { name: s.name, labels: { [POOL_LABEL]: poolName(s.pool), 'kubernetes.io/hostname': s.name, 'kubernetes.io/os': 'linux' } },
        spec: { podCIDR, podCIDRs: [podCIDR] },
        status: {
          conditions: [{ type: 'Ready', status: 'True', reason: 'KubeletReady', message: 'kubelet is posting ready status', lastHeartbeatTime: now, lastTransitionTime: now }],
          addresses: [{ type: 'InternalIP', address: `172.${16 + ((s.n >> 16) & 15)}.${(s.n >> 8) & 255}.${s.n & 255}` }],
        },
      };
      for (let attempt = 1; ; attempt++) {
        try {
          await kubeRequest(kc, { method: 'POST', path: '/api/v1/nodes', body });
          break;
        } catch (e) {
          if (statusCode(e) === 409) break;
          if (attempt >= 5 || !(statusCode(e) === 429 || (statusCode(e) ?? 0) >= 500)) throw e;
          await new Promise((r) => setTimeout(r, 200 * attempt));
        }
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  // Proof that status set at create stuck (the sync would see NotReady nodes otherwise).
  const probe = await kubeRequest<{ status?: { conditions?: { type: string; status: string }[] } }>(kc, { method: 'GET', path: `/api/v1/nodes/${specs[0]?.name ?? nodeName(0, 0)}` });
  if (!probe.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True')) throw new Error('Node status given at create was not stored');
  return { created: specs.length, ms: performance.now() - started };
}

// ---------------------------------------------------------------- `corvid sync` as a process

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => resolve(p));
    });
  });
}

interface LogLine {
  ts: string;
  level: string;
  msg: string;
  /** performance.now() when this process read the line. */
  seen: number;
  [k: string]: unknown;
}

class SyncProcess {
  readonly child: ChildProcess;
  readonly spawnedAt: number;
  readonly lines: LogLine[] = [];
  readonly metricsPort: number;
  readonly webhookPort: number | undefined;
  /** ws:// address of the inspector, when started with `inspect`. */
  inspectorUrl: string | undefined;
  private readonly waiters = new Set<() => void>();
  private readonly killOnExit = (): void => void this.child.kill('SIGKILL');
  private tail = '';

  private constructor(child: ChildProcess, metricsPort: number, webhookPort: number | undefined) {
    this.child = child;
    this.spawnedAt = performance.now();
    this.metricsPort = metricsPort;
    this.webhookPort = webhookPort;
    process.once('exit', this.killOnExit);
    child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
      const seen = performance.now();
      const parts = (this.tail + chunk).split('\n');
      this.tail = parts.pop() ?? '';
      for (const l of parts) {
        const inspector = /^Debugger listening on (ws:\/\/\S+)/.exec(l);
        if (inspector) this.inspectorUrl = inspector[1];
        if (!l.startsWith('{')) continue;
        try {
          this.lines.push({ ...(JSON.parse(l) as LogLine), seen });
        } catch {
          // not a log line
        }
      }
      for (const w of [...this.waiters]) w();
    });
    child.once('exit', () => {
      for (const w of [...this.waiters]) w();
    });
  }

  static async start(args: string[], o: { webhook?: boolean; inspect?: boolean; bin?: string; nodeOptions?: string } = {}): Promise<SyncProcess> {
    const metricsPort = await freePort();
    const healthPort = await freePort();
    const webhookPort = o.webhook ? await freePort() : undefined;
    const child = spawn(
      process.execPath,
      [
        ...(o.inspect ? ['--inspect=127.0.0.1:0'] : []),
        o.bin ?? join(REPO_ROOT, 'bin', 'corvid.js'),
        'sync',
        ...args,
        `--metrics-bind-address=127.0.0.1:${metricsPort}`,
        `--health-probe-bind-address=127.0.0.1:${healthPort}`,
        ...(webhookPort !== undefined ? [`--webhook-bind-address=127.0.0.1:${webhookPort}`] : []),
        '--leader-elect',
        `--leader-election-namespace=${NS}`,
        '--log-level=debug',
      ],
      { cwd: REPO_ROOT, stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, NODE_OPTIONS: o.nodeOptions ?? '' } },
    );
    await new Promise<void>((resolve, reject) => {
      child.once('spawn', resolve);
      child.once('error', reject);
    });
    return new SyncProcess(child, metricsPort, webhookPort);
  }

  get pid(): number {
    return this.child.pid ?? -1;
  }

  /** The first line from index `from` on that satisfies `pred`. */
  waitLine(what: string, pred: (l: LogLine) => boolean, timeoutMs: number, from = 0): Promise<LogLine> {
    return new Promise((resolve, reject) => {
      let i = from;
      const check = (): void => {
        for (; i < this.lines.length; i++) {
          if (pred(this.lines[i])) {
            done();
            resolve(this.lines[i]);
            return;
          }
        }
        if (this.child.exitCode !== null || this.child.signalCode !== null) {
          done();
          reject(new Error(`corvid sync exited (${this.child.exitCode ?? this.child.signalCode}) while waiting for ${what}; last lines:\n${this.lines.slice(-5).map((l) => JSON.stringify(l)).join('\n')}`));
        }
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}; last lines:\n${this.lines.slice(-5).map((l) => JSON.stringify(l)).join('\n')}`));
      }, timeoutMs);
      const done = (): void => {
        clearTimeout(timer);
        this.waiters.delete(check);
      };
      this.waiters.add(check);
      check();
    });
  }

  /**
   * Resolves once the last reconcile that wrote anything lies `quietMs` back and a successful one without writes
   * followed it. (Reconciles without writes never stop: the health timer wakes the sync at each heartbeat's expiry.)
   */
  async settle(quietMs: number, timeoutMs: number): Promise<void> {
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      const done = this.lines.filter((l) => l.msg === 'reconciled');
      const lastWrite = done.findLastIndex((l) => l.writes !== 0 || l.result !== 'success');
      const quiet = done.slice(lastWrite + 1).some((l) => l.writes === 0 && l.result === 'success');
      const since = lastWrite < 0 ? Infinity : performance.now() - done[lastWrite].seen;
      if (done.length > 0 && quiet && since >= quietMs) return;
      if (performance.now() > deadline) throw new Error(`the sync did not settle within ${timeoutMs} ms (last reconciles: ${done.slice(-3).map((l) => JSON.stringify(l)).join(' ')})`);
      if (this.child.exitCode !== null) throw new Error(`corvid sync exited (${this.child.exitCode})`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  /** A full garbage collection in the process, through the inspector (needs `inspect`). */
  async collectGarbage(): Promise<void> {
    const url = this.inspectorUrl;
    if (url === undefined) throw new Error('corvid sync was not started with an inspector');
    const ws = new WebSocket(url);
    try {
      await new Promise<void>((resolve, reject) => {
        ws.onerror = () => reject(new Error(`inspector ${url}: connection failed`));
        ws.onopen = () => {
          ws.onmessage = (m) => {
            const r = JSON.parse(String(m.data)) as { id?: number; error?: { message: string } };
            if (r.id !== 1) return;
            if (r.error) reject(new Error(`HeapProfiler.collectGarbage: ${r.error.message}`));
            else resolve();
          };
          ws.send(JSON.stringify({ id: 1, method: 'HeapProfiler.collectGarbage' }));
        };
      });
    } finally {
      ws.close();
    }
  }

  /** Sum of a metric family's samples on /metrics. */
  async metric(name: string): Promise<number> {
    const text = await (await fetch(`http://127.0.0.1:${this.metricsPort}/metrics`)).text();
    let sum = 0;
    for (const line of text.split('\n')) {
      if (line.startsWith(`${name}{`) || line.startsWith(`${name} `)) sum += Number(line.slice(line.lastIndexOf(' ') + 1));
    }
    return sum;
  }

  async stop(): Promise<void> {
    const c = this.child;
    if (c.exitCode === null && c.signalCode === null) {
      const gone = new Promise<void>((r) => c.once('exit', () => r()));
      c.kill('SIGTERM');
      const t = setTimeout(() => c.kill('SIGKILL'), 10_000);
      await gone;
      clearTimeout(t);
    }
    process.removeListener('exit', this.killOnExit);
  }
}

function tsMs(l: LogLine | undefined): number {
  return l === undefined ? NaN : Date.parse(l.ts);
}

// ---------------------------------------------------------------- 3 and 4: webhook latency, idle writes

export interface WebhookRun {
  commit: number;
  hookToGatewayMs: number;
  hookToFetchedMs: number;
  reconcileMs: number;
  writes: number;
}

export interface IdleResult {
  seconds: number;
  syncWrites: number;
  objectsChanged: number;
  objects: number;
  events: number;
  reconciles: number;
  leaderRenewals: number;
  heartbeatRenewals: number;
}

export async function benchSyncWebhook(o: { pools?: number; commits?: number; idleSeconds?: number } = {}): Promise<{ runs: WebhookRun[]; idle?: IdleResult } | undefined> {
  const fleet: Fleet = { pools: o.pools ?? 50, nodesPerPool: 4 };
  const commits = o.commits ?? 7;
  const idleSeconds = o.idleSeconds ?? 60;
  console.log(`-- sync: commit -> Gateway on the webhook path, then ${idleSeconds} s idle (${fleet.pools} pools, ${fleet.pools * fleet.nodesPerPool} nodes)`);
  const began = performance.now();
  const skip = controlPlaneSkip();
  if (skip) {
    console.log(`skipped: ${skip}`);
    return undefined;
  }
  let cp: ControlPlane | undefined;
  let remote: GitRemote | undefined;
  let sync: SyncProcess | undefined;
  let informer: Informer<Gateway> | undefined;
  let leader: Informer<LeaseJson> | undefined;
  const beats: Heartbeat[] = [];
  const dir = await mkdtemp(join(tmpdir(), 'corvid-bench-sync-'));
  try {
    cp = await startControlPlane();
    const kc = cp.kubeConfig;
    await installCorvidCrds(kc);
    await ensureNamespace(kc, NS);
    const nodes = await createNodes(kc, fleet, 0);
    // The agents of the gateway candidates: the real Heartbeat writer, 1 s renewals, 3 s Leases.
    const heartbeatsSince = performance.now();
    for (let i = 0; i < fleet.pools; i++) {
      for (let k = 0; k < 2; k++) {
        const hb = new Heartbeat({ kc, nodeName: nodeName(i, k), namespace: NS, renewIntervalMs: 1000, leaseDurationSeconds: 3 });
        hb.setEnabled(true);
        hb.start();
        beats.push(hb);
      }
    }
    remote = await makeGitRemote();
    const path = 'clusters/bench/topology.yaml';
    const target = Math.floor(fleet.pools / 2);
    const proposals = (n: number): string[] => [n % 2 === 0 ? 'aes256-sha384' : 'aes256-sha512'];
    await remote.commit(path, topologyYaml(fleet, { esp: { pool: target, proposals: proposals(0) } }), { message: 'bench: initial' });
    const secretFile = join(dir, 'webhook-secret');
    await writeFile(secretFile, SECRET, { mode: 0o600 });

    informer = gatewayInformer(kc);
    const seen = new Map<string, number>();
    informer.onChange((e) => {
      if (e.type === 'delete' || e.object.metadata.name !== poolName(target)) return;
      const enc = e.object.metadata.annotations?.[ENCRYPTION_ANNOTATION] ?? '';
      if (!seen.has(enc)) seen.set(enc, performance.now());
    });
    await informer.start();

    sync = await SyncProcess.start(
      [
        '--source=git',
        `--git-url=${remote.url}`,
        '--git-branch=main',
        `--git-path=${path}`,
        `--git-cache-dir=${join(dir, 'cache')}`,
        '--interval=1h',
        `--webhook-secret-file=${secretFile}`,
        `--kubeconfig=${cp.kubeconfigPath}`,
      ],
      { webhook: true },
    );
    await sync.waitLine('the first revision applied', (l) => l.msg === 'revision applied', 60_000);
    await sync.settle(1000, 60_000);

    const runs: WebhookRun[] = [];
    for (let n = 1; n <= commits; n++) {
      const esp = proposals(n);
      const sha = await remote.commit(path, topologyYaml(fleet, { esp: { pool: target, proposals: esp } }), { message: `bench: commit ${n}` });
      const revision = `main@sha1:${sha}`;
      const from = sync.lines.length;
      const body = JSON.stringify({ ref: 'refs/heads/main', after: sha });
      const sig = `sha256=${createHmac('sha256', SECRET).update(body).digest('hex')}`;
      // This value was seen two commits ago: forget it, so only its coming back counts.
      for (const k of [...seen.keys()]) if (k.includes(esp[0])) seen.delete(k);
      const t0 = performance.now();
      const res = await fetch(`http://127.0.0.1:${sync.webhookPort}/hooks/git`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-hub-signature-256': sig }, body });
      if (res.status !== 202) throw new Error(`webhook answered ${res.status}`);
      const reconciled = await sync.waitLine(`the reconcile of ${revision}`, (l) => l.msg === 'reconciled' && l.revision === revision, 30_000, from);
      const deadline = performance.now() + 10_000;
      let t1: number | undefined;
      while ((t1 = [...seen].find(([k]) => k.includes(esp[0]))?.[1]) === undefined) {
        if (performance.now() > deadline) throw new Error(`the Gateway of ${poolName(target)} never showed ${esp[0]}`);
        await new Promise((r) => setTimeout(r, 10));
      }
      const accepted = await sync.waitLine('webhook accepted', (l) => l.msg === 'webhook accepted; fetching', 5_000, from);
      const fetched = await sync.waitLine('revision fetched', (l) => l.msg === 'git revision fetched' && l.revision === revision, 5_000, from);
      runs.push({
        commit: n,
        hookToGatewayMs: t1 - t0,
        hookToFetchedMs: tsMs(fetched) - tsMs(accepted),
        reconcileMs: Number(reconciled.durationMs),
        writes: Number(reconciled.writes),
      });
      await sync.settle(500, 30_000);
    }
    console.log(
      `${fleet.pools} pools x ${fleet.nodesPerPool} nodes (created in ${ms(nodes.ms)} ms), ${beats.length} candidates heartbeating every 1 s; ` +
        `each commit changes the ESP proposals of ${poolName(target)}; git poll interval 1 h`,
    );
    console.log(
      table(
        ['commit', 'POST -> Gateway seen ms', 'webhook -> fetched ms', 'reconcile ms', 'API writes'],
        [
          ...runs.map((r) => [String(r.commit), ms(r.hookToGatewayMs), ms(r.hookToFetchedMs), ms(r.reconcileMs), String(r.writes)]),
          ['median', ms(median(runs.map((r) => r.hookToGatewayMs))), ms(median(runs.map((r) => r.hookToFetchedMs))), ms(median(runs.map((r) => r.reconcileMs))), String(median(runs.map((r) => r.writes)))],
        ],
      ),
    );
    console.log('(the split comes from the sync\'s own log timestamps, 1 ms resolution; "reconcile" is plan + dry run + apply + status)');

    // ---- 4: idle
    // minHealthy (10 s) after the heartbeats started, every candidate has matured: the idle minute starts settled.
    const matured = heartbeatsSince + 12_000 - performance.now();
    if (matured > 0) await new Promise((r) => setTimeout(r, matured));
    await sync.settle(3000, 30_000);
    leader = new Informer<LeaseJson>(kc, { path: leasesPath(NS), fieldSelector: `metadata.name=${LEADER_LEASE_NAME}` });
    let leaderRenewals = 0;
    leader.onChange((e) => {
      if (e.type === 'update') leaderRenewals++;
    });
    await leader.start();
    const ours = async (): Promise<number> => (await listEvents(kc, 'kube-system')).filter((e) => e.reportingController === 'corvid.dev/sync').length;
    const before = await resourceVersions(kc);
    const writesBefore = await sync.metric('corvid_sync_api_writes_total');
    const reconcilesBefore = await sync.metric('controller_runtime_reconcile_total');
    const eventsBefore = await ours();
    const renewalsBefore = beats.reduce((s, b) => s + b.counts.renewals, 0);
    leaderRenewals = 0;
    await new Promise((r) => setTimeout(r, idleSeconds * 1000));
    const after = await resourceVersions(kc);
    const idle: IdleResult = {
      seconds: idleSeconds,
      syncWrites: (await sync.metric('corvid_sync_api_writes_total')) - writesBefore,
      objectsChanged: Object.keys({ ...before, ...after }).filter((k) => before[k] !== after[k]).length,
      objects: Object.keys(before).length,
      events: (await ours()) - eventsBefore,
      reconciles: (await sync.metric('controller_runtime_reconcile_total')) - reconcilesBefore,
      leaderRenewals,
      heartbeatRenewals: beats.reduce((s, b) => s + b.counts.renewals, 0) - renewalsBefore,
    };
    const perMin = (x: number): string => (x * 60 / idleSeconds).toFixed(x === 0 ? 0 : 1);
    console.log(`idle ${idleSeconds} s, settled (every candidate past minHealthy), heartbeats renewing:`);
    console.log(
      table(
        ['what', `in ${idleSeconds} s`, 'per minute', 'goal'],
        [
          ['Gateway/Topology writes (corvid_sync_api_writes_total)', String(idle.syncWrites), perMin(idle.syncWrites), `0: ${idle.syncWrites === 0 ? 'met' : 'MISSED'}`],
          [`objects whose resourceVersion moved (of ${idle.objects})`, String(idle.objectsChanged), perMin(idle.objectsChanged), `0: ${idle.objectsChanged === 0 ? 'met' : 'MISSED'}`],
          ['Events recorded by the sync', String(idle.events), perMin(idle.events), `0: ${idle.events === 0 ? 'met' : 'MISSED'}`],
          ['reconciles run (health timer; no writes)', String(idle.reconciles), perMin(idle.reconciles), ''],
          ['leader Lease renewals (leader election, by design)', String(idle.leaderRenewals), perMin(idle.leaderRenewals), ''],
          ['heartbeat renewals by the agents (input, not the sync)', String(idle.heartbeatRenewals), perMin(idle.heartbeatRenewals), ''],
        ],
      ),
    );
    return { runs, idle };
  } finally {
    await Promise.all(beats.map((b) => b.stop()));
    await leader?.stop();
    await informer?.stop();
    await sync?.stop();
    await cp?.stop();
    await remote?.cleanup();
    await rm(dir, { recursive: true, force: true });
    console.log(`(took ${((performance.now() - began) / 1000).toFixed(0)} s)`);
  }
}

// ---------------------------------------------------------------- 5: memory and first reconcile at scale

export interface ScaleRow {
  nodes: number;
  pools: number;
  createMs: number;
  created: number;
  cachesSyncedMs: number;
  firstReconcileMs: number;
  firstWrites: number;
  settledMs: number;
  steadyReconcileMs: number;
  steadyReconciles: number;
  rssMiB: number;
  rssMaxMiB: number;
  peakMiB: number;
  /** V8's own view at the end of the window (prom-client's nodejs_* gauges on the sync's /metrics). */
  heapUsedMiB: number;
  heapTotalMiB: number;
  externalMiB: number;
  /** After a full GC: the heap in use (the live set) and VmRSS. */
  gcHeapUsedMiB: number;
  gcRssMiB: number;
}

export async function benchSyncScale(o: { sizes?: number[] } = {}): Promise<ScaleRow[] | undefined> {
  const sizes = o.sizes ?? [1_000, 10_000];
  console.log(`-- sync: memory and first reconcile at ${sizes.join(', ')} nodes (10 per pool, 2 declared gateways per pool)`);
  const began = performance.now();
  const skip = controlPlaneSkip();
  if (skip) {
    console.log(`skipped: ${skip}`);
    return undefined;
  }
  let cp: ControlPlane | undefined;
  let sync: SyncProcess | undefined;
  const dir = await mkdtemp(join(tmpdir(), 'corvid-bench-scale-'));
  const rows: ScaleRow[] = [];
  // As deployed: the compiled JavaScript, with the V8 flags of the sync's Deployment.
  const corvid = compiledCorvid();
  const nodeOptions = deployedNodeOptions('sync-deployment.yaml', 'sync');
  try {
    cp = await startControlPlane();
    const kc = cp.kubeConfig;
    await installCorvidCrds(kc);
    await ensureNamespace(kc, NS);
    let poolsMade = 0;
    for (const n of sizes) {
      const fleet: Fleet = { pools: Math.round(n / 10), nodesPerPool: 10 };
      const made = await createNodes(kc, fleet, poolsMade);
      poolsMade = fleet.pools;
      // Every size starts from nothing written: no Gateways, no status object.
      await deleteAllGateways(kc);
      await deleteTopology(kc, TOPOLOGY);
      const file = join(dir, `topology-${n}.yaml`);
      await writeFile(file, topologyYaml(fleet));
      // No agents run here: gateways are elected on Ready alone, as a fleet whose agents all heartbeat would elect them.
      sync = await SyncProcess.start([`--source=file`, `--file=${file}`, '--interval=1h', '--resync-interval=2s', '--elect-without-heartbeat', `--kubeconfig=${cp.kubeconfigPath}`], { inspect: true, bin: corvid.bin, nodeOptions });
      const synced = await sync.waitLine('caches synced', (l) => l.msg === 'caches synced', 120_000);
      // The first reconcile that wrote: the ones before it only wait for the revision's verdict (validation runs in a
      // worker thread, and a reconcile meanwhile writes nothing).
      const first = await sync.waitLine('the first reconcile that applied the revision', (l) => l.msg === 'reconciled' && Number(l.writes) > 0, 170_000);
      if (first.result !== 'success') throw new Error(`the first reconcile at ${n} nodes ended ${first.result}\n${sync.lines.slice(-6).map((l) => JSON.stringify(l).slice(0, 600)).join('\n')}`);
      await sync.settle(2000, 120_000);
      const settledMs = performance.now() - sync.spawnedAt - 2000;
      const topo = await getTopology(kc, TOPOLOGY);
      const ready = topo?.status?.conditions?.find((c) => c.type === 'Ready');
      if (ready?.status !== 'True') {
        const tail = sync.lines.slice(-8).map((l) => JSON.stringify(l)).join('\n');
        throw new Error(`Topology not Ready at ${n} nodes: ${ready ? `${ready.reason}: ${ready.message}` : 'no status'}\n${tail}`);
      }
      const samples: number[] = [];
      let peak = 0;
      const from = sync.lines.length;
      for (let i = 0; i < 12; i++) {
        await new Promise((r) => setTimeout(r, 1000));
        const m = processMemory(sync.pid);
        if (m === undefined) throw new Error('corvid sync exited while being measured');
        samples.push(m.rssMiB);
        peak = m.peakMiB;
      }
      const mib = async (name: string): Promise<number> => (await sync!.metric(name)) / 2 ** 20;
      const heapUsedMiB = await mib('nodejs_heap_size_used_bytes');
      const heapTotalMiB = await mib('nodejs_heap_size_total_bytes');
      const externalMiB = await mib('nodejs_external_memory_bytes');
      // The live set: two full collections (what finalizers release in the first goes in the second), 1 s for VmRSS.
      await sync.collectGarbage();
      await sync.collectGarbage();
      await new Promise((r) => setTimeout(r, 1000));
      const gcHeapUsedMiB = await mib('nodejs_heap_size_used_bytes');
      const gcRssMiB = processMemory(sync.pid)?.rssMiB ?? NaN;
      const steady = sync.lines.slice(from).filter((l) => l.msg === 'reconciled').map((l) => Number(l.durationMs));
      rows.push({
        nodes: n,
        pools: fleet.pools,
        createMs: made.ms,
        created: made.created,
        cachesSyncedMs: synced.seen - sync.spawnedAt,
        firstReconcileMs: Number(first.durationMs),
        firstWrites: Number(first.writes),
        settledMs,
        steadyReconcileMs: median(steady),
        steadyReconciles: steady.length,
        rssMiB: median(samples),
        rssMaxMiB: Math.max(...samples),
        peakMiB: peak,
        heapUsedMiB,
        heapTotalMiB,
        externalMiB,
        gcHeapUsedMiB,
        gcRssMiB,
      });
      await sync.stop();
      sync = undefined;
    }
    console.log(`corvid sync --source=file --leader-elect --resync-interval=2s as deployed (compiled JavaScript, NODE_OPTIONS=${JSON.stringify(nodeOptions)} from the Deployment; a heartbeating fleet wakes it about as often: see the idle table); Nodes created 16 at a time, status set at create`);
    console.log(
      table(
        ['nodes', 'pools', 'nodes created (s)', 'spawn -> caches synced ms', 'first reconcile ms', 'its writes', 'spawn -> settled ms', 'steady reconcile ms (n)', 'VmRSS MiB', 'VmRSS max MiB', 'VmHWM MiB', 'heap used / total MiB', 'external MiB', 'after full GC: heap used / VmRSS MiB'],
        rows.map((r) => [
          String(r.nodes),
          String(r.pools),
          `${r.created} in ${(r.createMs / 1000).toFixed(1)}`,
          ms(r.cachesSyncedMs),
          ms(r.firstReconcileMs),
          String(r.firstWrites),
          ms(r.settledMs),
          `${ms(r.steadyReconcileMs)} (${r.steadyReconciles})`,
          r.rssMiB.toFixed(1),
          r.rssMaxMiB.toFixed(1),
          r.peakMiB.toFixed(1),
          `${r.heapUsedMiB.toFixed(1)} / ${r.heapTotalMiB.toFixed(1)}`,
          r.externalMiB.toFixed(1),
          `${r.gcHeapUsedMiB.toFixed(1)} / ${r.gcRssMiB.toFixed(1)}`,
        ]),
      ),
    );
    console.log('(VmRSS sampled once a second for 12 s after settling; "steady reconcile" = median of the resync reconciles in that window;');
    console.log(' heap used counts garbage not yet collected: V8 collects lazily while memory is plentiful; the last column is after');
    console.log(' two full collections asked for through the inspector, at the end of the window)');
    const [bare, client, mods] = [
      await baselineRssMiB([]),
      await baselineRssMiB(['node_modules/@kubernetes/client-node/dist/index.js']),
      await baselineRssMiB([corvid.module('src/cli/main.ts'), corvid.module('src/sync/index.ts')]),
    ];
    console.log(`floor: Node alone ${bare.toFixed(1)} MiB; with @kubernetes/client-node imported ${client.toFixed(1)} MiB; with the sync's modules imported ${mods.toFixed(1)} MiB (VmRSS, idle, nothing connected)`);
    return rows;
  } finally {
    await sync?.stop();
    await cp?.stop();
    await rm(dir, { recursive: true, force: true });
    console.log(`(took ${((performance.now() - began) / 1000).toFixed(0)} s)`);
  }
}

// ---------------------------------------------------------------- all of it

export async function benchSync(): Promise<void> {
  console.log(machineLine());
  await benchSyncWebhook();
  await benchSyncScale();
}

// `npx node bench/sync.ts scale [nodes...]`: only part 5, at the sizes given (default 1,000 and 10,000 nodes).
if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  if (process.argv[2] === 'scale') {
    console.log(machineLine());
    const sizes = process.argv.slice(3).map(Number);
    await benchSyncScale(sizes.length > 0 ? { sizes } : {});
  } else {
    await benchSync();
  }
}
