// Durations as written in the topology (`30s`, `2m`, `1m30s`, `500ms`) to seconds.

/** The written form of a duration (the schema's duration pattern says the same, plus at least one unit). */
export const DURATION_SHAPE = /^(?:([0-9]+)h)?(?:([0-9]+)m(?!s))?(?:([0-9]+)s)?(?:([0-9]+)ms)?$/;

/**
 * Seconds in a duration string, or undefined when it is not one (units h, m, s, ms; largest first) or when its
 * milliseconds do not fit a safe integer: the sum is computed exactly (BigInt), so it never overflows or rounds.
 */
export function parseDuration(text: string): number | undefined {
  if (text.length < 2) return undefined;
  const m = DURATION_SHAPE.exec(text);
  if (!m || (m[1] ?? m[2] ?? m[3] ?? m[4]) === undefined) return undefined;
  const n = (s: string | undefined): bigint => (s === undefined ? 0n : BigInt(s));
  const ms = ((n(m[1]) * 60n + n(m[2])) * 60n + n(m[3])) * 1000n + n(m[4]);
  return ms <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(ms) / 1000 : undefined;
}

/** A duration in its shortest form: 90 -> `1m30s`, 0.5 -> `500ms`. */
export function formatDuration(seconds: number): string {
  let ms = Math.round(seconds * 1000);
  if (ms === 0) return '0s';
  let out = '';
  for (const [unit, size] of [
    ['h', 3_600_000],
    ['m', 60_000],
    ['s', 1000],
    ['ms', 1],
  ] as const) {
    if (ms >= size) {
      out += `${Math.floor(ms / size)}${unit}`;
      ms %= size;
    }
  }
  return out;
}
