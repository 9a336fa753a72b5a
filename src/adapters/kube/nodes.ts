// Nodes: list and watch, as wire JSON (what src/plan's inventoryFromNode reads).

import type { KubeConfig } from '@kubernetes/client-node';
import { listAll, type KubeList, type KubeObject } from './client.ts';
import { Informer, type InformerOptions } from './informer.ts';

export const NODES_PATH = '/api/v1/nodes';

/** A v1 Node as the API server sends it (timestamps are RFC 3339 strings). Only the fields Corvid reads are typed. */
export interface NodeJson extends KubeObject {
  spec?: { podCIDR?: string; podCIDRs?: string[]; unschedulable?: boolean; [k: string]: unknown };
  status?: {
    conditions?: { type: string; status: string; lastTransitionTime?: string; lastHeartbeatTime?: string; reason?: string }[];
    addresses?: { type: string; address: string }[];
    [k: string]: unknown;
  };
}

/** All Nodes (optionally matching a label selector). */
export function listNodes(kc: KubeConfig, opts: { labelSelector?: string } = {}): Promise<KubeList<NodeJson>> {
  return listAll<NodeJson>(kc, NODES_PATH, opts);
}

/** An informer on Nodes. */
export function nodeInformer(
  kc: KubeConfig,
  opts: Omit<InformerOptions, 'path'> = {},
): Informer<NodeJson> {
  return new Informer<NodeJson>(kc, { ...opts, path: NODES_PATH });
}

/** The Node's Ready condition status: true only for "True". */
export function nodeReady(node: NodeJson): boolean {
  return node.status?.conditions?.find((c) => c.type === 'Ready')?.status === 'True';
}
