// A cluster that runs OpenYurt Raven, on the test API server: OpenYurt's Gateway CRD installed as Helm installs it,
// and Gateways and Nodes as yurt-manager and raven-agent leave them (test/fixtures/openyurt, test/fixtures/raven).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import type { KubeConfig } from '@kubernetes/client-node';
import { kubeRequest } from '../../src/adapters/kube/client.ts';
import { CRDS_PATH } from '../../src/adapters/kube/crds.ts';
import { GATEWAYS_PATH } from '../../src/adapters/kube/gateways.ts';
import type { Gateway } from '../../src/gateway/types.ts';
import { createNode } from './controlplane.ts';
import { waitFor } from './wait.ts';

const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
const read = (path: string): any => parse(readFileSync(join(REPO_ROOT, path), 'utf8'));

/** OpenYurt's Gateway CRD, as its chart ships it. */
export const OPENYURT_GATEWAY_CRD = (): any => read('test/fixtures/openyurt/raven.openyurt.io_gateways.yaml');
/** Raven's Gateways (with status) and their Nodes. */
export const RAVEN_GATEWAYS = (): Gateway[] => read('test/fixtures/raven/gateways.yaml').items;
export const RAVEN_NODES = (): any[] => read('test/fixtures/raven/nodes.yaml').items;

/** The field manager Helm writes under (create and upgrade are Update operations, not server-side apply). */
export const HELM = 'helm';

async function established(kc: KubeConfig, name: string): Promise<void> {
  await waitFor(`CRD ${name} Established`, async () => {
    const crd = await kubeRequest(kc, { method: 'GET', path: `${CRDS_PATH}/${name}` });
    return crd.status?.conditions?.some((c: { type: string; status: string }) => c.type === 'Established' && c.status === 'True');
  });
}

/**
 * Install OpenYurt's Gateway CRD as Helm does. With `storedV1alpha1`, an older release that stored v1alpha1 comes
 * first and is then upgraded (a PUT, as an upgrade replaces it), so status.storedVersions lists v1alpha1 too.
 */
export async function installOpenYurtGatewayCrd(kc: KubeConfig, o: { storedV1alpha1?: boolean } = {}): Promise<void> {
  const crd = OPENYURT_GATEWAY_CRD();
  const name = crd.metadata.name as string;
  if (o.storedV1alpha1) {
    const older = structuredClone(crd);
    for (const v of older.spec.versions) v.storage = v.name === 'v1alpha1';
    // Conversion without a webhook: the older release's objects never needed one here.
    older.spec.conversion = { strategy: 'None' };
    await kubeRequest(kc, { method: 'POST', path: CRDS_PATH, query: { fieldManager: HELM }, body: older });
    await established(kc, name);
    const stored = await kubeRequest(kc, { method: 'GET', path: `${CRDS_PATH}/${name}` });
    await kubeRequest(kc, {
      method: 'PUT',
      path: `${CRDS_PATH}/${name}`,
      query: { fieldManager: HELM },
      body: { ...crd, metadata: { ...crd.metadata, resourceVersion: stored.metadata.resourceVersion } },
    });
  } else {
    await kubeRequest(kc, { method: 'POST', path: CRDS_PATH, query: { fieldManager: HELM }, body: crd });
  }
  await established(kc, name);
}

/** Remove the Gateway CRD (and with it every Gateway), and wait until it is gone. */
export async function deleteGatewayCrd(kc: KubeConfig, name = OPENYURT_GATEWAY_CRD().metadata.name): Promise<void> {
  await kubeRequest(kc, { method: 'DELETE', path: `${CRDS_PATH}/${name}` });
  await waitFor(`CRD ${name} gone`, () => kubeRequest(kc, { method: 'GET', path: `${CRDS_PATH}/${name}` }).then(() => false, () => true), 30_000);
}

/**
 * Create Raven's Gateways as its users and controllers do: the object as written (a create, as kubectl's
 * client-side apply makes it), then its status as yurt-manager's gateway-pickup controller writes it (an update of
 * /status).
 */
export async function createRavenGateways(kc: KubeConfig, gateways: readonly Gateway[]): Promise<void> {
  for (const g of gateways) {
    const { status, ...object } = g;
    const created = await kubeRequest(kc, { method: 'POST', path: GATEWAYS_PATH, query: { fieldManager: 'kubectl-client-side-apply' }, body: object });
    if (status === undefined) continue;
    await kubeRequest(kc, {
      method: 'PUT',
      path: `${GATEWAYS_PATH}/${g.metadata.name}/status`,
      query: { fieldManager: 'yurt-manager' },
      body: { ...created, status },
    });
  }
}

/** Create the Nodes of test/fixtures/raven, Ready, with their labels, InternalIP and podCIDR. */
export async function createRavenNodes(kc: KubeConfig): Promise<void> {
  for (const n of RAVEN_NODES()) {
    await createNode(kc, {
      name: n.metadata.name,
      labels: n.metadata.labels,
      internalIP: n.status.addresses.find((a: { type: string }) => a.type === 'InternalIP').address,
      podCIDRs: [n.spec.podCIDR],
    });
  }
}
