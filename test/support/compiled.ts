// `corvid` as the image and the npm package run it: the sources compiled to JavaScript (tsconfig.build.json) beside a
// copy of bin/corvid.js, which prefers them. The e2e and the benches start their agents and syncs from it, with the
// manifests' NODE_OPTIONS (test/support/manifests.ts): the TypeScript sources need the type stripper, which costs
// about 30 MiB and cannot run under the DaemonSet's --jitless (it uses WebAssembly).
//
// Built once per state of the sources (about 15 s) into the cache beside the kube-apiserver and image builds
// ($CORVID_CACHE_DIR, default ~/.cache/corvid), so the test files of one `npm test` share one build.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, symlinkSync } from 'node:fs';
import { homedir } from 'node:os';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
/** Builds of other source states older than this are removed when a new one is made. */
const STALE_MS = 24 * 3600_000;

export interface CompiledCorvid {
  /** The entry to spawn with Node. */
  bin: string;
  /** A compiled module's path from the repository root, for `src/x.ts` (bench/machine.ts baselineRssMiB). */
  module(source: string): string;
}

/** Every file the build reads, as path and content, hashed: the build's cache key. */
function sourceKey(): string {
  const h = createHash('sha256');
  const add = (path: string): void => {
    h.update(relative(ROOT, path)).update('\0').update(readFileSync(path)).update('\0');
  };
  const walk = (dir: string): void => {
    for (const e of readdirSync(dir, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1))) {
      const p = join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name.endsWith('.ts')) add(p);
    }
  };
  walk(join(ROOT, 'src'));
  for (const f of ['tsconfig.json', 'tsconfig.build.json', 'bin/corvid.js', 'package-lock.json']) add(join(ROOT, f));
  // The build links this checkout's node_modules.
  h.update(ROOT);
  return h.digest('hex').slice(0, 16);
}

export function compiledCorvid(): CompiledCorvid {
  const cache = process.env.CORVID_CACHE_DIR || join(homedir(), '.cache', 'corvid');
  const dir = join(cache, `compiled-${sourceKey()}`);
  if (!existsSync(join(dir, 'bin', 'corvid.js'))) {
    mkdirSync(cache, { recursive: true });
    const tmp = `${dir}.tmp-${process.pid}`;
    rmSync(tmp, { recursive: true, force: true });
    try {
      execFileSync(process.execPath, [join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', join(ROOT, 'tsconfig.build.json'), '--outDir', join(tmp, 'dist')], { stdio: 'inherit' });
      mkdirSync(join(tmp, 'bin'));
      copyFileSync(join(ROOT, 'bin', 'corvid.js'), join(tmp, 'bin', 'corvid.js'));
      // The compiled modules find the packages as the installed package finds its own.
      symlinkSync(join(ROOT, 'node_modules'), join(tmp, 'node_modules'));
      renameSync(tmp, dir);
    } catch (e) {
      rmSync(tmp, { recursive: true, force: true });
      // Another test process built the same sources meanwhile.
      if (!existsSync(join(dir, 'bin', 'corvid.js'))) throw e;
    }
    for (const e of readdirSync(cache)) {
      const p = join(cache, e);
      if (e.startsWith('compiled-') && p !== dir && Date.now() - statSync(p).mtimeMs > STALE_MS) rmSync(p, { recursive: true, force: true });
    }
  }
  return {
    bin: join(dir, 'bin', 'corvid.js'),
    module: (source) => relative(ROOT, join(dir, 'dist', source.replace(/\.ts$/, '.js'))),
  };
}
