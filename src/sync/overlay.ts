// The sync's own recent writes, laid over the informer caches until the caches have caught up with them (normally in
// milliseconds; at most OVERLAY_TTL_MS). Without it a reconcile right after a write would see the old object and
// write again. A cached copy whose resourceVersion one of our writes superseded is replaced by what we stored; a
// Gateway we deleted is left out while the cache still holds the version we deleted.

import type { TopologyObject } from '../adapters/kube/topologies.ts';
import type { Gateway } from '../gateway/types.ts';

/** How long our own writes overlay the informer caches at most. */
export const OVERLAY_TTL_MS = 10_000;

interface Written<T> {
  /** resourceVersions our writes replaced (the live one and any intermediate). */
  superseded: Set<string>;
  object: T;
  at: number;
}

export class WriteOverlay {
  private readonly nowMs: () => number;
  private readonly gatewaysWritten = new Map<string, Written<Gateway>>();
  private readonly gatewaysDeleted = new Map<string, { rv: string; at: number }>();
  private readonly topologiesWritten = new Map<string, Written<TopologyObject>>();

  constructor(nowMs: () => number) {
    this.nowMs = nowMs;
  }

  /** Forget every write (another replica may have written since: live state is the truth). */
  clear(): void {
    this.gatewaysWritten.clear();
    this.gatewaysDeleted.clear();
    this.topologiesWritten.clear();
  }

  wroteGateway(name: string, object: Gateway, superseded: readonly string[]): void {
    this.gatewaysWritten.set(name, { superseded: new Set(superseded), object, at: this.nowMs() });
  }

  deletedGateway(name: string, rv: string): void {
    this.gatewaysDeleted.set(name, { rv, at: this.nowMs() });
  }

  wroteTopology(name: string, before: TopologyObject | undefined, after: TopologyObject): void {
    const superseded = new Set(this.topologiesWritten.get(name)?.superseded ?? []);
    if (before?.metadata?.resourceVersion) superseded.add(before.metadata.resourceVersion);
    this.topologiesWritten.set(name, { superseded, object: after, at: this.nowMs() });
  }

  /** The cached Gateways with our writes laid over them, sorted by name. */
  gateways(cached: readonly Gateway[]): Gateway[] {
    const out = new Map<string, Gateway>();
    const cutoff = this.nowMs() - OVERLAY_TTL_MS;
    for (const [k, v] of this.gatewaysWritten) if (v.at < cutoff) this.gatewaysWritten.delete(k);
    for (const [k, v] of this.gatewaysDeleted) if (v.at < cutoff) this.gatewaysDeleted.delete(k);
    for (const g of cached) {
      const name = g.metadata.name;
      const rv = g.metadata.resourceVersion ?? '';
      const mine = this.gatewaysWritten.get(name);
      if (mine !== undefined) {
        if (rv !== mine.object.metadata.resourceVersion && mine.superseded.has(rv)) {
          out.set(name, mine.object);
          continue;
        }
        this.gatewaysWritten.delete(name);
      }
      const gone = this.gatewaysDeleted.get(name);
      if (gone !== undefined) {
        if (gone.rv === rv) continue;
        this.gatewaysDeleted.delete(name);
      }
      out.set(name, g);
    }
    // Created by us and not in the cache yet.
    for (const [name, mine] of this.gatewaysWritten) if (!out.has(name) && mine.superseded.size === 0) out.set(name, mine.object);
    return [...out.values()].sort((a, b) => (a.metadata.name < b.metadata.name ? -1 : 1));
  }

  /** The cached Topology object, or our latest write of it while the cache has not caught up. */
  topology(name: string, cached: TopologyObject | undefined): TopologyObject | undefined {
    const mine = this.topologiesWritten.get(name);
    if (mine === undefined) return cached;
    const rv = cached?.metadata?.resourceVersion ?? '';
    if (mine.at >= this.nowMs() - OVERLAY_TTL_MS && (cached === undefined || (rv !== mine.object.metadata?.resourceVersion && mine.superseded.has(rv)))) {
      return mine.object;
    }
    this.topologiesWritten.delete(name);
    return cached;
  }
}
