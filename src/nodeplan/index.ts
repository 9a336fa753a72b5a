// Public face of the node plan (pure): Gateways + this node -> role, tunnels, routes, rules.
export { activeConn, nodePlan, connName, vxlanMac, wireguardTunnels } from './plan.ts';
export { canonicalPrefix, canonicalAddress, comparePrefixes, endpointHost, endpointText, sortPrefixes } from './cidr.ts';
export type * from './types.ts';
export { CONN_PREFIX, DEFAULT_ROUTE_TABLE, DEFAULT_RULE_PRIORITY, HANDOVER_RULE_PRIORITY, IPSEC_OVERHEAD, mssFor, NO_PACKET_POLICY, VXLAN_DEVICE, VXLAN_OVERHEAD, WIREGUARD_DEVICE, WIREGUARD_KEEPALIVE_SECONDS, WIREGUARD_OVERHEAD, WIREGUARD_PADDING, WIREGUARD_SESSION_SECONDS, WIREGUARD_PORT } from './types.ts';
export { devicesToward, looseRpFilterDevices } from './devices.ts';
