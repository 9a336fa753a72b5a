// Whether a string written where a name belongs looks like key material (a pre-shared key pasted by mistake). Such a
// value is refused and never repeated: not in a message, not in an error's path. Pure.

const HEX = /^[0-9A-Fa-f]+$/;
const BASE64ISH = /^[A-Za-z0-9+/=_.-]+$/;

/** Shannon entropy of the characters of `s`, in bits per character. */
function entropy(s: string): number {
  const counts = new Map<string, number>();
  for (const c of s) counts.set(c, (counts.get(c) ?? 0) + 1);
  let h = 0;
  for (const n of counts.values()) h -= (n / s.length) * Math.log2(n / s.length);
  return h;
}

/**
 * 32 or more characters of hex, or of base64/base64url that mix upper case, lower case and digits with high entropy
 * (at least 4 bits per character; a random base64 string of that length has about 4.6, a name in words about 3.5).
 * Names made of words (`corvid-psk-for-the-warehouse-oslo-link`) do not look like key material.
 */
export function looksLikeKeyMaterial(s: string): boolean {
  if (s.length < 32) return false;
  if (HEX.test(s)) return true;
  if (!BASE64ISH.test(s)) return false;
  return /[A-Z]/.test(s) && /[a-z]/.test(s) && /[0-9]/.test(s) && entropy(s) >= 4;
}

/** The message for key material where a Secret's key name belongs. */
export const KEY_MATERIAL_MESSAGE = 'this value looks like key material; put the key in the Secret and name its key here';
