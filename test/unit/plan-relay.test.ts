import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chooseRelays, fnv1a32, relayWeight } from '../../src/plan/relay.ts';
import { peersAllowed, peerTable } from '../../src/plan/peers.ts';
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

test('rendezvous: the highest FNV-1a weight of "<nat>|<relay>" wins; never simply the last or first by name', () => {
  const opens = ['c1', 'c2', 'c3', 'c4', 'c5'];
  const t = topology([nat('n1'), nat('n2'), nat('n3'), ...opens.map(open)]);
  const r = relays(t);
  for (const n of ['n1', 'n2', 'n3']) {
    const best = [...opens].sort((a, b) => relayWeight(n, b) - relayWeight(n, a) || (a < b ? -1 : 1))[0];
    assert.equal(r.relayOf.get(n), best);
  }
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
  const relayGw = byName.get(r1)!;
  assert.ok(JSON.parse(relayGw.metadata.annotations!['corvid.dev/relays-for']).includes('n1'));
  // Pretend the live Gateway recorded the other relay: it stays.
  const other = r1 === 'c1' ? 'c2' : 'c1';
  const live = first.gateways.map((g) => (g.metadata.name === 'n1' ? { ...g, metadata: { ...g.metadata, annotations: { ...g.metadata.annotations, 'corvid.dev/relay': other } } } : g));
  const second = plan(input(t, nodes, { previous: live }));
  assert.equal(second.gateways.find((g) => g.metadata.name === 'n1')!.metadata.annotations!['corvid.dev/relay'], other);
});
