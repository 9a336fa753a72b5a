// Calico IPAM BlockAffinities (crd.projectcalico.org/v1, and the native projectcalico.org/v3 CRDs): read only.
// Whether a group serves them is asked through API discovery (GET /apis/<group>/<version>), which every authenticated
// user may do (ClusterRole system:discovery), so detection needs no RBAC grant of its own.

import type { KubeConfig } from './kubeconfig.ts';
import { kubeRequest, listAll, statusCode, withoutManagedFields, type KubeList, type KubeObject } from './client.ts';
import { Informer, type InformerOptions } from './informer.ts';
import { CALICO_BLOCK_AFFINITY_VERSIONS, CALICO_V1, CALICO_V3, type CalicoGroupVersion } from '../../plan/podsubnets.ts';

export { CALICO_V1, CALICO_V3, type CalicoGroupVersion };
export const CALICO_V1_BLOCK_AFFINITIES_PATH = `/apis/${CALICO_V1}/blockaffinities`;
export const CALICO_V3_BLOCK_AFFINITIES_PATH = `/apis/${CALICO_V3}/blockaffinities`;

/** A BlockAffinity as wire JSON. `deleted` is a string in v1 ("true"/"false") and a boolean in v3. */
export interface BlockAffinityJson extends KubeObject {
  spec?: { cidr?: string; node?: string; state?: string; deleted?: string | boolean; type?: string; [k: string]: unknown };
}

/** What the informer keeps: apiVersion, kind, metadata without managedFields, and the spec fields src/plan reads. */
export function trimBlockAffinity(o: BlockAffinityJson): BlockAffinityJson {
  const out = withoutManagedFields(o);
  if (o.spec !== undefined) {
    const { cidr, node, state, deleted, type } = o.spec;
    out.spec = { cidr, node, state, deleted, type };
  }
  return out;
}

/** Whether the API server serves blockaffinities in `gv` (discovery). False when the group/version is unknown (404). */
export async function servesBlockAffinities(kc: KubeConfig, gv: CalicoGroupVersion): Promise<boolean> {
  try {
    const doc = await kubeRequest<{ resources?: { name?: string }[] }>(kc, { method: 'GET', path: `/apis/${gv}` });
    return (doc?.resources ?? []).some((r) => r?.name === 'blockaffinities');
  } catch (e) {
    if (statusCode(e) === 404) return false;
    throw e;
  }
}

/** The Calico group/versions that serve blockaffinities, in CALICO_BLOCK_AFFINITY_VERSIONS order. */
export async function discoverBlockAffinities(kc: KubeConfig): Promise<CalicoGroupVersion[]> {
  const served = await Promise.all(CALICO_BLOCK_AFFINITY_VERSIONS.map((gv) => servesBlockAffinities(kc, gv)));
  return CALICO_BLOCK_AFFINITY_VERSIONS.filter((_, i) => served[i]);
}

/** All BlockAffinities of one group/version. */
export function listBlockAffinities(kc: KubeConfig, gv: CalicoGroupVersion): Promise<KubeList<BlockAffinityJson>> {
  // One call per path, so that the RBAC check (test/unit/deploy-rbac.test.ts) sees both groups.
  return gv === CALICO_V3
    ? listAll<BlockAffinityJson>(kc, CALICO_V3_BLOCK_AFFINITIES_PATH, {}, trimBlockAffinity)
    : listAll<BlockAffinityJson>(kc, CALICO_V1_BLOCK_AFFINITIES_PATH, {}, trimBlockAffinity);
}

/** An informer on the BlockAffinities of one group/version, caching each as trimBlockAffinity leaves it. */
export function blockAffinityInformer(
  kc: KubeConfig,
  gv: CalicoGroupVersion,
  opts: Omit<InformerOptions, 'path'> = {},
): Informer<BlockAffinityJson> {
  return gv === CALICO_V3
    ? new Informer<BlockAffinityJson>(kc, { ...opts, path: CALICO_V3_BLOCK_AFFINITIES_PATH, transform: trimBlockAffinity })
    : new Informer<BlockAffinityJson>(kc, { ...opts, path: CALICO_V1_BLOCK_AFFINITIES_PATH, transform: trimBlockAffinity });
}
