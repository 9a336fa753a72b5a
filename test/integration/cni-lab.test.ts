// Proves the CNI emulations of test/support/cni*.ts on their own, without Corvid: for flannel (iptables-mode and
// nftables-mode masquerade) and Calico (VXLAN), each under systemd's and RHEL's rp_filter, a pool of three node
// namespaces on one LAN with pods in namespaces of their own:
//
//   ext 10.50.0.1 (+ 203.0.113.10 on lo: "outside the cluster"; no route back to any pod network)
//    │  LAN 10.50.0.0/24 (bridge in namespace sw), every node: default via 10.50.0.1
//    ├── n1 10.50.0.11 (2 pods)   ├── n2 10.50.0.12 (1 pod)   └── n3 10.50.0.13 (1 pod)
//   plus node "far" (10.60.0.5) that exists cluster-wide but is never built: its entries are installed regardless.
//
// Also shows what fails as on real nodes, so that later tests can show Corvid fixes it: a pod flow that n2 forwards
// between n1's and n3's subnets (Corvid's rule 9027 / table 9027 sending it via n2) is masqueraded by flannel's
// iptables-mode rules (Raven issue 184) and dropped by strict rp_filter everywhere (Raven issue 30); a table-9027
// route covering a local Calico pod makes Felix's workload RPF drop that pod's traffic.
//
// Run as root: npx node --test test/integration/cni-lab.test.ts
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { NetnsLab, sweepStaleNamespaces } from '../support/netns.ts';
import {
  cniSkipReason,
  installCalico,
  installFlannel,
  nthAddr,
  readRpFilter,
  RP_FILTER,
  type CalicoCluster,
  type FlannelCluster,
  type Pod,
  type RpFilterStyle,
} from '../support/cni.ts';
import { dfPayload, dfProbe, iperf3, tcpTransfer } from '../support/traffic.ts';
import { onPath } from '../support/host.ts';

const skip = cniSkipReason();

type Flavour = 'flannel-iptables' | 'flannel-nftables' | 'calico-vxlan';
const FLAVOURS: Flavour[] = ['flannel-iptables', 'flannel-nftables', 'calico-vxlan'];
const STYLES: RpFilterStyle[] = ['systemd', 'rhel'];

const EXTERNAL = '203.0.113.10';
const FAR = { name: 'far', ip: '10.60.0.5' };

interface PoolLab {
  lab: NetnsLab;
  ext: string;
  nodes: Array<{ name: string; ns: string; ip: string }>;
  cni: FlannelCluster | CalicoCluster;
  /** The pod network a remote route covers for node i (flannel podCIDR, Calico block). */
  subnet: (i: number) => string;
}

async function buildPool(flavour: Flavour, rpFilter: RpFilterStyle): Promise<PoolLab> {
  const lab = new NetnsLab();
  const sw = await lab.addNs('sw');
  await lab.bridge(sw, 'br0');
  const ext = await lab.addNs('ext');
  await lab.plug(sw, 'br0', 'pext', ext, 'eth0');
  await lab.addr(ext, 'eth0', '10.50.0.1/24');
  await lab.addr(ext, 'lo', `${EXTERNAL}/32`);
  const nodes: PoolLab['nodes'] = [];
  for (let i = 1; i <= 3; i++) {
    const ns = await lab.addNs(`n${i}`);
    await lab.plug(sw, 'br0', `p${i}`, ns, 'eth0');
    await lab.addr(ns, 'eth0', `10.50.0.1${i}/24`);
    await lab.route(ns, 'default', 'via', '10.50.0.1');
    nodes.push({ name: `n${i}`, ns, ip: `10.50.0.1${i}` });
  }
  const pods = (node: string): number => (node === 'n1' ? 2 : 1);
  if (flavour === 'calico-vxlan') {
    // n1 holds two blocks; its second pod lives in the second one.
    const blocks = (i: number): string[] => (i === 0 ? ['192.168.0.0/26', '192.168.0.192/26'] : [`192.168.${i}.64/26`]);
    const cni = await installCalico(lab, [...nodes.map((n, i) => ({ ...n, blocks: blocks(i) })), { ...FAR, blocks: ['192.168.99.0/26'] }], { rpFilter });
    await cni.addPod('n1', { ip: '192.168.0.193' });
    return { lab, ext, nodes, cni, subnet: (i) => blocks(i)[0] };
  }
  const mode = flavour === 'flannel-iptables' ? 'iptables' : 'nftables';
  const podCIDR = (i: number): string => `10.244.${i + 1}.0/24`;
  const cni = await installFlannel(lab, [...nodes.map((n, i) => ({ ...n, podCIDR: podCIDR(i) })), { ...FAR, podCIDR: '10.244.99.0/24' }], { mode, rpFilter, pods });
  return { lab, ext, nodes, cni, subnet: podCIDR };
}

async function ping(lab: NetnsLab, ns: string, dst: string): Promise<boolean> {
  const r = await lab.exec(ns, ['ping', '-n', '-q', '-c', '1', '-W', '1', dst], { allowFail: true });
  return r.code === 0;
}

function podOn(p: PoolLab, node: string, n = 0): Pod {
  return p.cni.podsOn(node)[n];
}

/** Corvid's member-side steering: traffic for `to` goes to `via` through table 9027 (rule priority 9027). */
async function steer(p: PoolLab, ns: string, to: string, via: string): Promise<void> {
  await p.lab.exec(ns, ['ip', 'rule', 'add', 'to', to, 'table', '9027', 'priority', '9027']);
  await p.lab.route(ns, to, 'via', via, 'dev', 'eth0', 'table', '9027');
}

async function unsteer(p: PoolLab, ns: string, to: string): Promise<void> {
  await p.lab.exec(ns, ['ip', 'rule', 'del', 'to', to, 'table', '9027', 'priority', '9027'], { allowFail: true });
  await p.lab.exec(ns, ['ip', 'route', 'flush', 'table', '9027'], { allowFail: true });
}

describe('CNI emulation on netns nodes', { skip }, () => {
  for (const flavour of FLAVOURS) {
    for (const style of STYLES) {
      describe(`${flavour}, rp_filter ${style}`, { timeout: 60_000 }, () => {
        let p: PoolLab;
        let builtMs = 0;

        before(async () => {
          sweepStaleNamespaces();
          const t0 = Date.now();
          p = await buildPool(flavour, style);
          builtMs = Date.now() - t0;
        });

        after(async () => {
          await p?.lab.cleanup();
        });

        test('nodes carry the CNI state of a real node (sysctls, entries for every lease)', async (t) => {
          t.diagnostic(`pool built in ${builtMs} ms`);
          const n1 = p.nodes[0];
          const rp = await readRpFilter(p.lab, n1.ns);
          assert.equal(rp.all, RP_FILTER[style].all);
          assert.equal(rp.default, RP_FILTER[style].default);
          assert.equal(rp.eth0, RP_FILTER[style].device);
          const tunnel = p.cni.kind === 'flannel' ? 'flannel.1' : 'vxlan.calico';
          assert.equal(rp[tunnel], RP_FILTER[style].device);
          for (const pod of p.cni.pods.filter((x) => x.node === 'n1')) assert.equal(rp[pod.hostIf], RP_FILTER[style].default, pod.hostIf);
          const fwd = await p.lab.exec(n1.ns, ['sysctl', '-n', 'net.ipv4.ip_forward']);
          assert.equal(fwd.stdout.trim(), '1');
          // accept_ra=0: flanneld on flannel.1; the Calico CNI plugin and Felix on each cali* (not on vxlan.calico).
          const noRa = p.cni.kind === 'flannel' ? ['flannel.1'] : p.cni.pods.filter((x) => x.node === 'n1').map((x) => x.hostIf);
          for (const dev of noRa) {
            const ra = await p.lab.exec(n1.ns, ['cat', `/proc/sys/net/ipv6/conf/${dev}/accept_ra`]);
            assert.equal(ra.stdout.trim(), '0', dev);
          }
          // The node that was never built still has its onlink route, as the CNI installs one for every node.
          const far = p.cni.kind === 'flannel' ? '10.244.99.0/24' : '192.168.99.0/26';
          const r = await p.lab.exec(n1.ns, ['ip', 'route', 'show', far]);
          assert.match(r.stdout, new RegExp(`dev ${tunnel.replace('.', '\\.')} onlink`));
          const link = await p.lab.exec(n1.ns, ['ip', '-d', 'link', 'show', tunnel]);
          assert.match(link.stdout, p.cni.kind === 'flannel' ? /vxlan id 1 local 10\.50\.0\.11 dev eth0 .*dstport 8472 nolearning/ : /vxlan id 4096 local 10\.50\.0\.11 dev eth0 .*dstport 4789 nolearning/);
          assert.match(link.stdout, /mtu 1450/);
          for (const pod of p.cni.pods) assert.equal(pod.mtu, 1450);
        });

        test('every pod answers every other pod, on the same node and across nodes', async () => {
          const pods = p.cni.pods;
          assert.equal(pods.length, 4);
          const results = await Promise.all(pods.flatMap((a) => pods.filter((b) => b !== a).map(async (b) => [`${a.name}->${b.name}`, await ping(p.lab, a.ns, b.ip)] as const)));
          assert.deepEqual(results.filter(([, ok]) => !ok).map(([pair]) => pair), []);
        });

        test('a 20 MB TCP transfer between pods on different nodes arrives whole, from the sender pod\'s address', async (t) => {
          const a = podOn(p, 'n1');
          const b = podOn(p, 'n3');
          const r = await tcpTransfer(p.lab, a.ns, b.ns, b.ip, { timeoutMs: 20_000 });
          t.diagnostic(`20 MiB ${a.ip} -> ${b.ip}: ${r.seconds.toFixed(2)} s`);
          assert.equal(r.error, undefined);
          assert.ok(r.ok);
          assert.equal(r.sha256, r.sentSha256);
          assert.equal(r.peer, a.ip, 'no masquerade inside the cluster network');
        });

        test('a DF probe at the pod MTU passes between nodes; one byte more is refused with mtu=1450', async () => {
          const a = podOn(p, 'n1', 1);
          const b = podOn(p, 'n2');
          const fits = await dfProbe(p.lab, a.ns, b.ip, dfPayload(a.mtu));
          assert.ok(fits.ok, fits.output);
          const tooBig = await dfProbe(p.lab, a.ns, b.ip, dfPayload(a.mtu) + 1);
          assert.equal(tooBig.ok, false);
          assert.equal(tooBig.mtu, 1450, tooBig.output);
        });

        test('a pod reaching outside the cluster network is masqueraded to its node\'s address', async () => {
          const a = podOn(p, 'n2');
          const r = await tcpTransfer(p.lab, a.ns, p.ext, EXTERNAL, { bytes: 256 * 1024, timeoutMs: 10_000 });
          assert.ok(r.ok, r.error);
          assert.equal(r.peer, p.nodes[1].ip);
        });

        // The flow n1 pod -> n3 pod, steered through n2 both ways as Corvid's members steer to their gateway.
        test('a pod flow forwarded by another node: as on real nodes (Raven issues 184 and 30)', async () => {
          const [n1, n2, n3] = p.nodes;
          const a = podOn(p, 'n1');
          const b = podOn(p, 'n3');
          await steer(p, n1.ns, p.subnet(2), n2.ip);
          await steer(p, n3.ns, p.subnet(0), n2.ip);
          try {
            if (style === 'rhel') {
              // Strict RPF: n2 gets pod traffic on eth0 that its own routes send out of the tunnel device, and a
              // receiving node gets it on the tunnel device while its table 9027 points back at eth0. Dropped.
              assert.equal(await ping(p.lab, a.ns, b.ip), false, 'strict rp_filter drops the forwarded flow');
              // Loose mode on the devices (what Submariner and Raven set) lets it through: the drop was RPF.
              const loose: Record<string, number> = { 'net/ipv4/conf/eth0/rp_filter': 2 };
              loose[`net/ipv4/conf/${p.cni.kind === 'flannel' ? 'flannel.1' : 'vxlan.calico'}/rp_filter`] = 2;
              for (const n of p.nodes) await p.lab.exec(n.ns, ['sysctl', '-q', '-w', ...Object.entries(loose).map(([k, v]) => `${k}=${v}`)]);
              assert.equal(await ping(p.lab, a.ns, b.ip), true, 'with loose rp_filter on eth0 and the tunnel device');
            }
            const r = await tcpTransfer(p.lab, a.ns, b.ns, b.ip, { bytes: 1024 * 1024, timeoutMs: 10_000 });
            assert.ok(r.ok, r.error);
            if (flavour === 'flannel-iptables') {
              // -s C ! -d 224/4 MASQUERADE on n2: n3 sees n2's flannel.1 address, not the pod.
              assert.equal(r.peer, nthAddr(p.subnet(1), 0), 'n2 masqueraded the forwarded pod flow (Raven issue 184)');
            } else {
              assert.equal(r.peer, a.ip, 'forwarded cluster traffic keeps the pod address');
            }
          } finally {
            await unsteer(p, n1.ns, p.subnet(2));
            await unsteer(p, n3.ns, p.subnet(0));
          }
        });

        if (style === 'systemd') {
          test('iperf3 measures pod-to-pod throughput across nodes', { skip: onPath('iperf3') ? undefined : 'needs iperf3 (apt-get install iperf3)' }, async (t) => {
            const a = podOn(p, 'n2');
            const b = podOn(p, 'n3');
            const r = await iperf3(p.lab, a.ns, b.ns, b.ip, { seconds: 1 });
            assert.ok(r.ok, r.error);
            t.diagnostic(`iperf3 ${a.ip} -> ${b.ip}: ${(r.bitsPerSecond / 1e9).toFixed(2)} Gbit/s, ${r.retransmits} retransmits`);
            assert.ok(r.bitsPerSecond > 0);
          });
        }

        if (flavour === 'calico-vxlan') {
          test('VXLAN to a node from anything but a node is dropped on INPUT (Felix filterInputChain)', async () => {
            const n1 = p.nodes[0];
            const drops = async (): Promise<number> => {
              const out = await p.lab.exec(n1.ns, ['nft', 'list', 'chain', 'ip', 'calico', 'filter-INPUT']);
              return Number(/udp dport 4789 .*packets (\d+)/.exec(out.stdout)?.[1]);
            };
            const udp = (ns: string): Promise<unknown> => p.lab.exec(ns, ['bash', '-c', `echo x > /dev/udp/${n1.ip}/4789`]);
            const before = await drops();
            await udp(p.nodes[1].ns);
            assert.equal(await drops(), before, 'from a node: passed');
            await udp(p.ext);
            assert.equal(await drops(), before + 1, 'from a non-node: dropped');
          });

          test('a table-9027 route covering a local pod makes Felix\'s workload RPF drop that pod\'s traffic', async () => {
            const n1 = p.nodes[0];
            const a = podOn(p, 'n1');
            const b = podOn(p, 'n2');
            const drops = async (): Promise<number> => {
              const out = await p.lab.exec(n1.ns, ['nft', 'list', 'chain', 'ip', 'calico', 'raw-PREROUTING']);
              return Number(/packets (\d+)/.exec(out.stdout)?.[1]);
            };
            const before = await drops();
            await steer(p, n1.ns, '192.168.0.0/16', p.nodes[1].ip);
            try {
              assert.equal(await ping(p.lab, a.ns, b.ip), false);
              assert.ok((await drops()) > before, 'dropped by iifname "cali*" fib saddr . iif oif missing');
            } finally {
              await unsteer(p, n1.ns, '192.168.0.0/16');
            }
            assert.equal(await ping(p.lab, a.ns, b.ip), true);
          });
        }
      });
    }
  }
});
