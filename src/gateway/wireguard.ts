// WireGuard public keys as Corvid carries them: agent Lease -> sync -> Gateway annotation -> peer agents.
// One home for "is this a WireGuard public key" and for the annotation's format.

import { canonicalJson } from './canonical.ts';

/** Base64 of exactly 32 bytes: 42 free characters, one whose low 4 bits are zero, then one `=`. */
const KEY_RE = /^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$/;

/** Whether `text` is a WireGuard public key as `wg pubkey` prints it. */
export function isWireguardKey(text: unknown): text is string {
  return typeof text === 'string' && KEY_RE.test(text);
}

/** corvid.dev/wireguard-keys: `{"<node>":"<key>",...}`, nodes sorted. */
export function encodeWireguardKeys(keys: Readonly<Record<string, string>>): string {
  return canonicalJson(keys);
}

/**
 * corvid.dev/wireguard-keys, read by the agents: the valid entries, and what was left out (a malformed annotation
 * gives no keys: the peers behind it get no WireGuard peer, and their traffic goes nowhere rather than in the clear).
 */
export function decodeWireguardKeys(text: string): { keys: Record<string, string>; problems: string[] } {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return { keys: {}, problems: ['not JSON'] };
  }
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return { keys: {}, problems: ['expected an object of node names to public keys'] };
  const keys: Record<string, string> = {};
  let bad = 0;
  for (const [node, key] of Object.entries(v as Record<string, unknown>)) {
    if (isWireguardKey(key)) keys[node] = key;
    else bad++;
  }
  // Counted, not quoted: a node name is no place for text that may be published.
  return { keys, problems: bad === 0 ? [] : [`${bad} ${bad === 1 ? 'entry is' : 'entries are'} not a WireGuard public key`] };
}
