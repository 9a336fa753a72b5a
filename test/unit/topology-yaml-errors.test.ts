// YAML that a topology cannot mean gets an error that says what to do, at the right place, quoting nothing of the
// file: an unclosed quote (at the quote), an undefined alias (at the alias), keys that differ only in YAML type,
// nesting too deep (also beyond what the parser can take), UTF-16 files, CR-only line ends.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseYaml, MAX_NESTING } from '../../src/topology/parse.ts';

function errorsOf(text: string): string[] {
  const r = parseYaml(text, 't.yaml');
  assert.equal(r.ok, false, `expected an error for ${JSON.stringify(text.slice(0, 40))}`);
  return r.ok ? [] : r.errors.map((e) => `${e.line}:${e.col} ${e.message}`);
}

test('an unclosed quote is reported at the opening quote', () => {
  assert.deepEqual(errorsOf('a: 1\nb: "secret-value\nc: 2\n'), ['2:4 invalid YAML: a quoted value or a bracket is not closed; add the closing quote or bracket']);
  assert.deepEqual(errorsOf("a: 'x\n"), ['1:4 invalid YAML: a quoted value or a bracket is not closed; add the closing quote or bracket']);
});

test('an alias without an anchor before it is reported at the alias, without its name', () => {
  const e = errorsOf('a: 1\nb: *hunter2\n');
  assert.deepEqual(e, ['2:4 invalid YAML: this alias (*name) refers to no anchor (&name) defined before it; define the anchor first, or write the value']);
  assert.equal(parseYaml('a: &x 1\nb: *x\n', 't.yaml').ok, true);
  assert.equal(parseYaml('b: *x\na: &x 1\n', 't.yaml').ok, false, 'an anchor after its alias does not count');
});

test('two keys that become one key (1 and "1", true and "true") are refused at the second', () => {
  assert.deepEqual(errorsOf('m:\n  1: x\n  "1": y\n'), ['3:3 invalid YAML: two keys of this mapping are the same key once read (for example 1 and "1"); keep one']);
  assert.equal(errorsOf('{true: 1, "true": 2}').length, 1);
  assert.equal(parseYaml('m:\n  1: x\n  "2": y\n', 't.yaml').ok, true);
});

test('nesting: deeper than MAX_NESTING is refused; far deeper than the parser can take gives one error, not one per level', () => {
  const ok = `a: ${'['.repeat(MAX_NESTING - 2)}${']'.repeat(MAX_NESTING - 2)}`;
  assert.equal(parseYaml(ok, 't.yaml').ok, true);
  assert.match(errorsOf(`a: ${'['.repeat(MAX_NESTING + 5)}${']'.repeat(MAX_NESTING + 5)}`)[0], /nests deeper than 64 levels/);
  const e = errorsOf('['.repeat(20_000) + ']'.repeat(20_000));
  assert.equal(e.length, 1);
  assert.match(e[0], /nests too deeply/);
});

test('UTF-16 and CR-only files are named as such', () => {
  const utf16 = Buffer.from('\ufeffapiVersion: corvid.dev/v1alpha1\n', 'utf16le').toString('utf8');
  assert.deepEqual(errorsOf(utf16), ['1:1 the file is not UTF-8 (it looks like UTF-16: a byte-order mark or NUL bytes); save it as UTF-8']);
  assert.match(errorsOf('a: 1\rb: 2\r')[0], /bare CR .* save it with LF or CRLF line ends/);
  assert.equal(parseYaml('a: 1\r\nb: 2\r\n', 't.yaml').ok, true);
});

test('aliases that multiply a large part are refused before anything walks the expansion, quickly and in bounded memory', () => {
  const list = `big: &big [${Array.from({ length: 100_000 }, (_, i) => i).join(', ')}]\n`;
  const text = `${list}${Array.from({ length: 99 }, (_, i) => `k${i}: *big`).join('\n')}\n`;
  const t0 = Date.now();
  const before = process.memoryUsage().heapUsed;
  const e = errorsOf(text);
  assert.match(e[0], /expands to more than 2000000 values/);
  assert.ok(Date.now() - t0 < 10_000, `took ${Date.now() - t0} ms`);
  assert.ok(process.memoryUsage().heapUsed - before < 512 * 1024 * 1024, 'bounded memory');
  // A few aliases of a small part are fine.
  assert.equal(parseYaml('a: &x [1, 2]\nb: *x\nc: *x\n', 't.yaml').ok, true);
});

test('a key written twice is refused at the second, in one pass even for a mapping of 100,000 keys', () => {
  assert.deepEqual(errorsOf('m:\n  a: x\n  b: y\n  a: z\n'), ['4:3 invalid YAML: a key appears twice in the same mapping; keep one']);
  const keys = Array.from({ length: 100_000 }, (_, i) => `  k${i}: 1`);
  const r = parseYaml(`m:\n${keys.join('\n')}\n  k99999: 2\n`, 't.yaml');
  assert.equal(r.ok, false);
  assert.match(r.ok ? '' : `${r.errors[0].line} ${r.errors[0].message}`, /^100002 invalid YAML: a key appears twice/);
});
