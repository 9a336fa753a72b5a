// FNV-1a 32-bit hashing, for rendezvous (highest-random-weight) choices that must be stable across runs and machines.

const FNV_OFFSET = 0x811c9dc5;
const FNV_PRIME = 0x01000193;
const encoder = new TextEncoder();

/** Continue an FNV-1a 32-bit hash `h` with the UTF-8 bytes of `s`. */
export function fnvUpdate(h: number, s: string): number {
  const bytes = encoder.encode(s);
  for (let i = 0; i < bytes.length; i++) h = Math.imul(h ^ bytes[i], FNV_PRIME) >>> 0;
  return h;
}

/** FNV-1a 32-bit of the UTF-8 bytes of s, as an unsigned integer. */
export function fnv1a32(s: string): number {
  return fnvUpdate(FNV_OFFSET, s);
}

/** The rendezvous weight of `candidate` under `key`: fnv1a32(`${key}|${candidate}`). */
export function rendezvousWeight(key: string, candidate: string): number {
  return fnv1a32(`${key}|${candidate}`);
}

/**
 * The candidate with the highest rendezvous weight under `key` (ties to the smaller name), among those `ok` accepts;
 * undefined when it accepts none. Linear in the candidates.
 */
export function rendezvousChoice(key: string, candidates: Iterable<string>, ok: (c: string) => boolean = () => true): string | undefined {
  const prefix = fnvUpdate(FNV_OFFSET, `${key}|`);
  let best: string | undefined;
  let bestW = -1;
  for (const c of candidates) {
    if (!ok(c)) continue;
    const w = fnvUpdate(prefix, c);
    if (w > bestW || (w === bestW && best !== undefined && c < best)) {
      best = c;
      bestW = w;
    }
  }
  return best;
}

/** Candidates sorted by descending rendezvous weight under `key`, ties to the smaller name. */
export function rendezvousOrder(key: string, candidates: Iterable<string>): string[] {
  const prefix = fnvUpdate(FNV_OFFSET, `${key}|`);
  return [...candidates]
    .map((c) => ({ c, w: fnvUpdate(prefix, c) }))
    .sort((x, y) => y.w - x.w || (x.c < y.c ? -1 : x.c > y.c ? 1 : 0))
    .map((x) => x.c);
}
