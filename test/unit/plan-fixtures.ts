// Builders for planner tests: Topology, Pool and InventoryNode objects built directly (no YAML).

import type { EncryptionPolicy, ElectionSettings, Pool, Topology } from '../../src/topology/types.ts';
import type { InventoryNode, PlanInput } from '../../src/plan/types.ts';

export const POOL_KEY = 'topology.corvid.dev/pool';
export const T0 = '2026-01-01T00:00:00Z';
export const NOW = '2026-01-01T01:00:00Z';
export const REV = `main@sha1:${'a'.repeat(40)}`;

export const DEFAULT_ENCRYPTION: EncryptionPolicy = {
  backend: 'ipsec',
  ikeProposals: ['aes256-sha256-modp2048'],
  espProposals: ['aes256-sha256'],
  pskSecretRef: { name: 'corvid-psk', key: 'psk' },
  allowInsecure: false,
};

export const DEFAULT_ELECTION: ElectionSettings = {
  sticky: true,
  preempt: false,
  minHealthySeconds: 30,
  heartbeatTimeoutSeconds: 3,
  replicas: 1,
};

export function pool(name: string, gateways: string[], opts: Partial<Pool> & { publicIPs?: Record<string, string> } = {}): Pool {
  const { publicIPs, ...rest } = opts;
  return {
    name,
    nodeSelector: { matchLabels: { [POOL_KEY]: name } },
    gateways: gateways.map((g) => ({ node: g, publicPort: 4500, ...(publicIPs?.[g] ? { publicIP: publicIPs[g] } : {}) })),
    behindNAT: false,
    ...rest,
  };
}

export function topology(pools: Pool[], opts: Omit<Partial<Topology>, 'election'> & { election?: Partial<ElectionSettings> } = {}): Topology {
  const { election, ...rest } = opts;
  return {
    name: 'edge',
    allowEmpty: false,
    podSubnets: { source: 'auto' },
    encryption: DEFAULT_ENCRYPTION,
    connectivity: { mode: 'mesh', rules: [] },
    pools: [...pools].sort((a, b) => (a.name < b.name ? -1 : 1)),
    links: [],
    ...rest,
    election: { ...DEFAULT_ELECTION, ...election },
  };
}

function nameHash(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193) >>> 0;
  return h & 0xffff;
}

/** A Ready node of a pool (addresses derived from the name, so equal names give equal nodes). */
export function node(name: string, poolName: string | undefined, opts: Partial<InventoryNode> = {}): InventoryNode {
  const ipCounter = nameHash(name);
  return {
    name,
    labels: poolName === undefined ? {} : { [POOL_KEY]: poolName },
    ready: true,
    readySince: T0,
    internalIP: `192.168.${(ipCounter >> 8) & 255}.${ipCounter & 255}`,
    podCIDRs: [`10.${(ipCounter >> 8) & 255}.${ipCounter & 255}.0/24`],
    unschedulable: false,
    drained: false,
    ...opts,
  };
}

export function input(t: Topology, nodes: InventoryNode[], over: Partial<PlanInput> = {}): PlanInput {
  return { topology: t, revision: REV, nodes, health: {}, previous: [], now: NOW, ...over };
}

/** Seconds after T0 as RFC 3339. */
export function at(seconds: number): string {
  return new Date(Date.parse(T0) + seconds * 1000).toISOString().replace('.000Z', 'Z');
}
