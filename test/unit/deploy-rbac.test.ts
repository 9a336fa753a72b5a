// RBAC in deploy/base covers every Kubernetes API call the sync and the agent make, and nothing dangerous.
//
// How: the TypeScript compiler reads src/. Every API call in src/adapters/kube/ is found and turned into
// (apiGroup, resource, verb):
//   - kubeRequest(kc, {method, path}), listAll(kc, path), new Informer(kc, {path}), Watch#watch(path): the HTTP
//     method and the path, evaluated from the constants and path helpers they are built from;
//   - methods of @kubernetes/client-node's generated API classes (listNode, createNamespacedLease, ...): a mapping
//     table. A method it does not know fails the test: extend API_METHODS in deploy-rbac-scan.ts.
// Which component makes which call: everything reachable from the component's shell (src/sync, src/agent and
// their CLI commands), following references into src/adapters/kube/, plus a few seeds that stand in for a shell
// not written yet. The other CLI commands are run by people with their own credentials and are not checked.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { join, relative } from 'node:path';
import { DEPLOY, REPO_ROOT, manifestsOf } from './deploy-support.ts';
import ts from 'typescript';
import { DYNAMIC, createScanner, type Component, type Need } from './deploy-rbac-scan.ts';
import { jsonPatch } from '../support/json6902.ts';
import { DEFAULT_EVENT_NAMESPACE } from '../../src/adapters/kube/events.ts';
import { DEFAULT_LEASE_NAMESPACE } from '../../src/adapters/kube/leases.ts';

const SRC = join(REPO_ROOT, 'src');

// ---------------------------------------------------------------- the grants

interface Rule {
  apiGroups: string[];
  resources: string[];
  verbs: string[];
  resourceNames?: string[];
}
interface Grant {
  rule: Rule;
  /** undefined: cluster-wide (ClusterRole through ClusterRoleBinding). */
  namespace?: string;
  source: string;
}

const RBAC_FILES = ['base/rbac-sync.yaml', 'base/rbac-agent.yaml'];
const rbac = RBAC_FILES.flatMap((f) => manifestsOf(f));

/**
 * Calls made only in a configuration the default install does not use, and the optional RBAC that covers them.
 * Keyed by the adapter function that makes the call.
 */
const CONDITIONAL: Record<string, { file: string; when: string }> = {
  applyTopology: {
    file: 'components/topology-status-object/rbac.yaml',
    when: 'a sync with a git or file source that keeps a Topology status object',
  },
};

function grantsFor(serviceAccount: string, extra: any[] = []): Grant[] {
  const objects = [...rbac, ...extra];
  const isSubject = (b: any): boolean =>
    (b.subjects ?? []).some((s: any) => s.kind === 'ServiceAccount' && s.name === serviceAccount && s.namespace === 'corvid-system');
  const out: Grant[] = [];
  for (const b of objects.filter((o) => o.kind === 'ClusterRoleBinding' || o.kind === 'RoleBinding')) {
    if (!isSubject(b)) continue;
    const role = objects.find(
      (o) => o.kind === b.roleRef.kind && o.metadata.name === b.roleRef.name && (o.kind === 'ClusterRole' || o.metadata.namespace === b.metadata.namespace),
    );
    assert.ok(role, `${b.kind} ${b.metadata.name}: its ${b.roleRef.kind} ${b.roleRef.name} is not in ${RBAC_FILES.join(', ')}`);
    for (const rule of role.rules as Rule[]) {
      out.push({ rule, namespace: b.kind === 'RoleBinding' ? b.metadata.namespace : undefined, source: `${role.kind} ${role.metadata.name}` });
    }
  }
  return out;
}

function allows(g: Grant, n: Pick<Need, 'group' | 'resource' | 'verb' | 'namespace' | 'name'>): boolean {
  // resourceNames grants a call on an object whose name is known before run time, and never list, watch or create.
  if (g.rule.resourceNames?.length && (n.name === undefined || !g.rule.resourceNames.includes(n.name))) return false;
  if (g.namespace !== undefined) {
    if (n.namespace === undefined) return false;
    if (n.namespace !== DYNAMIC && n.namespace !== g.namespace) return false;
  }
  return g.rule.apiGroups.includes(n.group) && g.rule.resources.includes(n.resource) && g.rule.verbs.includes(n.verb);
}

const SA: Record<Component, string> = { sync: 'corvid-sync', agent: 'corvid-agent' };
const scanner = createScanner(SRC);
const scan = scanner.scan;

describe('RBAC covers the API calls', () => {
  test('every API call in src/adapters/kube/ is understood', (t) => {
    assert.deepEqual(scan.problems, [], 'API calls the RBAC check cannot map');
    assert.ok(scan.needs.length >= 10, `only ${scan.needs.length} API calls found: is the scanner still finding kubeRequest calls?`);
    const kinds = new Set(scan.needs.map((n) => `${n.group}/${n.resource}`));
    t.diagnostic(`resources used: ${[...kinds].sort().join(' ')}`);
    for (const r of ['raven.openyurt.io/gateways', '/nodes', 'coordination.k8s.io/leases', 'events.k8s.io/events', 'corvid.dev/topologies/status']) {
      assert.ok(kinds.has(r), `the scan finds calls on ${r}`);
    }
  });

  for (const component of ['sync', 'agent'] as const) {
    test(`${component}: every call it can reach is granted to ServiceAccount ${SA[component]}`, (t) => {
      const { decls, entryFiles, missingSeeds } = scanner.reachable(component);
      assert.deepEqual(missingSeeds, [], `SEEDS.${component} names adapter functions that no longer exist`);
      t.diagnostic(`${component}: entry files ${entryFiles.map((f) => relative(SRC, f)).join(', ') || '(none yet; seeds only)'}`);
      const needs = scan.needs.filter((n) => scanner.within(n, decls));
      assert.ok(needs.length > 0, `${component}: no API call reached`);
      const grants = grantsFor(SA[component]);
      const conditionFor = (n: Need): (typeof CONDITIONAL)[string] | undefined => {
        const fn = n.decl && (ts.isFunctionDeclaration(n.decl) || ts.isClassDeclaration(n.decl)) ? n.decl.name?.text : undefined;
        return fn === undefined ? undefined : CONDITIONAL[fn];
      };
      const missing = needs.filter((n) => {
        const cond = conditionFor(n);
        if (cond === undefined) return !grants.some((g) => allows(g, n));
        // Covered by the optional component, not by the base.
        const withExtra = grantsFor(SA[component], manifestsOf(cond.file));
        if (grants.some((g) => allows(g, n))) return false;
        if (withExtra.some((g) => allows(g, n))) {
          t.diagnostic(`${n.verb} ${n.group}/${n.resource} (${n.where}): only for ${cond.when}, granted by deploy/${cond.file}`);
          return false;
        }
        return true;
      });
      assert.deepEqual(
        missing.map((n) => `${n.verb} ${n.group || 'core'}/${n.resource}${n.namespace ? ` in ${n.namespace}` : ''} (${n.where})`),
        [],
        `${SA[component]} lacks grants for calls it makes`,
      );
      // Grants no reached call uses: reported, not failed (the sync shell may still need them).
      const unused: string[] = [];
      for (const g of grants) {
        for (const group of g.rule.apiGroups) {
          for (const resource of g.rule.resources) {
            for (const verb of g.rule.verbs) {
              if (!needs.some((n) => n.group === group && n.resource === resource && n.verb === verb)) {
                unused.push(`${verb} ${group || 'core'}/${resource}${g.namespace ? ` in ${g.namespace}` : ''}`);
              }
            }
          }
        }
      }
      if (unused.length > 0) t.diagnostic(`${component}: granted but not used by reached code: ${unused.join(', ')}`);
    });
  }

  test('the namespaces the adapters default to are the namespaces of the Roles', () => {
    const syncEvents = grantsFor('corvid-sync').filter((g) => g.rule.resources.includes('events'));
    assert.deepEqual(syncEvents.map((g) => g.namespace), [DEFAULT_EVENT_NAMESPACE], 'Events Role namespace = DEFAULT_EVENT_NAMESPACE');
    const leaseGrants = (sa: string) => grantsFor(sa).filter((g) => g.rule.resources.includes('leases')).map((g) => `${g.namespace} ${[...g.rule.verbs].sort().join(',')}`).sort();
    // The heartbeats have their own namespace; the sync's leader Lease stays in the pods' namespace, out of the agents' reach.
    assert.deepEqual(leaseGrants('corvid-agent'), [`${DEFAULT_LEASE_NAMESPACE} create,get,patch,update`]);
    assert.deepEqual(leaseGrants('corvid-sync'), [`${DEFAULT_LEASE_NAMESPACE} get,list,watch`, 'corvid-system create,get,update']);
    const ds = manifestsOf('base/agent-daemonset.yaml')[0];
    const agent = ds.spec.template.spec.containers.find((c: { name: string }) => c.name === 'agent');
    assert.ok(agent.args.includes(`--lease-namespace=${DEFAULT_LEASE_NAMESPACE}`), 'the agent heartbeats where its Role is');
    assert.equal(ds.metadata.namespace, 'corvid-system');
    const sync = manifestsOf('base/sync-deployment.yaml')[0];
    assert.equal(sync.metadata.namespace, 'corvid-system');
    assert.ok(sync.spec.template.spec.containers[0].args.includes('--leader-election-namespace=$(POD_NAMESPACE)'), 'the leader Lease where the sync runs');
  });
});

/** Adapter functions only `--gateway-spec=apply` calls: the spec apply, its PUT fallback, and prune. */
const APPLY_MODE_ONLY = new Set(['applyGateway', 'replaceGateway', 'deleteGateway']);

describe('the gateway-spec-external component', () => {
  test('its reduced ClusterRole covers every call the sync makes in external mode, and only drops what apply mode uses', () => {
    const component = manifestsOf('components/gateway-spec-external/kustomization.yaml')[0];
    const rolePatch = component.patches.find((p: any) => p.target.kind === 'ClusterRole' && p.target.name === 'corvid-sync');
    const reduced = rbac.map((o) => (o.kind === 'ClusterRole' && o.metadata.name === 'corvid-sync' ? jsonPatch(o, parseYaml(rolePatch.patch)) : o));
    const grants = grantsFor('corvid-sync').filter((g) => g.source !== 'ClusterRole corvid-sync');
    for (const role of reduced.filter((o) => o.kind === 'ClusterRole' && o.metadata.name === 'corvid-sync')) {
      for (const rule of role.rules as Rule[]) grants.push({ rule, source: 'ClusterRole corvid-sync (reduced)' });
    }
    const { decls } = scanner.reachable('sync');
    const fn = (n: Need): string | undefined => (n.decl && ts.isFunctionDeclaration(n.decl) ? n.decl.name?.text : undefined);
    const needs = scan.needs.filter((n) => scanner.within(n, decls) && !APPLY_MODE_ONLY.has(fn(n) ?? '') && CONDITIONAL[fn(n) ?? ''] === undefined);
    const missing = needs.filter((n) => !grants.some((g) => allows(g, n))).map((n) => `${n.verb} ${n.group}/${n.resource} (${n.where})`);
    assert.deepEqual(missing, [], 'the reduced role lacks grants for external-mode calls');
    const gatewayVerbs = (r: Rule[]) => r.filter((x) => x.resources.includes('gateways')).flatMap((x) => x.verbs).sort();
    const before = gatewayVerbs(rbac.find((o) => o.kind === 'ClusterRole' && o.metadata.name === 'corvid-sync').rules);
    const after = gatewayVerbs(reduced.find((o) => o.kind === 'ClusterRole' && o.metadata.name === 'corvid-sync').rules);
    assert.deepEqual(before.filter((v) => !after.includes(v)), ['create', 'delete', 'update']);
  });
});

describe('RBAC is least privilege', () => {
  test('no wildcards, no Secrets, no writes to Nodes; Leases and Events only through namespaced Roles', () => {
    for (const role of rbac.filter((o) => o.kind === 'ClusterRole' || o.kind === 'Role')) {
      const id = `${role.kind} ${role.metadata.namespace ?? ''}/${role.metadata.name}`;
      for (const r of role.rules as Rule[]) {
        for (const field of ['apiGroups', 'resources', 'verbs'] as const) {
          assert.ok(!r[field].includes('*'), `${id}: wildcard in ${field}`);
        }
        assert.ok(!r.resources.some((x) => x.startsWith('secrets')), `${id}: grants Secrets`);
        assert.ok(!r.verbs.some((v) => ['escalate', 'bind', 'impersonate'].includes(v)), `${id}: privilege verbs`);
        if (r.resources.includes('nodes')) assert.deepEqual([...r.verbs].sort(), ['get', 'list', 'watch'], `${id}: Nodes read-only`);
        if (r.apiGroups.some((g) => g.endsWith('projectcalico.org'))) {
          assert.deepEqual(r.resources, ['blockaffinities'], `${id}: of Calico's resources only BlockAffinities`);
          assert.deepEqual([...r.verbs].sort(), ['get', 'list', 'watch'], `${id}: BlockAffinities read-only`);
        }
        if (role.kind === 'ClusterRole') {
          assert.ok(!r.resources.includes('leases') && !r.resources.includes('events'), `${id}: Leases/Events cluster-wide`);
        }
      }
    }
  });

  test('the agent can only read Gateways and keep its Lease', () => {
    const got = grantsFor('corvid-agent')
      .flatMap((g) => g.rule.apiGroups.flatMap((a) => g.rule.resources.flatMap((r) => g.rule.verbs.map((v) => `${g.namespace ?? '*'} ${a || 'core'}/${r} ${v}`))))
      .sort();
    assert.deepEqual(got, [
      '* raven.openyurt.io/gateways get', '* raven.openyurt.io/gateways list', '* raven.openyurt.io/gateways watch',
      'corvid-heartbeats coordination.k8s.io/leases create', 'corvid-heartbeats coordination.k8s.io/leases get',
      'corvid-heartbeats coordination.k8s.io/leases patch', 'corvid-heartbeats coordination.k8s.io/leases update',
    ]);
  });

  test('the optional components grant only what their conditional calls need', () => {
    for (const { file } of Object.values(CONDITIONAL)) {
      const rules = manifestsOf(file).filter((o) => o.kind === 'ClusterRole' || o.kind === 'Role').flatMap((r) => r.rules);
      assert.deepEqual(rules, [{ apiGroups: ['corvid.dev'], resources: ['topologies'], verbs: ['create', 'patch', 'update'] }], file);
    }
  });

  test('the ClusterRoles and Roles exist only in the files this test reads', () => {
    for (const f of ['base/serviceaccounts.yaml', 'base/sync-deployment.yaml', 'base/agent-daemonset.yaml', 'base/namespace.yaml']) {
      assert.ok(!manifestsOf(f).some((o) => /Role/.test(o.kind)), `${f} holds RBAC objects`);
    }
    assert.ok(existsSync(join(DEPLOY, 'base', 'rbac-sync.yaml')));
  });
});

describe('the RBAC scan itself', () => {
  test('maps client-node API methods, and fails on one it does not know; API discovery needs no grant', () => {
    // A scratch tree inside the repository (node_modules must resolve), removed afterwards.
    const root = join(REPO_ROOT, '.cache', `rbac-scan-${process.pid}`);
    const kube = join(root, 'src', 'adapters', 'kube');
    mkdirSync(kube, { recursive: true });
    try {
      // A stand-in for src/adapters/kube/client.ts: the scan recognises kubeRequest by name in the adapters folder.
      writeFileSync(join(kube, 'client.ts'), 'export async function kubeRequest(kc: unknown, req: { method: string; path: string }): Promise<unknown> {\n  return [kc, req];\n}\n');
      writeFileSync(
        join(kube, 'probe.ts'),
        [
          "import { CoordinationV1Api, CoreV1Api, CustomObjectsApi, type KubeConfig } from '@kubernetes/client-node';",
          "import { kubeRequest } from './client.ts';",
          'export async function probe(kc: KubeConfig): Promise<void> {',
          '  const core = kc.makeApiClient(CoreV1Api);',
          '  await core.listNode();',
          "  await core.readNamespacedSecret({ name: 's', namespace: 'corvid-system' });",
          '  const co = kc.makeApiClient(CoordinationV1Api);',
          "  await co.createNamespacedLease({ namespace: 'corvid-system', body: {} });",
          '  await co.listLeaseForAllNamespaces();',
          '  const cr = kc.makeApiClient(CustomObjectsApi);',
          "  await cr.patchClusterCustomObjectStatus({ group: 'raven.openyurt.io', version: 'v1beta1', plural: 'gateways', name: 'g', body: {} });",
          "  const gv: string = String(Math.random());",
          "  await kubeRequest(kc, { method: 'GET', path: `/apis/${gv}` });",
          "  await kubeRequest(kc, { method: 'GET', path: '/api/v1' });",
          "  await kubeRequest(kc, { method: 'GET', path: '/apis/example.com/v1/widgets' });",
          '}',
          '',
        ].join('\n'),
      );
      const { scan: s } = createScanner(join(root, 'src'));
      const got = s.needs.map((n) => `${n.verb} ${n.group || 'core'}/${n.resource}`).sort();
      assert.deepEqual(got, ['create coordination.k8s.io/leases', 'get core/secrets', 'list core/nodes', 'list example.com/widgets', 'patch raven.openyurt.io/gateways/status']);
      assert.equal(s.problems.length, 1, s.problems.join('\n'));
      assert.match(s.problems[0], /CoordinationV1Api\.listLeaseForAllNamespaces is not in the RBAC mapping/);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});
