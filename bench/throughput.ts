// Throughput benchmark: bulk TCP pod -> pod across pools (direct, and relayed through the cloud pool) next to the
// tunnel's own rate measured in the same run, gateway -> gateway over the same tunnel(s), as a ratio; for each tunnel
// backend, IPsec and WireGuard, in one invocation.
//
//   sudo npx node bench/throughput.ts [runs] [seconds]     (default 3 runs of 5 s per path, alternating)
//
// Two conditions, each with each backend on a fresh system (IPsec first): every site's Internet link shaped to
// WAN_MBIT (an edge uplink: the WAN limits the tunnel, as on real sites), and unshaped (this machine's two cores limit
// the userspace datapath, and every extra hop of the pods' path takes CPU from it, since all nine nodes share them).
// A fresh system per backend rather than one re-pushed: nothing of one backend's datapath is left to the other's.
// CORVID_BENCH_BACKEND=ipsec or wireguard measures one backend only (an experiment; stated in the output).
//
// The e2e system (test/e2e/): flannel nodes with pods, the sync, an agent per node, edge pools behind NAT, edge-b
// behind a 1400-byte WAN; on the gateways charon (kernel-libipsec, userspace ESP) for IPsec, corvid.wg for WireGuard
// (wireguard-go, userspace, where the kernel has no WireGuard). iperf3 (Debian package) does the measuring.
// "Raw" is the gateway's own address in its pool's pod subnet (cni0) to the peer gateway's: the tunnel and nothing
// else. With IPsec that address is in the pool's traffic selector; with WireGuard in the peer's allowed IPs (they are
// the pool's pod subnets), and the bench checks that the bytes went through the sending gateway's corvid.wg.
// "Pods" adds what Corvid and the CNI add: the member's route to its gateway, forwarding, the nft table, the remote
// gateway's VXLAN hop into its member, the pods' veths.
import { controlPlaneSkipReason, startControlPlane, type ControlPlane } from '../test/support/controlplane.ts';
import { Fabric } from '../test/e2e/fabric.ts';
import { CorvidSystem, systemSkipReason, topologyYaml, waitFor } from '../test/e2e/system.ts';
import { everyone, waitForMatrix } from '../test/e2e/checks.ts';
import { nthAddr } from '../test/support/cni.ts';
import { iperf3 } from '../test/support/traffic.ts';
import { onPath } from '../test/support/host.ts';
import { BACKENDS, benchBackends, machineLine, median, strongswanVersion, table, wireguardDatapath, type Backend } from './machine.ts';

interface PathSpec {
  name: string;
  /** Pods: ordinary node -> ordinary node. */
  fromPod: string;
  toPod: string;
  /** Raw: gateway -> gateway, over the same tunnel(s). */
  fromGw: string;
  toGw: string;
}

const PATHS: PathSpec[] = [
  { name: 'direct cloud -> edge-a', fromPod: 'cloud-node-1', toPod: 'edge-a-node-1', fromGw: 'cloud-gw-1', toGw: 'edge-a-gw-1' },
  { name: 'relayed edge-a -> edge-b (via cloud)', fromPod: 'edge-a-node-1', toPod: 'edge-b-node-1', fromGw: 'edge-a-gw-1', toGw: 'edge-b-gw-1' },
];

/** The shaped condition's WAN rate, both ways, per site. */
export const WAN_MBIT = 50;

export interface ThroughputRow {
  /** `WAN 50 Mbit/s` or `unshaped`. */
  condition: string;
  backend: Backend;
  path: string;
  rawMbps: number;
  /** Pods on the ordinary nodes (the member -> gateway LAN hop and the gateway -> member VXLAN hop included). */
  podMbps: number;
  ratio: number;
  /** Pods on the two gateways themselves. */
  gwPodMbps: number;
  gwPodRatio: number;
}

export async function benchThroughput(runs = 3, seconds = 5, backends: Backend[] = benchBackends()): Promise<ThroughputRow[]> {
  const rows: ThroughputRow[] = [];
  const datapaths = new Map<Backend, string>();
  for (const wanMbit of [WAN_MBIT, undefined]) {
    for (const backend of backends) {
      const r = await benchOne(runs, seconds, wanMbit, backend);
      if (r === undefined) return rows;
      rows.push(...r.rows);
      datapaths.set(backend, r.datapath);
    }
  }
  const pct = (x: number): string => `${Math.round(x * 100)} %`;
  console.log(
    table(
      ['condition', 'backend', 'path', 'gateway -> gateway (raw tunnel)', 'pod -> pod, ordinary nodes', 'ratio', 'pod -> pod, on the gateways', 'ratio'],
      rows.map((r) => [r.condition, r.backend, r.path, `${r.rawMbps} Mbit/s`, `${r.podMbps} Mbit/s`, pct(r.ratio), `${r.gwPodMbps} Mbit/s`, pct(r.gwPodRatio)]),
    ),
  );
  console.log(`datapaths: ${[...datapaths].map(([b, d]) => `${b}: ${d}`).join('; ')}`);
  const only = backends.length < BACKENDS.length ? `; backend ${backends.join(', ')} only` : '';
  console.log(`medians of ${runs} runs of ${seconds} s each, alternating${only}; ${machineLine()}`);
  return rows;
}

async function benchOne(runs: number, seconds: number, wanMbit: number | undefined, backend: Backend): Promise<{ rows: ThroughputRow[]; datapath: string } | undefined> {
  const skip = systemSkipReason(controlPlaneSkipReason()) ?? (onPath('iperf3') ? undefined : 'needs iperf3 (apt-get install iperf3)');
  if (skip) {
    console.log(`throughput bench skipped: ${skip}`);
    return undefined;
  }
  const condition = wanMbit === undefined ? 'unshaped' : `WAN ${wanMbit} Mbit/s`;
  let cp: ControlPlane | undefined;
  let fabric: Fabric | undefined;
  let sys: CorvidSystem | undefined;
  const rows: ThroughputRow[] = [];
  let datapath = backend === 'ipsec' ? `${strongswanVersion()} kernel-libipsec (userspace ESP)` : 'WireGuard (not seen)';
  try {
    cp = await startControlPlane();
    fabric = await Fabric.build({ cni: 'flannel', ...(wanMbit === undefined ? {} : { wanMbit }) });
    const f = fabric;
    const s = (sys = await CorvidSystem.start(cp, f));
    const rev = await s.push(topologyYaml(f, { backend }), `bench: three pools, ${backend}`);
    await waitFor('the topology applied', async () => (await s.topology())?.status?.lastAppliedRevision === rev, 60_000);
    const bad = await waitForMatrix(f, everyone, 60_000);
    if (bad.length > 0) throw new Error(`the network is not whole:\n${bad.join('\n')}`);
    if (backend === 'wireguard') datapath = wireguardDatapath(f.candidates().map((c) => c.ns));
    const mbps = (bps: number): number => Math.round(bps / 1e6);
    const measure = async (fromNs: string, toNs: string, toIP: string, bind?: string): Promise<number> => {
      const r = await iperf3(f.lab, fromNs, toNs, toIP, { seconds, ...(bind === undefined ? {} : { bind }) });
      if (!r.ok) throw new Error(`iperf3 ${fromNs} -> ${toIP}: ${r.error}`);
      return r.bitsPerSecond;
    };
    /** Bytes the node's corvid.wg has sent to all its peers (WireGuard only; 0 without the interface). */
    const wgTx = async (node: string): Promise<number> => ((await s.wireguardPeers(node)) ?? []).reduce((sum, p) => sum + p.txBytes, 0);
    for (const p of PATHS) {
      const raw: number[] = [];
      const pods: number[] = [];
      const gwPods: number[] = [];
      // The gateways' own addresses inside their pools' pod subnets: flannel's cni0 (<podCIDR>.1). Bound at the
      // sender: the lab's relay also holds the kernel-libipsec stand-in addresses (test/e2e/fabric.ts), which would
      // make a reply to one of them a martian there; with WireGuard the source must be in the peer's allowed IPs.
      const [fromGw, toGw] = [f.node(p.fromGw), f.node(p.toGw)];
      let rawBytes = 0;
      let rawTunnelBytes = 0;
      for (let i = 0; i < runs; i++) {
        const tx0 = backend === 'wireguard' ? await wgTx(p.fromGw) : 0;
        const bps = await measure(fromGw.ns, toGw.ns, nthAddr(toGw.podCIDR, 1), nthAddr(fromGw.podCIDR, 1));
        if (backend === 'wireguard') rawTunnelBytes += (await wgTx(p.fromGw)) - tx0;
        rawBytes += (bps * seconds) / 8;
        raw.push(bps);
        pods.push(await measure(f.node(p.fromPod).pod.ns, f.node(p.toPod).pod.ns, f.node(p.toPod).podIP));
        gwPods.push(await measure(fromGw.pod.ns, toGw.pod.ns, toGw.podIP));
      }
      rows.push({
        condition,
        backend,
        path: p.name,
        rawMbps: mbps(median(raw)),
        podMbps: mbps(median(pods)),
        ratio: median(pods) / median(raw),
        gwPodMbps: mbps(median(gwPods)),
        gwPodRatio: median(gwPods) / median(raw),
      });
      console.log(`# ${condition}, ${backend}, ${p.name}: raw ${raw.map(mbps).join(', ')}; member pods ${pods.map(mbps).join(', ')}; gateway pods ${gwPods.map(mbps).join(', ')} (Mbit/s)`);
      if (backend === 'wireguard') {
        // The raw traffic went through the tunnel: what corvid.wg sent (payload, its own headers and retransmissions)
        // is at least what iperf3 counted as received.
        const mib = (b: number): string => (b / 2 ** 20).toFixed(1);
        const through = rawTunnelBytes >= rawBytes;
        console.log(`#   raw through ${p.fromGw}'s corvid.wg: ${mib(rawTunnelBytes)} MiB sent to its peers for ${mib(rawBytes)} MiB iperf3 received${through ? '' : ' -- LESS: the raw traffic did not all go through the tunnel'}`);
      }
    }
  } finally {
    await sys?.stop();
    await fabric?.cleanup();
    await cp?.stop();
  }
  return { rows, datapath };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const runs = Number(process.argv[2] ?? 3);
  const seconds = Number(process.argv[3] ?? 5);
  await benchThroughput(runs, seconds);
}
