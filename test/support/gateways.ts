// A Gateway as the sync writes it, for tests that feed node plans and agents: one active tunnel endpoint, the
// pool's nodes with their address and pod subnets, and the annotations given.

import { POOL_LABEL } from '../../src/gateway/keys.ts';
import { GATEWAY_API_VERSION, GATEWAY_KIND, type Gateway } from '../../src/gateway/types.ts';

export interface GatewayNode {
  name: string;
  ip: string;
  subnets: string[];
}

export function poolGateway(o: { pool: string; nodes: GatewayNode[]; active: string; publicIP?: string; annotations: Record<string, string>; privateIPs?: string }): Gateway {
  const ep = { nodeName: o.active, type: 'tunnel' as const, port: 4500, underNAT: false, ...(o.publicIP !== undefined ? { publicIP: o.publicIP } : {}) };
  const active = o.privateIPs === undefined ? ep : { ...ep, config: { 'corvid.dev/private-ips': o.privateIPs } };
  const meta = { name: o.pool, labels: { [POOL_LABEL]: o.pool }, annotations: o.annotations };
  const nodes = o.nodes.map((n) => ({ nodeName: n.name, privateIP: n.ip, subnets: n.subnets }));
  const spec = { nodeSelector: { matchLabels: { [POOL_LABEL]: o.pool } }, endpoints: [ep], tunnelConfig: { Replicas: 1 } };
  return { apiVersion: GATEWAY_API_VERSION, kind: GATEWAY_KIND, metadata: meta, spec, status: { nodes, activeEndpoints: [active] } };
}
