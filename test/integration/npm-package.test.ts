// The CLI without a clone: `npm pack` (prepack compiles src/ into dist/ with tsconfig.build.json) gives a package that
// installs into an empty directory and runs `corvid validate` on Node 24. Offline: the dependencies come from npm's
// cache, which `npm ci` filled, through a lockfile made from the repository's. The pack runs in a copy of the repository, so no dist/ ever appears in the tree the
// other tests run from.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { copyFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const REPO = fileURLToPath(new URL('../../', import.meta.url));
const PKG = JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as { name: string; version: string; files: string[] };
// Node 24 (this test runs on it) first on PATH: the installed bin's `#!/usr/bin/env node` must find it.
const PATH = [dirname(process.execPath), process.env.PATH ?? ''].join(delimiter);

function skipReason(): string | undefined {
  if (spawnSync('npm', ['--version'], { encoding: 'utf8' }).status !== 0) return 'needs npm on PATH';
  if (!existsSync(join(REPO, 'node_modules', '.bin', 'tsc'))) return 'needs the dev dependencies (npm ci)';
  return undefined;
}
const SKIP = skipReason();

function run(cmd: string, args: string[], cwd: string): SpawnSyncReturns<string> {
  return spawnSync(cmd, args, { cwd, encoding: 'utf8', timeout: 180_000, env: { ...process.env, PATH, npm_config_update_notifier: 'false' } });
}

describe('npm pack', { skip: SKIP }, () => {
  let work = '';
  let tarball = '';
  let files: string[] = [];

  before(() => {
    work = mkdtempSync(join(tmpdir(), 'corvid-npm-'));
    const copy = join(work, 'repo');
    mkdirSync(copy);
    for (const f of ['package.json', 'package-lock.json', 'tsconfig.json', 'tsconfig.build.json', 'README.md']) copyFileSync(join(REPO, f), join(copy, f));
    for (const d of ['bin', 'src', 'schemas']) cpSync(join(REPO, d), join(copy, d), { recursive: true });
    // prepack's tsc, from the repository's dev dependencies.
    symlinkSync(join(REPO, 'node_modules'), join(copy, 'node_modules'));
    const r = run('npm', ['pack', '--json', '--pack-destination', work], copy);
    assert.equal(r.status, 0, `npm pack: ${r.stderr}`);
    const [info] = JSON.parse(r.stdout) as Array<{ filename: string; files: Array<{ path: string }> }>;
    tarball = join(work, info.filename);
    files = info.files.map((f) => f.path);
    assert.ok(!existsSync(join(copy, 'dist')), 'postpack removes dist/');
  }, { timeout: 240_000 });

  after(() => {
    if (work !== '') rmSync(work, { recursive: true, force: true });
  });

  test('the package ships compiled JavaScript, the bin and the schemas, and no TypeScript sources or tests', () => {
    for (const f of ['package.json', 'bin/corvid.js', 'dist/src/cli/main.js', 'dist/src/cli/commands/validate.js', 'dist/schemas/topology.schema.json', 'dist/src/sync/validate-worker-thread.js', 'dist/src/adapters/liveness/worker.js']) {
      assert.ok(files.includes(f), `${f} in the package`);
    }
    assert.deepEqual(files.filter((f) => /\.ts$/.test(f) || f.startsWith('test/') || f.startsWith('src/')), []);
    const main = readFileSync(join(REPO, 'bin', 'corvid.js'), 'utf8');
    assert.match(main, /dist\/src\/cli\/main\.js/);
  });

  test('installs offline into an empty directory and runs corvid validate on Node 24', (t) => {
    const app = join(work, 'app');
    mkdirSync(app);
    // `npm install <tarball>` would need the registry's metadata to resolve version ranges, which `npm ci` never
    // caches; a lockfile with the repository's own resolution (its production entries) needs only the tarballs,
    // which are in the cache by integrity.
    const lock = JSON.parse(readFileSync(join(REPO, 'package-lock.json'), 'utf8')) as { packages: Record<string, Record<string, unknown>> };
    const root = lock.packages[''];
    const spec = `file:${relative(app, tarball)}`;
    const packages: Record<string, unknown> = {
      '': { name: 'app', dependencies: { [PKG.name]: spec } },
      [`node_modules/${PKG.name}`]: { version: PKG.version, resolved: spec, dependencies: root.dependencies, bin: root.bin, engines: root.engines },
    };
    for (const [k, v] of Object.entries(lock.packages)) if (k !== '' && v.dev !== true) packages[k] = v;
    writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'app', private: true, dependencies: { [PKG.name]: spec } }));
    writeFileSync(join(app, 'package-lock.json'), JSON.stringify({ name: 'app', lockfileVersion: 3, requires: true, packages }));
    const install = run('npm', ['ci', '--offline', '--no-audit', '--no-fund'], app);
    if (install.status !== 0 && /ENOTCACHED|offline/i.test(install.stderr)) {
      return t.skip(`npm's cache lacks a dependency (run npm ci first, online): ${install.stderr.split('\n').find((l) => /ENOTCACHED/.test(l)) ?? ''}`.trim());
    }
    assert.equal(install.status, 0, `npm install: ${install.stderr}`);
    const bin = join(app, 'node_modules', '.bin', 'corvid');
    assert.ok(existsSync(join(app, 'node_modules', PKG.name, 'dist', 'src', 'cli', 'main.js')));
    assert.ok(!existsSync(join(app, 'node_modules', PKG.name, 'src')), 'no sources: the CLI can only run dist/');
    copyFileSync(join(REPO, 'topology', 'example.yaml'), join(app, 'example.yaml'));
    const ok = run(bin, ['validate', 'example.yaml'], app);
    assert.equal(ok.status, 0, `corvid validate: ${ok.stdout}${ok.stderr}`);
    assert.match(ok.stdout, /example\.yaml: valid \(\d+ pools\)/);
    const node = run('node', ['--version'], app).stdout.trim();
    assert.match(node, /^v24\./, 'the node on PATH is Node 24');
    const help = run(bin, ['--help'], app);
    assert.equal(help.status, 0, help.stderr);
    assert.match(help.stdout, /validate/);
  });
});
