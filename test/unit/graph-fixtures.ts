// Hand-built normalised topologies for the graph tests (independent of the topology loader).
import type { Pool, Topology } from '../../src/topology/types.ts';

const encryption = {
  backend: 'ipsec' as const,
  ikeProposals: ['aes256-sha256-modp2048'],
  espProposals: ['aes256-sha256'],
  pskSecretRef: { name: 'corvid-psk', key: 'psk' },
  allowInsecure: false,
};

function pool(name: string, gateways: string[], opts: Partial<Pool> = {}): Pool {
  return {
    name,
    nodeSelector: { matchLabels: { 'topology.corvid.dev/pool': name } },
    gateways: gateways.map((node, i) => ({ node, publicPort: 4500, ...(opts.behindNAT ? {} : { publicIP: `203.0.113.${10 + i}` }) })),
    behindNAT: false,
    ...opts,
  };
}

/** The shape of topology/example.yaml. */
export function exampleTopology(): Topology {
  return {
    name: 'edge-network',
    allowEmpty: false,
    podSubnets: { source: 'auto' },
    encryption,
    connectivity: { mode: 'mesh', rules: [{ action: 'deny', pools: ['store-berlin', 'factory-lyon'] }] },
    election: { sticky: true, preempt: false, minHealthySeconds: 30, heartbeatTimeoutSeconds: 3, replicas: 1 },
    pools: [
      pool('cloud', ['cloud-gw-1', 'cloud-gw-2']),
      pool('factory-lyon', ['lyon-edge-1', 'lyon-edge-2'], { behindNAT: true, relay: 'cloud' }),
      pool('store-berlin', ['berlin-gw-a', 'berlin-gw-b'], { behindNAT: true, relay: 'cloud' }),
      pool('store-munich', ['munich-gw-a'], { behindNAT: true, relay: 'cloud' }),
      pool('warehouse-oslo', ['oslo-gw-1']),
    ],
    links: [],
  };
}

/** n pools; every third behind NAT relayed through pool-000; a few denied pairs; long names on some. */
export function generatedTopology(n: number, mode: 'mesh' | 'hub' = 'mesh'): Topology {
  const names = Array.from({ length: n }, (_, i) => (i % 7 === 3 ? `pool-${String(i).padStart(3, '0')}-with-a-rather-long-name-for-layout` : `pool-${String(i).padStart(3, '0')}`));
  const pools = names.map((name, i) =>
    pool(
      name,
      Array.from({ length: 1 + (i % 3) }, (_, j) => `${name.slice(0, 8)}-gw-${j}`),
      i % 3 === 1 ? { behindNAT: true, relay: names[0] } : {},
    ),
  );
  return {
    name: `generated-${n}`,
    allowEmpty: false,
    podSubnets: { source: 'auto' },
    encryption,
    connectivity: {
      mode,
      ...(mode === 'hub' ? { hub: names[0] } : {}),
      rules: names.filter((_, i) => i % 10 === 5).map((name, i) => ({ action: 'deny' as const, pools: [name, names[(i * 7 + 2) % n]] as [string, string] })),
    },
    election: { sticky: true, preempt: false, minHealthySeconds: 30, heartbeatTimeoutSeconds: 3, replicas: 1 },
    pools: [...pools].sort((a, b) => (a.name < b.name ? -1 : 1)),
    links: [],
  };
}
