// The iproute2 adapter against a real network namespace: apply, read back, drift, remove exactly what is ours.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Iproute, diffIpState, parseRoutes, type IpState } from '../../src/adapters/iproute/iproute.ts';
import { NetnsLab, ip, netnsSkipReason, sweepStaleNamespaces } from '../support/netns.ts';

const skip = netnsSkipReason();
const lab = new NetnsLab();
let ns = '';
const TABLE = 9027;

before(async () => {
  if (skip) return;
  sweepStaleNamespaces();
  ns = await lab.addNs('ipr');
  const peer = await lab.addNs('peer');
  await lab.veth(ns, 'eth0', peer, 'eth0');
  await lab.addr(ns, 'eth0', '10.77.0.1/24');
  await lab.addr(ns, 'eth0', 'fd00:77::1/64');
});

after(async () => {
  await lab.cleanup();
});

const desired: IpState = {
  routes: [
    { family: 4, dst: '10.80.0.0/16', via: '10.77.0.2' },
    { family: 4, dst: '10.81.1.0/24', via: '10.77.0.2' },
    { family: 6, dst: 'fd00:80::/64', via: 'fd00:77::2' },
  ],
  rules: [
    { family: 4, priority: 9027, table: TABLE },
    { family: 6, priority: 9027, table: TABLE },
  ],
};

function sortRoutes<T extends { family: number; dst: string }>(rs: T[]): T[] {
  return [...rs].sort((a, b) => a.family - b.family || a.dst.localeCompare(b.dst));
}

test('iproute adapter: empty table reads as empty, apply, read back, idempotent', { skip }, async () => {
  const ipr = new Iproute({ table: TABLE, netns: ns });
  const empty = await ipr.read();
  assert.deepEqual(empty, { routes: [], rules: [] });

  const first = await ipr.apply(desired);
  assert.deepEqual(first.errors, []);
  assert.equal(first.changes.length, 5);

  const got = await ipr.read();
  assert.deepEqual(
    sortRoutes(got.routes).map((r) => ({ family: r.family, dst: r.dst, via: r.via, plain: r.plain })),
    sortRoutes(desired.routes).map((r) => ({ ...r, plain: true })),
  );
  assert.deepEqual(got.rules.map((r) => [r.family, r.priority, r.plain]).sort(), [[4, 9027, true], [6, 9027, true]]);

  // Nothing to do the second time.
  const again = await ipr.apply(desired);
  assert.deepEqual(again, { changes: [], errors: [] });
});

test('iproute adapter: drift is repaired (deleted route, changed next hop, extra route, deleted rule)', { skip }, async () => {
  const ipr = new Iproute({ table: TABLE, netns: ns });
  await ipr.apply(desired);
  await ip('-n', ns, 'route', 'del', '10.80.0.0/16', 'table', String(TABLE));
  await ip('-n', ns, 'route', 'replace', '10.81.1.0/24', 'via', '10.77.0.3', 'table', String(TABLE));
  await ip('-n', ns, 'route', 'add', '10.99.0.0/16', 'via', '10.77.0.9', 'table', String(TABLE));
  await ip('-n', ns, 'route', 'add', 'blackhole', '10.98.0.0/16', 'table', String(TABLE));
  await ip('-n', ns, '-6', 'rule', 'del', 'pref', '9027', 'lookup', String(TABLE));

  const res = await ipr.apply(desired);
  assert.deepEqual(res.errors, []);
  assert.deepEqual(
    res.changes.map((c) => c.line).sort(),
    [
      'route del 10.98.0.0/16 table 9027',
      'route del 10.99.0.0/16 table 9027',
      'route replace 10.80.0.0/16 via 10.77.0.2 table 9027',
      'route replace 10.81.1.0/24 via 10.77.0.2 table 9027',
      'rule add pref 9027 lookup 9027',
    ],
  );
  const after = await ipr.apply(desired);
  assert.deepEqual(after.changes, []);
});

test('iproute adapter: removeAll removes only ours; a foreign table, foreign rules and main survive', { skip }, async () => {
  const ipr = new Iproute({ table: TABLE, netns: ns });
  await ipr.apply(desired);
  await ip('-n', ns, 'route', 'add', '10.80.0.0/16', 'via', '10.77.0.2', 'table', '100');
  await ip('-n', ns, 'route', 'add', '10.82.0.0/16', 'via', '10.77.0.2');
  await ip('-n', ns, 'rule', 'add', 'pref', '9027', 'lookup', '100');
  await ip('-n', ns, 'rule', 'add', 'pref', '500', 'to', '10.80.0.0/16', 'lookup', '100');
  // A stale rule pointing at our table from another priority (an earlier run with another --rule-priority) is ours.
  await ip('-n', ns, 'rule', 'add', 'pref', '9100', 'lookup', String(TABLE));

  const res = await ipr.removeAll();
  assert.deepEqual(res.errors, []);
  assert.deepEqual(await ipr.read(), { routes: [], rules: [] });

  const t100 = parseRoutes(await ip('-n', ns, '-json', 'route', 'show', 'table', '100'), 4);
  assert.deepEqual(t100.map((r) => r.dst), ['10.80.0.0/16']);
  const main = parseRoutes(await ip('-n', ns, '-json', 'route', 'show'), 4).map((r) => r.dst);
  assert.ok(main.includes('10.82.0.0/16'));
  assert.ok(main.includes('10.77.0.0/24'));
  const rules = JSON.parse(await ip('-n', ns, '-json', 'rule', 'show')) as Array<{ priority: number; table: string }>;
  assert.ok(rules.some((r) => r.priority === 9027 && r.table === '100'));
  assert.ok(rules.some((r) => r.priority === 500 && r.table === '100'));
  assert.ok(rules.some((r) => r.table === 'main'));
  assert.ok(!rules.some((r) => r.table === String(TABLE)));
});

test('iproute adapter: a failing line is reported and does not stop the rest of the batch', { skip }, async () => {
  const ipr = new Iproute({ table: TABLE, netns: ns });
  const res = await ipr.apply({
    routes: [
      { family: 4, dst: '10.90.0.0/16', via: '192.0.2.1' }, // not on-link: the kernel refuses
      { family: 4, dst: '10.91.0.0/16', via: '10.77.0.2' },
    ],
    rules: [],
  });
  assert.equal(res.errors.length, 1);
  assert.match(res.errors[0], /^route replace 10\.90\.0\.0\/16 via 192\.0\.2\.1 table 9027: .*gateway/i);
  const got = await ipr.read();
  assert.deepEqual(got.routes.map((r) => r.dst), ['10.91.0.0/16']);
  await ipr.removeAll();
});

test('diffIpState: IPv4 route via an IPv6 next hop uses "via inet6"', () => {
  const changes = diffIpState({ routes: [], rules: [] }, { routes: [{ family: 4, dst: '10.1.0.0/16', via: 'fd00::1' }], rules: [] }, 9027);
  assert.deepEqual(changes.map((c) => c.line), ['route replace 10.1.0.0/16 via inet6 fd00::1 table 9027']);
});

test('Iproute refuses charon\'s table 220 and kernel tables', () => {
  assert.throws(() => new Iproute({ table: 220 }), /charon/);
  assert.throws(() => new Iproute({ table: 254 }), /reserved/);
  assert.throws(() => new Iproute({ table: 0 }), /must be|reserved/);
});

test('iproute adapter: routable() answers from the full lookup, per family; link down takes the routes with it', { skip }, async () => {
  const ipr = new Iproute({ table: TABLE, netns: ns });
  // An unreachable route is a route the kernel refuses to use: not routable.
  await ip('-n', ns, 'route', 'add', 'unreachable', '10.99.0.0/16');
  try {
    const wanted = ['10.77.0.9', '10.99.0.1', '198.51.100.7', 'FD00:77::9', '2001:db8::1'];
    assert.deepEqual([...(await ipr.routable(wanted))].sort(), ['10.77.0.9', 'FD00:77::9'], 'the connected prefixes only, answered in the caller\'s spelling');
    assert.deepEqual([...(await ipr.routable([]))], []);
    await ip('-n', ns, 'link', 'set', 'eth0', 'down');
    assert.deepEqual([...(await ipr.routable(wanted))], [], 'the uplink is down: no route to anything');
  } finally {
    await ip('-n', ns, 'link', 'set', 'eth0', 'up');
    await ip('-n', ns, 'route', 'del', 'unreachable', '10.99.0.0/16');
  }
});
