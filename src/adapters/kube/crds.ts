// CustomResourceDefinitions (apiextensions.k8s.io/v1): read the Gateway CRD as the API server serves it.
// Mechanism only: what to check in it is src/gateway/crd-check.ts's.

import type { KubeConfig } from './kubeconfig.ts';
import { kubeRequest, statusCode } from './client.ts';
import { GATEWAY_CRD_NAME } from '../../gateway/types.ts';

export const CRDS_PATH = '/apis/apiextensions.k8s.io/v1/customresourcedefinitions';

/** The Gateway CRD (wire JSON, status included), or undefined when it is not installed. */
export async function getGatewayCrd(kc: KubeConfig): Promise<unknown> {
  try {
    return await kubeRequest(kc, { method: 'GET', path: `${CRDS_PATH}/${GATEWAY_CRD_NAME}` });
  } catch (e) {
    if (statusCode(e) === 404) return undefined;
    throw e;
  }
}
