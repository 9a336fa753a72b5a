// Hostile input, bounded work: generated inputs of each class that once took minutes or gigabytes (alias bombs, one
// huge mapping, many pools, many rules naming pools, deep nesting, a huge scalar, tens of thousands of errors) are
// read by `corvid validate` in a child process whose V8 heap is capped, with a time limit as a hang detector (speed
// itself is measured in bench/validate.ts). Each must end with a verdict (exit 0 or 1), never a crash.

import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { keysText, poolsText } from '../../bench/validate.ts';

const BIN = fileURLToPath(new URL('../../bin/corvid.js', import.meta.url));
/** The heap a validation may use, in MiB: far below what the inputs once took (4.3 GB for the alias bomb). */
const HEAP_MIB = 384;
/** Far above what any of these takes (seconds): only a hang or a quadratic walk reaches it. */
const HANG_MS = 120_000;
const SEED = Number(process.env.CORVID_PROPERTY_SEED ?? 20261206);

/** mulberry32: a small seeded generator, so a failing size can be reproduced from the seed. */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const rnd = random(SEED);
const between = (lo: number, hi: number): number => lo + Math.floor(rnd() * (hi - lo + 1));

const HEAD = 'apiVersion: corvid.dev/v1alpha1\nkind: Topology\nmetadata: {name: hostile}\n';

/** Each class: a name and a generator of one input of random size. */
const CLASSES: [string, () => string][] = [
  ['aliases repeating one large list', () => {
    const items = Array.from({ length: between(20_000, 100_000) }, (_, i) => `n${i}`).join(', ');
    const uses = Array.from({ length: between(50, 200) }, (_, i) => `  x${i}: *big`).join('\n');
    return `${HEAD}spec:\n  big: &big [${items}]\n${uses}\n`;
  }],
  ['one mapping of many keys', () => {
    const count = between(60_000, 150_000);
    const text = keysText(count);
    // Half the time a key written twice, somewhere in the middle.
    return rnd() < 0.5 ? text : `${text}        k${between(0, count - 1)}: again\n`;
  }],
  ['many pools, some rules naming them', () => {
    const pools = between(8_000, 12_000);
    const rules = Array.from({ length: between(0, 3_000) }, () => `    - {action: deny, pools: [site-${String(between(3, pools - 1)).padStart(6, '0')}, site-${String(between(3, pools + 50)).padStart(6, '0')}]}`);
    return poolsText(pools).replace('    rules:\n', `    rules:\n${rules.join('\n')}${rules.length ? '\n' : ''}`);
  }],
  ['pools all behind NAT with nothing to relay', () => {
    const n = between(3_000, 6_000);
    const pools = Array.from({ length: n }, (_, i) => `  - {name: s${i}, behindNAT: true, nodeSelector: {matchLabels: {pool: s${i}}}, gateways: [{node: s${i}-gw}]}`);
    return `${HEAD}spec:\n  encryption: {backend: none, allowInsecure: true}\n  pools:\n${pools.join('\n')}\n`;
  }],
  ['nesting far too deep', () => {
    const depth = between(100, 200_000);
    return `${HEAD}spec: ${'['.repeat(depth)}${']'.repeat(depth)}\n`;
  }],
  ['one huge scalar', () => `${HEAD}spec:\n  pools: "${'x'.repeat(between(4, 15) * 1024 * 1024)}"\n`],
  ['tens of thousands of errors', () => {
    const fields = Array.from({ length: between(20_000, 60_000) }, (_, i) => `  unknownField${i}: 1`);
    return `${HEAD}spec:\n${fields.join('\n')}\n`;
  }],
];

const dir = mkdtempSync(join(tmpdir(), 'corvid-bounded-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function validateInChild(file: string): Promise<{ code: number | null; signal: string | null; stdout: string; stderr: string; ms: number }> {
  const start = performance.now();
  return new Promise((resolve) => {
    execFile(process.execPath, [`--max-old-space-size=${HEAP_MIB}`, BIN, 'validate', file], { timeout: HANG_MS, maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      const e = err as (NodeJS.ErrnoException & { code?: number | string; signal?: string }) | null;
      resolve({ code: e ? (typeof e.code === 'number' ? e.code : null) : 0, signal: e?.signal ?? null, stdout, stderr, ms: performance.now() - start });
    });
  });
}

describe(`hostile input classes end with a verdict within a ${HEAP_MIB} MiB heap (seed ${SEED})`, () => {
  for (const [name, generate] of CLASSES) {
    for (const k of [1, 2]) {
      it(`${name} (${k})`, async () => {
        const text = generate();
        const file = join(dir, `${name.replace(/\W+/g, '-')}-${k}.yaml`);
        writeFileSync(file, text);
        const r = await validateInChild(file);
        const what = `${name}, ${text.length} bytes, seed ${SEED}: exit ${r.code} signal ${r.signal} after ${Math.round(r.ms)} ms; stderr ${r.stderr.slice(0, 300)}`;
        assert.equal(r.signal, null, `killed (hang or crash): ${what}`);
        assert.ok(r.code === 0 || r.code === 1, `no verdict: ${what}`);
        assert.doesNotMatch(r.stderr, /FATAL|heap out of memory|internal error/i, what);
        assert.ok(r.stdout.length + r.stderr.length > 0, `says nothing: ${what}`);
      });
    }
  }
});
