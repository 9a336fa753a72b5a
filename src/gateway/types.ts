// raven.openyurt.io/v1beta1 Gateway, exactly the upstream shape.
// Corvid's additions live only in `corvid.dev/` annotations and endpoints[].config (see keys.ts).

import type { LabelSelector } from '../topology/types.ts';

export const GATEWAY_GROUP = 'raven.openyurt.io';
export const GATEWAY_VERSION = 'v1beta1';
export const GATEWAY_API_VERSION = `${GATEWAY_GROUP}/${GATEWAY_VERSION}`;
export const GATEWAY_KIND = 'Gateway';
export const GATEWAY_PLURAL = 'gateways';
/** The name of the Gateway CustomResourceDefinition. */
export const GATEWAY_CRD_NAME = `${GATEWAY_PLURAL}.${GATEWAY_GROUP}`;

export type EndpointType = 'tunnel' | 'proxy';
export type ExposeType = '' | 'PublicIP' | 'LoadBalancer';

export interface Endpoint {
  nodeName: string;
  type: EndpointType;
  port?: number;
  underNAT?: boolean;
  natType?: string;
  publicIP?: string;
  publicPort?: number;
  config?: Record<string, string>;
}

export interface TunnelConfiguration {
  Replicas: number;
}

export interface ProxyConfiguration {
  Replicas: number;
  proxyHTTPPort?: string;
  proxyHTTPSPort?: string;
}

export interface GatewaySpec {
  nodeSelector?: LabelSelector;
  endpoints?: Endpoint[];
  tunnelConfig?: TunnelConfiguration;
  proxyConfig?: ProxyConfiguration;
  exposeType?: ExposeType;
}

export interface NodeInfo {
  nodeName: string;
  privateIP: string;
  subnets: string[];
}

export interface GatewayStatus {
  nodes?: NodeInfo[];
  activeEndpoints?: Endpoint[];
}

export interface ObjectMeta {
  name: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  resourceVersion?: string;
  generation?: number;
  uid?: string;
  creationTimestamp?: string;
}

export interface Gateway {
  apiVersion: typeof GATEWAY_API_VERSION;
  kind: typeof GATEWAY_KIND;
  metadata: ObjectMeta;
  spec: GatewaySpec;
  status?: GatewayStatus;
}
