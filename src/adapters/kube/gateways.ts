// Gateways (raven.openyurt.io/v1beta1, cluster-scoped): list, watch, server-side apply, status apply, annotation
// patch, delete.
// Mechanism only: which Gateways to write and when is the sync's business.

import type { KubeConfig } from './kubeconfig.ts';
import { GATEWAY_API_VERSION, GATEWAY_GROUP, GATEWAY_KIND, GATEWAY_PLURAL, GATEWAY_VERSION } from '../../gateway/types.ts';
import type { Gateway, GatewayStatus } from '../../gateway/types.ts';
import { CONTENT_TYPE, kubeRequest, listAll, statusCode, type KubeList } from './client.ts';
import { Informer, type InformerOptions } from './informer.ts';

/** Field manager of every spec/metadata apply by the sync. */
export const FIELD_MANAGER = 'corvid-sync';
/**
 * Field manager of status applies. Separate from FIELD_MANAGER because kube-apiserver 1.20 does not record the
 * subresource in managedFields: a status apply under the spec's manager would drop its ownership of the spec.
 */
export const STATUS_FIELD_MANAGER = 'corvid-sync-status';

export const GATEWAYS_PATH = `/apis/${GATEWAY_GROUP}/${GATEWAY_VERSION}/${GATEWAY_PLURAL}`;

function gatewayPath(name: string): string {
  return `${GATEWAYS_PATH}/${encodeURIComponent(name)}`;
}

export interface ListGatewaysOptions {
  /** e.g. `app.kubernetes.io/managed-by=corvid,corvid.dev/topology=edge`. */
  labelSelector?: string;
}

/** All Gateways (matching the selector), with the list's resourceVersion. */
export function listGateways(kc: KubeConfig, opts: ListGatewaysOptions = {}): Promise<KubeList<Gateway>> {
  return listAll<Gateway>(kc, GATEWAYS_PATH, { labelSelector: opts.labelSelector });
}

/** One Gateway, or undefined when it does not exist. */
export async function getGateway(kc: KubeConfig, name: string): Promise<Gateway | undefined> {
  try {
    return await kubeRequest<Gateway>(kc, { method: 'GET', path: gatewayPath(name) });
  } catch (e) {
    if (statusCode(e) === 404) return undefined;
    throw e;
  }
}

export interface ApplyOptions {
  /** Server-side dry run (`dryRun=All`): validated and defaulted by the server, nothing stored. */
  dryRun?: boolean;
  /** Default FIELD_MANAGER (STATUS_FIELD_MANAGER for status). */
  fieldManager?: string;
}

/**
 * Server-side apply of a Gateway's identity, labels, annotations and spec (never its status), with force.
 * Fields this manager applied before and no longer sends are removed by the server. Resolves to the stored object.
 * A schema rejection is a 500 "failed to create typed patch object" on 1.20 (see isSchemaRejection).
 */
export function applyGateway(kc: KubeConfig, gw: Gateway, opts: ApplyOptions = {}): Promise<Gateway> {
  const metadata: Record<string, unknown> = { name: gw.metadata.name };
  if (gw.metadata.labels !== undefined) metadata.labels = gw.metadata.labels;
  if (gw.metadata.annotations !== undefined) metadata.annotations = gw.metadata.annotations;
  const body = { apiVersion: GATEWAY_API_VERSION, kind: GATEWAY_KIND, metadata, spec: gw.spec };
  return kubeRequest<Gateway>(kc, {
    method: 'PATCH',
    path: gatewayPath(gw.metadata.name),
    query: { fieldManager: opts.fieldManager ?? FIELD_MANAGER, force: true, dryRun: opts.dryRun ? 'All' : undefined },
    body,
    contentType: CONTENT_TYPE.apply,
  });
}

/** Server-side apply of a Gateway's status through the status subresource, with force. The Gateway must exist. */
export function applyGatewayStatus(
  kc: KubeConfig,
  name: string,
  status: GatewayStatus,
  opts: ApplyOptions = {},
): Promise<Gateway> {
  const body = { apiVersion: GATEWAY_API_VERSION, kind: GATEWAY_KIND, metadata: { name }, status };
  return kubeRequest<Gateway>(kc, {
    method: 'PATCH',
    path: `${gatewayPath(name)}/status`,
    query: {
      fieldManager: opts.fieldManager ?? STATUS_FIELD_MANAGER,
      force: true,
      dryRun: opts.dryRun ? 'All' : undefined,
    },
    body,
    contentType: CONTENT_TYPE.apply,
  });
}

/**
 * JSON merge patch of a Gateway's annotations under FIELD_MANAGER: only the keys given change (null removes one), and
 * no field another manager applied is dropped, unlike an apply that leaves them out. A merge patch never creates, so
 * a Gateway deleted meanwhile is a 404.
 */
export function patchGatewayAnnotations(
  kc: KubeConfig,
  name: string,
  annotations: Record<string, string | null>,
  opts: ApplyOptions = {},
): Promise<Gateway> {
  return kubeRequest<Gateway>(kc, {
    method: 'PATCH',
    path: gatewayPath(name),
    query: { fieldManager: opts.fieldManager ?? FIELD_MANAGER, dryRun: opts.dryRun ? 'All' : undefined },
    body: { metadata: { annotations } },
    contentType: CONTENT_TYPE.mergePatch,
  });
}

export interface DeletePrecondition {
  /** Delete only this incarnation of the name. */
  uid?: string;
  /** Delete only if nobody changed it since it was read. */
  resourceVersion?: string;
}

/**
 * Delete a Gateway if the preconditions hold (409 Conflict otherwise). Resolves to false when it was already gone.
 */
export async function deleteGateway(
  kc: KubeConfig,
  name: string,
  precondition: DeletePrecondition,
  opts: { dryRun?: boolean } = {},
): Promise<boolean> {
  const preconditions: Record<string, string> = {};
  if (precondition.uid) preconditions.uid = precondition.uid;
  if (precondition.resourceVersion) preconditions.resourceVersion = precondition.resourceVersion;
  try {
    await kubeRequest(kc, {
      method: 'DELETE',
      path: gatewayPath(name),
      // With a body, the server reads the options from it and ignores the query: dryRun goes in the body.
      body: { apiVersion: 'v1', kind: 'DeleteOptions', preconditions, ...(opts.dryRun ? { dryRun: ['All'] } : {}) },
    });
    return true;
  } catch (e) {
    if (statusCode(e) === 404) return false;
    throw e;
  }
}

/** An informer on Gateways (optionally only those matching a label selector). */
export function gatewayInformer(
  kc: KubeConfig,
  opts: ListGatewaysOptions & Omit<InformerOptions, 'path' | 'labelSelector'> = {},
): Informer<Gateway> {
  return new Informer<Gateway>(kc, { ...opts, path: GATEWAYS_PATH });
}

/**
 * Replace a Gateway (PUT) under FIELD_MANAGER. `gw` must carry the resourceVersion it was read at (409 otherwise).
 * Used to remove fields another manager added, which a server-side apply leaves in place. Status is not touched.
 */
export function replaceGateway(kc: KubeConfig, gw: Gateway, opts: ApplyOptions = {}): Promise<Gateway> {
  return kubeRequest<Gateway>(kc, {
    method: 'PUT',
    path: gatewayPath(gw.metadata.name),
    query: { fieldManager: opts.fieldManager ?? FIELD_MANAGER, dryRun: opts.dryRun ? 'All' : undefined },
    body: gw,
  });
}

/** Replace a Gateway's status (PUT /status) under STATUS_FIELD_MANAGER; `gw` must carry its resourceVersion. */
export function replaceGatewayStatus(kc: KubeConfig, gw: Gateway, opts: ApplyOptions = {}): Promise<Gateway> {
  return kubeRequest<Gateway>(kc, {
    method: 'PUT',
    path: `${gatewayPath(gw.metadata.name)}/status`,
    query: { fieldManager: opts.fieldManager ?? STATUS_FIELD_MANAGER, dryRun: opts.dryRun ? 'All' : undefined },
    body: gw,
  });
}
