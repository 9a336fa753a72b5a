// A small flag parser for the CLI commands, on node:util parseArgs (strict: unknown flags are errors).

import { parseArgs } from 'node:util';
import type { CliIO } from './io.ts';
import { EXIT_USAGE } from './io.ts';

export interface FlagOption {
  type: 'string' | 'boolean';
  short?: string;
  multiple?: boolean;
  /** Allowed values of a string flag. */
  choices?: readonly string[];
}

export type FlagOptions = Record<string, FlagOption>;

export type FlagValues = Record<string, string | boolean | string[] | undefined>;

export type ParsedFlags =
  | { ok: true; help: boolean; values: FlagValues; positionals: string[] }
  | { ok: false; message: string };

/** Parse argv against `options` (plus --help/-h). Never throws. */
export function parseFlags(argv: string[], options: FlagOptions, allowPositionals = false): ParsedFlags {
  const spec: Record<string, { type: 'string' | 'boolean'; short?: string; multiple?: boolean }> = {
    help: { type: 'boolean', short: 'h' },
  };
  for (const [name, o] of Object.entries(options)) {
    spec[name] = { type: o.type, ...(o.short ? { short: o.short } : {}), ...(o.multiple ? { multiple: true } : {}) };
  }
  let parsed: { values: Record<string, unknown>; positionals: string[] };
  try {
    parsed = parseArgs({ args: argv, options: spec, strict: true, allowPositionals });
  } catch (e) {
    return { ok: false, message: flagErrorMessage(e) };
  }
  const help = parsed.values.help === true;
  const values: FlagValues = {};
  for (const [name, o] of Object.entries(options)) {
    const v = parsed.values[name];
    if (v === undefined) continue;
    if (o.choices && typeof v === 'string' && !o.choices.includes(v)) {
      return { ok: false, message: `--${name} must be one of ${o.choices.join(', ')} (got "${v}")` };
    }
    values[name] = v as string | boolean | string[];
  }
  return { ok: true, help, values, positionals: parsed.positionals };
}

function flagErrorMessage(e: unknown): string {
  const msg = e instanceof Error ? e.message : String(e);
  // parseArgs messages are long and mention the API ("To specify a positional argument..."); keep the first sentence.
  const first = msg.split(/\. |\n/)[0];
  return first.replace(/^Unknown option/, 'unknown flag').replace(/^Option/, 'flag');
}

/**
 * Parse flags for `corvid <command>`; prints help (exit 0) or a usage error (exit 2) itself.
 * Returns the values, or an exit code when the command must stop.
 */
export function commandFlags(
  command: string,
  argv: string[],
  options: FlagOptions,
  help: string,
  io: CliIO,
  allowPositionals = false,
): { values: FlagValues; positionals: string[] } | number {
  const parsed = parseFlags(argv, options, allowPositionals);
  if (!parsed.ok) {
    io.stderr.write(`corvid ${command}: ${parsed.message}\nRun "corvid ${command} --help" for the flags and examples.\n`);
    return EXIT_USAGE;
  }
  if (parsed.help) {
    io.stdout.write(help.endsWith('\n') ? help : `${help}\n`);
    return 0;
  }
  return { values: parsed.values, positionals: parsed.positionals };
}

export function str(values: FlagValues, name: string): string | undefined {
  const v = values[name];
  return typeof v === 'string' ? v : undefined;
}

export function bool(values: FlagValues, name: string): boolean {
  return values[name] === true;
}

/**
 * A whole-number flag: undefined when absent, else the number, or a message for usage() when it is not digits or lies
 * outside [min, max].
 */
export function intFlag(values: FlagValues, name: string, min = 0, max = Number.MAX_SAFE_INTEGER): number | string | undefined {
  const text = str(values, name);
  if (text === undefined) return undefined;
  const n = /^\d+$/.test(text) ? Number(text) : NaN;
  if (n >= min && n <= max) return n;
  return min === 0 && max === Number.MAX_SAFE_INTEGER
    ? `--${name} must be a non-negative integer, got "${text}"`
    : `--${name} must be a whole number from ${min} to ${max} (got "${text}")`;
}
