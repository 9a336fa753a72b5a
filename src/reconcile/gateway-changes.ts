// What the apply and prune phases must do: desired vs live, per Gateway and per part (metadata+spec, status).
// Pure. The prune set is exactly the live Gateways labelled managed-by=corvid and corvid.dev/topology=<topology> that
// are no longer desired; nothing else is ever deleted.
// With the Gateway spec owned by someone else (gatewaySpec 'external', e.g. Argo CD applying `corvid render`),
// computeStatusOnlyChanges decides instead which Gateways the sync may write status to and which it waits for.

import { LIVE_STATE_ANNOTATIONS, MANAGED_BY_LABEL, MANAGED_BY_VALUE, REVISION_ANNOTATION, TOPOLOGY_LABEL } from '../gateway/keys.ts';
import { canonicalJson } from '../gateway/canonical.ts';
import { gatewaysEqual, ownedView } from '../gateway/render.ts';
import type { Gateway } from '../gateway/types.ts';

export interface GatewayChange {
  name: string;
  desired: Gateway;
  live?: Gateway;
  /** metadata (owned labels and corvid.dev/ annotations) or spec differ. */
  spec: boolean;
  /** status differs. */
  status: boolean;
  /**
   * The live-state annotations (election, WireGuard keys) differ, and the spec is not the sync's to write: patch those
   * alone.
   */
  liveAnnotations?: boolean;
  /** Live differs from what this sync wrote last, while the desired state did not change: someone edited it. */
  drift: boolean;
}

export interface ChangeSet {
  apply: GatewayChange[];
  prune: Gateway[];
  /** Names of desired Gateways already equal to live. */
  unchanged: string[];
}

function withoutStatus(g: Gateway): Gateway {
  return { ...g, status: undefined };
}

/** The owned view of a Gateway as one string (what the sync remembers it wrote). */
export function ownedKey(g: Gateway): string {
  return canonicalJson(ownedView(g));
}

export function specEqual(a: Gateway, b: Gateway): boolean {
  return gatewaysEqual(withoutStatus(a), withoutStatus(b));
}

export function statusEqual(a: Gateway, b: Gateway): boolean {
  return canonicalJson(a.status ?? {}) === canonicalJson(b.status ?? {});
}

/** `g` without status and without these annotations. */
function withoutStatusAnd(g: Gateway, annotationKeys: readonly string[]): Gateway {
  const annotations = { ...(g.metadata.annotations ?? {}) };
  for (const k of annotationKeys) delete annotations[k];
  return { ...g, metadata: { ...g.metadata, annotations }, status: undefined };
}

/** Exactly what `corvid render` (no nodes) prints: no status, no live-state annotation. */
function renderedPart(g: Gateway): Gateway {
  return withoutStatusAnd(g, LIVE_STATE_ANNOTATIONS);
}

/** What the topology decides about a Gateway: its rendered part without the revision stamp. */
function topologyPart(g: Gateway): Gateway {
  return withoutStatusAnd(g, [...LIVE_STATE_ANNOTATIONS, REVISION_ANNOTATION]);
}

/**
 * `desired` stamped with the live Gateway's revision when nothing the topology decides about it changed, so that a
 * commit touching one pool rewrites one Gateway, not all of them (and wakes no agent for the others). The annotation
 * then says which revision last changed the Gateway; the Topology's status says which one is in force.
 */
export function keepLiveRevision(desired: Gateway, live: Gateway | undefined): Gateway {
  const liveRevision = live?.metadata.annotations?.[REVISION_ANNOTATION];
  if (live === undefined || liveRevision === undefined || liveRevision === desired.metadata.annotations?.[REVISION_ANNOTATION]) return desired;
  if (!gatewaysEqual(topologyPart(desired), topologyPart(live))) return desired;
  return { ...desired, metadata: { ...desired.metadata, annotations: { ...desired.metadata.annotations, [REVISION_ANNOTATION]: liveRevision } } };
}

/** Owned labels, corvid.dev/ annotations but the live-state ones, and spec are equal: the part the spec owner writes. */
export function renderedEqual(a: Gateway, b: Gateway): boolean {
  return gatewaysEqual(renderedPart(a), renderedPart(b));
}

function isDeleting(g: Gateway): boolean {
  return (g.metadata as { deletionTimestamp?: string }).deletionTimestamp !== undefined;
}

/** Live differs from what this sync wrote last, while the desired state is still what it wrote. */
function drifted(d: Gateway, l: Gateway | undefined, lastWritten: ReadonlyMap<string, string>): boolean {
  const written = lastWritten.get(d.metadata.name);
  return l !== undefined && written !== undefined && written === ownedKey(d) && written !== ownedKey(l);
}

export function isOwnedBy(g: Gateway, topology: string): boolean {
  const l = g.metadata.labels ?? {};
  return l[MANAGED_BY_LABEL] === MANAGED_BY_VALUE && l[TOPOLOGY_LABEL] === topology;
}

/**
 * @param topology the topology whose Gateways are pruned when no longer desired (with a renamed one's former name).
 * @param lastWritten name -> ownedKey of what this sync last wrote (for drift detection; may be empty).
 */
export function computeChanges(
  desired: readonly Gateway[],
  live: readonly Gateway[],
  topology: string | readonly string[],
  lastWritten: ReadonlyMap<string, string> = new Map(),
): ChangeSet {
  // Several names: a renamed topology prunes its former name's Gateways too (src/sync/ownership.ts).
  const owners = typeof topology === 'string' ? [topology] : topology;
  const liveByName = new Map(live.map((g) => [g.metadata.name, g]));
  const wanted = new Set(desired.map((g) => g.metadata.name));
  const apply: GatewayChange[] = [];
  const unchanged: string[] = [];
  for (const planned of desired) {
    const l = liveByName.get(planned.metadata.name);
    const d = keepLiveRevision(planned, l);
    const spec = l === undefined || !specEqual(d, l);
    const status = l === undefined ? (d.status !== undefined && canonicalJson(d.status) !== '{}') : !statusEqual(d, l);
    if (!spec && !status) {
      unchanged.push(d.metadata.name);
      continue;
    }
    apply.push({ name: d.metadata.name, desired: d, ...(l ? { live: l } : {}), spec, status, drift: drifted(d, l, lastWritten) });
  }
  const prune = live
    .filter((g) => !wanted.has(g.metadata.name) && owners.some((t) => isOwnedBy(g, t)) && !isDeleting(g))
    .sort((a, b) => (a.metadata.name < b.metadata.name ? -1 : 1));
  return { apply, prune, unchanged };
}

/**
 * The guard against a revision that would delete every Gateway: refused unless the topology says allowEmpty.
 * Returns the refusal message, or undefined when the change set may proceed.
 */
export function emptyRefusal(desired: readonly Gateway[], changes: ChangeSet, allowEmpty: boolean): string | undefined {
  if (allowEmpty || desired.length > 0 || changes.prune.length === 0) return undefined;
  return `the topology yields no Gateways; applying it would delete all ${changes.prune.length} (${changes.prune
    .map((g) => g.metadata.name)
    .join(', ')}). Set spec.allowEmpty: true if that is intended`;
}

/** A planned Gateway whose spec is not (yet) what the plan says, so the sync leaves it alone in external mode. */
export interface WaitingGateway {
  name: string;
  /** missing: not there; other-revision: its corvid.dev/revision is another; differs: same revision, other content. */
  why: 'missing' | 'deleting' | 'other-revision' | 'differs';
  liveRevision?: string;
}

export interface StatusOnlyChanges extends ChangeSet {
  waiting: WaitingGateway[];
}

/**
 * External spec mode: the spec owner (Argo CD) creates, updates and prunes Gateways; the sync writes status and the
 * live-state annotations (election, WireGuard keys), and only to a live Gateway whose rendered part (renderedEqual: labels, corvid.dev/ annotations
 * including the revision, spec) equals the plan's, since status elected for another spec could point at a candidate
 * that spec does not have. Every other planned Gateway is waiting. Nothing is pruned: `prune` is always empty.
 */
export function computeStatusOnlyChanges(
  desired: readonly Gateway[],
  live: readonly Gateway[],
  lastWritten: ReadonlyMap<string, string> = new Map(),
): StatusOnlyChanges {
  const liveByName = new Map(live.map((g) => [g.metadata.name, g]));
  const apply: GatewayChange[] = [];
  const unchanged: string[] = [];
  const waiting: WaitingGateway[] = [];
  for (const d of desired) {
    const name = d.metadata.name;
    const l = liveByName.get(name);
    if (l === undefined || isDeleting(l)) {
      waiting.push({ name, why: l === undefined ? 'missing' : 'deleting' });
      continue;
    }
    if (!renderedEqual(d, l)) {
      const liveRevision = l.metadata.annotations?.[REVISION_ANNOTATION];
      const why = liveRevision === d.metadata.annotations?.[REVISION_ANNOTATION] ? 'differs' : 'other-revision';
      waiting.push({ name, why, ...(liveRevision !== undefined ? { liveRevision } : {}) });
      continue;
    }
    const liveAnnotations = LIVE_STATE_ANNOTATIONS.some((k) => d.metadata.annotations?.[k] !== l.metadata.annotations?.[k]);
    const status = !statusEqual(d, l);
    if (!liveAnnotations && !status) {
      unchanged.push(name);
      continue;
    }
    apply.push({ name, desired: d, live: l, spec: false, liveAnnotations, status, drift: drifted(d, l, lastWritten) });
  }
  waiting.sort((a, b) => (a.name < b.name ? -1 : 1));
  return { apply, prune: [], unchanged, waiting };
}

/** The status message for waiting Gateways: sorted, the first `max` named with why, then a count of the rest. */
export function waitingMessage(waiting: readonly WaitingGateway[], revision: string, max = 5): string {
  const why = (w: WaitingGateway): string =>
    w.why === 'other-revision' ? `at ${w.liveRevision ?? 'no revision'}` : w.why === 'differs' ? 'spec differs from the plan' : w.why;
  const named = [...waiting]
    .sort((a, b) => (a.name < b.name ? -1 : 1))
    .slice(0, max)
    .map((w) => `${w.name} (${why(w)})`);
  const more = waiting.length > max ? `, and ${waiting.length - max} more` : '';
  return `waiting for the spec owner to apply revision ${revision} to ${waiting.length} Gateway${waiting.length === 1 ? '' : 's'}: ${named.join(', ')}${more}`;
}
