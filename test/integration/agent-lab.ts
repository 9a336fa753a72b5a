// A two-pool network built from namespaces, shared by the agent integration tests.
//
//   pod 10.101.1.5 (lo)                                                             pod 10.102.1.5 (lo)
//   node a-n1 ── 10.1.0.0/24 ── gw a-gw ══ 192.0.2.0/24 (the "Internet") ══ gw b-gw ── 10.2.0.0/24 ── node b-n1
//                          pod 10.101.0.5 (lo)                      pod 10.102.0.5 (lo)
//
// No namespace has a default route, so pod traffic can only cross between the pools through the tunnel: a cleartext
// packet would have no route. Within a pool, static routes stand in for the CNI (flannel host-gw style).
// All addresses are 10.x or TEST-NET-1 and live only inside these namespaces.
//
// kernel-libipsec (the only ESP datapath this kernel offers) refuses a CHILD_SA when the gateway owns no address
// inside one of its local traffic selectors ("error installing route with policy ... out", TS_UNACCEPTABLE): it
// needs a source address for the route it puts into table 220. Kernel ESP (kernel-netlink, production) simply skips
// the route instead. So each gateway here also holds <member subnet>.254/32 on lo; nothing is ever sent to it.
import { randomBytes } from 'node:crypto';
import { mkdtemp, mkdir, writeFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NetnsLab } from '../support/netns.ts';
import { GATEWAY_API_VERSION, GATEWAY_KIND, type Gateway } from '../../src/gateway/types.ts';
import { encodeGatewayAnnotations } from '../../src/gateway/annotations.ts';
import { POOL_LABEL } from '../../src/gateway/keys.ts';
import type { EncryptionPolicy } from '../../src/topology/types.ts';

export interface PoolLab {
  pool: string;
  gwNode: string;
  memberNode: string;
  gwNs: string;
  memberNs: string;
  /** Underlay ("public") address of the gateway. */
  publicIP: string;
  gwLan: string;
  memberLan: string;
  gwSubnet: string;
  memberSubnet: string;
  gwPod: string;
  memberPod: string;
}

export const ENCRYPTION: EncryptionPolicy = {
  backend: 'ipsec',
  ikeProposals: ['aes256-sha256-modp2048'],
  espProposals: ['aes256-sha256'],
  pskSecretRef: { name: 'corvid-psk', key: 'psk' },
  allowInsecure: false,
};

function poolSpec(pool: string, n: number): Omit<PoolLab, 'gwNs' | 'memberNs'> {
  return {
    pool,
    gwNode: `${pool}-gw`,
    memberNode: `${pool}-n1`,
    publicIP: `192.0.2.${n}`,
    gwLan: `10.${n}.0.10`,
    memberLan: `10.${n}.0.11`,
    gwSubnet: `10.10${n}.0.0/24`,
    memberSubnet: `10.10${n}.1.0/24`,
    gwPod: `10.10${n}.0.5`,
    memberPod: `10.10${n}.1.5`,
  };
}

/** Build both pools; returns [a, b]. */
export async function buildTwoPools(lab: NetnsLab): Promise<[PoolLab, PoolLab]> {
  const out: PoolLab[] = [];
  for (const [pool, n] of [['a', 1], ['b', 2]] as const) {
    const s = poolSpec(pool, n);
    const gwNs = await lab.addNs(`${pool}gw`);
    const memberNs = await lab.addNs(`${pool}n1`);
    await lab.veth(gwNs, 'lan0', memberNs, 'eth0');
    await lab.addr(gwNs, 'lan0', `${s.gwLan}/24`);
    await lab.addr(memberNs, 'eth0', `${s.memberLan}/24`);
    await lab.addr(gwNs, 'lo', `${s.gwPod}/32`);
    await lab.addr(memberNs, 'lo', `${s.memberPod}/32`);
    await lab.addr(gwNs, 'lo', `${s.memberSubnet.replace(/\.0\/24$/, '.254')}/32`);
    // The CNI's part: each node reaches the other's pod subnet directly.
    await lab.route(gwNs, s.memberSubnet, 'via', s.memberLan);
    await lab.route(memberNs, s.gwSubnet, 'via', s.gwLan);
    await lab.forwarding(gwNs);
    out.push({ ...s, gwNs, memberNs });
  }
  const [a, b] = out;
  await lab.veth(a.gwNs, 'wan0', b.gwNs, 'wan0');
  await lab.addr(a.gwNs, 'wan0', `${a.publicIP}/24`);
  await lab.addr(b.gwNs, 'wan0', `${b.publicIP}/24`);
  return [a, b];
}

/** The Gateway the planner would write for a pool, with `active` as its elected tunnel endpoint. */
export function gatewayFor(p: PoolLab, opts: { active?: string; peers?: string[]; denied?: string[] } = {}): Gateway {
  const active = opts.active ?? p.gwNode;
  const endpoint = (nodeName: string) => ({
    nodeName,
    type: 'tunnel' as const,
    port: 4500,
    underNAT: false,
    ...(nodeName === p.gwNode ? { publicIP: p.publicIP } : {}),
  });
  return {
    apiVersion: GATEWAY_API_VERSION,
    kind: GATEWAY_KIND,
    metadata: {
      name: p.pool,
      labels: { [POOL_LABEL]: p.pool, 'app.kubernetes.io/managed-by': 'corvid' },
      annotations: encodeGatewayAnnotations({ peers: opts.peers ?? ['*'], deniedPeers: opts.denied, encryption: ENCRYPTION, encryptionDefaults: ENCRYPTION }),
    },
    spec: {
      nodeSelector: { matchLabels: { [POOL_LABEL]: p.pool } },
      endpoints: [endpoint(p.gwNode)],
      tunnelConfig: { Replicas: 1 },
    },
    status: {
      nodes: [
        { nodeName: p.gwNode, privateIP: p.gwLan, subnets: [p.gwSubnet] },
        { nodeName: p.memberNode, privateIP: p.memberLan, subnets: [p.memberSubnet] },
      ],
      activeEndpoints: active === '' ? [] : [endpoint(active)],
    },
  };
}

/** A secret directory holding corvid-psk/psk with a fresh random key; returns its path. */
export async function makeSecretDir(): Promise<{ dir: string; remove(): Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), 'corvid-secrets-'));
  await mkdir(join(dir, 'corvid-psk'), { mode: 0o700 });
  await writeFile(join(dir, 'corvid-psk', 'psk'), randomBytes(32).toString('base64'), { mode: 0o400 });
  return { dir, remove: () => rm(dir, { recursive: true, force: true }) };
}

// Tests of the agent poll with the shared helper.
export { waitFor } from '../support/wait.ts';
