// flannel (vxlan backend, kube subnet manager) installed onto netns nodes the way flanneld and its CNI plugin install
// themselves. Sources (flannel-io/flannel unless noted): pkg/backend/vxlan/vxlan.go, device.go, vxlan_network.go;
// pkg/trafficmngr/iptables/iptables.go and pkg/trafficmngr/nftables/nftables.go; flannel-io/cni-plugin
// flannel_linux.go; containernetworking/plugins plugins/main/bridge/bridge.go.
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
  prefixLen,
  RP_FILTER,
  sha1Hex,
  stableMac,
  sysctl,
  type CniNodeSpec,
  type CniOptions,
  type Pod,
  type PodOptions,
} from './cni-common.ts';

/** A node of the cluster as flannel's lease for it says (`ip` = the public-ip annotation = InternalIP). */
export interface FlannelNodeSpec extends CniNodeSpec {
  /** node.spec.podCIDR (a /24 inside the network). */
  podCIDR: string;
}

export interface FlannelOptions extends CniOptions {
  /** net-conf `Network` (C). Default 10.244.0.0/16. */
  network?: string;
  /** `iptables` (the stock default: nft rules shaped as iptables-nft writes them) or `nftables` (EnableNFTables). */
  mode?: 'iptables' | 'nftables';
}

export interface FlannelNode extends FlannelNodeSpec {
  ns: string;
  /** MAC of flannel.1 (backend-data VtepMAC). */
  vtepMac: string;
  /** flannel.1, cni0 and pod MTU (FLANNEL_MTU). */
  mtu: number;
  /** cni0's address, the pods' gateway (<P>.1). */
  gateway: string;
}

/** Each node's VTEP MAC: stable, as flannel keeps it in backend-data across restarts. */
export function flannelVtepMac(nodeName: string): string {
  return stableMac(`flannel.1/${nodeName}`);
}

/** The masquerade and forward rules flanneld writes, as nft text (pkg/trafficmngr/{iptables,nftables}). */
export function flannelRuleset(mode: 'iptables' | 'nftables', network: string, podCIDR: string): string {
  const C = network;
  const P = podCIDR;
  if (mode === 'iptables') {
    // iptables.go masqRules/forwardRules, as iptables-nft stores them: built-in chains named as in iptables, every
    // rule commented "flanneld masq", --random-fully.
    const c = 'comment "flanneld masq"';
    return `table ip nat {
  chain POSTROUTING {
    type nat hook postrouting priority srcnat; policy accept;
    counter jump FLANNEL-POSTRTG ${c}
  }
  chain FLANNEL-POSTRTG {
    meta mark & 0x4000 == 0x4000 counter return ${c}
    ip saddr ${P} ip daddr ${C} counter return ${c}
    ip saddr ${C} ip daddr ${P} counter return ${c}
    ip saddr != ${C} ip daddr ${P} counter return ${c}
    ip saddr ${C} ip daddr != 224.0.0.0/4 counter masquerade fully-random ${c}
    ip saddr != ${C} ip daddr ${C} counter masquerade fully-random ${c}
  }
}
table ip filter {
  chain FORWARD {
    type filter hook forward priority filter; policy accept;
    counter jump FLANNEL-FWD ${'comment "flanneld forward"'}
  }
  chain FLANNEL-FWD {
    ip saddr ${C} counter accept ${'comment "flanneld forward"'}
    ip daddr ${C} counter accept ${'comment "flanneld forward"'}
  }
}
`;
  }
  // nftables.go: the mark rule is exact, and the fourth rule exempts forwarded cluster traffic.
  return `table ip flannel-ipv4 {
  chain postrtg {
    type nat hook postrouting priority srcnat; policy accept;
    meta mark 0x4000 counter return
    ip saddr ${P} ip daddr ${C} counter return
    ip saddr ${C} ip daddr ${P} counter return
    ip saddr != ${P} ip daddr ${C} counter return
    ip saddr ${C} ip daddr != 224.0.0.0/4 counter masquerade fully-random
    ip saddr != ${C} ip daddr ${C} counter masquerade fully-random
  }
  chain forward {
    type filter hook forward priority filter; policy accept;
    ip saddr ${C} counter accept
    ip daddr ${C} counter accept
  }
}
`;
}

/** The neigh, fdb and onlink route flanneld installs for another node's lease (vxlan_network.go, in this order). */
function remoteEntries(peer: FlannelNodeSpec): { neigh: string; fdb: string; route: string } {
  const vtepIP = nthAddr(peer.podCIDR, 0);
  const mac = flannelVtepMac(peer.name);
  return {
    neigh: `neigh replace ${vtepIP} lladdr ${mac} dev flannel.1 nud permanent`,
    fdb: `fdb replace ${mac} dev flannel.1 dst ${peer.ip} self permanent`,
    route: `route replace ${peer.podCIDR} via ${vtepIP} dev flannel.1 onlink`,
  };
}

export class FlannelCluster extends CniCluster<FlannelNodeSpec, FlannelNode> {
  readonly kind = 'flannel' as const;
  /** net-conf `Network` (C). */
  readonly network: string;
  readonly mode: 'iptables' | 'nftables';

  constructor(lab: NetnsLab, cluster: FlannelNodeSpec[], opts: FlannelOptions) {
    super(lab, cluster, opts);
    this.network = opts.network ?? '10.244.0.0/16';
    this.mode = opts.mode ?? 'iptables';
  }

  /** flanneld's start on one node: flannel.1, cni0 (as the bridge plugin leaves it), leases, rules, sysctls. */
  async installNode(spec: FlannelNodeSpec & { ns: string }): Promise<FlannelNode> {
    const { lab, uplink } = this;
    const ns = spec.ns;
    const mtu = await this.vxlanMtu(ns); // vxlan.go: ext MTU - encap overhead
    const node: FlannelNode = { ...spec, ns, vtepMac: flannelVtepMac(spec.name), mtu, gateway: nthAddr(spec.podCIDR, 1) };
    // device.go: vxlan id 1, kernel default port 8472, no learning, bound to the ext iface; the lease's base as /32.
    // bridge.go (isGateway): cni0 with <P>.1/24 and the delegate's MTU.
    await ipBatch(lab, ns, [
      `link add flannel.1 address ${node.vtepMac} mtu ${mtu} type vxlan id 1 local ${spec.ip} dev ${uplink} dstport 8472 nolearning`,
      `addr add ${nthAddr(spec.podCIDR, 0)}/32 dev flannel.1`,
      'link set flannel.1 up',
      `link add cni0 mtu ${mtu} type bridge`,
      `addr add ${node.gateway}/${prefixLen(spec.podCIDR)} dev cni0`,
      'link set cni0 up',
    ]);
    // accept_ra=0 on flannel.1 (device.go); ip_forward=1 (bridge.go enableIPForward). rp_filter: flannel never
    // touches it, so the distribution's values stand.
    await sysctl(lab, ns, { 'net/ipv6/conf/flannel.1/accept_ra': 0, 'net/ipv4/ip_forward': 1 });
    await applyRpFilter(lab, ns, this.rpFilter);
    const peers = this.cluster.filter((p) => p.name !== spec.name).map(remoteEntries);
    await ipBatch(lab, ns, peers.map((p) => p.neigh));
    await bridgeBatch(lab, ns, peers.map((p) => p.fdb));
    await ipBatch(lab, ns, peers.map((p) => p.route));
    await nftLoad(lab, ns, flannelRuleset(this.mode, this.network, spec.podCIDR));
    this.nodes.push(node);
    return node;
  }

  /** host-local: the lowest free address from <P>.2 up (.0 is flannel.1's, .1 the gateway). */
  private allocate(node: FlannelNode): string {
    const used = new Set(this.podsOn(node.name).map((p) => p.ip));
    for (let i = 2; i < parseCidr(node.podCIDR).size - 1; i++) {
      const ip = nthAddr(node.podCIDR, i);
      if (!used.has(ip)) return ip;
    }
    throw new Error(`flannel: ${node.name}'s podCIDR is full`);
  }

  /**
   * A pod on `nodeName` as the flannel CNI plugin delegates it to the bridge plugin: a veth created in the pod and
   * its host end moved to the node, into cni0 in hairpin mode; `<P>.x/24`, `default via <P>.1` and `C via <P>.1`
   * (cni-plugin getDelegateIPAM adds the network route), MTU FLANNEL_MTU. host-local hands out .2 upwards.
   */
  async addPod(nodeName: string, opts: PodOptions = {}): Promise<Pod> {
    const { lab } = this;
    const node = this.node(nodeName);
    const kubeNamespace = opts.kubeNamespace ?? 'default';
    const name = opts.name ?? `${nodeName}-p${this.podsOn(nodeName).length + 1}`;
    const ip = opts.ip ?? this.allocate(node);
    if (!cidrContains(node.podCIDR, ip)) throw new Error(`flannel: ${ip} is not in ${node.name}'s podCIDR ${node.podCIDR}`);
    const hostIf = `veth${sha1Hex(`${kubeNamespace}/${name}`).slice(0, 8)}`; // bridge plugin: veth + 8 hex
    const ns = await this.podVeth(name, hostIf, node.mtu, node.ns, [
      `addr add ${ip}/${prefixLen(node.podCIDR)} dev eth0`,
      `route add default via ${node.gateway} dev eth0`,
      `route add ${this.network} via ${node.gateway} dev eth0`,
    ]);
    await ipBatch(lab, node.ns, [`link set ${hostIf} master cni0`, `link set ${hostIf} type bridge_slave hairpin on`, `link set ${hostIf} up`]);
    // The host end was registered anew in the node and took conf/default; set it explicitly all the same.
    await sysctl(lab, node.ns, { [`net/ipv4/conf/${hostIf}/rp_filter`]: RP_FILTER[this.rpFilter].device });
    const pod: Pod = { name, kubeNamespace, ns, ip, node: nodeName, hostIf, mtu: node.mtu };
    this.pods.push(pod);
    return pod;
  }
}

/**
 * Install flannel on every node of `cluster` that has a namespace; the others (other pools' nodes, nodes not built)
 * still get their neigh/fdb/route triple everywhere, reachable or not, as flanneld does for every lease.
 * Each node namespace must already have its uplink (`eth0`) holding the node's `ip`.
 */
export function installFlannel(lab: NetnsLab, cluster: FlannelNodeSpec[], opts: FlannelOptions = {}): Promise<FlannelCluster> {
  return new FlannelCluster(lab, cluster, opts).installAll(opts.pods);
}
