import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { corvid, EXAMPLE, EXAMPLE_NODES, golden } from './cli-support.ts';

test('graph -f with a snapshot: SVG golden, active gateways highlighted', async () => {
  const r = await corvid(['graph', '-f', EXAMPLE, '--nodes', EXAMPLE_NODES]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^<svg xmlns="http:\/\/www\.w3\.org\/2000\/svg"/);
  for (const pool of ['cloud', 'factory-lyon', 'store-berlin', 'warehouse-oslo']) assert.ok(r.stdout.includes(`id="pool-${pool}"`));
  assert.match(r.stdout, /font-weight="bold">berlin-gw-b<\/text>/, 'the elected gateway is bold');
  assert.match(r.stdout, /factory-lyon ↔ store-berlin: denied by a connectivity rule/);
  golden('graph-example-nodes.svg', r.stdout);
});

test('graph formats: dot and mermaid by flag or by -o extension', async () => {
  const dot = await corvid(['graph', '-f', EXAMPLE, '--nodes', EXAMPLE_NODES, '--format', 'dot']);
  assert.equal(dot.code, 0);
  assert.match(dot.stdout, /^graph "edge-network" \{/);
  golden('graph-example-nodes.dot', dot.stdout);
  const mmd = await corvid(['graph', '-f', EXAMPLE, '--nodes', EXAMPLE_NODES, '--format', 'mermaid']);
  assert.match(mmd.stdout, /^flowchart LR\n/);
  golden('graph-example-nodes.mmd', mmd.stdout);
  const dir = mkdtempSync(join(tmpdir(), 'corvid-graph-'));
  try {
    const out = join(dir, 'net.mmd');
    const w = await corvid(['graph', '-f', EXAMPLE, '-o', out]);
    assert.equal(w.code, 0);
    assert.equal(w.stdout, '');
    assert.match(readFileSync(out, 'utf8'), /^flowchart LR/);
    assert.match(w.stderr, /wrote .*net\.mmd \(mermaid, 4 pools\)/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('graph without election (no snapshot) shows every gateway as a candidate', async () => {
  const r = await corvid(['graph', '-f', EXAMPLE]);
  assert.equal(r.code, 0);
  assert.doesNotMatch(r.stdout, />active<\/text>/);
  assert.match(r.stdout, />candidate<\/text>/);
});

test('graph errors: no input, both --nodes and --live, no cluster for --live, broken topology', async () => {
  const none = await corvid(['graph']);
  assert.equal(none.code, 2);
  assert.match(none.stderr, /-f FILE\) or --live/);
  const both = await corvid(['graph', '--live', '--nodes', EXAMPLE_NODES]);
  assert.equal(both.code, 2);
  const live = await corvid(['graph', '--live']);
  assert.equal(live.code, 2);
  assert.match(live.stderr, /set --kubeconfig or KUBECONFIG, or drop --live/);
  const broken = await corvid(['graph', '-f', 'package.json']);
  assert.equal(broken.code, 2);
  assert.equal(broken.stdout, '');
  const format = await corvid(['graph', '-f', EXAMPLE, '--format', 'png']);
  assert.equal(format.code, 2);
  assert.match(format.stderr, /--format must be one of svg, dot, mermaid/);
});
