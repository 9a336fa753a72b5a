// What the CNI emulations (cni-flannel.ts, cni-calico.ts) share: pod handles, rp_filter styles, sysctls, ip/nft
// batches and IPv4 arithmetic. The facts they follow are in the team note "cni-on-a-node".
import { createHash } from 'node:crypto';
import type { NetnsLab } from './netns.ts';

export interface PodOptions {
  /** Pod name; default `<node>-p<n>`. */
  name?: string;
  /** Kubernetes namespace; default `default`. */
  kubeNamespace?: string;
  /** Its address; default the IPAM's next free one. Must lie in the node's pod CIDR (flannel) or blocks (Calico). */
  ip?: string;
}

/** A pod: a network namespace of its own behind a veth into its node, set up the way its CNI does it. */
export interface Pod {
  /** Kubernetes pod name (unique in the cluster here). */
  name: string;
  /** Kubernetes namespace of the pod (Calico's veth name hashes it). */
  kubeNamespace: string;
  /** The pod's network namespace. */
  ns: string;
  /** The pod's IPv4 address. */
  ip: string;
  /** Name of the node it runs on. */
  node: string;
  /** The host side of its veth, in the node's namespace. */
  hostIf: string;
  /** MTU of the pod's eth0. */
  mtu: number;
}

// ---------------------------------------------------------------- rp_filter as distributions ship it

/**
 * `systemd`: sysctl.d/50-default.conf sets default and every device to 2 and leaves all at the kernel's 0.
 * `rhel`: all, default and devices 1. `kernel`: 0 everywhere (what this machine's namespaces start with).
 */
export type RpFilterStyle = 'systemd' | 'rhel' | 'kernel';

export const RP_FILTER: Readonly<Record<RpFilterStyle, { all: number; default: number; device: number }>> = {
  systemd: { all: 0, default: 2, device: 2 },
  rhel: { all: 1, default: 1, device: 1 },
  kernel: { all: 0, default: 0, device: 0 },
};

/** `sysctl -w` inside ns. Keys use `/` separators so device names with dots (flannel.1) survive. */
export async function sysctl(lab: NetnsLab, ns: string, settings: Record<string, string | number>): Promise<void> {
  const args = Object.entries(settings).map(([k, v]) => `${k}=${v}`);
  if (args.length > 0) await lab.exec(ns, ['sysctl', '-q', '-w', ...args]);
}

/** IPv4 interfaces (the conf/ entries except all and default) inside ns. */
export async function ipv4Devices(lab: NetnsLab, ns: string): Promise<string[]> {
  const r = await lab.exec(ns, ['ls', '/proc/sys/net/ipv4/conf']);
  return r.stdout.split(/\s+/).filter((d) => d !== '' && d !== 'all' && d !== 'default');
}

/**
 * Set rp_filter in ns the way a distribution's boot does: all, default and every device that exists now. A device
 * created later takes conf/default, as on a real node.
 */
export async function applyRpFilter(lab: NetnsLab, ns: string, style: RpFilterStyle): Promise<void> {
  const v = RP_FILTER[style];
  const settings: Record<string, number> = { 'net/ipv4/conf/all/rp_filter': v.all, 'net/ipv4/conf/default/rp_filter': v.default };
  for (const dev of await ipv4Devices(lab, ns)) settings[`net/ipv4/conf/${dev}/rp_filter`] = v.device;
  await sysctl(lab, ns, settings);
}

/** rp_filter values in ns: all, default and each device. */
export async function readRpFilter(lab: NetnsLab, ns: string): Promise<Record<string, number>> {
  const devs = ['all', 'default', ...(await ipv4Devices(lab, ns))];
  const r = await lab.exec(ns, ['sh', '-c', devs.map((d) => `cat /proc/sys/net/ipv4/conf/${d}/rp_filter`).join(';')]);
  const vals = r.stdout.trim().split('\n').map(Number);
  return Object.fromEntries(devs.map((d, i) => [d, vals[i]]));
}

// ---------------------------------------------------------------- batches

/** Run `ip -batch` inside ns (one process for many commands; stops at the first error). */
export async function ipBatch(lab: NetnsLab, ns: string, lines: string[]): Promise<void> {
  if (lines.length > 0) await lab.exec(ns, ['ip', '-batch', '-'], { input: lines.join('\n') + '\n' });
}

/** Run `bridge -batch` inside ns. */
export async function bridgeBatch(lab: NetnsLab, ns: string, lines: string[]): Promise<void> {
  if (lines.length > 0) await lab.exec(ns, ['bridge', '-batch', '-'], { input: lines.join('\n') + '\n' });
}

/** Load an nft ruleset inside ns. */
export async function nftLoad(lab: NetnsLab, ns: string, ruleset: string): Promise<void> {
  await lab.exec(ns, ['nft', '-f', '-'], { input: ruleset });
}

/** MTU of a device inside ns. */
export async function linkMtu(lab: NetnsLab, ns: string, dev: string): Promise<number> {
  const r = await lab.exec(ns, ['ip', '-j', 'link', 'show', 'dev', dev]);
  const [link] = JSON.parse(r.stdout) as Array<{ mtu: number }>;
  return link.mtu;
}

// ---------------------------------------------------------------- IPv4 arithmetic

export function ipToInt(ip: string): number {
  const p = ip.split('.').map(Number);
  if (p.length !== 4 || p.some((x) => !Number.isInteger(x) || x < 0 || x > 255)) throw new Error(`not an IPv4 address: ${ip}`);
  return ((p[0] << 24) | (p[1] << 16) | (p[2] << 8) | p[3]) >>> 0;
}

export function intToIp(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

export function parseCidr(cidr: string): { base: number; bits: number; size: number } {
  const [addr, len] = cidr.split('/');
  const bits = Number(len);
  if (!Number.isInteger(bits) || bits < 0 || bits > 32) throw new Error(`not an IPv4 CIDR: ${cidr}`);
  const size = 2 ** (32 - bits);
  const base = bits === 0 ? 0 : (ipToInt(addr) & (~(size - 1) >>> 0)) >>> 0;
  return { base, bits, size };
}

export function prefixLen(cidr: string): number {
  return parseCidr(cidr).bits;
}

/** The n-th address of a CIDR (0 = its base). */
export function nthAddr(cidr: string, n: number): string {
  const c = parseCidr(cidr);
  if (n < 0 || n >= c.size) throw new Error(`${cidr} has no address #${n}`);
  return intToIp(c.base + n);
}

export function cidrContains(cidr: string, ip: string): boolean {
  const c = parseCidr(cidr);
  const x = ipToInt(ip);
  return x >= c.base && x < c.base + c.size;
}

// ---------------------------------------------------------------- names

export function sha1Hex(s: string): string {
  return createHash('sha1').update(s).digest('hex');
}

/** A stable, locally administered unicast MAC for a VTEP (real CNIs keep theirs in node annotations). */
export function stableMac(seed: string): string {
  const h = sha1Hex(seed);
  return ['0e', h.slice(0, 2), h.slice(2, 4), h.slice(4, 6), h.slice(6, 8), h.slice(8, 10)].join(':');
}

/** A short namespace label from a pod name (netns names stay readable; NetnsLab adds the unique parts). */
export function podLabel(podName: string): string {
  return `pod-${podName.replace(/[^a-zA-Z0-9-]/g, '').slice(0, 24)}`;
}

/** The number of pods a node should get from a `pods` option. */
export function podCount(pods: number | ((node: string) => number) | undefined, node: string): number {
  if (pods === undefined) return 1;
  return typeof pods === 'number' ? pods : pods(node);
}

// ---------------------------------------------------------------- what both CNIs' clusters share

/** A node as the CNI's datastore knows it. */
export interface CniNodeSpec {
  /** Kubernetes node name. */
  name: string;
  /** InternalIP: the VXLAN destination for its pod networks. */
  ip: string;
  /** The node's namespace (with an uplink holding `ip`). Absent: the node exists cluster-wide but not here. */
  ns?: string;
}

export interface CniOptions {
  /** rp_filter of the node and pod namespaces. Default systemd. */
  rpFilter?: RpFilterStyle;
  /** Uplink device name. Default eth0. */
  uplink?: string;
  /** Pods per installed node. Default 1. */
  pods?: number | ((node: string) => number);
}

/** One CNI on a cluster: the nodes installed here, every node it knows of, and the pods made so far. */
export abstract class CniCluster<S extends CniNodeSpec, N extends S & { ns: string }> {
  readonly lab: NetnsLab;
  /** Every node of the cluster, installed here or not. */
  readonly cluster: S[];
  readonly rpFilter: RpFilterStyle;
  /** Nodes installed here (those given with a namespace), in the order given. */
  readonly nodes: N[] = [];
  readonly pods: Pod[] = [];
  protected readonly uplink: string;

  constructor(lab: NetnsLab, cluster: S[], opts: CniOptions) {
    this.lab = lab;
    this.cluster = cluster;
    this.rpFilter = opts.rpFilter ?? 'systemd';
    this.uplink = opts.uplink ?? 'eth0';
  }

  /** The CNI's start on one node. */
  abstract installNode(spec: S & { ns: string }): Promise<N>;

  /** A pod on a node, as the CNI plugin sets it up. */
  abstract addPod(nodeName: string, opts?: PodOptions): Promise<Pod>;

  node(name: string): N {
    const n = this.nodes.find((x) => x.name === name);
    if (!n) throw new Error(`node ${name} is not installed here`);
    return n;
  }

  /** Pods on one node, oldest first. */
  podsOn(nodeName: string): Pod[] {
    return this.pods.filter((p) => p.node === nodeName);
  }

  /** Install every node that has a namespace (in parallel), then `pods` pods on each. */
  async installAll(pods: CniOptions['pods']): Promise<this> {
    const here = this.cluster.filter((n): n is S & { ns: string } => n.ns !== undefined);
    await Promise.all(here.map((n) => this.installNode(n)));
    const order = (name: string): number => here.findIndex((n) => n.name === name);
    this.nodes.sort((a, b) => order(a.name) - order(b.name));
    for (const n of here) {
      for (let i = 0; i < podCount(pods, n.name); i++) await this.addPod(n.name);
    }
    return this;
  }

  /** The uplink's MTU less the VXLAN overhead: both CNIs' tunnel and pod MTU. */
  protected async vxlanMtu(ns: string): Promise<number> {
    return (await linkMtu(this.lab, ns, this.uplink)) - 50;
  }

  /** A new pod namespace with eth0 and its peer `hostIf` (both at `mtu`), the peer already moved to `nodeNs`. */
  protected async podVeth(podName: string, hostIf: string, mtu: number, nodeNs: string, podSide: string[], beforeMove: string[] = []): Promise<string> {
    const ns = await this.lab.addNs(podLabel(podName));
    // Both CNIs create the pair inside the pod and move the host end out (ip.SetupVeth, DoNetworking).
    await ipBatch(this.lab, ns, [
      `link add eth0 mtu ${mtu} type veth peer name ${hostIf} mtu ${mtu}`,
      ...beforeMove,
      'link set eth0 up',
      ...podSide,
      `link set ${hostIf} netns ${nodeNs}`,
    ]);
    await applyRpFilter(this.lab, ns, this.rpFilter);
    return ns;
  }
}
