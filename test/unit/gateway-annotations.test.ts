import { decodeWireguardKeys, isWireguardKey } from '../../src/gateway/wireguard.ts';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  decodeEncryption,
  decodeEncryptionOverride,
  decodeNameList,
  encodeEncryptionOverrides,
  encodeGatewayAnnotations,
  encryptionFor,
  mayPeer,
  readGatewayLinks,
} from '../../src/gateway/annotations.ts';
import type { Gateway } from '../../src/gateway/types.ts';
import type { EncryptionPolicy } from '../../src/topology/types.ts';

const ENC: EncryptionPolicy = { backend: 'ipsec', ikeProposals: ['a'], espProposals: ['b'], pskSecretRef: { name: 's', key: 'k' }, allowInsecure: false };
const STRONG: EncryptionPolicy = { ...ENC, espProposals: ['aes256gcm16'] };

function gw(name: string, annotations: Record<string, string>, underNAT = false): Gateway {
  return {
    apiVersion: 'raven.openyurt.io/v1beta1',
    kind: 'Gateway',
    metadata: { name, labels: { 'corvid.dev/pool': name }, annotations },
    spec: { endpoints: [{ nodeName: `${name}-1`, type: 'tunnel', underNAT }] },
  };
}

const POOL_OVERRIDE = { espProposals: ['aes256gcm16'], ikeProposals: ['i-n'] };
const PLAIN = (pool: string, o: Partial<Parameters<typeof encodeGatewayAnnotations>[0]> = {}) =>
  gw(pool, encodeGatewayAnnotations({ peers: ['*'], encryption: ENC, encryptionDefaults: ENC, ...o }));

const WG_KEY_1 = Buffer.alloc(32, 1).toString('base64');
const WG_KEY_2 = Buffer.alloc(32, 2).toString('base64');

test('WireGuard keys: exactly base64 of 32 bytes; a bad entry is dropped and counted, never quoted', () => {
  assert.ok(isWireguardKey(WG_KEY_1));
  for (const bad of [WG_KEY_1.slice(0, -1), `${WG_KEY_1}=`, Buffer.alloc(31).toString('base64'), Buffer.alloc(33).toString('base64'), WG_KEY_1.replace(/.=$/, 'B='), 42, undefined]) {
    assert.equal(isWireguardKey(bad), false, String(bad));
  }
  const d = decodeWireguardKeys(JSON.stringify({ good: WG_KEY_1, 'secret-looking-node': 'xyz' }));
  assert.deepEqual(d.keys, { good: WG_KEY_1 });
  assert.deepEqual(d.problems, ['1 entry is not a WireGuard public key']);
  assert.deepEqual(decodeWireguardKeys('[1]').keys, {});
  assert.deepEqual(decodeWireguardKeys('{').problems, ['not JSON']);
});

test('encode -> read round trip', () => {
  const ann = encodeGatewayAnnotations({
    peers: ['*'],
    deniedPeers: ['z', 'b'],
    relay: 'cloud',
    relaysFor: [],
    encryption: { ...ENC, ...POOL_OVERRIDE },
    encryptionDefaults: ENC,
    encryptionPool: POOL_OVERRIDE,
    encryptionLinks: { store: { espProposals: ['x'] }, empty: {} },
    election: { 'n-1': 'elected: most preferred healthy candidate' },
    revision: 'main@sha1:abc',
    wireguardKeys: { 'n-2': WG_KEY_2, 'n-1': WG_KEY_1 },
  });
  assert.deepEqual(Object.keys(ann), [...Object.keys(ann)].sort());
  assert.equal(ann['corvid.dev/wireguard-keys'], `{"n-1":"${WG_KEY_1}","n-2":"${WG_KEY_2}"}`, 'nodes sorted');
  assert.equal(ann['corvid.dev/denied-peers'], '["b","z"]');
  assert.equal(ann['corvid.dev/relays-for'], undefined, 'empty lists are omitted');
  assert.equal(ann['corvid.dev/encryption-pool'], '{"espProposals":["aes256gcm16"],"ikeProposals":["i-n"]}', 'only the fields it sets, keys sorted');
  assert.equal(ann['corvid.dev/encryption-links'], '{"store":{"espProposals":["x"]}}', 'empty link overrides are omitted');
  assert.equal(ann['corvid.dev/encryption-overrides'], undefined, 'the old format is no longer written');
  const links = readGatewayLinks(gw('n', ann, true));
  assert.deepEqual(links, {
    pool: 'n',
    connectivity: 'mesh',
    peers: ['*'],
    deniedPeers: ['b', 'z'],
    relay: 'cloud',
    relaysFor: [],
    encryption: { ...ENC, ...POOL_OVERRIDE },
    encryptionDefaults: ENC,
    encryptionPool: POOL_OVERRIDE,
    encryptionLinks: { store: { espProposals: ['x'] } },
    encryptionOverrides: {},
    underNAT: true,
    election: { 'n-1': 'elected: most preferred healthy candidate' },
    revision: 'main@sha1:abc',
    replicas: 1,
    wireguardKeys: { 'n-1': WG_KEY_1, 'n-2': WG_KEY_2 },
    problems: [],
  });
  // n's link to store: defaults <- n's override <- store's (none) <- the links[] entry.
  assert.deepEqual(encryptionFor(links, readGatewayLinks(PLAIN('store'))), { ...ENC, ...POOL_OVERRIDE, espProposals: ['x'] });
  assert.deepEqual(encryptionFor(links, readGatewayLinks(PLAIN('other'))), { ...ENC, ...POOL_OVERRIDE });
});

test('no pool override, no links: encryption-pool and encryption-links are omitted', () => {
  const ann = encodeGatewayAnnotations({ peers: ['*'], encryption: ENC, encryptionDefaults: ENC, encryptionPool: {}, encryptionLinks: {} });
  assert.deepEqual(Object.keys(ann), ['corvid.dev/encryption', 'corvid.dev/encryption-defaults', 'corvid.dev/peers']);
});

test('pskSecretRef is dropped for backend none', () => {
  const none = { ...ENC, backend: 'none' as const };
  const ann = encodeGatewayAnnotations({ peers: ['*'], encryption: none, encryptionDefaults: none });
  assert.equal(JSON.parse(ann['corvid.dev/encryption']).pskSecretRef, undefined);
  assert.equal(JSON.parse(ann['corvid.dev/encryption-defaults']).pskSecretRef, undefined);
  // The merge drops it too when an override turns the backend to none.
  const a = readGatewayLinks(PLAIN('a', { encryptionPool: { backend: 'none', allowInsecure: true } }));
  const policy = encryptionFor(a, readGatewayLinks(PLAIN('b')));
  assert.deepEqual(policy, { backend: 'none', ikeProposals: ['a'], espProposals: ['b'], allowInsecure: true });
});

test('encryptionFor: pool overrides merge in name order, the links[] entry last, the same from both sides', () => {
  // The validator refuses conflicting pool overrides without a links[] entry; the rule is still defined.
  const a = readGatewayLinks(PLAIN('a', { encryptionPool: { ikeProposals: ['from-a'], espProposals: ['from-a'] }, encryptionLinks: { b: { espProposals: ['link'] } } }));
  const b = readGatewayLinks(PLAIN('b', { encryptionPool: { ikeProposals: ['from-b'], allowInsecure: true }, encryptionLinks: { a: { espProposals: ['link'] } } }));
  const want = { ...ENC, ikeProposals: ['from-b'], espProposals: ['link'], allowInsecure: true };
  assert.deepEqual(encryptionFor(a, b), want);
  assert.deepEqual(encryptionFor(b, a), want);
});

test('old format (no encryption-defaults): the per-peer override, else the pool default (one release of compatibility)', () => {
  const old = (pool: string, overrides: Record<string, EncryptionPolicy>) =>
    gw(pool, { 'corvid.dev/peers': '["*"]', 'corvid.dev/encryption': JSON.stringify(ENC), ...(Object.keys(overrides).length ? { 'corvid.dev/encryption-overrides': encodeEncryptionOverrides(overrides) } : {}) });
  const n = readGatewayLinks(old('n', { store: STRONG }));
  const store = readGatewayLinks(old('store', { n: STRONG }));
  const other = readGatewayLinks(old('other', {}));
  assert.deepEqual(n.problems, []);
  assert.equal(n.encryptionDefaults, undefined);
  assert.deepEqual(encryptionFor(n, store), STRONG);
  assert.deepEqual(encryptionFor(store, n), STRONG);
  assert.deepEqual(encryptionFor(n, other), ENC);
  // During the sync's upgrade a new-format Gateway meets an old one: both sides use the old-format side's rule.
  const fresh = readGatewayLinks(PLAIN('fresh', { encryptionPool: { espProposals: ['new'] } }));
  const oldPeer = readGatewayLinks(old('old', { fresh: STRONG }));
  assert.deepEqual(encryptionFor(fresh, oldPeer), STRONG);
  assert.deepEqual(encryptionFor(oldPeer, fresh), STRONG);
});

test('encryptionFor fails closed: a malformed part on either side, parts without defaults, an upstream Gateway', () => {
  const a = readGatewayLinks(PLAIN('a'));
  const badPool = readGatewayLinks(PLAIN('b', { encryptionPool: { espProposals: ['x'] } }));
  assert.deepEqual(encryptionFor(a, badPool), { ...ENC, espProposals: ['x'] });
  for (const [key, value] of [
    ['corvid.dev/encryption-pool', '{"espProposals":"x"}'],
    ['corvid.dev/encryption-pool', '["x"]'],
    ['corvid.dev/encryption-links', '{"a":{"backend":"rot13"}}'],
    ['corvid.dev/encryption-defaults', '{"backend":"ipsec"}'],
    ['corvid.dev/encryption', '{not json'],
  ] as const) {
    const g = PLAIN('b', { encryptionPool: { espProposals: ['x'] } });
    g.metadata.annotations![key] = value;
    const b = readGatewayLinks(g);
    assert.match(b.problems.join('\n'), new RegExp(key.replace('.', '\\.')), key);
    assert.equal(encryptionFor(a, b), undefined, `peer's ${key} malformed`);
    assert.equal(encryptionFor(b, a), undefined, `own ${key} malformed`);
  }
  // A part of the current format without encryption-defaults is never read as the old format.
  const noDefaults = PLAIN('b', { encryptionPool: { espProposals: ['x'] } });
  delete noDefaults.metadata.annotations!['corvid.dev/encryption-defaults'];
  const nd = readGatewayLinks(noDefaults);
  assert.deepEqual(nd.problems, ['corvid.dev/encryption-pool: present without corvid.dev/encryption-defaults']);
  assert.equal(encryptionFor(nd, a), undefined);
  assert.equal(encryptionFor(a, nd), undefined);
  // No defaults and no old-format fallback on either side: nothing.
  const bare = readGatewayLinks(gw('c', { 'corvid.dev/peers': '["*"]' }));
  assert.equal(encryptionFor(bare, a), undefined);
  assert.equal(encryptionFor(a, bare), undefined);
});

test('mayPeer: ["*"] minus denied; explicit lists; never itself', () => {
  const star = { pool: 'a', peers: ['*'], deniedPeers: ['b'] };
  assert.equal(mayPeer(star, 'c'), true);
  assert.equal(mayPeer(star, 'b'), false);
  assert.equal(mayPeer(star, 'a'), false);
  const list = { pool: 'a', peers: ['hub'], deniedPeers: [] };
  assert.equal(mayPeer(list, 'hub'), true);
  assert.equal(mayPeer(list, 'c'), false);
});

test('absent annotations: an upstream Gateway reads as a mesh member with no encryption', () => {
  const links = readGatewayLinks(gw('up', {}));
  assert.deepEqual(links.peers, ['*']);
  assert.equal(links.encryption, undefined);
  assert.equal(encryptionFor(links, readGatewayLinks(PLAIN('x'))), undefined);
  assert.equal(encryptionFor(readGatewayLinks(PLAIN('x')), links), undefined);
  assert.deepEqual(links.problems, []);
});

test('malformed annotations fail closed and are reported', () => {
  const bad = readGatewayLinks(gw('x', {
    'corvid.dev/peers': '["a",',
    'corvid.dev/encryption': JSON.stringify(ENC),
    'corvid.dev/encryption-overrides': '{"b":{"backend":"rot13"}}',
    'corvid.dev/election': '[]',
    'corvid.dev/connectivity': 'star',
  }));
  assert.deepEqual(bad.peers, []);
  assert.equal(mayPeer(bad, 'a'), false);
  assert.equal(bad.encryption, undefined, 'a malformed override voids the default too');
  assert.deepEqual(bad.encryptionOverrides, {});
  assert.equal(bad.encryptionDefaults, undefined);
  assert.equal(bad.problems.length, 4);
  assert.match(bad.problems.join('\n'), /corvid\.dev\/peers: not JSON/);
  assert.match(bad.problems.join('\n'), /b: backend must be/);
});

test('decoders reject wrong shapes', () => {
  assert.equal(decodeNameList('"a"').ok, false);
  assert.equal(decodeNameList('[1]').ok, false);
  assert.equal(decodeNameList('[""]').ok, false);
  assert.deepEqual(decodeNameList('["b","a","b"]'), { ok: true, value: ['a', 'b'] });
  assert.equal(decodeEncryption('{"backend":"ipsec","ikeProposals":"x","espProposals":[]}').ok, false);
  assert.equal(decodeEncryption('{"backend":"ipsec","ikeProposals":[],"espProposals":[],"pskSecretRef":{"name":1}}').ok, false);
  assert.deepEqual(decodeEncryption('{"backend":"none","ikeProposals":[],"espProposals":[]}'), {
    ok: true,
    value: { backend: 'none', ikeProposals: [], espProposals: [], allowInsecure: false },
  });
  assert.deepEqual(decodeEncryptionOverride('{"allowInsecure":true,"future":1}'), { ok: true, value: { allowInsecure: true } });
  assert.equal(decodeEncryptionOverride('{"allowInsecure":"yes"}').ok, false);
  assert.equal(decodeEncryptionOverride('null').ok, false);
});
