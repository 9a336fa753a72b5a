// kstatus conditions (metav1.Condition) and the Topology's status as wire JSON. Pure: the status phase computes them,
// the Kubernetes adapter writes them.

export type ConditionStatus = 'True' | 'False' | 'Unknown';

/** A metav1.Condition. */
export interface Condition {
  type: string;
  status: ConditionStatus;
  /** CamelCase, e.g. `ReconciliationSucceeded`, `ValidationFailed`. */
  reason: string;
  message: string;
  lastTransitionTime: string;
  observedGeneration?: number;
}

/** status.podSubnets: where the Gateways' status.nodes[].subnets come from, and why. */
export interface PodSubnetStatus {
  source: 'podCIDR' | 'calico';
  reason: string;
  /** Calico IPAM objects left out of every route, one line each (capped; see podSubnetProblems). */
  problems?: string[];
}

export interface TopologyStatus {
  observedGeneration?: number;
  lastAppliedRevision?: string;
  lastAttemptedRevision?: string;
  podSubnets?: PodSubnetStatus;
  conditions?: Condition[];
  [k: string]: unknown;
}

/** metav1.Condition's limit on message (the CRD's maxLength): a longer one makes the API server refuse the status. */
export const MAX_CONDITION_MESSAGE = 32768;

/** `message` within MAX_CONDITION_MESSAGE characters: cut, with what was left out counted. */
export function boundedMessage(message: string): string {
  if (message.length <= MAX_CONDITION_MESSAGE) return message;
  const marker = (left: number): string => ` ... (${left} more characters)`;
  // Room for the longest marker: the count left out is never more than the whole message.
  const keep = MAX_CONDITION_MESSAGE - marker(message.length).length;
  return `${message.slice(0, keep)}${marker(message.length - keep)}`;
}

/**
 * Put `next` into `conditions` (by type), keeping the old lastTransitionTime when the status did not flip; its message
 * bounded (boundedMessage).
 * Pure: `now` is the RFC 3339 time to use for a transition. Result sorted by type.
 */
export function setCondition(
  conditions: readonly Condition[] | undefined,
  next: Omit<Condition, 'lastTransitionTime'>,
  now: string,
): Condition[] {
  const old = (conditions ?? []).find((c) => c.type === next.type);
  const lastTransitionTime = old !== undefined && old.status === next.status ? old.lastTransitionTime : now;
  const merged: Condition = { ...next, message: boundedMessage(next.message), lastTransitionTime };
  return [...(conditions ?? []).filter((c) => c.type !== next.type), merged].sort((a, b) =>
    a.type < b.type ? -1 : a.type > b.type ? 1 : 0,
  );
}

/** Remove a condition type (kstatus: Reconciling and Stalled are absent when false). */
export function removeCondition(conditions: readonly Condition[] | undefined, type: string): Condition[] {
  return (conditions ?? []).filter((c) => c.type !== type);
}
