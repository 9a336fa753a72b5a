// The whole Corvid system on the e2e fabric: a real control plane, a local bare Git repository holding the topology,
// `corvid sync` following it (a `corvid sync --source git` process with a signed push webhook and a short poll; or
// startSync in this process), and on every node namespace a `corvid agent` process; on every gateway candidate also
// a charon (kernel-libipsec).
//
// Processes are supervised like a kubelet would (restartPolicy: Always, restart after RESTART_DELAY_MS), so a crash
// heals by itself; `die()` stops supervision and kills a node's agent and charon, as when the node is lost.
// Logs go to files in the run directory (CORVID_E2E_KEEP=1 keeps it; its path is printed).

import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { createHmac, randomBytes } from 'node:crypto';
import { createServer } from 'node:net';
import { createWriteStream, mkdirSync, readFileSync, rmSync, type WriteStream } from 'node:fs';
import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { simpleGit, type SimpleGit } from 'simple-git';
import type { KubeConfig } from '@kubernetes/client-node';
import type { ControlPlane } from '../support/controlplane.ts';
import { createNode, installCrds, ensureNamespace } from '../support/controlplane.ts';
import { installOpenYurtGatewayCrd } from '../support/openyurt.ts';
import { charonSkipReason, startCharon, type CharonInstance } from '../support/charon.ts';
import { compiledCorvid } from '../support/compiled.ts';
import { deployedNodeOptions } from '../support/manifests.ts';
import { stopChild } from '../support/netns.ts';
import { CONTENT_TYPE, kubeRequest, statusCode } from '../../src/adapters/kube/client.ts';
import { listGateways } from '../../src/adapters/kube/gateways.ts';
import { getTopology, type TopologyObject } from '../../src/adapters/kube/topologies.ts';
import { DEFAULT_LEASE_NAMESPACE, parseUnreachable, type LeaseJson } from '../../src/adapters/kube/leases.ts';
import { DATAPATH_DOWN_ANNOTATION, UNREACHABLE_ANNOTATION } from '../../src/gateway/keys.ts';
import { DEFAULT_HEARTBEAT_TIMEOUT } from '../../src/topology/normalise.ts';
import { parseDuration } from '../../src/topology/duration.ts';

/** The topology's default heartbeat timeout, which the e2e topologies keep. */
const DEFAULT_HEARTBEAT_TIMEOUT_MS = parseDuration(DEFAULT_HEARTBEAT_TIMEOUT)! * 1000;
import type { Gateway } from '../../src/gateway/types.ts';
import { WireguardLink, type ActualPeer } from '../../src/adapters/wireguard/wireguard.ts';
import { WIREGUARD_DEVICE } from '../../src/nodeplan/index.ts';
import { ViciSession } from '../../src/agent/vici/index.ts';
import type { IkeSaInfo } from '../../src/agent/vici/index.ts';
import { startSync, type SyncHandle } from '../../src/sync/index.ts';
import { jsonLogger } from '../../src/shell/log.ts';
import { Fabric, NARROW_POOL, NARROW_WAN_MTU, POOL_SELECTOR_LABEL, fabricSkipReason, type FabricNode, type PoolName } from './fabric.ts';
import { waitFor as pollUntil } from '../support/wait.ts';

export const REPO = fileURLToPath(new URL('../../', import.meta.url));
export const LEASE_NAMESPACE = DEFAULT_LEASE_NAMESPACE;
export const TOPOLOGY_NAME = 'e2e';
export const TOPOLOGY_PATH = 'clusters/e2e/topology.yaml';
/** How long a crashed agent or charon stays down before its supervisor restarts it (a kubelet restarts at once). */
export const RESTART_DELAY_MS = 500;

/** undefined when the whole system can run here; otherwise one line saying how to enable it. */
export function systemSkipReason(cpSkip: string | undefined): string | undefined {
  return fabricSkipReason() ?? charonSkipReason() ?? cpSkip;
}

// ---------------------------------------------------------------- topology

export interface TopologyOptions {
  /** Pool pairs to deny. */
  deny?: Array<[PoolName, PoolName]>;
  /** spec.election fields, e.g. {heartbeatTimeout: '3s'}. Default: none (the topology's defaults). */
  election?: Record<string, string | number | boolean>;
  /** publicPort of the cloud gateways (default: none, i.e. the topology default 4500). */
  publicPort?: number;
  /** spec.nodeAddresses: true (default: not written, i.e. off). */
  nodeAddresses?: boolean;
  /** Pools' memberRouting (default: not written, i.e. direct). */
  memberRouting?: Partial<Record<PoolName, 'direct' | 'vxlan' | 'auto'>>;
  /** spec.encryption.backend (default: not written, i.e. ipsec). */
  backend?: 'ipsec' | 'wireguard';
  /** spec.links: pool pairs whose link takes another backend than the default. */
  linkBackends?: Array<[PoolName, PoolName, 'ipsec' | 'wireguard']>;
}

/** The topology file for the fabric: cloud (public), edge-a and edge-b behind NAT, relaying through cloud. */
export function topologyYaml(f: Fabric, o: TopologyOptions = {}): string {
  const lines: string[] = [
    'apiVersion: corvid.dev/v1alpha1',
    'kind: Topology',
    'metadata:',
    `  name: ${TOPOLOGY_NAME}`,
    'spec:',
    '  encryption:',
    '    ikeProposals: [aes256-sha256-modp2048]',
    '    espProposals: [aes256-sha256]',
    '    pskSecretRef: {name: corvid-psk, key: psk}',
  ];
  if (o.backend !== undefined) lines.push(`    backend: ${o.backend}`);
  // Always written (rules: [] without denials): kube-apiserver 1.20 answers 422 when a server-side apply drops a
  // nested object the manager owned, which breaks the sync's Topology status object (see README, known problems).
  lines.push('  connectivity:', '    mode: mesh');
  if (o.deny && o.deny.length > 0) {
    lines.push('    rules:');
    for (const [a, b] of o.deny) lines.push(`      - {action: deny, pools: [${a}, ${b}]}`);
  } else {
    lines.push('    rules: []');
  }
  if (o.nodeAddresses === true) lines.push('  nodeAddresses: true');
  if (o.election && Object.keys(o.election).length > 0) {
    lines.push('  election:');
    for (const [k, v] of Object.entries(o.election)) lines.push(`    ${k}: ${v}`);
  }
  if (o.linkBackends && o.linkBackends.length > 0) {
    lines.push('  links:');
    for (const [a, b, backend] of o.linkBackends) lines.push(`    - {pools: [${a}, ${b}], encryption: {backend: ${backend}}}`);
  }
  lines.push('  pools:');
  for (const pool of f.pools.values()) {
    lines.push(`    - name: ${pool.name}`, '      nodeSelector:', '        matchLabels:', `          ${POOL_SELECTOR_LABEL}: ${pool.name}`, '      gateways:');
    for (const c of pool.nodes.filter((n) => n.kind === 'candidate')) {
      lines.push(`        - node: ${c.name}`);
      if (c.publicIP) lines.push(`          publicIP: ${c.publicIP}`);
      if (c.publicIP && o.publicPort !== undefined) lines.push(`          publicPort: ${o.publicPort}`);
    }
    if (pool.behindNAT) lines.push('      behindNAT: true', '      relay: cloud');
    // Its router's WAN is narrower than its LAN, and drops "fragmentation needed": only the topology can say so.
    if (pool.name === NARROW_POOL) lines.push(`      mtu: ${NARROW_WAN_MTU}`);
    if (o.memberRouting?.[pool.name] !== undefined) lines.push(`      memberRouting: ${o.memberRouting[pool.name]}`);
  }
  return `${lines.join('\n')}\n`;
}

// ---------------------------------------------------------------- the Git side

/** A bare repository (the "Git server") and a clone the test commits and pushes from, with simple-git. */
export class TopologyRepo {
  readonly bare: string;
  private readonly work: string;
  private readonly git: SimpleGit;

  private constructor(bare: string, work: string) {
    this.bare = bare;
    this.work = work;
    // A small fixed environment (simple-git refuses variables such as EDITOR).
    const env: Record<string, string> = { GIT_TERMINAL_PROMPT: '0', LC_ALL: 'C' };
    for (const k of ['PATH', 'HOME']) if (process.env[k] !== undefined) env[k] = process.env[k]!;
    this.git = simpleGit({ baseDir: work }).env(env);
  }

  static async create(dir: string): Promise<TopologyRepo> {
    const bare = join(dir, 'topology.git');
    const work = join(dir, 'topology-work');
    await mkdir(bare, { recursive: true });
    await mkdir(work, { recursive: true });
    await simpleGit({ baseDir: bare }).raw(['init', '--bare', '--quiet', '--initial-branch=main']);
    const r = new TopologyRepo(bare, work);
    await r.git.raw(['init', '--quiet', '--initial-branch=main']);
    await r.git.addConfig('user.name', 'Corvid e2e');
    await r.git.addConfig('user.email', 'e2e@corvid.invalid');
    await r.git.addConfig('commit.gpgsign', 'false');
    await r.git.addRemote('origin', bare);
    return r;
  }

  /** Write the topology file, commit and push to main; returns the commit's sha. */
  async push(text: string, message: string): Promise<string> {
    await mkdir(join(this.work, TOPOLOGY_PATH, '..'), { recursive: true });
    await writeFile(join(this.work, TOPOLOGY_PATH), text);
    await this.git.add(TOPOLOGY_PATH);
    await this.git.commit(message, undefined, { '--allow-empty': null });
    await this.git.push('origin', 'main');
    return (await this.git.revparse(['HEAD'])).trim();
  }
}

// ---------------------------------------------------------------- supervised processes

/** A charon in a gateway candidate's namespace, restarted when it dies unless the node is "dead". */
export class SupervisedCharon {
  readonly node: string;
  readonly instance: CharonInstance;
  supervised = true;
  restarts = 0;
  private timer: NodeJS.Timeout;
  private restarting = false;

  constructor(node: string, instance: CharonInstance) {
    this.node = node;
    this.instance = instance;
    this.timer = setInterval(() => void this.check(), 100);
    this.timer.unref();
  }

  alive(): boolean {
    const pid = this.instance.pid;
    if (pid <= 0) return false;
    try {
      process.kill(pid, 0);
      return true;
    } catch {
      return false;
    }
  }

  private async check(): Promise<void> {
    if (!this.supervised || this.restarting || this.alive()) return;
    this.restarting = true;
    try {
      await new Promise((r) => setTimeout(r, RESTART_DELAY_MS));
      if (this.supervised && !this.alive()) {
        await this.instance.restart();
        this.restarts++;
      }
    } catch {
      // tried again on the next check
    } finally {
      this.restarting = false;
    }
  }

  /** SIGKILL charon (the supervisor brings it back when supervised). */
  kill(): void {
    if (this.alive()) process.kill(this.instance.pid, 'SIGKILL');
  }

  /**
   * SIGKILL charon and start it again at once, as a kubelet restarts a crashed container the first time: faster than
   * the agent's datapath probe can see it gone.
   */
  async crashAndRestart(): Promise<void> {
    this.restarting = true;
    try {
      this.kill();
      // restart() waits for the killed process to be gone before it starts the new one.
      await this.instance.restart();
      this.restarts++;
    } finally {
      this.restarting = false;
    }
  }

  /** Start again after die(). */
  async revive(): Promise<void> {
    if (!this.alive()) await this.instance.restart();
    this.supervised = true;
  }

  async stop(): Promise<void> {
    this.supervised = false;
    clearInterval(this.timer);
    await this.instance.stop();
  }
}

/** A `corvid` process (an agent for one node, or the sync), restarted when it exits unless "dead" or stopping. */
export class SupervisedProcess {
  readonly name: string;
  /** The node of an agent. */
  readonly node: FabricNode | undefined;
  supervised = true;
  restarts = 0;
  child: ChildProcess | undefined;
  /** Last lines of stderr (JSON log lines). */
  readonly tail: string[] = [];
  private readonly argv: string[];
  private readonly logFile: WriteStream;
  private readonly track: (c: ChildProcess) => void;
  private restartTimer: NodeJS.Timeout | undefined;
  private httpPort: number | undefined;
  private readonly fixedPort: number | undefined;
  private readonly nodeOptions: string;

  /**
   * `argv`: Node's arguments (the entry first). `nodeOptions`: NODE_OPTIONS, as its manifest sets them. `httpPort`:
   * where /readyz is served; otherwise taken from the process's "serving ..." log line.
   */
  constructor(name: string, node: FabricNode | undefined, argv: string[], nodeOptions: string, logPath: string, track: (c: ChildProcess) => void, httpPort?: number) {
    this.name = name;
    this.node = node;
    this.fixedPort = httpPort;
    this.nodeOptions = nodeOptions;
    this.argv = argv;
    this.logFile = createWriteStream(logPath, { flags: 'a' });
    this.track = track;
  }

  start(): void {
    const child = spawn(process.execPath, this.argv, { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, NODE_NAME: '', NODE_OPTIONS: this.nodeOptions } });
    this.child = child;
    this.httpPort = this.fixedPort;
    this.track(child);
    let buf = '';
    child.stderr!.setEncoding('utf8').on('data', (c: string) => {
      this.logFile.write(c);
      buf += c;
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i);
        const m = /"msg":"serving[^"]*".*"port":(\d+)/.exec(line);
        if (m && this.fixedPort === undefined) this.httpPort = Number(m[1]);
        this.tail.push(line);
        buf = buf.slice(i + 1);
        if (this.tail.length > 200) this.tail.shift();
      }
    });
    child.once('exit', (code, sig) => {
      this.logFile.write(`{"supervisor":"exited","code":${code},"signal":${JSON.stringify(sig)}}\n`);
      if (!this.supervised) return;
      this.restartTimer = setTimeout(() => {
        if (!this.supervised) return;
        this.restarts++;
        this.start();
      }, RESTART_DELAY_MS);
    });
  }

  /** The port of the process's /readyz, once known. */
  port(): number | undefined {
    return this.httpPort;
  }

  /** /readyz answers 200. */
  async ready(): Promise<boolean> {
    const port = this.port();
    if (!this.running() || port === undefined) return false;
    const r = await fetch(`http://127.0.0.1:${port}/readyz`).catch(() => undefined);
    return r?.status === 200;
  }

  running(): boolean {
    return this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Signal the process, SIGKILL by default (the supervisor brings it back when supervised, whatever the exit). */
  kill(signal: NodeJS.Signals = 'SIGKILL'): void {
    if (this.running()) this.child!.kill(signal);
  }

  revive(): void {
    this.supervised = true;
    if (!this.running()) this.start();
  }

  /** SIGTERM (an agent removes what it made), SIGKILL after graceMs. */
  async stop(graceMs = 8000): Promise<void> {
    this.supervised = false;
    clearTimeout(this.restartTimer);
    if (this.child) await stopChild(this.child, graceMs);
    await new Promise<void>((r) => this.logFile.end(r));
  }
}

// ---------------------------------------------------------------- the system

export interface SystemOptions {
  /** Poll interval of the git source (a webhook is also sent after every push). Default 2000 ms. */
  pollMs?: number;
  /** Extra `corvid agent` flags (defaults are the CLI's own: lease renew 10s, lease 40s, repair 10s, liveness probes every 50ms). */
  agentFlags?: string[];
  /** Log level of the agents and the sync. Default info. */
  logLevel?: 'debug' | 'info';
  /** `process` (default): a `corvid sync` child process; `in-process`: startSync in this process. */
  sync?: 'process' | 'in-process';
  /**
   * `corvid` (default): Corvid's CRDs from deploy/crds. `openyurt`: OpenYurt's Gateway CRD as its Helm chart installs
   * it, and Corvid's Topology CRD only (deploy/components/existing-gateway-crd).
   */
  gatewayCrd?: 'corvid' | 'openyurt';
  /** More labels on each node's Node object (e.g. Raven's raven.openyurt.io/gateway). */
  nodeLabels?: (n: FabricNode) => Record<string, string>;
  /** Objects the cluster holds before Corvid's agents start (after the CRDs and Nodes). */
  seed?: (kc: KubeConfig) => Promise<void>;
}

/** A free TCP port on 127.0.0.1 (bound and released: good enough for a test on loopback). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => resolve(port));
    });
  });
}

const WEBHOOK_SECRET = randomBytes(16).toString('hex');
const runDirs = new Set<string>();
let exitHookInstalled = false;

function removeRunDirs(): void {
  if (process.env.CORVID_E2E_KEEP) return;
  for (const d of runDirs) rmSync(d, { recursive: true, force: true });
  runDirs.clear();
}

/** Run directories go on exit and on SIGINT/SIGTERM/SIGHUP (then the signal is raised again, as the helpers do). */
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once('exit', removeRunDirs);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    const onSignal = (): void => {
      removeRunDirs();
      process.removeListener(sig, onSignal);
      process.kill(process.pid, sig);
    };
    process.on(sig, onSignal);
  }
}

export class CorvidSystem {
  readonly cp: ControlPlane;
  readonly kc: KubeConfig;
  readonly fabric: Fabric;
  readonly dir: string;
  readonly repo: TopologyRepo;
  readonly charons = new Map<string, SupervisedCharon>();
  readonly agents = new Map<string, SupervisedProcess>();
  /** The sync as a process (default), or its handle when it runs in this process. */
  syncProcess: SupervisedProcess | undefined;
  sync: SyncHandle | undefined;
  private webhookAddress = '';
  private readonly sessions: ViciSession[] = [];
  private readonly o: SystemOptions;
  private syncLog: WriteStream | undefined;
  /** The sync and the agents run as deployed: compiled, with their manifests' NODE_OPTIONS. */
  private readonly deployed = compiledCorvid();

  private constructor(cp: ControlPlane, fabric: Fabric, dir: string, repo: TopologyRepo, o: SystemOptions) {
    this.cp = cp;
    this.kc = cp.kubeConfig;
    this.fabric = fabric;
    this.dir = dir;
    this.repo = repo;
    this.o = o;
  }

  /**
   * Cluster objects (CRDs, namespace, one Node per node namespace), the PSK, the Git repository, the sync, charons
   * and agents. Nothing is pushed yet: call push(). On failure everything started is stopped again.
   */
  static async start(cp: ControlPlane, fabric: Fabric, o: SystemOptions = {}): Promise<CorvidSystem> {
    installExitHook();
    const dir = await mkdtemp(join(tmpdir(), 'corvid-e2e-'));
    runDirs.add(dir);
    const s = new CorvidSystem(cp, fabric, dir, await TopologyRepo.create(dir), o);
    try {
      await s.startAll();
    } catch (e) {
      await s.stop();
      throw e;
    }
    return s;
  }

  private async startAll(): Promise<void> {
    const kc = this.kc;
    if (this.o.gatewayCrd === 'openyurt') {
      await installOpenYurtGatewayCrd(kc);
      await installCrds(kc, join(REPO, 'deploy', 'crds'), ['topology.yaml']);
    } else {
      await installCrds(kc);
    }
    await ensureNamespace(kc, LEASE_NAMESPACE);
    const calico = this.fabric.cni === 'calico';
    // calico-ipam: Nodes carry no podCIDR; each node's blocks are its BlockAffinities, in Calico's own CRD.
    if (calico) await installCrds(kc, join(REPO, 'test', 'fixtures', 'calico'));
    for (const n of this.fabric.nodes.values()) {
      await createNode(kc, { name: n.name, labels: { [POOL_SELECTOR_LABEL]: n.pool, ...this.o.nodeLabels?.(n) }, internalIP: n.lanIP, podCIDRs: calico ? [] : [n.podCIDR] });
      if (calico) for (const cidr of n.podCIDRs) await this.putBlockAffinity(n.name, cidr);
    }
    await this.o.seed?.(kc);
    // The PSK Secret as the agents see it mounted: <secret-dir>/<name>/<key>.
    const secretDir = join(this.dir, 'secrets');
    mkdirSync(join(secretDir, 'corvid-psk'), { recursive: true, mode: 0o700 });
    await writeFile(join(secretDir, 'corvid-psk', 'psk'), randomBytes(32).toString('base64'), { mode: 0o400 });

    // Charons first: an agent on a candidate needs its VICI socket.
    await Promise.all(
      this.fabric.candidates().map(async (n) => {
        const inst = await startCharon({ netns: n.ns, dir: join(this.dir, `charon-${n.name}`) });
        this.charons.set(n.name, new SupervisedCharon(n.name, inst));
      }),
    );

    const pollMs = this.o.pollMs ?? 2000;
    if (this.o.sync === 'in-process') {
      this.syncLog = createWriteStream(join(this.dir, 'sync.log'), { flags: 'a' });
      const log = this.syncLog;
      this.sync = await startSync({
        kubeConfig: kc,
        source: { kind: 'git', url: this.repo.bare, ref: { branch: 'main' }, path: TOPOLOGY_PATH, cacheDir: join(this.dir, 'sync-cache'), intervalMs: pollMs },
        leaseNamespace: LEASE_NAMESPACE,
        healthAddress: '127.0.0.1:0',
        metricsAddress: '127.0.0.1:0',
        webhookAddress: '127.0.0.1:0',
        webhookSecret: Buffer.from(WEBHOOK_SECRET),
        logger: jsonLogger({ level: this.o.logLevel ?? 'info', write: (line) => log.write(line) }),
      });
      this.webhookAddress = this.sync.addresses.webhook ?? '';
    } else {
      const [webhookPort, healthPort] = [await freePort(), await freePort()];
      this.webhookAddress = `127.0.0.1:${webhookPort}`;
      const secretFile = join(this.dir, 'webhook-secret');
      await writeFile(secretFile, WEBHOOK_SECRET, { mode: 0o400 });
      const argv = [
        this.deployed.bin,
        'sync',
        '--source', 'git',
        '--git-url', this.repo.bare,
        '--git-branch', 'main',
        '--git-path', TOPOLOGY_PATH,
        '--git-cache-dir', join(this.dir, 'sync-cache'),
        '--interval', `${pollMs}ms`,
        '--webhook-bind-address', this.webhookAddress,
        '--webhook-secret-file', secretFile,
        '--kubeconfig', this.cp.kubeconfigPath,
        '--lease-namespace', LEASE_NAMESPACE,
        '--metrics-bind-address', '0',
        '--health-probe-bind-address', `127.0.0.1:${healthPort}`,
        '--log-level', this.o.logLevel ?? 'info',
      ];
      const nodeOptions = deployedNodeOptions('sync-deployment.yaml', 'sync');
      this.syncProcess = new SupervisedProcess('sync', undefined, argv, nodeOptions, join(this.dir, 'sync.log'), (c) => this.fabric.lab.track(c), healthPort);
      this.syncProcess.start();
      await waitFor('corvid sync ready', () => this.syncProcess!.ready(), 60_000, 200).catch((e) => {
        throw new Error(`${(e as Error).message}\n${this.syncProcess!.tail.slice(-20).join('\n')}`);
      });
    }

    for (const n of this.fabric.nodes.values()) this.startAgent(n);
    await Promise.all([...this.agents.values()].map((a) => waitFor(`agent ${a.name} ready`, () => a.ready(), 60_000, 200)));
  }

  private startAgent(n: FabricNode): SupervisedProcess {
    const socket = this.charons.get(n.name)?.instance.socketPath ?? join(this.dir, `no-charon-${n.name}.vici`);
    const argv = [
      this.deployed.bin,
      'agent',
      '--node-name', n.name,
      '--netns', n.ns,
      '--kubeconfig', this.cp.kubeconfigPath,
      '--vici-socket', socket,
      '--secret-dir', join(this.dir, 'secrets'),
      '--state-dir', join(this.dir, `state-${n.name}`),
      // The node's key survives agent restarts (as on a node's disk); wireguard-go's socket dir is the node's own.
      '--wireguard-key-file', this.wireguardKeyFile(n.name),
      '--wireguard-socket-dir', this.wireguardSocketDir(n),
      '--lease-namespace', LEASE_NAMESPACE,
      '--metrics-addr', '127.0.0.1:0',
      '--log-level', this.o.logLevel ?? 'info',
      ...(this.o.agentFlags ?? []),
    ];
    const nodeOptions = deployedNodeOptions('agent-daemonset.yaml', 'agent');
    const a = new SupervisedProcess(`agent ${n.name}`, n, argv, nodeOptions, join(this.dir, `agent-${n.name}.log`), (c) => this.fabric.lab.track(c));
    this.agents.set(n.name, a);
    a.start();
    return a;
  }

  /**
   * The node's stand-in for /var/run/wireguard: wireguard-go keeps its control socket at a fixed path, which the nodes
   * of one host would share (on a real node it is the node's own). The mount point must exist on the host.
   */
  private wireguardSocketDir(n: FabricNode): string {
    mkdirSync('/var/run/wireguard', { recursive: true, mode: 0o700 });
    const dir = join(this.dir, `wireguard-run-${n.name}`);
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    return dir;
  }

  /** Commit and push a topology, then send the signed push webhook; returns the revision `main@sha1:<sha>`. */
  async push(text: string, message: string): Promise<string> {
    const sha = await this.repo.push(text, message);
    const body = JSON.stringify({ ref: 'refs/heads/main', after: sha });
    const sig = `sha256=${createHmac('sha256', WEBHOOK_SECRET).update(body).digest('hex')}`;
    const addr = this.webhookAddress;
    if (addr) {
      await fetch(`http://${addr}/hooks/git`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-hub-signature-256': sig }, body }).catch(() => undefined);
    }
    return `main@sha1:${sha}`;
  }

  // ------------------------------------------------------------ reading the cluster

  async gateways(): Promise<Map<string, Gateway>> {
    const list = await listGateways(this.kc);
    return new Map(list.items.map((g) => [g.metadata.name, g]));
  }

  async activeOf(pool: PoolName): Promise<string | undefined> {
    const g = (await this.gateways()).get(pool);
    return g?.status?.activeEndpoints?.find((e) => e.type === 'tunnel')?.nodeName;
  }

  async topology(): Promise<TopologyObject | undefined> {
    return getTopology(this.kc, TOPOLOGY_NAME);
  }

  async lease(node: string): Promise<LeaseJson | undefined> {
    try {
      return await kubeRequest<LeaseJson>(this.kc, { method: 'GET', path: `/apis/coordination.k8s.io/v1/namespaces/${LEASE_NAMESPACE}/leases/${node}` });
    } catch (e) {
      if (statusCode(e) === 404) return undefined;
      throw e;
    }
  }

  /**
   * Whether the election would count `node` live now: its Lease held by it and renewed within the default heartbeat
   * timeout (or after `sinceMs`, when given: renewed by an agent started since), no datapath-down verdict, and no
   * other Lease reporting it unreachable over the LAN.
   */
  async candidateLive(node: string, sinceMs?: number): Promise<boolean> {
    const l = await this.lease(node);
    const renewed = Date.parse(l?.spec?.renewTime ?? '');
    if (!Number.isFinite(renewed) || l?.spec?.holderIdentity !== node) return false;
    if (sinceMs !== undefined ? renewed < sinceMs - 1000 : Date.now() - renewed > DEFAULT_HEARTBEAT_TIMEOUT_MS) return false;
    if (l.metadata?.annotations?.[DATAPATH_DOWN_ANNOTATION] !== undefined) return false;
    const all = await kubeRequest<{ items: LeaseJson[] }>(this.kc, { method: 'GET', path: `/apis/coordination.k8s.io/v1/namespaces/${LEASE_NAMESPACE}/leases` });
    return !all.items.some((o) => parseUnreachable(o.metadata?.annotations?.[UNREACHABLE_ANNOTATION]).includes(node));
  }

  /** A confirmed BlockAffinity as calico-ipam writes it (crd.projectcalico.org/v1: `deleted` is a string). */
  async putBlockAffinity(node: string, cidr: string): Promise<void> {
    const name = `${node}-${cidr.replace(/[.:/]/g, '-')}`;
    await kubeRequest(this.kc, {
      method: 'PATCH',
      path: `/apis/crd.projectcalico.org/v1/blockaffinities/${name}`,
      query: { fieldManager: 'calico-node', force: true },
      contentType: CONTENT_TYPE.apply,
      body: {
        apiVersion: 'crd.projectcalico.org/v1',
        kind: 'BlockAffinity',
        metadata: { name },
        spec: { cidr, node, state: 'confirmed', type: 'host', deleted: 'false' },
      },
    });
  }

  /** Merge-patch a Node's annotations (null removes one). */
  async annotateNode(node: string, annotations: Record<string, string | null>): Promise<void> {
    await kubeRequest(this.kc, {
      method: 'PATCH',
      path: `/api/v1/nodes/${node}`,
      body: { metadata: { annotations } },
      contentType: CONTENT_TYPE.mergePatch,
    });
  }

  /** The IKE SAs of a candidate's charon (our connections only). */
  async sas(node: string): Promise<IkeSaInfo[]> {
    const c = this.charons.get(node);
    if (!c) throw new Error(`${node} has no charon`);
    const s = new ViciSession(c.instance.socketPath, { reconnectTimeoutMs: 3000 });
    this.sessions.push(s);
    try {
      return (await s.listSas()).filter((sa) => sa.name.startsWith('corvid-'));
    } finally {
      await s.close().catch(() => undefined);
      this.sessions.splice(this.sessions.indexOf(s), 1);
    }
  }

  // ------------------------------------------------------------ CLI

  /** Run `corvid <args>` against the live cluster; stdout, stderr and the exit code. */
  corvid(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
    return new Promise((resolve) => {
      const child = spawn(process.execPath, [join(REPO, 'bin/corvid.js'), ...args, '--kubeconfig', this.cp.kubeconfigPath], { stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      child.stdout!.setEncoding('utf8').on('data', (c: string) => (stdout += c));
      child.stderr!.setEncoding('utf8').on('data', (c: string) => (stderr += c));
      child.once('exit', (code) => resolve({ code: code ?? 1, stdout, stderr }));
    });
  }

  /** Write a file into the run directory (e.g. a topology for `corvid diff -f`). */
  async file(name: string, text: string): Promise<string> {
    const p = join(this.dir, name);
    await writeFile(p, text);
    return p;
  }

  // ------------------------------------------------------------ failures

  /** The node's WireGuard key file (as on its disk: it outlives the agent). */
  wireguardKeyFile(node: string): string {
    return join(this.dir, `wireguard-${node}`, 'private.key');
  }

  /** The peers of the node's corvid.wg as `wg show dump` reports them; undefined when it has no interface. */
  wireguardPeers(node: string): Promise<ActualPeer[] | undefined> {
    const n = this.fabric.node(node);
    return new WireguardLink({ device: WIREGUARD_DEVICE, netns: n.ns, socketDir: this.wireguardSocketDir(n) }).peers();
  }

  /** The node is lost: no supervision, agent and charon SIGKILLed (its heartbeat stops). Returns the kill time. */
  die(node: string): number {
    const a = this.agents.get(node);
    const c = this.charons.get(node);
    if (a) a.supervised = false;
    if (c) c.supervised = false;
    const t = Date.now();
    a?.kill();
    c?.kill();
    this.killWireguardGo(node);
    return t;
  }

  /**
   * SIGKILL the node's wireguard-go (a daemon the agent forked, with no supervisor of ours: it outlives an agent, as
   * in a DaemonSet it would outlive nothing but the container). Its interface goes with it. Returns how many.
   */
  killWireguardGo(node: string): number {
    const ns = this.fabric.node(node).ns;
    let killed = 0;
    for (const pid of execFileSync('ip', ['netns', 'pids', ns], { encoding: 'utf8' }).split('\n').filter((p) => /^\d+$/.test(p))) {
      let comm = '';
      try {
        comm = readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
      } catch {
        continue;
      }
      if (comm !== 'wireguard-go') continue;
      try {
        process.kill(Number(pid), 'SIGKILL');
        killed++;
      } catch {
        // gone
      }
    }
    return killed;
  }

  /** Bring a node back after die(): charon, then the agent. */
  async revive(node: string): Promise<void> {
    await this.charons.get(node)?.revive();
    this.agents.get(node)?.revive();
  }

  /** Logs for a failure message: the last lines of the named agents (all by default) and of the sync. */
  logTail(nodes?: string[], lines = 15): string {
    const out: string[] = [];
    for (const [name, a] of this.agents) {
      if (nodes && !nodes.includes(name)) continue;
      out.push(`--- agent ${name} (restarts ${a.restarts}, ${a.running() ? 'running' : 'down'})`, ...a.tail.slice(-lines));
    }
    try {
      out.push('--- sync', ...readFileSync(join(this.dir, 'sync.log'), 'utf8').trim().split('\n').slice(-lines));
    } catch {
      // no log yet
    }
    return out.join('\n');
  }

  /** Lines of the sync's log matching `re` (e.g. /failover/). */
  syncLines(re: RegExp, max = 20): string {
    try {
      return readFileSync(join(this.dir, 'sync.log'), 'utf8').split('\n').filter((l) => re.test(l)).slice(-max).join('\n');
    } catch {
      return '';
    }
  }

  /** Stop everything this system started (agents first, so they remove what they made), keep the fabric. */
  async stop(): Promise<void> {
    await Promise.all([...this.agents.values()].map((a) => a.stop()));
    await this.syncProcess?.stop();
    await this.sync?.stop().catch(() => undefined);
    await Promise.all(this.sessions.map((s) => s.close().catch(() => undefined)));
    await Promise.all([...this.charons.values()].map((c) => c.stop()));
    await new Promise<void>((r) => (this.syncLog ? this.syncLog.end(r) : r()));
    if (process.env.CORVID_E2E_KEEP) {
      console.log(`# e2e logs kept in ${this.dir}`);
    } else {
      rmSync(this.dir, { recursive: true, force: true });
      runDirs.delete(this.dir);
    }
  }
}

/** waitFor with the e2e suite's longer default timeout (30 s). */
export function waitFor<T>(what: string, fn: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs = 30_000, stepMs = 100): Promise<T> {
  return pollUntil(what, fn, timeoutMs, stepMs);
}
