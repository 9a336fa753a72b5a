// deploy/flux: a signed-commit GitRepository, the controllers' Kustomization (wait, prune) and the topology's
// Kustomization (health from the Topology's kstatus conditions), pointing at paths that exist in this repository.
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

  test('controllers: the example overlay, with wait (every object healthy by kstatus)', () => {
    assert.equal(controllers.spec.wait, true);
    assert.ok(existsSync(join(REPO_ROOT, controllers.spec.path, 'kustomization.yaml')), controllers.spec.path);
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
