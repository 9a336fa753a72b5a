// The core stays pure: every core folder (the topology language, the plan, the Gateway shape, the node plan, diff,
// graph, migration, the sync's reconcile decisions) imports no I/O module, no adapter or shell, and reads no clock.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';

const root = new URL('../../', import.meta.url);
const DIRS = ['src/plan', 'src/gateway', 'src/migrate', 'src/topology', 'src/nodeplan', 'src/diff', 'src/graph', 'src/reconcile'];
const ALLOWED_PACKAGES = new Set(['yaml', 'ajv/dist/2020.js']);
const CORE = /^(\.\/|\.\.\/(plan|gateway|topology|nodeplan|diff|graph|migrate|reconcile)\/)[\w./-]+\.ts$/;

function files(): { path: string; text: string }[] {
  return DIRS.flatMap((d) =>
    readdirSync(new URL(d, root))
      .filter((f) => f.endsWith('.ts'))
      .map((f) => ({ path: `${d}/${f}`, text: readFileSync(new URL(`${d}/${f}`, root), 'utf8') })),
  );
}

test('the core imports only the core and pure packages', () => {
  const bad: string[] = [];
  for (const { path, text } of files()) {
    for (const m of text.matchAll(/(?:^|\n)\s*(?:import|export)\b[^'"]*?from\s+['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)/g)) {
      const spec = m[1] ?? m[2];
      if (spec.startsWith('.')) {
        // The JSON Schemas under schemas/ are data (src/gateway/crd-check.ts compares a served CRD with Corvid's).
        const schema = /^\.\.\/\.\.\/schemas\/[\w.-]+\.json$/.test(spec);
        if (!CORE.test(spec) && !schema) bad.push(`${path}: ${spec}`);
      } else if (!ALLOWED_PACKAGES.has(spec)) bad.push(`${path}: ${spec}`);
    }
  }
  assert.deepEqual(bad, []);
});

test('the core never reads the clock', () => {
  const bad: string[] = [];
  for (const { path, text } of files()) {
    const code = text.replace(/\/\/.*$/gm, '').replace(/\/\*[\s\S]*?\*\//g, '');
    for (const re of [/Date\.now\s*\(/, /new Date\(\s*\)/, /performance\.now/, /process\.hrtime/, /Math\.random/]) {
      if (re.test(code)) bad.push(`${path}: ${re.source}`);
    }
  }
  assert.deepEqual(bad, []);
});
