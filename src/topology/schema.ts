// The shape check: schemas/topology.schema.json through ajv, with every ajv error turned into a plain message at the
// most specific source position. Messages never repeat a value from the file (it might be a secret pasted by mistake).

import { Ajv2020 } from 'ajv/dist/2020.js';
import type { ErrorObject, ValidateFunction } from 'ajv/dist/2020.js';
import schemaJson from '../../schemas/topology.schema.json' with { type: 'json' };
import { DURATION_SHAPE, parseDuration } from './duration.ts';
import type { TopologyError } from './errors.ts';
import { KEY_MATERIAL_MESSAGE, looksLikeKeyMaterial } from './keymaterial.ts';
import type { Locator, PathSegment } from './parse.ts';
import { pointerToPath } from './parse.ts';

/** The topology JSON Schema (2020-12), as committed. */
export const TOPOLOGY_SCHEMA: Record<string, unknown> = schemaJson as Record<string, unknown>;

/** Annotation keyword: the message to show when the node's own constraint (pattern, bounds, const) fails. */
export const MESSAGE_KEYWORD = 'x-message';

/**
 * Keyword on a duration field: `{ minimum, maximum }`, both durations; a value outside them (or too large to count in
 * milliseconds exactly) is refused with a message naming the bound. The shape itself is checked by the pattern.
 */
export const DURATION_KEYWORD = 'x-duration';

interface DurationBounds {
  minimum: string;
  maximum: string;
}

/** The message for a duration outside its bounds, or undefined when it is within them or is not a duration at all. */
function durationBound(text: string, bounds: DurationBounds): string | undefined {
  if (!DURATION_SHAPE.test(text) || text.length < 2) return undefined;
  const s = parseDuration(text);
  if (s === undefined || s > parseDuration(bounds.maximum)!) return `must be at most ${bounds.maximum}`;
  if (s < parseDuration(bounds.minimum)!) return `must be at least ${bounds.minimum}`;
  return undefined;
}

/**
 * Keyword on a name field: a value that looks like key material is refused, and only that is said about it; `true`
 * says KEY_MATERIAL_MESSAGE (a Secret's key name), a string is the message.
 */
export const NOT_KEY_MATERIAL_KEYWORD = 'x-not-key-material';

let compiled: ValidateFunction | undefined;

function validator(): ValidateFunction {
  if (!compiled) {
    const ajv = new Ajv2020({ allErrors: true, strict: true, verbose: true });
    ajv.addKeyword({ keyword: MESSAGE_KEYWORD, schemaType: 'string' });
    ajv.addKeyword({
      keyword: NOT_KEY_MATERIAL_KEYWORD,
      schemaType: ['boolean', 'string'],
      errors: 'full',
      validate: (on: boolean | string, data: unknown) => !on || typeof data !== 'string' || !looksLikeKeyMaterial(data),
    });
    ajv.addKeyword({
      keyword: DURATION_KEYWORD,
      schemaType: 'object',
      errors: 'full',
      validate: (bounds: DurationBounds, data: unknown) => typeof data !== 'string' || durationBound(data, bounds) === undefined,
    });
    compiled = ajv.compile(TOPOLOGY_SCHEMA);
  }
  return compiled;
}

/** Field names that suggest someone pasted a secret instead of a reference. */
const SECRET_LIKE = /^(psk|pre-?shared-?key|key|secret|password|passphrase|token|private-?key|privatekey)$/i;

type SchemaNode = Record<string, unknown>;

function hint(e: ErrorObject): string | undefined {
  const parent = e.parentSchema as SchemaNode | undefined;
  const m = parent?.[MESSAGE_KEYWORD];
  return typeof m === 'string' ? m : undefined;
}

function typeWords(t: string): string {
  switch (t) {
    case 'string':
      return 'a string';
    case 'array':
      return 'a list';
    case 'object':
      return 'a mapping of fields';
    case 'boolean':
      return 'true or false';
    case 'integer':
      return 'a whole number';
    case 'number':
      return 'a number';
    default:
      return t;
  }
}

function valueAt(data: unknown, path: readonly PathSegment[]): unknown {
  let cur = data;
  for (const seg of path) {
    if (cur === null || typeof cur !== 'object') return undefined;
    cur = (cur as Record<string | number, unknown>)[seg];
  }
  return cur;
}

function editDistance(a: string, b: string): number {
  const dp = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let prev = dp[0];
    dp[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = dp[j];
      dp[j] = Math.min(dp[j] + 1, dp[j - 1] + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = tmp;
    }
  }
  return dp[b.length];
}

/** The closest of `names` to `word`, when close enough to be a likely typo. */
export function closest(word: string, names: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestD = Infinity;
  const w = word.toLowerCase();
  for (const n of names) {
    const d = editDistance(w, n.toLowerCase());
    if (d < bestD) {
      bestD = d;
      best = n;
    }
  }
  return best !== undefined && bestD <= Math.max(2, Math.floor(word.length / 3)) ? best : undefined;
}

function messageFor(e: ErrorObject, data: unknown, path: readonly PathSegment[]): string | undefined {
  const parent = e.parentSchema as SchemaNode | undefined;
  switch (e.keyword) {
    case 'additionalProperties': {
      const name = String((e.params as { additionalProperty: string }).additionalProperty);
      const allowed = Object.keys((parent?.properties as SchemaNode | undefined) ?? {});
      if (SECRET_LIKE.test(name) && !allowed.includes(name)) {
        return 'secrets never go in the topology file: remove this field, keep the pre-shared key in a Kubernetes Secret and point encryption.pskSecretRef {name, key} at it';
      }
      const guess = closest(name, allowed);
      const list = allowed.length > 0 ? ` (allowed here: ${allowed.join(', ')})` : '';
      return guess !== undefined
        ? `unknown field; did you mean "${guess}"? Fix the spelling or remove it${list}`
        : `unknown field; remove it or fix its spelling${list}`;
    }
    case 'required': {
      const missing = String((e.params as { missingProperty: string }).missingProperty);
      return `add the required field "${missing}"`;
    }
    case 'type': {
      const want = String((e.params as { type: string | string[] }).type);
      const value = valueAt(data, path);
      if (value === null || value === undefined) return `is empty; write ${typeWords(want)} here`;
      if (path.length === 0) return 'the document must be a mapping with apiVersion, kind, metadata and spec';
      if (want === 'string' && (typeof value === 'number' || typeof value === 'boolean')) {
        return 'must be a string; put the value in quotes';
      }
      if (want === 'integer' && typeof value === 'number') return hint(e) ?? 'must be a whole number';
      return `must be ${typeWords(want)}`;
    }
    case 'const':
      return hint(e) ?? `must be ${JSON.stringify((e.params as { allowedValue: unknown }).allowedValue)}`;
    case 'enum':
      return `must be one of: ${((e.params as { allowedValues: unknown[] }).allowedValues ?? []).map(String).join(', ')}`;
    case NOT_KEY_MATERIAL_KEYWORD:
      return typeof e.schema === 'string' ? e.schema : KEY_MATERIAL_MESSAGE;
    case DURATION_KEYWORD: {
      const value = valueAt(data, path);
      return typeof value === 'string' ? durationBound(value, e.schema as DurationBounds) : undefined;
    }
    case 'propertyNames':
      // Reported by the nested pattern error, which carries the offending key.
      return undefined;
    case 'pattern':
    case 'minLength':
    case 'maxLength':
    case 'minimum':
    case 'maximum':
    case 'exclusiveMinimum':
    case 'exclusiveMaximum':
    case 'minItems':
    case 'maxItems': {
      const h = hint(e);
      if (h) return h;
      const p = e.params as { limit?: number };
      switch (e.keyword) {
        case 'minLength':
          return p.limit === 1 ? 'must not be empty' : `must be at least ${p.limit} characters long`;
        case 'maxLength':
          return `must be at most ${p.limit} characters long`;
        case 'minimum':
          return `must be at least ${p.limit}`;
        case 'maximum':
          return `must be at most ${p.limit}`;
        case 'minItems':
          return `must list at least ${p.limit} item${p.limit === 1 ? '' : 's'}`;
        case 'maxItems':
          return `must list at most ${p.limit} item${p.limit === 1 ? '' : 's'}`;
        default:
          return 'has the wrong format';
      }
    }
    default:
      return 'does not match the topology schema (see docs/topology.md)';
  }
}

/**
 * Check `data` against the topology schema. Returns every violation, each at the most specific node: an unknown field
 * at its key, a missing field at the key of the mapping that lacks it, a bad value at the value.
 */
export function checkSchema(data: unknown, at: Locator): TopologyError[] {
  const validate = validator();
  if (validate(data)) return [];
  const out: TopologyError[] = [];
  /** The key-material errors, and the paths they are about. */
  const material = new Set<TopologyError>();
  const materialPaths = new Set<string>();
  for (const e of validate.errors ?? []) {
    const base = pointerToPath(e.instancePath, data);
    let path: PathSegment[] = base;
    let part: 'key' | 'value' = 'value';
    if (e.keyword === 'additionalProperties') {
      path = [...base, String((e.params as { additionalProperty: string }).additionalProperty)];
      part = 'key';
    } else if (e.propertyName !== undefined) {
      path = [...base, e.propertyName];
      part = 'key';
    } else if (e.keyword === 'required') {
      part = 'key';
    }
    const message = messageFor(e, data, path);
    if (message === undefined) continue;
    const err = at.error(path, message, part);
    if (e.keyword === NOT_KEY_MATERIAL_KEYWORD) {
      material.add(err);
      materialPaths.add(err.path);
    }
    out.push(err);
  }
  // Key material says only that: drop the other complaints (pattern, length) about the same value.
  return material.size === 0 ? out : out.filter((x) => material.has(x) || !materialPaths.has(x.path));
}
