// The pure policy questions on a normalised Topology, and normalisation itself.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { linkPolicy, loadTopology, pairVerdict, poolByName } from '../../src/topology/index.ts';
import type { Topology } from '../../src/topology/index.ts';
import { automaticRelay, pairRoute, relayCandidates, relayChoice, relayOfPool, tunnelPairs } from '../../src/topology/policy.ts';
import { rendezvousWeight } from '../../src/topology/hash.ts';
import { formatDuration, parseDuration } from '../../src/topology/duration.ts';
import { doc, pool } from './topology-helpers.ts';

function load(text: string): Topology {
  const r = loadTopology(text, 't.yaml');
  if (!r.ok) assert.fail(r.errors.map((e) => `${e.line}:${e.col} ${e.path}: ${e.message}`).join('\n'));
  return r.topology;
}

const NAT = 'behindNAT: true';

describe('pairVerdict', () => {
  const t = load(
    doc({
      connectivity: 'rules:\n  - {action: allow, pools: [b, a]}\n  - {action: deny, pools: [a, "*"]}\n  - {action: deny, pools: [c, d]}\n',
      pools: [pool('a'), pool('b'), pool('c'), pool('d'), pool('e')],
    }),
  );
  it('takes the first matching rule, whatever the order of the pair', () => {
    assert.equal(pairVerdict(t, 'a', 'b'), 'allow');
    assert.equal(pairVerdict(t, 'b', 'a'), 'allow');
    assert.equal(pairVerdict(t, 'a', 'c'), 'deny');
    assert.equal(pairVerdict(t, 'c', 'a'), 'deny');
    assert.equal(pairVerdict(t, 'd', 'c'), 'deny');
  });
  it('allows a pair no rule matches', () => {
    assert.equal(pairVerdict(t, 'b', 'c'), 'allow');
    assert.equal(pairVerdict(t, 'e', 'd'), 'allow');
  });
  it('matches "*" on either side', () => {
    const s = load(doc({ connectivity: 'rules:\n  - {action: deny, pools: ["*", "*"]}\n', pools: [pool('a'), pool('b')] }));
    assert.equal(pairVerdict(s, 'a', 'b'), 'deny');
  });
});

describe('linkPolicy', () => {
  const t = load(
    doc({
      pools: [
        pool('a', 'encryption: {ikeProposals: [aes256-sha384-modp3072]}'),
        pool('b', 'encryption: {espProposals: [aes256gcm16], pskSecretRef: {name: b-psk, key: k}}'),
        pool('c', 'encryption: {backend: none, allowInsecure: true}'),
      ],
      links: '- pools: [b, a]\n  encryption: {espProposals: [aes256-sha512]}\n',
    }),
  );
  it('layers defaults, both pool overrides and the pair override', () => {
    assert.deepEqual(linkPolicy(t, 'a', 'b'), {
      backend: 'ipsec',
      ikeProposals: ['aes256-sha384-modp3072'],
      espProposals: ['aes256-sha512'],
      allowInsecure: false,
      pskSecretRef: { name: 'b-psk', key: 'k' },
    });
  });
  it('is symmetric', () => {
    for (const [x, y] of [['a', 'b'], ['a', 'c'], ['b', 'c']]) assert.deepEqual(linkPolicy(t, x, y), linkPolicy(t, y, x));
  });
  it('leaves out the pre-shared key for backend none', () => {
    const p = linkPolicy(t, 'a', 'c');
    assert.equal(p.backend, 'none');
    assert.equal(p.allowInsecure, true);
    assert.equal(p.pskSecretRef, undefined);
  });
  it('returns a fresh object (callers may not alias the topology)', () => {
    const p = linkPolicy(t, 'a', 'b');
    p.ikeProposals.push('x');
    assert.deepEqual(linkPolicy(t, 'a', 'b').ikeProposals, ['aes256-sha384-modp3072']);
  });
});

describe('poolByName', () => {
  it('maps every pool by its name', () => {
    const t = load(doc({ pools: [pool('b'), pool('a')] }));
    const m = poolByName(t);
    assert.deepEqual([...m.keys()], ['a', 'b']);
    assert.equal(m.get('b')?.gateways[0].node, 'b-gw');
  });
});

describe('routes', () => {
  it('mesh: direct, through a named or automatic relay, or none', () => {
    const t = load(
      doc({
        connectivity: 'rules:\n  - {action: deny, pools: [n3, "*"]}\n',
        pools: [pool('cloud'), pool('dc'), pool('n1', `${NAT}\nrelay: cloud`), pool('n2', `${NAT}\nrelay: cloud`), pool('n3', NAT), pool('n4', NAT), pool('n5', NAT)],
      }),
    );
    assert.deepEqual(pairRoute(t, 'cloud', 'n1'), { via: 'direct' });
    assert.deepEqual(pairRoute(t, 'n1', 'n2'), { via: 'relay', relay: 'cloud' });
    assert.deepEqual(pairRoute(t, 'n4', 'n5'), { via: 'relay', relay: 'cloud', automatic: true });
    assert.deepEqual(pairRoute(t, 'n1', 'n4'), { via: 'relay', relay: 'cloud' });
    assert.deepEqual(pairRoute(t, 'n3', 'n4'), { via: 'none', reason: 'denied' });
    assert.deepEqual(pairRoute(t, 'n1', 'n1'), { via: 'none', reason: 'same-pool' });
    assert.deepEqual(pairRoute(t, 'n1', 'zz'), { via: 'none', reason: 'unknown-pool' });
    // The automatic relay joins the one named most often; n3 (no candidate at all) does not constrain it.
    assert.equal(automaticRelay(t), 'cloud');
    assert.equal(relayOfPool(t, 'n1', 'cloud'), 'cloud');
    assert.equal(relayOfPool(t, 'n4', automaticRelay(t)), 'cloud');
    assert.equal(relayOfPool(t, 'n3', automaticRelay(t)), undefined);
    assert.equal(relayOfPool(t, 'cloud', automaticRelay(t)), undefined);
    assert.deepEqual(Object.fromEntries(relayChoice(t).relayOf), { n1: 'cloud', n2: 'cloud', n4: 'cloud', n5: 'cloud' });
    assert.deepEqual(relayCandidates(t, 'n4'), ['cloud', 'dc']);
    assert.deepEqual(relayCandidates(t, 'n3'), []);
  });

  it('mesh: one automatic relay for every NAT\'d pool naming none; a common relay or no route', () => {
    const pools = [pool('cloud'), pool('dc'), pool('edge'), pool('n1', NAT), pool('n2', NAT), pool('n3', NAT)];
    const t = load(doc({ pools }));
    const expected = ['cloud', 'dc', 'edge'].sort((a, b) => rendezvousWeight(t.name, b) - rendezvousWeight(t.name, a) || (a < b ? -1 : 1))[0];
    assert.equal(automaticRelay(t), expected, 'rendezvous hashing on "<topology>|<candidate>"');
    for (const [a, b] of [['n1', 'n2'], ['n1', 'n3'], ['n2', 'n3']]) assert.deepEqual(pairRoute(t, a, b), { via: 'relay', relay: expected, automatic: true });
    // A previous choice (the planner's) wins while valid; without it the topology-only view never depends on order.
    const other = ['cloud', 'dc', 'edge'].find((c) => c !== expected)!;
    assert.equal(automaticRelay(t, other), other);
    assert.equal(automaticRelay(t, 'n1'), expected, 'a previous relay behind NAT is not valid');
    const reordered = load(doc({ pools: [...pools].reverse() }));
    assert.equal(automaticRelay(reordered), expected);
    // Named relays that differ from the automatic one: no route, and the reason says so.
    const named = load(
      doc({ connectivity: 'rules:\n  - {action: deny, pools: [n1, n2]}\n', pools: [pool('cloud'), pool('dc'), pool('n1', `${NAT}\nrelay: cloud`), pool('n2', `${NAT}\nrelay: dc`), pool('n3', NAT)] }),
    );
    assert.deepEqual(pairRoute({ ...named, connectivity: { mode: 'mesh', rules: [] } }, 'n1', 'n2'), { via: 'none', reason: 'different-relays' });
    const joined = automaticRelay(named)!;
    assert.ok(joined === 'cloud' || joined === 'dc');
    assert.deepEqual(pairRoute(named, 'n3', joined === 'cloud' ? 'n1' : 'n2'), { via: 'relay', relay: joined });
    assert.deepEqual(pairRoute(named, 'n3', joined === 'cloud' ? 'n2' : 'n1'), { via: 'none', reason: 'different-relays' });
    // Every candidate of a pool is denied: hop-denied; no pool outside NAT at all: no-relay.
    const cut = load(doc({ connectivity: 'rules:\n  - {action: deny, pools: [n2, cloud]}\n', pools: [pool('cloud'), pool('n1', NAT), pool('n2', NAT)] }));
    assert.deepEqual(pairRoute(cut, 'n1', 'n2'), { via: 'none', reason: 'hop-denied' });
    const closed = load(doc({ connectivity: 'rules:\n  - {action: deny, pools: [n1, n2]}\n', pools: [pool('n1', NAT), pool('n2', NAT)] }));
    assert.equal(automaticRelay(closed), undefined);
    assert.deepEqual(pairRoute({ ...closed, connectivity: { mode: 'mesh', rules: [] } }, 'n1', 'n2'), { via: 'none', reason: 'no-relay' });
  });

  it('hub: spokes through the hub, the hub direct', () => {
    const t = load(doc({ connectivity: 'mode: hub\nhub: hq', pools: [pool('hq'), pool('s1', NAT), pool('s2')] }));
    assert.deepEqual(pairRoute(t, 's1', 'hq'), { via: 'direct' });
    assert.deepEqual(pairRoute(t, 's1', 's2'), { via: 'hub', hub: 'hq' });
    assert.equal(relayOfPool(t, 's1', undefined), 'hq');
    assert.equal(relayOfPool(t, 's2', undefined), 'hq', 'every spoke, behind NAT or not');
    assert.equal(relayOfPool(t, 'hq', undefined), undefined);
    assert.equal(automaticRelay(t), undefined);
    assert.deepEqual(tunnelPairs(t), [['hq', 's1'], ['hq', 's2']]);
  });

  it('tunnelPairs: every allowed pair except two NAT\'d pools, sorted', () => {
    const t = load(doc({ connectivity: 'rules:\n  - {action: deny, pools: [c, a]}\n', pools: [pool('c'), pool('b', NAT), pool('a'), pool('d', NAT)] }));
    assert.deepEqual(tunnelPairs(t), [['a', 'b'], ['a', 'd'], ['b', 'c'], ['c', 'd']]);
  });
});

describe('normalisation', () => {
  it('fills defaults, sorts pools and links, keeps rules in order, converts durations', () => {
    const t = load(
      doc({
        encryption: 'encryption:\n  pskSecretRef: {name: p, key: k}\n',
        connectivity: 'rules:\n  - {action: deny, pools: [z, q]}\n  - {action: allow, pools: ["*", z]}\n',
        election: 'minHealthy: 1m30s\nheartbeatTimeout: 1500ms',
        pools: [pool('z', 'relay: a'), pool('a'), pool('q')],
        links: '- pools: [z, a]\n  encryption: {backend: wireguard}\n',
      }),
    );
    assert.deepEqual(t.encryption, {
      backend: 'ipsec',
      ikeProposals: ['aes256-sha256-modp2048'],
      espProposals: ['aes256-sha256'],
      pskSecretRef: { name: 'p', key: 'k' },
      allowInsecure: false,
    });
    assert.deepEqual(t.connectivity, {
      mode: 'mesh',
      rules: [
        { action: 'deny', pools: ['z', 'q'] },
        { action: 'allow', pools: ['*', 'z'] },
      ],
    });
    assert.deepEqual(t.election, { sticky: true, preempt: false, minHealthySeconds: 90, heartbeatTimeoutSeconds: 1.5, replicas: 1 });
    assert.deepEqual(t.pools.map((p) => p.name), ['a', 'q', 'z']);
    assert.equal(t.pools[2].relay, undefined, 'relay dropped from a pool not behind NAT');
    assert.deepEqual(t.pools[0].gateways, [{ node: 'a-gw', publicPort: 4500 }]);
    assert.deepEqual(t.links, [{ pools: ['a', 'z'], encryption: { backend: 'wireguard' } }]);
  });

  it('parses and formats durations', () => {
    assert.equal(parseDuration('30s'), 30);
    assert.equal(parseDuration('2m'), 120);
    assert.equal(parseDuration('1h2m3s4ms'), 3723.004);
    assert.equal(parseDuration('500ms'), 0.5);
    for (const bad of ['', 's', '30', '1s1m', '1.5s', '-1s', '30 s']) assert.equal(parseDuration(bad), undefined, bad);
    assert.equal(formatDuration(90), '1m30s');
    assert.equal(formatDuration(0.5), '500ms');
    assert.equal(formatDuration(0), '0s');
  });
});
