// Structured logs, the one logger of the sync, the agent and the CLI: one JSON object per line on stderr,
// {ts, level, msg, ...fields}. Never pass secrets as fields: PSK bytes stay in the agent's secrets.ts and the VICI client.

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

const ORDER: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
  /** A logger that adds `fields` to every line. */
  with(fields: Record<string, unknown>): Logger;
}

function errorText(v: unknown): unknown {
  return v instanceof Error ? v.message : v;
}

/** A JSON-lines logger writing to `write` (default: stderr), dropping lines below `level`. */
export function jsonLogger(
  opts: { level?: LogLevel; write?: (line: string) => void; base?: Record<string, unknown>; now?: () => Date } = {},
): Logger {
  const min = ORDER[opts.level ?? 'info'];
  const write = opts.write ?? ((line: string) => process.stderr.write(line));
  const base = opts.base ?? {};
  const now = opts.now ?? (() => new Date());
  const emit = (level: LogLevel, msg: string, fields?: Record<string, unknown>): void => {
    if (ORDER[level] < min) return;
    const rec: Record<string, unknown> = { ts: now().toISOString(), level, msg, ...base };
    for (const [k, v] of Object.entries(fields ?? {})) if (v !== undefined) rec[k] = errorText(v);
    let line: string;
    try {
      line = JSON.stringify(rec);
    } catch {
      line = JSON.stringify({ ts: rec.ts, level, msg, note: 'fields not serialisable' });
    }
    write(`${line}\n`);
  };
  return {
    debug: (m, f) => emit('debug', m, f),
    info: (m, f) => emit('info', m, f),
    warn: (m, f) => emit('warn', m, f),
    error: (m, f) => emit('error', m, f),
    with: (fields) => jsonLogger({ ...opts, base: { ...base, ...fields } }),
  };
}

/** Discards everything. */
export const silentLogger: Logger = {
  debug() {},
  info() {},
  warn() {},
  error() {},
  with() {
    return silentLogger;
  },
};
