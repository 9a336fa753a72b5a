// RFC 3339 helpers. Pure: parse given text, never read the clock.

/** Milliseconds since the epoch, or undefined for absent/unparseable text. */
export function parseTime(t: string | undefined): number | undefined {
  if (t === undefined || t === '') return undefined;
  const ms = Date.parse(t);
  return Number.isNaN(ms) ? undefined : ms;
}

/** Milliseconds since the epoch; throws on a malformed `now` (a caller bug, not data). */
export function parseNow(now: string): number {
  const ms = parseTime(now);
  if (ms === undefined) throw new RangeError(`now must be an RFC 3339 time, got ${JSON.stringify(now)}`);
  return ms;
}

/** RFC 3339 UTC text; whole seconds drop the `.000`. */
export function formatTime(ms: number): string {
  return new Date(ms).toISOString().replace('.000Z', 'Z');
}
