// The meaning checks walk pool pairs one class pair at a time (src/topology/semantic.ts, classes()). Property: on any
// topology they find exactly what the plain walk over every pair of pools finds. Plus the budget on pair findings.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { stringify } from 'yaml';
import { sortErrors } from '../../src/topology/errors.ts';
import { buildModel } from '../../src/topology/normalise.ts';
import { parseYaml } from '../../src/topology/parse.ts';
import { checkMeaning, MAX_PAIR_FINDINGS } from '../../src/topology/semantic.ts';
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
/** What rules, links, relays and the hub name: mostly the first pools (or a pool that is not there), so the others form classes. */
const REFERENCED = ['p0', 'p1', 'p2', 'p3', 'p12'];
const ENCRYPTIONS = [undefined, { espProposals: ['aes256gcm16-prfsha384'] }, { backend: 'none' }, { backend: 'none', allowInsecure: true }, { ikeProposals: ['aes128-sha1-modp1024'] }];

/** Topologies of up to 10 pools, with few kinds of pool so that classes hold several pools, rules, links, relays. */
const topology = fc
  .record({
    count: fc.integer({ min: 2, max: 10 }),
    nat: fc.array(fc.boolean(), { minLength: 10, maxLength: 10 }),
    relay: fc.array(fc.option(fc.constantFrom(...REFERENCED), { freq: 5 }), { minLength: 10, maxLength: 10 }),
    enc: fc.array(fc.nat({ max: ENCRYPTIONS.length - 1 }), { minLength: 10, maxLength: 10 }),
    rules: fc.array(fc.record({ action: fc.constantFrom('allow', 'deny'), pools: fc.tuple(fc.constantFrom('*', ...REFERENCED), fc.constantFrom('*', ...REFERENCED)) }), { maxLength: 4 }),
    links: fc.array(fc.record({ pools: fc.tuple(fc.constantFrom(...REFERENCED), fc.constantFrom(...REFERENCED)), enc: fc.nat({ max: ENCRYPTIONS.length - 1 }) }), { maxLength: 3 }),
    hub: fc.option(fc.constantFrom(...REFERENCED), { freq: 3 }),
    insecure: fc.boolean(),
  })
  .map((g) => {
    const names = POOL_NAMES.slice(0, g.count);
    const doc = {
      apiVersion: 'corvid.dev/v1alpha1',
      kind: 'Topology',
      metadata: { name: 'prop' },
      spec: {
        encryption: { backend: 'ipsec', pskSecretRef: { name: 'psk', key: 'psk' }, ...(g.insecure ? { allowInsecure: true } : {}) },
        connectivity: { ...(g.hub !== null ? { mode: 'hub', hub: g.hub } : {}), rules: g.rules },
        links: g.links.map((l) => ({ pools: l.pools, encryption: ENCRYPTIONS[l.enc] ?? { allowInsecure: true } })),
        pools: names.map((name, i) => ({
          name,
          nodeSelector: { matchLabels: { pool: name } },
          gateways: [{ node: `${name}-gw` }],
          ...(g.nat[i] ? { behindNAT: true } : {}),
          ...(g.relay[i] !== null ? { relay: g.relay[i] } : {}),
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
