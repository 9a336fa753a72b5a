import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chooseRelays, fnv1a32, relayWeight } from '../../src/plan/relay.ts';
import { peersAllowed, peerTable } from '../../src/plan/peers.ts';
import { fnv1a32 as topologyFnv, rendezvousWeight } from '../../src/topology/hash.ts';
import { automaticRelay, pairRoute } from '../../src/topology/policy.ts';
import type { Topology } from '../../src/topology/types.ts';
import { plan } from '../../src/plan/planner.ts';
import { input, node, pool, topology } from './plan-fixtures.ts';

function relays(t: Topology, previous: Record<string, string> = {}) {
  const table = peerTable(t);
  return chooseRelays({ topology: t, previousRelay: new Map(Object.entries(previous)), allowed: (a, b) => peersAllowed(table, a, b) });
}

const nat = (name: string, relay?: string) => pool(name, [], { behindNAT: true, ...(relay ? { relay } : {}) });
const open = (name: string) => pool(name, []);

test('fnv1a32 matches the published FNV-1a 32-bit vectors', () => {
  assert.equal(fnv1a32(''), 0x811c9dc5);
  assert.equal(fnv1a32('a'), 0xe40c292c);
  assert.equal(fnv1a32('foobar'), 0xbf9cf968);
  assert.equal(relayWeight('x', 'y'), fnv1a32('x|y'));
  assert.equal(fnv1a32, topologyFnv, 'one FNV implementation, in src/topology/hash.ts');
});

test('the relay the topology names wins', () => {
  const r = relays(topology([nat('n1', 'c2'), nat('n2'), open('c1'), open('c2')]), { n1: 'c1' });
  assert.equal(r.relayOf.get('n1'), 'c2');
});

test('without a named relay: the previous one is kept while valid', () => {
  const t = topology([nat('n1'), nat('n2'), open('c1'), open('c2'), open('c3')]);
  for (const prev of ['c1', 'c2', 'c3']) assert.equal(relays(t, { n1: prev }).relayOf.get('n1'), prev);
});

test('an invalid previous relay (gone, behind NAT, denied) is replaced by the rendezvous choice', () => {
  const t = topology([nat('n1'), nat('n2'), open('c1'), open('c2')], {
    connectivity: { mode: 'mesh', rules: [{ action: 'deny', pools: ['n1', 'c1'] }] },
  });
  const fresh = relays(t).relayOf.get('n1');
  assert.equal(fresh, 'c2', 'c1 is denied for n1');
  for (const prev of ['gone', 'n2', 'c1', 'n1']) assert.equal(relays(t, { n1: prev }).relayOf.get('n1'), fresh, prev);
});

test('rendezvous: one automatic relay for every NAT\'d pool naming none, the highest FNV-1a weight of "<topology>|<relay>"', () => {
  const opens = ['c1', 'c2', 'c3', 'c4', 'c5'];
  const t = topology([nat('n1'), nat('n2'), nat('n3'), ...opens.map(open)]);
  const r = relays(t);
  const best = [...opens].sort((a, b) => rendezvousWeight(t.name, b) - rendezvousWeight(t.name, a) || (a < b ? -1 : 1))[0];
  assert.equal(r.automatic, best);
  for (const n of ['n1', 'n2', 'n3']) assert.equal(r.relayOf.get(n), best, n);
  assert.deepEqual(r.findings, []);
});

test('two NAT\'d pools naming no relay always share one (per-pool hashing used to split them)', () => {
  // Before: rendezvous on "<pool>|<relay>" per pool gave n0 and n1 different relays for many names.
  for (let k = 0; k < 50; k++) {
    const opens = Array.from({ length: 2 + (k % 5) }, (_, i) => `c${k}-${i}`);
    const t = topology([nat(`n${k}a`), nat(`n${k}b`), nat(`n${k}c`), ...opens.map(open)], { name: `t${k}` });
    const r = relays(t);
    assert.equal(new Set(r.relayOf.values()).size, 1, t.name);
    assert.deepEqual(pairRoute(t, `n${k}a`, `n${k}b`), { via: 'relay', relay: r.automatic, automatic: true }, t.name);
  }
});

test('automatic pools join the relay named most often (ties: the higher rendezvous weight)', () => {
  const t = topology([nat('n1', 'c3'), nat('n2', 'c2'), nat('n3', 'c2'), nat('n4'), nat('n5'), open('c1'), open('c2'), open('c3')]);
  const r = relays(t);
  assert.equal(r.relayOf.get('n4'), 'c2');
  assert.equal(r.relayOf.get('n5'), 'c2');
  assert.deepEqual(r.relaysFor.get('c2'), ['n2', 'n3', 'n4', 'n5']);
  const tie = topology([nat('n1', 'c3'), nat('n2', 'c2'), nat('n4'), open('c1'), open('c2'), open('c3')]);
  const heavier = rendezvousWeight(tie.name, 'c2') > rendezvousWeight(tie.name, 'c3') ? 'c2' : 'c3';
  assert.equal(relays(tie).relayOf.get('n4'), heavier);
  // A named relay that the rules deny for an automatic pool is not joined.
  const denied = topology([nat('n1', 'c2'), nat('n4'), nat('n5'), open('c1'), open('c2')], {
    connectivity: { mode: 'mesh', rules: [{ action: 'deny', pools: ['n5', 'c2'] }] },
  });
  const d = relays(denied);
  assert.equal(d.relayOf.get('n4'), 'c1');
  assert.equal(d.relayOf.get('n5'), 'c1');
  assert.deepEqual(pairRoute(denied, 'n1', 'n4'), { via: 'none', reason: 'different-relays' });
});

test('sticky: the automatic relay recorded on the live Gateways stays while valid for all, even when pools name another', () => {
  const t = topology([nat('n1'), nat('n2'), open('c1'), open('c2'), open('c3')]);
  const fresh = relays(t).automatic!;
  const other = ['c1', 'c2', 'c3'].find((c) => c !== fresh)!;
  const live = { n1: other, n2: other };
  assert.equal(relays(t, live).automatic, other);
  // Adding a NAT'd pool that names the fresh choice, and more relays, moves nothing.
  const t2 = topology([nat('n1'), nat('n2'), nat('n3'), nat('n9', fresh), open('a0'), open('c1'), open('c2'), open('c3'), open('z9')]);
  const r2 = relays(t2, live);
  for (const n of ['n1', 'n2', 'n3']) assert.equal(r2.relayOf.get(n), other, n);
  // The live Gateways disagree (as after per-pool hashing): the one most recorded wins.
  const three = topology([nat('n1'), nat('n2'), nat('n3'), open('c1'), open('c2'), open('c3')]);
  for (const [minority, majority] of [['c3', 'c1'], ['c1', 'c3'], ['c2', 'c3']]) {
    assert.equal(relays(three, { n1: minority, n2: majority, n3: majority }).automatic, majority);
  }
  // No longer valid for all (denied for n2): the next rule applies.
  const denied = topology([nat('n1'), nat('n2'), open('c1'), open('c2')], { connectivity: { mode: 'mesh', rules: [{ action: 'deny', pools: ['n2', 'c1'] }] } });
  assert.equal(relays(denied, { n1: 'c1', n2: 'c1' }).automatic, 'c2');
  // The planner and the topology-only view agree when nothing was recorded.
  assert.equal(relays(t).automatic, automaticRelay(t));
  assert.equal(automaticRelay(t, other), other);
});

test('no candidate valid for every automatic pool: each falls back to its own rendezvous choice, with a finding', () => {
  const t = topology([nat('n1'), nat('n2'), open('c1'), open('c2')], {
    connectivity: { mode: 'mesh', rules: [{ action: 'deny', pools: ['n1', 'c1'] }, { action: 'deny', pools: ['n2', 'c2'] }] },
  });
  const r = relays(t);
  assert.equal(r.automatic, undefined);
  assert.deepEqual(Object.fromEntries(r.relayOf), { n1: 'c2', n2: 'c1' });
  assert.deepEqual(r.findings.map((f) => `${f.code} ${f.pool}`), ['no-common-relay n1', 'no-common-relay n2']);
  assert.deepEqual(pairRoute(t, 'n1', 'n2'), { via: 'none', reason: 'different-relays' });
  // A pool that no candidate may serve does not stop the others from sharing one.
  const isolated = topology([nat('n1'), nat('n2'), nat('n3'), open('c1'), open('c2')], { connectivity: { mode: 'mesh', rules: [{ action: 'deny', pools: ['n3', '*'] }] } });
  const i = relays(isolated);
  assert.ok(i.automatic !== undefined);
  assert.deepEqual(Object.fromEntries(i.relayOf), { n1: i.automatic, n2: i.automatic });
  assert.deepEqual(i.findings.map((f) => `${f.code} ${f.pool}`), ['no-relay n3']);
});

test('linear: the automatic relay is computed once per plan, not per pool', () => {
  const nats = Array.from({ length: 3000 }, (_, i) => nat(`n${i}`));
  const opens = Array.from({ length: 40 }, (_, i) => open(`c${i}`));
  const t = topology([...nats, ...opens]);
  const table = peerTable(t);
  let calls = 0;
  const r = chooseRelays({ topology: t, previousRelay: new Map(), allowed: (a, b) => (calls++, peersAllowed(table, a, b)) });
  assert.equal(new Set(r.relayOf.values()).size, 1);
  assert.ok(calls <= 4 * nats.length, `${calls} connectivity checks for ${nats.length} NAT'd pools`);
});

test('rendezvous alone: adding a pool moves a relay only onto the added pool', () => {
  const opens = Array.from({ length: 8 }, (_, i) => `c${i}`);
  const nats = Array.from({ length: 40 }, (_, i) => `n${i}`);
  const before = relays(topology([...nats.map((x) => nat(x)), ...opens.map(open)])).relayOf;
  const after = relays(topology([...nats.map((x) => nat(x)), ...opens.map(open), open('c-new')])).relayOf;
  for (const x of nats) assert.ok(after.get(x) === before.get(x) || after.get(x) === 'c-new', x);
});

test('with the previous relays, adding pools never moves an existing relay', () => {
  const nats = Array.from({ length: 20 }, (_, i) => `n${i}`);
  const t1 = topology([...nats.map((x) => nat(x)), open('c1'), open('c2')]);
  const r1 = relays(t1).relayOf;
  const t2 = topology([...nats.map((x) => nat(x)), open('a0'), open('c1'), open('c2'), open('z9')]);
  const r2 = relays(t2, Object.fromEntries(r1)).relayOf;
  for (const x of nats) assert.equal(r2.get(x), r1.get(x), x);
});

test('hub mode: every spoke relays through the hub, NAT or not; relays-for lists them', () => {
  const t = topology([nat('n1'), open('c1'), open('hub')], { connectivity: { mode: 'hub', hub: 'hub', rules: [] } });
  const r = relays(t, { n1: 'c1' });
  assert.deepEqual(Object.fromEntries(r.relayOf), { c1: 'hub', n1: 'hub' });
  assert.deepEqual(r.relaysFor.get('hub'), ['c1', 'n1']);
});

test('no usable relay: a finding when there are NAT peers to reach', () => {
  const r = relays(topology([nat('n1'), nat('n2')]));
  assert.equal(r.relayOf.size, 0);
  assert.deepEqual(r.findings.map((f) => `${f.code} ${f.pool}`), ['no-relay n1', 'no-relay n2']);
  assert.deepEqual(relays(topology([nat('n1')])).findings, [], 'a single NAT pool needs no relay');
});

test('a named relay that is unusable gives a finding and a fallback', () => {
  const r = relays(topology([nat('n1', 'n2'), nat('n2'), open('c1')]));
  assert.equal(r.relayOf.get('n1'), 'c1');
  assert.deepEqual(r.findings.map((f) => f.code), ['invalid-relay']);
});

test('plan: relay and relays-for annotations, and the previous relay annotation is honoured', () => {
  const t = topology([nat('n1'), nat('n2'), open('c1'), open('c2')]);
  const nodes = [node('x', 'c1')];
  const first = plan(input(t, nodes));
  const byName = new Map(first.gateways.map((g) => [g.metadata.name, g]));
  const r1 = byName.get('n1')!.metadata.annotations!['corvid.dev/relay'];
  assert.ok(r1 === 'c1' || r1 === 'c2');
  assert.equal(byName.get('n2')!.metadata.annotations!['corvid.dev/relay'], r1, 'one automatic relay for both');
  const relayGw = byName.get(r1)!;
  assert.deepEqual(JSON.parse(relayGw.metadata.annotations!['corvid.dev/relays-for']), ['n1', 'n2']);
  // Pretend the live Gateways recorded the other relay: it stays, for both.
  const other = r1 === 'c1' ? 'c2' : 'c1';
  const live = first.gateways.map((g) => (g.metadata.name === 'n1' || g.metadata.name === 'n2' ? { ...g, metadata: { ...g.metadata, annotations: { ...g.metadata.annotations, 'corvid.dev/relay': other } } } : g));
  const second = plan(input(t, nodes, { previous: live }));
  for (const n of ['n1', 'n2']) assert.equal(second.gateways.find((g) => g.metadata.name === n)!.metadata.annotations!['corvid.dev/relay'], other, n);
});
