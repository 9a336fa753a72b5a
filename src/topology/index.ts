// Public face of the topology language: load (parse + schema + meaning + normalise) and the pure policy questions.

import { loadTopology as load, type LoadResult } from './load.ts';

export type { TopologyError } from './errors.ts';
export { formatTopologyError } from './errors.ts';
export {
  automaticRelay,
  automaticRelayFor,
  linkPolicy,
  mergeLinkPolicy,
  pairVerdict,
  poolByName,
  pairRoute,
  relayChoice,
  relayOfPool,
  relayCandidates,
  tunnelPairs,
} from './policy.ts';
export type { Allowed, PairRoute, PoolOverride, RelayChoice } from './policy.ts';
export { fnv1a32, rendezvousWeight } from './hash.ts';
export type * from './types.ts';
export { TOPOLOGY_API_VERSION, TOPOLOGY_KIND } from './types.ts';

export type TopologyResult = LoadResult;

/** Parse, check and normalise one topology file. Pure: text in, result out, never throws. */
export function loadTopology(text: string, file: string): TopologyResult {
  return load(text, file);
}
