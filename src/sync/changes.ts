// What the apply and prune phases must do: desired vs live, per Gateway and per part (metadata+spec, status).
// Pure. The prune set is exactly the live Gateways labelled managed-by=corvid and corvid.dev/topology=<topology> that
// are no longer desired; nothing else is ever deleted.

import { MANAGED_BY_LABEL, MANAGED_BY_VALUE, TOPOLOGY_LABEL } from '../gateway/keys.ts';
import { canonicalJson, gatewaysEqual, ownedView } from '../gateway/render.ts';
import type { Gateway } from '../gateway/types.ts';

export interface GatewayChange {
  name: string;
  desired: Gateway;
  live?: Gateway;
  /** metadata (owned labels and corvid.dev/ annotations) or spec differ. */
  spec: boolean;
  /** status differs. */
  status: boolean;
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

export function isOwnedBy(g: Gateway, topology: string): boolean {
  const l = g.metadata.labels ?? {};
  return l[MANAGED_BY_LABEL] === MANAGED_BY_VALUE && l[TOPOLOGY_LABEL] === topology;
}

/**
 * @param lastWritten name -> ownedKey of what this sync last wrote (for drift detection; may be empty).
 */
export function computeChanges(
  desired: readonly Gateway[],
  live: readonly Gateway[],
  topology: string,
  lastWritten: ReadonlyMap<string, string> = new Map(),
): ChangeSet {
  const liveByName = new Map(live.map((g) => [g.metadata.name, g]));
  const wanted = new Set(desired.map((g) => g.metadata.name));
  const apply: GatewayChange[] = [];
  const unchanged: string[] = [];
  for (const d of desired) {
    const l = liveByName.get(d.metadata.name);
    const spec = l === undefined || !specEqual(d, l);
    const status = l === undefined ? (d.status !== undefined && canonicalJson(d.status) !== '{}') : !statusEqual(d, l);
    if (!spec && !status) {
      unchanged.push(d.metadata.name);
      continue;
    }
    const written = lastWritten.get(d.metadata.name);
    const drift = l !== undefined && written !== undefined && written === ownedKey(d) && written !== ownedKey(l);
    apply.push({ name: d.metadata.name, desired: d, ...(l ? { live: l } : {}), spec, status, drift });
  }
  const prune = live
    .filter((g) => !wanted.has(g.metadata.name) && isOwnedBy(g, topology) && (g.metadata as { deletionTimestamp?: string }).deletionTimestamp === undefined)
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
