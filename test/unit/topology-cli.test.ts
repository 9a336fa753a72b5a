// `corvid validate` through the real dispatcher, with captured output.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { main } from '../../src/cli/main.ts';
import type { CliIO } from '../../src/cli/io.ts';
import { doc, pool } from './topology-helpers.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

async function run(argv: string[], cwd = ROOT): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const io: CliIO = {
    stdout: { write: (s: string) => (out += s) },
    stderr: { write: (s: string) => (err += s) },
    env: {},
    cwd,
  };
  const code = await main(argv, io);
  return { code, out, err };
}

describe('corvid validate', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'corvid-validate-'));
    writeFileSync(join(dir, 'bad.yaml'), doc({ pools: [pool('cloud'), pool('cloud', '', '[{node: x}]')] }));
    writeFileSync(join(dir, 'warn.yaml'), doc({ connectivity: 'hub: cloud', pools: [pool('cloud'), pool('edge')] }));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('exits 0 for valid files and says so', async () => {
    const r = await run(['validate', 'topology/example.yaml', 'topology/examples/nat-relay.yaml']);
    assert.equal(r.code, 0, r.err);
    assert.equal(
      r.out,
      'topology/example.yaml: valid (4 pools)\ntopology/examples/nat-relay.yaml: valid (3 pools)\n2 files checked: 2 valid, 0 invalid (0 errors, 0 warnings)\n',
    );
  });

  it('exits 1 and prints each error as file:line:col: path: message', async () => {
    const r = await run(['validate', 'bad.yaml', 'warn.yaml'], dir);
    assert.equal(r.code, 1);
    assert.equal(
      r.out,
      'bad.yaml:12:13: spec.pools[1].name: another pool already has this name (spec.pools[0]); pool names must be unique\n' +
        'warn.yaml:9:5: spec.connectivity.hub: warning: is used only when mode is hub; remove it or set mode: hub\n' +
        'warn.yaml: valid (2 pools)\n' +
        '2 files checked: 1 valid, 1 invalid (1 error, 1 warning)\n',
    );
  });

  it('exits 1 for an unreadable file, saying why', async () => {
    const r = await run(['validate', 'nope.yaml'], dir);
    assert.equal(r.code, 1);
    assert.equal(r.out, 'nope.yaml: the file does not exist\n1 file checked: 0 valid, 1 invalid (1 error, 0 warnings)\n');
  });

  it('prints JSON with --output json', async () => {
    const r = await run(['validate', '--output', 'json', 'bad.yaml', 'warn.yaml', 'nope.yaml'], dir);
    assert.equal(r.code, 1);
    const j = JSON.parse(r.out) as { files: { file: string; valid: boolean; errors: unknown[]; warnings: unknown[] }[] };
    assert.deepEqual(
      j.files.map((f) => [f.file, f.valid, f.errors.length, f.warnings.length]),
      [
        ['bad.yaml', false, 1, 0],
        ['warn.yaml', true, 0, 1],
        ['nope.yaml', false, 1, 0],
      ],
    );
    assert.deepEqual(j.files[0].errors[0], {
      file: 'bad.yaml',
      line: 12,
      col: 13,
      path: 'spec.pools[1].name',
      message: 'another pool already has this name (spec.pools[0]); pool names must be unique',
    });
    assert.deepEqual(j.files[2].errors[0], { file: 'nope.yaml', line: 0, col: 0, path: '', message: 'the file does not exist' });
    const ok = await run(['validate', '--output=json', 'topology/example.yaml']);
    assert.equal(ok.code, 0);
    assert.deepEqual(JSON.parse(ok.out), { files: [{ file: 'topology/example.yaml', valid: true, errors: [], warnings: [] }] });
  });

  it('exits 2 on usage errors and 0 for --help', async () => {
    for (const argv of [['validate'], ['validate', '--frobnicate', 'x.yaml'], ['validate', '--output', 'xml', 'x.yaml'], ['validate', '--output']]) {
      const r = await run(argv);
      assert.equal(r.code, 2, argv.join(' '));
      assert.equal(r.out, '');
      assert.match(r.err, /^corvid validate: .+\n\nUsage: corvid validate/);
    }
    const h = await run(['validate', '--help']);
    assert.equal(h.code, 0);
    assert.match(h.out, /Examples:\n {2}corvid validate topology\/example.yaml/);
  });
});
