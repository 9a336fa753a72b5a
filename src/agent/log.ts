// Structured logs: one JSON object per line on stderr, {"ts","level","msg",...fields}.
// Nothing secret is ever passed in: PSK bytes stay in secrets.ts and the VICI client.

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

const ORDER: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export type LogFields = Record<string, unknown>;

export interface Logger {
  debug(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
  /** A logger that adds `fields` to every line. */
  child(fields: LogFields): Logger;
}

export interface JsonLoggerOptions {
  level?: LogLevel;
  now?: () => Date;
  fields?: LogFields;
}

function errorText(v: unknown): unknown {
  return v instanceof Error ? v.message : v;
}

export function jsonLogger(out: { write(s: string): unknown }, opts: JsonLoggerOptions = {}): Logger {
  const min = ORDER[opts.level ?? 'info'];
  const now = opts.now ?? (() => new Date());
  const base = opts.fields ?? {};
  const emit = (level: LogLevel, msg: string, fields?: LogFields): void => {
    if (ORDER[level] < min) return;
    const line: LogFields = { ts: now().toISOString(), level, msg, ...base };
    for (const [k, v] of Object.entries(fields ?? {})) if (v !== undefined) line[k] = errorText(v);
    out.write(`${JSON.stringify(line)}\n`);
  };
  return {
    debug: (m, f) => emit('debug', m, f),
    info: (m, f) => emit('info', m, f),
    warn: (m, f) => emit('warn', m, f),
    error: (m, f) => emit('error', m, f),
    child: (fields) => jsonLogger(out, { ...opts, fields: { ...base, ...fields } }),
  };
}

/** A logger that drops everything (tests). */
export const silentLogger: Logger = {
  debug() {},
  info() {},
  warn() {},
  error() {},
  child() {
    return silentLogger;
  },
};
