// The rendered install, applied to a real kube-apiserver: `kubectl kustomize deploy/overlays/example` and the example
// Topology go through server-side apply, which refuses any field a built-in type or a CRD schema does not declare.
// The CRDs and the namespace are applied for real; everything else as a dry run (no controllers run here).
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import type { KubeConfig } from '@kubernetes/client-node';
import { installCrds, useControlPlane } from '../support/controlplane.ts';
import { CONTENT_TYPE, kubeRequest, statusCode } from '../../src/adapters/kube/client.ts';

const REPO_ROOT = new URL('../../', import.meta.url).pathname;
const cp = useControlPlane();
const kubectl = spawnSync('sh', ['-c', 'command -v kubectl'], { encoding: 'utf8' }).stdout.trim();
const SKIP = cp.skip ?? (kubectl ? undefined : 'needs kubectl (for `kubectl kustomize`) on PATH');

/** Resource path of an object, from the API server's discovery (so CRD kinds work too). */
async function pathOf(kc: KubeConfig, o: any): Promise<string | undefined> {
  const [group, version] = o.apiVersion.includes('/') ? o.apiVersion.split('/') : ['', o.apiVersion];
  const base = group === '' ? `/api/${version}` : `/apis/${group}/${version}`;
  let list: { resources: { name: string; kind: string; namespaced: boolean }[] };
  try {
    list = await kubeRequest(kc, { method: 'GET', path: base });
  } catch (e) {
    if (statusCode(e) === 404) return undefined;
    throw e;
  }
  const r = list.resources.find((x) => x.kind === o.kind && !x.name.includes('/'));
  if (r === undefined) return undefined;
  const ns = r.namespaced ? `/namespaces/${o.metadata.namespace ?? 'default'}` : '';
  return `${base}${ns}/${r.name}/${o.metadata.name}`;
}

async function apply(kc: KubeConfig, o: any, dryRun: boolean): Promise<void> {
  const path = await pathOf(kc, o);
  assert.ok(path, `the API server does not serve ${o.apiVersion} ${o.kind}`);
  await kubeRequest(kc, {
    method: 'PATCH',
    path,
    query: { fieldManager: 'corvid-install-test', force: true, dryRun: dryRun ? 'All' : undefined },
    body: o,
    contentType: CONTENT_TYPE.apply,
  });
}

describe('the install on a real API server', { skip: SKIP }, () => {
  test('every object of the example overlay is accepted by server-side apply', async (t) => {
    const kc = cp.get().kubeConfig;
    await installCrds(kc);
    const r = spawnSync(kubectl, ['kustomize', join(REPO_ROOT, 'deploy', 'overlays', 'example')], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    const objs = parseAllDocuments(r.stdout).map((d) => d.toJS());
    for (const o of objs.filter((x) => x.kind === 'Namespace')) await apply(kc, o, false);
    const version = await kubeRequest<{ minor: string }>(kc, { method: 'GET', path: '/version' });
    for (const o of objs.filter((x) => x.kind !== 'Namespace' && x.kind !== 'CustomResourceDefinition')) {
      if ((await pathOf(kc, o)) === undefined && o.apiVersion === 'policy/v1' && Number.parseInt(version.minor, 10) < 21) {
        // PodDisruptionBudget policy/v1 arrived in 1.21; docs/install.md says to drop the PDB on 1.20.
        t.diagnostic(`skipped ${o.kind}/${o.metadata.name}: ${o.apiVersion} is not served by Kubernetes 1.${version.minor}`);
        continue;
      }
      try {
        await apply(kc, o, true);
      } catch (e) {
        assert.fail(`${o.kind} ${o.metadata.namespace ?? ''}/${o.metadata.name}: ${(e as Error).message}`);
      }
    }
  });

  test('the agents\' DaemonSet as the openyurt-rollout component makes it: accepted by server-side apply', async () => {
    const kc = cp.get().kubeConfig;
    const r = spawnSync(kubectl, ['kustomize', join(REPO_ROOT, 'test', 'fixtures', 'overlays', 'openyurt-rollout')], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    const objs = parseAllDocuments(r.stdout).map((d) => d.toJS());
    const agent = objs.find((o) => o.kind === 'DaemonSet');
    assert.deepEqual(agent.spec.updateStrategy, { type: 'OnDelete' });
    for (const o of objs.filter((x) => x.kind === 'Namespace')) await apply(kc, o, false);
    await apply(kc, agent, true);
  });

  test('the example Topology is accepted by the Topology CRD', async () => {
    const kc = cp.get().kubeConfig;
    await installCrds(kc);
    const topo = parseAllDocuments(readFileSync(join(REPO_ROOT, 'topology', 'example.yaml'), 'utf8'))[0].toJS();
    await apply(kc, topo, true);
  });
});
