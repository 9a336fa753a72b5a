// YAML text -> plain data, keeping a way back from any JSON path to its line and column.

import { isAlias, isMap, isPair, isScalar, isSeq, LineCounter, parseAllDocuments } from 'yaml';
import type { Document, Node, Pair } from 'yaml';
import type { TopologyError } from './errors.ts';
import { looksLikeKeyMaterial } from './keymaterial.ts';

export type PathSegment = string | number;

export interface Position {
  line: number;
  col: number;
}

const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]*$/;
/** A Kubernetes label key (which includes every DNS-1123 subdomain): the other keys a path may quote. */
const LABEL_KEY = /^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/;

/**
 * `spec.pools[2].gateways[0].publicIP`; keys that are not identifiers are written `["a.b/c"]` when they are label keys
 * or DNS names. Any other key, and any key that looks like key material, is written `[this key]`: a path never
 * repeats what might be a pasted secret.
 */
export function formatPath(path: readonly PathSegment[]): string {
  let out = '';
  for (const seg of path) {
    if (typeof seg === 'number') out += `[${seg}]`;
    else if (seg.length > 253 || looksLikeKeyMaterial(seg)) out += '[this key]';
    else if (IDENTIFIER.test(seg)) out += out === '' ? seg : `.${seg}`;
    else if (LABEL_KEY.test(seg) && seg.length <= 317) out += `[${JSON.stringify(seg)}]`;
    else out += '[this key]';
  }
  return out;
}

/** Split an ajv instancePath (`/spec/pools/0/name`) into segments; numeric segments become numbers. */
export function pointerToPath(pointer: string, data: unknown): PathSegment[] {
  if (pointer === '') return [];
  const out: PathSegment[] = [];
  let cur: unknown = data;
  for (const raw of pointer.slice(1).split('/')) {
    const seg = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    if (Array.isArray(cur) && /^(0|[1-9][0-9]*)$/.test(seg)) {
      out.push(Number(seg));
      cur = cur[Number(seg)];
    } else {
      out.push(seg);
      cur = cur !== null && typeof cur === 'object' ? (cur as Record<string, unknown>)[seg] : undefined;
    }
  }
  return out;
}

/** Which part of a map entry an error is about. */
export type NodePart = 'value' | 'key';

/** Maps JSON paths of the parsed document back to source positions. */
export class Locator {
  readonly file: string;
  private readonly doc: Document | undefined;
  private readonly lines: LineCounter;
  private readonly textLength: number;

  constructor(file: string, doc: Document | undefined, lines: LineCounter, textLength: number) {
    this.file = file;
    this.doc = doc;
    this.lines = lines;
    this.textLength = textLength;
  }

  /** 1-based line and column of a character offset. */
  offset(offset: number): Position {
    const o = Math.max(0, Math.min(offset, this.textLength));
    const p = this.lines.linePos(o);
    return { line: Math.max(1, p.line || 1), col: Math.max(1, p.col || 1) };
  }

  /**
   * Position of the node at `path`: of its value by default, of its key with `part: 'key'`. When the path does not
   * exist (a missing field), the position of the deepest existing ancestor entry (its key) is used.
   */
  at(path: readonly PathSegment[], part: NodePart = 'value'): Position {
    const doc = this.doc;
    if (!doc || !doc.contents) return { line: 1, col: 1 };
    let node: unknown = doc.contents;
    let keyNode: Node | undefined;
    for (const seg of path) {
      let next: unknown;
      let nextKey: Node | undefined;
      if (isMap(node)) {
        const pair = this.entries(node).get(String(seg));
        if (!pair) break;
        next = pair.value;
        nextKey = isScalar(pair.key) || isMap(pair.key) || isSeq(pair.key) ? (pair.key as Node) : undefined;
        if (next === null || next === undefined) {
          // `key:` with nothing after it: the key is the only place to point at.
          keyNode = nextKey;
          node = undefined;
          continue;
        }
      } else if (isSeq(node) && typeof seg === 'number') {
        next = node.items[seg];
        if (next === undefined) break;
        nextKey = undefined;
      } else {
        break;
      }
      node = next;
      keyNode = nextKey;
    }
    const usable = (n: unknown): n is Node => n !== undefined && n !== null && Array.isArray((n as Node).range);
    const emptyScalar = isScalar(node) && node.value === null && (node.source === '' || node.source === undefined);
    if (part === 'key' && keyNode && usable(keyNode)) return this.offset(keyNode.range![0]);
    if (usable(node) && !(emptyScalar && keyNode)) return this.offset(node.range![0]);
    if (keyNode && usable(keyNode)) return this.offset(keyNode.range![0]);
    if (usable(node)) return this.offset(node.range![0]);
    return this.offset(usable(doc.contents) ? doc.contents.range![0] : 0);
  }

  /** Each mapping's entries by key text (the first of equal keys), built once: one lookup per path segment. */
  private readonly index = new WeakMap<object, Map<string, Pair>>();

  private entries(map: { items: Pair[] }): Map<string, Pair> {
    let m = this.index.get(map);
    if (m === undefined) {
      m = new Map();
      for (const p of map.items) {
        const k = keyText(p.key);
        if (k !== undefined && !m.has(k)) m.set(k, p);
      }
      this.index.set(map, m);
    }
    return m;
  }

  /** A TopologyError at `path`. */
  error(path: readonly PathSegment[], message: string, part: NodePart = 'value'): TopologyError {
    const pos = this.at(path, part);
    return { file: this.file, line: pos.line, col: pos.col, path: formatPath(path), message };
  }
}

function keyText(key: unknown): string | undefined {
  if (isScalar(key)) return String(key.value);
  if (key === null || key === undefined) return undefined;
  return String(key);
}

export type ParseResult =
  | { ok: true; data: unknown; locator: Locator; warnings: TopologyError[] }
  | { ok: false; errors: TopologyError[] };

/**
 * Parse one YAML document, keeping positions. Reports YAML's own errors at YAML's own positions, and refuses a
 * stream with more than one document or with none.
 */
export function parseYaml(text: string, file: string): ParseResult {
  const encoding = encodingProblem(text);
  if (encoding !== undefined) return { ok: false, errors: [{ file, line: 1, col: 1, path: '', message: encoding }] };
  const lines = new LineCounter();
  const docs = parseAllDocuments(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: false, logLevel: 'error' });
  const bare = new Locator(file, undefined, lines, text.length);
  const asError = (e: { pos: [number, number]; message: string; code?: string }): TopologyError => {
    const pos = bare.offset(errorOffset(text, e));
    return { file, line: pos.line, col: pos.col, path: '', message: yamlMessage(e.message, e.code) };
  };
  const list = Array.isArray(docs) ? docs : [];
  const errors: TopologyError[] = [];
  for (const d of list) {
    // A nesting too deep for the parser gives one error per level: one is enough.
    const exhausted = d.errors.find((e) => e.code === 'RESOURCE_EXHAUSTION');
    errors.push(...(exhausted ? [asError(exhausted)] : d.errors.map(asError)));
  }
  if (list.length > 1) {
    const second = list[1];
    const start = second.range?.[0] ?? 0;
    // Point at the `---` that opens the second document when there is one.
    const marker = text.lastIndexOf('---', Math.max(0, start));
    const pos = bare.offset(marker >= 0 && marker <= start ? marker : start);
    errors.push({
      file,
      line: pos.line,
      col: pos.col,
      path: '',
      message: `the file holds ${list.length} YAML documents; a topology file holds exactly one: remove the extra "---" documents or move them to files of their own`,
    });
  }
  if (errors.length > 0) return { ok: false, errors };
  const doc = list[0];
  if (!doc || doc.contents === null || (isScalar(doc.contents) && doc.contents.value === null)) {
    return {
      ok: false,
      errors: [
        {
          file,
          line: 1,
          col: 1,
          path: '',
          message: 'the file is empty; write a Topology with apiVersion, kind, metadata and spec (see topology/example.yaml)',
        },
      ],
    };
  }
  const shape = shapeErrors(doc.contents, (offset) => bare.offset(offset), file);
  if (shape.length > 0) return { ok: false, errors: shape };
  let data: unknown;
  try {
    data = doc.toJS({ maxAliasCount: 100 });
  } catch (e) {
    const msg = e instanceof Error ? e.message : 'the document cannot be read';
    return { ok: false, errors: [{ file, line: 1, col: 1, path: '', message: yamlMessage(msg) }] };
  }
  if (expandsBeyond(data, MAX_VALUES)) {
    return {
      ok: false,
      errors: [{ file, line: 1, col: 1, path: '', message: `the document expands to more than ${MAX_VALUES} values (aliases repeating large parts); write it out or use fewer aliases` }],
    };
  }
  const locator = new Locator(file, doc, lines, text.length);
  const warnings = doc.warnings.map(asError);
  return { ok: true, data, locator, warnings };
}

/** A text that is not UTF-8 YAML with LF or CRLF line ends, in words; undefined when it is. */
function encodingProblem(text: string): string | undefined {
  const head = text.slice(0, 4096);
  // UTF-16 read as UTF-8: a byte-order mark turned into replacement characters, and a NUL beside every ASCII byte.
  if (head.startsWith('\uFFFD\uFFFD') || head.includes('\u0000')) {
    return 'the file is not UTF-8 (it looks like UTF-16: a byte-order mark or NUL bytes); save it as UTF-8';
  }
  if (text.includes('\r') && !text.includes('\n')) {
    return 'the file ends its lines with a bare CR (old Mac style), so YAML sees a single line; save it with LF or CRLF line ends';
  }
  return undefined;
}

/** Where a YAML error belongs: an unclosed quote at its opening quote, not at the end of the file. */
function errorOffset(text: string, e: { pos: [number, number]; message: string; code?: string }): number {
  if (e.code === 'MISSING_CHAR') {
    const quote = /closing (["'])/.exec(e.message)?.[1];
    if (quote !== undefined) {
      const open = text.lastIndexOf(quote, Math.max(0, e.pos[0] - 1));
      if (open >= 0) return open;
    }
  }
  return e.pos[0];
}

/** Values (scalars, lists, maps) a document may expand to with its aliases resolved: 10,000 pools need about 300,000. */
export const MAX_VALUES = 2_000_000;

/**
 * Whether `data` counts more than `max` values when every shared (aliased) part is counted each time it is used, as
 * every later step (schema, semantics, normalising) would walk it. Stops as soon as it knows: O(max) at worst.
 */
function expandsBeyond(data: unknown, max: number): boolean {
  let count = 0;
  const stack: unknown[] = [data];
  while (stack.length > 0) {
    const v = stack.pop();
    if (++count > max) return true;
    if (Array.isArray(v)) for (const x of v) stack.push(x);
    else if (v !== null && typeof v === 'object') for (const x of Object.values(v)) stack.push(x);
  }
  return false;
}

/** How deep a topology may nest (one needs about 8 levels). */
export const MAX_NESTING = 64;

/**
 * What YAML lets through but a topology cannot mean: two keys of one mapping that become the same key (`1` and
 * `"1"`), an alias whose anchor is defined nowhere before it, nesting deeper than MAX_NESTING. Each at its place,
 * without quoting the file.
 */
function shapeErrors(root: unknown, at: (offset: number) => Position, file: string): TopologyError[] {
  const errors: TopologyError[] = [];
  const anchors = new Set<string>();
  const error = (node: unknown, message: string): void => {
    const range = (node as { range?: [number, number] } | null)?.range;
    const pos = at(range?.[0] ?? 0);
    errors.push({ file, line: pos.line, col: pos.col, path: '', message });
  };
  const walk = (node: unknown, depth: number): void => {
    if (errors.length > 0 || node === null || node === undefined) return;
    if (depth > MAX_NESTING) {
      error(node, `the document nests deeper than ${MAX_NESTING} levels; a topology needs far fewer`);
      return;
    }
    const anchor = (node as { anchor?: unknown }).anchor;
    if (typeof anchor === 'string') anchors.add(anchor);
    if (isAlias(node)) {
      if (!anchors.has(node.source)) error(node, 'invalid YAML: this alias (*name) refers to no anchor (&name) defined before it; define the anchor first, or write the value');
      return;
    }
    if (isMap(node)) {
      // Checked here in one pass with a Set: the yaml library's own uniqueKeys check compares every pair of keys.
      const seen = new Map<string, unknown>();
      for (const item of node.items) {
        const k = keyText(item.key);
        const first = k === undefined ? undefined : seen.get(k);
        if (first !== undefined) {
          const written = (n: unknown): unknown => (isScalar(n) ? `${n.type ?? ''}:${String(n.source ?? n.value)}` : n);
          error(
            item.key,
            written(first) === written(item.key)
              ? 'invalid YAML: a key appears twice in the same mapping; keep one'
              : 'invalid YAML: two keys of this mapping are the same key once read (for example 1 and "1"); keep one',
          );
          return;
        }
        if (k !== undefined) seen.set(k, item.key);
        walk(item.key, depth + 1);
        walk(item.value, depth + 1);
      }
    } else if (isSeq(node)) {
      for (const item of node.items) walk(item, depth + 1);
    }
  };
  walk(root, 1);
  return errors;
}

/** Plain words for YAML errors whose own message would quote the file. */
const YAML_MESSAGES: Record<string, string> = {
  DUPLICATE_KEY: 'a key appears twice in the same mapping; keep one',
  TAG_RESOLVE_FAILED: 'unknown tag; remove the "!" tag, a topology needs none',
  BAD_COLLECTION_TYPE: 'the tag does not fit this kind of node; remove the "!" tag',
  BAD_DQ_ESCAPE: 'invalid escape sequence in a double-quoted string',
  BAD_SCALAR_START: 'a plain value cannot start with this character; put the value in quotes',
  BAD_DIRECTIVE: 'unknown or unsupported "%" directive; remove it',
  MISSING_CHAR: 'a quoted value or a bracket is not closed; add the closing quote or bracket',
  RESOURCE_EXHAUSTION: 'the file nests too deeply (or repeats too much) to be read; a topology nests about 8 levels',
};

/**
 * YAML's message, on one line, without a trailing period and without any part of the file it might quote (a
 * secret pasted into the wrong place must not come back in an error).
 */
export function yamlMessage(message: string, code?: string): string {
  const fixed = code !== undefined ? YAML_MESSAGES[code] : undefined;
  if (fixed) return `invalid YAML: ${fixed}`;
  let m = message.split('\n')[0].trim();
  m = m.replace(/"(?:[^"\\]|\\.)*"?/g, '').replace(/'(?:[^']|'')*'?/g, '');
  if (code !== 'MISSING_CHAR') {
    const cut = m.search(/:\s/);
    if (cut >= 0) m = m.slice(0, cut);
  }
  m = m.replace(/[\s:]+$/, '').replace(/\.$/, '');
  return `invalid YAML: ${m === '' ? 'the file cannot be read as YAML' : m}`;
}
