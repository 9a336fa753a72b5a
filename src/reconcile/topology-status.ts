// Phase 8: the Topology's status, Flux-style kstatus. Pure: the outcome of a reconcile in, the status out.
//
//   applied   Ready=True  (ReconciliationSucceeded), no Reconciling, no Stalled
//   rejected  Ready=False (the reason), Stalled=True: only a new revision helps; the last applied one keeps serving
//   failed    Ready=False (the reason), Reconciling=True (ProgressingWithRetry): retried with backoff
//   waiting   Ready=False, Reconciling=True, both with the reason: the revision is planned, but the Gateway spec's
//             owner (--gateway-spec=external) has not applied it yet; never Stalled, it gets better by itself
//   superseded Ready=False, Stalled=True (Superseded): a git/file status object whose topology was renamed; the new
//             name has its Gateways and nothing reconciles this object any more
//
// lastTransitionTime moves only when a condition's status flips, so an unchanged outcome gives an equal status and
// costs no write.

import type { Finding } from '../plan/types.ts';
import { canonicalJson } from '../gateway/canonical.ts';
import { removeCondition, setCondition, type PodSubnetStatus, type TopologyStatus } from './conditions.ts';
import type { RejectReason } from './artifact.ts';

export type Outcome =
  | { kind: 'applied'; revision: string; notes?: string[] }
  | { kind: 'rejected'; revision?: string; reason: RejectReason; message: string }
  | { kind: 'failed'; revision?: string; reason: RejectReason | string; message: string }
  | { kind: 'waiting'; revision: string; reason: string; message: string }
  | { kind: 'superseded'; by: string; revision: string };

export const WAITING_FOR_GATEWAY_SPEC = 'WaitingForGatewaySpec';
export const SUPERSEDED = 'Superseded';

export interface StatusInput {
  previous?: TopologyStatus;
  generation?: number;
  lastAppliedRevision?: string;
  lastAttemptedRevision?: string;
  outcome: Outcome;
  /** RFC 3339, used only for a transition. */
  now: string;
  /** The pod-subnet source in force and why (status.podSubnets). */
  podSubnets?: PodSubnetStatus;
}

/** Planner findings in the Ready message at most, before the rest is counted (1,000 pools without a candidate...). */
export const MAX_READY_NOTES = 20;

/** Lines of status.podSubnets.problems at most, before the rest is counted. */
export const MAX_POD_SUBNET_PROBLEMS = 20;

/**
 * status.podSubnets.problems from the planner's findings: the Calico IPAM objects left out of every route, sorted, at
 * most MAX_POD_SUBNET_PROBLEMS lines and then one that counts the rest.
 */
export function podSubnetProblems(findings: readonly Finding[]): string[] {
  const lines = [...new Set(findings.filter((f) => f.code.startsWith('calico-')).map((f) => f.message))].sort();
  if (lines.length <= MAX_POD_SUBNET_PROBLEMS) return lines;
  return [...lines.slice(0, MAX_POD_SUBNET_PROBLEMS), `and ${lines.length - MAX_POD_SUBNET_PROBLEMS} more`];
}

/** Conditions carry whole seconds, like the API server's own timestamps. */
export function rfc3339(d: Date): string {
  return d.toISOString().replace(/\.\d+Z$/, 'Z');
}

function inForce(lastApplied: string | undefined): string {
  return lastApplied ? `; ${lastApplied} stays in force` : '; no revision has been applied yet';
}

export function topologyStatus(input: StatusInput): TopologyStatus {
  const { outcome, now, generation } = input;
  let conditions = input.previous?.conditions ?? [];
  const gen = generation !== undefined ? { observedGeneration: generation } : {};
  if (outcome.kind === 'applied') {
    const all = outcome.notes ?? [];
    const notes = all.length <= MAX_READY_NOTES ? all : [...all.slice(0, MAX_READY_NOTES), `and ${all.length - MAX_READY_NOTES} more findings`];
    const message = `Applied revision: ${outcome.revision}${notes.length > 0 ? `\n${notes.join('\n')}` : ''}`;
    conditions = setCondition(conditions, { type: 'Ready', status: 'True', reason: 'ReconciliationSucceeded', message, ...gen }, now);
    conditions = removeCondition(conditions, 'Reconciling');
    conditions = removeCondition(conditions, 'Stalled');
  } else if (outcome.kind === 'waiting') {
    const why = { reason: outcome.reason, message: outcome.message, ...gen };
    conditions = setCondition(conditions, { type: 'Ready', status: 'False', ...why }, now);
    conditions = setCondition(conditions, { type: 'Reconciling', status: 'True', ...why }, now);
    conditions = removeCondition(conditions, 'Stalled');
  } else if (outcome.kind === 'superseded') {
    const message = `superseded by topology ${outcome.by} at revision ${outcome.revision}, which has taken over its Gateways; nothing reconciles this object any more: delete it`;
    const why = { reason: SUPERSEDED, message, ...gen };
    conditions = setCondition(conditions, { type: 'Ready', status: 'False', ...why }, now);
    conditions = setCondition(conditions, { type: 'Stalled', status: 'True', ...why }, now);
    conditions = removeCondition(conditions, 'Reconciling');
  } else {
    const rev = outcome.revision ? `revision ${outcome.revision}: ` : '';
    const message = `${rev}${outcome.message}${inForce(input.lastAppliedRevision)}`;
    conditions = setCondition(conditions, { type: 'Ready', status: 'False', reason: outcome.reason, message, ...gen }, now);
    if (outcome.kind === 'rejected') {
      conditions = setCondition(conditions, { type: 'Stalled', status: 'True', reason: outcome.reason, message, ...gen }, now);
      conditions = removeCondition(conditions, 'Reconciling');
    } else {
      conditions = setCondition(
        conditions,
        { type: 'Reconciling', status: 'True', reason: 'ProgressingWithRetry', message: `retrying: ${outcome.message}`, ...gen },
        now,
      );
      conditions = removeCondition(conditions, 'Stalled');
    }
  }
  const status: TopologyStatus = { conditions };
  if (generation !== undefined) status.observedGeneration = generation;
  if (input.lastAppliedRevision !== undefined) status.lastAppliedRevision = input.lastAppliedRevision;
  if (input.lastAttemptedRevision !== undefined) status.lastAttemptedRevision = input.lastAttemptedRevision;
  if (input.podSubnets !== undefined) {
    const { source, reason, problems } = input.podSubnets;
    status.podSubnets = problems !== undefined && problems.length > 0 ? { source, reason, problems: [...problems] } : { source, reason };
  }
  return status;
}

/** Equal as far as this controller writes it (extra fields written by others are ignored). */
export function statusEquals(a: TopologyStatus | undefined, b: TopologyStatus): boolean {
  const pick = (s: TopologyStatus | undefined) => ({
    observedGeneration: s?.observedGeneration,
    lastAppliedRevision: s?.lastAppliedRevision,
    lastAttemptedRevision: s?.lastAttemptedRevision,
    podSubnets: s?.podSubnets,
    conditions: (s?.conditions ?? []).map((c) => ({ ...c })),
  });
  return canonicalJson(pick(a)) === canonicalJson(pick(b));
}
