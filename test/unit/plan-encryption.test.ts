// Encryption published per pool: the agents' merge of two planned Gateways (encryptionFor) is the topology's
// linkPolicy, from both sides; a change of one pool's override rewrites only that pool's Gateway, a links[] change
// only the two Gateways of its pair.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { encryptionFor, mayPeer, readGatewayLinks } from '../../src/gateway/annotations.ts';
import type { Gateway } from '../../src/gateway/types.ts';
import { plan } from '../../src/plan/planner.ts';
import { loadTopology } from '../../src/topology/index.ts';
import { linkPolicy } from '../../src/topology/policy.ts';
import type { EncryptionOverride, LinkOverride, Topology } from '../../src/topology/types.ts';
import { DEFAULT_ENCRYPTION, input, pool, topology } from './plan-fixtures.ts';

const POOLS = ['p0', 'p1', 'p2', 'p3', 'p4', 'p5'];
const IKE = ['aes256-sha256-modp2048', 'aes256-sha384-modp3072', 'aes128-sha256-ecp256'];
const ESP = ['aes256-sha256', 'aes256gcm16', 'aes128gcm16'];

// ---------------------------------------------------------------- arbitraries

/** A partial override: each field set or not; backend none always comes with allowInsecure (the validator asks). */
const arbOverride: fc.Arbitrary<EncryptionOverride> = fc
  .record(
    {
      ikeProposals: fc.subarray(IKE, { minLength: 1 }),
      espProposals: fc.subarray(ESP, { minLength: 1 }),
      pskSecretRef: fc.constantFrom('psk-a', 'psk-b').map((name) => ({ name, key: 'psk' })),
      backend: fc.constantFrom('ipsec' as const, 'none' as const),
      allowInsecure: fc.boolean(),
    },
    { requiredKeys: [] },
  )
  .map((o) => (o.backend === 'none' ? { ...o, allowInsecure: true } : o));

interface Draft {
  pools: Array<{ name: string; behindNAT: boolean; encryption?: EncryptionOverride }>;
  denies: Array<[string, string]>;
  links: Array<{ pools: [string, string]; encryption: EncryptionOverride }>;
  hub: boolean;
}

const arbDraft: fc.Arbitrary<Draft> = fc.integer({ min: 2, max: POOLS.length }).chain((n) => {
  const names = POOLS.slice(0, n);
  return fc.record({
    pools: fc.tuple(
      ...names.map((name) =>
        fc.record({ behindNAT: fc.boolean(), encryption: fc.option(arbOverride, { nil: undefined }) }).map((p) => ({ name, ...p })),
      ),
    ),
    denies: fc.array(fc.tuple(fc.constantFrom(...names, '*'), fc.constantFrom(...names)), { maxLength: 2 }),
    links: fc.uniqueArray(
      fc.tuple(fc.constantFrom(...names), fc.constantFrom(...names), arbOverride).filter(([a, b]) => a !== b),
      { maxLength: n * 2, selector: ([a, b]) => (a < b ? `${a}|${b}` : `${b}|${a}`) },
    ).map((ls) => ls.map(([a, b, encryption]) => ({ pools: [a, b] as [string, string], encryption }))),
    hub: fc.boolean(),
  });
});

/** The draft as a topology document (JSON is YAML), through the real loader: only what the validator accepts. */
function load(d: Draft): Topology | undefined {
  const doc = {
    apiVersion: 'corvid.dev/v1alpha1',
    kind: 'Topology',
    metadata: { name: 'prop' },
    spec: {
      encryption: { pskSecretRef: { name: 'psk', key: 'psk' } },
      connectivity: {
        mode: d.hub ? 'hub' : 'mesh',
        ...(d.hub ? { hub: d.pools[0].name } : {}),
        rules: d.denies.map((pools) => ({ action: 'deny', pools })),
      },
      pools: d.pools.map((p, i) => ({
        name: p.name,
        nodeSelector: { matchLabels: { 'topology.corvid.dev/pool': p.name } },
        gateways: [{ node: `${p.name}-gw`, ...(p.behindNAT && !(d.hub && i === 0) ? {} : { publicIP: `203.0.113.${i + 1}` }) }],
        ...(p.behindNAT && !(d.hub && i === 0) ? { behindNAT: true } : {}),
        ...(p.encryption ? { encryption: p.encryption } : {}),
      })),
      links: d.links,
    },
  };
  const r = loadTopology(JSON.stringify(doc), 'prop.yaml');
  return r.ok ? r.topology : undefined;
}

/** A normalised topology built directly: pool overrides may disagree on a field (the validator refuses that), so
 * that the name order of the merge decides values and a wrong order shows. */
function direct(d: Draft): Topology {
  return topology(
    d.pools.map((p) => pool(p.name, [], { behindNAT: p.behindNAT, ...(p.encryption ? { encryption: p.encryption } : {}) })),
    {
      connectivity: { mode: 'mesh', rules: d.denies.map((pools) => ({ action: 'deny' as const, pools })) },
      links: d.links as LinkOverride[],
    },
  );
}

/** For every pair both planned Gateways allow: the agents' policy from either side equals linkPolicy. */
function agentsAgreeWithLinkPolicy(t: Topology): void {
  const gws = plan(input(t, [])).gateways;
  const links = gws.map(readGatewayLinks);
  for (const l of links) assert.deepEqual(l.problems, []);
  for (const a of links) {
    for (const b of links) {
      if (a.pool === b.pool || !mayPeer(a, b.pool) || !mayPeer(b, a.pool)) continue;
      const want = linkPolicy(t, a.pool, b.pool);
      assert.deepEqual(encryptionFor(a, b), want, `${a.pool} -> ${b.pool}`);
    }
  }
}

test('property: on valid topologies, the policy the agents merge from two planned Gateways is linkPolicy, from both sides', () => {
  let checked = 0;
  fc.assert(
    fc.property(arbDraft, (d) => {
      const t = load(d);
      fc.pre(t !== undefined);
      checked++;
      agentsAgreeWithLinkPolicy(t);
    }),
    { numRuns: 300, maxSkipsPerRun: 1000 },
  );
  assert.ok(checked >= 300);
});

test('property: the same with conflicting pool overrides (the name order of the merge decides)', () => {
  fc.assert(
    fc.property(arbDraft, (d) => agentsAgreeWithLinkPolicy(direct(d))),
    { numRuns: 300 },
  );
});

// ---------------------------------------------------------------- what a change rewrites

function changed(before: Topology, after: Topology): string[] {
  const a = new Map(plan(input(before, [])).gateways.map((g: Gateway) => [g.metadata.name, JSON.stringify(g)]));
  const b = plan(input(after, [])).gateways;
  assert.deepEqual(b.map((g) => g.metadata.name), [...a.keys()]);
  return b.filter((g) => JSON.stringify(g) !== a.get(g.metadata.name)).map((g) => g.metadata.name);
}

const BASE = topology(
  [
    pool('cloud', [], { encryption: { espProposals: ['aes256gcm16'] } }),
    pool('factory', [], { encryption: { ikeProposals: ['aes256-sha384-modp3072'] } }),
    pool('lab', []),
    pool('store', [], { encryption: { espProposals: ['aes256gcm16'] } }),
    pool('warehouse', []),
  ],
  { links: [{ pools: ['cloud', 'store'], encryption: { ikeProposals: ['aes256-sha384-modp3072'] } }] },
);

const withPool = (t: Topology, name: string, encryption: EncryptionOverride | undefined): Topology => ({
  ...t,
  pools: t.pools.map((p) => {
    if (p.name !== name) return p;
    const { encryption: _old, ...rest } = p;
    return encryption ? { ...rest, encryption } : rest;
  }),
});

test('a change of one pool\'s override rewrites only that pool\'s Gateway', () => {
  assert.deepEqual(changed(BASE, withPool(BASE, 'cloud', { espProposals: ['aes128gcm16'] })), ['cloud']);
  assert.deepEqual(changed(BASE, withPool(BASE, 'lab', { backend: 'none', allowInsecure: true })), ['lab']);
  assert.deepEqual(changed(BASE, withPool(BASE, 'factory', undefined)), ['factory']);
  assert.deepEqual(changed(BASE, withPool(BASE, 'store', { espProposals: ['aes256gcm16'] })), [], 'no change, no write');
});

test('a links[] change rewrites exactly the two Gateways of the pair', () => {
  const links = (ls: LinkOverride[]): Topology => ({ ...BASE, links: ls });
  assert.deepEqual(changed(BASE, links([{ pools: ['cloud', 'store'], encryption: { ikeProposals: ['aes128-sha256-ecp256'] } }])), ['cloud', 'store']);
  assert.deepEqual(changed(BASE, links([...BASE.links, { pools: ['warehouse', 'factory'], encryption: { espProposals: ['aes128gcm16'] } }])), ['factory', 'warehouse']);
  assert.deepEqual(changed(BASE, links([])), ['cloud', 'store']);
  // The global defaults are on every Gateway: changing them rewrites all.
  assert.deepEqual(changed(BASE, { ...BASE, encryption: { ...DEFAULT_ENCRYPTION, espProposals: ['aes128gcm16'] } }).length, 5);
});

test('determinism: equal topologies give byte-identical encryption annotations whatever the order of links[]', () => {
  const t = { ...BASE, links: [...BASE.links, { pools: ['lab', 'cloud'] as [string, string], encryption: { espProposals: ['aes128gcm16'] } }] };
  const u = { ...t, links: [...t.links].reverse() };
  assert.equal(JSON.stringify(plan(input(t, [])).gateways), JSON.stringify(plan(input(u, [])).gateways));
});
