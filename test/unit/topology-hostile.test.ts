// Hostile input: values that validate must mean what they say. Bounds on durations and counts, one IP grammar for the
// validator and the planner, strongSwan algorithm keywords in proposals, and Secret key names that are not key material.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { formatTopologyError, loadTopology } from '../../src/topology/index.ts';
import { parseDuration } from '../../src/topology/duration.ts';
import { isUsableIP } from '../../src/topology/ip.ts';
import { isIP } from '../../src/plan/inventory.ts';
import { looksLikeKeyMaterial } from '../../src/topology/keymaterial.ts';
import { algorithmKind, ALGORITHM_KEYWORDS, checkProposal, weakFamily } from '../../src/topology/proposals.ts';
import { doc, expectErrors, expectValid, FILE, pool, PSK } from './topology-helpers.ts';

const POOLS = [pool('cloud'), pool('edge')];
const RUNS = { numRuns: 300, seed: 20261206 };

function errorsOf(text: string): string[] {
  const r = loadTopology(text, FILE);
  return r.ok ? [] : r.errors.map(formatTopologyError);
}

describe('durations and counts have bounds', () => {
  it('refuses durations outside their bounds, naming the bound', () => {
    expectErrors(doc({ election: 'heartbeatTimeout: 99999999999999999999999999999h\nminHealthy: 61m', pools: POOLS }), [
      ['heartbeatTimeout: ^9999', 'spec.election.heartbeatTimeout', 'must be at most 5m'],
      ['minHealthy: ^61m', 'spec.election.minHealthy', 'must be at most 1h'],
    ]);
    expectErrors(doc({ election: 'heartbeatTimeout: 999ms', pools: POOLS }), [
      ['heartbeatTimeout: ^999ms', 'spec.election.heartbeatTimeout', 'must be at least 1s'],
    ]);
    const t = expectValid(doc({ election: 'heartbeatTimeout: 5m\nminHealthy: 0s', pools: POOLS }));
    assert.deepEqual([t.election.heartbeatTimeoutSeconds, t.election.minHealthySeconds], [300, 0]);
    expectValid(doc({ election: 'heartbeatTimeout: 1s\nminHealthy: 1h', pools: POOLS }));
  });

  it('refuses replicas that are huge, fractional, infinite or not a number', () => {
    for (const v of ['1e308', '17', '0', '.inf', '-.inf', '.nan', '2.5']) {
      expectErrors(doc({ election: `replicas: ${v}`, pools: POOLS }), [
        [`replicas: ^${v}`, 'spec.election.replicas', 'must be a whole number from 1 to 16'],
      ]);
    }
    assert.equal(expectValid(doc({ election: 'replicas: 16', pools: [pool('cloud', '', '[{node: a}, {node: b}, {node: c}, {node: d}, {node: e}, {node: f}, {node: g}, {node: h}, {node: i}, {node: j}, {node: k}, {node: l}, {node: m}, {node: n}, {node: o}, {node: p}]')] })).election.replicas, 16);
  });

  it('refuses ports and MTUs out of range or not finite', () => {
    for (const v of ['0', '65536', '1e308', '.inf', '.nan']) {
      expectErrors(doc({ pools: [pool('cloud', '', `[{node: c1, publicPort: ${v}}]`)] }), [
        [`publicPort: ^${v}`, 'spec.pools[0].gateways[0].publicPort', 'must be a port number from 1 to 65535'],
      ]);
      expectErrors(doc({ pools: [pool('cloud', `mtu: ${v}`)] }), [[`mtu: ^${v}`, 'spec.pools[0].mtu', 'must be a whole number from 576 to 9000']]);
    }
  });

  it('parses durations exactly or not at all (no overflow, no rounding)', () => {
    assert.equal(parseDuration('9007199254740991ms'), 9007199254740.991);
    assert.equal(parseDuration('9007199254740992ms'), undefined);
    assert.equal(parseDuration('99999999999999999999999999999h'), undefined);
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: 10n ** 30n }), fc.constantFrom(['h', 3_600_000n], ['m', 60_000n], ['s', 1000n], ['ms', 1n]), (n, [unit, size]) => {
        const got = parseDuration(`${n}${unit}`);
        const ms = n * size;
        if (ms > BigInt(Number.MAX_SAFE_INTEGER)) assert.equal(got, undefined);
        else assert.equal(got, Number(ms) / 1000);
      }),
      RUNS,
    );
  });

  it('property: a heartbeatTimeout validates exactly when it is within 1s..5m', () => {
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: 10n ** 25n }), fc.constantFrom(['m', 60n], ['s', 1n], ['ms', 0n]), (n, [unit, secs]) => {
        const text = doc({ election: `heartbeatTimeout: ${n}${unit}`, pools: POOLS });
        const seconds = unit === 'ms' ? Number(n) / 1000 : Number(n * secs);
        const inside = seconds >= 1 && seconds <= 300;
        assert.equal(errorsOf(text).length === 0, inside, text);
      }),
      RUNS,
    );
  });
});

describe('one IP grammar for validator and planner', () => {
  it('refuses a publicIP with a zone, which the planner would leave out', () => {
    expectErrors(doc({ pools: [pool('cloud', '', '[{node: c1, publicIP: "2001:db8::10%eth0"}]')] }), [
      [
        'publicIP: ^"2001',
        'spec.pools[0].gateways[0].publicIP',
        'must be an address without a %zone: a zone names an interface of one host and means nothing to other pools; remove it',
      ],
    ]);
    expectValid(doc({ pools: [pool('cloud', '', '[{node: c1, publicIP: "2001:db8::10"}]')] }));
  });

  it('property: the validator accepts a publicIP exactly when the planner uses it', () => {
    const alphabet = fc.constantFrom(...'0123456789abcdef:.%'.split(''), '::', '1.2.3.4', 'ffff', '%eth0', '256', '01');
    const junk = fc.array(alphabet, { maxLength: 12 }).map((a) => a.join(''));
    const zoned = fc.tuple(fc.ipV6(), fc.constantFrom('eth0', '1', 'lo')).map(([a, z]) => `${a}%${z}`);
    fc.assert(
      fc.property(fc.oneof(fc.ipV4(), fc.ipV6(), zoned, junk), (ip) => {
        assert.equal(isIP, isUsableIP);
        const text = doc({ pools: [pool('cloud', '', `[{node: c1, publicIP: ${JSON.stringify(ip)}}]`)] });
        const ipErrors = errorsOf(text).filter((e) => e.includes('.publicIP:'));
        assert.equal(ipErrors.length === 0, isUsableIP(ip), `${ip}: ${ipErrors.join('; ')}`);
      }),
      RUNS,
    );
  });
});

describe('proposals: strongSwan keywords, weak families refused', () => {
  const ike = (list: string, extra = ''): string => doc({ encryption: `${PSK}  ikeProposals: [${list}]\n${extra}`, pools: POOLS });

  it('refuses weak families that exact matching let through, saying which family and why', () => {
    const cases: [string, string][] = [
      ['aes256-sha256-modp1024s160', 'modp1024s160 (MODP with a small subgroup: RFC 5114 groups, which RFC 8247 says not to use)'],
      ['aes256-sha256-ecp192', 'ecp192 (ECP below 256 bits: under 128-bit security)'],
      ['aes256-sha256-prfmd5-modp2048', 'prfmd5 (MD5: a broken hash)'],
      ['aes256-sha256-modp1536', 'modp1536 (MODP below 2048 bits: under 112-bit security)'],
      ['aes256-sha1-modp2048', 'sha1 (SHA-1: deprecated for IPsec (RFC 8221, RFC 8247))'],
      ['aes256gcm8-prfsha256-ecp256', 'aes256gcm8 (AEAD with an 8-byte ICV: a 64-bit integrity check)'],
      ['blowfish256-sha256-modp2048', 'blowfish256 (Blowfish/CAST-128: 64-bit blocks (Sweet32))'],
      ['aes128gmac-sha256-modp2048', 'aes128gmac (AES-GMAC: authenticates but does not encrypt)'],
    ];
    for (const [proposal, why] of cases) {
      expectErrors(ike(proposal), [
        [`^${proposal}`, 'spec.encryption.ikeProposals[0]', `uses weak algorithms: ${why}; use strong ones such as aes256-sha256-modp2048, or set allowInsecure: true to accept them`],
      ]);
      expectValid(ike(proposal, '  allowInsecure: true\n'));
    }
  });

  it('refuses made-up keywords without repeating them, even with allowInsecure', () => {
    for (const extra of ['', '  allowInsecure: true\n']) {
      expectErrors(ike('hello-world', extra), [
        ['^hello-world', 'spec.encryption.ikeProposals[0]', 'the 1st algorithm of this proposal is not a strongSwan algorithm keyword; use keywords such as aes256, aes256gcm16, sha256, prfsha256, modp2048 or ecp256 (see docs/topology.md)'],
        ['^hello-world', 'spec.encryption.ikeProposals[0]', 'the 2nd algorithm of this proposal is not a strongSwan algorithm keyword; use keywords such as aes256, aes256gcm16, sha256, prfsha256, modp2048 or ecp256 (see docs/topology.md)'],
      ]);
    }
    expectErrors(doc({ pools: [pool('cloud', 'encryption: {espProposals: [aes256-sha265]}'), pool('edge')] }), [
      ['^aes256-sha265', 'spec.pools[0].encryption.espProposals[0]', 'the 2nd algorithm of this proposal is not a strongSwan algorithm keyword (did you mean sha256?); use keywords such as aes256, aes256gcm16, sha256, prfsha256, modp2048 or ecp256 (see docs/topology.md)'],
    ]);
    expectErrors(doc({ pools: POOLS, links: '- pools: [cloud, edge]\n  encryption: {espProposals: [sha256-modp2048]}\n' }), [
      ['^sha256-modp2048', 'spec.links[0].encryption.espProposals[0]', 'names no encryption algorithm; start it with one such as aes256 or aes256gcm16'],
    ]);
  });

  it('keeps the proposals the repository uses valid', () => {
    const clean = { unknown: [], weak: [], hasEncryption: true, invalid: [], unauthenticated: false };
    for (const p of ['aes256-sha256-modp2048', 'aes256-sha384-modp3072', 'aes256gcm16-prfsha512-ecp521', 'aes256gcm16-prfsha384-ecp384', 'aes256-sha512-modp4096', 'aes128-sha256-ecp256', 'chacha20poly1305-prfsha256-x25519']) {
      assert.deepEqual(checkProposal(p, 'ike'), clean, p);
    }
    for (const p of ['aes256-sha256', 'aes256-sha512', 'aes256-sha384', 'aes256gcm16-esn', 'aes256gcm16-prfsha384', 'aes256-sha256-modp2048']) {
      assert.deepEqual(checkProposal(p, 'esp'), clean, p);
    }
  });

  it('refuses combinations charon refuses, and ESP that encrypts without authenticating', () => {
    expectErrors(ike('aes256-sha256'), [['^aes256-sha256', 'spec.encryption.ikeProposals[0]', 'has no key exchange group, which strongSwan refuses in IKE proposals; add one such as modp2048 or ecp256']]);
    expectErrors(ike('aes256gcm16-modp2048'), [['^aes256gcm16', 'spec.encryption.ikeProposals[0]', 'uses AEAD encryption without a PRF (nor an integrity algorithm to derive one from), which strongSwan refuses in IKE proposals; add one such as prfsha256']]);
    expectErrors(ike('aes256-modp2048'), [['^aes256-modp2048', 'spec.encryption.ikeProposals[0]', 'uses classic encryption without an integrity algorithm, which strongSwan refuses in IKE proposals; add one such as sha256']]);
    expectErrors(ike('aes256-aes256gcm16-sha256-modp2048'), [['^aes256-aes', 'spec.encryption.ikeProposals[0]', 'mixes AEAD encryption (gcm, ccm, chacha20poly1305) with classic encryption, which strongSwan refuses; keep one kind']]);
    const esp = (list: string, extra = ''): string => doc({ encryption: `${PSK}  espProposals: [${list}]\n${extra}`, pools: POOLS });
    expectErrors(esp('aes256'), [['^aes256', 'spec.encryption.espProposals[0]', 'encrypts without authenticating (classic encryption and no integrity algorithm), so forged packets go undetected; add one such as sha256, use an AEAD such as aes256gcm16, or set allowInsecure: true to accept it']]);
    expectValid(esp('aes256', '  allowInsecure: true\n'));
    expectValid(esp('aes256gcm16'));
  });

  it('property: one keyword of a strong IKE proposal swapped for another of its kind is accepted exactly when that keyword is not weak (and still exchanges a key)', () => {
    const base = ['aes256', 'sha256', 'modp2048'];
    const kinds = ['encryption', 'integrity', 'keyExchange'] as const;
    const swap = fc.nat({ max: 2 }).chain((i) => fc.record({ i: fc.constant(i), word: fc.constantFrom(...ALGORITHM_KEYWORDS.filter((k) => !k.includes('_') && algorithmKind(k) === kinds[i])) }));
    fc.assert(
      fc.property(swap, ({ i, word }) => {
        const proposal = base.map((w, k) => (k === i ? word : w)).join('-');
        const r = loadTopology(ike(proposal), FILE);
        const expectOk = weakFamily(word) === undefined && word !== 'none' && word !== 'modpnone';
        assert.equal(r.ok, expectOk, `${proposal}: ${r.ok ? '' : r.errors.map(formatTopologyError).join('; ')}`);
      }),
      RUNS,
    );
  });

  it('property: an unknown keyword is always refused and never echoed', () => {
    // 'zq' starts no keyword and no word of a message, so finding it in an error means the value was echoed.
    const word = fc.stringMatching(/^[a-z0-9]{0,10}$/).map((w) => `zq${w}`);
    fc.assert(
      fc.property(word, (w) => {
        const out = errorsOf(ike(`aes256-${w}-modp2048`, '  allowInsecure: true\n'));
        assert.ok(out.some((e) => e.includes('2nd algorithm of this proposal is not a strongSwan algorithm keyword')), out.join('; '));
        for (const e of out) assert.ok(!e.includes(w), e);
      }),
      RUNS,
    );
  });
});

describe('pskSecretRef.key: a Secret data key, never key material', () => {
  const labelled = (key: string, value: string): string => `- name: cloud\n  nodeSelector: {matchLabels: {${key}: ${value}}}\n  gateways: [{node: c1}]\n`;
  const MATERIAL = 'this value looks like key material; put the key in the Secret and name its key here';
  const withKey = (key: string): string => doc({ encryption: `encryption:\n  pskSecretRef: {name: corvid-psk, key: ${JSON.stringify(key)}}\n`, pools: POOLS });

  it('refuses a key name outside the Secret data key grammar, and one longer than 253 characters', () => {
    expectErrors(withKey('psk key'), [['key: ^"psk key"', 'spec.encryption.pskSecretRef.key', "must be the name of a key in the Secret: at most 253 letters, digits, '-', '_' or '.'"]]);
    expectErrors(withKey('k'.repeat(254)), [['key: ^"kkk', 'spec.encryption.pskSecretRef.key', "must be the name of a key in the Secret: at most 253 letters, digits, '-', '_' or '.'"]]);
    expectValid(withKey('corvid-psk-for-the-warehouse-oslo-link.v2'));
    expectValid(withKey('psk'));
  });

  it('refuses hex and base64 key material without repeating it, in the message or the path', () => {
    const hex = '9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08';
    const b64 = 'q3K8vZ+u1mX0a9Lr7Tg2WcYbNpE4sHdJ/fA6iOeVxkQ=';
    for (const key of [hex, b64, 'q3K8vZu1mX0a9Lr7Tg2WcYbNpE4sHdJfA6iOeVxkQ']) {
      const text = withKey(key);
      expectErrors(text, [[`key: ^"${key.slice(0, 6)}`, 'spec.encryption.pskSecretRef.key', MATERIAL]]);
    }
  });

  it('never puts key material pasted as a map key into a path', () => {
    const key = 'q3K8vZu1mX0a9Lr7Tg2WcYbNpE4sHdJfA6iOeVxkQ';
    const text = doc({ encryption: `encryption:\n  pskSecretRef: {name: corvid-psk, key: psk}\n  ${key}: x\n`, pools: [labelled(key, 'a'), pool('edge')] });
    const r = loadTopology(text, FILE);
    assert.equal(r.ok, false);
    const all = JSON.stringify(r.ok ? r : r.errors);
    assert.ok(!all.includes(key.slice(0, 12)), all);
    assert.ok(all.includes('spec.encryption[this key]'), all);
  });

  it('property: random key material anywhere a name goes is refused and never appears in any finding', () => {
    const b64char = fc.constantFrom(...'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789'.split(''));
    const material = fc
      .array(b64char, { minLength: 32, maxLength: 64 })
      .map((a) => a.join(''))
      .filter(looksLikeKeyMaterial);
    const hex = fc.array(fc.constantFrom(...'0123456789abcdef'.split('')), { minLength: 32, maxLength: 64 }).map((a) => a.join(''));
    fc.assert(
      fc.property(fc.oneof(material, hex), fc.integer({ min: 0, max: 4 }), (secret, where) => {
        const q = JSON.stringify(secret);
        const text = [
          withKey(secret),
          doc({ encryption: `encryption:\n  pskSecretRef: {name: corvid-psk, key: psk}\n  ${q}: x\n`, pools: POOLS }),
          doc({ pools: [pool('cloud', '', `[{node: c1, publicIP: ${q}}]`), pool('edge')] }),
          doc({ encryption: `${PSK}  ikeProposals: [${q}]\n`, pools: POOLS }),
          doc({ pools: [labelled(q, q), pool('edge')] }),
        ][where];
        const r = loadTopology(text, FILE);
        // A label may hold a hash (valid); everywhere else the value is refused.
        if (where !== 4) assert.equal(r.ok, false, text);
        assert.ok(r.ok || !r.errors.some((e) => e.message.startsWith('invalid YAML')), text);
        const out = JSON.stringify(r.ok ? r.warnings : [r.errors, r.errors.map(formatTopologyError)]);
        assert.ok(!out.includes(secret), out);
        if (where === 0) assert.ok(out.includes(MATERIAL), out);
      }),
      RUNS,
    );
  });
});
