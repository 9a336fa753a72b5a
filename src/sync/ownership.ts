// Who owns a Gateway, when a topology plans one that another topology's label is on. A Gateway is owned by the
// topology its corvid.dev/topology label names (with managed-by=corvid); the planner reports a takeover as the
// finding gateway-adopted, and this file decides whether the sync may do it:
// - unowned (no Corvid labels) or owned by a topology whose Topology object no longer exists: adopt it;
// - git/file source, owned by a former name of this topology (the name this sync had in force before, or a status
//   object written by a sync of the same source kind): a rename, a deliberate move; adopt it and mark the old status
//   object Superseded; the Gateways of the name this sync had in force that the new name does not plan are pruned;
// - owned by a topology whose Topology object exists otherwise (the cluster source always): a conflict. Two live
//   Topology objects would take the Gateway from each other at every reconcile, so the revision is refused and the
//   owner's Gateways are left alone until one of the two objects goes.
// gatewayOwnership is pure; Takeovers announces what was done (Events, logs) and writes the Superseded status.

import { errorMessage } from '../adapters/kube/client.ts';
import type { TopologyObject } from '../adapters/kube/topologies.ts';
import type { ClusterWrites } from './writes.ts';
import { MANAGED_BY_LABEL, MANAGED_BY_VALUE, TOPOLOGY_LABEL } from '../gateway/keys.ts';
import type { Gateway } from '../gateway/types.ts';
import type { Logger } from '../shell/log.ts';
import { rfc3339, statusEquals, topologyStatus } from '../reconcile/topology-status.ts';

export interface Takeover {
  /** The owning topology; undefined for a Gateway no Corvid topology owned. */
  from?: string;
  why: 'unowned' | 'gone' | 'renamed';
  /** Sorted. */
  gateways: string[];
}

export interface GatewayConflict {
  owner: string;
  /** Sorted. */
  gateways: string[];
}

export interface Ownership {
  /** Sorted by owner. */
  adopted: Takeover[];
  /** Sorted by owner. */
  conflicts: GatewayConflict[];
  /** Former names of this topology (git/file renames): their status objects are marked Superseded. */
  superseded: string[];
  /**
   * Former names whose Gateways this revision prunes with its own: only the name this sync had in force, known to be
   * its own; a status object's name may be another git/file sync's, whose other Gateways are not this one's to delete.
   */
  pruneWith: string[];
}

export interface OwnershipInput {
  topology: string;
  desired: readonly Gateway[];
  live: readonly Gateway[];
  /** The Topology object of that name, when it exists. */
  topologyObject: (name: string) => TopologyObject | undefined;
  /** git/file: whether a Topology object is a status object of this kind of source, hence a former name. */
  formerName: (obj: TopologyObject) => boolean;
  /** git/file: the name this sync had in force until this revision, when it differs. */
  previous?: string;
}

function group<T extends { gateways: string[] }>(byKey: Map<string, T>, key: string, make: () => T, gateway: string): void {
  let g = byKey.get(key);
  if (!g) byKey.set(key, (g = make()));
  g.gateways.push(gateway);
}

export function gatewayOwnership(o: OwnershipInput): Ownership {
  const liveByName = new Map(o.live.map((g) => [g.metadata.name, g]));
  const adopted = new Map<string, Takeover>();
  const conflicts = new Map<string, GatewayConflict>();
  for (const d of o.desired) {
    const name = d.metadata.name;
    const l = liveByName.get(name);
    if (l === undefined) continue;
    const labels = l.metadata.labels ?? {};
    const owner = labels[MANAGED_BY_LABEL] === MANAGED_BY_VALUE ? labels[TOPOLOGY_LABEL] || undefined : undefined;
    if (owner === o.topology) continue;
    if (owner === undefined) {
      group(adopted, '', (): Takeover => ({ why: 'unowned', gateways: [] }), name);
      continue;
    }
    const obj = o.topologyObject(owner);
    if (obj === undefined) group(adopted, owner, (): Takeover => ({ from: owner, why: 'gone', gateways: [] }), name);
    else if (owner === o.previous || o.formerName(obj)) group(adopted, owner, (): Takeover => ({ from: owner, why: 'renamed', gateways: [] }), name);
    else group(conflicts, owner, () => ({ owner, gateways: [] }), name);
  }
  const sorted = <T extends { gateways: string[] }>(m: Map<string, T>): T[] =>
    [...m.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([, v]) => ({ ...v, gateways: v.gateways.sort() }));
  const pruneWith = o.previous !== undefined && o.previous !== o.topology ? [o.previous] : [];
  const superseded = new Set(pruneWith);
  for (const a of adopted.values()) if (a.why === 'renamed') superseded.add(a.from!);
  return { adopted: sorted(adopted), conflicts: sorted(conflicts), superseded: [...superseded].sort(), pruneWith };
}

/** The planned Gateways the sync may write: those of a conflict are left to their owner. */
export function withoutConflicts(desired: readonly Gateway[], o: Ownership): Gateway[] {
  if (o.conflicts.length === 0) return [...desired];
  const theirs = new Set(o.conflicts.flatMap((c) => c.gateways));
  return desired.filter((g) => !theirs.has(g.metadata.name));
}

/** `Gateway a` / `Gateways a, b, c, d, e, and 3 more`. */
function gatewayList(names: readonly string[], max = 5): string {
  const more = names.length > max ? `, and ${names.length - max} more` : '';
  return `Gateway${names.length === 1 ? '' : 's'} ${names.slice(0, max).join(', ')}${more}`;
}

/** The Ready message of a revision refused for conflicts: who owns what, and the two ways out. */
export function conflictMessage(conflicts: readonly GatewayConflict[]): string {
  const owners = conflicts.map((c) => c.owner);
  const parts = conflicts.map((c) => `${gatewayList(c.gateways)} belong${c.gateways.length === 1 ? 's' : ''} to topology ${c.owner}`);
  const one = owners.length === 1;
  const pools = conflicts.length === 1 && conflicts[0].gateways.length === 1 ? 'the pool' : 'the pools';
  return `${parts.join('; ')}, ${one ? 'whose Topology object exists' : 'whose Topology objects exist'}; a Gateway has one owner, and Corvid takes none from a topology that is still there: remove ${pools} from one of them, or delete ${one ? 'Topology' : 'Topologies'} ${owners.join(', ')} (${one ? 'its' : 'their'} Gateways are then adopted)`;
}

/** The Event note of a takeover. */
export function takeoverNote(t: Takeover): string {
  if (t.why === 'unowned') return `took over ${gatewayList(t.gateways)}, which no Corvid topology owned`;
  const why = t.why === 'gone' ? 'its Topology object no longer exists' : `renamed: ${t.from} is superseded`;
  return `took over ${gatewayList(t.gateways)} from topology ${t.from} (${why})`;
}

export interface TakeoverDeps {
  writes: Pick<ClusterWrites, 'applyTopologyStatus'>;
  logger: Logger;
  /** Throws when this replica may not write (NotLeaderError). */
  guard: () => void;
  countWrite: () => void;
  topologyObject: (name: string) => TopologyObject | undefined;
  /** Whether the object is a status object this sync may mark (formerName). */
  formerName: (obj: TopologyObject) => boolean;
  event: (topology: string, type: 'Normal' | 'Warning', reason: string, action: string, note: string) => void;
  now: () => Date;
}

/**
 * After an apply that took Gateways over: one Event and one log line per former owner, and the Superseded status on
 * the former names' status objects. A status write that fails is tried again after the next apply.
 */
export class Takeovers {
  private readonly d: TakeoverDeps;
  /** Former name -> the topology and revision that superseded it, until its status says so. */
  private readonly pending = new Map<string, { by: string; revision: string }>();

  constructor(deps: TakeoverDeps) {
    this.d = deps;
  }

  async applied(topology: string, revision: string, o: Ownership): Promise<void> {
    for (const t of o.adopted) {
      this.d.logger.info('gateways adopted', { topology, from: t.from, why: t.why, gateways: t.gateways, revision });
      this.d.event(topology, t.why === 'unowned' ? 'Warning' : 'Normal', 'GatewaysAdopted', 'Adopt', takeoverNote(t));
    }
    this.pending.delete(topology);
    for (const name of o.superseded) this.pending.set(name, { by: topology, revision });
    for (const [name, by] of [...this.pending]) if (await this.supersede(name, by)) this.pending.delete(name);
  }

  /** True when done (or nothing to do); false when the write failed. */
  private async supersede(name: string, by: { by: string; revision: string }): Promise<boolean> {
    const obj = this.d.topologyObject(name);
    if (obj === undefined || !this.d.formerName(obj)) return true;
    const status = topologyStatus({
      previous: obj.status,
      generation: obj.metadata?.generation,
      lastAppliedRevision: obj.status?.lastAppliedRevision,
      lastAttemptedRevision: obj.status?.lastAttemptedRevision,
      outcome: { kind: 'superseded', ...by },
      now: rfc3339(this.d.now()),
      // Kept: kube-apiserver 1.20 refuses a status apply that drops a nested object (422 "null").
      podSubnets: obj.status?.podSubnets,
    });
    if (statusEquals(obj.status, status)) return true;
    this.d.guard();
    try {
      await this.d.writes.applyTopologyStatus(name, status);
      this.d.countWrite();
    } catch (e) {
      this.d.logger.warn('superseded status not written; retried after the next apply', { topology: name, error: errorMessage(e) });
      return false;
    }
    this.d.logger.info('topology superseded', { topology: name, by: by.by, revision: by.revision });
    this.d.event(name, 'Normal', 'Superseded', 'Adopt', `superseded by topology ${by.by} at revision ${by.revision}; its Gateways are now ${by.by}'s`);
    return true;
  }
}
