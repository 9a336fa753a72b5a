// One grammar for "is this an address": topology/ip.ts. nodeplan/cidr.ts turns accepted text into numbers and
// must accept exactly the same text (issue 19: the copies disagreed on leading zeros and zones).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { isUsableIP } from '../../src/topology/ip.ts';
import { parseAddress, parsePrefix } from '../../src/nodeplan/cidr.ts';

test('the two agree on hand-picked forms, leading zeros and zones included', () => {
  const cases: Array<[string, boolean]> = [
    ['10.0.0.1', true], ['010.0.0.1', false], ['10.0.0.01', false], ['256.0.0.1', false], ['1.2.3', false],
    ['::', true], ['::1', true], ['fd00::1', true], ['FD00::A', true], ['::ffff:10.0.0.1', true], ['1:2:3:4:5:6:7:8', true],
    ['1:2:3:4:5:6:7::', true], ['1::2::3', false], ['1:2:3:4:5:6:7:8:9', false], ['fe80::1%eth0', false], ['12345::1', false],
    ['::ffff:010.0.0.1', false], ['', false], [':', false], ['1.2.3.4/24', false],
  ];
  for (const [s, ok] of cases) {
    assert.equal(isUsableIP(s), ok, `isUsableIP(${JSON.stringify(s)})`);
    assert.equal(parseAddress(s) !== undefined, ok, `parseAddress(${JSON.stringify(s)})`);
  }
  assert.equal(parsePrefix('010.0.0.0/8'), undefined, 'a prefix uses the same address grammar');
});

test('property: parseAddress accepts exactly what isUsableIP accepts', () => {
  const part = fc.oneof(
    fc.integer({ min: 0, max: 300 }).map(String),
    fc.constantFrom('0', '00', '01', '255', '256'),
    fc.integer({ min: 0, max: 0x1ffff }).map((n) => n.toString(16)),
    fc.constantFrom('', 'ffff', 'FFFF', '0000', 'g1', 'eth0'),
  );
  const address = fc.oneof(
    fc.array(part, { minLength: 1, maxLength: 5 }).map((p) => p.join('.')),
    fc.array(part, { minLength: 1, maxLength: 10 }).map((p) => p.join(':')),
    fc.tuple(fc.array(part, { maxLength: 5 }), fc.array(part, { maxLength: 5 })).map(([a, b]) => `${a.join(':')}::${b.join(':')}`),
    fc.tuple(fc.array(part, { maxLength: 6 }), fc.array(part, { minLength: 4, maxLength: 4 })).map(([a, b]) => `${a.join(':')}::${b.join('.')}`),
    fc.tuple(fc.array(part, { maxLength: 4 }), part).map(([a, z]) => `${a.join(':')}::1%${z}`),
  );
  fc.assert(
    fc.property(address, (s) => {
      assert.equal(parseAddress(s) !== undefined, isUsableIP(s), JSON.stringify(s));
    }),
    { numRuns: 5000 },
  );
});
