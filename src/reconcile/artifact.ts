// A topology revision as a source hands it over (an artifact, or why there is none), and the reasons a revision is
// not used. Pure data: the sources produce it, the reconcile's phases judge it.

/** The outcome of a commit signature check. */
export interface VerifyResult {
  verified: boolean;
  /** git's verdict (first lines of its output), without secrets. */
  message: string;
}

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
