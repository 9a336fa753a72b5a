// deploy/flux: a signed-commit GitRepository, the controllers' Kustomization (health from the CRDs and the sync
// Deployment, not from the agents' DaemonSet; prune) and the topology's Kustomization (health from the Topology's
// kstatus conditions), pointing at paths that exist in this repository. What Flux makes of those objects is judged
// by kstatus's own rules (test/support/kstatus.ts), with one edge node offline.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT, findObject, loadYamlFile, manifestsOf } from './deploy-support.ts';
import { kstatus } from '../support/kstatus.ts';
import { topologyStatus, type Outcome } from '../../src/reconcile/topology-status.ts';

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
    assert.equal(controllers.spec.wait, false);
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

  test('topology: after the controllers, health from the Topology it applies', () => {
    assert.deepEqual(topology.spec.dependsOn, [{ name: controllers.metadata.name }]);
    // Flux ignores healthChecks when wait is true.
    assert.equal(topology.spec.wait, false);
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

// ---------------------------------------------------------------- kstatus, with an edge node offline

const REVISION = 'main@sha1:0123456789abcdef0123456789abcdef01234567';

/** The agents' DaemonSet from deploy/base as the API server returns it, on 5 nodes, with `status` over that. */
function liveDaemonSet(status: Record<string, number>): any {
  const ds = structuredClone(manifestsOf('base/agent-daemonset.yaml').find((o) => o.kind === 'DaemonSet'));
  ds.metadata.generation = 2;
  const all = { desiredNumberScheduled: 5, currentNumberScheduled: 5, updatedNumberScheduled: 5, numberAvailable: 5, numberReady: 5, numberMisscheduled: 0 };
  ds.status = { observedGeneration: 2, ...all, ...status };
  return ds;
}

/** A health-checked object from the manifests as the API server returns it once its controller is done. */
function liveAndWell(o: any): any {
  const live = structuredClone(o);
  live.metadata.generation = 1;
  if (o.kind === 'CustomResourceDefinition') {
    live.status = {
      conditions: [
        { type: 'NamesAccepted', status: 'True', reason: 'NoConflicts' },
        { type: 'Established', status: 'True', reason: 'InitialNamesAccepted' },
      ],
    };
  } else if (o.kind === 'Deployment') {
    // The API server defaults progressDeadlineSeconds, so kstatus needs the controller's Progressing condition.
    live.spec.progressDeadlineSeconds ??= 600;
    const n = o.spec.replicas;
    live.status = {
      observedGeneration: 1, replicas: n, updatedReplicas: n, readyReplicas: n, availableReplicas: n,
      conditions: [
        { type: 'Available', status: 'True', reason: 'MinimumReplicasAvailable' },
        { type: 'Progressing', status: 'True', reason: 'NewReplicaSetAvailable' },
      ],
    };
  } else if (o.kind === 'Topology') {
    live.status = topologyStatus({ generation: 1, lastAppliedRevision: REVISION, outcome: { kind: 'applied', revision: REVISION }, now: '2026-11-24T10:00:00Z' });
  } else {
    throw new Error(`no live state for ${o.kind} here: add one`);
  }
  return live;
}

/** The objects a Flux healthCheck list names, from the manifests this repository applies. */
function checkedObjects(checks: Array<{ apiVersion: string; kind: string; name: string }>): any[] {
  const applied = [
    ...manifestsOf('crds/gateway.yaml'),
    ...manifestsOf('crds/topology.yaml'),
    ...manifestsOf('base/sync-deployment.yaml'),
    ...loadYamlFile(join(REPO_ROOT, 'topology', 'example.yaml')).map((m) => m.obj),
  ];
  return checks.map((c) => {
    const o = findObject(applied, c.kind, c.name);
    assert.equal(o.apiVersion, c.apiVersion, `${c.kind}/${c.name}`);
    return o;
  });
}

describe('Flux judges by kstatus: an offline edge node holds nothing back', () => {
  test('the agents\' DaemonSet with one edge node offline (numberUnavailable 1) is InProgress: the reason not to gate on it', () => {
    assert.equal(kstatus(liveDaemonSet({})).status, 'Current', 'every agent up');
    // A node went offline after the rollout: its pod is scheduled and up to date, but neither ready nor available.
    const away = kstatus(liveDaemonSet({ numberAvailable: 4, numberReady: 4, numberUnavailable: 1 }));
    assert.deepEqual(away, { status: 'InProgress', message: 'Available: 4/5' });
    // A rollout while the node is away: its pod cannot be replaced until the node is back.
    const rollout = kstatus(liveDaemonSet({ updatedNumberScheduled: 4, numberAvailable: 4, numberReady: 4, numberUnavailable: 1 }));
    assert.deepEqual(rollout, { status: 'InProgress', message: 'Updated: 4/5' });
    // Neither gets better until the node is back: wait: true (every object) would hold corvid-topology that long.
    assert.equal(controllers.spec.wait, false);
    assert.equal(topology.spec.wait, false);
  });

  test('what the controllers\' Kustomization gates on goes Current while the node is away', () => {
    const objects = checkedObjects(controllers.spec.healthChecks);
    assert.ok(objects.length > 0);
    // The sync Deployment runs 2 replicas wherever they fit: a pod on a node that goes offline is evicted and
    // scheduled again elsewhere, so the node does not hold it back for long.
    for (const o of objects) assert.equal(kstatus(liveAndWell(o)).status, 'Current', `${o.kind}/${o.metadata.name}`);
  });

  test('what the topology\'s Kustomization gates on goes Current once the sync has applied it', () => {
    const objects = checkedObjects(topology.spec.healthChecks);
    for (const o of objects) assert.equal(kstatus(liveAndWell(o)).status, 'Current', `${o.kind}/${o.metadata.name}`);
  });

  test('the Topology\'s status, as the sync writes it, gives kstatus the sync\'s verdict', () => {
    const judged = (outcome: Outcome, generation = 3, observed = generation) => {
      const status = topologyStatus({ generation: observed, lastAppliedRevision: REVISION, outcome, now: '2026-11-24T10:00:00Z' });
      return kstatus({ apiVersion: 'corvid.dev/v1alpha1', kind: 'Topology', metadata: { name: 'edge-network', generation }, status }).status;
    };
    assert.equal(judged({ kind: 'applied', revision: REVISION }), 'Current');
    // Gets better by itself: retried, or waiting for Argo CD's Gateway spec.
    assert.equal(judged({ kind: 'failed', revision: REVISION, reason: 'ApplyFailed', message: 'conflict' }), 'InProgress');
    assert.equal(judged({ kind: 'waiting', revision: REVISION, reason: 'WaitingForGatewaySpec', message: 'waiting for cloud' }), 'InProgress');
    // Only a new revision helps: Flux fails the Kustomization with the sync's message.
    assert.equal(judged({ kind: 'rejected', revision: REVISION, reason: 'ValidationFailed', message: 'bad' }), 'Failed');
    assert.equal(judged({ kind: 'superseded', by: 'other', revision: REVISION }), 'Failed');
    // A verdict on the previous spec says nothing about this one.
    assert.equal(judged({ kind: 'applied', revision: REVISION }, 4, 3), 'InProgress');
  });

  // kstatus skips the generation check without status.observedGeneration; the CRD's default gives it one.
  test('a Topology the sync has not reported on yet is InProgress', () => {
    // The API server fills in the CRD's defaults when it returns an object, status included.
    const crd = manifestsOf('crds/topology.yaml')[0];
    const schema = crd.spec.versions.find((v: { storage: boolean }) => v.storage).schema.openAPIV3Schema;
    const fresh: any = { apiVersion: 'corvid.dev/v1alpha1', kind: 'Topology', metadata: { name: 'edge-network', generation: 1 } };
    if (schema.properties.status.default !== undefined) fresh.status = structuredClone(schema.properties.status.default);
    assert.equal(kstatus(fresh).status, 'InProgress');
  });
});
