// Property tests: mutated and truncated topology documents never make the loader throw, and every finding has a
// position, a message, and no value we planted. Plus: our pure IP parser agrees with node:net.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { loadTopology } from '../../src/topology/index.ts';
import { ipVersion } from '../../src/topology/ip.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const SOURCES = [
  readFileSync(join(ROOT, 'topology/example.yaml'), 'utf8'),
  ...readdirSync(join(ROOT, 'topology/examples'))
    .filter((f) => f.endsWith('.yaml'))
    .sort()
    .map((f) => readFileSync(join(ROOT, 'topology/examples', f), 'utf8')),
];

/** Planted as a value; must never come back in a message. */
const PLANTED = 'PLANTED-S3CR3T!';

const SNIPPETS = [
  ':', '-', '- ', '[', ']', '{', '}', ',', '"', "'", '#', '&a ', '*a', '!!binary ', '!!set ', '---\n', '...\n', '\t', '  ', '\n',
  'null', '~', '0x1F', '1e400', '-1', '70000', 'true', 'yes', '""', '*', '? ', '|\n', '>-\n', '%YAML 1.1\n', '<<: *a\n',
  'behindNAT: true', 'relay: cloud', 'relay: "*"', 'backend: none', 'allowInsecure: true', 'mode: hub', 'hub: cloud',
  'publicIP: 1.2.3.999', `psk: ${PLANTED}`, `key: ${PLANTED}`, `name: ${PLANTED}`, `node: ${PLANTED}`,
];

type Mutation =
  | { kind: 'truncate'; at: number }
  | { kind: 'delete'; at: number; len: number }
  | { kind: 'insert'; at: number; text: string }
  | { kind: 'dupline'; line: number }
  | { kind: 'swaplines'; a: number; b: number }
  | { kind: 'replaceValue'; line: number; text: string };

const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }),
  fc.record({ kind: fc.constant('delete' as const), at: fc.nat(), len: fc.integer({ min: 1, max: 40 }) }),
  fc.record({ kind: fc.constant('insert' as const), at: fc.nat(), text: fc.oneof(fc.constantFrom(...SNIPPETS), fc.string({ maxLength: 6 })) }),
  fc.record({ kind: fc.constant('dupline' as const), line: fc.nat() }),
  fc.record({ kind: fc.constant('swaplines' as const), a: fc.nat(), b: fc.nat() }),
  fc.record({ kind: fc.constant('replaceValue' as const), line: fc.nat(), text: fc.constantFrom(...SNIPPETS, PLANTED, `"${PLANTED}"`) }),
);

function apply(text: string, m: Mutation): string {
  const n = Math.max(1, text.length);
  const lines = text.split('\n');
  switch (m.kind) {
    case 'truncate':
      return text.slice(0, m.at % n);
    case 'delete':
      return text.slice(0, m.at % n) + text.slice((m.at % n) + m.len);
    case 'insert':
      return text.slice(0, m.at % n) + m.text + text.slice(m.at % n);
    case 'dupline': {
      const i = m.line % lines.length;
      lines.splice(i, 0, lines[i]);
      return lines.join('\n');
    }
    case 'swaplines': {
      const [i, j] = [m.a % lines.length, m.b % lines.length];
      [lines[i], lines[j]] = [lines[j], lines[i]];
      return lines.join('\n');
    }
    case 'replaceValue': {
      const i = m.line % lines.length;
      const colon = lines[i].indexOf(': ');
      if (colon >= 0) lines[i] = `${lines[i].slice(0, colon + 2)}${m.text}`;
      return lines.join('\n');
    }
  }
}

describe('topology loader under mutation', () => {
  it('never throws; every finding has a position and a plain message without planted values', () => {
    fc.assert(
      fc.property(fc.nat({ max: SOURCES.length - 1 }), fc.array(mutation, { minLength: 1, maxLength: 4 }), (src, muts) => {
        const text = muts.reduce(apply, SOURCES[src]);
        const r = loadTopology(text, 'fuzz.yaml');
        const findings = r.ok ? r.warnings : r.errors;
        if (!r.ok) assert.ok(r.errors.length > 0, 'a failure has at least one error');
        for (const e of findings) {
          assert.equal(e.file, 'fuzz.yaml');
          assert.ok(Number.isInteger(e.line) && e.line >= 1, `line ${e.line}`);
          assert.ok(Number.isInteger(e.col) && e.col >= 1, `col ${e.col}`);
          assert.ok(e.message.length > 0, 'message');
          assert.ok(!e.message.includes('S3CR3T'), `planted value echoed: ${e.message}`);
          assert.ok(!e.message.startsWith('internal error'), `internal error for:\n${text}`);
        }
      }),
      { numRuns: Number(process.env.FUZZ_RUNS ?? 3000), seed: Number(process.env.FUZZ_SEED ?? 20261101) },
    );
  });
});

describe('ip parser', () => {
  it('agrees with node:net isIP', () => {
    const alphabet = fc.constantFrom(...'0123456789abcdefABCDEF:.%'.split(''), '::', '1.2.3.4', 'ffff', '255', '256', '01');
    const junk = fc.array(alphabet, { maxLength: 14 }).map((a) => a.join(''));
    fc.assert(
      fc.property(fc.oneof(fc.ipV4(), fc.ipV6(), fc.ipV4Extended(), junk), (s) => {
        assert.equal(ipVersion(s), isIP(s), s);
      }),
      { numRuns: 3000, seed: 7 },
    );
  });
});
