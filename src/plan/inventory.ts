// v1 Node (as JSON: @kubernetes/client-node V1Node, `kubectl get node -o json|yaml`) -> InventoryNode. Pure.

import { NODE_DRAIN_ANNOTATION, NODE_PUBLIC_IP_ANNOTATION } from '../gateway/keys.ts';
import { isUsableIP, usableIPVersion } from '../topology/ip.ts';
import { looksLikeKeyMaterial } from '../topology/keymaterial.ts';
import { isDnsSubdomain } from './selector.ts';

/** Whether a node's address is usable: the topology's one IP grammar (src/topology/ip.ts), re-exported, not restated. */
export { isUsableIP as isIP };
import type { InventoryNode } from './types.ts';

/** Thrown for input that is not a Node / node list at all. Missing optional fields are never an error. */
export class InventoryError extends Error {
  override name = 'InventoryError';
}

type Obj = Record<string, unknown>;

function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function str(v: unknown): string | undefined {
  return typeof v === 'string' ? v : undefined;
}

/** RFC 3339 text of a timestamp given as a string or a Date (client-node deserialises to Date); `.000` dropped. */
export function timeText(v: unknown): string | undefined {
  if (typeof v === 'string') return v === '' ? undefined : v;
  if (v instanceof Date && !Number.isNaN(v.getTime())) return v.toISOString().replace('.000Z', 'Z');
  return undefined;
}

function stringMap(v: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  if (!isObj(v)) return out;
  for (const [k, x] of Object.entries(v)) if (typeof x === 'string') out[k] = x;
  return out;
}

/** A kind as Kubernetes writes one, which a message may repeat (anything else might be a pasted key). */
const KIND = /^[A-Z][A-Za-z]{0,39}$/;

/**
 * The planner's view of one v1 Node. Throws InventoryError only when there is no metadata.name, or one no Node can
 * have (a hand-edited snapshot; the name is not repeated).
 */
export function inventoryFromNode(node: unknown): InventoryNode {
  if (!isObj(node)) throw new InventoryError('a Node must be an object');
  if (node.kind !== undefined && node.kind !== 'Node') {
    const kind = typeof node.kind === 'string' && KIND.test(node.kind) && !looksLikeKeyMaterial(node.kind) ? node.kind : undefined;
    throw new InventoryError(kind !== undefined ? `expected a Node, got kind ${kind}` : 'expected a Node, got another kind');
  }
  const meta = isObj(node.metadata) ? node.metadata : {};
  const name = str(meta.name);
  if (!name) throw new InventoryError('a Node needs metadata.name');
  if (!isDnsSubdomain(name)) throw new InventoryError('metadata.name is not a Node name (a DNS-1123 subdomain)');
  const spec = isObj(node.spec) ? node.spec : {};
  const status = isObj(node.status) ? node.status : {};
  const annotations = stringMap(meta.annotations);

  let ready = false;
  let readyUnknown = false;
  let readySince: string | undefined;
  if (Array.isArray(status.conditions)) {
    const c = status.conditions.find((x): x is Obj => isObj(x) && x.type === 'Ready');
    if (c) {
      ready = c.status === 'True';
      readyUnknown = c.status === 'Unknown';
      readySince = timeText(c.lastTransitionTime);
    }
  }

  // The first InternalIP, as ever; on a dual-stack node also the first InternalIP of the other family.
  let internalIP: string | undefined;
  let internalIPOtherFamily: string | undefined;
  if (Array.isArray(status.addresses)) {
    // Only addresses: anything else would be published in the Gateway's status as the node's privateIP.
    const internal = status.addresses
      .filter((x): x is Obj => isObj(x) && x.type === 'InternalIP' && typeof x.address === 'string' && usableIPVersion(x.address) !== 0)
      .map((x) => x.address as string);
    internalIP = internal[0];
    // The one IP grammar (src/topology/ip.ts): no zone, as for any address another machine is pointed at.
    const family = internalIP === undefined ? 0 : usableIPVersion(internalIP);
    if (family !== 0) internalIPOtherFamily = internal.find((a) => usableIPVersion(a) === (family === 4 ? 6 : 4));
  }

  let podCIDRs: string[] = [];
  if (Array.isArray(spec.podCIDRs) && spec.podCIDRs.length > 0) podCIDRs = spec.podCIDRs.filter((x): x is string => typeof x === 'string' && x !== '');
  else if (typeof spec.podCIDR === 'string' && spec.podCIDR !== '') podCIDRs = [spec.podCIDR];

  const out: InventoryNode = {
    name,
    labels: stringMap(meta.labels),
    ready,
    podCIDRs,
    unschedulable: spec.unschedulable === true,
    drained: annotations[NODE_DRAIN_ANNOTATION] === 'true',
  };
  if (readyUnknown) out.readyUnknown = true;
  if (readySince !== undefined) out.readySince = readySince;
  if (internalIP !== undefined) out.internalIP = internalIP;
  if (internalIPOtherFamily !== undefined) out.internalIPOtherFamily = internalIPOtherFamily;
  const publicIP = annotations[NODE_PUBLIC_IP_ANNOTATION]?.trim();
  if (publicIP) out.publicIP = publicIP;
  return out;
}

/**
 * Nodes from a `kind: List` / `kind: NodeList` (what `kubectl get nodes -o yaml` prints), a bare array of Nodes, or a
 * single Node. Items keep their order; items of another kind are an error.
 */
export function inventoryFromNodeList(list: unknown): InventoryNode[] {
  let items: unknown[];
  if (Array.isArray(list)) items = list;
  else if (isObj(list) && (list.kind === 'List' || list.kind === 'NodeList' || (list.kind === undefined && Array.isArray(list.items)))) {
    items = Array.isArray(list.items) ? list.items : [];
  } else if (isObj(list) && list.kind === 'Node') items = [list];
  else throw new InventoryError('expected a List or NodeList of Nodes (kubectl get nodes -o yaml)');
  return items.map((item, i) => {
    try {
      return inventoryFromNode(item);
    } catch (e) {
      throw new InventoryError(`items[${i}]: ${(e as Error).message}`);
    }
  });
}
