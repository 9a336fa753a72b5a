// The end-to-end network: three node pools built from network namespaces, two of them behind real NAT routers.
// Drawn in test/e2e/README.md. Nothing here knows about Corvid: this is the "data centre" the system runs on.
//
//   "Internet" 198.51.100.0/24 (TEST-NET-2), a bridge in its own namespace
//     ├── cloud-gw-1  wan0 198.51.100.11        ├── edge-a router wan0 198.51.100.21 (masquerade, drops inbound new)
//     └── cloud-gw-2  wan0 198.51.100.12        └── edge-b router wan0 198.51.100.22 (masquerade, drops inbound new)
//
//   pool LAN (a bridge per pool)   cloud 10.10.0.0/24, edge-a 10.20.0.0/24 (router .1), edge-b 10.30.0.0/24 (router .1)
//     gw-1 .11, gw-2 .12, node-1 .13 (the InternalIP of each Node)
//   edge-b's router is a broken middlebox: its WAN MTU is 1400 and it drops ICMP "fragmentation needed".
//
// A real CNI runs on every node, installed as it installs itself (test/support/cni*.ts), with one pod per node in a
// namespace of its own:
//   flannel (vxlan, iptables-mode masquerade, RHEL's strict rp_filter): Network 10.244.0.0/16, podCIDR per node
//     cloud 10.244.{11,12,13}.0/24, edge-a 10.244.{21,22,23}.0/24, edge-b 10.244.{31,32,33}.0/24;
//   Calico (calico-ipam, VXLAN, Felix's rules, systemd's loose rp_filter): IPPool 192.168.0.0/16, one /26 block
//     per node (192.168.{11,12,13,21,...}.0/26), and a second block on edge-a-node-1 (192.168.23.64/26).
// As on real nodes, each CNI routes every node's pod network, other pools' included, to VXLAN peers it cannot reach
// across the NAT routers; Corvid's rule (priority 9027) and charon's table 220 come first.
//
// No namespace has a default route: pod traffic between pools can only travel through the tunnels, so a packet that
// would leak in the clear has no route and is dropped. Edge gateway candidates reach the Internet via their router;
// ordinary edge nodes do not reach it at all.
//
// kernel-libipsec (the only ESP datapath this kernel has) refuses a CHILD_SA whose local traffic selector holds no
// address of the gateway (it needs a source address for the route it installs in table 220). Kernel ESP does not.
// So every gateway candidate also holds the last usable address of every subnet it may have to carry as a local
// traffic selector on lo (/32): its pool's other nodes' pod subnets and, on the relay (cloud), the NAT'd pools'.
// Nothing is ever sent to one of them.
//
// Only addresses inside these namespaces are used; every namespace is made by this file and removed by cleanup(),
// also when the process exits early (NetnsLab's exit hooks).

import { onPath } from '../support/host.ts';
import { NetnsLab, netnsSkipReason, sweepStaleNamespaces } from '../support/netns.ts';
import { CalicoCluster, installCalico, installFlannel, nthAddr, parseCidr, type FlannelCluster, type Pod, type RpFilterStyle } from '../support/cni.ts';

export type PoolName = 'cloud' | 'edge-a' | 'edge-b';
export const POOLS: readonly PoolName[] = ['cloud', 'edge-a', 'edge-b'];
/** The label the topology's node selectors use. */
export const POOL_SELECTOR_LABEL = 'topology.corvid.dev/pool';

export const INTERNET_CIDR = '198.51.100.0/24';

/** The CNI the fabric's nodes run. */
export type CniFlavour = 'flannel' | 'calico';
export const FLANNEL_NETWORK = '10.244.0.0/16';
export const CALICO_POOL = '192.168.0.0/16';
/** edge-b's router: WAN MTU (the topology declares it as the pool's mtu). */
export const NARROW_WAN_MTU = 1400;
export const NARROW_POOL: PoolName = 'edge-b';

export interface FabricOptions {
  cni?: CniFlavour;
  /**
   * Shape every site's Internet link to this rate, both ways (tbf on the site's wan0 and on its port of the Internet
   * bridge), as an edge uplink is: then the WAN, not this machine's CPUs, limits a tunnel. Default: not shaped.
   */
  wanMbit?: number;
  /** rp_filter of every node and pod; default rhel (strict) with flannel, systemd (loose) with Calico. */
  rpFilter?: RpFilterStyle;
}

export interface FabricNode {
  /** Kubernetes node name, e.g. `edge-a-gw-1`. */
  name: string;
  pool: PoolName;
  /** `candidate`: a gateway candidate (runs charon); `member`: an ordinary node. */
  kind: 'candidate' | 'member';
  /** Network namespace of the node. */
  ns: string;
  /** InternalIP (LAN address). */
  lanIP: string;
  /** flannel: node.spec.podCIDR; Calico: its first IPAM block. */
  podCIDR: string;
  /** Every pod subnet of the node (Calico: its blocks; flannel: the podCIDR). */
  podCIDRs: string[];
  /** The node's pod: its address and its own namespace. */
  podIP: string;
  pod: Pod;
  /** cloud candidates: their address on the Internet. */
  publicIP?: string;
}

export interface FabricPool {
  name: PoolName;
  behindNAT: boolean;
  lanCIDR: string;
  /** The LAN switch namespace (holds bridge br0). */
  switchNs: string;
  /** NAT'd pools: the router namespace, its WAN address and LAN address. */
  router?: { ns: string; wanIP: string; lanIP: string };
  nodes: FabricNode[];
}

interface PoolPlan {
  name: PoolName;
  n: number;
  behindNAT: boolean;
}

const PLAN: PoolPlan[] = [
  { name: 'cloud', n: 1, behindNAT: false },
  { name: 'edge-a', n: 2, behindNAT: true },
  { name: 'edge-b', n: 3, behindNAT: true },
];

function short(pool: PoolName): string {
  return pool === 'cloud' ? 'c' : pool === 'edge-a' ? 'a' : 'b';
}

/**
 * The nftables ruleset of a NAT router: masquerade out of wan0, drop new connections coming in on wan0. A broken
 * middlebox also drops every ICMP "fragmentation needed", its own and forwarded ones, so path MTU discovery across it
 * never works.
 */
export function routerRuleset(opts: { dropFragNeeded?: boolean } = {}): string {
  const frag = opts.dropFragNeeded
    ? `table ip corvid_pmtu_blackhole {
  counter frag_needed_dropped {}
  chain forward {
    type filter hook forward priority filter - 1; policy accept;
    icmp type destination-unreachable icmp code frag-needed counter name "frag_needed_dropped" drop
  }
  chain output {
    type filter hook output priority filter - 1; policy accept;
    icmp type destination-unreachable icmp code frag-needed counter name "frag_needed_dropped" drop
  }
}
`
    : '';
  return `${frag}table ip corvid_nat {
  chain postrouting {
    type nat hook postrouting priority srcnat; policy accept;
    oifname "wan0" masquerade
  }
}
table inet corvid_fw {
  counter inbound_new_dropped {}
  chain input {
    type filter hook input priority filter; policy accept;
    iifname "wan0" ct state new counter name "inbound_new_dropped" drop
  }
  chain forward {
    type filter hook forward priority filter; policy accept;
    iifname "wan0" ct state new counter name "inbound_new_dropped" drop
    iifname "wan0" ct state invalid drop
  }
}
`;
}

/** undefined when the fabric can be built here; otherwise one line saying how to enable it. */
export function fabricSkipReason(): string | undefined {
  const ns = netnsSkipReason();
  if (ns !== undefined) return ns;
  const missing = [
    ['nft', 'nftables'],
    ['ping', 'iputils-ping'],
    ['sysctl', 'procps'],
  ].filter(([cmd]) => !onPath(cmd));
  if (missing.length > 0) return `the e2e fabric needs ${missing.map(([c, p]) => `${c} (apt-get install ${p})`).join(', ')}`;
  return undefined;
}

export class Fabric {
  readonly lab: NetnsLab;
  /** Namespace of the Internet bridge. */
  internetNs = '';
  readonly pools = new Map<PoolName, FabricPool>();
  readonly nodes = new Map<string, FabricNode>();
  readonly cni: CniFlavour;
  readonly rpFilter: RpFilterStyle;
  readonly wanMbit: number | undefined;
  /** Every site's link to the Internet: [its namespace, wan0's port on the Internet bridge]. */
  private readonly wanLinks: Array<[string, string]> = [];
  /** The CNI's view of the cluster (its nodes and pods). */
  cluster: FlannelCluster | CalicoCluster | undefined;
  private nodeAddressesHeld = false;

  private constructor(lab: NetnsLab, opts: FabricOptions) {
    this.lab = lab;
    this.cni = opts.cni ?? 'flannel';
    this.rpFilter = opts.rpFilter ?? (this.cni === 'flannel' ? 'rhel' : 'systemd');
    this.wanMbit = opts.wanMbit;
  }

  /** Build the whole network. On failure, everything made so far is removed before the error is rethrown. */
  static async build(opts: FabricOptions = {}): Promise<Fabric> {
    sweepStaleNamespaces();
    const f = new Fabric(new NetnsLab(), opts);
    try {
      await f.buildAll();
    } catch (e) {
      await f.cleanup();
      throw e;
    }
    return f;
  }

  private async buildAll(): Promise<void> {
    const lab = this.lab;
    this.internetNs = await lab.addNs('inet');
    await lab.bridge(this.internetNs, 'br0');
    let port = 0;

    for (const p of PLAN) {
      const s = short(p.name);
      const switchNs = await lab.addNs(`${s}sw`);
      await lab.bridge(switchNs, 'br0');
      const lanPrefix = `10.${p.n}0.0`;
      const pool: FabricPool = { name: p.name, behindNAT: p.behindNAT, lanCIDR: `${lanPrefix}.0/24`, switchNs, nodes: [] };

      if (p.behindNAT) {
        const ns = await lab.addNs(`${s}rt`);
        const wanIP = `198.51.100.${20 + p.n - 1}`;
        const lanIP = `${lanPrefix}.1`;
        const wanPort = `p${++port}`;
        await lab.plug(this.internetNs, 'br0', wanPort, ns, 'wan0');
        this.wanLinks.push([ns, wanPort]);
        await lab.plug(switchNs, 'br0', 'prt', ns, 'lan0');
        await lab.addr(ns, 'wan0', `${wanIP}/24`);
        await lab.addr(ns, 'lan0', `${lanIP}/24`);
        await lab.forwarding(ns);
        const narrow = p.name === NARROW_POOL;
        if (narrow) {
          await lab.exec(ns, ['ip', 'link', 'set', 'wan0', 'mtu', String(NARROW_WAN_MTU)]);
          await lab.exec(this.internetNs, ['ip', 'link', 'set', wanPort, 'mtu', String(NARROW_WAN_MTU)]);
        }
        await lab.exec(ns, ['nft', '-f', '-'], { input: routerRuleset({ dropFragNeeded: narrow }) });
        pool.router = { ns, wanIP, lanIP };
      }

      const kinds: Array<[string, FabricNode['kind']]> = [
        ['gw-1', 'candidate'],
        ['gw-2', 'candidate'],
        ['node-1', 'member'],
      ];
      for (const [i, [suffix, kind]] of kinds.entries()) {
        const name = `${p.name}-${suffix}`;
        const ns = await lab.addNs(`${s}${suffix.replace('-', '')}`);
        const octet = `${p.n}${i + 1}`;
        const podCIDRs = this.cni === 'flannel' ? [`10.244.${octet}.0/24`] : [`192.168.${octet}.0/26`];
        // A node with two IPAM blocks, as calico-ipam gives a node whose first block filled up.
        if (this.cni === 'calico' && name === 'edge-a-node-1') podCIDRs.push(`192.168.${octet}.64/26`);
        const node = { name, pool: p.name, kind, ns, lanIP: `${lanPrefix}.${11 + i}`, podCIDR: podCIDRs[0], podCIDRs } as FabricNode;
        await lab.plug(switchNs, 'br0', `p${i}`, ns, 'eth0');
        await lab.addr(ns, 'eth0', `${node.lanIP}/24`);
        await lab.forwarding(ns);
        if (kind === 'candidate') {
          if (!p.behindNAT) {
            node.publicIP = `198.51.100.${10 + i + 1}`;
            const wanPort = `p${++port}`;
            await lab.plug(this.internetNs, 'br0', wanPort, ns, 'wan0');
            this.wanLinks.push([ns, wanPort]);
            await lab.addr(ns, 'wan0', `${node.publicIP}/24`);
          } else {
            await lab.route(ns, INTERNET_CIDR, 'via', pool.router!.lanIP);
          }
        }
        pool.nodes.push(node);
        this.nodes.set(name, node);
      }
      this.pools.set(p.name, pool);
    }

    // The CNI: one cluster over every node of every pool, one pod per node.
    const all = [...this.nodes.values()];
    const cluster = (this.cluster =
      this.cni === 'flannel'
        ? await installFlannel(lab, all.map((n) => ({ name: n.name, ns: n.ns, ip: n.lanIP, podCIDR: n.podCIDR })), {
            network: FLANNEL_NETWORK,
            mode: 'iptables',
            rpFilter: this.rpFilter,
            pods: 1,
          })
        : await installCalico(lab, all.map((n) => ({ name: n.name, ns: n.ns, ip: n.lanIP, blocks: n.podCIDRs })), {
            pools: [CALICO_POOL],
            // No default route on these nodes (see above): proxy ARP for 169.254.1.1 needs a route through eth0.
            gatewayRoute: 'add',
            rpFilter: this.rpFilter,
            pods: 1,
          }));
    for (const n of all) {
      n.pod = cluster.podsOn(n.name)[0]!;
      n.podIP = n.pod.ip;
    }
    for (const n of all) for (const cidr of n.podCIDRs) await this.libipsecAddresses(n, cidr);
    if (this.wanMbit !== undefined) {
      const tbf = ['root', 'tbf', 'rate', `${this.wanMbit}mbit`, 'burst', '64kb', 'latency', '50ms'];
      for (const [ns, port] of this.wanLinks) {
        await lab.exec(ns, ['tc', 'qdisc', 'replace', 'dev', 'wan0', ...tbf]);
        await lab.exec(this.internetNs, ['tc', 'qdisc', 'replace', 'dev', port, ...tbf]);
      }
    }
  }

  /**
   * kernel-libipsec's need for a local address in every local traffic selector (see the top of this file): the last
   * usable address of `owner`'s subnet on lo of every candidate that may carry it as a local selector (its own pool's
   * other candidates, and the relay pool's when the owner is behind NAT).
   */
  private async libipsecAddresses(owner: FabricNode, cidr: string): Promise<void> {
    const carriers = [...this.pools.values()].filter((p) => p.name === owner.pool || (this.pool(owner.pool).behindNAT && !p.behindNAT));
    for (const c of carriers.flatMap((p) => p.nodes).filter((n) => n.kind === 'candidate' && n !== owner)) {
      await this.lab.addr(c.ns, 'lo', `${nthAddr(cidr, parseCidr(cidr).size - 2)}/32`);
    }
  }

  /**
   * The same quirk for spec.nodeAddresses, whose selectors are other nodes' addresses as /32s: every candidate holds
   * each node address it may carry as a local selector (its pool's other nodes; on the relay, the NAT'd pools' nodes)
   * on lo. They must still be forwarded, not delivered: the local table's rule moves to pref 1 behind a `to <addr>
   * goto 2` per address (a nop at 2, then charon's, Corvid's and main as before), and eth0 answers ARP only for its own
   * address. Idempotent.
   */
  async holdNodeAddresses(): Promise<void> {
    if (this.nodeAddressesHeld) return;
    this.nodeAddressesHeld = true;
    for (const c of this.candidates()) {
      const carried = [...this.pools.values()]
        .filter((p) => p.name === c.pool || (p.behindNAT && !this.pool(c.pool).behindNAT))
        .flatMap((p) => p.nodes)
        .filter((n) => n !== c);
      await this.lab.exec(c.ns, ['sysctl', '-qw', 'net.ipv4.conf.eth0.arp_ignore=1', 'net.ipv4.conf.eth0.arp_announce=2']);
      await this.lab.exec(c.ns, ['ip', 'rule', 'add', 'pref', '2', 'nop']);
      await this.lab.exec(c.ns, ['ip', 'rule', 'add', 'pref', '1', 'lookup', 'local']);
      await this.lab.exec(c.ns, ['ip', 'rule', 'del', 'pref', '0', 'lookup', 'local']);
      for (const n of carried) {
        await this.lab.exec(c.ns, ['ip', 'rule', 'add', 'pref', '0', 'to', `${n.lanIP}/32`, 'goto', '2']);
        await this.lab.addr(c.ns, 'lo', `${n.lanIP}/32`);
      }
    }
  }

  /**
   * Calico gives a node one more IPAM block (its first ones filled up): Felix blackholes it on the node and routes it
   * through vxlan.calico on every other node. Returns a new pod on the node with the block's first address. The
   * caller publishes the BlockAffinity.
   */
  async addCalicoBlock(node: string, cidr: string): Promise<Pod> {
    const calico = this.cluster;
    if (!(calico instanceof CalicoCluster)) throw new Error('addCalicoBlock: the fabric does not run Calico');
    const owner = calico.node(node);
    owner.blocks.push(cidr);
    this.node(node).podCIDRs.push(cidr);
    await this.lab.exec(owner.ns, ['ip', 'route', 'replace', 'blackhole', cidr, 'proto', '80']);
    for (const other of calico.nodes) {
      if (other !== owner) await this.lab.exec(other.ns, ['ip', 'route', 'replace', cidr, 'via', owner.tunnelIP, 'dev', 'vxlan.calico', 'onlink']);
    }
    await this.libipsecAddresses(this.node(node), cidr);
    return calico.addPod(node, { name: `${node}-p2`, ip: nthAddr(cidr, 0) });
  }

  node(name: string): FabricNode {
    const n = this.nodes.get(name);
    if (!n) throw new Error(`no node ${name} in the fabric`);
    return n;
  }

  /** The node whose pod has this address (or the address itself when none does). */
  nodeByPod(ip: string): string {
    return [...this.nodes.values()].find((n) => n.podIP === ip)?.name ?? ip;
  }

  pool(name: PoolName): FabricPool {
    return this.pools.get(name)!;
  }

  candidates(pool?: PoolName): FabricNode[] {
    return [...this.nodes.values()].filter((n) => n.kind === 'candidate' && (pool === undefined || n.pool === pool));
  }

  /** One ping (or `count`) from a node namespace (its own address `source`) to an address; true when every reply came back. */
  async ping(from: string, to: string, opts: { count?: number; waitS?: number; source: string }): Promise<boolean> {
    const n = this.node(from);
    return pingOk(this.lab, n.ns, to, { ...opts, source: opts.source });
  }

  /** Pod-to-pod ping between two nodes' pods (from inside the pod's namespace). */
  podPing(from: string, to: string, opts: { count?: number; waitS?: number } = {}): Promise<boolean> {
    return pingOk(this.lab, this.node(from).pod.ns, this.node(to).podIP, opts);
  }

  /**
   * Drop `percent` % of packets at random (nftables numgen), each way, on a pool's LAN (its switch's bridge) and on
   * its WAN (the router's wan0, or each gateway candidate's wan0 where the pool has no router). Returns the undo.
   */
  async randomLoss(pool: PoolName, percent: number): Promise<() => Promise<void>> {
    const p = this.pool(pool);
    const drop = `numgen random mod 100 < ${percent} drop`;
    const applied: Array<[string, string]> = [];
    const bridgeRules = ['table bridge corvid_lossy {', `  chain lossy { type filter hook forward priority 0; ${drop}; }`, '}', ''].join('\n');
    await this.lab.exec(p.switchNs, ['nft', '-f', '-'], { input: bridgeRules });
    applied.push([p.switchNs, 'bridge']);
    const wanNs = p.router ? [p.router.ns] : p.nodes.filter((n) => n.kind === 'candidate').map((n) => n.ns);
    const wanRules = [
      'table inet corvid_lossy {',
      `  chain lossy_in { type filter hook prerouting priority -400; iifname "wan0" ${drop}; }`,
      `  chain lossy_out { type filter hook postrouting priority 400; oifname "wan0" ${drop}; }`,
      '}',
      '',
    ].join('\n');
    for (const ns of wanNs) {
      await this.lab.exec(ns, ['nft', '-f', '-'], { input: wanRules });
      applied.push([ns, 'inet']);
    }
    return async () => {
      for (const [ns, family] of applied) await this.lab.exec(ns, ['nft', 'delete', 'table', family, 'corvid_lossy'], { allowFail: true });
    };
  }

  /** Packets the router of a NAT'd pool dropped as new inbound connections. */
  async routerDrops(pool: PoolName): Promise<number> {
    const r = this.pool(pool).router;
    if (!r) throw new Error(`pool ${pool} has no router`);
    const out = await this.lab.exec(r.ns, ['nft', 'list', 'counter', 'inet', 'corvid_fw', 'inbound_new_dropped']);
    const m = /packets (\d+)/.exec(out.stdout);
    if (!m) throw new Error(`cannot read the router counter: ${out.stdout}`);
    return Number(m[1]);
  }

  /** Remove every namespace (and the interfaces inside) and kill every process tracked by the lab. Idempotent. */
  cleanup(): Promise<void> {
    return this.lab.cleanup();
  }
}

async function pingOk(lab: NetnsLab, ns: string, to: string, opts: { count?: number; waitS?: number; source?: string }): Promise<boolean> {
  const argv = ['ping', '-n', '-q', '-c', String(opts.count ?? 1), '-i', '0.2', '-W', String(opts.waitS ?? 1)];
  if (opts.source !== undefined) argv.push('-I', opts.source);
  const r = await lab.exec(ns, [...argv, to], { allowFail: true });
  return r.code === 0;
}

// ---------------------------------------------------------------- continuous ping (100 ms) with per-packet times

export interface PingReply {
  seq: number;
  /** Wall-clock time the reply arrived (ping -D), ms since the epoch. */
  at: number;
}

export interface PingOutage {
  /** About when the first unanswered request after t was sent (ms since the epoch). */
  firstLossAt?: number;
  /** Time of the first reply to a request sent after the loss began. */
  recoveredAt?: number;
  /** Requests lost in between (so far, while not recovered). */
  lost: number;
}

interface SeqState {
  /** Time of the first line about this request (its reply, or ping's "no answer yet" when the next one is sent). */
  seenAt: number;
  repliedAt?: number;
}

/**
 * `ping -D -O -i <interval>` from a node's pod address to another address, kept running until stop(). ping prints a
 * line for every request: its reply, or "no answer yet" when the next request goes out (-O), each with ping's own
 * wall-clock timestamp (-D). So every request is accounted for and a recovery is timed to the millisecond whatever
 * this process's event loop was doing.
 */
export class Pinger {
  readonly from: string;
  readonly to: string;
  readonly intervalMs: number;
  private readonly seqs = new Map<number, SeqState>();
  private readonly child: ReturnType<NetnsLab['spawn']>;
  private readonly done: Promise<void>;
  private buf = '';

  constructor(fabric: Fabric, from: string, toAddr: string, intervalMs = 100) {
    this.from = from;
    this.to = toAddr;
    this.intervalMs = intervalMs;
    // From inside the pod; stdbuf: one line at a time through the pipe.
    this.child = fabric.lab.spawn(fabric.node(from).pod.ns, ['stdbuf', '-oL', 'ping', '-D', '-O', '-n', '-i', String(intervalMs / 1000), '-W', '1', toAddr]);
    this.child.stdout!.setEncoding('utf8').on('data', (c: string) => this.feed(c));
    this.child.stderr!.resume();
    this.done = new Promise((resolve) => this.child.once('exit', () => resolve()));
  }

  private feed(chunk: string): void {
    this.buf += chunk;
    let i;
    while ((i = this.buf.indexOf('\n')) >= 0) {
      const line = this.buf.slice(0, i);
      this.buf = this.buf.slice(i + 1);
      const seq = /icmp_seq=(\d+)/.exec(line);
      const ts = /^\[(\d+\.\d+)\]/.exec(line);
      if (!seq || !ts) continue;
      const s = Number(seq[1]);
      const at = Math.round(Number(ts[1]) * 1000);
      const st = this.seqs.get(s) ?? { seenAt: at };
      if (/bytes from/.test(line) && st.repliedAt === undefined) st.repliedAt = at;
      this.seqs.set(s, st);
    }
  }

  /** Every reply, in order of sequence number. */
  get replies(): PingReply[] {
    return [...this.seqs]
      .filter(([, st]) => st.repliedAt !== undefined)
      .sort((a, b) => a[0] - b[0])
      .map(([seq, st]) => ({ seq, at: st.repliedAt! }));
  }

  /** Resolves with the first reply at or after time t, or undefined at the deadline. */
  async waitForReply(t: number, timeoutMs: number): Promise<PingReply | undefined> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const r = this.replies.find((x) => x.at >= t);
      if (r) return r;
      if (Date.now() > deadline) return undefined;
      await new Promise((res) => setTimeout(res, 50));
    }
  }

  /** Resolves with the first reply that ends the first outage after time t, or undefined at the deadline. */
  async waitForRecovery(t: number, timeoutMs: number): Promise<PingReply | undefined> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const o = this.outage(t);
      if (o.recoveredAt !== undefined) return this.replies.find((r) => r.at === o.recoveredAt);
      if (Date.now() > deadline) return undefined;
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /**
   * The first outage after time t: the first request seen at or after t - interval that got no reply, and the
   * first reply to a later request. No loss at all gives {lost: 0}.
   */
  outage(t: number): PingOutage {
    const ordered = [...this.seqs].sort((a, b) => a[0] - b[0]).filter(([, st]) => st.seenAt >= t - this.intervalMs);
    let firstLoss: number | undefined;
    let lost = 0;
    for (const [, st] of ordered) {
      if (firstLoss === undefined) {
        if (st.repliedAt === undefined) {
          firstLoss = st.seenAt - this.intervalMs;
          lost = 1;
        }
        continue;
      }
      if (st.repliedAt !== undefined) return { firstLossAt: firstLoss, recoveredAt: st.repliedAt, lost };
      lost++;
    }
    return firstLoss === undefined ? { lost: 0 } : { firstLossAt: firstLoss, lost };
  }

  /** Requests seen between t0 and t1 and how many of them got no reply. */
  lostBetween(t0: number, t1: number): { sent: number; lost: number; lostSeqs: number[]; lostSentAt: number[] } {
    const inWindow = [...this.seqs].filter(([, st]) => st.seenAt >= t0 && st.seenAt <= t1).sort((a, b) => a[0] - b[0]);
    const lost = inWindow.filter(([, st]) => st.repliedAt === undefined);
    // ping says "no answer yet" as it sends the next request: the lost one went out an interval before.
    return { sent: inWindow.length, lost: lost.length, lostSeqs: lost.map(([seq]) => seq), lostSentAt: lost.map(([, st]) => st.seenAt - this.intervalMs) };
  }

  /** Stop ping and wait for it. */
  async stop(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGINT');
    await this.done;
  }
}
