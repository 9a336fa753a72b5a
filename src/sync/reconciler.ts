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

import type { KubeConfig } from '../adapters/kube/kubeconfig.ts';
import { errorMessage } from '../adapters/kube/client.ts';
import type { EventRecorder } from '../adapters/kube/events.ts';
import type { Informer } from '../adapters/kube/informer.ts';
import { heartbeatsFrom, type LeaseJson } from '../adapters/kube/leases.ts';
import type { NodeJson } from '../adapters/kube/nodes.ts';
import { applyTopology, applyTopologyStatus, type TopologyObject } from '../adapters/kube/topologies.ts';
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

export const SOURCE_ANNOTATION = 'corvid.dev/source';

/** How long our own writes overlay the informer caches at most (normally they catch up in milliseconds). */
const OVERLAY_TTL_MS = 10_000;
/** Backoff of the status write after a failure (it is requeued, but never tried more often than this). */
const STATUS_RETRY_INITIAL_MS = 500;
const STATUS_RETRY_MAX_MS = 60_000;

export interface ReconcilerDeps {
  kc: KubeConfig;
  source: TopologySource;
  gateways: Informer<Gateway>;
  nodes: Informer<NodeJson>;
  leases: Informer<LeaseJson>;
  /** Topology objects (status target; for the cluster source also the input). */
  topologies: Informer<TopologyObject>;
  /** git/file sources: keep a Topology object (spec = last applied) to carry status. */
  statusObject: boolean;
  events: EventRecorder;
  metrics: SyncMetrics;
  logger: Logger;
  /** False when this replica must not write (not the leader). Checked before every write. */
  canWrite: () => boolean;
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

export class GatewayReconciler {
  private readonly d: ReconcilerDeps;
  private lastGood: (Candidate & { key: string }) | undefined;
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
  /** The Gateways as this sync last wrote them: the election's memory (see plan()). */
  private readonly lastWrittenObject = new Map<string, Gateway>();
  /** Our own recent writes, until the informer has caught up with them (see liveGateways). */
  private readonly recent = new Map<string, { superseded: Set<string>; object: Gateway; at: number }>();
  private readonly removed = new Map<string, { rv: string; at: number }>();
  private readonly recentTopology = new Map<string, { superseded: Set<string>; object: TopologyObject; at: number }>();
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
    this.takeovers = new Takeovers({
      kc: deps.kc,
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
    this.recent.clear();
    this.removed.clear();
    this.recentTopology.clear();
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
      kc: this.d.kc,
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
    const started = Date.now();
    const writesBefore = this.writes;
    if (!this.d.canWrite()) return { result: 'skipped', writes: 0, durationMs: 0 };
    let report: Omit<ReconcileReport, 'durationMs' | 'writes'>;
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
    const durationMs = Date.now() - started;
    if (report.result !== 'skipped') this.ranOnce = true;
    return { ...report, writes: this.writes - writesBefore, durationMs };
  }

  private async run(): Promise<Omit<ReconcileReport, 'durationMs' | 'writes'>> {
    const now = this.d.now();
    const art = this.d.source.latest();

    // Phases 1-3: fetch (the source did it; take its newest artifact), verify, validate.
    let candidate: (Candidate & { key: string }) | undefined;
    let problem: Outcome | undefined;
    let attempted: string | undefined;
    /** The newest revision has no verdict yet: serve the last good one, prune nothing, write no status. */
    let validating = false;
    if (art === undefined) {
      problem = { kind: 'failed', reason: REJECT.fetchFailed, message: 'no revision fetched yet' };
    } else if (!art.ok) {
      attempted = art.revision;
      if (art.transient) problem = { kind: 'failed', revision: art.revision, reason: art.reason, message: art.message };
      else problem = this.reject(`${art.revision}\n${art.reason}`, art.revision, art.reason, art.message, art.object?.name);
    } else {
      attempted = art.revision;
      const key = artifactKey(art);
      if (this.lastGood?.key !== key) {
        if (this.rejected?.key === key && !this.rejected.recheck) problem = this.rejected.outcome;
        else {
          const v = this.d.validator.verdict(key, art);
          if (v === undefined) validating = true;
          else if (v.ok) candidate = { ...v.candidate, key };
          else problem = this.reject(key, art.revision, v.reason, v.message, art.object?.name ?? v.name);
        }
      }
    }

    // After a restart with a broken (or not yet validated) newest revision, the status object still holds the last
    // applied spec: serve it, so failover works from the first reconcile.
    if (this.lastGood === undefined && candidate === undefined && (problem !== undefined || validating)) this.recoverFromStatusObject();

    // Phases 4-7, for the candidate; if it fails permanently, for the last good revision.
    for (const serving of [candidate, this.lastGood]) {
      if (serving === undefined) continue;
      const isCandidate = serving === candidate;
      let planned: PlanResult;
      let wakeAt: number | undefined;
      try {
        ({ planned, wakeAt } = this.plan(serving, now));
      } catch (e) {
        if (!isCandidate) throw e;
        problem = this.reject(serving.key, serving.revision, REJECT.planFailed, `planner failed: ${errorMessage(e)}`, serving.topology.name);
        continue;
      }
      const live = this.liveGateways();
      let changes: ChangeSet;
      let waiting: WaitingGateway[] = [];
      let owners: Ownership | undefined;
      if (this.d.gatewaySpec === 'external') ({ waiting, ...changes } = computeStatusOnlyChanges(planned.gateways, live, this.lastWritten));
      else {
        // A planned Gateway another topology owns: adopted, or a conflict that refuses the revision (ownership.ts).
        const previous = isCandidate && this.d.source.kind !== 'cluster' ? this.lastGood?.topology.name : undefined;
        const topologyObject = (n: string): TopologyObject | undefined => this.d.topologies.get(n);
        owners = gatewayOwnership({ topology: serving.topology.name, desired: planned.gateways, live, topologyObject, formerName: (o) => this.formerName(o), previous });
        changes = computeChanges(withoutConflicts(planned.gateways, owners), live, [serving.topology.name, ...owners.pruneWith], this.lastWritten);
        if (owners.conflicts.length > 0) {
          const message = conflictMessage(owners.conflicts);
          if (isCandidate) {
            problem = this.reject(serving.key, serving.revision, REJECT.gatewayConflict, message, serving.topology.name);
            continue;
          }
          // The revision in force keeps serving its other Gateways.
          problem ??= { kind: 'rejected', revision: serving.revision, reason: REJECT.gatewayConflict, message };
        }
      }
      const refusal = emptyRefusal(planned.gateways, changes, serving.topology.allowEmpty);
      if (refusal !== undefined) {
        if (isCandidate) {
          problem = this.reject(serving.key, serving.revision, REJECT.emptyTopologyRefused, refusal, serving.topology.name);
          continue;
        }
        changes.prune = [];
      }
      const mayPrune = problem === undefined && !validating;
      if (!mayPrune) changes.prune = [];

      try {
        await dryRun(this.d.kc, changes, this.d.applyConcurrency);
      } catch (e) {
        if (e instanceof PhaseError && !e.transient && isCandidate) {
          problem = this.reject(serving.key, serving.revision, REJECT.dryRunFailed, e.message, serving.topology.name);
          continue;
        }
        return this.failed(serving, attempted, e, REJECT.dryRunFailed);
      }

      // Who was active before this apply, as far as the election knows (what we wrote, else live).
      const activeBefore = new Map<string, string[]>();
      for (const c of changes.apply) {
        const prev = this.lastWrittenObject.get(c.name) ?? c.live;
        activeBefore.set(c.name, (prev?.status?.activeEndpoints ?? []).map((e) => e.nodeName));
      }
      let deleted: string[] = [];
      try {
        const stored = await applyChanges(this.writeContext(), changes);
        for (const [name, w] of stored) {
          this.lastWritten.set(name, ownedKey(w.object));
          this.lastWrittenObject.set(name, w.object);
          this.recent.set(name, { superseded: new Set(w.superseded), object: w.object, at: Date.now() });
        }
        deleted = await prune(this.writeContext(), changes.prune);
        for (const name of deleted) {
          this.lastWritten.delete(name);
          this.lastWrittenObject.delete(name);
          const rv = changes.prune.find((g) => g.metadata.name === name)?.metadata.resourceVersion;
          if (rv) this.removed.set(name, { rv, at: Date.now() });
        }
      } catch (e) {
        if (e instanceof NotLeaderError) throw e;
        return this.failed(serving, attempted, e, REJECT.applyFailed);
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
      const outcome: Outcome =
        problem ??
        (waiting.length > 0
          ? { kind: 'waiting', revision: serving.revision, reason: WAITING_FOR_GATEWAY_SPEC, message: waitingMessage(waiting, serving.revision) }
          : { kind: 'applied', revision: serving.revision, notes: this.notes(planned) });
      if (waiting.length > 0) this.d.logger.info('waiting for the Gateway spec', { revision: serving.revision, waiting: waiting.map((w) => w.name) });
      // Status speaks of the newest revision; while its verdict is out, the last one written stands.
      const statusWritten = validating || (await this.writeStatus(outcome, attempted ?? serving.revision, serving.object?.name ?? serving.topology.name));
      // A source that failed transiently (fetch) is asked again later; the Gateways themselves are in order. So is a
      // status write that failed: requeue, with backoff. Waiting Gateways are retried too, though their informer
      // events (the spec owner's writes) normally trigger the reconcile first.
      const requeue = problem?.kind === 'failed' || waiting.length > 0 || !statusWritten;
      return { result: requeue ? 'requeue' : 'success', revision: serving.revision, outcome, wakeAt };
    }

    // Nothing to serve: no good revision yet.
    if (validating) return { result: 'success', revision: attempted };
    const outcome = problem ?? { kind: 'failed' as const, reason: REJECT.fetchFailed, message: 'no revision fetched yet' };
    const name = art?.object?.name ?? this.rejected?.name;
    const statusWritten = name === undefined || (await this.writeStatus(outcome, attempted, name));
    return { result: outcome.kind === 'failed' || !statusWritten ? 'requeue' : 'success', outcome };
  }

  /**
   * Live Gateways: the informer's cache, overlaid with this sync's own writes that the cache has not caught up with
   * yet (a cached copy whose resourceVersion our write superseded). Without this a reconcile right after a write
   * would see the old object and write again.
   */
  private liveGateways(): Gateway[] {
    const out = new Map<string, Gateway>();
    const cutoff = Date.now() - OVERLAY_TTL_MS;
    for (const [k, v] of this.recent) if (v.at < cutoff) this.recent.delete(k);
    for (const [k, v] of this.removed) if (v.at < cutoff) this.removed.delete(k);
    for (const g of this.d.gateways.list()) {
      const name = g.metadata.name;
      const rv = g.metadata.resourceVersion ?? '';
      const mine = this.recent.get(name);
      if (mine !== undefined) {
        if (rv !== mine.object.metadata.resourceVersion && mine.superseded.has(rv)) {
          out.set(name, mine.object);
          continue;
        }
        this.recent.delete(name);
      }
      const gone = this.removed.get(name);
      if (gone !== undefined) {
        if (gone.rv === rv) continue;
        this.removed.delete(name);
      }
      out.set(name, g);
    }
    for (const [name, mine] of this.recent) if (!out.has(name) && mine.superseded.size === 0) out.set(name, mine.object);
    return [...out.values()].sort((a, b) => (a.metadata.name < b.metadata.name ? -1 : 1));
  }

  /** The Topology object, overlaid with our own latest write of it (as for Gateways). */
  private liveTopology(name: string): TopologyObject | undefined {
    const cached = this.d.topologies.get(name);
    const mine = this.recentTopology.get(name);
    if (mine === undefined) return cached;
    const rv = cached?.metadata?.resourceVersion ?? '';
    if (mine.at >= Date.now() - OVERLAY_TTL_MS && (cached === undefined || (rv !== mine.object.metadata?.resourceVersion && mine.superseded.has(rv)))) {
      return mine.object;
    }
    this.recentTopology.delete(name);
    return cached;
  }

  private rememberTopology(name: string, before: TopologyObject | undefined, after: TopologyObject): void {
    const superseded = new Set(this.recentTopology.get(name)?.superseded ?? []);
    if (before?.metadata?.resourceVersion) superseded.add(before.metadata.resourceVersion);
    this.recentTopology.set(name, { superseded, object: after, at: Date.now() });
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
  private plan(c: Candidate, now: Date): { planned: PlanResult; wakeAt?: number } {
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
  ): Promise<Omit<ReconcileReport, 'durationMs' | 'writes'>> {
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
    if (this.statusRetry !== undefined && Date.now() < this.statusRetry.notBefore) return false;
    const ok = await this.tryWriteStatus(outcome, attempted, name);
    if (ok) this.statusRetry = undefined;
    else {
      const delayMs = this.statusRetry === undefined ? STATUS_RETRY_INITIAL_MS : Math.min(this.statusRetry.delayMs * 2, STATUS_RETRY_MAX_MS);
      this.statusRetry = { delayMs, notBefore: Date.now() + delayMs };
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
            obj = await applyTopology(this.d.kc, { name, labels, annotations, spec: good.rawSpec });
            this.rememberTopology(name, before, obj);
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
      this.rememberTopology(name, obj, await applyTopologyStatus(this.d.kc, name, status));
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

