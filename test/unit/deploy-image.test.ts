// The image: one name and tag (deploy/image/image-tag.yaml) for every container kustomize renders, the package
// version as the tag, and a build script (deploy/image/build.sh) that installs what the manifests run.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { DEPLOY, REPO_ROOT, manifestsOf, missingCrdFiles, which } from './deploy-support.ts';

const VERSION = (JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string }).version;
const TAG = manifestsOf('image/image-tag.yaml')[0];
const IMAGE = `${TAG.imageTag.newName}:${TAG.imageTag.newTag}`;
const BUILD = readFileSync(join(DEPLOY, 'image', 'build.sh'), 'utf8');
/** deploy/image/packages without comments. */
const PACKAGES = readFileSync(join(DEPLOY, 'image', 'packages'), 'utf8')
  .split('\n')
  .map((l) => l.replace(/#.*/, '').trim())
  .filter((l) => l !== '');

interface Container {
  name: string;
  image: string;
  command?: string[];
  env?: Array<{ name: string; value?: string }>;
  readinessProbe?: { exec?: { command: string[] } };
}

/** Every container and init container of every pod template (or pod) in `objs`. */
function containersOf(objs: any[]): Array<{ where: string; c: Container }> {
  return objs.flatMap((o) => {
    const spec = o?.spec?.template?.spec ?? o?.spec?.jobTemplate?.spec?.template?.spec ?? (o?.kind === 'Pod' ? o.spec : undefined);
    if (spec === undefined) return [];
    return [...(spec.initContainers ?? []), ...(spec.containers ?? [])].map((c: Container) => ({ where: `${o.kind}/${o.metadata?.name} ${c.name}`, c }));
  });
}

const KUBECTL = which('kubectl');
function kustomize(dir: string): any[] {
  const r = spawnSync(KUBECTL!, ['kustomize', dir], { encoding: 'utf8', timeout: 60_000 });
  assert.equal(r.status, 0, `kubectl kustomize ${dir}:\n${r.stderr}`);
  return parseAllDocuments(r.stdout).map((d) => d.toJS());
}

describe('the image name and tag', () => {
  test('set once, in deploy/image/image-tag.yaml: corvid at the package version', () => {
    assert.equal(TAG.kind, 'ImageTagTransformer');
    assert.equal(TAG.imageTag.name, 'corvid');
    assert.equal(IMAGE, `corvid:${VERSION}`);
    for (const k of ['base/kustomization.yaml', 'argocd/kustomization.yaml']) {
      assert.ok(manifestsOf(k)[0].transformers?.includes('../image'), `${k} lists ../image under transformers`);
    }
    // The example overlay moves the image to a registry, and leaves the tag to deploy/image.
    const overlay = manifestsOf('overlays/example/kustomization.yaml')[0];
    assert.deepEqual(overlay.images.map((i: { name: string }) => i.name), ['corvid']);
    assert.equal(overlay.images[0].newTag, undefined, 'the overlay does not repeat the tag');
  });

  test('no manifest under deploy/ names a tag of its own', () => {
    const files = ['base/sync-deployment.yaml', 'base/agent-daemonset.yaml', 'argocd/repo-server-patch.yaml'];
    const found = files.flatMap((f) => containersOf(manifestsOf(f)).map((x) => ({ ...x, where: `${f}: ${x.where}` })));
    assert.ok(found.length >= 4, `${found.length} containers`);
    for (const { where, c } of found) assert.equal(c.image, 'corvid', where);
  });

  describe('rendered', { skip: KUBECTL ? undefined : 'kubectl not on PATH: install kubectl to render the kustomizations' }, () => {
    test('deploy/base and the example overlay: every container runs the one image', (t) => {
      if (missingCrdFiles().length > 0) return t.skip(`CRD files not there yet: ${missingCrdFiles().join(', ')}`);
      const base = containersOf(kustomize(join(DEPLOY, 'base')));
      assert.deepEqual(base.map((x) => x.c.name).sort(), ['agent', 'charon', 'sync']);
      for (const { where, c } of base) assert.equal(c.image, IMAGE, where);
      const overlay = containersOf(kustomize(join(DEPLOY, 'overlays', 'example')));
      for (const { where, c } of overlay) assert.equal(c.image, `registry.example.com/corvid/${IMAGE}`, where);
    });

    test('the Argo CD component: the corvid-cmp sidecar runs the same image, Argo CD keeps its own', () => {
      const dir = mkdtempSync(join(tmpdir(), 'corvid-image-argocd-'));
      try {
        writeFileSync(
          join(dir, 'install.yaml'),
          'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: argocd-cm, namespace: argocd}\n---\n' +
            'apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: argocd-repo-server, namespace: argocd}\nspec:\n' +
            '  selector: {matchLabels: {app: r}}\n  template:\n    metadata: {labels: {app: r}}\n    spec:\n' +
            '      containers: [{name: argocd-repo-server, image: quay.io/argoproj/argocd:v3.1.0}]\n' +
            '      volumes: [{name: var-files, emptyDir: {}}, {name: plugins, emptyDir: {}}]\n',
        );
        writeFileSync(join(dir, 'kustomization.yaml'), `resources: [install.yaml]\ncomponents: [${JSON.stringify(relative(dir, join(DEPLOY, 'argocd')))}]\n`);
        const images = Object.fromEntries(containersOf(kustomize(dir)).map(({ c }) => [c.name, c.image]));
        assert.deepEqual(images, { 'argocd-repo-server': 'quay.io/argoproj/argocd:v3.1.0', 'corvid-cmp': IMAGE });
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });
  });
});

describe('deploy/image/build.sh', () => {
  const daemonset = manifestsOf('base/agent-daemonset.yaml')[0];
  const charon: Container = daemonset.spec.template.spec.containers.find((c: Container) => c.name === 'charon');

  test('builds the image the manifests name, from the tag file', () => {
    assert.match(BUILD, /^set -euo pipefail$/m);
    assert.match(BUILD, /TAG_FILE="\$REPO\/deploy\/image\/image-tag\.yaml"/);
    assert.match(BUILD, /umoci new --image "\$LAYOUT:\$IMAGE_TAG"/);
  });

  test('the packages: charon and swanctl, the datapath tools, WireGuard, tini, git with ssh and gpg', () => {
    for (const pkg of ['strongswan-charon', 'strongswan-swanctl', 'libcharon-extra-plugins', 'iproute2', 'nftables', 'wireguard-tools', 'wireguard-go', 'tini', 'git', 'openssh-client', 'gpg', 'ca-certificates']) {
      assert.ok(PACKAGES.includes(pkg), pkg);
    }
    assert.deepEqual(PACKAGES, [...new Set(PACKAGES)], 'no package twice');
    for (const p of PACKAGES) assert.match(p, /^[a-z0-9][a-z0-9+.-]+$/, `a Debian package name: ${p}`);
    assert.match(BUILD, /--variant=apt/);
    assert.match(BUILD, /APT::Install-Recommends "false"/);
  });

  test('Node from the pinned npm package, production dependencies only, the app outside node_modules', () => {
    const lock = JSON.parse(readFileSync(join(REPO_ROOT, 'package-lock.json'), 'utf8'));
    assert.match(lock.packages['node_modules/node'].version, /^24\./, 'the node devDependency pins Node 24');
    assert.match(BUILD, /NODE_BIN="\$REPO\/node_modules\/node\/bin\/node"/);
    assert.match(BUILD, /npm ci --omit=dev --ignore-scripts/);
    assert.match(BUILD, /APP="\$ROOTFS\/opt\/corvid"/);
  });

  test('what the containers run: entrypoint tini -- corvid, a non-root user, charon and its config where the DaemonSet looks', () => {
    const entry = [...BUILD.matchAll(/--config\.entrypoint[ =](\S+)/g)].map((m) => m[1]);
    assert.deepEqual(entry, ['tini', '--', 'corvid']);
    assert.match(BUILD, /--config\.user 65532:65532/);
    const sync = manifestsOf('base/sync-deployment.yaml')[0].spec.template.spec;
    assert.equal(sync.securityContext.runAsUser, 65532, 'the sync runs as the image user');
    assert.equal(charon.command?.[0], '/usr/lib/ipsec/charon', 'from strongswan-charon');
    const conf = charon.env?.find((e) => e.name === 'STRONGSWAN_CONF')?.value;
    assert.match(BUILD, new RegExp(`--config\\.env STRONGSWAN_CONF=${conf}\\b`));
    assert.match(BUILD, new RegExp(`deploy/charon/strongswan\\.conf" "\\$ROOTFS${conf}"`));
    assert.equal(charon.readinessProbe?.exec?.command[0], 'swanctl', 'from strongswan-swanctl');
  });

  test('the sources it copies are what the CLI imports: bin, src, schemas', () => {
    assert.match(BUILD, /git ls-files --cached --others --exclude-standard -- bin src schemas/);
    const main = readFileSync(join(REPO_ROOT, 'bin', 'corvid.js'), 'utf8');
    assert.match(main, /'..\/src\/cli\/main\.ts'/, 'from a clone, bin/corvid.js runs src/');
  });
});

describe('docs/install.md, "The image"', () => {
  const doc = readFileSync(join(REPO_ROOT, 'docs', 'install.md'), 'utf8');
  const start = doc.indexOf('\n## The image\n');
  const section = doc.slice(start, doc.indexOf('\n## ', start + 1));

  test('says how to build, push and point kustomize at the image the manifests name', () => {
    assert.ok(start >= 0, 'a section "## The image"');
    assert.match(section, /deploy\/image\/build\.sh/);
    assert.ok(section.includes(`skopeo copy oci:./corvid-image:${TAG.imageTag.newTag} docker://`), 'skopeo copy to a registry, with the tag');
    assert.match(section, /kustomize edit set image corvid=/);
    assert.ok(section.includes(`\`${IMAGE}\``), `names ${IMAGE}`);
    for (const pkg of PACKAGES.filter((p) => !p.startsWith('lib'))) assert.ok(section.includes(`\`${pkg}\``), `lists ${pkg}`);
  });
});
