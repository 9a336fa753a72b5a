// Pure IP prefix helpers: parse, canonicalise (host bits cleared, IPv6 compressed as iproute2 prints it), sort.
// Which text is an address is decided by one grammar, topology/ip.ts (the validator's and the planner's); this file
// turns accepted text into numbers.

import { usableIPVersion } from '../topology/ip.ts';
import type { Family } from './types.ts';

export interface Prefix {
  family: Family;
  /** Address as a big integer (32 or 128 bits). */
  value: bigint;
  length: number;
}

function parseV4(s: string): bigint | undefined {
  const parts = s.split('.');
  if (parts.length !== 4) return undefined;
  let v = 0n;
  for (const p of parts) {
    if (!/^\d{1,3}$/.test(p)) return undefined;
    const n = Number(p);
    if (n > 255) return undefined;
    v = (v << 8n) | BigInt(n);
  }
  return v;
}

function parseV6(s: string): bigint | undefined {
  if (!/^[0-9a-fA-F:.]+$/.test(s)) return undefined;
  const halves = s.split('::');
  if (halves.length > 2) return undefined;
  const groups = (h: string): number[] | undefined => {
    if (h === '') return [];
    const out: number[] = [];
    const items = h.split(':');
    for (let i = 0; i < items.length; i++) {
      const it = items[i];
      if (i === items.length - 1 && it.includes('.')) {
        const v4 = parseV4(it);
        if (v4 === undefined) return undefined;
        out.push(Number(v4 >> 16n), Number(v4 & 0xffffn));
      } else {
        if (!/^[0-9a-fA-F]{1,4}$/.test(it)) return undefined;
        out.push(parseInt(it, 16));
      }
    }
    return out;
  };
  const head = groups(halves[0]);
  const tail = halves.length === 2 ? groups(halves[1]) : [];
  if (head === undefined || tail === undefined) return undefined;
  let all: number[];
  if (halves.length === 2) {
    const fill = 8 - head.length - tail.length;
    if (fill < 1) return undefined;
    all = [...head, ...new Array<number>(fill).fill(0), ...tail];
  } else {
    all = head;
  }
  if (all.length !== 8) return undefined;
  return all.reduce((acc, g) => (acc << 16n) | BigInt(g), 0n);
}

/** Parse an address; undefined when it is not one by topology/ip.ts's grammar (no leading zeros, no `%zone`). */
export function parseAddress(s: string): { family: Family; value: bigint } | undefined {
  const family = usableIPVersion(s);
  if (family === 0) return undefined;
  if (family === 6) {
    const v = parseV6(s);
    return v === undefined ? undefined : { family: 6, value: v };
  }
  const v = parseV4(s);
  return v === undefined ? undefined : { family: 4, value: v };
}

export function isAddress(s: string): boolean {
  return parseAddress(s) !== undefined;
}

/** Parse `addr/len` (a bare address is a host prefix); host bits are cleared. */
export function parsePrefix(s: string): Prefix | undefined {
  const slash = s.indexOf('/');
  const addr = parseAddress(slash < 0 ? s : s.slice(0, slash));
  if (!addr) return undefined;
  const bits = addr.family === 4 ? 32 : 128;
  let length = bits;
  if (slash >= 0) {
    const l = s.slice(slash + 1);
    if (!/^\d{1,3}$/.test(l)) return undefined;
    length = Number(l);
    if (length > bits) return undefined;
  }
  const mask = length === 0 ? 0n : ((1n << BigInt(length)) - 1n) << BigInt(bits - length);
  return { family: addr.family, value: addr.value & mask, length };
}

export function formatAddress(family: Family, value: bigint): string {
  if (family === 4) {
    return [24n, 16n, 8n, 0n].map((s) => String((value >> s) & 0xffn)).join('.');
  }
  // IPv4-mapped addresses print with a dotted tail, as inet_ntop (and so iproute2) does.
  if (value >> 32n === 0xffffn) return `::ffff:${formatAddress(4, value & 0xffffffffn)}`;
  const groups: number[] = [];
  for (let i = 7; i >= 0; i--) groups.push(Number((value >> BigInt(i * 16)) & 0xffffn));
  // RFC 5952: compress the longest run (>= 2) of zero groups, the first one on ties.
  let bestStart = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen && j - i >= 2) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestStart < 0) return hex.join(':');
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLen).join(':')}`;
}

export function formatPrefix(p: Prefix): string {
  return `${formatAddress(p.family, p.value)}/${p.length}`;
}

/** A canonical CIDR text together with its parsed form, so hot loops compare and test overlap without parsing again. */
export interface CanonicalPrefix {
  text: string;
  prefix: Prefix;
}

/** The canonical form of `s` (text and parsed), or undefined when `s` is not a prefix. */
export function toCanonicalPrefix(s: string): CanonicalPrefix | undefined {
  const prefix = parsePrefix(s.trim());
  return prefix ? { text: formatPrefix(prefix), prefix } : undefined;
}

/** Canonical CIDR text, or undefined when `s` is not a prefix. */
export function canonicalPrefix(s: string): string | undefined {
  return toCanonicalPrefix(s)?.text;
}

/** Canonical address text, or undefined. */
export function canonicalAddress(s: string): string | undefined {
  const a = parseAddress(s.trim());
  return a ? formatAddress(a.family, a.value) : undefined;
}

export function familyOfPrefix(s: string): Family {
  return s.includes(':') ? 6 : 4;
}

/** IPv4 before IPv6, then by address, then by length. */
export function compareParsedPrefixes(pa: Prefix, pb: Prefix): number {
  if (pa.family !== pb.family) return pa.family - pb.family;
  if (pa.value !== pb.value) return pa.value < pb.value ? -1 : 1;
  return pa.length - pb.length;
}

/** IPv4 before IPv6, then by address, then by length. Works on canonical CIDRs. */
export function comparePrefixes(a: string, b: string): number {
  const pa = parsePrefix(a);
  const pb = parsePrefix(b);
  if (!pa || !pb) return a < b ? -1 : a > b ? 1 : 0;
  return compareParsedPrefixes(pa, pb);
}

/** Sorted, de-duplicated canonical prefixes. */
export function sortPrefixes(list: Iterable<string>): string[] {
  return [...new Set(list)].sort(comparePrefixes);
}

/** sortPrefixes without parsing again: de-duplicated by text (the first kept), in comparePrefixes order. */
export function sortCanonicalPrefixes(list: Iterable<CanonicalPrefix>): CanonicalPrefix[] {
  const byText = new Map<string, CanonicalPrefix>();
  for (const c of list) if (!byText.has(c.text)) byText.set(c.text, c);
  return [...byText.values()].sort((a, b) => compareParsedPrefixes(a.prefix, b.prefix));
}

/** Whether `outer` holds every address of `inner`. */
export function contains(outer: Prefix, inner: Prefix): boolean {
  return outer.length <= inner.length && overlaps(outer, inner);
}

/**
 * `addr/len` read as a network, as a CIDR field means it: a bare address is no CIDR, and an address with bits past
 * the length (`10.0.0.5/24`) is refused rather than silently cleared.
 */
export function parseNetwork(s: string): Prefix | 'not a CIDR' | 'host bits set' {
  const text = s.trim();
  const slash = text.indexOf('/');
  const prefix = slash < 0 ? undefined : parsePrefix(text);
  if (prefix === undefined) return 'not a CIDR';
  return parseAddress(text.slice(0, slash))!.value === prefix.value ? prefix : 'host bits set';
}

/** Whether two prefixes overlap (one contains the other). */
export function overlaps(pa: Prefix, pb: Prefix): boolean {
  if (pa.family !== pb.family) return false;
  const bits = pa.family === 4 ? 32 : 128;
  const len = Math.min(pa.length, pb.length);
  const mask = len === 0 ? 0n : ((1n << BigInt(len)) - 1n) << BigInt(bits - len);
  return (pa.value & mask) === (pb.value & mask);
}

/** A UDP endpoint as WireGuard writes it: `192.0.2.1:51820`, `[2001:db8::1]:51820`. */
export function endpointText(address: string, port: number): string {
  return familyOfPrefix(address) === 6 ? `[${address}]:${port}` : `${address}:${port}`;
}

/** The host of an endpoint as endpointText writes it (and `wg show` prints it), canonical; undefined when not one. */
export function endpointHost(endpoint: string): string | undefined {
  const m = /^\[([^\]]+)\]:\d+$/.exec(endpoint) ?? /^([^:]+):\d+$/.exec(endpoint);
  return m === null ? undefined : canonicalAddress(m[1]);
}
