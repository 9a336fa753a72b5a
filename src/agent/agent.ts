// The node agent's shell: Gateways from the API server -> nodePlan() -> DatapathReconciler, on every Gateway change
// and on a repair timer; the heartbeat Lease; metrics and health endpoints; teardown of exactly what it made on stop().

import { existsSync, statSync } from 'node:fs';
import type { KubeConfig } from '../adapters/kube/kubeconfig.ts';
import type { Gateway } from '../gateway/types.ts';
import { MANAGED_SELECTOR } from '../gateway/keys.ts';
import { candidateNodes } from '../gateway/candidates.ts';
import { gatewayInformer } from '../adapters/kube/gateways.ts';
import type { Informer } from '../adapters/kube/informer.ts';
import { errorMessage } from '../adapters/kube/client.ts';
import { Heartbeat, type TunnelHealth } from '../adapters/kube/heartbeat.ts';
import { Iproute } from '../adapters/iproute/iproute.ts';
import { VxlanLink } from '../adapters/iproute/vxlan.ts';
import { Nft } from '../adapters/nft/nft.ts';
import { RpFilter } from '../adapters/sysctl/rpfilter.ts';
import { readSysctls } from '../adapters/sysctl/read.ts';
import { Xfrm } from '../adapters/xfrm/xfrm.ts';
import { WireguardLink, type WireguardImplementation } from '../adapters/wireguard/wireguard.ts';
import { loadOrCreateKey, type WireguardKeyPair } from '../adapters/wireguard/keyfile.ts';
import { join } from 'node:path';
import { CONN_PREFIX, HANDOVER_RULE_PRIORITY, nodePlan, VXLAN_DEVICE, WIREGUARD_DEVICE, wireguardTunnels, type NodePlan, type TunnelPlan } from '../nodeplan/index.ts';
import { corvidAddresses, staleIpsec } from '../nodeplan/stale-ipsec.ts';
import { datapathDownReason, forwardingSysctls, handoverWantedReason, needsCharon, peerGatewayAddresses, peersLostByRestart, wireguardLinkFile, wireguardLinkVanished, type RestartLoss } from '../nodeplan/datapath-health.ts';
import { DEFAULT_LIVENESS, livenessTargets, proberWasAway, unreachableTargets, type LivenessTarget, type TargetObservation } from '../nodeplan/liveness.ts';
import { DEFAULT_LIVENESS_PORT, ProbeBook } from '../adapters/liveness/udp.ts';
import { openLiveness, type LivenessEndpoint } from '../adapters/liveness/endpoint.ts';
import { ViciSession, parseUpdownEvent, viciAnswers, type Subscription, type ViciMessage } from './vici/index.ts';
import { DatapathReconciler, emptyResult, type ReconcileResult, type TunnelState } from './reconciler.ts';
import { ours } from './conns.ts';
import { SecretReader } from './secrets.ts';
import { AgentMetrics, serveHttp } from './metrics.ts';
import { countRequests } from '../adapters/kube/request-metrics.ts';
import type { Logger } from '../shell/log.ts';
import { SerialRunner } from '../shell/serial.ts';

export interface AgentOptions {
  nodeName: string;
  kubeConfig: KubeConfig;
  viciSocket: string;
  routeTable: number;
  rulePriority: number;
  secretDir: string;
  leaseNamespace: string;
  leaseRenewMs: number;
  leaseDurationSeconds: number;
  repairIntervalMs: number;
  /** `host:port`; empty string disables the HTTP endpoints. */
  metricsAddr: string;
  log: Logger;
  /** Path of the ip binary (default `ip`). */
  ipPath?: string;
  /**
   * Apply routes and rules inside this named network namespace (`ip -n`) while the agent itself stays in its own
   * (tests: the API server listens on the host's loopback). Sysctls are read in it too.
   */
  netns?: string;
  /**
   * How often a gateway candidate checks that its node can forward (charon answering, forwarding on); default 500 ms.
   * A change of verdict goes to its heartbeat Lease at once.
   */
  datapathProbeMs?: number;
  /**
   * The UDP port on which gateway candidates answer and send liveness probes (default 9472); 0 turns data-plane
   * liveness off (the heartbeat's expiry alone then tells a dead candidate).
   */
  livenessPort?: number;
  /** How often each other candidate of the pool is probed (default 50 ms). */
  livenessProbeMs?: number;
  /** Silence after which another candidate is reported unreachable (default 400 ms). */
  livenessDownAfterMs?: number;
  initiateTimeoutMs?: number;
  now?: () => Date;
  /** Manage the nftables table inet corvid (default true). */
  packetFilter?: boolean;
  /** Loosen strict rp_filter where cross-pool traffic needs it (default true). */
  looseRpFilter?: boolean;
  /** Where values to put back after a restart are kept (rp_filter.json). */
  stateDir: string;
  /** Where the node's /proc/sys is (default /proc/sys). */
  procSys?: string;
  /** The node's WireGuard private key file (created once, 0600); undefined: no WireGuard on this node. */
  wireguardKeyFile?: string;
  /** Kernel WireGuard, wireguard-go, or the kernel's when it has it (default). */
  wireguardImplementation?: WireguardImplementation;
  /** Tests with netns only: stands in for /var/run/wireguard (wireguard-go's sockets of several nodes on one host). */
  wireguardSocketDir?: string;
  /** Serve the process_* and nodejs_* metrics too (the CLI does; many agents in one test process do not). */
  processMetrics?: boolean;
}

/** The peers this node, as an active gateway, has tunnels to (IPsec and WireGuard), with the tunnel's name. */
function planTunnels(plan: NodePlan): Array<{ peerPool: string; name: string }> {
  return [...plan.tunnels, ...wireguardTunnels(plan)];
}

/** Gateway candidates: nodes listed in any Gateway's spec.endpoints as a tunnel endpoint. */
export function isGatewayCandidate(gateways: readonly Gateway[], node: string): boolean {
  return gateways.some((g) => candidateNodes(g).includes(node));
}

/** How often a gateway candidate checks that its node can forward (AgentOptions.datapathProbeMs). */
export const DEFAULT_DATAPATH_PROBE_MS = 500;
/**
 * How long a hand-over lasts once an agent sees its pool's active gateway move (NodePlanInput.handoverFrom): the
 * successor's tunnels come up in well under a second; this bounds a hand-over whose successor cannot bring them up.
 */
export const HANDOVER_WINDOW_MS = 5_000;
/**
 * How long a hand-over's successor holds its members' traffic on the predecessor at most once a new tunnel is up, when
 * the peer sends nothing on it (updateHold). Below PREDECESSOR_GRACE_S: the peer keeps the predecessor's SAs that long.
 */
const HANDOVER_HOLD_MAX_MS = 1_000;
/** While a hold lasts, how often the tunnels are read to release it. */
const HANDOVER_HOLD_POLL_MS = 40;
/** How long a hand-over's successor waits at most for its predecessor to let go before it starts its tunnels. */
export const HANDOVER_HOLD_MS = 2_000;
/** A stopping active gateway waits at most this long for the sync to name a successor (awaitHandover). */
const HANDOVER_WAIT_MS = 3_000;
/** ...and then forwards at most this much longer, until the successor's tunnels have replaced its own (about 0.2 s in the e2e suite). */
const HANDOVER_GRACE_MS = 3_000;
/** ...or, with WireGuard links only, this long (the peers' handshakes with the successor leave no trace here). */
const WIREGUARD_HANDOVER_GRACE_MS = 1_000;
/** How long charon may take to answer a probe's `version`; it answers in about a millisecond when alive. */
const DATAPATH_VICI_TIMEOUT_MS = 400;

function summary(plan: NodePlan): string {
  return JSON.stringify({
    role: plan.role,
    pool: plan.pool,
    gateway: plan.gatewayNode,
    tunnels: plan.tunnels.map((t) => `${t.name}:${t.role}`),
    ...(plan.wireguard !== undefined ? { wireguard: plan.wireguard.peers.map((p) => p.name) } : {}),
    routes: plan.routes.length,
    findings: plan.findings.map((f) => f.code),
  });
}

export class Agent {
  private readonly o: AgentOptions;
  private readonly log: Logger;
  private readonly now: () => Date;
  private informer: Informer<Gateway> | undefined;
  private readonly vici: ViciSession;
  private readonly reconciler: DatapathReconciler;
  private readonly iproute: Iproute;
  /** Kernel IPsec state, for what a dead charon left behind. */
  private readonly xfrm: Xfrm;
  /** The charon (its VICI socket's inode and mtime) whose predecessors' kernel state was last swept. */
  private sweptCharon: string | undefined;
  private lastSweepProblem = '';
  /** MTU and connected prefixes of the device holding this node's InternalIP (read before each plan). */
  private uplinkMtu: number | undefined;
  private uplinkPrefixes: string[] | undefined;
  private uplinkDevice: string | undefined;
  private readonly heartbeat: Heartbeat;
  /** This node's WireGuard key pair, when it has one. */
  private readonly wireguardKey: WireguardKeyPair | undefined;
  readonly metrics: AgentMetrics;
  private readonly stopCountingRequests: () => void;
  private http: { port: number; close(): Promise<void> } | undefined;
  private repairTimer: NodeJS.Timeout | undefined;
  private debounce: NodeJS.Timeout | undefined;
  private readonly reconcileRunner = new SerialRunner(() => this.reconcileOnce(), {
    stopped: () => this.stopping,
    // A refresh asked for during the reconcile was postponed; the reconcile's own read-back may be older.
    settled: () => {
      if (this.refreshAgain) this.refreshTunnels();
    },
  });
  private stopping = false;
  private lastPlanSummary = '';
  private lastFindings = '';
  private lastProblems = '';
  private lastResult: ReconcileResult | undefined;
  private readonly tunnelSince = new Map<string, TunnelHealth>();
  /** The charon instance the last reconcile met (VICI socket inode and mtime). */
  private metCharon: string | undefined;
  /** A charon restart took down tunnels that only the peers can bring back. */
  private restartLoss: RestartLoss | undefined;
  /** What the Lease says of it (the reason while this node asks for its role to go to another candidate). */
  private handoverWanted: string | undefined;
  private datapathTimer: NodeJS.Timeout | undefined;
  /** Consecutive datapath probes charon did not answer. */
  private charonFailures = 0;
  /** Where each tunnel's peer gateway was last seen up, by connection name (peerGatewayAddresses). */
  private readonly peerAddresses = new Map<string, string>();
  /** Consecutive datapath probes that found no route to any peer gateway. */
  private noPeerRouteProbes = 0;
  /** The plan's WireGuard link was there at the last datapath probe (wireguardLinkVanished). */
  private wireguardLinkSeen = false;
  /** The last datapath verdict (reason when down), to log changes only. */
  private datapathDown: string | undefined;
  /** The plan of the last reconcile (what tunnel refreshes report on). */
  private lastPlan: NodePlan | undefined;
  /** ike-updown/child-updown subscription (re-registered by the session after charon restarts). */
  private sub: Subscription | undefined;
  private subscribing = false;
  private tunnelTimer: NodeJS.Timeout | undefined;
  private eventDebounce: NodeJS.Timeout | undefined;
  /** Reads the tunnels' state between reconciles (after a VICI event, on the tunnel timer), one read at a time. */
  private readonly tunnelRefresh = new SerialRunner(() => this.refreshTunnelsOnce(), { stopped: () => this.stopping });
  /** A refresh asked for while a reconcile ran: it runs once the reconcile has settled. */
  private refreshAgain = false;
  /** Tunnel state readers are numbered when they start reading; an older read never overwrites a newer one. */
  private readSeq = 0;
  /** Reconciles in a row whose initiate did not complete (the peer had not loaded its side yet, typically). */
  private initiateRetries = 0;
  private retryTimer: NodeJS.Timeout | undefined;
  private appliedSeq = 0;
  /** Data-plane liveness: the socket (open while this node is a gateway candidate), what it saw, whom it watches. */
  private liveness: LivenessEndpoint | undefined;
  private livenessOpening = false;
  private readonly probeBook: ProbeBook;
  private livenessTargets: LivenessTarget[] = [];
  private livenessTimer: NodeJS.Timeout | undefined;
  private unreachable: string[] = [];
  /** This pool's active gateway as the last reconcile saw it, to notice a hand-over. */
  private poolActive: { pool: string; node: string } | undefined;
  /** The hold of a hand-over's successor (updateHold), for the hand-over that started at startMs. */
  private heldPools: { startMs: number; released: string[]; upAt: Map<string, number>; off: boolean } | undefined;
  /** A hand-over in progress (NodePlanInput.handoverFrom): when it started and ends (this.now() ms). */
  private handover: { from: string; startMs: number; untilMs: number } | undefined;
  /** The last reconcile held its initiations back for the predecessor (predecessorHolds). */
  private initiateHeld = false;
  private handoverTimer: NodeJS.Timeout | undefined;
  /** Number of reconciles run (tests and logs). */
  reconciles = 0;

  constructor(opts: AgentOptions) {
    this.o = opts;
    this.log = opts.log;
    this.metrics = new AgentMetrics({ defaultMetrics: opts.processMetrics === true });
    this.now = opts.now ?? (() => new Date());
    this.probeBook = new ProbeBook(() => this.now().getTime());
    this.vici = new ViciSession(opts.viciSocket, {
      timeoutMs: 10_000,
      reconnectTimeoutMs: Math.min(5_000, Math.max(1_000, opts.repairIntervalMs)),
      log: (line) => this.log.info(line),
    });
    this.iproute = new Iproute({ table: opts.routeTable, ipPath: opts.ipPath, netns: opts.netns });
    this.xfrm = new Xfrm({ ipPath: opts.ipPath, netns: opts.netns });
    if (opts.wireguardKeyFile !== undefined) {
      try {
        const k = loadOrCreateKey(opts.wireguardKeyFile);
        this.wireguardKey = { privateKey: k.privateKey, publicKey: k.publicKey };
        if (k.created) this.log.info('WireGuard key created', { file: opts.wireguardKeyFile });
        if (k.tightened) this.log.warn('WireGuard key file was readable by others; made 0600', { file: opts.wireguardKeyFile });
      } catch (e) {
        this.log.error('no WireGuard key: WireGuard links of this node will fail', { error: (e as Error).message });
      }
    }
    this.reconciler = new DatapathReconciler({
      vici: this.vici,
      viciPresent: () => existsSync(opts.viciSocket),
      iproute: this.iproute,
      vxlan: new VxlanLink({ device: VXLAN_DEVICE, netns: opts.netns, ipPath: opts.ipPath }),
      ...(opts.wireguardKeyFile === undefined
        ? {}
        : {
            wireguard: new WireguardLink({
              device: WIREGUARD_DEVICE,
              netns: opts.netns,
              ipPath: opts.ipPath,
              ...(opts.wireguardImplementation !== undefined ? { implementation: opts.wireguardImplementation } : {}),
              ...(opts.wireguardSocketDir !== undefined ? { socketDir: opts.wireguardSocketDir } : {}),
            }),
            ...(this.wireguardKey !== undefined ? { wireguardKey: this.wireguardKey } : {}),
          }),
      ...(opts.packetFilter === false ? {} : { nft: new Nft({ netns: opts.netns, ipPath: opts.ipPath }) }),
      ...(opts.looseRpFilter === false
        ? {}
        : { rpFilter: new RpFilter({ statePath: join(opts.stateDir, 'rp_filter.json'), netns: opts.netns, ipPath: opts.ipPath, procSys: opts.procSys }) }),
      secrets: new SecretReader(opts.secretDir),
      log: this.log.with({ component: 'reconciler' }),
      initiateTimeoutMs: opts.initiateTimeoutMs,
    });
    this.stopCountingRequests = countRequests(this.metrics.restClientRequests, opts.kubeConfig);
    this.heartbeat = new Heartbeat({
      kc: opts.kubeConfig,
      nodeName: opts.nodeName,
      namespace: opts.leaseNamespace,
      renewIntervalMs: opts.leaseRenewMs,
      leaseDurationSeconds: opts.leaseDurationSeconds,
      now: this.now,
      onStateChange: (ok, detail) =>
        ok ? this.log.info('heartbeat renewed', { lease: `${opts.leaseNamespace}/${opts.nodeName}` }) : this.log.warn('heartbeat failing', { error: detail }),
    });
    // Published with the heartbeat, which only gateway candidates write: the sync copies it into their Gateway.
    this.heartbeat.setWireguardKey(this.wireguardKey?.publicKey);
  }

  /** Port of the HTTP endpoints (after start). */
  get httpPort(): number | undefined {
    return this.http?.port;
  }

  async start(): Promise<void> {
    const o = this.o;
    if (o.metricsAddr !== '') {
      this.http = await serveHttp(o.metricsAddr, this.metrics, {
        healthy: () => !this.stopping,
        ready: () => this.readiness(),
      });
      this.log.info('serving /healthz /readyz /metrics', { addr: o.metricsAddr, port: this.http.port });
    }
    this.informer = gatewayInformer(o.kubeConfig, { labelSelector: MANAGED_SELECTOR });
    this.informer.onChange(() => this.trigger());
    this.informer.onError((err, info) => this.log.warn('gateway watch failed; retrying', { error: errorMessage(err), attempt: info.attempt, retryInMs: info.retryInMs }));
    await this.informer.start();
    this.log.info('gateways synced', { count: this.informer.list().length });
    await this.runNow();
    this.heartbeat.start();
    // Tunnel state between reconciles: VICI events (below) and, as a fallback, a list-sas every lease renewal.
    const refresh = (): void => {
      if (this.stopping) return;
      this.refreshTunnels();
      this.tunnelTimer = setTimeout(refresh, o.leaseRenewMs);
    };
    this.tunnelTimer = setTimeout(refresh, o.leaseRenewMs);
    const repair = (): void => {
      if (this.stopping) return;
      this.trigger(0);
      this.repairTimer = setTimeout(repair, o.repairIntervalMs);
    };
    this.repairTimer = setTimeout(repair, o.repairIntervalMs);
    const probeMs = o.datapathProbeMs ?? DEFAULT_DATAPATH_PROBE_MS;
    const probe = (): void => {
      if (this.stopping) return;
      void this.probeDatapath().finally(() => {
        if (!this.stopping) this.datapathTimer = setTimeout(probe, probeMs);
      });
    };
    // The first check one interval after the start, not during it: the start is the busiest moment of an agent.
    this.datapathTimer = setTimeout(probe, probeMs);
    // The verdict is a few comparisons: judged twice per probe interval, so it lags the silence by little.
    const judgeMs = Math.max(10, Math.floor(this.livenessSettings().probeIntervalMs / 2));
    let judgedAt: number | undefined;
    const verdict = (): void => {
      if (this.stopping) return;
      const now = this.now().getTime();
      if (judgedAt !== undefined && proberWasAway(judgedAt, now, this.livenessSettings()) && this.probeBook.targets().length > 0) {
        this.probeBook.restart();
        this.log.info('this agent was not running for a while: the other candidates\' silence is timed afresh', { awayMs: now - judgedAt });
      }
      judgedAt = now;
      this.judgeLiveness();
      this.livenessTimer = setTimeout(verdict, judgeMs);
    };
    if (this.livenessPort() > 0) this.livenessTimer = setTimeout(verdict, judgeMs);
  }

  private livenessPort(): number {
    return this.o.livenessPort ?? DEFAULT_LIVENESS_PORT;
  }

  private livenessSettings(): { probeIntervalMs: number; downAfterMs: number } {
    return {
      probeIntervalMs: this.o.livenessProbeMs ?? DEFAULT_LIVENESS.probeIntervalMs,
      downAfterMs: this.o.livenessDownAfterMs ?? DEFAULT_LIVENESS.downAfterMs,
    };
  }

  /**
   * After each reconcile: a gateway candidate answers probes and watches the other candidates of its pool; any other
   * node has no liveness socket. Opening is retried at the next reconcile when the port cannot be bound.
   */
  private updateLiveness(gateways: readonly Gateway[], candidate: boolean): void {
    if (this.livenessPort() <= 0 || this.stopping) return;
    this.livenessTargets = candidate ? livenessTargets(gateways, this.o.nodeName) : [];
    if (!candidate) {
      const open = this.liveness;
      this.liveness = undefined;
      if (open !== undefined) void open.close();
      this.probeBook.setTargets([]);
      return;
    }
    if (this.liveness !== undefined) {
      this.liveness.setTargets(this.livenessTargets.map((t) => t.address));
      return;
    }
    if (this.livenessOpening) return;
    this.livenessOpening = true;
    openLiveness({
      port: this.livenessPort(),
      intervalMs: this.livenessSettings().probeIntervalMs,
      book: this.probeBook,
      netns: this.o.netns,
      ipPath: this.o.ipPath,
      onError: (m) => this.log.debug('liveness socket', { error: m }),
    }).then(
      async (ep) => {
        this.livenessOpening = false;
        if (this.stopping) return ep.close();
        this.liveness = ep;
        ep.setActive(this.holdsRole());
        ep.setTargets(this.livenessTargets.map((t) => t.address));
        this.log.info('answering and sending liveness probes', { port: this.livenessPort(), watching: this.livenessTargets.map((t) => t.node) });
      },
      (e: Error) => {
        this.livenessOpening = false;
        this.log.warn('cannot open the liveness port; retrying at the next reconcile', { port: this.livenessPort(), error: e.message });
      },
    );
  }

  /** The other candidates this node cannot reach; a changed verdict goes to the heartbeat Lease at once. */
  private judgeLiveness(): void {
    const observations: TargetObservation[] = [];
    if (this.liveness !== undefined) {
      for (const t of this.livenessTargets) {
        const o = this.probeBook.observation(t.address);
        if (o !== undefined) observations.push({ node: t.node, ...o });
      }
    }
    const down = unreachableTargets(observations, this.now().getTime(), this.livenessSettings());
    if (down.join(',') !== this.unreachable.join(',')) {
      const lost = down.filter((n) => !this.unreachable.includes(n));
      const back = this.unreachable.filter((n) => !down.includes(n));
      if (lost.length > 0) this.log.warn('gateway candidates of this pool unreachable over the LAN', { nodes: lost });
      if (back.length > 0) this.log.info('gateway candidates of this pool reachable again', { nodes: back });
      this.unreachable = down;
    }
    if (this.heartbeat.setUnreachable(down)) this.heartbeat.kick();
    // The predecessor let go (or the wait is over): start the tunnels held back.
    if (this.initiateHeld && this.lastPlan !== undefined && !this.predecessorHolds(this.lastPlan)) {
      this.initiateHeld = false;
      this.trigger(0);
    }
  }

  private readiness(): { ready: boolean; reason?: string } {
    if (this.stopping) return { ready: false, reason: 'stopping' };
    if (!this.informer?.hasSynced()) return { ready: false, reason: 'gateways not synced' };
    if (this.lastResult === undefined) return { ready: false, reason: 'not applied yet' };
    if (!this.lastResult.ok) return { ready: false, reason: this.lastResult.errors[0] };
    return { ready: true };
  }

  /** Schedule a reconcile (debounced: a burst of Gateway events is one reconcile); one in progress is followed by another. */
  trigger(delayMs = 20): void {
    if (this.stopping) return;
    if (this.debounce) clearTimeout(this.debounce);
    this.debounce = setTimeout(() => {
      this.debounce = undefined;
      void this.runNow();
    }, delayMs);
  }

  /** Reconcile now (or right after the one in progress). */
  runNow(): Promise<void> {
    return this.reconcileRunner.run();
  }

  /** The plan for the Gateways currently cached. */
  currentPlan(): NodePlan {
    return nodePlan({
      gateways: this.informer?.list() ?? [],
      nodeName: this.o.nodeName,
      routeTable: this.o.routeTable,
      rulePriority: this.o.rulePriority,
      ...(this.uplinkMtu === undefined ? {} : { uplinkMtu: this.uplinkMtu }),
      ...(this.uplinkPrefixes === undefined ? {} : { uplinkPrefixes: this.uplinkPrefixes }),
      ...(this.uplinkDevice === undefined ? {} : { uplinkDevice: this.uplinkDevice }),
      ...(this.wireguardKey === undefined ? {} : { wireguardPublicKey: this.wireguardKey.publicKey }),
      ...(this.handover === undefined || this.now().getTime() >= this.handover.untilMs ? {} : { handoverFrom: this.handover.from }),
      ...(this.heldPools === undefined || this.heldPools.off ? {} : { handoverReleased: this.heldPools.released }),
    });
  }

  /**
   * The hold of a hand-over's successor (NodePlanInput.handoverReleased), from the tunnels the last reconcile read: a
   * peer pool is released once its gateway has sent on our new CHILD_SA, or HANDOVER_HOLD_MAX_MS after it came up (a
   * peer with nothing to send). No hold with a dead predecessor: it would forward nothing. None after
   * HANDOVER_HOLD_MS + HANDOVER_HOLD_MAX_MS in any case.
   */
  private updateHold(plan: NodePlan): void {
    const h = this.handover;
    const nowMs = this.now().getTime();
    if (!this.handoverSuccessor(plan) || h === undefined || nowMs >= h.startMs + HANDOVER_HOLD_MS + HANDOVER_HOLD_MAX_MS) {
      this.heldPools = undefined;
      return;
    }
    const t = this.livenessTargets.find((x) => x.node === h.from);
    const alive = t !== undefined && this.probeBook.saysActive(t.address, this.livenessSettings().downAfterMs) !== undefined;
    // Decided when the hand-over starts: a predecessor dead then (a failover) gets no hold, even once its restarted
    // agent answers again (it is a member by then, and would send the traffic back); one that dies ends it.
    if (this.heldPools?.startMs !== h.startMs) this.heldPools = { startMs: h.startMs, released: [], upAt: new Map(), off: !alive };
    const held = this.heldPools;
    if (!alive) held.off = true;
    if (held.off) return;
    for (const x of this.lastResult?.tunnels ?? []) {
      if (!x.up || held.released.includes(x.peer) || !plan.tunnels.some((y) => y.peerPool === x.peer)) continue;
      const upAt = held.upAt.get(x.peer) ?? nowMs;
      held.upAt.set(x.peer, upAt);
      const used = x.children.some((c) => c.up && c.bytesIn > 0);
      if (!used && nowMs - upAt < HANDOVER_HOLD_MAX_MS) continue;
      held.released = [...held.released, x.peer].sort();
      this.log.info('hand-over: traffic released to the new tunnel', { peer: x.peer, why: used ? 'the peer sends on it' : 'the peer sent nothing on it', heldMs: nowMs - h.startMs });
    }
  }

  /**
   * Notice that the pool's active gateway moved from one node to another: a hand-over, for HANDOVER_WINDOW_MS (then a
   * reconcile without it). True when one starts now.
   */
  private noteActive(plan: NodePlan): boolean {
    if (plan.pool === undefined || plan.gatewayNode === undefined) return false;
    const before = this.poolActive;
    this.poolActive = { pool: plan.pool, node: plan.gatewayNode };
    if (before === undefined || before.pool !== plan.pool || before.node === plan.gatewayNode) return false;
    const startMs = this.now().getTime();
    this.handover = { from: before.node, startMs, untilMs: startMs + HANDOVER_WINDOW_MS };
    // Only its two ends have a part in it (NodePlanInput.handoverFrom); the members just follow the Gateway.
    if (before.node === this.o.nodeName || plan.gatewayNode === this.o.nodeName) {
      this.log.info('hand-over: make before break', { from: before.node, to: plan.gatewayNode, windowMs: HANDOVER_WINDOW_MS });
    }
    if (this.handoverTimer) clearTimeout(this.handoverTimer);
    this.handoverTimer = setTimeout(() => {
      this.handoverTimer = undefined;
      this.trigger(0);
    }, HANDOVER_WINDOW_MS);
    return true;
  }

  /** This node is the new active gateway of a hand-over in progress (its tunnels' CHILD_SAs are the peers' to create). */
  private handoverSuccessor(plan: NodePlan): boolean {
    const h = this.handover;
    return plan.role === 'gateway' && h !== undefined && h.from !== this.o.nodeName && this.now().getTime() < h.untilMs;
  }

  /**
   * A hand-over's successor starts its tunnels only once its predecessor has let go: the predecessor's answers to our
   * liveness probes say whether its datapath still holds the role. Its tunnels carry the pool's traffic until ours
   * replace them at the peers; when they go, its traffic must find its member routes (to us) already in place.
   * Not waited for: a predecessor not heard within the liveness verdict's time (dead, or liveness off), and any
   * predecessor after HANDOVER_HOLD_MS (one stopping on SIGTERM lets go only once it sees us named).
   */
  private predecessorHolds(plan: NodePlan): boolean {
    const h = this.handover;
    if (plan.role !== 'gateway' || h === undefined || this.now().getTime() >= h.startMs + HANDOVER_HOLD_MS) return false;
    const t = this.livenessTargets.find((x) => x.node === h.from);
    return t !== undefined && this.probeBook.saysActive(t.address, this.livenessSettings().downAfterMs) === true;
  }

  /** The MTU and prefixes of the device that holds this node's privateIP (from its Gateway), when they can be read. */
  private async readUplink(gateways: readonly Gateway[]): Promise<{ device?: string; mtu?: number; prefixes?: string[] }> {
    const ip = gateways.flatMap((g) => g.status?.nodes ?? []).find((n) => n.nodeName === this.o.nodeName)?.privateIP;
    if (ip === undefined) return {};
    try {
      return await this.iproute.uplinkOf(ip);
    } catch (e) {
      this.log.warn('cannot read the uplink MTU', { error: (e as Error).message });
      return {};
    }
  }

  private async reconcileOnce(): Promise<void> {
    const gateways = this.informer?.list() ?? [];
    const uplink = await this.readUplink(gateways);
    this.uplinkMtu = uplink.mtu;
    this.uplinkPrefixes = uplink.prefixes;
    this.uplinkDevice = uplink.device;
    let plan = this.currentPlan();
    if (this.noteActive(plan)) plan = this.currentPlan();
    const holdOf = (): string => JSON.stringify(this.heldPools === undefined || this.heldPools.off ? null : this.heldPools.released);
    const heldBefore = holdOf();
    this.updateHold(plan);
    if (holdOf() !== heldBefore) plan = this.currentPlan();
    const s = summary(plan);
    if (s !== this.lastPlanSummary) {
      this.log.info('plan', JSON.parse(s) as Record<string, unknown>);
      this.lastPlanSummary = s;
    }
    const findings = JSON.stringify(plan.findings);
    if (findings !== this.lastFindings) {
      for (const f of plan.findings) this.log[f.severity === 'error' ? 'error' : 'warn']('finding', { ...f });
      this.lastFindings = findings;
    }
    this.noteCharonRestart(plan);
    await this.sweepDeadCharon(gateways);
    this.reconciles++;
    const seq = ++this.readSeq;
    let res: ReconcileResult;
    const hold = this.predecessorHolds(plan);
    if (hold !== this.initiateHeld) {
      if (hold) this.log.info('hand-over: tunnels loaded; starting them once the predecessor has let go', { predecessor: this.handover?.from, atMostMs: HANDOVER_HOLD_MS });
      this.initiateHeld = hold;
    }
    try {
      res = await this.reconciler.reconcile(plan, { holdInitiate: hold, awaitPeerChild: this.handoverSuccessor(plan) });
    } catch (e) {
      res = { ...emptyResult(), ok: false, errors: [(e as Error).message] };
    }
    this.lastResult = res;
    this.lastPlan = plan;
    this.liveness?.setActive(this.holdsRole());
    this.metrics.record(res, this.o.routeTable, this.now());
    if (res.ipChanges.length > 0) this.log.info('routes applied', { changes: res.ipChanges });
    if (res.packetChanges.length > 0) this.log.info('packet policy applied', { changes: res.packetChanges });
    // Problems are logged when they change, not on every repair tick.
    const problems = JSON.stringify([res.errors, res.warnings]);
    if (problems !== this.lastProblems) {
      for (const e of res.errors) this.log.error('apply failed', { error: e });
      for (const w of res.warnings) this.log.warn('tunnel not up yet; retrying at the next repair', { detail: w });
      if (res.errors.length + res.warnings.length === 0 && this.lastProblems !== '') this.log.info('apply clean again');
      this.lastProblems = problems;
    }

    // An initiate that did not complete (both ends reloading at once: this end was faster than the peer) is retried
    // soon, 0.2 s doubling up to the repair interval, instead of at the next repair tick: the peer's agent has
    // usually loaded its side a moment later.
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    if (res.warnings.length > 0 && !this.stopping) {
      const delay = Math.min(this.o.repairIntervalMs, 500 * 2 ** this.initiateRetries++, res.recheckMs ?? Infinity);
      this.retryTimer = setTimeout(() => {
        this.retryTimer = undefined;
        this.trigger(0);
      }, delay);
    } else if (res.warnings.length === 0) {
      this.initiateRetries = 0;
      // Something waits on time: the peer's CHILD_SA on our IKE_SA, the grace of a peer's previous gateway.
      if (res.recheckMs !== undefined && !this.stopping) {
        this.retryTimer = setTimeout(() => {
          this.retryTimer = undefined;
          this.trigger(0);
        }, res.recheckMs);
      }
    }

    const candidate = isGatewayCandidate(gateways, this.o.nodeName);
    this.heartbeat.setEnabled(candidate);
    this.updateLiveness(gateways, candidate);
    if (plan.role === 'gateway') {
      this.ensureSubscribed();
      if ((res.viciChecked || res.wireguardChecked) && seq > this.appliedSeq) {
        this.appliedSeq = seq;
        this.learnPeerAddresses(plan, res.tunnels);
        if (this.heartbeat.setTunnels(this.tunnelHealth(plan, res.tunnels))) this.heartbeat.kick();
      }
    } else {
      if (this.heartbeat.setTunnels(undefined)) this.heartbeat.kick();
      this.tunnelSince.clear();
    }
    this.updateHandoverWanted();
    // The hold is released by what the tunnels show: read them again soon.
    if (plan.rules.some((r) => r.priority === HANDOVER_RULE_PRIORITY)) this.trigger(HANDOVER_HOLD_POLL_MS);
  }

  /**
   * The running charon: its VICI socket (charon creates it when it starts), by inode and mtime, and when it was made
   * (the kernel's clock). Undefined while there is no socket.
   */
  private charonInstance(): { id: string; startedMs: number } | undefined {
    try {
      const socket = statSync(this.o.viciSocket);
      return { id: `${socket.ino}:${socket.mtimeMs}`, startedMs: socket.mtimeMs };
    } catch {
      return undefined;
    }
  }

  /**
   * Once per charon (a new VICI socket: charon started since the last look), remove corvid's share of what a dead
   * charon left in the kernel (docs/datapath.md, "A charon killed with its kernel state"; staleIpsec decides). Runs
   * before the reconcile's VICI part, so nothing of ours is loaded into a charon that just started; retried at the
   * next reconcile when the kernel or charon cannot be read.
   */
  private async sweepDeadCharon(gateways: readonly Gateway[]): Promise<void> {
    const charon = this.charonInstance();
    if (charon === undefined) return; // no charon (yet)
    const instance = charon.id;
    if (instance === this.sweptCharon || this.stopping) return;
    try {
      const charonStartedAt = Math.floor(charon.startedMs / 1000);
      const ours = corvidAddresses(gateways, this.o.nodeName);
      // Most often nothing is left: the policies alone tell (a dead charon's SAs without its policies are unused and
      // expire), so a start costs one `ip`.
      const first = staleIpsec({ routes: [], policies: await this.xfrm.policies(), states: [], live: [], charonStartedAt, ours });
      let stale = first;
      if (first.policies.length > 0) {
        const kernel = await this.xfrm.read();
        const live = (await this.vici.listSas()).flatMap((sa) =>
          sa.children.map((c) => ({ localTs: c.localTs, remoteTs: c.remoteTs, spis: [c.spiIn, c.spiOut].filter((x): x is string => x !== undefined) })),
        );
        stale = staleIpsec({ ...kernel, live, charonStartedAt, ours });
      }
      this.sweptCharon = instance;
      this.lastSweepProblem = '';
      if (stale.policies.length + stale.states.length + stale.routes.length === 0) return;
      const r = await this.xfrm.remove(stale);
      this.log.info('removed what a dead charon left in the kernel (corvid\'s share)', {
        policies: stale.policies.length,
        states: stale.states.length,
        routes: stale.routes.map((x) => x.dst),
      });
      for (const e of r.errors) this.log.error('cannot remove a dead charon\'s kernel state', { error: e });
    } catch (e) {
      const problem = (e as Error).message;
      if (problem !== this.lastSweepProblem) this.log.warn('cannot check for a dead charon\'s kernel state; retrying at the next reconcile', { error: problem });
      this.lastSweepProblem = problem;
    }
  }

  /** Subscribe to SA up/down events once this node is an active gateway; a failed attempt is retried next reconcile. */
  private ensureSubscribed(): void {
    if (this.sub !== undefined || this.subscribing || this.stopping) return;
    this.subscribing = true;
    let registrations = 0;
    const onRegistered = (): void => {
      // Re-registered after a reconnect: charon restarted and lost every conn and SA without an event. Repair now.
      if (++registrations > 1 && !this.stopping) {
        this.log.info('charon SA events re-registered (charon restarted?); reconciling');
        this.trigger(0);
      }
    };
    this.vici.subscribe(['ike-updown', 'child-updown'], (name, msg) => this.onSaEvent(name, msg), { onRegistered }).then(
      async (sub) => {
        this.subscribing = false;
        if (this.stopping) await sub.close();
        else this.sub = sub;
      },
      (e: Error) => {
        this.subscribing = false;
        this.log.warn('cannot subscribe to charon SA events; tunnel state follows the lease renewals only', { error: e.message });
      },
    );
  }

  private onSaEvent(name: string, msg: ViciMessage): void {
    if (this.stopping) return;
    const ev = parseUpdownEvent(msg);
    if (!ev.sas.some((sa) => ours(sa.name))) return;
    if (this.eventDebounce) clearTimeout(this.eventDebounce);
    this.eventDebounce = setTimeout(() => {
      this.eventDebounce = undefined;
      this.refreshTunnels();
    }, 100);
    // A tunnel went down: repair now rather than at the next repair tick (the initiator re-initiates). A handshake
    // that failed raises a down event too, for a tunnel not reported up: retrying that is the backoff's job
    // (after the reconcile), or failing initiates would loop every few hundred milliseconds.
    const tunnelOf = (conn: string): TunnelPlan | undefined => this.lastPlan?.tunnels.find((t) => t.peers.some((p) => p.conn === conn));
    const wasUp = ev.sas.some((sa) => {
      const t = tunnelOf(sa.name);
      return t !== undefined && this.tunnelSince.get(t.peerPool)?.up === true;
    });
    if (!ev.up && wasUp) {
      this.log.info('SA down event', { event: name, sas: ev.sas.map((sa) => sa.name).filter(ours) });
      this.trigger(250);
    }
    // A peer's successor brought its IKE_SA up alone: create the CHILD_SA on it now (planViciActions).
    if (ev.up && name === 'ike-updown' && ev.sas.some((sa) => tunnelOf(sa.name)?.role === 'responder')) this.trigger(0);
  }

  /** Re-read list-sas and publish the tunnel state (Lease annotation, metrics) if this node is an active gateway. */
  refreshTunnels(): void {
    if (this.stopping) return;
    // Not beside a reconcile: it reads the tunnels itself, and a read started before its changes would be stale.
    if (this.reconcileRunner.busy) {
      this.refreshAgain = true;
      return;
    }
    this.refreshAgain = false;
    void this.tunnelRefresh.run();
  }

  private async refreshTunnelsOnce(): Promise<void> {
    const plan = this.lastPlan;
    if (plan === undefined || plan.role !== 'gateway') return;
    const seq = ++this.readSeq;
    let tunnels: TunnelState[];
    try {
      tunnels = await this.reconciler.readTunnels(plan);
    } catch {
      // charon away, or the WireGuard link gone (the datapath probe rebuilds it): the next reconcile reports it.
      return;
    }
    if (this.stopping || seq <= this.appliedSeq || this.lastPlan !== plan) return;
    this.appliedSeq = seq;
    this.metrics.recordTunnels(tunnels, true);
    this.learnPeerAddresses(plan, tunnels);
    if (this.heartbeat.setTunnels(this.tunnelHealth(plan, tunnels))) this.heartbeat.kick();
    this.updateHandoverWanted();
  }

  /**
   * A charon that is not the one the last reconcile met has started. When this node is an active gateway, the tunnels
   * it answers (responder) and saw up went with the old charon, and only their peers can bring them back, after their
   * dead-peer detection (about 20 s). Until they do, this node asks for its role to go to another candidate, whose
   * tunnels the peers' agents start at once (docs/datapath.md, "A restarted charon").
   */
  private noteCharonRestart(plan: NodePlan): void {
    const charon = this.charonInstance();
    if (charon === undefined) return; // no charon (yet)
    const { id: instance, startedMs } = charon;
    const before = this.metCharon;
    this.metCharon = instance;
    if (before === undefined || before === instance) return;
    const seen = plan.tunnels.flatMap((t) => {
      const h = this.tunnelSince.get(t.peerPool);
      return h === undefined ? [] : [{ peer: t.peerPool, role: t.role, up: h.up, since: h.since }];
    });
    const peers = plan.role === 'gateway' ? peersLostByRestart(seen, startedMs) : [];
    this.log.info('charon started anew', { startedAt: new Date(startedMs).toISOString(), tunnelsLost: peers });
    if (peers.length > 0) this.restartLoss = { peers, startedMs, seenMs: this.now().getTime() };
  }

  /** Remember where the plan's tunnels found their peers (a NAT'd peer's address is known only so); forget the others. */
  private learnPeerAddresses(plan: NodePlan, tunnels: readonly TunnelState[]): void {
    const names = new Set(tunnels.map((t) => t.conn));
    for (const t of tunnels) if (t.remoteAddress !== undefined) this.peerAddresses.set(t.conn, t.remoteAddress);
    for (const conn of [...this.peerAddresses.keys()]) if (!names.has(conn) && !plan.tunnels.some((t) => t.name === conn)) this.peerAddresses.delete(conn);
  }

  /** The Lease's corvid.dev/handover-wanted, from the restart loss and the tunnels read since; written on a change. */
  private updateHandoverWanted(): void {
    const loss = this.restartLoss;
    let reason: string | undefined;
    if (loss !== undefined && this.lastPlan?.role === 'gateway') {
      // The datapath probe comes here between reads too: what tunnelSince says may still be the old charon's.
      const tunnels = [...this.tunnelSince].map(([peer, h]) => ({ peer, up: h.up, since: h.since }));
      reason = handoverWantedReason(loss, tunnels, this.now().getTime());
    }
    if (reason === undefined) this.restartLoss = undefined;
    if (reason !== this.handoverWanted) {
      if (reason !== undefined) this.log.warn('asking for the gateway role to go to another candidate', { reason });
      else if (this.handoverWanted !== undefined) this.log.info('no longer asking for a hand-over', { was: this.handoverWanted });
      this.handoverWanted = reason;
      this.liveness?.setActive(this.holdsRole());
    }
    if (this.heartbeat.setHandoverWanted(reason)) this.heartbeat.kick();
  }

  private tunnelHealth(plan: NodePlan, tunnels: readonly TunnelState[]): Record<string, TunnelHealth> {
    const up = new Map(tunnels.map((t) => [t.peer, t.up]));
    const out: Record<string, TunnelHealth> = {};
    const nowText = this.now().toISOString().replace(/\.\d{3}Z$/, 'Z');
    for (const t of planTunnels(plan)) {
      const isUp = up.get(t.peerPool) === true;
      const prev = this.tunnelSince.get(t.peerPool);
      const next = prev !== undefined && prev.up === isUp ? prev : { up: isUp, since: nowText };
      if (prev === undefined || prev.up !== isUp) this.log.info(isUp ? 'tunnel up' : 'tunnel down', { peer: t.peerPool, conn: t.name });
      this.tunnelSince.set(t.peerPool, next);
      out[t.peerPool] = next;
    }
    for (const peer of [...this.tunnelSince.keys()]) if (!(peer in out)) this.tunnelSince.delete(peer);
    return out;
  }

  /**
   * Can this node forward? Charon answering on its VICI socket (when its links use IPsec) and the forwarding sysctls,
   * checked every datapathProbeMs by a gateway candidate; a changed verdict goes to the heartbeat Lease at once, so
   * the sync takes a gateway that cannot forward out of the election without waiting for any timeout.
   */
  private async probeDatapath(): Promise<void> {
    const plan = this.lastPlan;
    // The request for a hand-over ends by itself after a while: looked at on this timer too.
    this.updateHandoverWanted();
    if (plan === undefined || !this.heartbeat.isEnabled) {
      this.charonFailures = 0;
      this.noPeerRouteProbes = 0;
      this.setDatapathDown(undefined);
      return;
    }
    const sysctls = forwardingSysctls(plan);
    const wgFile = wireguardLinkFile(plan);
    const peers = peerGatewayAddresses(plan, this.peerAddresses);
    const [charon, values, routed] = await Promise.all([
      needsCharon(plan) ? viciAnswers(this.o.viciSocket, DATAPATH_VICI_TIMEOUT_MS) : Promise.resolve(undefined),
      readSysctls([...sysctls.map((x) => x.path), ...(wgFile === undefined ? [] : [wgFile])], { netns: this.o.netns, ipPath: this.o.ipPath }).catch(() => new Map<string, string>()),
      peers.length === 0 ? Promise.resolve(undefined) : this.iproute.routable(peers).catch(() => undefined),
    ]);
    if (this.stopping) return;
    // A WireGuard link that vanished (wireguard-go died, or someone deleted it) is rebuilt now, not at the next
    // repair tick: it carries the pool's traffic.
    const wg = wireguardLinkVanished(plan, values, this.wireguardLinkSeen);
    this.wireguardLinkSeen = wg.present;
    if (wg.vanished) {
      this.log.warn('repairing now', { reason: `${plan.wireguard?.device} is missing` });
      this.trigger(0);
    }
    this.charonFailures = charon === false ? this.charonFailures + 1 : 0;
    // A read that failed says nothing either way.
    if (routed !== undefined) this.noPeerRouteProbes = routed.size === 0 ? this.noPeerRouteProbes + 1 : 0;
    else if (peers.length === 0) this.noPeerRouteProbes = 0;
    this.setDatapathDown(
      datapathDownReason({
        ...(charon === undefined ? {} : { charonFailures: this.charonFailures }),
        ...(peers.length === 0 ? {} : { noPeerRoute: { probes: this.noPeerRouteProbes, addresses: peers } }),
        forwarding: sysctls.map((x) => ({ family: x.family, value: values.get(x.path) })),
      }),
    );
  }

  /**
   * What our liveness answers say: whether this node's datapath holds the pool's active role (the last plan applied
   * made it the gateway, and it can forward). A successor waits on it (predecessorHolds); a gateway whose charon died,
   * or restarted and lost its tunnels, holds nothing worth waiting for.
   */
  private holdsRole(): boolean {
    return this.lastPlan?.role === 'gateway' && this.datapathDown === undefined && this.handoverWanted === undefined;
  }

  private setDatapathDown(reason: string | undefined): void {
    if (reason !== this.datapathDown) {
      if (reason !== undefined) this.log.warn('this node cannot forward: out of the gateway election until it can', { reason });
      else if (this.datapathDown !== undefined) this.log.info('this node can forward again', { was: this.datapathDown });
      this.datapathDown = reason;
      this.liveness?.setActive(this.holdsRole());
    }
    if (this.heartbeat.setDatapathDown(reason)) this.heartbeat.kick();
  }

  /**
   * Make before break on a clean stop of an active gateway: after the release, keep forwarding (nothing is reconciled
   * any more, so the tunnels and routes stay) until the Gateway names a successor and a grace has passed in which the
   * successor's tunnels come up and the members' routes move to it. Bounded, well within a pod's termination grace.
   */
  private async awaitHandover(): Promise<void> {
    if (this.lastPlan?.role !== 'gateway' || this.informer === undefined) return;
    // Nobody to hand over to: nothing to wait for.
    const others = this.informer
      .list()
      .map((g) => candidateNodes(g))
      .filter((nodes) => nodes.includes(this.o.nodeName))
      .flatMap((nodes) => nodes.filter((node) => node !== this.o.nodeName));
    if (others.length === 0) return;
    const handedOver = (): boolean =>
      (this.informer?.list() ?? []).some((g) => {
        const active = (g.status?.activeEndpoints ?? []).map((e) => e.nodeName);
        return candidateNodes(g).includes(this.o.nodeName) && active.length > 0 && !active.includes(this.o.nodeName);
      });
    const deadline = this.now().getTime() + HANDOVER_WAIT_MS;
    while (!handedOver() && this.now().getTime() < deadline) await new Promise((r) => setTimeout(r, 25));
    if (!handedOver()) {
      this.log.warn('no successor named within the handover wait; removing the datapath anyway', { waitedMs: HANDOVER_WAIT_MS });
      return;
    }
    // Let go as a drained gateway does: member routes to the successor, our tunnels kept, and our liveness answers say
    // so, which is what the successor waits for before it starts its own (predecessorHolds).
    const hadTunnels = (this.lastPlan?.tunnels.length ?? 0) > 0;
    let plan = this.currentPlan();
    if (this.noteActive(plan)) plan = this.currentPlan();
    if (this.handoverTimer) clearTimeout(this.handoverTimer);
    // Not with WireGuard links: a member has no corvid.wg, and its peers' sessions would go at once.
    if (plan.role !== 'gateway' && hadTunnels && this.lastPlan?.wireguard === undefined) {
      try {
        const res = await this.reconciler.reconcile(plan);
        for (const e of res.errors) this.log.warn('letting go before the hand-over', { error: e });
      } catch (e) {
        this.log.warn('letting go before the hand-over', { error: (e as Error).message });
      }
      this.liveness?.setActive(false);
    }
    if (!hadTunnels) {
      // WireGuard only: nothing tells us when the peers have moved; a fixed grace while they handshake.
      this.log.info('a successor is named; forwarding a little longer while its tunnels come up', { graceMs: WIREGUARD_HANDOVER_GRACE_MS });
      await new Promise((r) => setTimeout(r, WIREGUARD_HANDOVER_GRACE_MS));
      return;
    }
    // Our SAs go when the peers retire them, PREDECESSOR_GRACE_S after the successor's are up: until then they carry
    // the traffic the members and the successor (its hold) still send us.
    this.log.info('a successor is named; forwarding until its tunnels replace ours', { atMostMs: HANDOVER_GRACE_MS });
    const graceEnd = this.now().getTime() + HANDOVER_GRACE_MS;
    const oursUp = async (): Promise<boolean> => {
      try {
        return (await this.vici.listSas()).some((sa) => sa.name.startsWith(CONN_PREFIX) && sa.state === 'ESTABLISHED');
      } catch {
        return false;
      }
    };
    while (this.now().getTime() < graceEnd && (await oursUp())) await new Promise((r) => setTimeout(r, 50));
  }

  /** Stop watching and remove exactly what the agent created. */
  async stop(): Promise<ReconcileResult> {
    this.stopping = true;
    if (this.repairTimer) clearTimeout(this.repairTimer);
    if (this.datapathTimer) clearTimeout(this.datapathTimer);
    if (this.livenessTimer) clearTimeout(this.livenessTimer);
    if (this.debounce) clearTimeout(this.debounce);
    if (this.tunnelTimer) clearTimeout(this.tunnelTimer);
    if (this.eventDebounce) clearTimeout(this.eventDebounce);
    if (this.handoverTimer) clearTimeout(this.handoverTimer);
    await this.reconcileRunner.idle();
    if (this.retryTimer) clearTimeout(this.retryTimer);
    await this.tunnelRefresh.idle();
    await this.sub?.close();
    // Release before the teardown: the sync hands the pool to another candidate while this one still forwards.
    const lease = `${this.o.leaseNamespace}/${this.o.nodeName}`;
    const rel = await this.heartbeat.release();
    if (rel.released) {
      this.log.info('heartbeat Lease released', { lease });
      await this.awaitHandover();
    } else if (rel.error !== undefined) this.log.warn('cannot release the heartbeat Lease; it expires after the heartbeat timeout', { lease, error: rel.error });
    await this.informer?.stop();
    await this.liveness?.close();
    this.liveness = undefined;
    const res = await this.reconciler.teardown();
    for (const e of res.errors) this.log.error('teardown failed', { error: e });
    this.log.info('removed everything the agent created', { vici: res.viciActions, routes: res.ipChanges });
    await this.vici.close();
    await this.http?.close();
    this.stopCountingRequests();
    return res;
  }
}
