// The sync's view of Calico IPAM: which group/versions serve BlockAffinities (API discovery), and an informer per
// served one. The decision (which source, which subnets) is src/plan's; this only keeps what it needs current.
//
// - Start: discover, start an informer for each served group/version and wait for its first list, like every other
//   informer of the sync.
// - Every `rediscoverMs` (default 30 s): discover again. A group/version that appeared (Calico installed, or its CRD
//   created after the sync started) gets an informer and a reconcile once it has listed; one that went away (CRD
//   deleted) loses its informer and triggers a reconcile, so its blocks stop being published. A discovery failure is
//   logged and changes nothing. No CRD watch: that would need list/watch on every CRD in the cluster.
// - A group/version the sync may not list (403: RBAC without the blockaffinities rule) counts as not served: the sync
//   starts anyway, warns once, and tries again at the next discovery.
// - Off altogether with --pod-subnets=podCIDR.

import type { KubeConfig } from '../adapters/kube/kubeconfig.ts';
import { errorMessage, statusCode } from '../adapters/kube/client.ts';
import { blockAffinityInformer, discoverBlockAffinities, type BlockAffinityJson } from '../adapters/kube/blockaffinities.ts';
import type { Informer, InformerEvent } from '../adapters/kube/informer.ts';
import { canonicalJson } from '../gateway/canonical.ts';
import { CALICO_BLOCK_AFFINITY_VERSIONS, type CalicoGroupVersion, type CalicoIpamState } from '../plan/index.ts';
import type { Logger } from '../shell/log.ts';

export const DEFAULT_CALICO_REDISCOVER_MS = 30_000;

export interface CalicoWatchOptions {
  kc: KubeConfig;
  logger: Logger;
  /** Called when what the planner sees may have changed. */
  onChange: (reason: string) => void;
  rediscoverMs?: number;
  informerBackoff?: { initialBackoffMs?: number; maxBackoffMs?: number };
}

/** The part of a BlockAffinity the planner reads: an update that keeps it is no reason to plan again. */
function affinityView(o: BlockAffinityJson): string {
  return canonicalJson({ apiVersion: o.apiVersion, kind: o.kind, spec: o.spec ?? null });
}

export class CalicoWatch {
  private readonly o: CalicoWatchOptions;
  private readonly informers = new Map<CalicoGroupVersion, Informer<BlockAffinityJson>>();
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private discovering: Promise<void> | undefined;
  /** Group/versions whose list was refused (403), warned about once. */
  private readonly forbidden = new Set<CalicoGroupVersion>();

  constructor(o: CalicoWatchOptions) {
    this.o = o;
  }

  /** Discover and wait for the first list of each served group/version; then rediscover periodically. */
  async start(): Promise<void> {
    await this.discover(true);
    this.schedule();
  }

  /** What the planner needs: served group/versions whose informer has listed, and their BlockAffinities. */
  state(): CalicoIpamState {
    const served: CalicoGroupVersion[] = [];
    const blockAffinities: BlockAffinityJson[] = [];
    for (const gv of CALICO_BLOCK_AFFINITY_VERSIONS) {
      const inf = this.informers.get(gv);
      if (inf === undefined || !inf.hasSynced()) continue;
      served.push(gv);
      for (const o of inf.list()) blockAffinities.push(o);
    }
    return { served, blockAffinities };
  }

  /** True when every informer it runs has listed. */
  synced(): boolean {
    return [...this.informers.values()].every((i) => i.hasSynced());
  }

  stats(): Record<string, { lists: number; watches: number; gone: number; errors: number }> {
    return Object.fromEntries([...this.informers].map(([gv, inf]) => [`blockaffinities.${gv}`, { ...inf.stats }]));
  }

  /** Discover now (tests; a periodic timer does it otherwise). */
  rediscover(): Promise<void> {
    return this.discover(false);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.discovering;
    await Promise.all([...this.informers.values()].map((i) => i.stop()));
  }

  private schedule(): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      void this.discover(false).finally(() => this.schedule());
    }, this.o.rediscoverMs ?? DEFAULT_CALICO_REDISCOVER_MS);
    this.timer.unref?.();
  }

  private discover(initial: boolean): Promise<void> {
    if (this.discovering === undefined) {
      this.discovering = this.discoverOnce(initial).finally(() => {
        this.discovering = undefined;
      });
    }
    return this.discovering;
  }

  private async discoverOnce(initial: boolean): Promise<void> {
    let served: CalicoGroupVersion[];
    try {
      served = await discoverBlockAffinities(this.o.kc);
    } catch (e) {
      this.o.logger.warn('Calico BlockAffinity discovery failed; trying again later', { error: errorMessage(e) });
      return;
    }
    if (this.stopped) return;
    const waits: Promise<void>[] = [];
    for (const gv of CALICO_BLOCK_AFFINITY_VERSIONS) {
      const have = this.informers.get(gv);
      if (served.includes(gv) && have === undefined) {
        const inf = blockAffinityInformer(this.o.kc, gv, this.o.informerBackoff);
        this.informers.set(gv, inf);
        inf.onChange((e: InformerEvent<BlockAffinityJson>) => {
          if (e.type !== 'update' || e.previous === undefined || affinityView(e.previous) !== affinityView(e.object)) this.o.onChange('blockaffinities');
        });
        inf.onError((err, info) => {
          if (statusCode(err) === 403 && !inf.hasSynced()) {
            // Not allowed to read them: as if not served (the informer would otherwise hold the start-up for ever).
            if (!this.forbidden.has(gv)) {
              this.forbidden.add(gv);
              this.o.logger.warn('Calico BlockAffinities served but not readable (403); treated as not served. Grant get/list/watch on blockaffinities (deploy/base/rbac-sync.yaml)', { groupVersion: gv, error: errorMessage(err) });
            }
            if (this.informers.get(gv) === inf) this.informers.delete(gv);
            void inf.stop();
            return;
          }
          this.o.logger.warn('watch failed; retrying', { resource: `blockaffinities.${gv}`, error: errorMessage(err), attempt: info.attempt, retryInMs: info.retryInMs });
        });
        if (!this.forbidden.has(gv)) this.o.logger.info('Calico BlockAffinities served; watching them', { groupVersion: gv });
        const synced = inf.start().then(
          () => {
            if (this.forbidden.delete(gv)) this.o.logger.info('Calico BlockAffinities readable now; watching them', { groupVersion: gv });
            if (!initial) this.o.onChange('blockaffinities-served');
          },
          () => undefined,
        );
        waits.push(synced);
      } else if (!served.includes(gv) && have !== undefined) {
        this.informers.delete(gv);
        this.o.logger.warn('Calico BlockAffinities no longer served; their blocks are dropped', { groupVersion: gv });
        await have.stop();
        this.o.onChange('blockaffinities-gone');
      }
    }
    // At start-up the sync waits for the first lists, like for its other caches; later the reconcile comes when the
    // new informer has listed.
    if (initial) await Promise.all(waits);
  }
}
