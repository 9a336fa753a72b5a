// Two pools behind real NAT routers (nftables masquerade) reach each other only through the relay pool's gateway:
// the node plans and the DatapathReconciler against three real charons (kernel-libipsec), without Kubernetes.
//
//   l-gw 172.16.1.10 ── lyon router (NAT) 192.0.2.20 ─┐
//                                                      ├─ "Internet" 192.0.2.0/24 (a bridge) ── c-gw 192.0.2.10 (relay)
//   o-gw 172.16.2.10 ── oslo router (NAT) 192.0.2.30 ─┘
//
// Pods: lyon 10.110.0.5, oslo 10.120.0.5, cloud 10.100.0.5 (on lo). The routers drop every new connection from the
// Internet side, so lyon and oslo cannot reach each other directly; both initiate to the relay.
// kernel-libipsec needs an address of the gateway inside each local traffic selector (see agent-lab.ts), so the relay
// also holds 10.110.0.254 and 10.120.0.254 on lo.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { NetnsLab, netnsSkipReason, sweepStaleNamespaces } from '../support/netns.ts';
import { charonSkipReason, startCharon, type CharonInstance } from '../support/charon.ts';
import { ViciSession } from '../../src/agent/vici/index.ts';
import { Iproute } from '../../src/adapters/iproute/iproute.ts';
import { DatapathReconciler } from '../../src/agent/reconciler.ts';
import { SecretReader } from '../../src/agent/secrets.ts';
import { silentLogger } from '../../src/shell/log.ts';
import { nodePlan } from '../../src/nodeplan/index.ts';
import { encodeGatewayAnnotations } from '../../src/gateway/annotations.ts';
import { POOL_LABEL } from '../../src/gateway/keys.ts';
import { GATEWAY_API_VERSION, GATEWAY_KIND, type Gateway } from '../../src/gateway/types.ts';
import { ENCRYPTION, makeSecretDir, waitFor } from './agent-lab.ts';

const NFT = '/usr/sbin/nft';
const skip = netnsSkipReason() ?? charonSkipReason() ?? (existsSync(NFT) ? undefined : 'needs nft (apt-get install nftables)');
const lab = new NetnsLab();
const charons: Record<string, CharonInstance> = {};
const sessions: ViciSession[] = [];
const ns: Record<string, string> = {};
let secrets: { dir: string; remove(): Promise<void> } | undefined;

function gw(pool: string, node: string, privateIP: string, subnet: string, o: { nat: boolean; publicIP?: string; relay?: string; relaysFor?: string[]; denied?: string[] }): Gateway {
  const ep = { nodeName: node, type: 'tunnel' as const, port: 4500, underNAT: o.nat, ...(o.publicIP ? { publicIP: o.publicIP } : {}) };
  return {
    apiVersion: GATEWAY_API_VERSION,
    kind: GATEWAY_KIND,
    metadata: {
      name: pool,
      labels: { [POOL_LABEL]: pool },
      annotations: encodeGatewayAnnotations({ peers: ['*'], deniedPeers: o.denied, relay: o.relay, relaysFor: o.relaysFor, encryption: ENCRYPTION, encryptionDefaults: ENCRYPTION }),
    },
    spec: { endpoints: [ep], tunnelConfig: { Replicas: 1 } },
    status: { nodes: [{ nodeName: node, privateIP, subnets: [subnet] }], activeEndpoints: [ep] },
  };
}

function gateways(o: { lyonDenies?: string[] } = {}): Gateway[] {
  return [
    gw('cloud', 'c-gw', '192.0.2.10', '10.100.0.0/24', { nat: false, publicIP: '192.0.2.10', relaysFor: ['lyon', 'oslo'] }),
    gw('lyon', 'l-gw', '172.16.1.10', '10.110.0.0/24', { nat: true, relay: 'cloud', denied: o.lyonDenies }),
    gw('oslo', 'o-gw', '172.16.2.10', '10.120.0.0/24', { nat: true, relay: 'cloud' }),
  ];
}

async function natSite(name: string, n: number, inet: string): Promise<void> {
  const router = await lab.addNs(`${name}r`);
  const gwNs = await lab.addNs(`${name}gw`);
  ns[name] = gwNs;
  await lab.plug(inet, 'br0', `p${n}`, router, 'wan0');
  await lab.addr(router, 'wan0', `192.0.2.${n * 10}/24`);
  await lab.veth(router, 'lan0', gwNs, 'eth0');
  await lab.addr(router, 'lan0', `172.16.${n - 1}.1/24`);
  await lab.addr(gwNs, 'eth0', `172.16.${n - 1}.10/24`);
  await lab.route(gwNs, 'default', 'via', `172.16.${n - 1}.1`);
  await lab.forwarding(router);
  await lab.exec(router, [NFT, '-f', '-'], {
    input: `table ip corvidnat {
  chain post { type nat hook postrouting priority 100; oifname "wan0" masquerade; }
  chain inbound { type filter hook forward priority 0; iifname "wan0" ct state new drop; }
}
`,
  });
}

before(async () => {
  if (skip) return;
  sweepStaleNamespaces();
  const inet = await lab.addNs('inet');
  await lab.bridge(inet, 'br0');
  const cloud = await lab.addNs('cgw');
  ns.cloud = cloud;
  await lab.plug(inet, 'br0', 'p1', cloud, 'wan0');
  await lab.addr(cloud, 'wan0', '192.0.2.10/24');
  await lab.forwarding(cloud);
  await natSite('lyon', 2, inet);
  await natSite('oslo', 3, inet);
  for (const [pool, pod] of [['cloud', '10.100.0.5'], ['lyon', '10.110.0.5'], ['oslo', '10.120.0.5']]) await lab.addr(ns[pool], 'lo', `${pod}/32`);
  for (const extra of ['10.110.0.254', '10.120.0.254']) await lab.addr(cloud, 'lo', `${extra}/32`);
  for (const pool of ['cloud', 'lyon', 'oslo']) charons[pool] = await startCharon({ netns: ns[pool] });
  secrets = await makeSecretDir();
});

after(async () => {
  await Promise.all(sessions.map((s) => s.close().catch(() => {})));
  for (const c of Object.values(charons)) await c.stop();
  await lab.cleanup();
  await secrets?.remove();
});

function reconciler(pool: string): { r: DatapathReconciler; vici: ViciSession } {
  const vici = new ViciSession(charons[pool].socketPath, { reconnectTimeoutMs: 5000 });
  sessions.push(vici);
  return { vici, r: new DatapathReconciler({ vici, iproute: new Iproute({ table: 9027, netns: ns[pool] }), secrets: new SecretReader(secrets!.dir), log: silentLogger }) };
}

async function ping(from: string, src: string, dst: string): Promise<boolean> {
  return (await lab.exec(ns[from], ['ping', '-c', '1', '-W', '1', '-I', src, dst], { allowFail: true })).code === 0;
}

test('relay: NAT\'d lyon and oslo talk through the cloud gateway; a denied pair is carried by nobody', { skip, timeout: 120_000 }, async () => {
  const node = { cloud: 'c-gw', lyon: 'l-gw', oslo: 'o-gw' } as const;
  const r = { cloud: reconciler('cloud'), lyon: reconciler('lyon'), oslo: reconciler('oslo') };
  const apply = async (gws: Gateway[]) => {
    for (const pool of ['cloud', 'lyon', 'oslo'] as const) {
      const res = await r[pool].r.reconcile(nodePlan({ gateways: gws, nodeName: node[pool] }));
      assert.deepEqual(res.errors, [], pool);
    }
  };
  await apply(gateways());

  // Both NAT'd gateways initiated to the relay; the relay answered from %any and saw the routers' addresses.
  const cloudSas = await r.cloud.vici.listSas();
  assert.deepEqual(cloudSas.map((s) => [s.name, s.remoteHost]).sort(), [['corvid-lyon@l-gw', '192.0.2.20'], ['corvid-oslo@o-gw', '192.0.2.30']]);
  const lyonSa = (await r.lyon.vici.listSas())[0];
  assert.deepEqual(lyonSa.children[0].remoteTs, ['10.100.0.0/24', '10.120.0.0/24']);
  assert.equal(lyonSa.children[0].encap, true, 'NAT-T: ESP in UDP 4500');

  assert.ok(await waitFor('lyon pod -> cloud pod', () => ping('lyon', '10.110.0.5', '10.100.0.5'), 10_000));
  assert.ok(await waitFor('lyon pod -> oslo pod through the relay', () => ping('lyon', '10.110.0.5', '10.120.0.5'), 10_000));
  assert.ok(await ping('oslo', '10.120.0.5', '10.110.0.5'));
  const relayed = (await r.cloud.vici.listSas()).find((s) => s.name === 'corvid-oslo@o-gw')!.children[0];
  assert.ok(relayed.bytesOut > 0 && relayed.bytesIn > 0);

  // lyon now denies oslo: the relay stops carrying the pair (both CHILD_SAs are replaced), cloud stays reachable.
  await apply(gateways({ lyonDenies: ['oslo'] }));
  const lyonTs = (await r.lyon.vici.listSas())[0]?.children[0]?.remoteTs;
  assert.deepEqual(lyonTs, ['10.100.0.0/24']);
  assert.ok(await waitFor('lyon pod -> cloud pod after the change', () => ping('lyon', '10.110.0.5', '10.100.0.5'), 10_000));
  assert.equal(await ping('lyon', '10.110.0.5', '10.120.0.5'), false);
  assert.equal(await ping('oslo', '10.120.0.5', '10.110.0.5'), false);

  for (const pool of ['cloud', 'lyon', 'oslo'] as const) {
    const res = await r[pool].r.teardown();
    assert.deepEqual(res.errors, [], pool);
    assert.deepEqual(await r[pool].vici.listSas(), []);
  }
});
