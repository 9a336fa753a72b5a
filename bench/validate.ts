// Validation benchmark: loadTopology (parse, schema, meaning checks) of one topology file of 1k and 10k pools, and of
// one mapping of 10k and 100k keys. `npx node bench/validate.ts`, or through bench/run.ts. Each size runs in a child
// process of its own, so its peak RSS is its own. Goal: near-linear growth (the checks are O(P + K²) for P pools in K
// pool classes, see src/topology/semantic.ts; K stays small in real fleets).
//
// Topology shape (as bench/plan.ts): 3 public cloud pools with an encryption override, then sites; 1 site in 20 is
// public, the rest are behind NAT and share the automatic relay; two deny rules name sites; one links[] entry.

import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { machine, machineLine, type Machine } from './machine.ts';
import { loadTopology } from '../src/topology/load.ts';

export function poolsText(poolCount: number): string {
  const names = Array.from({ length: poolCount }, (_, i) => (i < 3 ? `cloud-${'abc'[i]}` : `site-${String(i).padStart(6, '0')}`));
  const lines = [
    'apiVersion: corvid.dev/v1alpha1',
    'kind: Topology',
    'metadata: {name: bench}',
    'spec:',
    '  encryption: {backend: ipsec, pskSecretRef: {name: corvid-psk, key: psk}}',
    '  connectivity:',
    '    rules:',
    `    - {action: deny, pools: [${names[3]}, ${names[4]}]}`,
    `    - {action: deny, pools: [${names[poolCount - 1]}, cloud-c]}`,
    '  links:',
    `  - {pools: [cloud-a, ${names[3]}], encryption: {ikeProposals: [aes256-sha384-modp3072]}}`,
    '  pools:',
  ];
  names.forEach((name, i) => {
    const behindNAT = i >= 3 && i % 20 !== 0;
    lines.push(`  - name: ${name}`);
    lines.push(`    nodeSelector: {matchLabels: {topology.corvid.dev/pool: ${name}}}`);
    lines.push(`    gateways: [{node: ${name}-n0${i < 3 ? `, publicIP: 203.0.113.${i + 1}` : ''}}, {node: ${name}-n1}]`);
    if (behindNAT) lines.push('    behindNAT: true');
    if (i < 3) lines.push('    encryption: {espProposals: [aes256gcm16-prfsha384]}');
  });
  return `${lines.join('\n')}\n`;
}

/** A topology whose one pool selector has `keyCount` labels: one mapping of that many keys. */
export function keysText(keyCount: number): string {
  const labels = Array.from({ length: keyCount }, (_, i) => `        k${i}: v`);
  return `apiVersion: corvid.dev/v1alpha1\nkind: Topology\nmetadata: {name: bench}\nspec:\n  encryption: {backend: none, allowInsecure: true}\n  pools:\n  - name: a\n    gateways: [{node: a-n0}]\n    nodeSelector:\n      matchLabels:\n${labels.join('\n')}\n`;
}

export interface ValidateBenchRow {
  input: string;
  size: number;
  bytes: number;
  ms: number;
  peakRssMiB: number;
  ok: boolean;
  /** ms / ms of the previous row of the same input (10× smaller). */
  growth?: number;
}

/** One measurement, in this process: the child's side. */
function measure(input: string, size: number): ValidateBenchRow {
  const text = input === 'pools' ? poolsText(size) : keysText(size);
  const t = performance.now();
  const r = loadTopology(text, 'bench.yaml');
  const ms = performance.now() - t;
  return { input, size, bytes: Buffer.byteLength(text), ms, peakRssMiB: Math.round(process.resourceUsage().maxRSS / 1024), ok: r.ok };
}

export function benchValidate(): { name: 'validate'; machine: Machine; rows: ValidateBenchRow[] } {
  const rows: ValidateBenchRow[] = [];
  for (const [input, sizes] of [['pools', [1_000, 10_000]], ['keys', [10_000, 100_000]]] as const) {
    let prev: ValidateBenchRow | undefined;
    for (const size of sizes) {
      const out = execFileSync(process.execPath, [fileURLToPath(import.meta.url), 'one', input, String(size)], { encoding: 'utf8' });
      const row = JSON.parse(out) as ValidateBenchRow;
      if (prev) row.growth = row.ms / prev.ms;
      rows.push(row);
      prev = row;
    }
  }
  const result = { name: 'validate' as const, machine: machine(), rows };
  const head = ['input', 'size', 'bytes', 'valid', 'ms', 'peak RSS MiB', 'growth per 10x'];
  const cells = rows.map((r) => [r.input, String(r.size), String(r.bytes), String(r.ok), r.ms.toFixed(0), String(r.peakRssMiB), r.growth === undefined ? '-' : `${r.growth.toFixed(1)}x`]);
  const widths = head.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i].length)));
  const line = (c: string[]) => `| ${c.map((x, i) => x.padStart(widths[i])).join(' | ')} |`;
  console.log(['loadTopology() benchmark', machineLine(result.machine), line(head), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...cells.map(line)].join('\n'));
  return result;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  if (process.argv[2] === 'one') console.log(JSON.stringify(measure(process.argv[3], Number(process.argv[4]))));
  else benchValidate();
}
