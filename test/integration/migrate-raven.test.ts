// Migrating from OpenYurt Raven, on a real kube-apiserver whose Gateway CRD is OpenYurt's own, installed first under
// Helm's field manager after a release that stored v1alpha1 (test/support/openyurt.ts):
// - Corvid's CRD cannot be applied over it (the two failures docs/migrate-from-raven.md starts from);
// - the example overlay with deploy/components/existing-gateway-crd applies, and the sync's preflight accepts the CRD;
// - `corvid import` turns Raven's Gateways (test/fixtures/raven) into a topology that `corvid validate` accepts and
//   whose `corvid render` is their spec as Raven reads it, every difference listed;
// - the sync adopts the imported Gateways exactly as rendered, keeps the gateways Raven elected, leaves the rest
//   alone, and `corvid diff` then finds nothing to change;
// - a Gateway CRD without what Corvid writes, or none, stops the sync with the reason and what to do.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse, parseAllDocuments } from 'yaml';
import type { KubeConfig } from '@kubernetes/client-node';
import { ensureNamespace, installCrds, useControlPlane } from '../support/controlplane.ts';
import { createRavenGateways, createRavenNodes, deleteGatewayCrd, HELM, installOpenYurtGatewayCrd, RAVEN_GATEWAYS } from '../support/openyurt.ts';
import { applyTopologyCr, startTestSync, waitFor, type TestSync } from './sync-fixtures.ts';
import { corvid, REPO } from '../unit/cli-support.ts';
import { CONTENT_TYPE, kubeRequest, statusCode } from '../../src/adapters/kube/client.ts';
import { CRDS_PATH } from '../../src/adapters/kube/crds.ts';
import { GATEWAYS_PATH, listGateways } from '../../src/adapters/kube/gateways.ts';
import { checkServedGatewayCrd, GatewayCrdError } from '../../src/sync/preflight.ts';
import { jsonLogger } from '../../src/shell/log.ts';
import { canonicalJson } from '../../src/gateway/canonical.ts';
import { formatDifference, ravenSpecDifferences } from '../../src/migrate/raven-spec.ts';
import { GATEWAY_CRD_NAME as GATEWAY_CRD, type Gateway } from '../../src/gateway/types.ts';

const cp = useControlPlane();
const kubectl = spawnSync('sh', ['-c', 'command -v kubectl'], { encoding: 'utf8' }).stdout.trim();
const SKIP_KUSTOMIZE = cp.skip ?? (kubectl ? undefined : 'needs kubectl (for `kubectl kustomize`) on PATH');
const IMPORTED = ['gw-cloud', 'gw-factory', 'gw-hangzhou', 'gw-lb', 'gw-store'];

const dir = mkdtempSync(join(tmpdir(), 'corvid-migrate-it-'));
const topologyFile = join(dir, 'topology.yaml');
after(() => rmSync(dir, { recursive: true, force: true }));

function env(): Record<string, string> {
  return { KUBECONFIG: cp.get().kubeconfigPath };
}

/** A logger whose lines the test reads. */
function capture(): { logger: ReturnType<typeof jsonLogger>; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  return { lines, logger: jsonLogger({ level: 'debug', write: (l) => void lines.push(JSON.parse(l)) }) };
}

/** Resource path of an object, from discovery. */
async function pathOf(kc: KubeConfig, o: any): Promise<string | undefined> {
  const [group, version] = o.apiVersion.includes('/') ? o.apiVersion.split('/') : ['', o.apiVersion];
  const base = group === '' ? `/api/${version}` : `/apis/${group}/${version}`;
  const list = await kubeRequest<{ resources: { name: string; kind: string; namespaced: boolean }[] }>(kc, { method: 'GET', path: base }).catch(() => undefined);
  const r = list?.resources.find((x) => x.kind === o.kind && !x.name.includes('/'));
  if (r === undefined) return undefined;
  return `${base}${r.namespaced ? `/namespaces/${o.metadata.namespace ?? 'default'}` : ''}/${r.name}/${o.metadata.name}`;
}

/** `kubectl apply --server-side` of one object: field manager kubectl, no force. */
async function serverSideApply(kc: KubeConfig, o: any, opts: { dryRun?: boolean; force?: boolean } = {}): Promise<unknown> {
  const path = await pathOf(kc, o);
  assert.ok(path, `the API server does not serve ${o.apiVersion} ${o.kind}`);
  return kubeRequest(kc, {
    method: 'PATCH',
    path,
    query: { fieldManager: 'kubectl', force: opts.force ? true : undefined, dryRun: opts.dryRun ? 'All' : undefined },
    body: o,
    contentType: CONTENT_TYPE.apply,
  });
}

async function liveGateway(kc: KubeConfig, name: string): Promise<Gateway> {
  return kubeRequest<Gateway>(kc, { method: 'GET', path: `${GATEWAYS_PATH}/${name}` });
}

test("OpenYurt's CRD refuses Corvid's: a conflict with Helm on .spec.versions, and v1alpha1 in storedVersions", { skip: cp.skip, timeout: 60_000 }, async () => {
  const kc = cp.get().kubeConfig;
  await installOpenYurtGatewayCrd(kc, { storedV1alpha1: true });
  const installed = await kubeRequest(kc, { method: 'GET', path: `${CRDS_PATH}/${GATEWAY_CRD}` });
  assert.deepEqual(installed.status.storedVersions, ['v1alpha1', 'v1beta1']);
  assert.ok(installed.metadata.managedFields.every((f: { manager: string }) => f.manager === HELM || f.manager === 'kube-apiserver'));

  const ours = parse(readFileSync(join(REPO, 'deploy', 'crds', 'gateway.yaml'), 'utf8'));
  const conflict = await serverSideApply(kc, ours).then(() => undefined, (e) => e);
  assert.equal(statusCode(conflict), 409, String(conflict));
  assert.match(String(conflict), /conflict.*\.spec\.versions/is);
  const forced = await serverSideApply(kc, ours, { force: true }).then(() => undefined, (e) => e);
  assert.ok(forced !== undefined, 'forcing it through is refused too');
  assert.match(String(forced), /status\.storedVersions\[0\].*must appear in spec\.versions/);
  const after = await kubeRequest(kc, { method: 'GET', path: `${CRDS_PATH}/${GATEWAY_CRD}` });
  assert.deepEqual(after.spec.versions.map((v: { name: string }) => v.name), ['v1alpha1', 'v1beta1'], "OpenYurt's CRD is unchanged");
});

test('the example overlay with existing-gateway-crd applies alongside, and the preflight accepts OpenYurt\'s CRD', { skip: SKIP_KUSTOMIZE, timeout: 120_000 }, async (t) => {
  const kc = cp.get().kubeConfig;
  const copy = join(dir, 'deploy');
  cpSync(join(REPO, 'deploy'), copy, { recursive: true });
  mkdirSync(join(copy, 'overlays', 'alongside-openyurt'));
  // The overlay of docs/migrate-from-raven.md, step 4: the component, and the agents held back until the cut-over.
  const agentsHeldBack = '{"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "corvid-agent"}, "spec": {"template": {"spec": {"nodeSelector": {"corvid.dev/agent": "enabled"}}}}}';
  writeFileSync(
    join(copy, 'overlays', 'alongside-openyurt', 'kustomization.yaml'),
    `resources: [../example]\ncomponents: [../../components/existing-gateway-crd]\npatches:\n  - target: {kind: DaemonSet, name: corvid-agent}\n    patch: '${agentsHeldBack}'\n`,
  );
  const r = spawnSync(kubectl, ['kustomize', join(copy, 'overlays', 'alongside-openyurt')], { encoding: 'utf8', timeout: 60_000 });
  assert.equal(r.status, 0, r.stderr);
  const objs = parseAllDocuments(r.stdout).map((d) => d.toJS());
  assert.deepEqual(objs.filter((o) => o.kind === 'CustomResourceDefinition').map((o) => o.metadata.name), ['topologies.corvid.dev']);
  assert.deepEqual(objs.find((o) => o.kind === 'DaemonSet' && o.metadata.name === 'corvid-agent').spec.template.spec.nodeSelector, { 'corvid.dev/agent': 'enabled' });
  const role = objs.find((o) => o.kind === 'ClusterRole' && o.metadata.name === 'corvid-sync');
  assert.ok(role.rules.some((x: any) => x.resources.includes('customresourcedefinitions') && x.resourceNames?.includes(GATEWAY_CRD) && x.verbs.includes('get')));

  // As `kubectl apply --server-side -k`: the CRD and namespaces for real, the rest as a dry run (no controllers here).
  for (const o of objs.filter((x) => x.kind === 'Namespace' || x.kind === 'CustomResourceDefinition')) await serverSideApply(kc, o);
  const version = await kubeRequest<{ minor: string }>(kc, { method: 'GET', path: '/version' });
  for (const o of objs.filter((x) => x.kind !== 'Namespace' && x.kind !== 'CustomResourceDefinition')) {
    if ((await pathOf(kc, o)) === undefined && o.apiVersion === 'policy/v1' && Number.parseInt(version.minor, 10) < 21) {
      t.diagnostic(`skipped ${o.kind}/${o.metadata.name}: ${o.apiVersion} is not served by Kubernetes 1.${version.minor}`);
      continue;
    }
    await serverSideApply(kc, o, { dryRun: true }).catch((e) => assert.fail(`${o.kind} ${o.metadata.namespace ?? ''}/${o.metadata.name}: ${(e as Error).message}`));
  }
  await waitFor('Topology CRD Established', async () => {
    const crd = await kubeRequest(kc, { method: 'GET', path: `${CRDS_PATH}/topologies.corvid.dev` });
    return crd.status?.conditions?.some((c: { type: string; status: string }) => c.type === 'Established' && c.status === 'True');
  });

  const { logger, lines } = capture();
  await checkServedGatewayCrd(kc, logger);
  const warnings = lines.filter((l) => l.level === 'warn').map((l) => String(l.msg));
  assert.equal(warnings.length, 1, JSON.stringify(lines));
  assert.match(warnings[0], /storedVersions lists v1alpha1: .*Service kube-system\/yurt-manager-webhook-service/);
});

test('corvid import: Raven\'s Gateways become a topology that validates and renders to their specs', { skip: cp.skip, timeout: 60_000 }, async () => {
  const kc = cp.get().kubeConfig;
  await createRavenNodes(kc);
  await createRavenGateways(kc, RAVEN_GATEWAYS());

  const imported = await corvid(['import', '-f', topologyFile, '--name', 'edge'], env());
  assert.equal(imported.code, 1, `written, with notes:\n${imported.stderr}`);
  assert.equal(imported.stdout, '');
  assert.match(imported.stderr, /^corvid import: 5 pools from 7 Gateways written to .*topology\.yaml; \d+ notes above \(also in the file\)$/m);
  assert.match(imported.stderr, /^corvid import: Gateway gw-unlabelled: not imported: it has no spec\.nodeSelector/m);
  assert.match(imported.stderr, /^corvid import: Gateway gw-proxy-only: not imported: it has no tunnel endpoint/m);
  assert.match(imported.stderr, /^corvid import: Gateway gw-hangzhou: not carried over: proxy endpoints on hz-gw-1/m);
  assert.match(imported.stderr, /^corvid import: +kubectl -n corvid-system create secret generic corvid-psk --from-literal=psk="\$\(openssl rand -base64 48\)"$/m);
  const text = readFileSync(topologyFile, 'utf8');
  assert.match(text, /pskSecretRef:\n\s+name: corvid-psk\n\s+key: psk\n/);

  const validated = await corvid(['validate', topologyFile]);
  assert.equal(validated.code, 0, validated.stdout + validated.stderr);

  const rendered = await corvid(['render', '-f', topologyFile]);
  assert.equal(rendered.code, 0, rendered.stderr);
  const gateways = parseAllDocuments(rendered.stdout).map((d) => d.toJS() as Gateway);
  assert.deepEqual(gateways.map((g) => g.metadata.name), IMPORTED);
  for (const g of gateways) {
    const differences = ravenSpecDifferences((await liveGateway(kc, g.metadata.name)).spec, g.spec);
    if (g.metadata.name === 'gw-cloud' || g.metadata.name === 'gw-store') {
      assert.deepEqual(differences, [], `${g.metadata.name}: rendered as it is live`);
      continue;
    }
    // Every difference is one the import listed.
    assert.ok(differences.length > 0, g.metadata.name);
    const listed = imported.stderr.split('\n').find((l) => l.startsWith(`corvid import: Gateway ${g.metadata.name}: changed: corvid render's spec differs`));
    assert.ok(listed, `${g.metadata.name}: the difference is listed`);
    for (const d of differences) assert.ok(listed.includes(formatDifference(d)), `${g.metadata.name}: ${formatDifference(d)} is listed`);
  }
});

test('the sync adopts the imported Gateways as rendered, keeps the gateways Raven elected, and leaves the others alone', { skip: cp.skip, timeout: 120_000 }, async () => {
  const kc = cp.get().kubeConfig;
  await ensureNamespace(kc, 'corvid-system');
  // The Topology CRD only (the overlay's test applies it too; this test does not need kubectl).
  await installCrds(kc, join(REPO, 'deploy', 'crds'), ['topology.yaml']);
  const before = new Map((await listGateways(kc)).items.map((g) => [g.metadata.name, g]));
  const rendered = parseAllDocuments((await corvid(['render', '-f', topologyFile])).stdout).map((d) => d.toJS() as Gateway);
  let sync: TestSync | undefined;
  try {
    sync = await startTestSync(kc, { source: { kind: 'cluster' } });
    await applyTopologyCr(kc, readFileSync(topologyFile, 'utf8'));
    const adopted = await waitFor(
      'the imported Gateways adopted as rendered, with status',
      async () => {
        const live = new Map((await listGateways(kc)).items.map((g) => [g.metadata.name, g]));
        const done = rendered.every((r) => {
          const l = live.get(r.metadata.name);
          // Status written by the sync, not Raven's still: its endpoints carry Corvid's priority.
          const active = l?.status?.activeEndpoints ?? [];
          const statusByCorvid = active.length > 0 && active.every((e) => e.config?.['corvid.dev/priority'] !== undefined);
          return l?.metadata.labels?.['corvid.dev/topology'] === 'edge' && canonicalJson(l.spec) === canonicalJson(r.spec) && statusByCorvid;
        });
        return done && live;
      },
      60_000,
    );
    // Sticky: the gateway Raven had elected is Corvid's first choice too, so no pool moves at the hand-over.
    for (const name of IMPORTED) {
      const raven = before.get(name)!.status!.activeEndpoints!.filter((e) => e.type === 'tunnel').map((e) => e.nodeName);
      assert.deepEqual(adopted.get(name)!.status!.activeEndpoints!.map((e) => e.nodeName), raven, `${name} keeps Raven's active gateway`);
    }
    for (const name of ['gw-unlabelled', 'gw-proxy-only']) {
      assert.equal(adopted.get(name)!.metadata.resourceVersion, before.get(name)!.metadata.resourceVersion, `${name} is left alone`);
    }
    const diff = await corvid(['diff', '-f', topologyFile, '--elect-without-heartbeat'], env());
    assert.equal(diff.code, 0, diff.stdout + diff.stderr);
    assert.match(diff.stdout, /No differences: the 5 Gateways of edge are up to date\./);
    assert.deepEqual(sync.logs.filter((l) => l.level === 'error'), []);
  } finally {
    await sync?.handle.stop();
  }
});

test('a Gateway CRD without what Corvid writes, or none, stops the sync with the reason and what to do', { skip: cp.skip, timeout: 60_000 }, async () => {
  const kc = cp.get().kubeConfig;
  const crd = await kubeRequest(kc, { method: 'GET', path: `${CRDS_PATH}/${GATEWAY_CRD}` });
  delete crd.spec.versions.find((v: { name: string }) => v.name === 'v1beta1').subresources;
  await kubeRequest(kc, { method: 'PUT', path: `${CRDS_PATH}/${GATEWAY_CRD}`, query: { fieldManager: HELM }, body: crd });
  const noStatus = await startTestSync(kc, { source: { kind: 'cluster' } }).then(
    async (s) => {
      await s.handle.stop();
      return undefined;
    },
    (e) => e,
  );
  assert.ok(noStatus instanceof GatewayCrdError, String(noStatus));
  assert.match(noStatus.message, /does not fit Corvid: v1beta1 has no status subresource, through which the sync writes status\. To fix: install Corvid's own Gateway CRD \(deploy\/crds\/gateway\.yaml; leave out the existing-gateway-crd component\), or upgrade OpenYurt/);

  await deleteGatewayCrd(kc);
  const cli = await corvid(['sync', '--health-probe-bind-address', '127.0.0.1:0', '--metrics-bind-address', '127.0.0.1:0'], env());
  assert.notEqual(cli.code, 0, cli.stderr);
  assert.match(cli.stderr, /^corvid sync: the Gateway CRD gateways\.raven\.openyurt\.io is not installed: apply deploy\/crds/m);
});
