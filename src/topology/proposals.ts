// strongSwan proposals (`aes256-sha256-modp2048`): each dash-separated keyword must be one strongSwan knows, and weak
// algorithm families are told apart from strong ones. Pure.
//
// Keyword source: strongSwan's src/libstrongswan/crypto/proposal/proposal_keywords_static.txt (github.com/strongswan/
// strongswan, commit 3b902ea59b86, May 2026), the table charon parses proposals with; see also the "IKEv2 Cipher
// Suites" page of docs.strongswan.org. Keywords with '_' (sha2_256, sha256_96, ...) are listed for completeness; the
// schema's proposal pattern does not admit '_', so they cannot be written. The dynamic forms strongSwan also accepts
// (additional key exchanges `ke1_...`) are not supported by Corvid. Left out: gost256, gost512 and mlkem512/768/1024,
// which the strongSwan 5.9 charon of Debian 12 does not know (test/integration/proposals-charon.test.ts loads every
// keyword of this table into a real charon). `none` and `modpnone` (no key exchange) are keywords but give an IKE
// proposal no key exchange group.

export type AlgorithmKind = 'encryption' | 'integrity' | 'prf' | 'keyExchange' | 'esn';

const TABLE: Record<AlgorithmKind, string> = {
  encryption:
    'null des 3des aes aes128 aes192 aes256 aes128ctr aes192ctr aes256ctr ' +
    'aes128ccm8 aes128ccm64 aes128ccm12 aes128ccm96 aes128ccm16 aes128ccm128 aes128ccm ' +
    'aes192ccm8 aes192ccm64 aes192ccm12 aes192ccm96 aes192ccm16 aes192ccm128 aes192ccm ' +
    'aes256ccm8 aes256ccm64 aes256ccm12 aes256ccm96 aes256ccm16 aes256ccm128 aes256ccm ' +
    'aes128gcm8 aes128gcm64 aes128gcm12 aes128gcm96 aes128gcm16 aes128gcm128 aes128gcm ' +
    'aes192gcm8 aes192gcm64 aes192gcm12 aes192gcm96 aes192gcm16 aes192gcm128 aes192gcm ' +
    'aes256gcm8 aes256gcm64 aes256gcm12 aes256gcm96 aes256gcm16 aes256gcm128 aes256gcm ' +
    'aes128gmac aes192gmac aes256gmac chacha20poly1305 chacha20poly1305compat ' +
    'blowfish blowfish128 blowfish192 blowfish256 camellia camellia128 camellia192 camellia256 ' +
    'camellia128ctr camellia192ctr camellia256ctr ' +
    'camellia128ccm8 camellia128ccm64 camellia128ccm12 camellia128ccm96 camellia128ccm16 camellia128ccm128 ' +
    'camellia192ccm8 camellia192ccm64 camellia192ccm12 camellia192ccm96 camellia192ccm16 camellia192ccm128 ' +
    'camellia256ccm8 camellia256ccm64 camellia256ccm12 camellia256ccm96 camellia256ccm16 camellia256ccm128 ' +
    'cast128 serpent serpent128 serpent192 serpent256 twofish twofish128 twofish192 twofish256',
  integrity:
    'sha sha1 sha1_160 sha256 sha2_256 sha256_96 sha2_256_96 sha384 sha2_384 sha512 sha2_512 md5 md5_128 ' +
    'aesxcbc camelliaxcbc aescmac',
  prf: 'prfsha1 prfsha256 prfsha384 prfsha512 prfmd5 prfaesxcbc prfcamelliaxcbc prfaescmac',
  keyExchange:
    'none modpnone modpnull modp768 modp1024 modp1536 modp2048 modp3072 modp4096 modp6144 modp8192 ' +
    'ecp192 ecp224 ecp256 ecp384 ecp521 modp1024s160 modp2048s224 modp2048s256 ecp224bp ecp256bp ecp384bp ecp512bp ' +
    'curve25519 x25519 curve448 x448',
  esn: 'noesn esn',
};

const KIND = new Map<string, AlgorithmKind>(
  (Object.entries(TABLE) as [AlgorithmKind, string][]).flatMap(([kind, words]) => words.split(' ').map((w) => [w, kind] as const)),
);

/** Every strongSwan algorithm keyword (the table above). */
export const ALGORITHM_KEYWORDS: readonly string[] = [...KIND.keys()];

/** The kind of a strongSwan algorithm keyword, or undefined when strongSwan does not know it. */
export function algorithmKind(keyword: string): AlgorithmKind | undefined {
  return KIND.get(keyword);
}

/**
 * Weak families: each matches keywords by pattern and says why it is weak. Refused unless allowInsecure is true.
 * Chosen line: under 128-bit security is weak, except MODP 2048 (about 112 bits; RFC 8247's mandatory group and
 * Corvid's default) and 96-bit truncated HMAC-SHA2/AES-XCBC ICVs, which are the IPsec standards. SHA-1 (integrity
 * and PRF) is refused: RFC 8221 and RFC 8247 demote it and every SHA-2 variant is available.
 */
export const WEAK_FAMILIES: readonly { family: string; why: string; test: RegExp }[] = [
  { family: 'null encryption', why: 'sends traffic in clear', test: /^null$/ },
  { family: 'DES/3DES', why: '64-bit blocks and at most 112-bit keys', test: /^3?des$/ },
  { family: 'Blowfish/CAST-128', why: '64-bit blocks (Sweet32)', test: /^(blowfish[0-9]*|cast128)$/ },
  { family: 'AES-GMAC', why: 'authenticates but does not encrypt', test: /^aes[0-9]+gmac$/ },
  { family: 'AEAD with an 8-byte ICV', why: 'a 64-bit integrity check', test: /^(aes|camellia)[0-9]+(gcm|ccm)(8|64)$/ },
  { family: 'MD5', why: 'a broken hash', test: /^(prf)?md5(_128)?$/ },
  { family: 'SHA-1', why: 'deprecated for IPsec (RFC 8221, RFC 8247)', test: /^(prf)?sha1?(_160)?$/ },
  { family: 'truncated SHA-256', why: 'a pre-standard 96-bit variant', test: /^sha2?_?256_96$/ },
  { family: 'null key exchange', why: "strongSwan's testing group, which exchanges no key", test: /^modpnull$/ },
  { family: 'MODP below 2048 bits', why: 'under 112-bit security', test: /^modp(768|1024|1536)$/ },
  { family: 'MODP with a small subgroup', why: 'RFC 5114 groups, which RFC 8247 says not to use', test: /^modp[0-9]+s[0-9]+$/ },
  { family: 'ECP below 256 bits', why: 'under 128-bit security', test: /^ecp(192|224)(bp)?$/ },
];

/** The weak family of a keyword, or undefined when it is not weak (or unknown). */
export function weakFamily(keyword: string): { family: string; why: string } | undefined {
  if (!KIND.has(keyword)) return undefined;
  return WEAK_FAMILIES.find((f) => f.test.test(keyword));
}

export interface ProposalReport {
  /** 0-based positions of keywords strongSwan does not know. */
  unknown: number[];
  /** Weak keywords, each once, in order. */
  weak: string[];
  /** Whether the proposal names an encryption algorithm (strongSwan requires one in IKE and ESP proposals). */
  hasEncryption: boolean;
  /**
   * What charon refuses in the combination (checked when every keyword is known and one is an encryption algorithm):
   * `mixed` AEAD and classic encryption in one proposal; in IKE proposals `integrity` (classic encryption without an
   * integrity algorithm), `prf` (AEAD with neither a PRF nor an integrity algorithm to derive one from) and `key-exchange` (no DH group).
   */
  invalid: ('mixed' | 'integrity' | 'prf' | 'key-exchange')[];
  /** An ESP proposal with classic encryption and no integrity: charon accepts it, but nothing authenticates packets. */
  unauthenticated: boolean;
}

/** AEAD encryption keywords: they authenticate by themselves and take no integrity algorithm. */
const AEAD = /^((aes|camellia)[0-9]*(ccm|gcm)[0-9]*|aes[0-9]+gmac|chacha20poly1305(compat)?)$/;

/**
 * Split a proposal into its keywords and classify them; `protocol` adds the combination rules charon applies when it
 * parses a proposal (strongSwan's proposal.c, check_proposal; confirmed against charon 5.9 over VICI).
 */
export function checkProposal(proposal: string, protocol?: 'ike' | 'esp'): ProposalReport {
  const words = proposal.split('-');
  const unknown: number[] = [];
  const weak: string[] = [];
  words.forEach((w, i) => {
    if (!KIND.has(w)) unknown.push(i);
    else if (weakFamily(w) && !weak.includes(w)) weak.push(w);
  });
  const kinds = new Set(words.map((w) => KIND.get(w)));
  const encryption = words.filter((w) => KIND.get(w) === 'encryption');
  const aead = encryption.filter((w) => AEAD.test(w)).length;
  const invalid: ProposalReport['invalid'] = [];
  let unauthenticated = false;
  if (protocol !== undefined && unknown.length === 0 && encryption.length > 0) {
    const classic = encryption.length - aead;
    if (aead > 0 && classic > 0) invalid.push('mixed');
    if (protocol === 'ike') {
      if (classic > 0 && aead === 0 && !kinds.has('integrity')) invalid.push('integrity');
      // Without a PRF charon derives one from the integrity algorithm, so only AEAD alone lacks it.
      if (aead > 0 && classic === 0 && !kinds.has('prf') && !kinds.has('integrity')) invalid.push('prf');
      if (!words.some((w) => KIND.get(w) === 'keyExchange' && w !== 'none' && w !== 'modpnone')) invalid.push('key-exchange');
    } else if (classic > 0 && aead === 0 && !kinds.has('integrity')) {
      unauthenticated = true;
    }
  }
  return { unknown, weak, hasEncryption: encryption.length > 0, invalid, unauthenticated };
}

/** Whether a proposal uses a weak algorithm, or is an ESP proposal without integrity (unknown keywords not counted). */
export function isWeakProposal(proposal: string, protocol?: 'ike' | 'esp'): boolean {
  const r = checkProposal(proposal, protocol);
  return r.weak.length > 0 || r.unauthenticated;
}
