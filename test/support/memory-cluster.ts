// An in-memory stand-in for what the sync writes (src/sync/writes.ts ClusterWrites) and the caches it reads, for unit
// tests of the reconcile's phases without an API server. It keeps the API server's rules the reconcile relies on:
// server-side apply with force (fields this manager sent before and no longer sends are removed, other writers'
// fields stay), PUT and DELETE preconditions (409), a status write to a missing object (404), dry runs that store
// nothing, and a new resourceVersion per write. Failures are injected with failNext. The integration suite runs the
// same reconcile against a real kube-apiserver; this is not a substitute for it.

import { KubeApiError } from '../../src/adapters/kube/client.ts';
import type { ObjectCache } from '../../src/adapters/kube/informer.ts';
import type { TopologyObject } from '../../src/adapters/kube/topologies.ts';
import type { DeletePrecondition } from '../../src/adapters/kube/gateways.ts';
import { GATEWAY_API_VERSION, GATEWAY_KIND, type Gateway, type GatewayStatus } from '../../src/gateway/types.ts';
import type { TopologyStatus } from '../../src/reconcile/conditions.ts';
import type { ClusterWrites, DryRun, TopologyApply } from '../../src/sync/writes.ts';

export type WriteOp = keyof ClusterWrites;

interface Owned {
  labels: Set<string>;
  annotations: Set<string>;
  spec: Set<string>;
  status: Set<string>;
}

interface Failure {
  op: WriteOp;
  name?: string;
  code: number;
  message: string;
  /** Also fail dry runs (default: only real writes). */
  dryRun?: boolean;
  times: number;
}

function copy<T>(v: T): T {
  return structuredClone(v);
}

/** Fields of `current` another writer owns, then what this manager sends now (SSA with force, one level deep). */
function applied(current: Record<string, unknown> | undefined, owned: Set<string>, sent: Record<string, unknown> | undefined): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(current ?? {})) if (!owned.has(k)) out[k] = v;
  return { ...out, ...copy(sent ?? {}) };
}

/** An informer's cache over `objects`, caught up at once: copies, sorted by name. */
function cacheOf<T>(objects: Map<string, T>): { list(): T[]; get(name: string): T | undefined } {
  return {
    list: () => [...objects.keys()].sort().map((k) => copy(objects.get(k)!)),
    get: (name) => {
      const o = objects.get(name);
      return o === undefined ? undefined : copy(o);
    },
  };
}

export class MemoryCluster implements ClusterWrites {
  private readonly gatewayStore = new Map<string, Gateway>();
  private readonly topologyStore = new Map<string, TopologyObject>();
  private readonly owned = new Map<string, Owned>();
  private readonly failures: Failure[] = [];
  private rv = 100;
  private uid = 0;
  /** Every write that stored something, in order: `applyGateway edge-a`, `deleteGateway cloud`... (no dry runs). */
  readonly writes: string[] = [];
  /** What the reconcile reads: as an informer cache that has caught up at once. */
  readonly gateways: ObjectCache<Gateway> = cacheOf(this.gatewayStore);
  readonly topologies: ObjectCache<TopologyObject> = cacheOf(this.topologyStore);

  /** The next `times` calls of `op` (on `name`, if given) fail with this status code. */
  failNext(op: WriteOp, f: { code: number; message: string; name?: string; dryRun?: boolean; times?: number }): void {
    this.failures.push({ op, ...f, times: f.times ?? 1 });
  }

  /** Another writer (a person with kubectl, another controller) changes a Gateway. */
  editGateway(name: string, edit: (g: Gateway) => void): void {
    const g = this.gatewayStore.get(name);
    if (g === undefined) throw new Error(`no Gateway ${name}`);
    edit(g);
    g.metadata.resourceVersion = this.nextRv();
  }

  /** A Topology object as another writer (Argo CD, kubectl) creates it. */
  putTopology(obj: TopologyObject): void {
    const name = obj.metadata?.name ?? '';
    this.topologyStore.set(name, { ...copy(obj), metadata: { ...copy(obj.metadata), name, uid: `uid-${++this.uid}`, resourceVersion: this.nextRv(), generation: 1 } });
  }

  private nextRv(): string {
    return String(++this.rv);
  }

  private check(op: WriteOp, name: string, opts: DryRun | undefined): void {
    const i = this.failures.findIndex((f) => f.op === op && (f.name === undefined || f.name === name) && (opts?.dryRun !== true || f.dryRun === true));
    if (i < 0) return;
    const f = this.failures[i];
    if (--f.times === 0) this.failures.splice(i, 1);
    throw new KubeApiError('PATCH', `memory/${op}/${name}`, f.code, { message: f.message, code: f.code }, '');
  }

  private ownership(name: string): Owned {
    let o = this.owned.get(name);
    if (o === undefined) {
      o = { labels: new Set(), annotations: new Set(), spec: new Set(), status: new Set() };
      this.owned.set(name, o);
    }
    return o;
  }

  private missing(op: WriteOp, name: string): KubeApiError {
    return new KubeApiError('PATCH', `memory/${op}/${name}`, 404, { message: `gateways "${name}" not found`, reason: 'NotFound', code: 404 }, '');
  }

  private conflict(op: WriteOp, name: string): KubeApiError {
    return new KubeApiError('PUT', `memory/${op}/${name}`, 409, { message: 'the object has been modified', reason: 'Conflict', code: 409 }, '');
  }

  /** The stored Gateway `op` acts on: 404 when there is none; 409 when a PUT's resourceVersion is not its own. */
  private stored(op: WriteOp, name: string, put?: { resourceVersion?: string }): Gateway {
    const cur = this.gatewayStore.get(name);
    if (cur === undefined) throw this.missing(op, name);
    if (put !== undefined && put.resourceVersion !== cur.metadata.resourceVersion) throw this.conflict(op, name);
    return cur;
  }

  /** This manager now owns exactly the labels, annotations and spec fields it sent. */
  private ownSent(gw: Gateway): void {
    const own = this.ownership(gw.metadata.name);
    own.labels = new Set(Object.keys(gw.metadata.labels ?? {}));
    own.annotations = new Set(Object.keys(gw.metadata.annotations ?? {}));
    own.spec = new Set(Object.keys(gw.spec ?? {}));
  }

  private store(op: WriteOp, g: Gateway, opts: DryRun | undefined): Gateway {
    if (opts?.dryRun === true) return copy(g);
    g.metadata.resourceVersion = this.nextRv();
    this.gatewayStore.set(g.metadata.name, g);
    this.writes.push(`${op} ${g.metadata.name}`);
    return copy(g);
  }

  async applyGateway(gw: Gateway, opts?: DryRun): Promise<Gateway> {
    const name = gw.metadata.name;
    this.check('applyGateway', name, opts);
    const cur = this.gatewayStore.get(name);
    const own = this.ownership(name);
    const next: Gateway = {
      apiVersion: GATEWAY_API_VERSION,
      kind: GATEWAY_KIND,
      metadata: {
        ...copy(cur?.metadata ?? { name, uid: `uid-${++this.uid}` }),
        labels: applied(cur?.metadata.labels, own.labels, gw.metadata.labels) as Record<string, string>,
        annotations: applied(cur?.metadata.annotations, own.annotations, gw.metadata.annotations) as Record<string, string>,
      },
      spec: applied(cur?.spec as Record<string, unknown> | undefined, own.spec, gw.spec as unknown as Record<string, unknown>) as unknown as Gateway['spec'],
      ...(cur?.status !== undefined ? { status: copy(cur.status) } : {}),
    };
    if (opts?.dryRun !== true) this.ownSent(gw);
    return this.store('applyGateway', next, opts);
  }

  async replaceGateway(gw: Gateway): Promise<Gateway> {
    const name = gw.metadata.name;
    this.check('replaceGateway', name, undefined);
    const cur = this.stored('replaceGateway', name, gw.metadata);
    this.ownSent(gw);
    const next: Gateway = { ...copy(gw), metadata: { ...copy(gw.metadata), uid: cur.metadata.uid }, ...(cur.status !== undefined ? { status: copy(cur.status) } : {}) };
    return this.store('replaceGateway', next, undefined);
  }

  async patchGatewayAnnotations(name: string, annotations: Record<string, string | null>, opts?: DryRun): Promise<Gateway> {
    this.check('patchGatewayAnnotations', name, opts);
    const cur = this.stored('patchGatewayAnnotations', name);
    const next = copy(cur);
    const merged: Record<string, string> = { ...(next.metadata.annotations ?? {}) };
    for (const [k, v] of Object.entries(annotations)) {
      if (v === null) delete merged[k];
      else merged[k] = v;
    }
    next.metadata.annotations = merged;
    return this.store('patchGatewayAnnotations', next, opts);
  }

  async applyGatewayStatus(name: string, status: GatewayStatus, opts?: DryRun): Promise<Gateway> {
    this.check('applyGatewayStatus', name, opts);
    const cur = this.stored('applyGatewayStatus', name);
    const own = this.ownership(name);
    const next = copy(cur);
    next.status = applied(cur.status as Record<string, unknown> | undefined, own.status, status as Record<string, unknown>) as GatewayStatus;
    if (opts?.dryRun !== true) own.status = new Set(Object.keys(status));
    return this.store('applyGatewayStatus', next, opts);
  }

  async replaceGatewayStatus(gw: Gateway): Promise<Gateway> {
    const name = gw.metadata.name;
    this.check('replaceGatewayStatus', name, undefined);
    const cur = this.stored('replaceGatewayStatus', name, gw.metadata);
    this.ownership(name).status = new Set(Object.keys(gw.status ?? {}));
    return this.store('replaceGatewayStatus', { ...copy(cur), status: copy(gw.status ?? {}) }, undefined);
  }

  async deleteGateway(name: string, precondition: DeletePrecondition, opts?: DryRun): Promise<boolean> {
    this.check('deleteGateway', name, opts);
    const cur = this.gatewayStore.get(name);
    if (cur === undefined) return false;
    if ((precondition.uid !== undefined && precondition.uid !== cur.metadata.uid) || (precondition.resourceVersion !== undefined && precondition.resourceVersion !== cur.metadata.resourceVersion)) {
      throw this.conflict('deleteGateway', name);
    }
    if (opts?.dryRun === true) return true;
    this.gatewayStore.delete(name);
    this.owned.delete(name);
    this.writes.push(`deleteGateway ${name}`);
    return true;
  }

  async applyTopology(obj: TopologyApply): Promise<TopologyObject> {
    this.check('applyTopology', obj.name, undefined);
    const cur = this.topologyStore.get(obj.name);
    const specChanged = cur === undefined || JSON.stringify(cur.spec) !== JSON.stringify(obj.spec);
    const next: TopologyObject = {
      apiVersion: 'corvid.dev/v1alpha1',
      kind: 'Topology',
      metadata: {
        ...copy(cur?.metadata ?? { name: obj.name, uid: `uid-${++this.uid}` }),
        labels: { ...(cur?.metadata?.labels ?? {}), ...(obj.labels ?? {}) },
        annotations: { ...(cur?.metadata?.annotations ?? {}), ...(obj.annotations ?? {}) },
        generation: (cur?.metadata?.generation ?? 0) + (specChanged ? 1 : 0),
        resourceVersion: this.nextRv(),
      },
      spec: copy(obj.spec) as Record<string, unknown>,
      ...(cur?.status !== undefined ? { status: copy(cur.status) } : {}),
    };
    this.topologyStore.set(obj.name, next);
    this.writes.push(`applyTopology ${obj.name}`);
    return copy(next);
  }

  async applyTopologyStatus(name: string, status: TopologyStatus): Promise<TopologyObject> {
    this.check('applyTopologyStatus', name, undefined);
    const cur = this.topologyStore.get(name);
    if (cur === undefined) throw new KubeApiError('PATCH', `memory/applyTopologyStatus/${name}`, 404, { message: `topologies "${name}" not found`, reason: 'NotFound', code: 404 }, '');
    const next = { ...copy(cur), status: copy(status), metadata: { ...copy(cur.metadata), resourceVersion: this.nextRv() } };
    this.topologyStore.set(name, next);
    this.writes.push(`applyTopologyStatus ${name}`);
    return copy(next);
  }
}
