// Where topology revisions come from. A source fetches on its own schedule (poll, webhook, file events, informer) and
// calls `changed()`; the reconciler reads latest(). Sources only fetch and describe; they never judge a revision.

import type { Artifact } from '../reconcile/artifact.ts';

export type SourceKind = 'git' | 'file' | 'cluster';

export interface TopologySource {
  readonly kind: SourceKind;
  /** Begin producing artifacts; `changed` is called whenever latest() may differ. Resolves after the first attempt. */
  start(changed: () => void): Promise<void>;
  latest(): Artifact | undefined;
  /** Fetch now (webhook). */
  refresh(): void;
  stop(): Promise<void>;
}
