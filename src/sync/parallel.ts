// A map over async work with a bound on how much runs at once.
//
// Node has no such thing in its standard library apart from stream.Readable#map({ concurrency }), which is still
// marked experimental and goes through an object-mode stream; this is the few lines that are needed instead.

/** Gateways dry-run, then applied, at once by a reconcile (`SyncOptions.applyConcurrency`). Half the kube client's 32 sockets. */
export const DEFAULT_APPLY_CONCURRENCY = 16;

/**
 * `fn` over `items` with at most `limit` calls unsettled at a time; resolves to the results in the order of `items`.
 * When a call rejects, no further call starts; the promise rejects with the first rejection once the calls already
 * running have settled (so no work of this map is left running after it returns).
 */
export async function mapBounded<T, R>(items: readonly T[], limit: number, fn: (item: T, index: number) => Promise<R>): Promise<R[]> {
  if (!Number.isInteger(limit) || limit < 1) throw new RangeError(`mapBounded: limit must be a positive integer, got ${limit}`);
  const results = new Array<R>(items.length);
  let next = 0;
  let failed = false;
  let firstError: unknown;
  const worker = async (): Promise<void> => {
    while (!failed && next < items.length) {
      const i = next++;
      try {
        results[i] = await fn(items[i], i);
      } catch (e) {
        if (!failed) {
          failed = true;
          firstError = e;
        }
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  if (failed) throw firstError;
  return results;
}
