// kstatus (sigs.k8s.io/cli-utils pkg/kstatus/status, Compute), the rules Flux's `wait` and `healthChecks` judge an
// object by, for the kinds deploy/ applies and checks: the generic rules every object goes through first, then
// DaemonSet, Deployment and CustomResourceDefinition. Any other kind (a Topology) is Current once the generic rules
// pass. Fields are read as kstatus reads them, with its defaults for missing ones.

export type KStatus = 'InProgress' | 'Failed' | 'Current' | 'Terminating';

export interface KResult {
  status: KStatus;
  message: string;
}

interface Condition {
  type: string;
  status: string;
  reason?: string;
  message?: string;
}

const inProgress = (message: string): KResult => ({ status: 'InProgress', message });
const current = (message: string): KResult => ({ status: 'Current', message });

function num(v: unknown, fallback: number): number {
  return typeof v === 'number' ? v : fallback;
}

function conditionsOf(o: any): Condition[] {
  return Array.isArray(o?.status?.conditions) ? o.status.conditions : [];
}

/** checkGenericProperties: deletion, an unobserved generation, then the standard Reconciling and Stalled conditions. */
function generic(o: any): KResult | undefined {
  if (o?.metadata?.deletionTimestamp) return { status: 'Terminating', message: 'Resource scheduled for deletion' };
  const generation = o?.metadata?.generation;
  const observed = o?.status?.observedGeneration;
  // Without status.observedGeneration the check is skipped: an object nobody has reported on yet passes it.
  if (typeof generation === 'number' && typeof observed === 'number' && observed !== generation) {
    return inProgress(`${o.kind} generation is ${generation}, but latest observed generation is ${observed}`);
  }
  for (const c of conditionsOf(o)) {
    if (c.type === 'Reconciling' && c.status === 'True') return inProgress(c.message ?? '');
    if (c.type === 'Stalled' && c.status === 'True') return { status: 'Failed', message: c.message ?? '' };
  }
  return undefined;
}

/** daemonsetConditions: current, updated, available and ready on every node it should run on. */
function daemonSet(o: any): KResult {
  if (typeof o?.metadata?.generation !== 'number') return inProgress('DaemonSet metadata.generation not found');
  if (typeof o?.status?.observedGeneration !== 'number') return inProgress('DaemonSet status.observedGeneration not found');
  const s = o.status;
  const desired = num(s.desiredNumberScheduled, -1);
  if (desired === -1) return inProgress('Missing .status.desiredNumberScheduled');
  const rules: [string, number][] = [
    ['Current', num(s.currentNumberScheduled, 0)],
    ['Updated', num(s.updatedNumberScheduled, 0)],
    ['Available', num(s.numberAvailable, 0)],
    ['Ready', num(s.numberReady, 0)],
  ];
  for (const [what, n] of rules) if (desired > n) return inProgress(`${what}: ${n}/${desired}`);
  return current(`All replicas scheduled as expected. Replicas: ${desired}`);
}

/** deploymentConditions: replicas updated, available and ready, and the controller's Progressing and Available. */
function deployment(o: any): KResult {
  const s = o?.status ?? {};
  let progressing = o?.spec?.progressDeadlineSeconds === undefined;
  let available = false;
  for (const c of conditionsOf(o)) {
    if (c.type === 'Progressing') {
      if (c.reason === 'ProgressDeadlineExceeded') return { status: 'Failed', message: 'Progress deadline exceeded' };
      if (c.status === 'True' && c.reason === 'NewReplicaSetAvailable') progressing = true;
    }
    if (c.type === 'Available' && c.status === 'True') available = true;
  }
  const spec = num(o?.spec?.replicas, 1);
  const replicas = num(s.replicas, 0);
  const updated = num(s.updatedReplicas, 0);
  const ready = num(s.readyReplicas, 0);
  const availableReplicas = num(s.availableReplicas, 0);
  if (spec > replicas) return inProgress(`Replicas: ${replicas}/${spec}`);
  if (spec > updated) return inProgress(`Updated: ${updated}/${spec}`);
  if (replicas > spec) return inProgress(`Pending termination: ${replicas - spec}`);
  if (updated > availableReplicas) return inProgress(`Available: ${availableReplicas}/${updated}`);
  if (spec > ready) return inProgress(`Ready: ${ready}/${spec}`);
  if (!progressing) return inProgress('ReplicaSet not Available');
  if (!available) return inProgress('Deployment not Available');
  return current(`Deployment is available. Replicas: ${replicas}`);
}

/** crdConditions: Established, unless its names were refused. */
function crd(o: any): KResult {
  for (const c of conditionsOf(o)) {
    if (c.type === 'NamesAccepted' && c.status === 'False') return { status: 'Failed', message: c.message ?? '' };
    if (c.type === 'Established') {
      if (c.status === 'False' && c.reason !== 'Installing') return { status: 'Failed', message: c.message ?? '' };
      if (c.status === 'True') return current('CRD is established');
    }
  }
  return inProgress('Install in progress');
}

const BY_GROUP_KIND: Record<string, (o: any) => KResult> = {
  'apps/DaemonSet': daemonSet,
  'apps/Deployment': deployment,
  'apiextensions.k8s.io/CustomResourceDefinition': crd,
};

/** kstatus's verdict on one object as read from the API server. */
export function kstatus(o: any): KResult {
  const verdict = generic(o);
  if (verdict !== undefined) return verdict;
  const apiVersion = String(o?.apiVersion ?? '');
  const group = apiVersion.includes('/') ? apiVersion.split('/')[0] : '';
  const rule = BY_GROUP_KIND[`${group}/${o?.kind}`];
  // A kind kstatus has no rule for, with no Reconciling or Stalled condition: the absence of bad news is Current.
  return rule ? rule(o) : current('Resource is current');
}
