// Nodes: list and watch, as wire JSON (what src/plan's inventoryFromNode reads). The informer keeps only that part of
// each Node (see trimNode): at 10k Nodes the rest (managedFields alone is about 1.4 KiB a Node) is most of the cache.

import type { KubeConfig } from './kubeconfig.ts';
import { listAll, withoutManagedFields, type KubeList, type KubeObject } from './client.ts';
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

/**
 * What the node informer keeps of a Node: metadata without managedFields; of the spec podCIDR, podCIDRs and
 * unschedulable; of the status the addresses and the Ready condition. That is everything inventoryFromNode
 * (src/plan/inventory.ts) and nodeReady read. Dropped: managedFields, taints, providerID, the other conditions,
 * images, nodeInfo, capacity, allocatable, volumes, daemonEndpoints. A new reader of another Node field adds it here.
 */
export function trimNode(n: NodeJson): NodeJson {
  const out = withoutManagedFields(n);
  if (n.spec !== undefined) {
    const { podCIDR, podCIDRs, unschedulable } = n.spec;
    out.spec = { podCIDR, podCIDRs, unschedulable };
  }
  if (n.status !== undefined) {
    const { addresses, conditions } = n.status;
    out.status = { addresses, conditions: Array.isArray(conditions) ? conditions.filter((c) => c?.type === 'Ready') : conditions };
  }
  return out;
}

/** An informer on Nodes, caching each Node as trimNode leaves it. */
export function nodeInformer(
  kc: KubeConfig,
  opts: Omit<InformerOptions, 'path'> = {},
): Informer<NodeJson> {
  return new Informer<NodeJson>(kc, { ...opts, path: NODES_PATH, transform: trimNode });
}

/** The Node's Ready condition status: true only for "True". */
export function nodeReady(node: NodeJson): boolean {
  return node.status?.conditions?.find((c) => c.type === 'Ready')?.status === 'True';
}
