// Offline render/diff with Calico IPAM: BlockAffinity items in the --nodes stream (kubectl get blockaffinities -o
// yaml appended to kubectl get nodes -o yaml) give the subnets, as the sync would; --pod-subnets overrides.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { corvid, EXAMPLE, EXAMPLE_NODES } from './cli-support.ts';
import { parseSnapshot } from '../../src/cli/inputs.ts';

const BLOCKS = `---
apiVersion: v1
kind: List
items:
- apiVersion: crd.projectcalico.org/v1
  kind: BlockAffinity
  metadata: {name: cloud-gw-1-192-168-0-0-26}
  spec: {cidr: 192.168.0.0/26, node: cloud-gw-1, state: confirmed, deleted: "false", type: host}
- apiVersion: crd.projectcalico.org/v1
  kind: BlockAffinity
  metadata: {name: cloud-gw-1-192-168-0-64-26}
  spec: {cidr: 192.168.0.64/26, node: cloud-gw-1, state: confirmed, deleted: "false", type: host}
- apiVersion: crd.projectcalico.org/v1
  kind: BlockAffinity
  metadata: {name: cloud-gw-2-192-168-1-0-26}
  spec: {cidr: 192.168.1.0/26, node: cloud-gw-2, state: pending, deleted: "false", type: host}
---
apiVersion: projectcalico.org/v3
kind: BlockAffinity
metadata: {name: cloud-gw-2-fd00-1--122}
spec: {cidr: "fd00:1::/122", node: cloud-gw-2, state: confirmed, deleted: false, type: host}
`;

function withSnapshot(extra: string, fn: (file: string) => Promise<void>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'corvid-cli-calico-'));
  const file = join(dir, 'snapshot.yaml');
  writeFileSync(file, readFileSync(EXAMPLE_NODES, 'utf8') + extra);
  return fn(file).finally(() => rmSync(dir, { recursive: true, force: true }));
}

function cloudSubnets(stdout: string): Record<string, string[]> {
  const cloud = parseAllDocuments(stdout).map((d) => d.toJS()).find((g) => g.metadata.name === 'cloud');
  return Object.fromEntries(cloud.status.nodes.map((n: { nodeName: string; subnets: string[] }) => [n.nodeName, n.subnets]));
}

test('a snapshot with BlockAffinities: the served groups are the ones its items carry', () => {
  const snap = parseSnapshot(readFileSync(EXAMPLE_NODES, 'utf8') + BLOCKS);
  assert.deepEqual(snap.calico.served, ['crd.projectcalico.org/v1', 'projectcalico.org/v3']);
  assert.equal(snap.calico.blockAffinities.length, 4);
  assert.ok(snap.nodes.length > 0);
  assert.deepEqual(parseSnapshot(readFileSync(EXAMPLE_NODES, 'utf8')).calico, { served: [], blockAffinities: [] });
});

test('render --nodes with BlockAffinities publishes the blocks (auto), says so on stderr; --pod-subnets=podCIDR keeps podCIDRs', async () => {
  await withSnapshot(BLOCKS, async (file) => {
    const r = await corvid(['render', '-f', EXAMPLE, '--nodes', file]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(cloudSubnets(r.stdout), { 'cloud-gw-1': ['192.168.0.0/25'], 'cloud-gw-2': ['fd00:1::/122'], 'cloud-worker-1': [] });
    assert.match(r.stderr, /pod subnets: calico \(auto: Calico BlockAffinities found/);

    const p = await corvid(['render', '-f', EXAMPLE, '--nodes', file, '--pod-subnets=podCIDR']);
    assert.equal(p.code, 0, p.stderr);
    assert.deepEqual(Object.keys(cloudSubnets(p.stdout)), ['cloud-gw-1', 'cloud-gw-2', 'cloud-worker-1']);
    assert.match(cloudSubnets(p.stdout)['cloud-gw-1'][0], /^10\.244\./);
    assert.match(p.stderr, /pod subnets: podCIDR \(--pod-subnets=podCIDR/);

    const bad = await corvid(['render', '-f', EXAMPLE, '--nodes', file, '--pod-subnets=cilium']);
    assert.equal(bad.code, 2);
    assert.equal(bad.stdout, '');
  });
});

test('render --nodes without BlockAffinities is unchanged (podCIDRs)', async () => {
  const r = await corvid(['render', '-f', EXAMPLE, '--nodes', EXAMPLE_NODES]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(cloudSubnets(r.stdout)['cloud-gw-1'][0], /^10\.244\./);
  assert.match(r.stderr, /pod subnets: podCIDR \(auto: the cluster serves no Calico BlockAffinity resource\)/);
});

test('diff --nodes with BlockAffinities plans the blocks; a malformed one is a finding on stderr', async () => {
  const broken = `${BLOCKS}---
apiVersion: crd.projectcalico.org/v1
kind: BlockAffinity
metadata: {name: broken}
spec: {cidr: 192.168.9.1/26, node: cloud-gw-1, state: confirmed, deleted: "false"}
`;
  await withSnapshot(broken, async (file) => {
    const r = await corvid(['diff', '-f', EXAMPLE, '--nodes', file, '-o', 'json']);
    assert.equal(r.code, 1, r.stderr);
    const json = JSON.parse(r.stdout) as { objects: { name: string; diff: string }[] };
    assert.match(json.objects.find((o) => o.name === 'cloud')!.diff, /\+ {8}- 192\.168\.0\.0\/25/);
    assert.match(r.stderr, /BlockAffinity broken: spec\.cidr 192\.168\.9\.1\/26 has host bits set; ignored \[calico-block-invalid\]/);
  });
});
