// Run `corvid` in-process with captured output, and golden-file comparison (UPDATE_GOLDEN=1 rewrites).
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { main } from '../../src/cli/main.ts';

export const REPO = fileURLToPath(new URL('../../', import.meta.url));
export const EXAMPLE = join(REPO, 'topology', 'example.yaml');
export const EXAMPLE_NODES = join(REPO, 'test', 'fixtures', 'nodes', 'example.yaml');
/** The fixed "now" of the golden outputs (the snapshot's heartbeat time). */
export const NOW = '2026-11-20T10:00:00Z';

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

export async function corvid(args: string[], env: Record<string, string> = {}, opts: { tty?: boolean } = {}): Promise<CliResult> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await main(args, {
    stdout: { write: (s: string) => out.push(s), isTTY: opts.tty },
    stderr: { write: (s: string) => err.push(s) },
    // No ambient kubeconfig: tests say what they use.
    env: { PATH: process.env.PATH ?? '', HOME: '/nonexistent', CORVID_NOW: NOW, ...env },
    cwd: REPO,
  });
  return { code, stdout: out.join(''), stderr: err.join('') };
}

/** Compare with test/golden/cli/<name>; UPDATE_GOLDEN=1 writes it instead. */
export function golden(name: string, actual: string): void {
  const path = join(REPO, 'test', 'golden', 'cli', name);
  if (process.env.UPDATE_GOLDEN === '1' || !existsSync(path)) {
    if (process.env.UPDATE_GOLDEN !== '1' && process.env.CI) assert.fail(`golden file ${name} is missing (run with UPDATE_GOLDEN=1)`);
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, actual);
    return;
  }
  assert.equal(actual, readFileSync(path, 'utf8'), `output differs from test/golden/cli/${name} (UPDATE_GOLDEN=1 rewrites it)`);
}
