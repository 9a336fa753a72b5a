// Canonical form of Gateway objects: sorted keys, no server-owned fields, byte-stable YAML and JSON.

import { stringify } from 'yaml';
import { OWNED_LABELS } from './keys.ts';
import type { Gateway } from './types.ts';
import { canonicalize } from './canonical.ts';

/** metadata fields the API server owns; never part of desired state. */
export const SERVER_METADATA_FIELDS = [
  'resourceVersion',
  'uid',
  'generation',
  'creationTimestamp',
  'managedFields',
  'selfLink',
  'deletionTimestamp',
  'deletionGracePeriodSeconds',
] as const;

/** The Gateway with sorted keys and without server fields (resourceVersion, uid, generation, creationTimestamp, managedFields, …). */
export function canonicalGateway(gw: Gateway): Gateway {
  const copy = { ...gw, metadata: { ...gw.metadata } } as Gateway & { metadata: Record<string, unknown> };
  for (const f of SERVER_METADATA_FIELDS) delete copy.metadata[f];
  if (copy.metadata.labels && Object.keys(copy.metadata.labels).length === 0) delete copy.metadata.labels;
  if (copy.metadata.annotations && Object.keys(copy.metadata.annotations).length === 0) delete copy.metadata.annotations;
  return canonicalize(copy);
}

/** How Corvid writes YAML: no folded lines, no anchors or aliases. */
export const YAML_OPTIONS = { lineWidth: 0, minContentWidth: 0, aliasDuplicateObjects: false } as const;

/** A YAML stream, one document per Gateway in the given order, each starting with `---`. Empty input -> ''. */
export function renderGatewaysYaml(gws: readonly Gateway[]): string {
  return gws.map((g) => `---\n${stringify(canonicalGateway(g), YAML_OPTIONS)}`).join('');
}

/** The annotation prefix Corvid owns. */
export const CORVID_PREFIX = 'corvid.dev/';

function ownedLabels(gw: Gateway): Record<string, string> {
  const out: Record<string, string> = {};
  const labels = gw.metadata.labels ?? {};
  for (const k of OWNED_LABELS) if (labels[k] !== undefined) out[k] = labels[k];
  return out;
}

function ownedAnnotations(gw: Gateway): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(gw.metadata.annotations ?? {})) if (k.startsWith(CORVID_PREFIX)) out[k] = v;
  return out;
}

/** The part of a Gateway Corvid owns: apiVersion, kind, name, its labels, every corvid.dev/ annotation, spec, status. */
export function ownedView(gw: Gateway): unknown {
  return canonicalize({
    apiVersion: gw.apiVersion,
    kind: gw.kind,
    name: gw.metadata.name,
    labels: ownedLabels(gw),
    annotations: ownedAnnotations(gw),
    spec: gw.spec ?? {},
    status: gw.status ?? {},
  });
}

/**
 * Desired vs live: equal when every field Corvid owns is equal. Labels and annotations added by others (and
 * server fields) are ignored; a corvid.dev/ annotation present on only one side is a difference.
 */
export function gatewaysEqual(a: Gateway, b: Gateway): boolean {
  return JSON.stringify(ownedView(a)) === JSON.stringify(ownedView(b));
}
