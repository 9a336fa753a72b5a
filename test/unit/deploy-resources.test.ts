// The memory requests and limits of deploy/base hold the figures bench/ measured (bench/figures.json), at the scale
// the manifests are sized for, with headroom; and the README shows those same figures.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { DEFAULT_VALIDATION_LIMITS } from '../../src/sync/validate-worker.ts';
import { REPO_ROOT, manifestsOf } from './deploy-support.ts';

/** A limit is at least this many times what was measured. */
const LIMIT_HEADROOM = 1.25;

interface Figure {
  what: string;
  bench: string;
  unit: string;
  date: string;
  machine: string;
  /** Scale -> value. */
  at: Record<string, number>;
}

interface Figures {
  machines: Record<string, string>;
  figures: Record<string, Figure>;
}

const FIGURES = JSON.parse(readFileSync(join(REPO_ROOT, 'bench', 'figures.json'), 'utf8')) as Figures;

/** The figure `id` at `scale`, in MiB. */
function measuredMiB(id: string, scale: string): number {
  const f = FIGURES.figures[id];
  assert.ok(f, `bench/figures.json has no figure ${id}`);
  assert.equal(f.unit, 'MiB', `${id}: unit`);
  const value = f.at[scale];
  assert.equal(typeof value, 'number', `${id} has no value at "${scale}"`);
  return value;
}

/** A memory quantity in MiB (binary suffixes only, as the manifests write them). */
function mib(q: string): number {
  const m = /^(\d+)(Mi|Gi)$/.exec(q);
  assert.ok(m, `a memory quantity in Mi or Gi: ${q}`);
  return Number(m[1]) * (m[2] === 'Gi' ? 1024 : 1);
}

function resourcesOf(file: string, container: string): { requests: { memory: string }; limits: { memory: string } } {
  const c = manifestsOf(file)[0].spec.template.spec.containers.find((x: { name: string }) => x.name === container);
  assert.ok(c, `${file} has a container ${container}`);
  return c.resources;
}

describe('bench/figures.json', () => {
  test('every figure says what, where, when and on which machine it was measured', () => {
    for (const [id, f] of Object.entries(FIGURES.figures)) {
      assert.ok(f.what && f.bench && f.unit, `${id}: what, bench, unit`);
      assert.match(f.bench, /^bench\/[a-z-]+\.ts\b/, `${id}: the bench that measured it`);
      assert.match(f.date, /^\d{4}-\d{2}-\d{2}$/, `${id}: date`);
      assert.ok(FIGURES.machines[f.machine], `${id}: machine ${f.machine} is described`);
      assert.ok(Object.keys(f.at).length > 0, `${id}: at least one scale`);
      for (const [scale, v] of Object.entries(f.at)) assert.ok(Number.isFinite(v) && v > 0, `${id} at ${scale}: ${v}`);
    }
  });

  test("the README's Performance table shows the same figures and cites the file", () => {
    const readme = readFileSync(join(REPO_ROOT, 'README.md'), 'utf8');
    const row = (label: RegExp): string => {
      const line = readme.split('\n').find((l) => l.startsWith('|') && label.test(l));
      assert.ok(line, `README has a row for ${label}`);
      assert.match(line, /bench\/figures\.json/, `the row ${label} cites bench/figures.json`);
      return line.split('|')[2];
    };
    const [sync1k, sync10k] = /(\d+) \/ (\d+) MiB VmRSS/.exec(row(/`corvid sync` RSS at 1k \/ 10k nodes/))!.slice(1).map(Number);
    assert.deepEqual([sync1k, sync10k], [measuredMiB('sync-rss', '1k nodes'), measuredMiB('sync-rss', '10k nodes')]);
    const [gateway, member] = /(\d+) \/ (\d+) MiB VmRSS/.exec(row(/`corvid agent` RSS/))!.slice(1).map(Number);
    assert.deepEqual([gateway, member], [measuredMiB('agent-rss', 'gateway with 200 tunnels'), measuredMiB('agent-rss', 'member with 2,000 routes')]);
  });
});

describe('deploy/base resources hold the measured figures', () => {
  test(`sync: the request covers 1k nodes; the limit 10k nodes plus a validation worker, times ${LIMIT_HEADROOM}`, () => {
    const r = resourcesOf('base/sync-deployment.yaml', 'sync');
    const at1k = measuredMiB('sync-rss', '1k nodes');
    assert.ok(mib(r.requests.memory) >= at1k, `request ${r.requests.memory} < ${at1k} MiB measured at 1k nodes`);
    // The worker that validates a new revision may take its whole heap cap while the sync serves the last one.
    const worker = DEFAULT_VALIDATION_LIMITS.memoryMiB;
    const need = (measuredMiB('sync-rss', '10k nodes') + worker) * LIMIT_HEADROOM;
    assert.ok(mib(r.limits.memory) >= need, `limit ${r.limits.memory} < ${need.toFixed(0)} MiB (10k nodes + worker ${worker} MiB, x ${LIMIT_HEADROOM})`);
  });

  test(`agent: the request covers the larger of gateway and member, the limit ${LIMIT_HEADROOM} times it`, () => {
    const r = resourcesOf('base/agent-daemonset.yaml', 'agent');
    const worst = Math.max(...Object.values(FIGURES.figures['agent-rss'].at));
    assert.ok(mib(r.requests.memory) >= worst, `request ${r.requests.memory} < ${worst} MiB measured`);
    assert.ok(mib(r.limits.memory) >= worst * LIMIT_HEADROOM, `limit ${r.limits.memory} < ${worst} MiB x ${LIMIT_HEADROOM}`);
  });
});
