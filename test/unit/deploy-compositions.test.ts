// Every documented composition of the example overlay and deploy/components renders a sync command the sync accepts:
// the container's args, with $(VAR) expanded as the kubelet expands them, go through parseFlags(FLAGS) and
// syncSettings, the two steps `corvid sync` takes before it looks for a cluster. A composition that crash-loops on its
// flags fails here. Rendered two ways: the components' JSON6902 patches applied here (runs everywhere), and
// `kubectl kustomize` where its kustomize has components, which must render the same container.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { parse as parseYaml, parseAllDocuments } from 'yaml';
import { DEPLOY, findObject, loadYamlFile, manifestsOf, which } from './deploy-support.ts';
import { jsonPatch, type PatchOp } from '../support/json6902.ts';
import { parseFlags } from '../../src/cli/flags.ts';
import { FLAGS, syncSettings, type SyncSettings } from '../../src/cli/commands/sync.ts';

interface Composition {
  /** Directories under deploy/components, in the order the overlay lists them. */
  components: string[];
  /** What the sync must then run as. */
  expect: (s: SyncSettings, objs: any[]) => void;
}

const cluster = (s: SyncSettings): void => {
  assert.equal(s.source.kind, 'cluster');
  assert.equal(s.gatewaySpec, 'apply');
};

// The compositions docs/install.md documents.
const DOCUMENTED: Record<string, Composition> = {
  'example (kustomize, Flux, corvid-topology.yaml)': { components: [], expect: cluster },
  'example + topology-status-object': { components: ['topology-status-object'], expect: cluster },
  'example + topology-status-object + gateway-spec-external (corvid-gateways.yaml)': {
    components: ['topology-status-object', 'gateway-spec-external'],
    expect: (s, objs) => {
      // The branch and file corvid-gateways.yaml renders, from the component's ConfigMap.
      const source = findObject(objs, 'ConfigMap', 'corvid-gateway-source').data;
      assert.deepEqual(s.source.kind === 'git' && { url: s.source.url, ref: s.source.ref, path: s.source.path }, {
        url: source.url,
        ref: { branch: source.branch },
        path: source.path,
      });
      assert.equal(s.gatewaySpec, 'external');
    },
  },
  'example + heartbeat-admission (Kubernetes 1.30+)': { components: ['heartbeat-admission'], expect: cluster },
  'example + topology-status-object + gateway-spec-external + heartbeat-admission': {
    components: ['topology-status-object', 'gateway-spec-external', 'heartbeat-admission'],
    expect: (s) => assert.equal(s.gatewaySpec, 'external'),
  },
};

/** The documented compositions, and the example overlay with each component not among them (new ones too). */
function compositions(): Record<string, Composition> {
  const out = { ...DOCUMENTED };
  const covered = new Set(Object.values(DOCUMENTED).flatMap((c) => c.components));
  for (const c of readdirSync(join(DEPLOY, 'components')).sort()) {
    if (covered.has(c) || !existsSync(join(DEPLOY, 'components', c, 'kustomization.yaml'))) continue;
    out[`example + ${c}`] = { components: [c], expect: () => {} };
  }
  return out;
}

const SYNC = { kind: 'Deployment', name: 'corvid-sync' };

/**
 * The sync Deployment and the ConfigMaps of the example overlay with `components`, as kustomize renders them, from
 * the manifests and the components' JSON6902 patches. Anything else that would reach the sync's command line fails
 * loudly: it is not emulated here.
 */
function renderHere(components: string[]): any[] {
  const overlay = loadYamlFile(join(DEPLOY, 'overlays', 'example', 'kustomization.yaml'))[0].obj;
  assert.deepEqual(overlay.resources, ['../../base'], 'the example overlay is the base');
  const extra = Object.keys(overlay).filter((k) => !['apiVersion', 'kind', 'resources', 'images'].includes(k));
  assert.deepEqual(extra, [], 'the example overlay changes nothing but images: anything more is not emulated here');
  let deployment = findObject(manifestsOf('base/sync-deployment.yaml'), SYNC.kind, SYNC.name);
  const configMaps: any[] = [];
  for (const c of components) {
    const dir = join(DEPLOY, 'components', c);
    const k = loadYamlFile(join(dir, 'kustomization.yaml'))[0].obj;
    for (const r of k.resources ?? []) configMaps.push(...manifestsOf(`components/${c}/${r}`).filter((o) => o.kind === 'ConfigMap'));
    for (const p of k.patches ?? []) {
      const body = parseYaml(p.patch ?? readFileSync(join(dir, p.path), 'utf8'));
      const where = `deploy/components/${c}: patch ${JSON.stringify(p.target ?? p.path)}`;
      if (Array.isArray(body)) {
        assert.ok(p.target?.kind, `${where}: a JSON6902 patch without target.kind is not emulated here`);
        if (p.target.kind === SYNC.kind && (p.target.name === undefined || p.target.name === SYNC.name)) {
          deployment = jsonPatch(deployment, body as PatchOp[]);
        }
      } else {
        assert.ok(!(body?.kind === SYNC.kind && body?.metadata?.name === SYNC.name), `${where}: a strategic-merge patch of the sync is not emulated here`);
      }
    }
  }
  return [deployment, ...configMaps];
}

/** kubectl, if its built-in kustomize says it has components (v3.7.0 and later), else why it is not used. */
function kubectlKustomize(): { kubectl: string } | { skip: string } {
  const kubectl = which('kubectl');
  if (kubectl === undefined) return { skip: 'kubectl not on PATH: install it to check these renderings against kustomize' };
  const r = spawnSync(kubectl, ['version', '--client', '-o', 'json'], { encoding: 'utf8', timeout: 30_000 });
  let version: string | undefined;
  try {
    version = JSON.parse(r.stdout).kustomizeVersion;
  } catch {
    version = undefined;
  }
  const [major, minor] = (version ?? '').replace(/^v/, '').split('.').map(Number);
  if (major > 3 || (major === 3 && minor >= 7)) return { kubectl };
  return { skip: `kubectl reports no kustomize with components (${version ?? 'no version'}): kubectl 1.24 or later checks these renderings against kustomize` };
}

function renderWithKubectl(kubectl: string, components: string[]): any[] {
  const dir = mkdtempSync(join(tmpdir(), 'corvid-composition-'));
  try {
    const overlay = join(dir, 'overlay');
    mkdirSync(overlay);
    const rel = (p: string) => JSON.stringify(relative(overlay, p));
    writeFileSync(
      join(overlay, 'kustomization.yaml'),
      `resources: [${rel(join(DEPLOY, 'overlays', 'example'))}]\ncomponents: [${components.map((c) => rel(join(DEPLOY, 'components', c))).join(', ')}]\n`,
    );
    const r = spawnSync(kubectl, ['kustomize', overlay], { encoding: 'utf8', timeout: 60_000 });
    assert.equal(r.status, 0, `kubectl kustomize, components ${components.join(', ')}:\n${r.stderr}`);
    return parseAllDocuments(r.stdout).map((d) => d.toJS());
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function syncContainer(objs: any[]): any {
  const pod = findObject(objs, SYNC.kind, SYNC.name).spec.template.spec;
  const c = pod.containers.find((x: { name: string }) => x.name === 'sync');
  assert.ok(c, 'the sync Deployment has a container named sync');
  // No command: the image's ENTRYPOINT (`tini -- corvid`) runs the args.
  assert.equal(c.command, undefined);
  return c;
}

/** The sync's args as the kubelet hands them over: $(VAR) of the container's env expanded, $$ for a literal $. */
function commandLine(objs: any[]): { args: string[]; env: Record<string, string> } {
  const deployment = findObject(objs, SYNC.kind, SYNC.name);
  const c = syncContainer(objs);
  const downward: Record<string, string> = { 'metadata.name': 'corvid-sync-5d8f7c9b4-x2x7q', 'metadata.namespace': deployment.metadata.namespace };
  const env: Record<string, string> = {};
  for (const e of c.env ?? []) {
    const field = e.valueFrom?.fieldRef?.fieldPath;
    const ref = e.valueFrom?.configMapKeyRef;
    if (e.value !== undefined) env[e.name] = e.value;
    else if (field !== undefined && field in downward) env[e.name] = downward[field];
    else if (ref !== undefined) {
      const cm = objs.find((o) => o.kind === 'ConfigMap' && o.metadata.name === ref.name);
      assert.ok(cm?.data?.[ref.key] !== undefined, `env ${e.name}: ConfigMap ${ref.name} with key ${ref.key} is rendered too`);
      env[e.name] = cm.data[ref.key];
    } else assert.fail(`env ${e.name}: ${JSON.stringify(e.valueFrom)} is not emulated here`);
  }
  const args = (c.args as string[]).map((a) => a.replace(/\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g, (m, v?: string) => (v === undefined ? '$' : (env[v] ?? m))));
  for (const a of args) assert.ok(!a.includes('$('), `unexpanded variable in ${a}`);
  return { args, env };
}

/** What `corvid sync` makes of the rendered command line, or the usage error it would exit with. */
function settingsOf(objs: any[]): SyncSettings {
  const { args, env } = commandLine(objs);
  assert.equal(args[0], 'sync');
  const parsed = parseFlags(args.slice(1), FLAGS);
  assert.ok(parsed.ok, `corvid ${args.join(' ')}: ${parsed.ok ? '' : parsed.message}`);
  assert.equal(parsed.help, false);
  try {
    return syncSettings(parsed.values, env);
  } catch (e) {
    assert.fail(`corvid ${args.join(' ')}: ${(e as Error).message}`);
  }
}

describe('every documented composition renders a sync command the sync accepts', () => {
  for (const [name, composition] of Object.entries(compositions())) {
    test(name, () => {
      const objs = renderHere(composition.components);
      composition.expect(settingsOf(objs), objs);
    });
  }

  const kustomize = kubectlKustomize();
  test('kubectl kustomize renders each the same', { skip: 'skip' in kustomize ? kustomize.skip : undefined }, () => {
    assert.ok('kubectl' in kustomize);
    for (const [name, composition] of Object.entries(compositions())) {
      const rendered = renderWithKubectl(kustomize.kubectl, composition.components);
      const [there, here] = [syncContainer(rendered), syncContainer(renderHere(composition.components))];
      assert.deepEqual({ args: there.args, env: there.env }, { args: here.args, env: here.env }, `${name}: the same sync container`);
      composition.expect(settingsOf(rendered), rendered);
    }
  });

  test('the combination the sync refuses is refused here too: --gateway-spec=external with --source=cluster', () => {
    const base = findObject(manifestsOf('base/sync-deployment.yaml'), SYNC.kind, SYNC.name);
    const external = jsonPatch(base, [{ op: 'add', path: '/spec/template/spec/containers/0/args/-', value: '--gateway-spec=external' }]);
    assert.throws(() => settingsOf([external]), /--gateway-spec=external needs --source=git or file/);
  });
});
