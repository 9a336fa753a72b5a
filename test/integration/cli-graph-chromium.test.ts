// The SVG of `corvid graph` opened in a real browser (headless Chromium): it loads, shows every pool, and
// screenshots to a non-trivial PNG. Skips with one line when Chromium is not installed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { accessSync, constants, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { corvid, EXAMPLE, EXAMPLE_NODES } from '../unit/cli-support.ts';
import { buildGraph } from '../../src/graph/model.ts';
import { renderSvg } from '../../src/graph/svg.ts';
import { generatedTopology } from '../unit/graph-fixtures.ts';

const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';

function chromiumSkip(): string | undefined {
  try {
    accessSync(CHROMIUM, constants.X_OK);
    return undefined;
  } catch {
    return `needs ${CHROMIUM}: apt-get install -y --no-install-recommends chromium (or set CHROMIUM)`;
  }
}
const skip = chromiumSkip();

function chromium(dir: string, args: string[]): { stdout: string; stderr: string; status: number | null } {
  const r = spawnSync(
    CHROMIUM,
    [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
      `--user-data-dir=${join(dir, 'profile')}`,
      ...args,
    ],
    { encoding: 'utf8', timeout: 90_000, maxBuffer: 64 * 1024 * 1024 },
  );
  return { stdout: r.stdout ?? '', stderr: r.stderr ?? '', status: r.status };
}

function size(svg: string): { w: number; h: number } {
  const m = /width="(\d+)" height="(\d+)"/.exec(svg);
  assert.ok(m);
  return { w: Number(m[1]), h: Number(m[2]) };
}

function checkInBrowser(svg: string, pools: string[]): void {
  const dir = mkdtempSync(join(tmpdir(), 'corvid-chromium-'));
  try {
    const file = join(dir, 'graph.svg');
    writeFileSync(file, svg);
    const dom = chromium(dir, ['--dump-dom', `file://${file}`]);
    assert.equal(dom.status, 0, dom.stderr);
    assert.match(dom.stdout, /<svg/);
    for (const p of pools) assert.ok(dom.stdout.includes(p), `pool ${p} is not in the browser's DOM`);
    const { w, h } = size(svg);
    const png = join(dir, 'graph.png');
    const shot = chromium(dir, [`--screenshot=${png}`, `--window-size=${Math.min(w, 4000)},${Math.min(h, 4000)}`, `file://${file}`]);
    assert.equal(shot.status, 0, shot.stderr);
    const bytes = readFileSync(png);
    assert.equal(bytes.subarray(1, 4).toString(), 'PNG');
    assert.ok(statSync(png).size > 10_000, 'the screenshot is not blank');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test('the example graph renders in Chromium with every pool', { skip, timeout: 180_000 }, async () => {
  const r = await corvid(['graph', '-f', EXAMPLE, '--nodes', EXAMPLE_NODES]);
  assert.equal(r.code, 0);
  checkInBrowser(r.stdout, ['cloud', 'factory-lyon', 'store-berlin', 'warehouse-oslo', 'berlin-gw-b']);
});

test('a 50-pool graph renders in Chromium with every pool', { skip, timeout: 180_000 }, () => {
  const t = generatedTopology(50);
  const svg = renderSvg(buildGraph({ topology: t, gateways: [] }));
  checkInBrowser(svg, t.pools.map((p) => p.name));
});
