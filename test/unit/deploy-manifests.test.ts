// deploy/: every manifest parses and names itself; the workloads carry the settings the design depends on;
// kustomize renders every entry point (when kubectl is installed). The image itself: deploy-image.test.ts.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { DEFAULT_WIREGUARD_KEY_FILE } from '../../src/cli/commands/agent.ts';
import {
  DEPLOY,
  REPO_ROOT,
  deployManifests,
  findObject,
  isKustomizeFile,
  loadYamlFile,
  manifestsOf,
  missingCrdFiles,
  which,
  yamlFiles,
} from './deploy-support.ts';

const VERSION = (JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string }).version;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/;

describe('deploy/ manifests', () => {
  test('every YAML file parses, and every object has apiVersion, kind and metadata.name', () => {
    const all = deployManifests();
    assert.ok(all.length > 20, `only ${all.length} documents under deploy/`);
    for (const { file, doc, obj } of all) {
      const where = `${file} document ${doc + 1}`;
      assert.equal(typeof obj, 'object', `${where}: not a mapping`);
      // `builtin`: kustomize's own transformer configurations (base/namespace-transformer.yaml).
      assert.match(String(obj.apiVersion ?? ''), /^(([a-z0-9.-]+\/)?v\d+((alpha|beta)\d+)?|builtin)$/, `${where}: apiVersion`);
      assert.match(String(obj.kind ?? ''), /^[A-Z][A-Za-z]+$/, `${where}: kind`);
      assert.equal(typeof obj.metadata?.name, 'string', `${where}: metadata.name`);
      assert.match(obj.metadata.name, DNS_SUBDOMAIN, `${where}: metadata.name "${obj.metadata.name}"`);
      if (obj.metadata.namespace !== undefined) assert.match(obj.metadata.namespace, DNS_SUBDOMAIN, `${where}: namespace`);
    }
  });

  test('every path a kustomization.yaml names exists (the CRD files excepted until they land)', (t) => {
    const missingCrds = new Set(missingCrdFiles().map((f) => join(DEPLOY, 'crds', f)));
    for (const k of yamlFiles(DEPLOY).filter(isKustomizeFile)) {
      const obj = loadYamlFile(k)[0].obj;
      const dir = dirname(k);
      assert.match(obj.kind, /^(Kustomization|Component)$/, `${relative(REPO_ROOT, k)}: kind`);
      const paths: string[] = [
        ...(obj.resources ?? []),
        ...(obj.components ?? []),
        ...(obj.transformers ?? []),
        ...(obj.patches ?? []).map((p: { path?: string }) => p.path).filter(Boolean),
        ...(obj.configMapGenerator ?? []).flatMap((g: { files?: string[] }) => g.files ?? []),
      ];
      for (const p of paths) {
        if (/^https?:\/\//.test(p)) continue;
        const abs = join(dir, p.replace(/^[^=]+=/, ''));
        if (missingCrds.has(abs)) {
          t.diagnostic(`not there yet: ${relative(REPO_ROOT, abs)}`);
          continue;
        }
        assert.ok(existsSync(abs), `${relative(REPO_ROOT, k)} names ${p}, which does not exist`);
      }
    }
  });

  test('deploy/crds/kustomization.yaml lists the two CRDs by their agreed names', () => {
    const k = loadYamlFile(join(DEPLOY, 'crds', 'kustomization.yaml'))[0].obj;
    assert.deepEqual([...k.resources].sort(), ['gateway.yaml', 'topology.yaml']);
  });
});

describe('deploy/base', () => {
  const sa = manifestsOf('base/serviceaccounts.yaml');
  const deployment = manifestsOf('base/sync-deployment.yaml')[0];
  const daemonset = manifestsOf('base/agent-daemonset.yaml')[0];

  test('namespace corvid-system and the two ServiceAccounts', () => {
    const ns = manifestsOf('base/namespace.yaml')[0];
    assert.equal(ns.kind, 'Namespace');
    assert.equal(ns.metadata.name, 'corvid-system');
    // The agent needs hostNetwork and NET_ADMIN: only the privileged Pod Security level admits it.
    assert.equal(ns.metadata.labels['pod-security.kubernetes.io/enforce'], 'privileged');
    for (const name of ['corvid-sync', 'corvid-agent']) {
      assert.equal(findObject(sa, 'ServiceAccount', name).metadata.namespace, 'corvid-system');
    }
    const kz = loadYamlFile(join(DEPLOY, 'base', 'kustomization.yaml'))[0].obj;
    assert.ok(kz.resources.includes('../crds'), 'base includes ../crds');
    const nsTransformer = manifestsOf('base/namespace-transformer.yaml')[0];
    assert.equal(nsTransformer.metadata.namespace, 'corvid-system');
    assert.equal(nsTransformer.unsetOnly, true);
  });

  test('sync Deployment: 2 replicas, leader election, probes, metrics port, locked-down container', () => {
    assert.equal(deployment.kind, 'Deployment');
    assert.equal(deployment.spec.replicas, 2);
    const pod = deployment.spec.template.spec;
    assert.equal(pod.serviceAccountName, 'corvid-sync');
    assert.equal(pod.securityContext.runAsNonRoot, true);
    assert.notEqual(pod.securityContext.runAsUser, 0);
    assert.equal(pod.hostNetwork, undefined);
    const [c] = pod.containers;
    assert.equal(pod.containers.length, 1);
    assert.equal(c.args[0], 'sync');
    assert.ok(c.args.includes('--leader-elect'), 'leader election on');
    assert.ok(c.args.some((a: string) => a.startsWith('--leader-election-namespace=')));
    assert.deepEqual(
      c.ports.find((p: { name: string }) => p.name === 'metrics'),
      { name: 'metrics', containerPort: 8080, protocol: 'TCP' },
    );
    assert.ok(c.args.includes('--metrics-bind-address=:8080'));
    assert.equal(c.livenessProbe.httpGet.path, '/healthz');
    assert.equal(c.readinessProbe.httpGet.path, '/readyz');
    const healthPort = c.ports.find((p: { name: string }) => p.name === c.livenessProbe.httpGet.port);
    assert.ok(healthPort, 'liveness probe port is a named container port');
    assert.ok(c.args.includes(`--health-probe-bind-address=:${healthPort.containerPort}`));
    assert.deepEqual(c.securityContext, {
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      capabilities: { drop: ['ALL'] },
    });
    assert.ok(c.resources.requests.cpu && c.resources.requests.memory && c.resources.limits.memory);
    const env = Object.fromEntries(c.env.map((e: { name: string; valueFrom?: any }) => [e.name, e.valueFrom?.fieldRef?.fieldPath]));
    assert.equal(env.POD_NAMESPACE, 'metadata.namespace');
    // No Secret of any kind reaches the sync.
    assert.ok(!JSON.stringify(pod).includes('secret'), 'the sync pod mounts or references no Secret');
  });

  test('agent DaemonSet: host network, charon sidecar on a shared VICI socket, least capabilities, PSK files', () => {
    assert.equal(daemonset.kind, 'DaemonSet');
    const pod = daemonset.spec.template.spec;
    assert.equal(pod.serviceAccountName, 'corvid-agent');
    assert.equal(pod.hostNetwork, true);
    assert.equal(pod.dnsPolicy, 'ClusterFirstWithHostNet');
    assert.deepEqual(pod.tolerations, [{ operator: 'Exists' }], 'runs on every node, whatever its taints');
    const agent = pod.containers.find((c: { name: string }) => c.name === 'agent');
    const charon = pod.containers.find((c: { name: string }) => c.name === 'charon');
    assert.ok(agent && charon);
    assert.equal(pod.containers.length, 2);

    assert.equal(agent.args[0], 'agent');
    const nodeName = agent.env.find((e: { name: string }) => e.name === 'NODE_NAME');
    assert.deepEqual(nodeName.valueFrom, { fieldRef: { fieldPath: 'spec.nodeName' } });

    // Capabilities: exactly what each process needs (see the comment at the top of the manifest).
    assert.deepEqual(agent.securityContext.capabilities, { drop: ['ALL'], add: ['NET_ADMIN'] });
    assert.deepEqual(charon.securityContext.capabilities, { drop: ['ALL'], add: ['NET_ADMIN', 'NET_BIND_SERVICE'] });
    for (const c of [agent, charon]) {
      assert.equal(c.securityContext.allowPrivilegeEscalation, false, `${c.name}: no privilege escalation`);
      assert.equal(c.securityContext.readOnlyRootFilesystem, true, `${c.name}: read-only root`);
      assert.equal(c.securityContext.privileged, undefined, `${c.name}: not privileged`);
    }

    // The VICI socket: one emptyDir, mounted at the same path in both containers, and the agent is told that path.
    const vici = pod.volumes.find((v: { name: string }) => v.name === 'vici');
    assert.ok(vici.emptyDir, 'vici is an emptyDir');
    const viciMount = (c: any): string => c.volumeMounts.find((m: { name: string }) => m.name === 'vici').mountPath;
    assert.equal(viciMount(agent), viciMount(charon));
    const socketFlag = agent.args.find((a: string) => a.startsWith('--vici-socket='));
    assert.equal(dirname(socketFlag.slice('--vici-socket='.length)), viciMount(agent));
    const conf = readFileSync(join(DEPLOY, 'charon', 'strongswan.conf'), 'utf8');
    assert.match(conf, new RegExp(`socket = unix://${socketFlag.slice('--vici-socket='.length)}\\n`));
    for (const probe of [charon.readinessProbe, charon.livenessProbe]) {
      assert.ok(probe.exec.command.includes(`unix://${socketFlag.slice('--vici-socket='.length)}`));
    }
    // charon writes /run/charon.pid: /run must be writable despite the read-only root.
    const charonRun = charon.volumeMounts.find((m: { mountPath: string }) => m.mountPath === '/run');
    assert.ok(pod.volumes.find((v: { name: string }) => v.name === charonRun.name).emptyDir);
    assert.equal(charon.command[0], '/usr/lib/ipsec/charon');
    const strongswanConf = charon.env.find((e: { name: string }) => e.name === 'STRONGSWAN_CONF').value;
    const confMount = charon.volumeMounts.find((m: { name: string }) => m.name === 'charon-config');
    assert.equal(strongswanConf, `${confMount.mountPath}/strongswan.conf`);

    // PSK: Secret corvid-psk as files under /etc/corvid/secrets/corvid-psk/, in the agent only.
    const pskVolume = pod.volumes.find((v: any) => v.secret?.secretName === 'corvid-psk');
    assert.ok(pskVolume, 'Secret corvid-psk is a volume');
    const pskMount = agent.volumeMounts.find((m: { name: string }) => m.name === pskVolume.name);
    assert.equal(pskMount.mountPath, '/etc/corvid/secrets/corvid-psk');
    assert.equal(pskMount.readOnly, true);
    assert.ok(agent.args.includes('--secret-dir=/etc/corvid/secrets'));
    assert.equal(pskVolume.secret.defaultMode, 0o400, 'mode 0400, written in decimal: YAML 1.1 and 1.2 read a leading 0 differently');
    assert.ok(!charon.volumeMounts.some((m: { name: string }) => m.name === pskVolume.name), 'charon never sees the PSK');
  });

  test('agent DaemonSet: WireGuard key in a hostPath that outlives reboots, TUN device and socket directory for wireguard-go', () => {
    const pod = daemonset.spec.template.spec;
    const agent = pod.containers.find((c: { name: string }) => c.name === 'agent');
    const charon = pod.containers.find((c: { name: string }) => c.name === 'charon');
    const volume = (name: string): any => pod.volumes.find((v: { name: string }) => v.name === name);
    const mountOf = (c: any, path: string): any => c.volumeMounts.find((m: { mountPath: string }) => m.mountPath === path);

    // The key file the agent uses (the flag, else its default) lies in a hostPath mounted at the same path, not under
    // /run (gone at reboot) and not in the state directory's volume.
    const flag = agent.args.find((a: string) => a.startsWith('--wireguard-key-file='));
    const keyFile = flag === undefined ? DEFAULT_WIREGUARD_KEY_FILE : flag.slice('--wireguard-key-file='.length);
    assert.equal(keyFile, DEFAULT_WIREGUARD_KEY_FILE, 'the manifest keeps the documented default');
    const keyMount = mountOf(agent, dirname(keyFile));
    assert.ok(keyMount, `${dirname(keyFile)} is mounted in the agent`);
    assert.notEqual(keyMount.readOnly, true, 'the agent creates the key there once');
    assert.deepEqual(volume(keyMount.name).hostPath, { path: dirname(keyFile), type: 'DirectoryOrCreate' });
    assert.ok(!volume(keyMount.name).hostPath.path.startsWith('/run/'), 'the key must survive a reboot');
    assert.ok(!agent.args.includes('--wireguard=off'), 'WireGuard is on');

    // wireguard-go: /dev/net/tun from the node, and a writable /run/wireguard (its control socket; wg looks there).
    const tun = mountOf(agent, '/dev/net/tun');
    assert.ok(tun, '/dev/net/tun is mounted in the agent');
    assert.deepEqual(volume(tun.name).hostPath, { path: '/dev/net/tun', type: 'CharDevice' });
    const sockets = mountOf(agent, '/run/wireguard');
    assert.ok(sockets && volume(sockets.name).emptyDir, '/run/wireguard is an emptyDir');

    // Only the agent sees any of it; nothing in the pod is privileged for it.
    for (const m of [keyMount, tun, sockets]) {
      assert.ok(!charon.volumeMounts.some((x: { name: string }) => x.name === m.name), `charon does not mount ${m.name}`);
    }
    assert.deepEqual(agent.securityContext.capabilities.add, ['NET_ADMIN']);
  });

  test('strongswan.conf loads kernel ESP and no plugin that needs NET_RAW', () => {
    const conf = readFileSync(join(DEPLOY, 'charon', 'strongswan.conf'), 'utf8');
    const load = /^\s*load = (.*)$/m.exec(conf)?.[1].split(/\s+/) ?? [];
    assert.ok(load.includes('kernel-netlink') && load.includes('socket-default') && load.includes('vici'));
    assert.ok(load.includes('kdf'), 'kdf is required for key derivation');
    for (const raw of ['socket-raw', 'dhcp', 'farp', 'kernel-libipsec']) assert.ok(!load.includes(raw), `${raw} not loaded`);
    assert.match(conf, /load_modular = no/);
  });

  test('every container names the image `corvid`, whose tag deploy/image sets', () => {
    const images = [
      ...deployment.spec.template.spec.containers,
      ...daemonset.spec.template.spec.containers,
      ...manifestsOf('argocd/repo-server-patch.yaml')[0].spec.template.spec.containers,
    ].map((c: { image: string }) => c.image);
    for (const image of images) assert.equal(image, 'corvid');
    // The rendered images, the package version and the build script's list: test/unit/deploy-image.test.ts.
  });
});

// ---------------------------------------------------------------- kustomize

const KUBECTL = which('kubectl');

/** A copy of deploy/ where CRD files not written yet are replaced by minimal CRDs with their agreed names. */
function deployCopy(): { dir: string; stubbed: string[]; cleanup: () => void } {
  const root = mkdtempSync(join(tmpdir(), 'corvid-deploy-'));
  cpSync(DEPLOY, join(root, 'deploy'), { recursive: true });
  const stubs: Record<string, [string, string, string, string]> = {
    'gateway.yaml': ['raven.openyurt.io', 'Gateway', 'gateways', 'v1beta1'],
    'topology.yaml': ['corvid.dev', 'Topology', 'topologies', 'v1alpha1'],
  };
  const stubbed = missingCrdFiles();
  for (const f of stubbed) {
    const [group, kind, plural, version] = stubs[f] ?? ['example.com', 'Thing', f.replace(/\W/g, ''), 'v1'];
    writeFileSync(
      join(root, 'deploy', 'crds', f),
      `apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: ${plural}.${group}\n` +
        `spec:\n  group: ${group}\n  scope: Cluster\n  names: {kind: ${kind}, plural: ${plural}}\n` +
        `  versions: [{name: ${version}, served: true, storage: true, schema: {openAPIV3Schema: {type: object}}}]\n`,
    );
  }
  return { dir: join(root, 'deploy'), stubbed, cleanup: () => rmSync(root, { recursive: true, force: true }) };
}

function kustomize(dir: string): any[] {
  const r = spawnSync(KUBECTL!, ['kustomize', dir], { encoding: 'utf8', timeout: 60_000 });
  assert.equal(r.status, 0, `kubectl kustomize ${dir}:\n${r.stderr}`);
  return parseAllDocuments(r.stdout).map((d) => d.toJS());
}

describe('kustomize renders', { skip: KUBECTL ? undefined : 'kubectl not on PATH: install kubectl to render the kustomizations' }, () => {
  test('base and the example overlay: namespaces, image, generated ConfigMap reference', (t) => {
    const copy = deployCopy();
    try {
      if (copy.stubbed.length > 0) t.diagnostic(`CRDs not there yet, rendered with stubs: ${copy.stubbed.join(', ')}`);
      for (const entry of ['base', 'overlays/example']) {
        const objs = kustomize(join(copy.dir, entry));
        const kinds = objs.map((o) => o.kind);
        for (const k of ['Namespace', 'CustomResourceDefinition', 'ServiceAccount', 'ClusterRole', 'Role', 'Deployment', 'DaemonSet', 'ConfigMap']) {
          assert.ok(kinds.includes(k), `${entry}: renders a ${k}`);
        }
        assert.equal(objs.filter((o) => o.kind === 'CustomResourceDefinition').length, 2);
        for (const o of objs) {
          const clusterScoped = ['Namespace', 'CustomResourceDefinition', 'ClusterRole', 'ClusterRoleBinding'].includes(o.kind);
          if (clusterScoped) {
            assert.equal(o.metadata.namespace, undefined, `${o.kind}/${o.metadata.name} is cluster-scoped`);
          } else if (o.metadata.name === 'corvid-sync-events') {
            // Events about cluster-scoped objects live in the namespace the recorder writes to (see rbac test).
            assert.notEqual(o.metadata.namespace, 'corvid-system');
          } else if (['Role', 'RoleBinding'].includes(o.kind) && o.metadata.namespace === 'corvid-heartbeats') {
            // The heartbeat Leases' namespace: the agent's only Lease grant, and the sync's read of it.
            assert.ok(['corvid-agent', 'corvid-sync-heartbeats'].includes(o.metadata.name), `${o.kind}/${o.metadata.name} in corvid-heartbeats`);
          } else {
            assert.equal(o.metadata.namespace, 'corvid-system', `${o.kind}/${o.metadata.name}`);
          }
          assert.equal(o.metadata.labels?.['app.kubernetes.io/part-of'], 'corvid', `${o.kind}/${o.metadata.name} label`);
        }
        const ds = objs.find((o) => o.kind === 'DaemonSet');
        const cm = objs.find((o) => o.kind === 'ConfigMap' && o.metadata.name.startsWith('corvid-charon-'));
        assert.ok(cm, 'ConfigMap corvid-charon-<hash>');
        assert.equal(cm.data['strongswan.conf'], readFileSync(join(DEPLOY, 'charon', 'strongswan.conf'), 'utf8'));
        const vol = ds.spec.template.spec.volumes.find((v: { name: string }) => v.name === 'charon-config');
        assert.equal(vol.configMap.name, cm.metadata.name, 'the DaemonSet mounts the hashed ConfigMap');
        const images = [...ds.spec.template.spec.containers, ...objs.find((o) => o.kind === 'Deployment').spec.template.spec.containers].map(
          (c: { image: string }) => c.image,
        );
        const expected = entry === 'base' ? `corvid:${VERSION}` : `registry.example.com/corvid/corvid:${VERSION}`;
        for (const i of images) assert.equal(i, expected, entry);
      }
    } finally {
      copy.cleanup();
    }
  });

  /** The base with one component, rendered in a copy of deploy/ (an overlay written next to the others). */
  function baseWith(component: string): any[] {
    const copy = deployCopy();
    try {
      const dir = join(copy.dir, 'overlays', `with-${component}`);
      mkdirSync(dir);
      writeFileSync(join(dir, 'kustomization.yaml'), `resources: [../../base]\ncomponents: [../../components/${component}]\n`);
      return kustomize(dir);
    } finally {
      copy.cleanup();
    }
  }

  test('an overlay with the topology-status-object component', () => {
    const objs = baseWith('topology-status-object');
    const binding = objs.find((o) => o.kind === 'ClusterRoleBinding' && o.metadata.name === 'corvid-sync-topology-writer');
    assert.deepEqual(binding.subjects, [{ kind: 'ServiceAccount', name: 'corvid-sync', namespace: 'corvid-system' }]);
    assert.ok(objs.some((o) => o.kind === 'ClusterRole' && o.metadata.name === 'corvid-sync-topology-writer'));
  });

  test('an overlay with the openyurt-rollout component: yurt-manager rolls the agents out (OnDelete, AdvancedRollingUpdate, one at a time)', () => {
    const agent = findObject(baseWith('openyurt-rollout'), 'DaemonSet', 'corvid-agent');
    assert.deepEqual(agent.spec.updateStrategy, { type: 'OnDelete' }, 'no rollingUpdate left beside OnDelete');
    assert.equal(agent.metadata.annotations['apps.openyurt.io/update-strategy'], 'AdvancedRollingUpdate');
    assert.equal(agent.metadata.annotations['apps.openyurt.io/max-unavailable'], '1');
  });

  test('an overlay with the gateway-spec-external component: the flag, and no create/update/delete on gateways', () => {
    const objs = baseWith('gateway-spec-external');
    const sync = findObject(objs, 'Deployment', 'corvid-sync').spec.template.spec.containers.find((c: { name: string }) => c.name === 'sync');
    assert.equal(sync.args.at(-1), '--gateway-spec=external');
    const role = objs.find((o) => o.kind === 'ClusterRole' && o.metadata.name === 'corvid-sync');
    const verbs = (resource: string) => role.rules.find((r: { resources: string[] }) => r.resources.includes(resource)).verbs;
    assert.deepEqual(verbs('gateways'), ['get', 'list', 'watch', 'patch']);
    assert.deepEqual(verbs('gateways/status'), ['patch', 'update']);
  });

  test('gateway-spec-external follows the branch and file the corvid-gateways Application renders', () => {
    const cm = findObject(manifestsOf('components/gateway-spec-external/source.yaml'), 'ConfigMap', 'corvid-gateway-source');
    const app = manifestsOf('argocd/apps/corvid-gateways.yaml')[0];
    const topology = app.spec.source.plugin.env.find((e: { name: string }) => e.name === 'TOPOLOGY').value;
    assert.deepEqual(cm.data, { url: app.spec.source.repoURL, branch: app.spec.source.targetRevision, path: `${app.spec.source.path}/${topology}` });
  });

  test('flux and the Argo CD Applications', () => {
    const flux = kustomize(join(DEPLOY, 'flux'));
    assert.deepEqual(flux.map((o) => o.kind).sort(), ['GitRepository', 'Kustomization', 'Kustomization']);
    const apps = kustomize(join(DEPLOY, 'argocd', 'apps'));
    assert.ok(apps.every((o) => o.kind === 'Application' && o.metadata.namespace === 'argocd'));
  });

  test('the Argo CD component patches an Argo CD install', () => {
    // A stand-in for Argo CD's install.yaml: the two objects the component patches, as Argo CD ships them.
    const dir = mkdtempSync(join(tmpdir(), 'corvid-argocd-'));
    try {
      writeFileSync(
        join(dir, 'install.yaml'),
        [
          'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: argocd-cm, namespace: argocd}\ndata: {url: "https://argocd.example"}',
          'apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: argocd-repo-server, namespace: argocd}\nspec:\n' +
            '  selector: {matchLabels: {app.kubernetes.io/name: argocd-repo-server}}\n  template:\n' +
            '    metadata: {labels: {app.kubernetes.io/name: argocd-repo-server}}\n    spec:\n' +
            '      containers: [{name: argocd-repo-server, image: quay.io/argoproj/argocd}]\n' +
            '      volumes: [{name: var-files, emptyDir: {}}, {name: plugins, emptyDir: {}}]',
        ].join('\n---\n'),
      );
      writeFileSync(
        join(dir, 'kustomization.yaml'),
        `resources: [install.yaml]\ncomponents: [${JSON.stringify(relative(dir, join(DEPLOY, 'argocd')))}]\n`,
      );
      const objs = kustomize(dir);
      const cm = objs.find((o) => o.kind === 'ConfigMap' && o.metadata.name === 'argocd-cm');
      assert.equal(cm.data.url, 'https://argocd.example', 'the patch merges, it does not replace');
      assert.ok(cm.data['resource.customizations.health.raven.openyurt.io_Gateway']);
      assert.ok(cm.data['resource.customizations.health.corvid.dev_Topology']);
      const plugin = objs.find((o) => o.kind === 'ConfigMap' && o.metadata.name.startsWith('corvid-cmp-plugin-'));
      assert.equal(plugin.metadata.namespace, 'argocd');
      const repo = objs.find((o) => o.kind === 'Deployment');
      const names = repo.spec.template.spec.containers.map((c: { name: string }) => c.name);
      assert.ok(names.includes('corvid-cmp') && names.includes('argocd-repo-server'));
      const vol = repo.spec.template.spec.volumes.find((v: { name: string }) => v.name === 'corvid-cmp-plugin');
      assert.equal(vol.configMap.name, plugin.metadata.name);
      assert.equal(repo.spec.template.spec.volumes.length, 4, 'the install volumes are kept');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
