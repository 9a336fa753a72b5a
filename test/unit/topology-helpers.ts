// Shared builders for the topology tests: small YAML documents and exact positions of tokens in them.

import assert from 'node:assert/strict';
import { formatTopologyError, loadTopology } from '../../src/topology/index.ts';
import type { Topology, TopologyResult } from '../../src/topology/index.ts';

export const FILE = 't.yaml';

export const HEAD = 'apiVersion: corvid.dev/v1alpha1\nkind: Topology\nmetadata:\n  name: test\nspec:\n';

/** Indent every line of a block by n spaces. */
export function indent(n: number, block: string): string {
  return block
    .split('\n')
    .map((l) => (l === '' ? l : ' '.repeat(n) + l))
    .join('\n');
}

/** One pool list item; `extra` lines are fields of the pool, written at column 0. */
export function pool(name: string, extra = '', gateways = `[{node: ${name}-gw}]`): string {
  return `- name: ${name}\n  nodeSelector: {matchLabels: {pool: ${name}}}\n  gateways: ${gateways}\n${indent(2, extra)}`;
}

export const PSK = 'encryption:\n  pskSecretRef: {name: corvid-psk, key: psk}\n';

/** A topology document: spec sections written at column 0; pools as items from pool(). */
export function doc(parts: { encryption?: string; connectivity?: string; election?: string; pools: string[]; links?: string; other?: string }): string {
  const enc = parts.encryption ?? PSK;
  const lines = [
    enc,
    parts.connectivity ? `connectivity:\n${indent(2, parts.connectivity)}` : '',
    parts.election ? `election:\n${indent(2, parts.election)}` : '',
    parts.other ?? '',
    parts.pools.length === 0 ? 'pools: []\n' : `pools:\n${indent(2, parts.pools.map((p) => (p.endsWith('\n') ? p : `${p}\n`)).join(''))}`,
    parts.links ? `links:\n${indent(2, parts.links)}` : '',
  ]
    .filter((s) => s !== '')
    .map((s) => (s.endsWith('\n') ? s : `${s}\n`))
    .join('');
  return HEAD + indent(2, lines);
}

/**
 * 1-based line and column of a token: `needle` is text that occurs in `text` with a `^` just before the token
 * (`'relay: ^edge-a'`); `nth` picks among several occurrences.
 */
export function at(text: string, needle: string, nth = 0): { line: number; col: number } {
  const caret = needle.indexOf('^');
  assert.ok(caret >= 0, `needle needs a ^: ${needle}`);
  const plain = needle.slice(0, caret) + needle.slice(caret + 1);
  let idx = -1;
  for (let k = 0; k <= nth; k++) {
    idx = text.indexOf(plain, idx + 1);
    assert.ok(idx >= 0, `needle not found (${k}): ${plain}`);
  }
  const offset = idx + caret;
  const before = text.slice(0, offset);
  const line = before.split('\n').length;
  const col = offset - before.lastIndexOf('\n');
  return { line, col };
}

export type Expect = [needle: string | [string, number], path: string, message: string];

function expected(text: string, list: Expect[]): string[] {
  return list.map(([needle, path, message]) => {
    const [n, nth] = Array.isArray(needle) ? needle : [needle, 0];
    const p = at(text, n, nth);
    return formatTopologyError({ file: FILE, line: p.line, col: p.col, path, message });
  });
}

/** The document must fail with exactly these errors (in position order). */
export function expectErrors(text: string, list: Expect[]): void {
  const r = loadTopology(text, FILE);
  const got = r.ok ? [] : r.errors.map(formatTopologyError);
  assert.deepEqual(got, expected(text, list), `document:\n${text}`);
}

/** The document must be valid, with exactly these warnings. */
export function expectValid(text: string, warnings: Expect[] = []): Topology {
  const r: TopologyResult = loadTopology(text, FILE);
  if (!r.ok) assert.fail(`expected valid, got:\n${r.errors.map(formatTopologyError).join('\n')}\ndocument:\n${text}`);
  assert.deepEqual(r.warnings.map(formatTopologyError), expected(text, warnings), `document:\n${text}`);
  return r.topology;
}
