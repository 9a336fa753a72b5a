// Hostile input: values that validate must mean what they say. Bounds on durations and counts, one IP grammar for the
// validator and the planner, strongSwan algorithm keywords in proposals, and Secret key names that are not key material.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { formatTopologyError, loadTopology } from '../../src/topology/index.ts';
import { parseDuration } from '../../src/topology/duration.ts';
import { isUsableIP } from '../../src/topology/ip.ts';
import { isIP } from '../../src/plan/inventory.ts';
import { doc, expectErrors, expectValid, FILE, pool } from './topology-helpers.ts';

const POOLS = [pool('cloud'), pool('edge')];
const RUNS = { numRuns: 300, seed: 20261206 };

function errorsOf(text: string): string[] {
  const r = loadTopology(text, FILE);
  return r.ok ? [] : r.errors.map(formatTopologyError);
}

describe('durations and counts have bounds', () => {
  it('refuses durations outside their bounds, naming the bound', () => {
    expectErrors(doc({ election: 'heartbeatTimeout: 99999999999999999999999999999h\nminHealthy: 61m', pools: POOLS }), [
      ['heartbeatTimeout: ^9999', 'spec.election.heartbeatTimeout', 'must be at most 5m'],
      ['minHealthy: ^61m', 'spec.election.minHealthy', 'must be at most 1h'],
    ]);
    expectErrors(doc({ election: 'heartbeatTimeout: 999ms', pools: POOLS }), [
      ['heartbeatTimeout: ^999ms', 'spec.election.heartbeatTimeout', 'must be at least 1s'],
    ]);
    const t = expectValid(doc({ election: 'heartbeatTimeout: 5m\nminHealthy: 0s', pools: POOLS }));
    assert.deepEqual([t.election.heartbeatTimeoutSeconds, t.election.minHealthySeconds], [300, 0]);
    expectValid(doc({ election: 'heartbeatTimeout: 1s\nminHealthy: 1h', pools: POOLS }));
  });

  it('refuses replicas that are huge, fractional, infinite or not a number', () => {
    for (const v of ['1e308', '17', '0', '.inf', '-.inf', '.nan', '2.5']) {
      expectErrors(doc({ election: `replicas: ${v}`, pools: POOLS }), [
        [`replicas: ^${v}`, 'spec.election.replicas', 'must be a whole number from 1 to 16'],
      ]);
    }
    assert.equal(expectValid(doc({ election: 'replicas: 16', pools: [pool('cloud', '', '[{node: a}, {node: b}, {node: c}, {node: d}, {node: e}, {node: f}, {node: g}, {node: h}, {node: i}, {node: j}, {node: k}, {node: l}, {node: m}, {node: n}, {node: o}, {node: p}]')] })).election.replicas, 16);
  });

  it('refuses ports and MTUs out of range or not finite', () => {
    for (const v of ['0', '65536', '1e308', '.inf', '.nan']) {
      expectErrors(doc({ pools: [pool('cloud', '', `[{node: c1, publicPort: ${v}}]`)] }), [
        [`publicPort: ^${v}`, 'spec.pools[0].gateways[0].publicPort', 'must be a port number from 1 to 65535'],
      ]);
      expectErrors(doc({ pools: [pool('cloud', `mtu: ${v}`)] }), [[`mtu: ^${v}`, 'spec.pools[0].mtu', 'must be a whole number from 576 to 9000']]);
    }
  });

  it('parses durations exactly or not at all (no overflow, no rounding)', () => {
    assert.equal(parseDuration('9007199254740991ms'), 9007199254740.991);
    assert.equal(parseDuration('9007199254740992ms'), undefined);
    assert.equal(parseDuration('99999999999999999999999999999h'), undefined);
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: 10n ** 30n }), fc.constantFrom(['h', 3_600_000n], ['m', 60_000n], ['s', 1000n], ['ms', 1n]), (n, [unit, size]) => {
        const got = parseDuration(`${n}${unit}`);
        const ms = n * size;
        if (ms > BigInt(Number.MAX_SAFE_INTEGER)) assert.equal(got, undefined);
        else assert.equal(got, Number(ms) / 1000);
      }),
      RUNS,
    );
  });

  it('property: a heartbeatTimeout validates exactly when it is within 1s..5m', () => {
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: 10n ** 25n }), fc.constantFrom(['m', 60n], ['s', 1n], ['ms', 0n]), (n, [unit, secs]) => {
        const text = doc({ election: `heartbeatTimeout: ${n}${unit}`, pools: POOLS });
        const seconds = unit === 'ms' ? Number(n) / 1000 : Number(n * secs);
        const inside = seconds >= 1 && seconds <= 300;
        assert.equal(errorsOf(text).length === 0, inside, text);
      }),
      RUNS,
    );
  });
});

describe('one IP grammar for validator and planner', () => {
  it('refuses a publicIP with a zone, which the planner would leave out', () => {
    expectErrors(doc({ pools: [pool('cloud', '', '[{node: c1, publicIP: "2001:db8::10%eth0"}]')] }), [
      [
        'publicIP: ^"2001',
        'spec.pools[0].gateways[0].publicIP',
        'must be an address without a %zone: a zone names an interface of one host and means nothing to other pools; remove it',
      ],
    ]);
    expectValid(doc({ pools: [pool('cloud', '', '[{node: c1, publicIP: "2001:db8::10"}]')] }));
  });

  it('property: the validator accepts a publicIP exactly when the planner uses it', () => {
    const alphabet = fc.constantFrom(...'0123456789abcdef:.%'.split(''), '::', '1.2.3.4', 'ffff', '%eth0', '256', '01');
    const junk = fc.array(alphabet, { maxLength: 12 }).map((a) => a.join(''));
    const zoned = fc.tuple(fc.ipV6(), fc.constantFrom('eth0', '1', 'lo')).map(([a, z]) => `${a}%${z}`);
    fc.assert(
      fc.property(fc.oneof(fc.ipV4(), fc.ipV6(), zoned, junk), (ip) => {
        assert.equal(isIP, isUsableIP);
        const text = doc({ pools: [pool('cloud', '', `[{node: c1, publicIP: ${JSON.stringify(ip)}}]`)] });
        const ipErrors = errorsOf(text).filter((e) => e.includes('.publicIP:'));
        assert.equal(ipErrors.length === 0, isUsableIP(ip), `${ip}: ${ipErrors.join('; ')}`);
      }),
      RUNS,
    );
  });
});
