// `corvid validate FILE...`: check topology files (YAML, schema, meaning) and report every finding with its position.

import { inputFileProblem, readBoundedFile } from '../../adapters/fs/bounded.ts';
import { isAbsolute, resolve } from 'node:path';
import type { CliIO } from '../io.ts';
import { EXIT_FINDINGS, EXIT_OK, EXIT_USAGE, useColour } from '../io.ts';
import { formatTopologyError, loadTopology } from '../../topology/index.ts';
import type { TopologyError } from '../../topology/index.ts';

export const HELP = `Usage: corvid validate [--output text|json] FILE...

Check topology files: YAML syntax, the schema (schemas/topology.schema.json) and
meaning (unique names, known pools, NAT relays, encryption, reachability). Every
finding is printed at once as FILE:LINE:COL: PATH: MESSAGE.

Flags:
  -o, --output text|json   output format (default text)
  -h, --help               show this help

Exit codes:
  0  every file is valid (warnings do not fail)
  1  at least one file has errors or cannot be read
  2  usage error

Examples:
  corvid validate topology/example.yaml
  corvid validate topology/*.yaml
  corvid validate --output json topology/example.yaml | jq '.files[].errors'
`;

interface FileReport {
  file: string;
  valid: boolean;
  errors: TopologyError[];
  warnings: TopologyError[];
  /** Pools in the normalised topology (text output only). */
  pools?: number;
}

type Parsed = { files: string[]; output: 'text' | 'json' } | { help: true } | { usage: string };

function parseArgs(argv: string[]): Parsed {
  const files: string[] = [];
  let output: 'text' | 'json' = 'text';
  let flags = true;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (flags && arg === '--') {
      flags = false;
    } else if (flags && (arg === '-h' || arg === '--help')) {
      return { help: true };
    } else if (flags && (arg === '-o' || arg === '--output' || arg.startsWith('--output='))) {
      const value = arg.startsWith('--output=') ? arg.slice('--output='.length) : argv[++i];
      if (value !== 'text' && value !== 'json') {
        return { usage: value === undefined ? `${arg} needs a value: text or json` : `--output must be text or json` };
      }
      output = value;
    } else if (flags && arg.startsWith('-') && arg !== '-') {
      return { usage: `unknown flag "${arg}"` };
    } else {
      files.push(arg);
    }
  }
  if (files.length === 0) return { usage: 'no files given' };
  return { files, output };
}

async function check(file: string, cwd: string): Promise<FileReport> {
  let text: string;
  try {
    text = await readBoundedFile(isAbsolute(file) ? file : resolve(cwd, file));
  } catch (e) {
    return { file, valid: false, errors: [{ file, line: 0, col: 0, path: '', message: `the file ${inputFileProblem(e)}` }], warnings: [] };
  }
  const result = loadTopology(text, file);
  return result.ok
    ? { file, valid: true, errors: [], warnings: result.warnings, pools: result.topology.pools.length }
    : { file, valid: false, errors: result.errors, warnings: [] };
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

export async function run(argv: string[], io: CliIO): Promise<number> {
  const args = parseArgs(argv);
  if ('help' in args) {
    io.stdout.write(HELP);
    return EXIT_OK;
  }
  if ('usage' in args) {
    io.stderr.write(`corvid validate: ${args.usage}\n\n${HELP}`);
    return EXIT_USAGE;
  }
  const reports: FileReport[] = [];
  for (const file of args.files) reports.push(await check(file, io.cwd));
  const failed = reports.filter((r) => !r.valid).length;

  if (args.output === 'json') {
    const files = reports.map((r) => ({ file: r.file, valid: r.valid, errors: r.errors, warnings: r.warnings }));
    io.stdout.write(`${JSON.stringify({ files }, null, 2)}\n`);
    return failed > 0 ? EXIT_FINDINGS : EXIT_OK;
  }

  const colour = useColour(io.stdout, io.env);
  const paint = (code: string, s: string): string => (colour ? `\u001b[${code}m${s}\u001b[0m` : s);
  let errors = 0;
  let warnings = 0;
  for (const r of reports) {
    for (const e of r.errors) {
      errors++;
      io.stdout.write(`${e.line === 0 ? `${e.file}: ${e.message}` : formatTopologyError(e)}\n`.replace(/^[^ ]+:/, (loc) => paint('1;31', loc)));
    }
    for (const w of r.warnings) {
      warnings++;
      io.stdout.write(`${formatTopologyError({ ...w, message: `warning: ${w.message}` })}\n`.replace(/^[^ ]+:/, (loc) => paint('1;33', loc)));
    }
    if (r.valid) io.stdout.write(`${r.file}: ${paint('32', 'valid')} (${plural(r.pools ?? 0, 'pool')})\n`);
  }
  const summary =
    `${plural(reports.length, 'file')} checked: ${reports.length - failed} valid, ${failed} invalid` +
    ` (${plural(errors, 'error')}, ${plural(warnings, 'warning')})`;
  io.stdout.write(`${paint(failed > 0 ? '31' : '32', summary)}\n`);
  return failed > 0 ? EXIT_FINDINGS : EXIT_OK;
}
