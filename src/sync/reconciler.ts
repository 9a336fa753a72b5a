// The reconcile: fetch -> verify -> validate -> plan -> server dry run -> apply -> prune -> status, one at a time.
// Verify and validate run in a worker thread (validate-worker.ts) and are not awaited: while a revision is being
// validated, a reconcile plans the last good one (failover never waits for a commit) and leaves status alone; the
// verdict triggers the next reconcile.
//
// The last good revision keeps serving: when the newest revision fails any phase, it is rejected (status, Event,
// metric, log) and the last good one is planned again against live health, so failover keeps working while a broken
// commit sits on the branch. Nothing live changes because of a rejected revision: every write is dry-run first.
// Prune runs only when the newest revision is the one in force and every phase passed.
// With gatewaySpec 'external' the Gateways' metadata and spec belong to another writer (Argo CD applying `corvid
// render`): the sync never creates, applies, replaces or prunes them, writes only status and the live-state annotations (election, WireGuard keys)
// of those whose spec already is the plan's, and reports the others as waiting (computeStatusOnlyChanges).
//
// Policy lives in src/topology (what a valid topology is) and src/plan (who is elected, what the Gateways say);
// this file only orders the phases and reports.

import { errorMessage } from '../adapters/kube/client.ts';
import type { EventRecorder } from '../adapters/kube/events.ts';
import type { ObjectCache } from '../adapters/kube/informer.ts';
import { heartbeatsFrom, type LeaseJson } from '../adapters/kube/leases.ts';
import type { NodeJson } from '../adapters/kube/nodes.ts';
import type { TopologyObject } from '../adapters/kube/topologies.ts';
import { MANAGED_BY_LABEL, MANAGED_BY_VALUE } from '../gateway/keys.ts';
import { canonicalJson } from '../gateway/canonical.ts';
import { GATEWAY_API_VERSION, GATEWAY_KIND, type Gateway } from '../gateway/types.ts';
import { desiredGateways, emptyHealthMemory, inventoryFromNode, type HealthMemory } from '../plan/index.ts';
import type { CandidateHealth, InventoryNode, PlanResult, PodSubnetDecision, PodSubnetInput } from '../plan/index.ts';
import { TOPOLOGY_API_VERSION } from '../topology/types.ts';
import { NotLeaderError, PhaseError, applyChanges, dryRun, prune, type WriteContext } from './apply.ts';
import { computeChanges, computeStatusOnlyChanges, emptyRefusal, ownedKey, waitingMessage, type ChangeSet, type WaitingGateway } from '../reconcile/gateway-changes.ts';
import type { Logger } from '../shell/log.ts';
import { conflictMessage, gatewayOwnership, Takeovers, withoutConflicts, type Ownership } from './ownership.ts';
import type { SyncMetrics } from './metrics.ts';
import { REJECT, type Artifact, type RejectReason } from '../reconcile/artifact.ts';
import type { TopologySource } from './source.ts';
import { SUPERSEDED, WAITING_FOR_GATEWAY_SPEC, podSubnetProblems, rfc3339, statusEquals, topologyStatus, type Outcome } from '../reconcile/topology-status.ts';
import { validate, type Candidate } from '../reconcile/revision.ts';
import type { BackgroundValidator } from './validate-worker.ts';
import { topologyDocument } from './source-cluster.ts';
import { WriteOverlay } from './overlay.ts';
import type { ClusterWrites } from './writes.ts';

export const SOURCE_ANNOTATION = 'corvid.dev/source';

/** Backoff of the status write after a failure (it is requeued, but never tried more often than this). */
const STATUS_RETRY_INITIAL_MS = 500;
const STATUS_RETRY_MAX_MS = 60_000;

export interface ReconcilerDeps {
  /** Every write (kubeWrites; an in-memory cluster in unit tests). */
  writes: ClusterWrites;
  source: Pick<TopologySource, 'kind' | 'latest'>;
  /** The informer caches the reconcile reads. */
  gateways: ObjectCache<Gateway>;
  nodes: ObjectCache<NodeJson>;
  leases: ObjectCache<LeaseJson>;
  /** Topology objects (status target; for the cluster source also the input). */
  topologies: ObjectCache<TopologyObject>;
  /** git/file sources: keep a Topology object (spec = last applied) to carry status. */
  statusObject: boolean;
  events: Pick<EventRecorder, 'record'>;
  metrics: SyncMetrics;
  logger: Logger;
  /** False when this replica must not write (not the leader). Checked before every write. */
  canWrite: () => boolean;
  /** The clock of every decision, timestamp and backoff of the reconcile. */
  now: () => Date;
  /** Gateways dry-run, then written, at once. Default DEFAULT_APPLY_CONCURRENCY (src/sync/parallel.ts). */
  applyConcurrency?: number;
  /** Who writes the Gateways' metadata and spec: this sync ('apply', the default) or another writer ('external'). */
  gatewaySpec?: GatewaySpecMode;
  /** Only candidates whose agent has written a heartbeat Lease are elected (PlanInput.requireHeartbeat). */
  requireHeartbeat?: boolean;
  /** The pod-subnet input of each plan (the flag's override, Calico IPAM as watched). Absent: node.spec.podCIDRs. */
  podSubnets?: () => PodSubnetInput;
  /** Verify + validate off the event loop: a revision's verdict, or undefined while it is being worked out. */
  validator: Pick<BackgroundValidator, 'verdict'>;
}

export type GatewaySpecMode = 'apply' | 'external';

/**
 * success: done; error: a phase failed and is retried with backoff; requeue: the Gateways are in order but the source
 * failed transiently (or has nothing yet), so it runs again with backoff; skipped: not the leader.
 */
export type ReconcileResult = 'success' | 'error' | 'requeue' | 'skipped';

export interface ReconcileReport {
  result: ReconcileResult;
  revision?: string;
  outcome?: Outcome;
  writes: number;
  /** Earliest future time at which health may change by itself (heartbeat expiry, maturity). */
  wakeAt?: number;
  durationMs: number;
}

interface Rejection {
  key: string;
  outcome: Outcome & { kind: 'rejected' };
  name?: string;
  /** Refused for what may pass with no new revision (GatewayConflict: the owner may go): looked at again each time. */
  recheck?: true;
}

function artifactKey(a: Artifact & { ok: true }): string {
  return `${a.revision}\n${a.text}`;
}

function capitalised(kind: string): string {
  return kind
    .split('-')
    .map((w) => w.charAt(0).toUpperCase() + w.slice(1))
    .join('');
}

type KeyedCandidate = Candidate & { key: string };
type Report = Omit<ReconcileReport, 'durationMs' | 'writes'>;

/** Phases 1-3: the newest revision's verdict. */
interface Verdict {
  /** The newest revision, valid and not yet in force. */
  candidate?: KeyedCandidate;
  /** Why the newest revision is not used (rejected, or failed transiently). */
  problem?: Outcome;
  /** The newest revision's name, when known (status lastAttemptedRevision). */
  attempted?: string;
  /** The newest revision has no verdict yet: serve the last good one, prune nothing, write no status. */
  validating: boolean;
}

/**
 * What the phases after the verdict came to for one revision: served (the reconcile's report), refused (a candidate
 * that cannot be served: the last good revision is served instead), or failed (retried with backoff).
 */
type ServeResult = { kind: 'served'; report: Report } | { kind: 'refused'; problem: Outcome } | { kind: 'failed'; report: Report };

/** Phase 4.5: what must be written for a planned revision, and who waits for it. */
interface Changes {
  changes: ChangeSet;
  waiting: WaitingGateway[];
  owners?: Ownership;
  /** A problem of the revision in force that does not stop it serving (a GatewayConflict on some of its Gateways). */
  problem?: Outcome;
}

export class GatewayReconciler {
  private readonly d: ReconcilerDeps;
  private lastGood: KeyedCandidate | undefined;
  /**
   * The revision whose Gateways are all in place (status lastAppliedRevision, the RevisionApplied Event). Equal to
   * lastGood's once applied; with gatewaySpec 'external' it follows only when no Gateway waits for the spec owner.
   */
  private appliedRevision: string | undefined;
  private rejected: Rejection | undefined;
  private memory: HealthMemory = emptyHealthMemory();
  /** Set while the status write is failing: when it may be tried next, and the current backoff. */
  private statusRetry: { delayMs: number; notBefore: number } | undefined;
  private readonly lastWritten = new Map<string, string>();
  /** The Gateways as this sync last wrote them: the election's memory (see planPhase()). */
  private readonly lastWrittenObject = new Map<string, Gateway>();
  /** Our own recent writes, until the informer caches have caught up with them. */
  private readonly overlay: WriteOverlay;
  private writes = 0;
  /** The pod-subnet source of the last plan of the revision in force (status, logs). */
  private podSubnets: PodSubnetDecision | undefined;
  /** status.podSubnets.problems as last planned. */
  private podSubnetProblems: string[] = [];
  /** Whether the first reconcile as a writer completed (for /readyz). */
  ranOnce = false;
  private readonly takeovers: Takeovers;

  constructor(deps: ReconcilerDeps) {
    this.d = deps;
    this.overlay = new WriteOverlay(() => this.nowMs());
    this.takeovers = new Takeovers({
      writes: deps.writes,
      logger: deps.logger,
      guard: () => this.writeContext().guard(),
      countWrite: () => {
        this.writes++;
        this.d.metrics.writesTotal.inc({ verb: 'apply', resource: 'topologies/status' });
      },
      topologyObject: (name) => deps.topologies.get(name),
      formerName: (obj) => this.formerName(obj),
      event: (name, type, reason, action, note) => void this.event(this.topologyRef(name), type, reason, action, note),
      now: deps.now,
    });
  }

  private nowMs(): number {
    return this.d.now().getTime();
  }

  /** git/file: a status object written by a sync of this source kind (src/sync/ownership.ts). */
  private formerName(obj: TopologyObject): boolean {
    return this.d.source.kind !== 'cluster' && obj.metadata?.annotations?.[SOURCE_ANNOTATION] === this.d.source.kind;
  }

  /**
   * Forget what this replica wrote (call on becoming the leader: another replica may have written since, and live
   * state is then the truth).
   */
  forgetWrites(): void {
    this.lastWritten.clear();
    this.lastWrittenObject.clear();
    this.overlay.clear();
  }

  /** The heartbeat timeout of the topology in force (seconds), if any. */
  heartbeatTimeoutSeconds(): number | undefined {
    const t = this.lastGood?.topology.election.heartbeatTimeoutSeconds;
    return t !== undefined && t > 0 ? t : undefined;
  }

  /** The revision in force (the last one applied). */
  revision(): string | undefined {
    return this.lastGood?.revision;
  }

  private writeContext(): WriteContext {
    return {
      writes: this.d.writes,
      guard: () => {
        if (!this.d.canWrite()) throw new NotLeaderError();
      },
      countWrite: (verb, resource) => {
        this.writes++;
        this.d.metrics.writesTotal.inc({ verb, resource });
      },
      concurrency: this.d.applyConcurrency,
    };
  }

  async reconcile(): Promise<ReconcileReport> {
    const started = this.nowMs();
    const writesBefore = this.writes;
    if (!this.d.canWrite()) return { result: 'skipped', writes: 0, durationMs: 0 };
    let report: Report;
    try {
      report = await this.run();
    } catch (e) {
      if (e instanceof NotLeaderError) {
        this.d.logger.info('stopped writing: not the leader any more');
        report = { result: 'skipped' };
      } else {
        this.d.logger.error('reconcile failed', { error: errorMessage(e) });
        report = { result: 'error' };
      }
    }
    const durationMs = this.nowMs() - started;
    if (report.result !== 'skipped') this.ranOnce = true;
    return { ...report, writes: this.writes - writesBefore, durationMs };
  }

  /**
   * The reconcile as a straight line: the newest revision's verdict (phases 1-3); then the candidate, or the last good
   * revision when there is none or the candidate is refused, through plan, changes, dry run, apply and prune, status
   * (phases 4-8). Each phase returns what it came to; nothing live changes before every dry run has passed.
   */
  private async run(): Promise<Report> {
    const now = this.d.now();
    const art = this.d.source.latest();
    const verdict = this.verdictPhase(art);
    let problem = verdict.problem;

    // After a restart with a broken (or not yet validated) newest revision, the status object still holds the last
    // applied spec: serve it, so failover works from the first reconcile.
    if (this.lastGood === undefined && verdict.candidate === undefined && (problem !== undefined || verdict.validating)) this.recoverFromStatusObject();

    for (const serving of [verdict.candidate, this.lastGood]) {
      if (serving === undefined) continue;
      const r = await this.serve(serving, serving === verdict.candidate, { ...verdict, problem }, now);
      if (r.kind === 'refused') {
        problem = r.problem;
        continue;
      }
      return r.report;
    }

    // Nothing to serve: no good revision yet.
    if (verdict.validating) return { result: 'success', revision: verdict.attempted };
    const outcome = problem ?? { kind: 'failed' as const, reason: REJECT.fetchFailed, message: 'no revision fetched yet' };
    const name = art?.object?.name ?? this.rejected?.name;
    const statusWritten = name === undefined || (await this.writeStatus(outcome, verdict.attempted, name));
    return { result: outcome.kind === 'failed' || !statusWritten ? 'requeue' : 'success', outcome };
  }

  /** Phases 1-3: fetch (the source did it; take its newest artifact), verify, validate (the background verdict). */
  private verdictPhase(art: Artifact | undefined): Verdict {
    if (art === undefined) return { problem: { kind: 'failed', reason: REJECT.fetchFailed, message: 'no revision fetched yet' }, validating: false };
    if (!art.ok) {
      const problem: Outcome = art.transient
        ? { kind: 'failed', revision: art.revision, reason: art.reason, message: art.message }
        : this.reject(`${art.revision}\n${art.reason}`, art.revision, art.reason, art.message, art.object?.name);
      return { problem, attempted: art.revision, validating: false };
    }
    const attempted = art.revision;
    const key = artifactKey(art);
    if (this.lastGood?.key === key) return { attempted, validating: false };
    if (this.rejected?.key === key && !this.rejected.recheck) return { problem: this.rejected.outcome, attempted, validating: false };
    const v = this.d.validator.verdict(key, art);
    if (v === undefined) return { attempted, validating: true };
    if (v.ok) return { candidate: { ...v.candidate, key }, attempted, validating: false };
    return { problem: this.reject(key, art.revision, v.reason, v.message, art.object?.name ?? v.name), attempted, validating: false };
  }

  /** Phases 4-8 for one revision: the candidate (which may be refused) or the one in force (which never is). */
  private async serve(serving: KeyedCandidate, isCandidate: boolean, verdict: Verdict, now: Date): Promise<ServeResult> {
    const { attempted, validating } = verdict;
    let problem = verdict.problem;
    const refuse = (reason: RejectReason, message: string): ServeResult => ({ kind: 'refused', problem: this.reject(serving.key, serving.revision, reason, message, serving.topology.name) });

    // Phase 4: plan.
    let planned: PlanResult;
    let wakeAt: number | undefined;
    try {
      ({ planned, wakeAt } = this.planPhase(serving, now));
    } catch (e) {
      if (!isCandidate) throw e;
      return refuse(REJECT.planFailed, `planner failed: ${errorMessage(e)}`);
    }

    // What must change, and what may be pruned.
    const c = this.changesPhase(serving, planned, isCandidate);
    if ('refused' in c) return refuse(REJECT.gatewayConflict, c.refused);
    const { changes, waiting, owners } = c;
    problem ??= c.problem;
    const refusal = emptyRefusal(planned.gateways, changes, serving.topology.allowEmpty);
    if (refusal !== undefined) {
      if (isCandidate) return refuse(REJECT.emptyTopologyRefused, refusal);
      changes.prune = [];
    }
    // Prune only when the newest revision is the one in force and every phase passed.
    if (problem !== undefined || validating) changes.prune = [];

    // Phase 5: server dry run of every change.
    try {
      await dryRun(this.d.writes, changes, this.d.applyConcurrency);
    } catch (e) {
      if (e instanceof PhaseError && !e.transient && isCandidate) return refuse(REJECT.dryRunFailed, e.message);
      return { kind: 'failed', report: await this.failed(serving, attempted, e, REJECT.dryRunFailed) };
    }

    // Phases 6-7: apply, prune.
    const activeBefore = this.activeBefore(changes);
    let deleted: string[];
    try {
      deleted = await this.applyPhase(changes);
    } catch (e) {
      if (e instanceof NotLeaderError) throw e;
      return { kind: 'failed', report: await this.failed(serving, attempted, e, REJECT.applyFailed) };
    }
    if (isCandidate) {
      this.lastGood = serving;
      this.rejected = undefined;
    }
    if (owners !== undefined && (owners.adopted.length > 0 || owners.superseded.length > 0)) await this.takeovers.applied(serving.topology.name, serving.revision, owners);
    this.notePodSubnets(planned.podSubnets, podSubnetProblems(planned.findings), serving.topology.name);
    // Applied once every Gateway is in place: at once in apply mode, when the spec owner has caught up otherwise.
    if (serving === this.lastGood && waiting.length === 0 && this.appliedRevision !== serving.revision) {
      const previous = this.appliedRevision;
      this.appliedRevision = serving.revision;
      this.d.logger.info('revision applied', { revision: serving.revision, previous, topology: serving.topology.name });
      void this.event(this.topologyRef(serving.topology.name), 'Normal', 'RevisionApplied', 'Apply', `applied revision ${serving.revision}`);
    }
    this.report(serving, planned, changes, deleted, activeBefore);

    // Phase 8: status.
    const outcome: Outcome =
      problem ??
      (waiting.length > 0
        ? { kind: 'waiting', revision: serving.revision, reason: WAITING_FOR_GATEWAY_SPEC, message: waitingMessage(waiting, serving.revision) }
        : { kind: 'applied', revision: serving.revision, notes: this.notes(planned) });
    if (waiting.length > 0) this.d.logger.info('waiting for the Gateway spec', { revision: serving.revision, waiting: waiting.map((w) => w.name) });
    // Status speaks of the newest revision; while its verdict is out, the last one written stands.
    const statusWritten = validating || (await this.writeStatus(outcome, attempted ?? serving.revision, serving.object?.name ?? serving.topology.name));
    // A source that failed transiently (fetch) is asked again later; the Gateways themselves are in order. So is a
    // status write that failed: requeue, with backoff. Waiting Gateways are retried too, though their informer events
    // (the spec owner's writes) normally trigger the reconcile first.
    const requeue = problem?.kind === 'failed' || waiting.length > 0 || !statusWritten;
    return { kind: 'served', report: { result: requeue ? 'requeue' : 'success', revision: serving.revision, outcome, wakeAt } };
  }

  /**
   * What must be written for a planned revision. In apply mode a planned Gateway another topology owns is adopted, or
   * is a conflict: that refuses a candidate, while the revision in force keeps serving its other Gateways.
   */
  private changesPhase(serving: KeyedCandidate, planned: PlanResult, isCandidate: boolean): Changes | { refused: string } {
    const live = this.liveGateways();
    if (this.d.gatewaySpec === 'external') {
      const { waiting, ...changes } = computeStatusOnlyChanges(planned.gateways, live, this.lastWritten);
      return { changes, waiting };
    }
    const previous = isCandidate && this.d.source.kind !== 'cluster' ? this.lastGood?.topology.name : undefined;
    const topologyObject = (n: string): TopologyObject | undefined => this.d.topologies.get(n);
    const owners = gatewayOwnership({ topology: serving.topology.name, desired: planned.gateways, live, topologyObject, formerName: (o) => this.formerName(o), previous });
    const changes = computeChanges(withoutConflicts(planned.gateways, owners), live, [serving.topology.name, ...owners.pruneWith], this.lastWritten);
    if (owners.conflicts.length === 0) return { changes, waiting: [], owners };
    const message = conflictMessage(owners.conflicts);
    if (isCandidate) return { refused: message };
    return { changes, waiting: [], owners, problem: { kind: 'rejected', revision: serving.revision, reason: REJECT.gatewayConflict, message } };
  }

  /** Who was active before this apply, as far as the election knows (what we wrote, else live). */
  private activeBefore(changes: ChangeSet): Map<string, string[]> {
    const out = new Map<string, string[]>();
    for (const c of changes.apply) {
      const prev = this.lastWrittenObject.get(c.name) ?? c.live;
      out.set(c.name, (prev?.status?.activeEndpoints ?? []).map((e) => e.nodeName));
    }
    return out;
  }

  /** Phases 6-7: the writes, then prune; remembered as the election's memory and laid over the caches. */
  private async applyPhase(changes: ChangeSet): Promise<string[]> {
    const stored = await applyChanges(this.writeContext(), changes);
    for (const [name, w] of stored) {
      this.lastWritten.set(name, ownedKey(w.object));
      this.lastWrittenObject.set(name, w.object);
      this.overlay.wroteGateway(name, w.object, w.superseded);
    }
    const deleted = await prune(this.writeContext(), changes.prune);
    for (const name of deleted) {
      this.lastWritten.delete(name);
      this.lastWrittenObject.delete(name);
      const rv = changes.prune.find((g) => g.metadata.name === name)?.metadata.resourceVersion;
      if (rv) this.overlay.deletedGateway(name, rv);
    }
    return deleted;
  }

  /** Live Gateways: the informer's cache, with this sync's own writes laid over it (WriteOverlay). */
  private liveGateways(): Gateway[] {
    return this.overlay.gateways(this.d.gateways.list());
  }

  /** The Topology object, with our own latest write of it laid over it (as for Gateways). */
  private liveTopology(name: string): TopologyObject | undefined {
    return this.overlay.topology(name, this.d.topologies.get(name));
  }

  /**
   * git/file sources: take the last applied revision back from the status object (spec = what was applied, status
   * lastAppliedRevision = its revision), so failover keeps working when the sync restarts while the newest revision
   * is broken. Only an object this kind of source created, and only when there is exactly one.
   */
  private recoverFromStatusObject(): void {
    if (this.d.source.kind === 'cluster' || !this.d.statusObject) return;
    const mine = this.d.topologies
      .list()
      .filter((t) => this.formerName(t) && t.status?.lastAppliedRevision && t.status.conditions?.find((c) => c.type === 'Ready')?.reason !== SUPERSEDED);
    if (mine.length !== 1) return;
    const obj = mine[0];
    const name = obj.metadata?.name ?? '';
    const revision = obj.status!.lastAppliedRevision!;
    const v = validate({ ok: true, revision, file: `topologies/${name}`, text: topologyDocument(obj) });
    if (!v.ok) {
      this.d.logger.warn('status object holds no usable topology', { topology: name, error: v.message });
      return;
    }
    this.lastGood = { ...v.candidate, key: `status-object\n${revision}` };
    this.appliedRevision = revision;
    this.d.logger.info('serving the last applied revision from the status object', { topology: name, revision });
  }

  /** Phase 4: node inventory + heartbeat health -> plan. Also the next time health changes on its own. */
  private planPhase(c: Candidate, now: Date): { planned: PlanResult; wakeAt?: number } {
    const nowText = now.toISOString();
    const nodes: InventoryNode[] = [];
    for (const n of this.d.nodes.list()) {
      try {
        nodes.push(inventoryFromNode(n));
      } catch (e) {
        this.d.logger.warn('node skipped', { node: n.metadata?.name, error: errorMessage(e) });
      }
    }
    // The election's memory (who is active, why) is the previous Gateway. For a Gateway this sync wrote, that is what
    // it wrote, not the live copy: a hand edit of status.activeEndpoints is drift to undo, not an election to keep.
    const previous = this.liveGateways().map((g) => this.lastWrittenObject.get(g.metadata.name) ?? g);
    const podSubnets = this.d.podSubnets?.();
    // The same step as `corvid diff/render/graph` (src/cli/inputs.ts), with this sync's memory.
    const { planned, memory, wakeAt } = desiredGateways({
      topology: c.topology,
      revision: c.revision,
      nodes,
      heartbeats: heartbeatsFrom(this.d.leases.list()),
      previous,
      now: nowText,
      memory: this.memory,
      requireHeartbeat: this.d.requireHeartbeat === true,
      ...(podSubnets ? { podSubnets } : {}),
    });
    this.memory = memory;
    return wakeAt === undefined ? { planned } : { planned, wakeAt };
  }

  /**
   * Log the pod-subnet source when it changes, and the Calico IPAM objects left out of every route when their list
   * changes (also a Warning Event on the Topology); both are in the Topology's status.
   */
  private notePodSubnets(d: PodSubnetDecision, problems: string[], topology: string): void {
    if (this.podSubnets?.source !== d.source || this.podSubnets.reason !== d.reason) {
      this.d.logger.info('pod subnet source', { source: d.source, decidedBy: d.decidedBy, reason: d.reason, previous: this.podSubnets?.source });
    }
    this.podSubnets = d;
    if (problems.join('\n') === this.podSubnetProblems.join('\n')) return;
    this.podSubnetProblems = problems;
    if (problems.length === 0) {
      this.d.logger.info('pod subnet problems resolved', { topology });
      return;
    }
    this.d.logger.warn('pod subnet problems', { topology, problems });
    const note = `${problems.length === 1 ? 'one Calico IPAM object' : `${problems.length} Calico IPAM objects`} left out of every route: ${problems.join('; ')}`;
    void this.event(this.topologyRef(topology), 'Warning', 'PodSubnetProblems', 'Plan', note.length > 1024 ? `${note.slice(0, 1020)} ...` : note);
  }

  private reject(key: string, revision: string | undefined, reason: RejectReason, message: string, name?: string): Outcome {
    const outcome = { kind: 'rejected' as const, ...(revision ? { revision } : {}), reason, message };
    if (this.rejected?.key !== key) {
      this.rejected = { key, outcome, name, ...(reason === REJECT.gatewayConflict ? { recheck: true as const } : {}) };
      this.d.metrics.topologyRejected.inc({ reason });
      this.d.logger.error('revision rejected', { revision, reason, message, inForce: this.lastGood?.revision });
      const ref = name ?? this.lastGood?.topology.name;
      if (ref !== undefined) {
        void this.event(this.topologyRef(ref), 'Warning', 'RevisionRejected', 'Validate', `${revision ?? 'revision'} rejected (${reason}): ${message}`);
      }
    }
    return outcome;
  }

  private async failed(
    serving: Candidate,
    attempted: string | undefined,
    e: unknown,
    reason: string,
  ): Promise<Report> {
    const message = errorMessage(e);
    const transient = !(e instanceof PhaseError) || e.transient;
    this.d.logger.warn('reconcile failed; retrying', { revision: serving.revision, reason, error: message, transient });
    const outcome: Outcome = { kind: 'failed', revision: serving.revision, reason: e instanceof PhaseError ? e.reason : reason, message };
    try {
      await this.writeStatus(outcome, attempted ?? serving.revision, serving.object?.name ?? serving.topology.name);
    } catch (err) {
      if (err instanceof NotLeaderError) throw err;
    }
    return { result: 'error', revision: serving.revision, outcome };
  }

  private notes(planned: PlanResult): string[] {
    return planned.findings.filter((f) => f.severity === 'error').map((f) => f.message);
  }

  /** Events, metrics and logs about what a successful apply did. */
  private report(serving: Candidate, planned: PlanResult, changes: ChangeSet, deleted: string[], activeBefore: Map<string, string[]>): void {
    const written = new Set(changes.apply.map((c) => c.name));
    for (const dcs of planned.decisions) {
      if (!written.has(dcs.pool)) continue;
      const type = dcs.kind === 'lost' ? 'Warning' : 'Normal';
      this.d.logger.info('election', { pool: dcs.pool, node: dcs.node, decision: dcs.kind, reason: dcs.reason });
      void this.event(this.gatewayRef(dcs.pool), type, capitalised(dcs.kind), 'Elect', `${dcs.node}: ${dcs.reason}`);
    }
    for (const c of changes.apply) {
      const before = activeBefore.get(c.name) ?? [];
      const after = (c.desired.status?.activeEndpoints ?? []).map((e) => e.nodeName);
      const gone = before.filter((n) => !after.includes(n));
      if (before.length > 0 && gone.length > 0) {
        this.d.metrics.failoverTotal.inc({ pool: c.name });
        const why = planned.decisions.filter((x) => x.pool === c.name && gone.includes(x.node)).map((x) => `${x.node} ${x.reason}`);
        const note = `active endpoint moved from ${before.join(',')} to ${after.join(',') || 'none'}${why.length ? ` (${why.join('; ')})` : ''}`;
        this.d.logger.warn('failover', { pool: c.name, from: before, to: after, why });
        void this.event(this.gatewayRef(c.name), 'Warning', 'Failover', 'Elect', note);
      }
      if (c.drift) {
        this.d.logger.warn('drift repaired', { gateway: c.name, spec: c.spec, status: c.status });
        void this.event(this.gatewayRef(c.name), 'Warning', 'DriftRepaired', 'Apply', `Gateway ${c.name} was changed outside Corvid; restored revision ${serving.revision}`);
      }
      if (!c.drift) this.d.logger.info('gateway applied', { gateway: c.name, spec: c.spec, status: c.status, created: c.live === undefined });
    }
    for (const name of deleted) {
      this.d.logger.info('gateway pruned', { gateway: name, revision: serving.revision });
      void this.event(this.gatewayRef(name), 'Normal', 'Pruned', 'Delete', `Gateway ${name} is no longer in revision ${serving.revision}`);
    }
    this.d.metrics.notePools(planned.gateways.map((g) => g.metadata.name));
    this.d.metrics.setActive(
      planned.gateways.flatMap((g) => (g.status?.activeEndpoints ?? []).map((e) => ({ pool: g.metadata.name, node: e.nodeName }))),
    );
    this.d.metrics.setRevision(serving.revision);
  }

  /**
   * Phase 8: status on the Topology object (and, for git/file sources, the object itself). False when a write failed
   * or is still backing off from a failure: the caller requeues, and the next attempt waits STATUS_RETRY_INITIAL_MS
   * doubling to STATUS_RETRY_MAX_MS, whatever triggers the reconciles in between (no hot loop on a refused write).
   */
  private async writeStatus(outcome: Outcome, attempted: string | undefined, name: string): Promise<boolean> {
    if (this.statusRetry !== undefined && this.nowMs() < this.statusRetry.notBefore) return false;
    const ok = await this.tryWriteStatus(outcome, attempted, name);
    if (ok) this.statusRetry = undefined;
    else {
      const delayMs = this.statusRetry === undefined ? STATUS_RETRY_INITIAL_MS : Math.min(this.statusRetry.delayMs * 2, STATUS_RETRY_MAX_MS);
      this.statusRetry = { delayMs, notBefore: this.nowMs() + delayMs };
    }
    return ok;
  }

  private async tryWriteStatus(outcome: Outcome, attempted: string | undefined, name: string): Promise<boolean> {
    const guard = this.writeContext().guard;
    let obj = this.liveTopology(name);
    if (this.d.source.kind !== 'cluster') {
      if (!this.d.statusObject) return true;
      // Never take over a Topology somebody else created (e.g. one applied for the cluster source).
      if (obj !== undefined && obj.metadata?.annotations?.[SOURCE_ANNOTATION] === undefined) {
        this.d.logger.warn('status not written: Topology exists and was not created by a git/file sync', { topology: name });
        return true;
      }
      const good = this.lastGood;
      if (good !== undefined && good.topology.name === name) {
        const labels = { [MANAGED_BY_LABEL]: MANAGED_BY_VALUE };
        const annotations = { [SOURCE_ANNOTATION]: this.d.source.kind };
        const same =
          obj !== undefined &&
          canonicalJson(obj.spec ?? {}) === canonicalJson(good.rawSpec) &&
          obj.metadata?.labels?.[MANAGED_BY_LABEL] === MANAGED_BY_VALUE &&
          obj.metadata?.annotations?.[SOURCE_ANNOTATION] === this.d.source.kind;
        if (!same) {
          guard();
          try {
            const before = obj;
            obj = await this.d.writes.applyTopology({ name, labels, annotations, spec: good.rawSpec });
            this.overlay.wroteTopology(name, before, obj);
            this.writes++;
            this.d.metrics.writesTotal.inc({ verb: 'apply', resource: 'topologies' });
          } catch (e) {
            if (e instanceof NotLeaderError) throw e;
            this.d.logger.warn('status object not written', { topology: name, error: errorMessage(e) });
            return false;
          }
        }
      }
    }
    if (obj === undefined) return true;
    const status = topologyStatus({
      previous: obj.status,
      generation: obj.metadata?.generation,
      lastAppliedRevision: this.appliedRevision ?? obj.status?.lastAppliedRevision,
      lastAttemptedRevision: attempted ?? obj.status?.lastAttemptedRevision,
      outcome,
      now: rfc3339(this.d.now()),
      podSubnets:
        this.podSubnets === undefined
          ? obj.status?.podSubnets
          : { source: this.podSubnets.source, reason: this.podSubnets.reason, problems: this.podSubnetProblems },
    });
    if (statusEquals(obj.status, status)) return true;
    guard();
    try {
      this.overlay.wroteTopology(name, obj, await this.d.writes.applyTopologyStatus(name, status));
      this.writes++;
      this.d.metrics.writesTotal.inc({ verb: 'apply', resource: 'topologies/status' });
      return true;
    } catch (e) {
      this.d.logger.warn('topology status not written', { topology: name, error: errorMessage(e) });
      return false;
    }
  }

  private topologyRef(name: string) {
    const uid = this.d.topologies.get(name)?.metadata?.uid;
    return { apiVersion: TOPOLOGY_API_VERSION, kind: 'Topology', name, ...(uid ? { uid } : {}) };
  }

  private gatewayRef(name: string) {
    const uid = this.d.gateways.get(name)?.metadata.uid;
    return { apiVersion: GATEWAY_API_VERSION, kind: GATEWAY_KIND, name, ...(uid ? { uid } : {}) };
  }

  private async event(regarding: { apiVersion: string; kind: string; name: string }, type: 'Normal' | 'Warning', reason: string, action: string, note: string): Promise<void> {
    if (!this.d.canWrite()) return;
    await this.d.events.record({ regarding, type, reason, action, note });
  }
}

