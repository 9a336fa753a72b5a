// Calico (calico-ipam, VXLAN encapsulation, Felix) installed onto netns nodes the way the Calico CNI plugin and
// Felix install themselves. Sources (projectcalico/calico): cni-plugin/pkg/dataplane/linux/dataplane_linux.go (pod
// veth, sysctls, routes), libcalico-go/lib/backend/k8s/conversion/workload_endpoint_default.go (veth name),
// felix/dataplane/linux/vxlan_mgr.go, felix/vxlanfdb/vxlan_fdb.go, felix/routetable/route_table.go (vxlan.calico,
// remote blocks), felix/dataplane/linux/endpoint_mgr.go (workload sysctls, rp_filter), felix/rules/nat.go and
// masq_mgr.go (natOutgoing), felix/rules/static.go (workload RPF, INPUT, tunnel-source masquerade),
// felix/config/config_params.go and int_dataplane.go (MTU), confd bird_aggr.cfg.template (own-block blackhole).
import type { NetnsLab } from './netns.ts';
import {
  applyRpFilter,
  bridgeBatch,
  cidrContains,
  CniCluster,
  ipBatch,
  nftLoad,
  nthAddr,
  parseCidr,
  RP_FILTER,
  sha1Hex,
  stableMac,
  sysctl,
  type CniNodeSpec,
  type CniOptions,
  type Pod,
  type PodOptions,
} from './cni-common.ts';

/** A node of the cluster as Calico's datastore says: its InternalIP and its affine IPAM blocks. */
export interface CalicoNodeSpec extends CniNodeSpec {
  /** Its confirmed BlockAffinities (e.g. /26s of the pool). The first block also holds its vxlan.calico address. */
  blocks: string[];
}

export interface CalicoPool {
  cidr: string;
  /** natOutgoing. Default true (the manifest's and the operator's default). */
  natOutgoing?: boolean;
}

/** `rpFilter`: Felix copies the resulting conf/default onto each cali*. */
export interface CalicoOptions extends CniOptions {
  /** IPPools; every one is in network-ip-pools, those with natOutgoing in masq-ipam-pools. Default 192.168.0.0/16. */
  pools?: Array<string | CalicoPool>;
  /**
   * Pods reach 169.254.1.1 through proxy ARP on cali*, which answers only when the node has a route for it through
   * another device (a real node's default route). `require` (default) fails install on a node without one; `add`
   * gives such a node `169.254.1.1 dev <uplink> scope link`, for labs that have no default route on purpose.
   */
  gatewayRoute?: 'require' | 'add';
  /** A FORWARD policy of drop that only Felix's cali* rules pass (Docker's policy; submariner issue 2121). */
  forwardPolicyDrop?: boolean;
}

export interface CalicoNode extends CalicoNodeSpec {
  ns: string;
  /** vxlan.calico's address (IPv4VXLANTunnelAddr). */
  tunnelIP: string;
  /** vxlan.calico's MAC (VXLANTunnelMACAddr). */
  vtepMac: string;
  /** vxlan.calico and pod MTU. */
  mtu: number;
}

/** Host veth name: `cali` + the first 11 hex of sha1("<namespace>.<pod>") (workload_endpoint_default.go). */
export function calicoVethName(kubeNamespace: string, podName: string): string {
  return `cali${sha1Hex(`${kubeNamespace}.${podName}`).slice(0, 11)}`;
}

export function calicoVtepMac(nodeName: string): string {
  return stableMac(`vxlan.calico/${nodeName}`);
}

/** vxlan.calico's address (IPv4VXLANTunnelAddr): calico-ipam hands out the first address of the first block. */
export function calicoTunnelIP(node: Pick<CalicoNodeSpec, 'blocks'>): string {
  return nthAddr(node.blocks[0], 0);
}

function elements(cidrs: string[]): string {
  return cidrs.length > 0 ? ` elements = { ${cidrs.join(', ')} };` : '';
}

/** Felix's netfilter for one node, as nft text: natOutgoing, workload RPF, INPUT checks, tunnel-source masquerade. */
export function calicoRuleset(opts: { pools: CalicoPool[]; nodeIPs: string[]; tunnelIP: string; forwardPolicyDrop?: boolean }): string {
  const masq = opts.pools.filter((p) => p.natOutgoing !== false).map((p) => p.cidr);
  const all = opts.pools.map((p) => p.cidr);
  const hosts = opts.nodeIPs.map((ip) => `${ip}/32`);
  const forward = opts.forwardPolicyDrop
    ? `
  chain filter-FORWARD {
    type filter hook forward priority filter; policy drop;
    iifname "cali*" counter accept
    oifname "cali*" counter accept
  }`
    : '';
  return `table ip calico {
  set masq-ipam-pools { type ipv4_addr; flags interval;${elements(masq)} }
  set network-ip-pools { type ipv4_addr; flags interval;${elements(all)} }
  set all-vxlan-net { type ipv4_addr; flags interval;${elements(hosts)} }
  set all-hosts-net { type ipv4_addr; flags interval;${elements(hosts)} }
  chain raw-PREROUTING {
    type filter hook prerouting priority raw; policy accept;
    iifname "cali*" fib saddr . iif oif missing counter drop
  }
  chain filter-INPUT {
    type filter hook input priority filter; policy accept;
    meta l4proto 4 fib daddr type local ip saddr != @all-hosts-net counter drop
    udp dport 4789 fib daddr type local ip saddr != @all-vxlan-net counter drop
  }${forward}
  chain nat-POSTROUTING {
    type nat hook postrouting priority srcnat; policy accept;
    counter jump cali-nat-outgoing
    oifname "vxlan.calico" ip saddr != ${opts.tunnelIP} fib saddr type local counter masquerade fully-random
  }
  chain cali-nat-outgoing {
    ip saddr @masq-ipam-pools ip daddr != @network-ip-pools counter masquerade fully-random
  }
}
`;
}

export class CalicoCluster extends CniCluster<CalicoNodeSpec, CalicoNode> {
  readonly kind = 'calico' as const;
  readonly pools: CalicoPool[];
  private readonly opts: CalicoOptions;
  private readonly used = new Map<string, Set<string>>();

  constructor(lab: NetnsLab, cluster: CalicoNodeSpec[], opts: CalicoOptions) {
    super(lab, cluster, opts);
    this.opts = opts;
    this.pools = (opts.pools ?? ['192.168.0.0/16']).map((p) => (typeof p === 'string' ? { cidr: p } : p));
  }

  /** calico-node's start on one node: vxlan.calico, own-block blackholes, remote blocks, Felix's rules, sysctls. */
  async installNode(spec: CalicoNodeSpec & { ns: string }): Promise<CalicoNode> {
    const { lab, uplink } = this;
    const ns = spec.ns;
    if (spec.blocks.length === 0) throw new Error(`calico: node ${spec.name} has no block`);
    const mtu = await this.vxlanMtu(ns); // int_dataplane.go: host MTU - VXLAN overhead
    const node: CalicoNode = { ...spec, ns, tunnelIP: calicoTunnelIP(spec), vtepMac: calicoVtepMac(spec.name), mtu };
    await ipBatch(lab, ns, [
      `link add vxlan.calico address ${node.vtepMac} mtu ${mtu} type vxlan id 4096 local ${spec.ip} dev ${uplink} dstport 4789 nolearning`,
      `addr add ${node.tunnelIP}/32 dev vxlan.calico`,
      'link set vxlan.calico up',
      // Felix owns the pool type here: proto 80 (bird_aggr.cfg.template writes the same blackhole with BIRD).
      ...spec.blocks.map((b) => `route replace blackhole ${b} proto 80`),
    ]);
    // Kubernetes needs ip_forward; Felix leaves rp_filter on eth0 and vxlan.calico alone.
    await sysctl(lab, ns, { 'net/ipv4/ip_forward': 1 });
    await applyRpFilter(lab, ns, this.rpFilter);
    const peers = this.cluster.filter((p) => p.name !== spec.name && p.blocks.length > 0);
    await ipBatch(lab, ns, peers.map((p) => `neigh replace ${calicoTunnelIP(p)} lladdr ${calicoVtepMac(p.name)} dev vxlan.calico nud permanent`));
    await bridgeBatch(lab, ns, peers.map((p) => `fdb replace ${calicoVtepMac(p.name)} dev vxlan.calico dst ${p.ip} self permanent`));
    await ipBatch(lab, ns, peers.flatMap((p) => p.blocks.map((b) => `route replace ${b} via ${calicoTunnelIP(p)} dev vxlan.calico onlink`)));
    await nftLoad(lab, ns, calicoRuleset({ pools: this.pools, nodeIPs: this.cluster.map((n) => n.ip), tunnelIP: node.tunnelIP, forwardPolicyDrop: this.opts.forwardPolicyDrop }));
    await this.ensureGatewayRoute(node);
    this.nodes.push(node);
    this.used.set(node.name, new Set([node.tunnelIP]));
    return node;
  }

  private async ensureGatewayRoute(node: CalicoNode): Promise<void> {
    const r = await this.lab.exec(node.ns, ['ip', '-j', 'route', 'get', '169.254.1.1'], { allowFail: true });
    const type = r.code === 0 ? ((JSON.parse(r.stdout) as Array<{ type?: string }>)[0]?.type ?? 'unicast') : 'none';
    if (type === 'unicast') return;
    if (this.opts.gatewayRoute === 'add') {
      await this.lab.route(node.ns, '169.254.1.1', 'dev', this.uplink, 'scope', 'link');
      return;
    }
    throw new Error(`calico: node ${node.name} has no route for 169.254.1.1 (a real node's default route), so proxy ARP on cali* cannot answer its pods; give it a default route or pass gatewayRoute: 'add'`);
  }

  /** `want` if free, else the next free address of the node's blocks (calico-ipam fills a block before the next). */
  private allocate(node: CalicoNode, want?: string): string {
    const used = this.used.get(node.name)!;
    if (want !== undefined) {
      if (used.has(want) || !node.blocks.some((b) => cidrContains(b, want))) throw new Error(`calico: ${want} is taken or not in ${node.name}'s blocks`);
      used.add(want);
      return want;
    }
    for (const b of node.blocks) {
      for (let i = 0; i < parseCidr(b).size; i++) {
        const ip = nthAddr(b, i);
        if (!used.has(ip)) {
          used.add(ip);
          return ip;
        }
      }
    }
    throw new Error(`calico: node ${node.name}'s blocks are full`);
  }

  /**
   * A pod on `nodeName` as the Calico CNI plugin makes it (dataplane_linux.go DoNetworking): a veth created in the
   * pod, the host end `caliX` with MAC ee:ee:ee:ee:ee:ee and no address moved to the node; in the pod `<ip>/32`,
   * `169.254.1.1 dev eth0 scope link`, `default via 169.254.1.1 dev eth0`; on the node `<ip> dev caliX scope link`
   * and the sysctls of configureSysctls, then Felix's (endpoint_mgr.go): accept_ra=0 and rp_filter = conf/default.
   */
  async addPod(nodeName: string, opts: PodOptions = {}): Promise<Pod> {
    const { lab } = this;
    const node = this.node(nodeName);
    const kubeNamespace = opts.kubeNamespace ?? 'default';
    const name = opts.name ?? `${nodeName}-p${this.podsOn(nodeName).length + 1}`;
    const ip = this.allocate(node, opts.ip);
    const hostIf = calicoVethName(kubeNamespace, name);
    const ns = await this.podVeth(
      name,
      hostIf,
      node.mtu,
      node.ns,
      ['route add 169.254.1.1 dev eth0 scope link', 'route add default via 169.254.1.1 dev eth0', `addr add ${ip}/32 dev eth0`],
      [`link set ${hostIf} address ee:ee:ee:ee:ee:ee`],
    );
    await sysctl(lab, node.ns, {
      [`net/ipv4/conf/${hostIf}/route_localnet`]: 1,
      [`net/ipv4/neigh/${hostIf}/proxy_delay`]: 0,
      [`net/ipv4/conf/${hostIf}/proxy_arp`]: 1,
      [`net/ipv4/conf/${hostIf}/forwarding`]: 1,
      [`net/ipv6/conf/${hostIf}/accept_ra`]: 0,
      [`net/ipv4/conf/${hostIf}/rp_filter`]: RP_FILTER[this.rpFilter].default,
    });
    await ipBatch(lab, node.ns, [`link set ${hostIf} up`, `route add ${ip} dev ${hostIf} scope link`]);
    const pod: Pod = { name, kubeNamespace, ns, ip, node: nodeName, hostIf, mtu: node.mtu };
    this.pods.push(pod);
    return pod;
  }
}

/**
 * Install Calico (VXLAN) on every node of `cluster` that has a namespace; every other node with blocks still gets
 * its neigh/fdb and onlink routes everywhere, reachable or not, as Felix programs every node in the datastore.
 * Each node namespace must already have its uplink (`eth0`) holding the node's `ip`.
 */
export function installCalico(lab: NetnsLab, cluster: CalicoNodeSpec[], opts: CalicoOptions = {}): Promise<CalicoCluster> {
  return new CalicoCluster(lab, cluster, opts).installAll(opts.pods);
}
