// The core stays pure: src/plan, src/gateway and src/migrate import no I/O module, no adapter or shell, and read no
// clock.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';

const root = new URL('../../', import.meta.url);
const DIRS = ['src/plan', 'src/gateway', 'src/migrate'];
const ALLOWED_PACKAGES = new Set(['yaml']);

function files(): { path: string; text: string }[] {
  return DIRS.flatMap((d) =>
    readdirSync(new URL(d, root))
      .filter((f) => f.endsWith('.ts'))
      .map((f) => ({ path: `${d}/${f}`, text: readFileSync(new URL(`${d}/${f}`, root), 'utf8') })),
  );
}

test('src/plan, src/gateway and src/migrate import only the core and pure packages', () => {
  const bad: string[] = [];
  for (const { path, text } of files()) {
    for (const m of text.matchAll(/(?:^|\n)\s*(?:import|export)\b[^'"]*?from\s+['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)/g)) {
      const spec = m[1] ?? m[2];
      if (spec.startsWith('.')) {
        // The core's one prefix parser lives in src/nodeplan/cidr.ts (pure); the planner may use it, not the rest.
        // The JSON Schemas under schemas/ are data (src/gateway/crd-check.ts compares a served CRD with Corvid's).
        const schema = /^\.\.\/\.\.\/schemas\/[\w.-]+\.json$/.test(spec);
        if (!/^(\.\/|\.\.\/(plan|gateway|topology)\/)[\w./-]+\.ts$/.test(spec) && spec !== '../nodeplan/cidr.ts' && !schema) bad.push(`${path}: ${spec}`);
      } else if (!ALLOWED_PACKAGES.has(spec)) bad.push(`${path}: ${spec}`);
    }
  }
  assert.deepEqual(bad, []);
});

test('src/plan, src/gateway and src/migrate never read the clock', () => {
  const bad: string[] = [];
  for (const { path, text } of files()) {
    const code = text.replace(/\/\/.*$/gm, '').replace(/\/\*[\s\S]*?\*\//g, '');
    for (const re of [/Date\.now\s*\(/, /new Date\(\s*\)/, /performance\.now/, /process\.hrtime/, /Math\.random/]) {
      if (re.test(code)) bad.push(`${path}: ${re.source}`);
    }
  }
  assert.deepEqual(bad, []);
});
