// Cluster source: a Topology custom resource. Its spec is the topology; the revision is its generation (status writes
// do not move it). The object is named by `name`, or is the only Topology in the cluster.

import type { KubeConfig } from '../adapters/kube/kubeconfig.ts';
import { stringify } from 'yaml';
import { topologyInformer, type TopologyObject } from '../adapters/kube/topologies.ts';
import type { Informer } from '../adapters/kube/informer.ts';
import type { Logger } from '../shell/log.ts';
import { REJECT, type Artifact } from '../reconcile/artifact.ts';
import type { TopologySource } from './source.ts';

export interface ClusterSourceOptions {
  kubeConfig: KubeConfig;
  /** The Topology to follow; default: the only one there is. */
  name?: string;
  logger: Logger;
  informerBackoff?: { initialBackoffMs?: number; maxBackoffMs?: number };
}

/** The document loadTopology reads for a Topology object: identity, labels, annotations and spec only. */
export function topologyDocument(o: TopologyObject): string {
  const metadata: Record<string, unknown> = { name: o.metadata?.name };
  if (o.metadata?.labels && Object.keys(o.metadata.labels).length > 0) metadata.labels = o.metadata.labels;
  if (o.metadata?.annotations && Object.keys(o.metadata.annotations).length > 0) metadata.annotations = o.metadata.annotations;
  return stringify({ apiVersion: 'corvid.dev/v1alpha1', kind: 'Topology', metadata, spec: o.spec ?? {} }, { lineWidth: 0 });
}

export class ClusterSource implements TopologySource {
  readonly kind = 'cluster' as const;
  private readonly o: ClusterSourceOptions;
  readonly informer: Informer<TopologyObject>;
  private current: Artifact | undefined;
  private changed: () => void = () => {};

  constructor(o: ClusterSourceOptions) {
    this.o = o;
    // Every Topology, not only the followed one: a Gateway owned by another that still exists is not taken over
    // (src/sync/ownership.ts), and the deletion of that one is what lets it go.
    this.informer = topologyInformer(o.kubeConfig, { ...o.informerBackoff });
  }

  async start(changed: () => void): Promise<void> {
    this.changed = changed;
    this.informer.onChange((e) => {
      // Another Topology gone may free Gateways the followed one waits for; the followed one's events are update()'s.
      if (!this.update() && e.type === 'delete') this.changed();
    });
    this.informer.onError((e, info) => this.o.logger.warn('topology watch failed; retrying', { error: e, retryInMs: info.retryInMs }));
    await this.informer.start();
    this.update();
  }

  latest(): Artifact | undefined {
    return this.current;
  }

  refresh(): void {
    this.update();
  }

  async stop(): Promise<void> {
    await this.informer.stop();
  }

  /** True when latest() changed (and changed() was called). */
  private update(): boolean {
    const all = this.informer.list();
    let next: Artifact;
    const chosen = this.o.name !== undefined ? all.find((t) => t.metadata?.name === this.o.name) : all.length === 1 ? all[0] : undefined;
    if (chosen === undefined) {
      const message =
        this.o.name !== undefined
          ? `Topology ${this.o.name} not found`
          : all.length === 0
            ? 'no Topology object in the cluster'
            : `${all.length} Topology objects; choose one with --topology`;
      next = { ok: false, reason: REJECT.fetchFailed, message, transient: true };
    } else {
      const name = chosen.metadata?.name ?? '';
      const generation = chosen.metadata?.generation;
      next = {
        ok: true,
        revision: `generation:${generation ?? 0}`,
        file: `topologies/${name}`,
        text: topologyDocument(chosen),
        object: { name, generation },
      };
    }
    if (JSON.stringify(next) === JSON.stringify(this.current)) return false;
    this.current = next;
    this.changed();
    return true;
  }

  /** The live object (for status: its conditions and generation). */
  object(name: string): TopologyObject | undefined {
    return this.informer.get(name);
  }
}
