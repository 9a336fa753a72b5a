import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { corvid, EXAMPLE, EXAMPLE_NODES, golden } from './cli-support.ts';
import { compareGateways, externalDiffFileName, mergedObject } from '../../src/cli/commands/diff.ts';
import type { Gateway } from '../../src/gateway/types.ts';

function gw(name: string, extra: Partial<Gateway['metadata']> = {}, nodeName = 'n1'): Gateway {
  return {
    apiVersion: 'raven.openyurt.io/v1beta1',
    kind: 'Gateway',
    metadata: {
      name,
      labels: { 'app.kubernetes.io/managed-by': 'corvid', 'corvid.dev/topology': 't', 'corvid.dev/pool': name },
      annotations: { 'corvid.dev/peers': '["*"]' },
      ...extra,
    },
    spec: { endpoints: [{ nodeName, type: 'tunnel', port: 4500 }], tunnelConfig: { Replicas: 1 } },
    status: { activeEndpoints: [{ nodeName, type: 'tunnel', port: 4500 }] },
  };
}

test('compare: server fields and others\' labels/annotations are not differences', () => {
  const live = gw('a', {
    resourceVersion: '42',
    uid: 'u',
    generation: 3,
    creationTimestamp: '2026-01-01T00:00:00Z',
    labels: { 'app.kubernetes.io/managed-by': 'corvid', 'corvid.dev/topology': 't', 'corvid.dev/pool': 'a', team: 'net' },
    annotations: { 'corvid.dev/peers': '["*"]', 'kubectl.kubernetes.io/last-applied-configuration': '{}' },
  });
  (live.metadata as unknown as Record<string, unknown>).managedFields = [{ manager: 'corvid-sync' }];
  assert.deepEqual(compareGateways([live], [gw('a')]), []);
  const merged = mergedObject(gw('a'), live);
  assert.equal(merged.metadata.labels?.team, 'net');
  assert.equal(merged.metadata.resourceVersion, undefined);
});

test('compare: create, update and delete, with diff -u headers naming the object', () => {
  const changed = gw('b', {}, 'n2');
  const out = compareGateways([gw('b'), gw('c')], [changed, gw('a')]);
  assert.deepEqual(out.map((o) => [o.name, o.action]), [['a', 'create'], ['b', 'update'], ['c', 'delete']]);
  const b = out.find((o) => o.name === 'b')!;
  assert.match(b.diff, /^--- live\/gateway\/b\n\+\+\+ merged\/gateway\/b\n@@ /);
  assert.match(b.diff, /^-    - nodeName: n1$/m);
  assert.match(b.diff, /^\+    - nodeName: n2$/m);
  assert.match(out[0].diff, /^@@ -0,0 \+1,\d+ @@$/m);
  assert.match(out[2].diff, /^@@ -1,\d+ \+0,0 @@$/m);
  assert.equal(externalDiffFileName('b'), 'raven.openyurt.io.v1beta1.Gateway..b');
});

test('offline diff (--nodes, no cluster): everything is a create, exit 1, text golden', async () => {
  const r = await corvid(['diff', '-f', EXAMPLE, '--nodes', EXAMPLE_NODES]);
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stdout, /^--- live\/gateway\/cloud\n\+\+\+ merged\/gateway\/cloud\n/m);
  assert.match(r.stdout, /Gateways: 4 to create/);
  assert.match(r.stdout, /Impact:\n  pools added \(4\): cloud, factory-lyon, store-berlin, warehouse-oslo/);
  assert.doesNotMatch(r.stdout, /\x1b\[/, 'no colour when stdout is not a TTY');
  golden('diff-example-offline.txt', r.stdout);
  const tty = await corvid(['diff', '-f', EXAMPLE, '--nodes', EXAMPLE_NODES], {}, { tty: true });
  assert.match(tty.stdout, /\x1b\[32m\+apiVersion/);
  const noColour = await corvid(['diff', '-f', EXAMPLE, '--nodes', EXAMPLE_NODES], { NO_COLOR: '1' }, { tty: true });
  assert.doesNotMatch(noColour.stdout, /\x1b\[/);
});

test('diff -o json: {changed, objects[{name, action, diff}], impact}', async () => {
  const r = await corvid(['diff', '-f', EXAMPLE, '--nodes', EXAMPLE_NODES, '-o', 'json']);
  assert.equal(r.code, 1);
  const j = JSON.parse(r.stdout);
  assert.equal(j.changed, true);
  assert.deepEqual(j.objects.map((o: { name: string; action: string }) => `${o.name}:${o.action}`), ['cloud:create', 'factory-lyon:create', 'store-berlin:create', 'warehouse-oslo:create']);
  assert.match(j.objects[0].diff, /^--- live\/gateway\/cloud/);
  assert.deepEqual(j.impact.poolsAdded, ['cloud', 'factory-lyon', 'store-berlin', 'warehouse-oslo']);
  assert.equal(j.impact.tunnelsAfter, 5);
  assert.deepEqual(j.impact.connectivityLost, []);
});

test('KUBECTL_EXTERNAL_DIFF: LIVE and MERGED dirs, output passed through, its exit status', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'corvid-extdiff-'));
  try {
    const script = join(dir, 'fake-diff');
    writeFileSync(
      script,
      '#!/bin/sh\n# Arguments: [flags...] LIVE MERGED\nfor a in "$@"; do echo "arg: $a"; done\nfor d in "$3" "$4"; do echo "dir $(basename "$d" | cut -d- -f1):"; ls "$d"; done\nexit "${FAKE_EXIT:-1}"\n',
    );
    chmodSync(script, 0o755);
    const r = await corvid(['diff', '-f', EXAMPLE, '--nodes', EXAMPLE_NODES], { KUBECTL_EXTERNAL_DIFF: `${script} -u -N` });
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stdout, /^arg: -u\narg: -N\narg: .*\/LIVE-[^/\n]+\narg: .*\/MERGED-[^/\n]+\n/);
    assert.match(r.stdout, /dir LIVE:\ndir MERGED:\nraven\.openyurt\.io\.v1beta1\.Gateway\.\.cloud\nraven\.openyurt\.io\.v1beta1\.Gateway\.\.factory-lyon\n/);
    assert.doesNotMatch(r.stdout, /^\+\+\+ /m, 'our own diff is not printed');
    assert.match(r.stderr, /Impact:/);
    const same = await corvid(['diff', '-f', EXAMPLE, '--nodes', EXAMPLE_NODES], { KUBECTL_EXTERNAL_DIFF: script, FAKE_EXIT: '0' });
    assert.equal(same.code, 0);
    const broken = await corvid(['diff', '-f', EXAMPLE, '--nodes', EXAMPLE_NODES], { KUBECTL_EXTERNAL_DIFF: script, FAKE_EXIT: '3' });
    assert.equal(broken.code, 3);
    const missing = await corvid(['diff', '-f', EXAMPLE, '--nodes', EXAMPLE_NODES], { KUBECTL_EXTERNAL_DIFF: join(dir, 'no-such-program') });
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /cannot run KUBECTL_EXTERNAL_DIFF program .*ENOENT/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('diff errors exit >1 and say what to do', async () => {
  const noCluster = await corvid(['diff', '-f', EXAMPLE]);
  assert.equal(noCluster.code, 2);
  assert.match(noCluster.stderr, /set --kubeconfig or KUBECONFIG, or pass --nodes to work offline/);
  const badKc = await corvid(['diff', '-f', EXAMPLE, '--kubeconfig', '/nonexistent/kubeconfig']);
  assert.equal(badKc.code, 2);
  assert.match(badKc.stderr, /cannot load kubeconfig/);
  const badTopology = await corvid(['diff', '-f', 'package.json', '--nodes', EXAMPLE_NODES]);
  assert.equal(badTopology.code, 2);
  assert.equal(badTopology.stdout, '');
  const badOutput = await corvid(['diff', '-f', EXAMPLE, '-o', 'yaml']);
  assert.equal(badOutput.code, 2);
  assert.match(badOutput.stderr, /--output must be one of text, json/);
});
