// What the sync writes, as one port: Gateways (server dry run, apply, replace, live-state annotation patch, status,
// delete) and the Topology object and status it reports on. kubeWrites is the real adapter (kube-apiserver);
// test/support/memory-cluster.ts is an in-memory one, so the reconcile's phases can be unit-tested without an API
// server (the integration suite runs the same reconcile against a real one).
// Errors are the API server's: a status code (statusCode in adapters/kube/client.ts) says transient or permanent.

import type { KubeConfig } from '../adapters/kube/kubeconfig.ts';
import {
  applyGateway,
  applyGatewayStatus,
  deleteGateway,
  patchGatewayAnnotations,
  replaceGateway,
  replaceGatewayStatus,
  type DeletePrecondition,
} from '../adapters/kube/gateways.ts';
import { applyTopology, applyTopologyStatus, type TopologyObject } from '../adapters/kube/topologies.ts';
import type { Gateway, GatewayStatus } from '../gateway/types.ts';
import type { TopologyStatus } from '../reconcile/conditions.ts';

export interface DryRun {
  /** Server-side dry run: validated and defaulted, nothing stored. */
  dryRun?: boolean;
}

/** The Topology object a git/file sync keeps to carry status (spec = the last applied revision's). */
export interface TopologyApply {
  name: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  spec: unknown;
}

export interface ClusterWrites {
  /** Server-side apply (force) of a Gateway's metadata and spec; resolves to the stored object. */
  applyGateway(gw: Gateway, opts?: DryRun): Promise<Gateway>;
  /** PUT of metadata and spec at the resourceVersion `gw` carries (409 when changed since). */
  replaceGateway(gw: Gateway): Promise<Gateway>;
  /** JSON merge patch of annotations (null removes one); 404 when the Gateway is gone. */
  patchGatewayAnnotations(name: string, annotations: Record<string, string | null>, opts?: DryRun): Promise<Gateway>;
  /** Server-side apply (force) of status through /status; the Gateway must exist. */
  applyGatewayStatus(name: string, status: GatewayStatus, opts?: DryRun): Promise<Gateway>;
  /** PUT of status at the resourceVersion `gw` carries. */
  replaceGatewayStatus(gw: Gateway): Promise<Gateway>;
  /** Delete if the preconditions hold (409 otherwise); false when it was already gone. */
  deleteGateway(name: string, precondition: DeletePrecondition, opts?: DryRun): Promise<boolean>;
  applyTopology(obj: TopologyApply): Promise<TopologyObject>;
  applyTopologyStatus(name: string, status: TopologyStatus): Promise<TopologyObject>;
}

/** The real adapter: every write goes to the API server `kc` names. */
export function kubeWrites(kc: KubeConfig): ClusterWrites {
  return {
    applyGateway: (gw, opts) => applyGateway(kc, gw, opts),
    replaceGateway: (gw) => replaceGateway(kc, gw),
    patchGatewayAnnotations: (name, annotations, opts) => patchGatewayAnnotations(kc, name, annotations, opts),
    applyGatewayStatus: (name, status, opts) => applyGatewayStatus(kc, name, status, opts),
    replaceGatewayStatus: (gw) => replaceGatewayStatus(kc, gw),
    deleteGateway: (name, precondition, opts) => deleteGateway(kc, name, precondition, opts),
    applyTopology: (obj) => applyTopology(kc, obj),
    applyTopologyStatus: (name, status) => applyTopologyStatus(kc, name, status),
  };
}
