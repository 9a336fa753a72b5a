// Phases 2 and 3: verify (the commit signature, when verification is on) and validate (src/topology's loader).
// Both are verdicts about a revision: a revision that fails either never reaches the planner.

import { parseDocument } from 'yaml';
import { formatTopologyError, loadTopology } from '../topology/index.ts';
import type { Topology } from '../topology/types.ts';
import { looksLikeKeyMaterial } from '../topology/keymaterial.ts';
import { isDnsSubdomain } from '../plan/selector.ts';
import { REJECT, type ArtifactOk, type RejectReason } from './artifact.ts';

/** Most errors shown in a Ready message; the rest are counted. */
const MAX_ERRORS_IN_MESSAGE = 5;
/** The yaml library's own duplicate-key check compares every pair of keys (60,000 keys: minutes); loadTopology checks them in one pass. */
const PARSE_OPTIONS = { uniqueKeys: false } as const;

export interface Candidate {
  revision: string;
  file: string;
  topology: Topology;
  /** The document's spec as written (for the status object of git/file sources). */
  rawSpec: Record<string, unknown>;
  warnings: string[];
  object?: { name: string; generation?: number };
}

export type Verdict = { ok: true; candidate: Candidate } | { ok: false; reason: RejectReason; message: string; name?: string };

export function verify(a: ArtifactOk): { ok: true } | { ok: false; reason: RejectReason; message: string } {
  if (a.verification === undefined || a.verification.verified) return { ok: true };
  return { ok: false, reason: REJECT.verificationFailed, message: `${a.revision}: signature verification failed: ${a.verification.message}` };
}

/**
 * metadata.name of a YAML document, when it can be read at all (to report against the right Topology), and only when
 * it can name one: a rejected document's name goes into Events and logs, and might be a pasted key.
 */
export function documentName(text: string): string | undefined {
  try {
    const doc = parseDocument(text, PARSE_OPTIONS);
    const name = doc.getIn(['metadata', 'name']);
    return typeof name === 'string' && isDnsSubdomain(name) && !looksLikeKeyMaterial(name) ? name : undefined;
  } catch {
    return undefined;
  }
}

export function validate(a: ArtifactOk): Verdict {
  const v = verify(a);
  if (!v.ok) return { ...v, name: documentName(a.text) };
  const r = loadTopology(a.text, a.file);
  if (!r.ok) {
    const lines = r.errors.slice(0, MAX_ERRORS_IN_MESSAGE).map(formatTopologyError);
    if (r.errors.length > MAX_ERRORS_IN_MESSAGE) lines.push(`and ${r.errors.length - MAX_ERRORS_IN_MESSAGE} more errors`);
    return { ok: false, reason: REJECT.validationFailed, message: lines.join('\n'), name: documentName(a.text) };
  }
  // The document loadTopology read: no second parse.
  const doc = r.document;
  const spec = doc !== null && typeof doc === 'object' ? (doc as { spec?: unknown }).spec : undefined;
  const rawSpec = spec !== null && typeof spec === 'object' && !Array.isArray(spec) ? (spec as Record<string, unknown>) : {};
  return {
    ok: true,
    candidate: {
      revision: a.revision,
      file: a.file,
      topology: r.topology,
      rawSpec,
      warnings: r.warnings.map(formatTopologyError),
      ...(a.object ? { object: a.object } : {}),
    },
  };
}
