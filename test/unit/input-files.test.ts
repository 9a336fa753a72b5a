// Input files are read with bounds: a FIFO, a device, a directory or an oversized file is refused at once with a
// message that says so, by the CLI and by the sync's file source (which then still picks up a good file later; it
// names a directory and a link whose target is gone).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, rm, symlink, writeFile, truncate, rename } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { InputFileError, MAX_INPUT_BYTES, readBoundedFile } from '../../src/adapters/fs/bounded.ts';
import { FileSource } from '../../src/sync/source-file.ts';
import { jsonLogger } from '../../src/shell/log.ts';
import { corvid } from './cli-support.ts';

const dir = await mkdtemp(join(tmpdir(), 'corvid-input-'));
after(() => rm(dir, { recursive: true, force: true }));
const fifo = join(dir, 'fifo.yaml');
execFileSync('mkfifo', [fifo]);

test('readBoundedFile: a regular file is read; a FIFO, a device, a directory and an oversized file are refused at once', async () => {
  const ok = join(dir, 'ok.yaml');
  await writeFile(ok, 'a: 1\n');
  assert.equal(await readBoundedFile(ok), 'a: 1\n');
  const t0 = Date.now();
  await assert.rejects(readBoundedFile(fifo), (e: Error) => e instanceof InputFileError && /is a FIFO, not a regular file/.test(e.message));
  await assert.rejects(readBoundedFile('/dev/zero'), /is a device, not a regular file/);
  await assert.rejects(readBoundedFile(dir), /is a directory, not a regular file/);
  const big = join(dir, 'big.yaml');
  await writeFile(big, '');
  await truncate(big, MAX_INPUT_BYTES + 1); // sparse: no disk used
  await assert.rejects(readBoundedFile(big), new RegExp(`is ${MAX_INPUT_BYTES + 1} bytes, over the limit of ${MAX_INPUT_BYTES}`));
  await assert.rejects(readBoundedFile(ok, 3), /is 5 bytes, over the limit of 3/);
  assert.ok(Date.now() - t0 < 2000, 'nothing blocked');
});

test('corvid validate and render refuse a FIFO and /dev/zero at once', async () => {
  const v = await corvid(['validate', fifo]);
  assert.equal(v.code, 1);
  assert.match(v.stdout, /fifo\.yaml: the file is a FIFO, not a regular file/);
  const r = await corvid(['render', '-f', '/dev/zero']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /topology file \/dev\/zero is a device, not a regular file/);
});

test('the sync\'s file source: a FIFO at the path is an error, not a wedge; a good file put there later is read', async () => {
  const path = join(dir, 'topology.yaml');
  await rename(fifo, path);
  const src = new FileSource({ path, intervalMs: 200, settleMs: 10, logger: jsonLogger({ level: 'error', write: () => {} }) });
  let changes = 0;
  await src.start(() => changes++);
  try {
    const first = src.latest();
    assert.equal(first?.ok, false);
    assert.match(first && !first.ok ? first.message : '', /topology\.yaml is a FIFO, not a regular file/);
    await rm(path);
    await writeFile(path, 'apiVersion: corvid.dev/v1alpha1\n');
    const deadline = Date.now() + 5000;
    while (src.latest()?.ok !== true && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    assert.equal(src.latest()?.ok, true, 'the good file was read');
  } finally {
    await src.stop();
  }
});

test('the sync\'s file source names a directory (with YAML files in it) and a link whose target is gone; a ConfigMap-style link is followed', async () => {
  const logger = jsonLogger({ level: 'error', write: () => {} });
  const read = async (path: string) => {
    const src = new FileSource({ path, intervalMs: 60_000, settleMs: 10, logger });
    await src.start(() => {});
    try {
      return src.latest();
    } finally {
      await src.stop();
    }
  };
  const message = async (path: string): Promise<string> => {
    const a = await read(path);
    assert.ok(a !== undefined && !a.ok, JSON.stringify(a));
    return a.message;
  };
  const base = await mkdtemp(join(dir, 'links-'));
  const conf = join(base, 'topology');
  await mkdir(join(conf, '..2026_01_01'), { recursive: true });
  await writeFile(join(conf, '..2026_01_01', 'edge.yaml'), 'apiVersion: corvid.dev/v1alpha1\n');
  await symlink('..2026_01_01', join(conf, '..data'));
  await symlink('..data/edge.yaml', join(conf, 'edge.yaml'));
  await writeFile(join(conf, 'core.yml'), 'apiVersion: corvid.dev/v1alpha1\n');
  await writeFile(join(conf, 'notes.txt'), 'x\n');

  assert.equal(await message(conf), `${conf} is a directory, not a regular file; point --file at a YAML file in it, e.g. ${join(conf, 'core.yml')} or ${join(conf, 'edge.yaml')}`);
  await mkdir(join(base, 'empty'));
  assert.equal(await message(join(base, 'empty')), `${join(base, 'empty')} is a directory, not a regular file; point --file at a YAML file in it (it holds no .yaml or .yml file)`);
  // The kubelet's layout: the file is a link through ..data; it is followed.
  assert.equal((await read(join(conf, 'edge.yaml')))?.ok, true);
  await symlink('gone.yaml', join(base, 'dangling.yaml'));
  assert.equal(
    await message(join(base, 'dangling.yaml')),
    `${join(base, 'dangling.yaml')} is a symbolic link whose target does not exist; point --file at the topology file, or at a link to it`,
  );
  await symlink('loop.yaml', join(base, 'loop.yaml'));
  assert.equal(await message(join(base, 'loop.yaml')), `${join(base, 'loop.yaml')} is a symbolic link in a loop of links; point --file at the topology file, or at a link to it`);
  assert.equal(await message(join(base, 'missing.yaml')), `${join(base, 'missing.yaml')} does not exist`);
});
