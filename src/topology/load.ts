// The whole pipeline: YAML (with positions) -> schema -> meaning -> normalised Topology. Never throws.

import type { Topology } from './types.ts';
import type { TopologyError } from './errors.ts';
import { sortErrors } from './errors.ts';
import { parseYaml } from './parse.ts';
import { checkSchema } from './schema.ts';
import { buildModel, finalise, isObj } from './normalise.ts';
import { checkMeaning } from './semantic.ts';

export type LoadResult =
  /** `document`: the file as plain data (what the sync records as the spec as written). */
  | { ok: true; topology: Topology; warnings: TopologyError[]; document: unknown }
  | { ok: false; errors: TopologyError[] };

export function loadTopology(text: string, file: string): LoadResult {
  try {
    const parsed = parseYaml(text, file);
    if (!parsed.ok) return { ok: false, errors: sortErrors(parsed.errors) };
    const { data, locator } = parsed;
    const shape = checkSchema(data, locator);
    const model = buildModel(data);
    // Meaning needs at least a spec mapping; without one the schema errors say all there is to say.
    const spec = isObj(data) ? data.spec : undefined;
    const meaning = isObj(spec) ? checkMeaning(data, model, locator) : { errors: [], warnings: [] };
    const errors = [...shape, ...meaning.errors];
    if (errors.length > 0) return { ok: false, errors: sortErrors(errors) };
    return { ok: true, topology: finalise(model), warnings: sortErrors([...parsed.warnings, ...meaning.warnings]), document: data };
  } catch (e) {
    // A bug in a check must not turn into a crash of `corvid validate` or of the sync loop.
    const what = e instanceof Error ? e.name : 'error';
    return {
      ok: false,
      errors: [{ file, line: 1, col: 1, path: '', message: `internal error while checking the file (${what}); please report it` }],
    };
  }
}
