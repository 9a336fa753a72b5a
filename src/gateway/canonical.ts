// Sorted-key copies and JSON: equal values give equal bytes. Apart from render.ts so that readers of canonical JSON
// (the agent among them) do not load the YAML library.

/** A deep copy with object keys sorted (code-unit order); arrays keep their order; `undefined` members dropped. */
export function canonicalize<T>(value: T): T {
  if (Array.isArray(value)) return value.map((v) => canonicalize(v)) as T;
  if (value !== null && typeof value === 'object' && !(value instanceof Date)) {
    const out: Record<string, unknown> = {};
    for (const k of Object.keys(value).sort()) {
      const v = (value as Record<string, unknown>)[k];
      if (v !== undefined) out[k] = canonicalize(v);
    }
    return out as T;
  }
  return value;
}

/** JSON with sorted keys and no whitespace: equal values give equal bytes. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(canonicalize(value));
}
