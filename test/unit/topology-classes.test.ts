// The meaning checks walk pool pairs one class pair at a time (src/topology/semantic.ts, classes()). Property: on any
// topology they find exactly what the plain walk over every pair of pools finds. Plus the budget on pair findings.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { stringify } from 'yaml';
import { sortErrors } from '../../src/topology/errors.ts';
import { buildModel } from '../../src/topology/normalise.ts';
import { parseYaml } from '../../src/topology/parse.ts';
import { checkMeaning, MAX_PAIR_FINDINGS, poolClasses } from '../../src/topology/semantic.ts';
import { finalise } from '../../src/topology/normalise.ts';
import { linkPolicy, matchingRule, pairRoute, relayCandidates } from '../../src/topology/policy.ts';
import { loadTopology } from '../../src/topology/index.ts';

/** Both walks' findings, sorted and as text. */
function findingsBoth(text: string): [string[], string[]] {
  const parsed = parseYaml(text, 't.yaml');
  assert.ok(parsed.ok);
  const model = buildModel(parsed.data);
  const show = (f: ReturnType<typeof checkMeaning>) =>
    [...sortErrors(f.errors).map((e) => `E ${e.line}:${e.col} ${e.path} ${e.message}`), ...sortErrors(f.warnings).map((e) => `W ${e.line}:${e.col} ${e.path} ${e.message}`)];
  return [show(checkMeaning(parsed.data, model, parsed.locator)), show(checkMeaning(parsed.data, model, parsed.locator, true))];
}

const POOL_NAMES = ['p0', 'p1', 'p2', 'p3', 'p4', 'p5', 'p6', 'p7', 'p8', 'p9'];
/** What links, relays and the hub name: mostly the first pools, rarely a pool that is not there. */
const REFERENCED = ['p0', 'p0', 'p0', 'p1', 'p1', 'p2', 'p3', 'p12'];
/** Pool overrides: mostly none, so that classes hold several pools; a few that conflict or are refused. */
const ENCRYPTIONS = [undefined, undefined, undefined, undefined, { espProposals: ['aes256gcm16-prfsha384'] }, { backend: 'none', allowInsecure: true }, { backend: 'none' }, { ikeProposals: ['aes128-sha1-modp1024'] }];
const LINK_ENCRYPTIONS = [{ allowInsecure: true }, { espProposals: ['aes256gcm16-prfsha384'] }, { backend: 'none' }];

/** Topologies of up to 10 pools: many pools behind NAT, automatic relays, rules naming any pool, some links. */
const topology = fc
  .record({
    count: fc.integer({ min: 7, max: 10 }),
    cloudNAT: fc.boolean(),
    natDensity: fc.constantFrom(0, 1, 2),
    nat: fc.array(fc.boolean(), { minLength: 10, maxLength: 10 }),
    relay: fc.array(fc.option(fc.constantFrom(...REFERENCED), { freq: 2 }), { minLength: 10, maxLength: 10 }),
    enc: fc.array(fc.nat({ max: ENCRYPTIONS.length - 1 }), { minLength: 10, maxLength: 10 }),
    rules: fc.array(fc.record({ action: fc.constantFrom('allow', 'deny', 'deny'), pools: fc.tuple(fc.constantFrom('*', '*', ...POOL_NAMES.slice(0, 7)), fc.constantFrom('*', ...POOL_NAMES.slice(0, 7))) }), { maxLength: 6 }),
    links: fc.array(fc.record({ pools: fc.tuple(fc.constantFrom(...REFERENCED), fc.constantFrom(...POOL_NAMES)), enc: fc.nat({ max: LINK_ENCRYPTIONS.length - 1 }) }), { maxLength: 2 }),
    hub: fc.option(fc.constantFrom(...REFERENCED), { freq: 4 }),
    insecure: fc.boolean(),
  })
  .map((g) => {
    const names = POOL_NAMES.slice(0, g.count);
    // p0 and p1 are mostly outside NAT (clouds that can relay); of the others a quarter, half or three quarters are behind it.
    const natOther = (i: number): boolean => [g.nat[i] && g.nat[(i + 3) % 10], g.nat[i], g.nat[i] || g.nat[(i + 3) % 10]][g.natDensity];
    const nat = (i: number): boolean => (i < 2 ? g.cloudNAT && g.nat[i] : natOther(i));
    const doc = {
      apiVersion: 'corvid.dev/v1alpha1',
      kind: 'Topology',
      metadata: { name: 'prop' },
      spec: {
        encryption: { backend: 'ipsec', pskSecretRef: { name: 'psk', key: 'psk' }, ...(g.insecure ? { allowInsecure: true } : {}) },
        connectivity: { ...(g.hub !== null ? { mode: 'hub', hub: g.hub } : {}), rules: g.rules },
        links: g.links.map((l) => ({ pools: l.pools, encryption: LINK_ENCRYPTIONS[l.enc] })),
        pools: names.map((name, i) => ({
          name,
          nodeSelector: { matchLabels: { pool: name } },
          gateways: [{ node: `${name}-gw` }],
          ...(nat(i) ? { behindNAT: true } : {}),
          ...(nat(i) && g.relay[i] !== null ? { relay: g.relay[i] } : {}),
          ...(ENCRYPTIONS[g.enc[i]] ? { encryption: ENCRYPTIONS[g.enc[i]] } : {}),
        })),
      },
    };
    return stringify(doc);
  });

describe('pool classes', () => {
  it('find exactly what the walk over every pair of pools finds', () => {
    fc.assert(
      fc.property(topology, (text) => {
        const [classes, pairwise] = findingsBoth(text);
        assert.deepEqual(classes, pairwise);
      }),
      { numRuns: 2000, seed: 20261206 },
    );
  });

  it('are sound: every pair of two classes that no rule names side by side gets the same verdict, rule, route and link policy', () => {
    fc.assert(
      fc.property(topology, (text) => {
        const parsed = parseYaml(text, 't.yaml');
        assert.ok(parsed.ok);
        const model = buildModel(parsed.data);
        const t = finalise(model);
        const { classes, exceptional } = poolClasses(parsed.data, model, parsed.locator);
        const pools = new Map(t.pools.map((p) => [p.name, p]));
        const manyRelays = (p: string): boolean => relayCandidates(t, p).length > 1;
        // Oriented by class (x from the first class, y from the second), with the pools' names left out.
        const signature = (x: string, y: string): string => {
          const route = pairRoute(t, x, y);
          return JSON.stringify([route, matchingRule(t, x, y), linkPolicy(t, x, y), manyRelays(x), manyRelays(y), pools.get(x)!.relay ?? null, pools.get(y)!.relay ?? null]);
        };
        classes.forEach((ci, i) => {
          classes.slice(i).forEach((cj, dj) => {
            const seen = new Set<string>();
            for (const x of ci) for (const y of cj) if (x !== y && !exceptional(x, y)) seen.add(signature(x, y));
            assert.ok(seen.size <= 1, `classes ${JSON.stringify(ci)} and ${JSON.stringify(cj)} (${i}, ${i + dj}) hold pairs that differ: ${[...seen].join(' / ')}`);
          });
        });
      }),
      { numRuns: 1000, seed: 20261206 },
    );
  });

  it('list at most MAX_PAIR_FINDINGS pair findings per check and count the rest in one finding', () => {
    // 300 pools behind NAT and none outside: every pair (44,850 of them) has no relay.
    const pools = Array.from({ length: 300 }, (_, i) => `  - {name: s${i}, behindNAT: true, nodeSelector: {matchLabels: {pool: s${i}}}, gateways: [{node: s${i}-gw}]}`);
    const text = `apiVersion: corvid.dev/v1alpha1\nkind: Topology\nmetadata: {name: nat}\nspec:\n  encryption: {backend: none, allowInsecure: true}\n  pools:\n${pools.join('\n')}\n`;
    const r = loadTopology(text, 't.yaml');
    assert.equal(r.ok, false);
    const errors = r.ok ? [] : r.errors;
    const pairErrors = errors.filter((e) => /no pool can relay between them/.test(e.message));
    assert.equal(pairErrors.length, MAX_PAIR_FINDINGS);
    const rest = errors.filter((e) => /more pairs of pools have problems/.test(e.message));
    assert.equal(rest.length, 1);
    assert.match(rest[0].message, new RegExp(`^${(300 * 299) / 2 - MAX_PAIR_FINDINGS} more pairs`));
  });
});
