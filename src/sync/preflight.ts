// The sync's start-up check of the Gateway CRD the cluster serves (Corvid's, or OpenYurt's under the
// existing-gateway-crd component): one read, the verdict of src/gateway/crd-check.ts, and a clear stop.

import type { KubeConfig } from '../adapters/kube/kubeconfig.ts';
import { errorMessage, statusCode } from '../adapters/kube/client.ts';
import { getGatewayCrd } from '../adapters/kube/crds.ts';
import { checkGatewayCrd, CRD_REMEDY } from '../gateway/crd-check.ts';
import { GATEWAY_CRD_NAME } from '../gateway/types.ts';
import type { Logger } from '../shell/log.ts';

/** Why the sync does not start: the message says what to do. */
export class GatewayCrdError extends Error {
  override name = 'GatewayCrdError';
}

/**
 * Resolves when the served Gateway CRD fits Corvid (its warnings logged); rejects with a GatewayCrdError saying what
 * is wrong and what to do when it does not, or is missing. A CRD the sync may not read is logged and not checked.
 */
export async function checkServedGatewayCrd(kc: KubeConfig, logger: Logger): Promise<void> {
  let crd: unknown;
  try {
    crd = await getGatewayCrd(kc);
  } catch (e) {
    if (statusCode(e) !== 403) throw e;
    logger.warn('the Gateway CRD was not checked: the sync may not read it (RBAC: get on customresourcedefinitions, resourceNames [gateways.raven.openyurt.io], as in deploy/base/rbac-sync.yaml)', { error: errorMessage(e) });
    return;
  }
  if (crd === undefined) {
    throw new GatewayCrdError(`the Gateway CRD ${GATEWAY_CRD_NAME} is not installed: apply deploy/crds (deploy/base does), or, with the existing-gateway-crd component, install OpenYurt's first`);
  }
  const verdict = checkGatewayCrd(crd);
  for (const w of verdict.warnings) logger.warn(`the Gateway CRD: ${w}`, { crd: GATEWAY_CRD_NAME });
  if (verdict.errors.length > 0) {
    throw new GatewayCrdError(`the Gateway CRD ${GATEWAY_CRD_NAME} the cluster serves does not fit Corvid: ${verdict.errors.join('; ')}. To fix: ${CRD_REMEDY}`);
  }
}
