import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  decodeEncryption,
  decodeNameList,
  encodeGatewayAnnotations,
  encryptionFor,
  mayPeer,
  readGatewayLinks,
  routeBetween,
} from '../../src/gateway/annotations.ts';
import type { Gateway } from '../../src/gateway/types.ts';
import type { EncryptionPolicy } from '../../src/topology/types.ts';
import { plan } from '../../src/plan/planner.ts';
import { pairRoute } from '../../src/topology/policy.ts';
import { input, node, pool, topology } from './plan-fixtures.ts';

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

test('encode -> read round trip', () => {
  const ann = encodeGatewayAnnotations({
    peers: ['*'],
    deniedPeers: ['z', 'b'],
    relay: 'cloud',
    relaysFor: [],
    encryption: ENC,
    encryptionOverrides: { store: STRONG },
    election: { 'n-1': 'elected: most preferred healthy candidate' },
    revision: 'main@sha1:abc',
  });
  assert.deepEqual(Object.keys(ann), [...Object.keys(ann)].sort());
  assert.equal(ann['corvid.dev/denied-peers'], '["b","z"]');
  assert.equal(ann['corvid.dev/relays-for'], undefined, 'empty lists are omitted');
  const links = readGatewayLinks(gw('n', ann, true));
  assert.deepEqual(links, {
    pool: 'n',
    connectivity: 'mesh',
    peers: ['*'],
    deniedPeers: ['b', 'z'],
    relay: 'cloud',
    relaysFor: [],
    encryption: ENC,
    encryptionOverrides: { store: STRONG },
    underNAT: true,
    election: { 'n-1': 'elected: most preferred healthy candidate' },
    revision: 'main@sha1:abc',
    replicas: 1,
    problems: [],
  });
  assert.deepEqual(encryptionFor(links, 'store'), STRONG);
  assert.deepEqual(encryptionFor(links, 'other'), ENC);
});

test('pskSecretRef is dropped for backend none', () => {
  const ann = encodeGatewayAnnotations({ peers: ['*'], encryption: { ...ENC, backend: 'none' } });
  assert.equal(JSON.parse(ann['corvid.dev/encryption']).pskSecretRef, undefined);
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
  assert.equal(encryptionFor(links, 'x'), undefined);
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
});

test('routeBetween on planned Gateways agrees with the topology pairRoute (mesh, NAT relays, denials, hub)', () => {
  const nat = { behindNAT: true };
  const topologies = [
    topology([pool('c1', ['c1-1']), pool('c2', ['c2-1']), pool('n1', ['n1-1'], { ...nat, relay: 'c2' }), pool('n2', ['n2-1'], { ...nat, relay: 'c2' }), pool('n3', ['n3-1'], nat), pool('n4', ['n4-1'], nat)], {
      connectivity: { mode: 'mesh', rules: [{ action: 'deny', pools: ['n4', 'c1'] }, { action: 'deny', pools: ['n3', 'n1'] }] },
    }),
    topology([pool('hub', ['hub-1']), pool('s1', ['s1-1']), pool('s2', ['s2-1'], { ...nat, relay: 'hub' }), pool('s3', ['s3-1'])], {
      connectivity: { mode: 'hub', hub: 'hub', rules: [{ action: 'deny', pools: ['s3', 's1'] }] },
    }),
  ];
  for (const t of topologies) {
    const nodes = t.pools.map((p) => node(`${p.name}-1`, p.name));
    const links = new Map(plan(input(t, nodes)).gateways.map((g) => [g.metadata.name, readGatewayLinks(g)]));
    for (const a of links.keys()) {
      for (const b of links.keys()) {
        if (a === b) continue;
        const expected = pairRoute(t, a, b);
        const got = routeBetween(links.get(a)!, links.get(b)!);
        assert.deepEqual(got, routeBetween(links.get(b)!, links.get(a)!), `symmetric ${a}-${b}`);
        if (expected.via === 'hub') assert.deepEqual(got, { via: 'relay', relay: expected.hub }, `${a}-${b}`);
        else if (expected.via === 'relay' && !('automatic' in expected && expected.automatic)) assert.deepEqual(got, { via: 'relay', relay: expected.relay }, `${a}-${b}`);
        else assert.equal(got.via, expected.via, `${a}-${b}`);
      }
    }
  }
});

test('routeBetween: two NAT\'d pools use the first one\'s relay, else the other\'s, whichever both may reach', () => {
  const base = { connectivity: 'mesh' as const, relaysFor: [], encryptionOverrides: {}, election: {}, problems: [], underNAT: true, deniedPeers: [] as string[], replicas: 1 };
  const a = { ...base, pool: 'a', peers: ['*'], relay: 'r1' };
  const b = { ...base, pool: 'b', peers: ['*'], relay: 'r2' };
  assert.deepEqual(routeBetween(a, b), { via: 'relay', relay: 'r1' });
  assert.deepEqual(routeBetween({ ...a, deniedPeers: [] }, { ...b, deniedPeers: ['r1'] }), { via: 'relay', relay: 'r2' });
  assert.deepEqual(routeBetween({ ...a, deniedPeers: ['r2'] }, { ...b, deniedPeers: ['r1'] }), { via: 'none', reason: 'no-relay' });
  assert.deepEqual(routeBetween({ ...a, underNAT: false }, b), { via: 'direct' });
});
