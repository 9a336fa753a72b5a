import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { corvid, EXAMPLE, EXAMPLE_NODES, golden, REPO } from './cli-support.ts';

function gatewaysOf(stdout: string): { kind: string; apiVersion: string; metadata: { name: string; annotations: Record<string, string> }; status?: unknown }[] {
  const docs = parseAllDocuments(stdout);
  for (const d of docs) assert.deepEqual(d.errors, []);
  return docs.map((d) => d.toJS());
}

test('render prints nothing but Gateway manifests, one per pool, deterministically', async () => {
  const r = await corvid(['render', '-f', EXAMPLE, '--nodes', EXAMPLE_NODES]);
  assert.equal(r.code, 0, r.stderr);
  const docs = gatewaysOf(r.stdout);
  assert.deepEqual(docs.map((d) => d.metadata.name), ['cloud', 'factory-lyon', 'store-berlin', 'warehouse-oslo']);
  for (const d of docs) {
    assert.equal(d.kind, 'Gateway');
    assert.equal(d.apiVersion, 'raven.openyurt.io/v1beta1');
    assert.match(d.metadata.annotations['corvid.dev/revision'], /^sha256:[0-9a-f]{64}$/);
  }
  assert.equal((await corvid(['render', '-f', EXAMPLE, '--nodes', EXAMPLE_NODES])).stdout, r.stdout);
  golden('render-example-nodes.yaml', r.stdout);
});

test('render without nodes: specs only, no status, a note on stderr', async () => {
  const r = await corvid(['render', '-f', EXAMPLE]);
  assert.equal(r.code, 0, r.stderr);
  const docs = gatewaysOf(r.stdout);
  assert.equal(docs.length, 4);
  assert.ok(docs.every((d) => d.status === undefined));
  assert.match(r.stderr, /specs only/);
  golden('render-example-specs.yaml', r.stdout);
});

test('render without nodes gives the spec the sync writes: every declared gateway as an endpoint', async () => {
  const bare = gatewaysOf((await corvid(['render', '-f', EXAMPLE])).stdout) as unknown as { spec: { endpoints: { nodeName: string }[] } }[];
  const synced = gatewaysOf((await corvid(['render', '-f', EXAMPLE, '--nodes', EXAMPLE_NODES])).stdout) as unknown as { spec: unknown }[];
  assert.deepEqual(bare.map((d) => d.spec), synced.map((d) => d.spec));
  assert.deepEqual(bare[0].spec.endpoints.map((e) => e.nodeName), ['cloud-gw-1', 'cloud-gw-2']);
});

test('--revision is written to every Gateway and changes nothing else', async () => {
  const a = await corvid(['render', '-f', EXAMPLE, '--revision', 'main@sha1:0123456789abcdef0123456789abcdef01234567']);
  const b = await corvid(['render', '-f', EXAMPLE]);
  assert.equal(a.code, 0);
  assert.ok(gatewaysOf(a.stdout).every((d) => d.metadata.annotations['corvid.dev/revision'] === 'main@sha1:0123456789abcdef0123456789abcdef01234567'));
  assert.equal(a.stdout.replace(/corvid\.dev\/revision: .*/g, ''), b.stdout.replace(/corvid\.dev\/revision: .*/g, ''));
});

test('a broken topology fails loudly: non-zero, empty stdout, file:line:col errors on stderr', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'corvid-render-'));
  try {
    const bad = join(dir, 'bad.yaml');
    writeFileSync(bad, 'apiVersion: corvid.dev/v1alpha1\nkind: Topology\nmetadata: {name: x}\nspec:\n  pools: 3\n');
    const r = await corvid(['render', '-f', bad]);
    assert.notEqual(r.code, 0);
    assert.equal(r.stdout, '');
    assert.match(r.stderr, new RegExp(`${bad.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:5:\\d+: spec\\.pools`));
    writeFileSync(bad, 'spec: [unclosed\n');
    const y = await corvid(['render', '-f', bad]);
    assert.notEqual(y.code, 0);
    assert.equal(y.stdout, '');
    assert.match(y.stderr, /bad\.yaml:\d+:\d+: /);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('usage errors and unreadable inputs: exit 2, nothing on stdout, a hint', async () => {
  const noFile = await corvid(['render']);
  assert.equal(noFile.code, 2);
  assert.equal(noFile.stdout, '');
  assert.match(noFile.stderr, /-f FILE/);
  const unknown = await corvid(['render', '-f', EXAMPLE, '--bogus']);
  assert.equal(unknown.code, 2);
  assert.match(unknown.stderr, /unknown flag '--bogus'.*\n.*--help/);
  const missing = await corvid(['render', '-f', 'does/not/exist.yaml']);
  assert.equal(missing.code, 2);
  assert.equal(missing.stdout, '');
  assert.match(missing.stderr, /topology file does\/not\/exist\.yaml does not exist/);
  const badNodes = await corvid(['render', '-f', EXAMPLE, '--nodes', EXAMPLE]);
  assert.equal(badNodes.code, 2);
  assert.equal(badNodes.stdout, '');
  assert.match(badNodes.stderr, /kubectl get nodes -o yaml/);
});

test('--help explains and shows examples, on stdout, exit 0', async () => {
  for (const cmd of ['render', 'diff', 'graph', 'status']) {
    const r = await corvid([cmd, '--help']);
    assert.equal(r.code, 0);
    assert.match(r.stdout, new RegExp(`^Usage: corvid ${cmd}`));
    assert.match(r.stdout, /Examples:\n  corvid /);
  }
});

test('the real binary prints only manifests on stdout (as an Argo CD CMP runs it)', () => {
  const r = spawnSync('npx', ['node', join(REPO, 'bin', 'corvid.js'), 'render', '-f', EXAMPLE, '--revision', 'sha1:abc'], {
    cwd: REPO,
    encoding: 'utf8',
    env: { ...process.env, CORVID_NOW: '2026-11-20T10:00:00Z' },
  });
  assert.equal(r.status, 0, r.stderr);
  const docs = gatewaysOf(r.stdout);
  assert.equal(docs.length, 4);
  assert.ok(docs.every((d) => d.kind === 'Gateway'));
  const broken = spawnSync('npx', ['node', join(REPO, 'bin', 'corvid.js'), 'render', '-f', join(REPO, 'package.json')], { cwd: REPO, encoding: 'utf8' });
  assert.notEqual(broken.status, 0);
  assert.equal(broken.stdout, '');
});

test('render --nodes: invalid podCIDRs in the snapshot are errors (named, bounded), reach no Gateway, and the exit is non-zero with an empty stdout', async () => {
  const { readFileSync, writeFileSync, mkdtempSync, rmSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const dir = mkdtempSync(join(tmpdir(), 'corvid-render-'));
  try {
    const bad = readFileSync(EXAMPLE_NODES, 'utf8')
      .replace(/podCIDR: 10\.[0-9.]+\/24/, 'podCIDR: garbage')
      .replace(/- 10\.[0-9.]+\/24/, `- 0.0.0.0/0`);
    const file = join(dir, 'nodes.yaml');
    writeFileSync(file, bad);
    const r = await corvid(['render', '-f', EXAMPLE, '--nodes', file]);
    assert.notEqual(r.code, 0);
    assert.equal(r.stdout, '');
    assert.match(r.stderr, /error: node cloud-gw-1: podCIDR "0\.0\.0\.0\/0" is wider than \/8; left out \[invalid-pod-cidr\]/);
    assert.match(r.stderr, /nothing printed/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
