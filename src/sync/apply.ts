// Phases 5-7: server-side dry run of every change, then the writes, then prune.
// - Every change (spec apply, status apply, delete) is dry-run first; one failure stops the reconcile before any
//   write, so a bad revision changes nothing live.
// - Writes are server-side applies with force (manager corvid-sync; status through /status as corvid-sync-status).
//   When an apply leaves a difference (a field another manager added), the part is replaced (PUT with the
//   resourceVersion just read), so drift is really undone.
// - With the spec owned by someone else (gatewaySpec 'external'), a change has spec=false and the live-state
//   annotations (election, WireGuard keys) go alone as a merge patch, so the sync never takes ownership of (or drops)
//   a field the spec owner applied.
// - Deletes carry uid and resourceVersion preconditions: a Gateway changed since it was read is not deleted.
// - guard() runs before every write; it throws when this replica must not write (not the leader any more).
// - Dry runs and applies run a bounded number of Gateways at a time (DEFAULT_APPLY_CONCURRENCY): a first reconcile at
//   10k nodes has about 2,000 of each, and having them all in flight at once only piles up memory.

import { errorMessage, isSchemaRejection, isTransient, statusCode } from '../adapters/kube/client.ts';
import { LIVE_STATE_ANNOTATIONS } from '../gateway/keys.ts';
import { CORVID_PREFIX } from '../gateway/render.ts';
import type { Gateway } from '../gateway/types.ts';
import { specEqual, statusEqual, type ChangeSet } from '../reconcile/gateway-changes.ts';
import { DEFAULT_APPLY_CONCURRENCY, mapBounded } from './parallel.ts';
import type { ClusterWrites } from './writes.ts';

/** A phase failed. `transient`: retry with backoff; otherwise only a new revision helps. */
export class PhaseError extends Error {
  readonly reason: string;
  readonly transient: boolean;
  constructor(reason: string, message: string, transient: boolean) {
    super(message);
    this.name = 'PhaseError';
    this.reason = reason;
    this.transient = transient;
  }
}

/** This replica may not write (it is not, or no longer, the leader). */
export class NotLeaderError extends Error {
  constructor() {
    super('not the leader');
    this.name = 'NotLeaderError';
  }
}

export interface WriteContext {
  writes: ClusterWrites;
  /** Throws NotLeaderError when writing is not allowed. Called before every write. */
  guard: () => void;
  /** Counts each write (verb, resource). */
  countWrite: (verb: 'apply' | 'replace' | 'patch' | 'delete', resource: 'gateways' | 'gateways/status') => void;
  /** Gateways written at once. Default DEFAULT_APPLY_CONCURRENCY. */
  concurrency?: number;
}

function failure(reason: string, what: string, e: unknown): { transient: boolean; line: string } {
  return { transient: isTransient(e) && !isSchemaRejection(e), line: `${what}: ${errorMessage(e)}` };
}

/** The live-state annotations of `g` as a merge patch: each one's value, or null to remove it. */
function liveAnnotationsPatch(g: Gateway): Record<string, string | null> {
  return Object.fromEntries(LIVE_STATE_ANNOTATIONS.map((k) => [k, g.metadata.annotations?.[k] ?? null]));
}

/** Phase 5, `concurrency` requests at a time. Throws PhaseError('DryRunFailed') listing every failing object. */
export async function dryRun(writes: ClusterWrites, changes: ChangeSet, concurrency = DEFAULT_APPLY_CONCURRENCY): Promise<void> {
  const tries: (() => Promise<void>)[] = [];
  const problems: { transient: boolean; line: string }[] = [];
  for (const c of changes.apply) {
    if (c.spec) {
      tries.push(() => writes.applyGateway(c.desired, { dryRun: true }).then(() => undefined, (e) => void problems.push(failure('DryRunFailed', `Gateway ${c.name}`, e))));
    } else if (c.liveAnnotations) {
      tries.push(() =>
        writes.patchGatewayAnnotations(c.name, liveAnnotationsPatch(c.desired), { dryRun: true }).then(
          () => undefined,
          (e) => void problems.push(failure('DryRunFailed', `Gateway ${c.name} live-state annotations`, e)),
        ),
      );
    }
    // A status dry run needs the object to exist; a new Gateway's status is checked by its real write.
    if (c.status && c.live !== undefined) {
      tries.push(() =>
        writes.applyGatewayStatus(c.name, c.desired.status ?? {}, { dryRun: true }).then(
          () => undefined,
          (e) => void problems.push(failure('DryRunFailed', `Gateway ${c.name} status`, e)),
        ),
      );
    }
  }
  for (const g of changes.prune) {
    tries.push(() =>
      writes.deleteGateway(g.metadata.name, { uid: g.metadata.uid, resourceVersion: g.metadata.resourceVersion }, { dryRun: true }).then(
        () => undefined,
        (e) => void problems.push(failure('DryRunFailed', `delete Gateway ${g.metadata.name}`, e)),
      ),
    );
  }
  await mapBounded(tries, concurrency, (t) => t());
  if (problems.length > 0) {
    problems.sort((a, b) => (a.line < b.line ? -1 : 1));
    throw new PhaseError('DryRunFailed', `server dry run failed: ${problems.map((p) => p.line).join('; ')}`, problems.some((p) => p.transient));
  }
}

/** The spec part of `desired` laid over `stored`: owned labels/annotations replaced, foreign ones kept. */
function overlaySpec(stored: Gateway, desired: Gateway): Gateway {
  const annotations: Record<string, string> = {};
  for (const [k, v] of Object.entries(stored.metadata.annotations ?? {})) if (!k.startsWith(CORVID_PREFIX)) annotations[k] = v;
  Object.assign(annotations, desired.metadata.annotations ?? {});
  return {
    ...stored,
    metadata: {
      ...stored.metadata,
      labels: { ...(stored.metadata.labels ?? {}), ...(desired.metadata.labels ?? {}) },
      annotations,
    },
    spec: desired.spec,
  };
}

/** What a write left: the stored object, and the resourceVersions it had before (live and intermediate). */
export interface Written {
  object: Gateway;
  superseded: string[];
}

/** Phase 6. Resolves to the stored objects by name. Throws PhaseError('ApplyFailed') or NotLeaderError. */
export async function applyChanges(w: WriteContext, changes: ChangeSet): Promise<Map<string, Written>> {
  const stored = new Map<string, Written>();
  const problems: { transient: boolean; line: string }[] = [];
  await mapBounded(
    changes.apply,
    w.concurrency ?? DEFAULT_APPLY_CONCURRENCY,
    async (c) => {
      const superseded: string[] = [];
      const step = (g: Gateway): Gateway => {
        if (cur?.metadata.resourceVersion) superseded.push(cur.metadata.resourceVersion);
        return g;
      };
      let cur = c.live;
      try {
        if (c.spec) {
          w.guard();
          cur = step(await w.writes.applyGateway(c.desired));
          w.countWrite('apply', 'gateways');
          if (!specEqual(c.desired, cur)) {
            w.guard();
            cur = step(await w.writes.replaceGateway(overlaySpec(cur, c.desired)));
            w.countWrite('replace', 'gateways');
          }
        } else if (c.liveAnnotations) {
          w.guard();
          cur = step(await w.writes.patchGatewayAnnotations(c.name, liveAnnotationsPatch(c.desired)));
          w.countWrite('patch', 'gateways');
        }
        if (c.status && cur !== undefined) {
          w.guard();
          cur = step(await w.writes.applyGatewayStatus(c.name, c.desired.status ?? {}));
          w.countWrite('apply', 'gateways/status');
          if (!statusEqual(c.desired, cur)) {
            w.guard();
            cur = step(await w.writes.replaceGatewayStatus({ ...cur, status: c.desired.status ?? {} }));
            w.countWrite('replace', 'gateways/status');
          }
        }
        if (cur !== undefined) stored.set(c.name, { object: cur, superseded });
      } catch (e) {
        if (e instanceof NotLeaderError) throw e;
        problems.push(failure('ApplyFailed', `Gateway ${c.name}`, e));
      }
    },
  );
  if (problems.length > 0) {
    throw new PhaseError('ApplyFailed', `apply failed: ${problems.map((p) => p.line).join('; ')}`, problems.some((p) => p.transient));
  }
  return stored;
}

/** Phase 7. Deletes with uid+resourceVersion preconditions; resolves to the names deleted. */
export async function prune(w: WriteContext, gateways: readonly Gateway[]): Promise<string[]> {
  const deleted: string[] = [];
  const problems: { transient: boolean; line: string }[] = [];
  for (const g of gateways) {
    try {
      w.guard();
      const gone = await w.writes.deleteGateway(g.metadata.name, { uid: g.metadata.uid, resourceVersion: g.metadata.resourceVersion });
      w.countWrite('delete', 'gateways');
      if (gone) deleted.push(g.metadata.name);
    } catch (e) {
      if (e instanceof NotLeaderError) throw e;
      // 409: changed since read (precondition); the next reconcile looks again.
      problems.push({ transient: true, line: `delete Gateway ${g.metadata.name}: ${statusCode(e) === 409 ? 'changed since it was read' : errorMessage(e)}` });
    }
  }
  if (problems.length > 0) throw new PhaseError('PruneFailed', `prune failed: ${problems.map((p) => p.line).join('; ')}`, true);
  return deleted;
}
