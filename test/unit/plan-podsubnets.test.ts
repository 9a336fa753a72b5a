// Pod subnets from Calico IPAM's BlockAffinities (src/plan/podsubnets.ts), the source choice, and the planner using
// them in status.nodes[].subnets. Pure.

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { calicoPodSubnets, nodePodCIDRs, resolvePodSubnetSource, type CalicoIpamState } from '../../src/plan/podsubnets.ts';
import { plan } from '../../src/plan/planner.ts';
import { formatPrefix, parsePrefix } from '../../src/nodeplan/cidr.ts';
import { MTU_ANNOTATION } from '../../src/gateway/keys.ts';
import { MAX_MTU, MIN_MTU } from '../../src/gateway/annotations.ts';
import { TOPOLOGY_SCHEMA } from '../../src/topology/schema.ts';
import { loadTopology } from '../../src/topology/index.ts';
import { input, node, pool, topology } from './plan-fixtures.ts';

const V1 = 'crd.projectcalico.org/v1';
const V3 = 'projectcalico.org/v3';

/** A BlockAffinity as the API server sends it; v1 carries deleted as a string, v3 as a boolean. */
function ba(
  nodeName: string,
  cidr: string,
  o: { group?: typeof V1 | typeof V3; state?: string; deleted?: unknown; type?: string; name?: string } = {},
): Record<string, unknown> {
  const group = o.group ?? V1;
  const deleted = 'deleted' in o ? o.deleted : group === V1 ? 'false' : false;
  const spec: Record<string, unknown> = { cidr, node: nodeName, state: o.state ?? 'confirmed', type: o.type ?? 'host' };
  if (deleted !== undefined) spec.deleted = deleted;
  return { apiVersion: group, kind: 'BlockAffinity', metadata: { name: o.name ?? `${nodeName}-${cidr.replace(/[.:/]/g, '-')}` }, spec };
}

const subnets = (affinities: unknown[], nodes?: string[]) => calicoPodSubnets(affinities, nodes ? new Set(nodes) : undefined);
const asObject = (m: Map<string, string[]>) => Object.fromEntries(m);

describe('calicoPodSubnets', () => {
  test('both API groups and both forms of deleted, in both groups', () => {
    const r = subnets([
      ba('a', '10.1.0.0/26', { group: V1, deleted: 'false' }),
      ba('a', '10.1.1.0/26', { group: V1, deleted: false }),
      ba('b', '10.2.0.0/26', { group: V3, deleted: false }),
      ba('b', '10.2.1.0/26', { group: V3, deleted: 'false' }),
      ba('c', '10.3.0.0/26', { group: V1, deleted: 'true' }),
      ba('c', '10.3.1.0/26', { group: V3, deleted: true }),
      ba('c', '10.3.2.0/26', { group: V1, deleted: 'True' }),
      ba('d', '10.4.0.0/26', { group: V1, deleted: '' }),
    ]);
    assert.deepEqual(asObject(r.byNode), { a: ['10.1.0.0/26', '10.1.1.0/26'], b: ['10.2.0.0/26', '10.2.1.0/26'], d: ['10.4.0.0/26'] });
    assert.deepEqual(r.findings, []);
  });

  test('only confirmed blocks of type host count', () => {
    const r = subnets([
      ba('a', '10.1.0.0/26', { state: 'pending' }),
      ba('a', '10.1.1.0/26', { state: 'pendingDeletion' }),
      ba('a', '10.1.2.0/26', { state: '' }),
      ba('a', '10.1.3.0/26', { type: 'virtual' }),
      ba('a', '10.1.4.0/26', { type: '' }),
      ba('a', '10.1.5.0/26'),
    ]);
    assert.deepEqual(asObject(r.byNode), { a: ['10.1.4.0/26', '10.1.5.0/26'] });
  });

  test('sibling blocks of one node aggregate to their parent, repeatedly, and never wider', () => {
    const r = subnets([
      ba('a', '10.0.0.0/26'),
      ba('a', '10.0.0.64/26'),
      ba('a', '10.0.0.128/26'),
      ba('a', '10.0.0.192/26'),
      // Adjacent but not siblings (10.0.1.64/26 + 10.0.1.128/26 would be 10.0.1.0/24's middle): stay apart.
      ba('a', '10.0.1.64/26'),
      ba('a', '10.0.1.128/26'),
      // A sibling that belongs to another node is not merged.
      ba('b', '10.0.2.0/26'),
      ba('a', '10.0.2.64/26'),
    ]);
    assert.deepEqual(asObject(r.byNode), { a: ['10.0.0.0/24', '10.0.1.64/26', '10.0.1.128/26', '10.0.2.64/26'], b: ['10.0.2.0/26'] });
  });

  test('a block inside another block of the same node is covered by it; duplicates across groups count once', () => {
    const r = subnets([ba('a', '10.0.0.0/26', { group: V1 }), ba('a', '10.0.0.0/26', { group: V3 }), ba('a', '10.0.0.16/28')]);
    assert.deepEqual(asObject(r.byNode), { a: ['10.0.0.0/26'] });
    assert.deepEqual(r.findings, []);
  });

  test('IPv6 blocks, canonical text, IPv4 first', () => {
    const r = subnets([
      ba('a', 'fd00:10:244:0:0:0:0:0/122'),
      ba('a', 'fd00:10:244::40/122'),
      ba('a', '192.168.7.0/26'),
      ba('b', 'FD00:10:244::1:0/122'),
    ]);
    assert.deepEqual(asObject(r.byNode), { a: ['192.168.7.0/26', 'fd00:10:244::/121'], b: ['fd00:10:244::1:0/122'] });
  });

  test('overlapping blocks of two nodes: both left out, one finding naming both', () => {
    const r = subnets([ba('b', '10.0.0.0/26'), ba('a', '10.0.0.0/26'), ba('a', '10.0.1.0/26'), ba('c', '10.0.2.0/26'), ba('d', '10.0.2.16/28')]);
    assert.deepEqual(asObject(r.byNode), { a: ['10.0.1.0/26'] });
    assert.deepEqual(
      r.findings.map((f) => [f.code, f.severity, f.node]),
      [
        ['calico-block-overlap', 'error', 'a'],
        ['calico-block-overlap', 'error', 'c'],
      ],
    );
    assert.match(r.findings[0].message, /10\.0\.0\.0\/26 of node a and 10\.0\.0\.0\/26 of node b overlap/);
    assert.match(r.findings[1].message, /node c .* node d/);
  });

  test('blocks of a node not in the inventory are ignored with a finding; without an inventory nothing is checked', () => {
    const r = subnets([ba('a', '10.0.0.0/26'), ba('gone', '10.0.1.0/26', { name: 'gone-block' })], ['a']);
    assert.deepEqual(asObject(r.byNode), { a: ['10.0.0.0/26'] });
    assert.deepEqual(r.findings.map((f) => [f.code, f.node]), [['calico-block-unknown-node', 'gone']]);
    assert.match(r.findings[0].message, /BlockAffinity gone-block: block 10\.0\.1\.0\/26 belongs to node gone/);
    assert.deepEqual(asObject(subnets([ba('gone', '10.0.1.0/26')]).byNode), { gone: ['10.0.1.0/26'] });
  });

  test('malformed objects never throw and never route: each is a calico-block-invalid finding', () => {
    const bad: unknown[] = [
      null,
      'text',
      [],
      { apiVersion: V1, kind: 'BlockAffinity', metadata: { name: 'no-spec' } },
      { apiVersion: V1, kind: 'IPAMBlock', metadata: { name: 'wrong-kind' }, spec: { cidr: '10.9.0.0/26', node: 'a', state: 'confirmed', deleted: 'false' } },
      { apiVersion: 'example.com/v1', kind: 'BlockAffinity', metadata: { name: 'wrong-group' }, spec: { cidr: '10.9.0.0/26', node: 'a', state: 'confirmed' } },
      ba('a', '10.9.1.0/26', { name: 'no-cidr' }),
      ba('a', 'not-a-cidr', { name: 'bad-cidr' }),
      ba('a', '10.9.2.0', { name: 'bare-address' }),
      ba('a', '10.9.3.1/26', { name: 'host-bits' }),
      ba('a', '10.9.4.0/33', { name: 'too-long' }),
      ba('a', '0.0.0.0/0', { name: 'everything' }),
      ba('a', '::/64', { name: 'wide-v6' }),
      ba('', '10.9.5.0/26', { name: 'no-node' }),
      ba('a', '10.9.6.0/26', { name: 'bad-deleted', deleted: 'maybe' }),
      ba('a', '10.9.7.0/26', { name: 'numeric-deleted', deleted: 0 }),
    ];
    delete ((bad[6] as { spec: Record<string, unknown> }).spec).cidr;
    const r = subnets([...bad, ba('a', '10.0.0.0/26')]);
    assert.deepEqual(asObject(r.byNode), { a: ['10.0.0.0/26'] });
    // The three non-objects say the same thing: one finding.
    assert.equal(r.findings.length, bad.length - 2);
    assert.ok(r.findings.every((f) => f.code === 'calico-block-invalid' && f.severity === 'warning'), JSON.stringify(r.findings));
    const text = r.findings.map((f) => f.message).join('\n');
    for (const name of ['no-spec', 'wrong-kind', 'wrong-group', 'no-cidr', 'bad-cidr', 'bare-address', 'host-bits', 'too-long', 'everything', 'wide-v6', 'no-node', 'bad-deleted', 'numeric-deleted']) {
      assert.match(text, new RegExp(`BlockAffinity ${name}:`));
    }
    assert.match(text, /host-bits: spec\.cidr 10\.9\.3\.1\/26 has host bits set/);
  });

  test('the same result whatever the input order (property)', () => {
    const block = fc.record({
      node: fc.constantFrom('a', 'b', 'c'),
      v6: fc.boolean(),
      index: fc.integer({ min: 0, max: 15 }),
      len: fc.integer({ min: 0, max: 3 }),
      group: fc.constantFrom(V1, V3),
      state: fc.constantFrom('confirmed', 'confirmed', 'confirmed', 'pending'),
    });
    fc.assert(
      fc.property(fc.array(block, { maxLength: 30 }), fc.integer(), (blocks, seed) => {
        const objs = blocks.map((b) => {
          const len = (b.v6 ? 118 : 22) + b.len * 2;
          const p = parsePrefix(b.v6 ? `fd00::${(b.index << (128 - len)).toString(16)}/${len}` : '10.0.0.0/32')!;
          const prefix = b.v6 ? p : { family: 4 as const, value: 0x0a000000n + (BigInt(b.index) << BigInt(32 - len)), length: len };
          return ba(b.node, formatPrefix(prefix), { group: b.group, state: b.state });
        });
        const shuffled = [...objs];
        let s = seed >>> 0;
        for (let i = shuffled.length - 1; i > 0; i--) {
          s = (Math.imul(s, 1103515245) + 12345) >>> 0;
          const j = s % (i + 1);
          [shuffled[i], shuffled[j]] = [shuffled[j], shuffled[i]];
        }
        const a = subnets(objs);
        const b = subnets(shuffled);
        assert.deepEqual(asObject(b.byNode), asObject(a.byNode));
        assert.deepEqual(b.findings, a.findings);
        // Exactness: every address of the output is in some input block of the node and in no block of another node.
        const allOut = [...a.byNode.entries()].flatMap(([n, list]) => list.map((t) => ({ n, p: parsePrefix(t)! })));
        for (let i = 0; i < allOut.length; i++) {
          for (let j = i + 1; j < allOut.length; j++) {
            const x = allOut[i].p;
            const y = allOut[j].p;
            if (x.family !== y.family) continue;
            const bits = x.family === 4 ? 32 : 128;
            const len = BigInt(bits - Math.min(x.length, y.length));
            assert.ok(x.value >> len !== y.value >> len, `output prefixes overlap: ${formatPrefix(x)} ${formatPrefix(y)}`);
          }
        }
        for (const { n, p } of allOut) {
          const bits = p.family === 4 ? 32 : 128;
          const size = 1n << BigInt(bits - p.length);
          // Sum of the node's confirmed input blocks inside p (deduplicated, nested ones skipped) covers p exactly.
          const inside = new Map<string, { value: bigint; length: number }>();
          for (const o of objs as { spec: { node: string; cidr: string; state: string } }[]) {
            if (o.spec.node !== n || o.spec.state !== 'confirmed') continue;
            const q = parsePrefix(o.spec.cidr)!;
            if (q.family !== p.family || q.length < p.length || q.value >> BigInt(bits - p.length) !== p.value >> BigInt(bits - p.length)) continue;
            inside.set(formatPrefix(q), q);
          }
          const list = [...inside.values()].sort((u, v) => (u.value < v.value ? -1 : u.value > v.value ? 1 : u.length - v.length));
          let covered = 0n;
          let end = -1n;
          for (const q of list) {
            const qEnd = q.value + (1n << BigInt(bits - q.length)) - 1n;
            if (q.value > end) covered += qEnd - q.value + 1n;
            else if (qEnd > end) covered += qEnd - end;
            if (qEnd > end) end = qEnd;
          }
          assert.equal(covered, size, `${formatPrefix(p)} of node ${n} is wider than its blocks`);
        }
      }),
      { numRuns: 300 },
    );
  });
});

describe('resolvePodSubnetSource', () => {
  const none: CalicoIpamState = { served: [], blockAffinities: [] };
  const servedEmpty: CalicoIpamState = { served: [V1], blockAffinities: [] };
  const withBlocks: CalicoIpamState = { served: [V1, V3], blockAffinities: [ba('a', '10.0.0.0/26')] };

  test('auto: calico only when the resource is served and holds at least one BlockAffinity', () => {
    assert.equal(resolvePodSubnetSource('auto', { calico: none }).source, 'podCIDR');
    assert.equal(resolvePodSubnetSource('auto', { calico: servedEmpty }).source, 'podCIDR');
    const d = resolvePodSubnetSource('auto', { calico: withBlocks });
    assert.deepEqual([d.source, d.decidedBy], ['calico', 'auto']);
    assert.equal(d.reason, 'auto: Calico BlockAffinities found (crd.projectcalico.org/v1, projectcalico.org/v3)');
    assert.match(resolvePodSubnetSource('auto', { calico: servedEmpty }).reason, /no BlockAffinities/);
    assert.match(resolvePodSubnetSource('auto', { calico: none }).reason, /serves no Calico BlockAffinity resource/);
  });

  test('the topology decides over auto; the flag decides over the topology', () => {
    assert.deepEqual(resolvePodSubnetSource('calico', { calico: none }).source, 'calico');
    assert.deepEqual(resolvePodSubnetSource('podCIDR', { calico: withBlocks }).decidedBy, 'topology');
    assert.equal(resolvePodSubnetSource('podCIDR', { calico: withBlocks }).source, 'podCIDR');
    const d = resolvePodSubnetSource('podCIDR', { override: 'calico', calico: withBlocks });
    assert.deepEqual([d.source, d.decidedBy], ['calico', 'flag']);
    assert.equal(resolvePodSubnetSource('calico', { override: 'podCIDR', calico: withBlocks }).source, 'podCIDR');
  });

  test('no input at all: podCIDR (callers that know nothing of Calico)', () => {
    assert.equal(resolvePodSubnetSource('calico', undefined).source, 'podCIDR');
  });
});

describe('the planner with Calico subnets', () => {
  const t = topology([pool('a', ['a1']), pool('b', ['b1'])]);
  const nodes = [
    node('a1', 'a', { podCIDRs: ['10.244.1.0/24'] }),
    node('a2', 'a', { podCIDRs: ['10.244.2.0/24'] }),
    node('b1', 'b', { podCIDRs: ['10.244.3.0/24'] }),
  ];
  const calico: CalicoIpamState = {
    served: [V1],
    blockAffinities: [ba('a1', '192.168.0.0/26'), ba('a1', '192.168.0.64/26'), ba('b1', '192.168.5.0/26'), ba('b1', 'fd00::/122', { group: V1 })],
  };
  const subnetsOf = (r: ReturnType<typeof plan>) =>
    Object.fromEntries(r.gateways.flatMap((g) => (g.status?.nodes ?? []).map((n) => [n.nodeName, n.subnets])));

  test('auto with BlockAffinities: status.nodes carry the blocks, not podCIDRs; the decision is reported', () => {
    const r = plan(input(t, nodes, { podSubnets: { calico } }));
    assert.deepEqual(subnetsOf(r), { a1: ['192.168.0.0/25'], a2: [], b1: ['192.168.5.0/26', 'fd00::/122'] });
    assert.equal(r.podSubnets.source, 'calico');
    const missing = r.findings.filter((f) => f.code === 'node-without-pod-cidr');
    assert.deepEqual(missing.map((f) => f.node), ['a2']);
    assert.match(missing[0].message, /no confirmed Calico IPAM block/);
  });

  test('podCIDR forced by the flag, or no Calico: podCIDRs as before', () => {
    const want = { a1: ['10.244.1.0/24'], a2: ['10.244.2.0/24'], b1: ['10.244.3.0/24'] };
    assert.deepEqual(subnetsOf(plan(input(t, nodes, { podSubnets: { override: 'podCIDR', calico } }))), want);
    assert.deepEqual(subnetsOf(plan(input(t, nodes, { podSubnets: { calico: { served: [], blockAffinities: [] } } }))), want);
    assert.deepEqual(subnetsOf(plan(input(t, nodes))), want);
  });

  test('calico forced while nothing is served: no subnets, and a finding that says why', () => {
    const r = plan(input({ ...t, podSubnets: { source: 'calico' } }, nodes, { podSubnets: { calico: { served: [], blockAffinities: [] } } }));
    assert.deepEqual(subnetsOf(r), { a1: [], a2: [], b1: [] });
    assert.ok(r.findings.some((f) => f.code === 'calico-not-served'));
  });

  test('Calico findings are planner findings, sorted; a block of an unknown node reaches no Gateway', () => {
    const r = plan(input(t, nodes, { podSubnets: { calico: { served: [V1], blockAffinities: [...calico.blockAffinities, ba('zz', '192.168.9.0/26'), ba('a2', '192.168.5.0/26')] } } }));
    assert.deepEqual(subnetsOf(r), { a1: ['192.168.0.0/25'], a2: [], b1: ['fd00::/122'] });
    assert.deepEqual(
      r.findings.filter((f) => f.code.startsWith('calico-')).map((f) => `${f.code}:${f.node}`),
      ['calico-block-overlap:a2', 'calico-block-unknown-node:zz'],
    );
  });
});

describe('pool mtu', () => {
  test('published as corvid.dev/mtu on that pool only, when set', () => {
    assert.equal(MTU_ANNOTATION, 'corvid.dev/mtu');
    const t = topology([pool('a', ['a1'], { mtu: 1400 }), pool('b', ['b1'])]);
    const r = plan(input(t, [node('a1', 'a'), node('b1', 'b')]));
    const ann = Object.fromEntries(r.gateways.map((g) => [g.metadata.name, g.metadata.annotations?.[MTU_ANNOTATION]]));
    assert.deepEqual(ann, { a: '1400', b: undefined });
  });

  test('the schema bounds of a pool mtu are the bounds the agents accept in corvid.dev/mtu', () => {
    const pool = (TOPOLOGY_SCHEMA.$defs as Record<string, { properties: Record<string, { minimum: number; maximum: number }> }>).pool;
    assert.deepEqual([pool.properties.mtu.minimum, pool.properties.mtu.maximum], [MIN_MTU, MAX_MTU]);
  });

  test('the topology accepts 576..9000 whole numbers only', () => {
    const doc = (mtu: string) =>
      `apiVersion: corvid.dev/v1alpha1\nkind: Topology\nmetadata: {name: t}\nspec:\n  encryption: {pskSecretRef: {name: p, key: k}}\n  pools:\n    - {name: a, nodeSelector: {matchLabels: {p: a}}, gateways: [{node: a1}], mtu: ${mtu}}\n`;
    for (const ok of ['576', '1400', '9000']) {
      const r = loadTopology(doc(ok), 't.yaml');
      assert.ok(r.ok, ok);
      assert.equal(r.ok && r.topology.pools[0].mtu, Number(ok));
    }
    for (const bad of ['575', '9001', '1400.5', '"1400"']) {
      const r = loadTopology(doc(bad), 't.yaml');
      assert.ok(!r.ok, bad);
      assert.match(r.ok ? '' : r.errors.map((e) => e.message).join('\n'), /whole number/);
    }
    const none = loadTopology(doc('1400').replace(', mtu: 1400', ''), 't.yaml');
    assert.ok(none.ok && !('mtu' in none.topology.pools[0]));
  });

  test('spec.podSubnets.source defaults to auto and takes podCIDR or calico', () => {
    const doc = (extra: string) =>
      `apiVersion: corvid.dev/v1alpha1\nkind: Topology\nmetadata: {name: t}\nspec:\n  encryption: {pskSecretRef: {name: p, key: k}}\n${extra}  pools:\n    - {name: a, nodeSelector: {matchLabels: {p: a}}, gateways: [{node: a1}]}\n`;
    const get = (extra: string) => {
      const r = loadTopology(doc(extra), 't.yaml');
      return r.ok ? r.topology.podSubnets.source : r.errors.map((e) => e.message).join('; ');
    };
    assert.equal(get(''), 'auto');
    assert.equal(get('  podSubnets: {}\n'), 'auto');
    assert.equal(get('  podSubnets: {source: calico}\n'), 'calico');
    assert.equal(get('  podSubnets: {source: podCIDR}\n'), 'podCIDR');
    assert.match(get('  podSubnets: {source: cilium}\n'), /auto|podCIDR|calico/);
  });
});

test('nodePodCIDRs: canonical CIDRs pass; not a CIDR, /33, host bits, wider than /8 (IPv6 /16) are problems, quoted within bounds', () => {
  const { subnets, problems } = nodePodCIDRs(['10.244.1.0/24', 'fd00:1::/64', 'garbage', '10.0.0.0/33', '10.244.1.5/24', '0.0.0.0/0', '::/8', 'x'.repeat(5000)]);
  assert.deepEqual(subnets, ['10.244.1.0/24', 'fd00:1::/64']);
  assert.deepEqual(problems.slice(0, 5), [
    'podCIDR "garbage" is not a CIDR',
    'podCIDR "10.0.0.0/33" is not a CIDR',
    'podCIDR "10.244.1.5/24" has host bits set',
    'podCIDR "0.0.0.0/0" is wider than /8',
    'podCIDR "::/8" is wider than /16',
  ]);
  assert.ok(problems[5].length < 100, 'a long value is cut');
});
