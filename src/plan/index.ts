// Public face of the planner: node inventory, health derivation, election and the plan itself. Pure, no I/O.

export type * from './types.ts';
export { plan, TUNNEL_PORT, ANNOTATION_SIZE_LIMIT, UPSTREAM_MAX_TUNNEL_REPLICAS } from './planner.ts';
export { inventoryFromNode, inventoryFromNodeList, InventoryError, isIP } from './inventory.ts';
export { deriveHealth, candidatePools, wireguardKeysFrom, emptyHealthMemory, heartbeatTimeoutFor, tunnelGraceSeconds, MIN_TUNNEL_GRACE_SECONDS, MAX_TUNNEL_GRACE_SECONDS, TUNNEL_GRACE_TIMEOUTS } from './health.ts';
export type { HeartbeatLease, HealthMemory, HealthOptions } from './health.ts';
export { matchesSelector, selectorError, compileSelector, SelectorIndex } from './selector.ts';
export { candidateState, electPool, REASONS, FIRST_SHOW_GRACE_SECONDS, liveLinkAfterSeconds } from './election.ts';
export { nextWake } from './wake.ts';
export { desiredGateways, type Desired, type DesiredInput } from './desired.ts';
export type { CandidateState, PoolElectionInput, PoolElectionResult, Unhealth } from './election.ts';
export { candidateVerdicts, heartbeatTimeoutOf } from './verdict.ts';
export { statusReport, type CandidateHealthWord, type LiveInput, type PoolStatus, type StatusReport, type TopologySummary } from './status-report.ts';
export type { CandidateVerdict, VerdictInput } from './verdict.ts';
export { chooseRelays, fnv1a32, relayWeight } from './relay.ts';
export { peerTable, peersAllowed } from './peers.ts';
export { encryptionTable } from './encryption.ts';
export { calicoPodSubnets, podSubnetInput, resolvePodSubnetSource, CALICO_BLOCK_AFFINITY_VERSIONS, CALICO_V1, CALICO_V3, NO_CALICO } from './podsubnets.ts';
export type { CalicoGroupVersion, CalicoIpamState, CalicoSubnets, PodSubnetDecision, PodSubnetInput, PodSubnetMode, PodSubnetSource } from './podsubnets.ts';
