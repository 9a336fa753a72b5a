// Issue 14: a key pasted anywhere in a topology file or a node snapshot never comes back out of the CLI: not on
// stdout or stderr of validate, render, graph or diff, whole or as any 16-character piece.
//
// What may come back, when the input is valid: the cluster's own names, which the topology's author does not choose.
// A Node may be named by a machine id (hex that looks like key material), and a selector must match the labels the
// Nodes carry, hash or not. render and diff must show what they were given: a Gateway's nodeSelector is the pool's
// selector as written, its endpoints and status name the Nodes. So where the key stands as a Node's name (a gateway's
// node, a Node in the snapshot, a BlockAffinity's node) and is a valid one, render, graph and diff may show it, in
// the Gateways and in findings that name the Node; where it stands as a label key or value of a selector, the
// Gateways render and diff print may show it. Never validate, never a message about something else. Everything else
// is a name the author picks (the topology's, a pool's, a Secret's), a value Corvid checks, or something it ignores:
// the key must not show, valid input or not.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { corvid, NOW, REPO, type CliResult } from './cli-support.ts';
import { findLeak, isNodeName, KEY_KINDS, KNOWN_LEAKS, PLACES, plant, plants, prng, runSeed, type Plant } from './secret-plant.ts';

const SEED = runSeed();
/** Keys per place: about 110 places, so about 330 cases of 8 commands in about 15 s. */
/** Every kind of key in every place. */
const ROUNDS = Number(process.env.CORVID_SECRET_ROUNDS) || KEY_KINDS.length;

let dir = '';
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'corvid-secrets-'));
});
after(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

const GRAPH_FORMATS = ['svg', 'dot', 'mermaid'];

function commands(i: number): string[][] {
  const [f, n] = [join(dir, 'topology.yaml'), join(dir, 'nodes.yaml')];
  return [
    ['validate', f],
    ['validate', '--output', 'json', f],
    ['render', '-f', f],
    ['render', '-f', f, '--nodes', n],
    ['graph', '-f', f, '--nodes', n, '--format', GRAPH_FORMATS[i % 3]],
    ['graph', '-f', f],
    ['diff', '-f', f, '--nodes', n],
    ['diff', '-f', f, '--nodes', n, '--output', 'json'],
  ];
}

const known: string[] = [];

/** Whether the key may show on this channel of this command (see the top of this file). */
function mayShow(c: Plant, args: readonly string[], code: number, channel: 'stdout' | 'stderr'): boolean {
  const [command] = args;
  const succeeded = code === 0 || (command === 'diff' && code === 1);
  if (!succeeded || command === 'validate') return false;
  if (c.names === 'node') return isNodeName(c.secret);
  return c.names === 'label' && channel === 'stdout' && command !== 'graph';
}

/**
 * corvid in-process, with what it writes past its io (process.stdout, process.stderr, console) added to its stderr
 * (and still written).
 */
async function corvidAll(args: string[]): Promise<CliResult> {
  const direct: string[] = [];
  const { stdout, stderr } = process;
  const [out, err] = [stdout.write, stderr.write];
  const tap = (write: typeof out): typeof out =>
    function (this: unknown, chunk: unknown, ...rest: unknown[]) {
      direct.push(String(chunk));
      return (write as (...a: unknown[]) => boolean).call(this, chunk, ...rest);
    } as typeof out;
  stdout.write = tap(out);
  stderr.write = tap(err);
  try {
    const r = await corvid(args);
    return { ...r, stderr: r.stderr + direct.join('') };
  } finally {
    stdout.write = out;
    stderr.write = err;
  }
}

/** corvid as a process: all it writes, exit included, as an operator's terminal gets it. */
function corvidProcess(args: string[]): Promise<CliResult> {
  return new Promise((resolve) => {
    execFile(process.execPath, ['bin/corvid.js', ...args], { cwd: REPO, env: { PATH: process.env.PATH ?? '', HOME: '/nonexistent', CORVID_NOW: NOW } }, (e, stdout, stderr) =>
      resolve({ code: typeof e?.code === 'number' ? e.code : 0, stdout, stderr }),
    );
  });
}

/** Cases also run as processes (about 0.8 s each). */
const AS_PROCESS = 10;

describe('no planted key in any output of the CLI', () => {
  it(`validate, render, graph and diff, every place ${ROUNDS} times (seed ${SEED}; CORVID_SEED=${SEED} replays)`, async (t) => {
    t.diagnostic(`seed ${SEED}`);
    const leaks: string[] = [];
    let shown = 0;
    const cases = plants(SEED, ROUNDS);
    for (const [i, c] of cases.entries()) {
      await writeFile(join(dir, 'topology.yaml'), c.topology);
      await writeFile(join(dir, 'nodes.yaml'), c.snapshot);
      const list = commands(i);
      const every = Math.ceil(cases.length / AS_PROCESS);
      const runs = list.map((args) => ({ args, run: corvidAll, how: '' }));
      if (i % every === 0) runs.push({ args: list[(i / every) % list.length], run: corvidProcess, how: ' (as a process)' });
      for (const { args, run, how } of runs) {
        const r = await run(args);
        for (const channel of ['stdout', 'stderr'] as const) {
          const leak = findLeak(c.secret, r[channel]);
          if (leak === undefined) continue;
          const line = `${c.label}: corvid ${args.filter((a) => !a.startsWith(dir)).join(' ')}${how} ${channel}:\n  ...${leak}...`;
          if (mayShow(c, args, r.code, channel)) shown++;
          else if (KNOWN_LEAKS.some((k) => k.where === c.where && k.says.test(leak))) known.push(line);
          else leaks.push(line);
        }
      }
      // Faithful: render shows the Nodes and the selector it was given.
      if ((c.names === 'label' || (c.names === 'node' && isNodeName(c.secret))) && c.where !== 'snapshot: BlockAffinity node') {
        const r = await corvid(commands(i)[3]);
        if (r.code === 0) assert.ok(r.stdout.includes(c.secret), `${c.label}: render lost what it was given\n${r.stdout}`);
      }
    }
    t.diagnostic(`${cases.length} cases; the key shown ${shown} times as a Node's name or a selector's label`);
    assert.deepEqual(leaks, [], `seed ${SEED}: the key came back ${leaks.length} times:\n${leaks.join('\n')}`);
  });

  it('a pool name that looks like key material is not listed in the meaning checks\' messages', async () => {
    const c = plant(SEED, PLACES.findIndex((p) => p.where === 'pool name'), prng(SEED), { kinds: ['hex32'] });
    await writeFile(join(dir, 'topology.yaml'), c.topology);
    const r = await corvid(commands(0)[0]);
    assert.equal(findLeak(c.secret, r.stdout), undefined, r.stdout);
    assert.deepEqual(known, []);
  });

  it('finds a planted key, and a piece of it, re-cased or cut by line breaks', () => {
    const [c] = plants(SEED, 1, { kinds: ['base64'] });
    assert.ok(findLeak(c.secret, `x ${c.secret} y`));
    assert.ok(findLeak(c.secret, `msg: "${c.secret.slice(10, 26).toUpperCase()}"`));
    assert.equal(findLeak(c.secret, `msg: "${c.secret.slice(10, 25)}"`), undefined);
    const [pem] = plants(SEED, 1, { kinds: ['pem'] });
    assert.ok(findLeak(pem.secret, JSON.stringify(pem.secret.split('\n')[2])));
    assert.equal(findLeak(pem.secret, '-----BEGIN PRIVATE KEY-----'), undefined);
  });
});
