import type { Topology } from './types.ts';
import type { TopologyError } from './errors.ts';

export type LoadResult =
  | { ok: true; topology: Topology; warnings: TopologyError[] }
  | { ok: false; errors: TopologyError[] };

export function loadTopology(_text: string, file: string): LoadResult {
  return { ok: false, errors: [{ file, line: 1, col: 1, path: '', message: 'not implemented yet' }] };
}
