// Where topology revisions come from. A source fetches on its own schedule (poll, webhook, file events, informer) and
// calls `changed()`; the reconciler reads latest(). Sources only fetch and describe; they never judge a revision.

import type { VerifyResult } from '../adapters/git/repo.ts';

export type SourceKind = 'git' | 'file' | 'cluster';

/** Reasons a revision is not used, as Ready condition reasons and corvid_topology_rejected_total{reason}. */
export const REJECT = {
  fetchFailed: 'FetchFailed',
  artifactFailed: 'ArtifactFailed',
  verificationFailed: 'VerificationFailed',
  validationFailed: 'ValidationFailed',
  emptyTopologyRefused: 'EmptyTopologyRefused',
  dryRunFailed: 'DryRunFailed',
  applyFailed: 'ApplyFailed',
  planFailed: 'PlanFailed',
  /** A planned Gateway belongs to another topology whose Topology object exists (src/sync/ownership.ts). */
  gatewayConflict: 'GatewayConflict',
} as const;
export type RejectReason = (typeof REJECT)[keyof typeof REJECT];

export interface ArtifactOk {
  ok: true;
  /** `main@sha1:<40 hex>`, `sha256:<hex>`, `generation:<n>`. */
  revision: string;
  /** The name errors are reported against (`path/in/repo.yaml`, the mounted file, `topologies/<name>`). */
  file: string;
  text: string;
  /** Present when signature verification is on: the verify phase refuses an unverified revision. */
  verification?: VerifyResult;
  /** Cluster source: the Topology object the revision came from (its status is written there). */
  object?: { name: string; generation?: number };
}

export interface ArtifactError {
  ok: false;
  /** Known when the revision was resolved but its content could not be had (e.g. the path is missing). */
  revision?: string;
  reason: RejectReason;
  message: string;
  /** True when retrying may help (network, API errors); false when only a new revision can. */
  transient: boolean;
  object?: { name: string; generation?: number };
}

export type Artifact = ArtifactOk | ArtifactError;

export interface TopologySource {
  readonly kind: SourceKind;
  /** Begin producing artifacts; `changed` is called whenever latest() may differ. Resolves after the first attempt. */
  start(changed: () => void): Promise<void>;
  latest(): Artifact | undefined;
  /** Fetch now (webhook). */
  refresh(): void;
  stop(): Promise<void>;
}
