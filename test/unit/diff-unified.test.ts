import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { diffLines, splitLines, unifiedDiff } from '../../src/diff/unified.ts';

function lcs(a: string[], b: string[]): number {
  const dp: number[][] = Array.from({ length: a.length + 1 }, () => new Array<number>(b.length + 1).fill(0));
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      dp[i][j] = a[i - 1] === b[j - 1] ? dp[i - 1][j - 1] + 1 : Math.max(dp[i - 1][j], dp[i][j - 1]);
    }
  }
  return dp[a.length][b.length];
}

/** Apply a unified diff to `from`, checking every context and removed line matches. */
function applyPatch(from: string[], patch: string): string[] {
  const lines = splitLines(patch).slice(2);
  const out: string[] = [];
  let pos = 0;
  let i = 0;
  while (i < lines.length) {
    const m = /^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@$/.exec(lines[i]);
    assert.ok(m, `hunk header expected, got ${lines[i]}`);
    const startA = Number(m[1]);
    const countA = m[2] === undefined ? 1 : Number(m[2]);
    const begin = countA === 0 ? startA : startA - 1;
    while (pos < begin) out.push(from[pos++]);
    i++;
    while (i < lines.length && !lines[i].startsWith('@@')) {
      const op = lines[i][0];
      const text = lines[i].slice(1);
      if (op === ' ' || op === '-') {
        assert.equal(from[pos], text);
        pos++;
      }
      if (op === ' ' || op === '+') out.push(text);
      i++;
    }
  }
  while (pos < from.length) out.push(from[pos++]);
  return out;
}

test('equal texts give an empty diff', () => {
  assert.equal(unifiedDiff('a', 'b', 'x\ny\n', 'x\ny\n'), '');
});

test('a simple change looks like diff -u', () => {
  const from = 'a\nb\nc\nd\ne\nf\ng\nh\n';
  const to = 'a\nb\nc\nD\ne\nf\ng\nh\ni\n';
  assert.equal(
    unifiedDiff('live/gateway/x', 'merged/gateway/x', from, to),
    [
      '--- live/gateway/x',
      '+++ merged/gateway/x',
      '@@ -1,8 +1,9 @@',
      ' a',
      ' b',
      ' c',
      '-d',
      '+D',
      ' e',
      ' f',
      ' g',
      ' h',
      '+i',
      '',
    ].join('\n'),
  );
});

test('far-apart changes make two hunks; creation and deletion use 0,0 ranges', () => {
  const a = Array.from({ length: 20 }, (_, i) => `l${i}`);
  const b = [...a];
  b[1] = 'X';
  b[18] = 'Y';
  const d = unifiedDiff('f', 't', `${a.join('\n')}\n`, `${b.join('\n')}\n`);
  assert.equal((d.match(/^@@/gm) ?? []).length, 2);
  assert.match(d, /^@@ -1,5 \+1,5 @@$/m);
  assert.match(d, /^@@ -16,5 \+16,5 @@$/m);
  assert.match(unifiedDiff('f', 't', '', 'a\nb\n'), /^@@ -0,0 \+1,2 @@$/m);
  assert.match(unifiedDiff('f', 't', 'a\nb\n', ''), /^@@ -1,2 \+0,0 @@$/m);
});

test('property: the edit script is minimal and the patch reproduces the target', () => {
  const text = fc.array(fc.constantFrom('a', 'b', 'c', 'd', 'e'), { maxLength: 30 });
  fc.assert(
    fc.property(text, text, fc.integer({ min: 0, max: 4 }), (a, b, context) => {
      const ops = diffLines(a, b);
      const changes = ops.filter((o) => o.op !== ' ').length;
      assert.equal(changes, a.length + b.length - 2 * lcs(a, b));
      assert.deepEqual(
        ops.filter((o) => o.op !== '+').map((o) => o.line),
        a,
      );
      assert.deepEqual(
        ops.filter((o) => o.op !== '-').map((o) => o.line),
        b,
      );
      const patch = unifiedDiff('f', 't', a.map((l) => `${l}\n`).join(''), b.map((l) => `${l}\n`).join(''), { context });
      if (a.join() === b.join()) assert.equal(patch, '');
      else assert.deepEqual(applyPatch(a, patch), b);
    }),
    { numRuns: 500 },
  );
});
