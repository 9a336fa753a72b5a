// Golden files: the normalised output (plus warnings, tunnels with their effective encryption, and every pair's
// route) of topology/example.yaml and each topology/examples/*.yaml. UPDATE_GOLDEN=1 rewrites them.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { formatTopologyError, linkPolicy, loadTopology } from '../../src/topology/index.ts';
import { pairRoute, tunnelPairs } from '../../src/topology/policy.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const GOLDEN = join(ROOT, 'test/golden/topology');
const FILES = [
  'topology/example.yaml',
  ...readdirSync(join(ROOT, 'topology/examples'))
    .filter((f) => f.endsWith('.yaml'))
    .sort()
    .map((f) => `topology/examples/${f}`),
];

/** The golden text of one topology file. */
export function goldenOf(file: string): string {
  const r = loadTopology(readFileSync(join(ROOT, file), 'utf8'), file);
  if (!r.ok) assert.fail(`${file} is invalid:\n${r.errors.map(formatTopologyError).join('\n')}`);
  const t = r.topology;
  const names = t.pools.map((p) => p.name);
  const routes: Record<string, unknown> = {};
  for (let i = 0; i < names.length; i++) for (let j = i + 1; j < names.length; j++) routes[`${names[i]} <-> ${names[j]}`] = pairRoute(t, names[i], names[j]);
  const tunnels = tunnelPairs(t).map((pools) => ({ pools, encryption: linkPolicy(t, pools[0], pools[1]) }));
  return `${JSON.stringify({ topology: t, warnings: r.warnings.map(formatTopologyError), tunnels, routes }, null, 2)}\n`;
}

describe('topology golden files', () => {
  for (const file of FILES) {
    it(file, () => {
      const golden = join(GOLDEN, `${basename(file, '.yaml')}.json`);
      const got = goldenOf(file);
      if (process.env.UPDATE_GOLDEN === '1') writeFileSync(golden, got);
      let want: string;
      try {
        want = readFileSync(golden, 'utf8');
      } catch {
        assert.fail(`missing ${golden}; run with UPDATE_GOLDEN=1 to create it`);
      }
      assert.equal(got, want, `${file} no longer normalises to ${golden}; if intended, run with UPDATE_GOLDEN=1`);
    });
  }

  it('is stable: loading twice gives the same text', () => {
    for (const file of FILES) assert.equal(goldenOf(file), goldenOf(file));
  });
});
