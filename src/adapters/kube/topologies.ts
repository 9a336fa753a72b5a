// Topology custom resources (topologies.corvid.dev/v1alpha1, cluster-scoped): list, watch, status with kstatus
// conditions (Ready / Reconciling / Stalled, observedGeneration, lastAppliedRevision, lastAttemptedRevision).

import type { KubeConfig } from './kubeconfig.ts';
import { CONTENT_TYPE, kubeRequest, listAll, statusCode, type KubeList, type KubeObject } from './client.ts';
import { FIELD_MANAGER, STATUS_FIELD_MANAGER, type ApplyOptions } from './gateways.ts';
import { Informer, type InformerOptions } from './informer.ts';
import type { TopologyStatus } from '../../reconcile/conditions.ts';

export const TOPOLOGY_GROUP = 'corvid.dev';
export const TOPOLOGY_VERSION = 'v1alpha1';
export const TOPOLOGY_PLURAL = 'topologies';
export const TOPOLOGIES_PATH = `/apis/${TOPOLOGY_GROUP}/${TOPOLOGY_VERSION}/${TOPOLOGY_PLURAL}`;

function topologyPath(name: string): string {
  return `${TOPOLOGIES_PATH}/${encodeURIComponent(name)}`;
}

/** A Topology object as wire JSON; spec is the topology document's spec (validated by src/topology). */
export interface TopologyObject extends KubeObject {
  spec?: Record<string, unknown>;
  status?: TopologyStatus;
}

/** All Topology objects. */
export function listTopologies(kc: KubeConfig): Promise<KubeList<TopologyObject>> {
  return listAll<TopologyObject>(kc, TOPOLOGIES_PATH);
}

/** One Topology, or undefined when it does not exist. */
export async function getTopology(kc: KubeConfig, name: string): Promise<TopologyObject | undefined> {
  try {
    return await kubeRequest<TopologyObject>(kc, { method: 'GET', path: topologyPath(name) });
  } catch (e) {
    if (statusCode(e) === 404) return undefined;
    throw e;
  }
}

/** An informer on Topologies; `name` restricts it to one object (field selector metadata.name). */
export function topologyInformer(
  kc: KubeConfig,
  opts: { name?: string } & Omit<InformerOptions, 'path' | 'fieldSelector'> = {},
): Informer<TopologyObject> {
  const { name, ...rest } = opts;
  return new Informer<TopologyObject>(kc, {
    ...rest,
    path: TOPOLOGIES_PATH,
    fieldSelector: name === undefined ? undefined : `metadata.name=${name}`,
  });
}

/**
 * Server-side apply of a Topology's metadata (labels, annotations) and spec, with force. Used to keep a status object
 * for topologies that come from git or a file. Never touches status.
 *
 * The spec is replaced as a whole: kube-apiserver 1.20 answers 422 (`spec.connectivity: Invalid value: "null"`) when
 * an apply drops a nested object this manager applied before. On a 422 the object is therefore read and replaced
 * (PUT, same field manager) with the spec given, the labels and annotations merged in, and the resourceVersion just
 * read (a concurrent write gives 409, retried by the caller). A 422 the PUT gives too is a real refusal and is thrown.
 */
export async function applyTopology(
  kc: KubeConfig,
  obj: { name: string; labels?: Record<string, string>; annotations?: Record<string, string>; spec: unknown },
  opts: ApplyOptions = {},
): Promise<TopologyObject> {
  const metadata: Record<string, unknown> = { name: obj.name };
  if (obj.labels) metadata.labels = obj.labels;
  if (obj.annotations) metadata.annotations = obj.annotations;
  const fieldManager = opts.fieldManager ?? FIELD_MANAGER;
  const dryRun = opts.dryRun ? 'All' : undefined;
  try {
    return await kubeRequest<TopologyObject>(kc, {
      method: 'PATCH',
      path: topologyPath(obj.name),
      query: { fieldManager, force: true, dryRun },
      body: { apiVersion: `${TOPOLOGY_GROUP}/${TOPOLOGY_VERSION}`, kind: 'Topology', metadata, spec: obj.spec },
      contentType: CONTENT_TYPE.apply,
    });
  } catch (e) {
    if (statusCode(e) !== 422) throw e;
    const live = await getTopology(kc, obj.name);
    if (live === undefined) throw e;
    // Replace: the live metadata (resourceVersion included) without managedFields, our labels and annotations merged
    // in, the spec given. Status is a subresource: a PUT here never touches it.
    const { managedFields: _managed, ...liveMeta } = (live.metadata ?? {}) as Record<string, unknown> & { managedFields?: unknown };
    return kubeRequest<TopologyObject>(kc, {
      method: 'PUT',
      path: topologyPath(obj.name),
      query: { fieldManager, dryRun },
      body: {
        apiVersion: `${TOPOLOGY_GROUP}/${TOPOLOGY_VERSION}`,
        kind: 'Topology',
        metadata: {
          ...liveMeta,
          labels: { ...(live.metadata?.labels ?? {}), ...(obj.labels ?? {}) },
          annotations: { ...(live.metadata?.annotations ?? {}), ...(obj.annotations ?? {}) },
        },
        spec: obj.spec,
      },
      contentType: CONTENT_TYPE.json,
    });
  }
}

/**
 * Server-side apply of a Topology's status through the status subresource (manager STATUS_FIELD_MANAGER, force).
 * Send the whole status: fields this manager sent before and leaves out are removed.
 */
export function applyTopologyStatus(
  kc: KubeConfig,
  name: string,
  status: TopologyStatus,
  opts: ApplyOptions = {},
): Promise<TopologyObject> {
  return kubeRequest<TopologyObject>(kc, {
    method: 'PATCH',
    path: `${topologyPath(name)}/status`,
    query: {
      fieldManager: opts.fieldManager ?? STATUS_FIELD_MANAGER,
      force: true,
      dryRun: opts.dryRun ? 'All' : undefined,
    },
    body: { apiVersion: `${TOPOLOGY_GROUP}/${TOPOLOGY_VERSION}`, kind: 'Topology', metadata: { name }, status },
    contentType: CONTENT_TYPE.apply,
  });
}
