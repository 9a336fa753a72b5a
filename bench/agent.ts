// Agent benchmarks: converge time of the DatapathReconciler against a real charon and a real kernel, and the memory of a
// `corvid agent` process. `npx node bench/agent.ts`, or through bench/run.ts. Needs root (network namespaces), charon
// and, for the process part, the cached kube-apiserver; each part prints one "skipped: <why>" line otherwise.
//
// The fleet is synthetic and built the way the sync writes it: a hub pool `hub` (public, not behind NAT) and N edge
// pools behind NAT, 10 nodes per pool with a /24 pod subnet each, one elected gateway per pool, one PSK, mesh.
// nodePlan() (the agent's own planner) turns the Gateways into the node's plan, as the agent does.
//
// 0. nodePlan() alone: the hub's member (500 edge pools = 5,000 routes) and the hub's gateway (500 tunnels) of 501
//    Gateways, pure and in memory (no root needed): `npx node bench/agent.ts nodeplan` runs only this part.
// 1. gateway converge: the hub's active gateway with 200 peers = 200 IKE connections (each 10 local x 10 remote
//    subnets) and 200 shared keys loaded into charon over VICI. The edge pools are behind NAT, so every tunnel is
//    responder-only (remote %any, start_action none): charon never sends a packet. charon runs in a namespace of its
//    own that holds only lo. Rows: the first converge (empty charon -> 200 conns), a no-op re-converge (read state,
//    nothing to do), an agent restart (a fresh DatapathReconciler while charon keeps everything: it reloads every key and
//    conn once, since it cannot know who loaded them), and the teardown. Goal: converge < 2 s.
// 2. member converge: an ordinary node of the hub pool with 500 edge pools = 5,000 routes (+ 1 rule) in table 9027,
//    applied through `ip -batch` in a namespace with one veth (the next hop's link). Rows: from empty, no-op,
//    repair of 1 deleted route, teardown. Goal: < 1 s.
// 3. agent memory: `corvid agent` child processes as deployed (bin/corvid.js over the compiled JavaScript, as in the
//    image and the npm package) against a real kube-apiserver holding the 201 Gateways: the hub gateway (200 conns in
//    its charon) and a hub member (2,000 routes). VmRSS sampled every second for 12 s once converged (the default
//    repair interval is 10 s, so a repair runs in the window). `npx node bench/agent.ts memory` runs only this part.
//
// Medians of `runs` (default 7) runs; timings are printed, never asserted. Everything made (namespaces, charon,
// agents, control plane, temp dirs) is removed in `finally`, and by the support modules' exit hooks.

import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { NetnsLab, ip, netnsSkipReason, stopChild, sweepStaleNamespaces } from '../test/support/netns.ts';
import { charonSkipReason, startCharon, type CharonInstance } from '../test/support/charon.ts';
import { controlPlaneSkipReason, installCrds, startControlPlane, type ControlPlane, ensureNamespace } from '../test/support/controlplane.ts';
import { ENCRYPTION, makeSecretDir } from '../test/integration/agent-lab.ts';
import { ViciSession } from '../src/agent/vici/index.ts';
import { Iproute } from '../src/adapters/iproute/iproute.ts';
import { DatapathReconciler, type ReconcileResult } from '../src/agent/reconciler.ts';
import { SecretReader } from '../src/agent/secrets.ts';
import { silentLogger } from '../src/shell/log.ts';
import { nodePlan, type NodePlan } from '../src/nodeplan/index.ts';
import { encodeGatewayAnnotations } from '../src/gateway/annotations.ts';
import { MANAGED_BY_LABEL, MANAGED_BY_VALUE, POOL_LABEL } from '../src/gateway/keys.ts';
import { GATEWAY_API_VERSION, GATEWAY_KIND, type Endpoint, type Gateway } from '../src/gateway/types.ts';
import { applyGateway, applyGatewayStatus } from '../src/adapters/kube/gateways.ts';
import { deployedNodeOptions } from '../test/support/manifests.ts';
import { baselineRssMiB, compiledCorvid, ms, machineLine, median, processMemory, iprouteVersion, strongswanVersion, table } from './machine.ts';
import { waitFor } from '../test/support/wait.ts';
import { DEFAULT_LEASE_NAMESPACE } from '../src/adapters/kube/leases.ts';

const REPO_ROOT = fileURLToPath(new URL('../', import.meta.url));
/** The V8 flags the agent's DaemonSet sets (deploy/base/agent-daemonset.yaml). */
const AGENT_NODE_OPTIONS = deployedNodeOptions('agent-daemonset.yaml', 'agent');
const TABLE = 9027;
const NODES_PER_POOL = 10;
const HUB = 'hub';
const HUB_GW = 'hub-n0';
const HUB_MEMBER = 'hub-n1';
const LEASE_NAMESPACE = DEFAULT_LEASE_NAMESPACE;

/** The control plane must be a throwaway one of our own: the bench writes Gateways and Leases into it. */
function controlPlaneSkip(): string | undefined {
  if (process.env.TEST_KUBECONFIG) return 'TEST_KUBECONFIG is set, and this bench writes Gateways into its cluster: it runs only on a control plane of its own (unset TEST_KUBECONFIG)';
  return controlPlaneSkipReason();
}

// ---------------------------------------------------------------- the synthetic fleet

function edgeName(i: number): string {
  return `edge-${String(i).padStart(4, '0')}`;
}

/** Pod subnet of node k of pool i (pool 0 = the hub): 100.64.0.0/10, one /24 each. */
function podSubnet(i: number, k: number): string {
  const n = i * NODES_PER_POOL + k;
  return `100.${64 + (n >> 8)}.${n & 255}.0/24`;
}

/** Node k of pool i has 10.<i/256>.<i%256>.<k+1>; the hub's gateway is 10.0.0.1 and its member 10.0.0.2. */
function privateIP(i: number, k: number): string {
  return `10.${i >> 8}.${i & 255}.${k + 1}`;
}

/** The Gateway the sync would write for pool i (0 = the hub, public; others behind NAT), its node 0 elected. */
function poolGateway(i: number): Gateway {
  const pool = i === 0 ? HUB : edgeName(i);
  const nodes = Array.from({ length: NODES_PER_POOL }, (_, k) => ({ nodeName: `${pool}-n${k}`, privateIP: privateIP(i, k), subnets: [podSubnet(i, k)] }));
  const endpoint = (nodeName: string): Endpoint =>
    i === 0 ? { nodeName, type: 'tunnel', port: 4500, underNAT: false, publicIP: '203.0.113.1', publicPort: 4500 } : { nodeName, type: 'tunnel', port: 4500, underNAT: true };
  return {
    apiVersion: GATEWAY_API_VERSION,
    kind: GATEWAY_KIND,
    metadata: {
      name: pool,
      labels: { [POOL_LABEL]: pool, [MANAGED_BY_LABEL]: MANAGED_BY_VALUE },
      annotations: encodeGatewayAnnotations({ peers: ['*'], encryption: ENCRYPTION, encryptionDefaults: ENCRYPTION }),
    },
    spec: {
      nodeSelector: { matchLabels: { [POOL_LABEL]: pool } },
      endpoints: [endpoint(nodes[0].nodeName), endpoint(nodes[1].nodeName)],
      tunnelConfig: { Replicas: 1 },
    },
    status: { nodes, activeEndpoints: [endpoint(nodes[0].nodeName)] },
  };
}

/** The hub's Gateway and `edges` edge pools' Gateways, through JSON (fresh objects, as an informer hands them out). */
export function fleet(edges: number): Gateway[] {
  return JSON.parse(JSON.stringify(Array.from({ length: edges + 1 }, (_, i) => poolGateway(i)))) as Gateway[];
}

// ---------------------------------------------------------------- helpers

async function timed<T>(fn: () => Promise<T>): Promise<[number, T]> {
  const t = performance.now();
  const v = await fn();
  return [performance.now() - t, v];
}

function timeSync(fn: () => unknown, runs: number): number {
  for (let i = 0; i < 3; i++) fn();
  const xs: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t = performance.now();
    fn();
    xs.push(performance.now() - t);
  }
  return median(xs);
}

/** The result must show exactly the expected work; a bench that measured something else says so loudly. */
function expect(res: ReconcileResult, what: string, check: (r: ReconcileResult) => boolean): void {
  if (res.errors.length > 0 || !check(res)) {
    throw new Error(`${what}: unexpected result (errors: ${res.errors.slice(0, 3).join('; ') || 'none'}; vici actions ${res.viciActions.length}, ip changes ${res.ipChanges.length})`);
  }
}

async function tableRouteCount(ns: string): Promise<number> {
  const out = await ip('-n', ns, '-4', 'route', 'show', 'table', String(TABLE));
  return out.split('\n').filter((l) => l.trim() !== '').length;
}


export interface Row {
  what: string;
  runs: number;
  medianMs: number;
  minMs: number;
  maxMs: number;
  work: string;
  goal?: string;
}

function row(what: string, xs: number[], work: string, goal?: string): Row {
  return { what, runs: xs.length, medianMs: median(xs), minMs: Math.min(...xs), maxMs: Math.max(...xs), work, ...(goal ? { goal } : {}) };
}

function formatRows(rows: Row[]): string {
  return table(
    ['step', 'runs', 'median ms', 'min ms', 'max ms', 'work', 'goal'],
    rows.map((r) => [r.what, String(r.runs), ms(r.medianMs), ms(r.minMs), ms(r.maxMs), r.work, r.goal ?? '']),
  );
}

function verdict(medianMs: number, goalMs: number): string {
  return `< ${goalMs / 1000} s: ${medianMs < goalMs ? 'met' : 'MISSED'}`;
}

// ---------------------------------------------------------------- 0. nodePlan() alone (pure: no root, no charon)

/**
 * nodePlan() on its own, for the hub's member (every edge pool reached directly: `edges` x 10 routes) and the hub's
 * gateway (`edges` tunnels), `edges` + 1 Gateways. Medians of `runs` calls after 3 warm-up calls.
 */
export function benchNodePlan(o: { edges?: number; runs?: number } = {}): Row[] {
  const edges = o.edges ?? 500;
  const runs = o.runs ?? 21;
  console.log(`-- agent: nodePlan() alone, ${edges + 1} Gateways (pure, in memory)`);
  const gateways = fleet(edges);
  const cases = [
    { node: HUB_MEMBER, what: 'hub member', ok: (p: NodePlan) => p.role === 'member' && p.routes.length === edges * NODES_PER_POOL, work: `${edges * NODES_PER_POOL} routes` },
    { node: HUB_GW, what: 'hub gateway', ok: (p: NodePlan) => p.role === 'gateway' && p.tunnels.length === edges, work: `${edges} tunnels` },
  ];
  const rows: Row[] = [];
  for (const c of cases) {
    const plan = nodePlan({ gateways, nodeName: c.node });
    if (!c.ok(plan)) throw new Error(`bench fleet is wrong for ${c.node}: role ${plan.role}, ${plan.routes.length} routes, ${plan.tunnels.length} tunnels`);
    for (let i = 0; i < 3; i++) nodePlan({ gateways, nodeName: c.node });
    const xs: number[] = [];
    for (let i = 0; i < runs; i++) {
      const t = performance.now();
      nodePlan({ gateways, nodeName: c.node });
      xs.push(performance.now() - t);
    }
    rows.push(row(`nodePlan(), ${c.what}`, xs, c.work));
  }
  console.log(formatRows(rows));
  return rows;
}

// ---------------------------------------------------------------- 1. the gateway with 200 peers

export async function benchGatewayConverge(o: { peers?: number; runs?: number } = {}): Promise<Row[] | undefined> {
  const peers = o.peers ?? 200;
  const runs = o.runs ?? 7;
  console.log(`-- agent: gateway converge, ${peers} peers (DatapathReconciler -> charon over VICI)`);
  const began = performance.now();
  const skip = netnsSkipReason() ?? charonSkipReason();
  if (skip) {
    console.log(`skipped: ${skip}`);
    return undefined;
  }
  sweepStaleNamespaces();
  const lab = new NetnsLab();
  let charon: CharonInstance | undefined;
  let vici: ViciSession | undefined;
  let secrets: { dir: string; remove(): Promise<void> } | undefined;
  try {
    // A namespace holding only lo: charon cannot reach anything, and the edge pools are behind NAT anyway.
    const ns = await lab.addNs('gw');
    charon = await startCharon({ netns: ns });
    secrets = await makeSecretDir();
    vici = new ViciSession(charon.socketPath, { timeoutMs: 10_000, reconnectTimeoutMs: 5_000 });
    const gateways = fleet(peers);
    const planMs = timeSync(() => nodePlan({ gateways, nodeName: HUB_GW }), 21);
    const plan = nodePlan({ gateways, nodeName: HUB_GW });
    if (plan.role !== 'gateway' || plan.tunnels.length !== peers || plan.tunnels.some((t) => t.role !== 'responder' || t.remoteAddr !== '%any')) {
      throw new Error(`bench fleet is wrong: role ${plan.role}, ${plan.tunnels.length} tunnels, findings ${JSON.stringify(plan.findings.slice(0, 3))}`);
    }
    const ts = plan.tunnels[0];
    const mk = (): DatapathReconciler =>
      new DatapathReconciler({ vici, iproute: new Iproute({ table: TABLE, netns: ns }), secrets: new SecretReader(secrets!.dir), log: silentLogger });

    const first: number[] = [];
    const noop: number[] = [];
    const restart: number[] = [];
    const teardown: number[] = [];
    for (let i = 0; i < runs; i++) {
      const r = mk();
      const [t1, res1] = await timed(() => r.reconcile(plan));
      expect(res1, 'first converge', (x) => x.viciActions.length === 2 * peers && x.tunnels.length === peers);
      if (i === 0) {
        const [conns, keys] = [await vici.getConns(), await vici.getShared()];
        if (conns.length !== peers || keys.length !== peers) throw new Error(`charon holds ${conns.length} conns and ${keys.length} keys, not ${peers}`);
      }
      first.push(t1);
      const [t2, res2] = await timed(() => r.reconcile(plan));
      expect(res2, 'no-op re-converge', (x) => x.viciActions.length === 0 && x.ipChanges.length === 0);
      noop.push(t2);
      const fresh = mk();
      const [t3, res3] = await timed(() => fresh.reconcile(plan));
      expect(res3, 'agent restart', (x) => x.viciActions.length === 2 * peers);
      restart.push(t3);
      const [t4, res4] = await timed(() => fresh.teardown());
      expect(res4, 'teardown', (x) => x.viciActions.length === 2 * peers);
      teardown.push(t4);
      if ((await vici.getConns()).length !== 0) throw new Error('charon still holds conns after the teardown');
    }
    const rows = [
      row(`nodePlan() of ${peers + 1} Gateways`, [planMs], `${peers} tunnels (median of 21 calls)`),
      row('first converge (empty charon)', first, `${peers} load-shared + ${peers} load-conn`, verdict(median(first), 2000)),
      row('no-op re-converge', noop, 'get-conns, get-shared, list-sas x2; nothing loaded', verdict(median(noop), 2000)),
      row('agent restart (charon keeps all)', restart, `${2 * peers} loads again`),
      row('teardown', teardown, `${peers} unload-conn + ${peers} unload-shared`),
    ];
    console.log(`each tunnel: ${ts.localTs.length} local x ${ts.remoteTs.length} remote subnets, responder, remote %any; charon in a namespace with only lo; ${strongswanVersion()} (kernel-libipsec)`);
    console.log(formatRows(rows));
    return rows;
  } finally {
    await vici?.close().catch(() => undefined);
    await charon?.stop();
    await lab.cleanup();
    await secrets?.remove();
    console.log(`(took ${((performance.now() - began) / 1000).toFixed(0)} s)`);
  }
}

// ---------------------------------------------------------------- 2. the member with 5,000 routes

export async function benchMemberRoutes(o: { edges?: number; runs?: number } = {}): Promise<Row[] | undefined> {
  const edges = o.edges ?? 500;
  const runs = o.runs ?? 7;
  const routes = edges * NODES_PER_POOL;
  console.log(`-- agent: member converge, ${routes} routes (DatapathReconciler -> iproute2 ip -batch)`);
  const began = performance.now();
  const skip = netnsSkipReason();
  if (skip) {
    console.log(`skipped: ${skip}`);
    return undefined;
  }
  sweepStaleNamespaces();
  const lab = new NetnsLab();
  try {
    const ns = await lab.addNs('member');
    // The next hop (the hub's gateway, 10.0.0.1) must be on a link: one veth pair inside the namespace.
    await ip('-n', ns, 'link', 'add', 'v0', 'type', 'veth', 'peer', 'name', 'v1');
    await ip('-n', ns, 'link', 'set', 'v1', 'up');
    await ip('-n', ns, 'link', 'set', 'v0', 'up');
    await ip('-n', ns, 'addr', 'add', `${privateIP(0, 1)}/24`, 'dev', 'v0');
    const gateways = fleet(edges);
    const planMs = timeSync(() => nodePlan({ gateways, nodeName: HUB_MEMBER }), 11);
    const plan: NodePlan = nodePlan({ gateways, nodeName: HUB_MEMBER });
    if (plan.role !== 'member' || plan.routes.length !== routes || plan.rules.length !== 1) {
      throw new Error(`bench fleet is wrong: role ${plan.role}, ${plan.routes.length} routes, ${plan.rules.length} rules`);
    }
    const r = new DatapathReconciler({ iproute: new Iproute({ table: TABLE, netns: ns }), secrets: new SecretReader('/nonexistent'), log: silentLogger });
    const first: number[] = [];
    const noop: number[] = [];
    const repair: number[] = [];
    const teardown: number[] = [];
    for (let i = 0; i < runs; i++) {
      const [t1, res1] = await timed(() => r.reconcile(plan));
      expect(res1, 'from empty', (x) => x.ipChanges.length === routes + 1 && x.routeCount === routes);
      if (i === 0 && (await tableRouteCount(ns)) !== routes) throw new Error(`table ${TABLE} does not hold ${routes} routes after the apply`);
      first.push(t1);
      const [t2, res2] = await timed(() => r.reconcile(plan));
      expect(res2, 'no-op', (x) => x.ipChanges.length === 0);
      noop.push(t2);
      const victim = plan.routes[(i * 7919) % routes];
      await ip('-n', ns, 'route', 'del', victim.dst, 'table', String(TABLE));
      const [t3, res3] = await timed(() => r.reconcile(plan));
      expect(res3, 'drift repair', (x) => x.ipChanges.length === 1 && x.ipChanges[0].includes(victim.dst));
      repair.push(t3);
      const [t4, res4] = await timed(() => r.teardown());
      expect(res4, 'teardown', (x) => x.ipChanges.length === routes + 1);
      teardown.push(t4);
    }
    const rows = [
      row(`nodePlan() of ${edges + 1} Gateways`, [planMs], `${routes} routes (median of 11 calls)`),
      row('from empty', first, `${routes} route replace + 1 rule add`, verdict(median(first), 1000)),
      row('no-op re-apply', noop, 'ip -json route/rule show, both families', verdict(median(noop), 1000)),
      row('drift: 1 route deleted', repair, '1 route replace', verdict(median(repair), 1000)),
      row('teardown', teardown, `${routes} route del + 1 rule del`),
    ];
    console.log(`next hop on a veth inside the namespace; ${iprouteVersion()}`);
    console.log(formatRows(rows));
    return rows;
  } finally {
    await lab.cleanup();
    console.log(`(took ${((performance.now() - began) / 1000).toFixed(0)} s)`);
  }
}

// ---------------------------------------------------------------- 3. memory of `corvid agent`

export interface AgentMemoryRow {
  role: string;
  state: string;
  convergeMs: number;
  rssMedianMiB: number;
  rssMaxMiB: number;
  peakMiB: number;
}

async function putGateways(kc: ControlPlane['kubeConfig'], gateways: Gateway[]): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < gateways.length) {
      const g = gateways[next++];
      await applyGateway(kc, g, { fieldManager: 'corvid-bench' });
      await applyGatewayStatus(kc, g.metadata.name, g.status ?? {}, { fieldManager: 'corvid-bench-status' });
    }
  };
  await Promise.all(Array.from({ length: 16 }, worker));
}

async function spawnAgent(lab: NetnsLab, bin: string, args: string[], logPath: string): Promise<ChildProcess> {
  const fd = openSync(logPath, 'a');
  let child: ChildProcess;
  try {
    child = spawn(process.execPath, [bin, 'agent', ...args], { stdio: ['ignore', 'ignore', fd], env: { ...process.env, NODE_OPTIONS: AGENT_NODE_OPTIONS } });
  } finally {
    closeSync(fd);
  }
  lab.track(child);
  await new Promise<void>((resolve, reject) => {
    child.once('spawn', resolve);
    child.once('error', reject);
  });
  return child;
}

async function sampleRss(pid: number, seconds: number): Promise<{ median: number; max: number; peak: number }> {
  const xs: number[] = [];
  let peak = 0;
  for (let i = 0; i < seconds; i++) {
    await new Promise((r) => setTimeout(r, 1000));
    const m = processMemory(pid);
    if (m === undefined) throw new Error(`agent ${pid} exited while being measured`);
    xs.push(m.rssMiB);
    peak = m.peakMiB;
  }
  return { median: median(xs), max: Math.max(...xs), peak };
}

export async function benchAgentMemory(o: { peers?: number } = {}): Promise<AgentMemoryRow[] | undefined> {
  const peers = o.peers ?? 200;
  console.log(`-- agent: memory of \`corvid agent\` processes (hub gateway with ${peers} tunnels, hub member with ${peers * NODES_PER_POOL} routes)`);
  const began = performance.now();
  const skip = netnsSkipReason() ?? charonSkipReason() ?? controlPlaneSkip();
  if (skip) {
    console.log(`skipped: ${skip}`);
    return undefined;
  }
  sweepStaleNamespaces();
  const lab = new NetnsLab();
  let cp: ControlPlane | undefined;
  let charon: CharonInstance | undefined;
  let vici: ViciSession | undefined;
  let secrets: { dir: string; remove(): Promise<void> } | undefined;
  const agents: ChildProcess[] = [];
  const logDir = await mkdtemp(join(tmpdir(), 'corvid-bench-agent-'));
  const corvid = compiledCorvid();
  try {
    cp = await startControlPlane();
    const kc = cp.kubeConfig;
    await installCrds(kc);
    await ensureNamespace(kc, LEASE_NAMESPACE);
    await putGateways(kc, fleet(peers));
    const gwNs = await lab.addNs('gw');
    const memberNs = await lab.addNs('member');
    await ip('-n', memberNs, 'link', 'add', 'v0', 'type', 'veth', 'peer', 'name', 'v1');
    await ip('-n', memberNs, 'link', 'set', 'v1', 'up');
    await ip('-n', memberNs, 'link', 'set', 'v0', 'up');
    await ip('-n', memberNs, 'addr', 'add', `${privateIP(0, 1)}/24`, 'dev', 'v0');
    charon = await startCharon({ netns: gwNs });
    secrets = await makeSecretDir();
    vici = new ViciSession(charon.socketPath, { timeoutMs: 10_000, reconnectTimeoutMs: 5_000 });
    const common = ['--wireguard', 'off', '--kubeconfig', cp.kubeconfigPath, '--secret-dir', secrets.dir, '--lease-namespace', LEASE_NAMESPACE, '--metrics-addr', '127.0.0.1:0', '--log-level', 'warn'];

    const rows: AgentMemoryRow[] = [];
    const cases = [
      {
        role: 'gateway',
        args: ['--node-name', HUB_GW, '--netns', gwNs, '--vici-socket', charon.socketPath, '--state-dir', join(logDir, 'state-gw')],
        state: `${peers} conns + ${peers} keys in charon`,
        done: async () => (await vici!.getConns()).length === peers,
      },
      {
        role: 'member',
        args: ['--node-name', HUB_MEMBER, '--netns', memberNs, '--vici-socket', join(logDir, 'no-charon.vici'), '--state-dir', join(logDir, 'state-member')],
        state: `${peers * NODES_PER_POOL} routes + 1 rule`,
        done: async () => (await tableRouteCount(memberNs)) === peers * NODES_PER_POOL,
      },
    ];
    for (const c of cases) {
      const started = performance.now();
      const child = await spawnAgent(lab, corvid.bin, [...common, ...c.args], join(logDir, `${c.role}.log`));
      agents.push(child);
      await waitFor(`the ${c.role} agent to converge`, async () => {
        if (child.exitCode !== null) throw new Error(`agent exited (${child.exitCode})`);
        return c.done();
      }, 60_000, 50);
      const convergeMs = performance.now() - started;
      const s = await sampleRss(child.pid!, 12);
      rows.push({ role: c.role, state: c.state, convergeMs, rssMedianMiB: s.median, rssMaxMiB: s.max, peakMiB: s.peak });
    }
    // The floor: what Node and the agent's modules cost before any work (same binary, nothing connected).
    const floors: [string, string, number][] = [
      ['baseline', 'Node alone, idle', await baselineRssMiB([])],
      ['baseline', '@kubernetes/client-node imported', await baselineRssMiB(['node_modules/@kubernetes/client-node/dist/index.js'])],
      ['baseline', "the agent's modules imported", await baselineRssMiB([corvid.module('src/cli/main.ts'), corvid.module('src/agent/agent.ts')])],
    ];
    console.log(`bin/corvid.js agent as deployed (compiled JavaScript, NODE_OPTIONS=${JSON.stringify(AGENT_NODE_OPTIONS)} from the DaemonSet; Node ${process.version}), default repair interval 10 s; samples every 1 s for 12 s after converging`);
    console.log(
      table(
        ['agent', 'state', 'spawn -> converged ms', 'VmRSS median MiB', 'VmRSS max MiB', 'VmHWM MiB'],
        [
          ...rows.map((r) => [r.role, r.state, ms(r.convergeMs), r.rssMedianMiB.toFixed(1), r.rssMaxMiB.toFixed(1), r.peakMiB.toFixed(1)]),
          ...floors.map(([role, state, rss]) => [role, state, '-', rss.toFixed(1), '-', '-']),
        ],
      ),
    );
    return rows;
  } finally {
    // SIGTERM: each agent removes what it made (conns, keys, routes) before exiting.
    await Promise.all(agents.map((a) => stopChild(a, 10_000)));
    await vici?.close().catch(() => undefined);
    await charon?.stop();
    await lab.cleanup();
    await cp?.stop();
    await secrets?.remove();
    await rm(logDir, { recursive: true, force: true });
    console.log(`(took ${((performance.now() - began) / 1000).toFixed(0)} s)`);
  }
}

// ---------------------------------------------------------------- all of it

export async function benchAgent(o: { runs?: number } = {}): Promise<void> {
  console.log(machineLine());
  benchNodePlan();
  await benchGatewayConverge({ runs: o.runs });
  await benchMemberRoutes({ runs: o.runs });
  await benchAgentMemory();
}

// `npx node bench/agent.ts nodeplan`: only the pure nodePlan() part (no root, no charon, no control plane).
if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  if (process.argv[2] === 'nodeplan') {
    console.log(machineLine());
    benchNodePlan();
  } else if (process.argv[2] === 'memory') {
    console.log(machineLine());
    await benchAgentMemory();
  } else {
    await benchAgent();
  }
}
