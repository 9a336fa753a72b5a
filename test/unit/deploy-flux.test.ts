// deploy/flux: a signed-commit GitRepository, the controllers' Kustomization (health from the CRDs and the sync
// Deployment, not from the agents' DaemonSet; prune) and the topology's Kustomization (health from the Topology's
// kstatus conditions), pointing at paths that exist in this repository.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT, loadYamlFile, manifestsOf } from './deploy-support.ts';

const repo = manifestsOf('flux/gitrepository.yaml')[0];
const controllers = manifestsOf('flux/kustomization-corvid.yaml')[0];
const topology = manifestsOf('flux/kustomization-topology.yaml')[0];

describe('Flux', () => {
  test('GitRepository verifies the signature of the HEAD commit', () => {
    assert.equal(repo.apiVersion, 'source.toolkit.fluxcd.io/v1');
    assert.equal(repo.kind, 'GitRepository');
    assert.equal(repo.spec.verify.mode, 'HEAD');
    assert.equal(typeof repo.spec.verify.secretRef.name, 'string');
    assert.ok(repo.spec.ref.branch || repo.spec.ref.tag || repo.spec.ref.semver);
  });

  test('both Kustomizations read that GitRepository and prune', () => {
    for (const k of [controllers, topology]) {
      assert.equal(k.apiVersion, 'kustomize.toolkit.fluxcd.io/v1');
      assert.equal(k.kind, 'Kustomization');
      assert.deepEqual(k.spec.sourceRef, { kind: 'GitRepository', name: repo.metadata.name });
      assert.equal(k.metadata.namespace, repo.metadata.namespace);
      assert.equal(k.spec.prune, true);
      assert.ok(k.spec.timeout && k.spec.interval);
    }
  });

  test('controllers: the example overlay; health from the CRDs and the sync Deployment, never from the agents\' DaemonSet', () => {
    assert.ok(existsSync(join(REPO_ROOT, controllers.spec.path, 'kustomization.yaml')), controllers.spec.path);
    // wait: true would wait for every object, the DaemonSet included (and Flux ignores healthChecks then).
    assert.notEqual(controllers.spec.wait, true);
    const checks = (controllers.spec.healthChecks as Array<{ apiVersion: string; kind: string; name: string; namespace?: string }>).map((h) => `${h.kind}/${h.namespace ?? ''}/${h.name}`).sort();
    // Each names an object the overlay applies, in its namespace.
    const rendered = [
      ...manifestsOf('crds/gateway.yaml'),
      ...manifestsOf('crds/topology.yaml'),
      ...manifestsOf('base/sync-deployment.yaml'),
      ...manifestsOf('base/agent-daemonset.yaml'),
    ];
    const ids = rendered.map((o) => `${o.kind}/${o.metadata.namespace ?? (o.kind === 'CustomResourceDefinition' ? '' : 'corvid-system')}/${o.metadata.name}`);
    for (const c of checks) assert.ok(ids.includes(c), `${c} is applied by ${controllers.spec.path}`);
    assert.deepEqual(checks, [
      'CustomResourceDefinition//gateways.raven.openyurt.io',
      'CustomResourceDefinition//topologies.corvid.dev',
      'Deployment/corvid-system/corvid-sync',
    ]);
    assert.ok(!checks.some((c) => c.startsWith('DaemonSet/')), 'an offline edge node must not hold the topology back');
  });

  test('why not the DaemonSet: by kstatus, one offline node keeps it InProgress for as long as the node is away', () => {
    const ds = (status: Record<string, number>) => kstatusDaemonSet({ metadata: { generation: 1 }, status: { observedGeneration: 1, ...status } });
    const all = { desiredNumberScheduled: 5, currentNumberScheduled: 5, updatedNumberScheduled: 5, numberAvailable: 5, numberReady: 5 };
    assert.equal(ds(all), 'Current');
    // An edge node offline: its pod is scheduled but neither ready nor available.
    assert.equal(ds({ ...all, numberAvailable: 4, numberReady: 4 }), 'InProgress');
  });

  test('topology: after the controllers, health from the Topology it applies', () => {
    assert.deepEqual(topology.spec.dependsOn, [{ name: controllers.metadata.name }]);
    // Flux ignores healthChecks when wait is true.
    assert.notEqual(topology.spec.wait, true);
    const dir = join(REPO_ROOT, topology.spec.path);
    const applied = artifactFiles(topology.spec.path)
      .filter((f) => /\.ya?ml$/.test(f))
      .flatMap((f) => loadYamlFile(join(REPO_ROOT, f)))
      .map((m) => m.obj);
    assert.ok(topology.spec.healthChecks.length > 0);
    for (const hc of topology.spec.healthChecks) {
      assert.equal(hc.kind, 'Topology');
      assert.equal(hc.namespace, undefined, 'Topologies are cluster-scoped');
      const obj = applied.find((o) => o.kind === hc.kind && o.metadata?.name === hc.name);
      assert.ok(obj, `${topology.spec.path} has no Topology ${hc.name}`);
      assert.equal(obj.apiVersion, hc.apiVersion);
    }
    // Flux generates a kustomization for a directory without one: every manifest under it is applied, so the
    // source must hold exactly the Topologies the health checks name.
    assert.ok(!existsSync(join(dir, 'kustomization.yaml')));
    assert.ok(applied.every((o) => o.kind === 'Topology'), `${topology.spec.path} holds only Topologies`);
    assert.deepEqual(
      applied.map((o) => o.metadata.name).sort(),
      topology.spec.healthChecks.map((h: { name: string }) => h.name).sort(),
      'the artifact holds exactly the health-checked Topologies',
    );
  });
});

/**
 * Files of the repository under `path` that survive the GitRepository's spec.ignore. Supports the anchored
 * patterns the manifest uses (`/x`, `/x/`, `!/x/`, `/*`); last match wins, as in .gitignore.
 */
function artifactFiles(path: string): string[] {
  const patterns = (repo.spec.ignore as string).split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
  for (const p of patterns) assert.match(p, /^!?\//, `only anchored ignore patterns are understood here: ${p}`);
  // `/*` matches every top-level entry, so (as the walk stops at ignored directories) every path under one.
  const matches = (p: string, rel: string): boolean => p === '/*' || `/${rel}/`.startsWith(p.endsWith('/') ? p : `${p}/`);
  const ignored = (rel: string): boolean => {
    let out = false;
    for (const raw of patterns) {
      const negate = raw.startsWith('!');
      if (matches(raw.replace(/^!/, ''), rel)) out = !negate;
    }
    return out;
  };
  const walk = (rel: string): string[] =>
    readdirSync(join(REPO_ROOT, rel), { withFileTypes: true }).flatMap((e) => {
      const r = join(rel, e.name);
      if (ignored(r)) return [];
      return e.isDirectory() ? walk(r) : [r];
    });
  return walk(path.replace(/^\.\//, ''));
}

/**
 * kstatus's status of a DaemonSet (sigs.k8s.io/cli-utils pkg/kstatus/status, daemonsetConditions), as Flux's
 * `wait` and kstatus-based health checks judge it: InProgress until the controller has seen the generation and the
 * daemon pods are current, updated, available and ready on every node where they should run.
 */
function kstatusDaemonSet(o: { metadata: { generation: number }; status: Record<string, number> }): 'Current' | 'InProgress' {
  const s = o.status;
  if (s.observedGeneration === undefined || s.observedGeneration < o.metadata.generation) return 'InProgress';
  const desired = s.desiredNumberScheduled ?? -1;
  if (desired === -1) return 'InProgress';
  for (const n of [s.currentNumberScheduled, s.updatedNumberScheduled, s.numberAvailable, s.numberReady]) if (desired > (n ?? 0)) return 'InProgress';
  return 'Current';
}
