// The xfrm adapter's pure parts: `ip -s xfrm policy` and `ip -s xfrm state` as iproute2 6.1 prints them (taken from a
// 6.1 kernel, keys replaced), and the commands that remove exactly what was found.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parsePolicies, parseStates, removalCommands } from '../../src/adapters/xfrm/xfrm.ts';

const T = (s: string): number => Date.parse(`${s.replace(' ', 'T')}Z`) / 1000;

const LIFETIME = (add: string): string => `\tlifetime config:
\t  limit: soft (INF)(bytes), hard (INF)(bytes)
\t  limit: soft (INF)(packets), hard (INF)(packets)
\t  expire add: soft 0(sec), hard 0(sec)
\t  expire use: soft 0(sec), hard 0(sec)
\tlifetime current:
\t  0(bytes), 0(packets)
\t  add ${add} use -`;

/** A policy's template as ip prints it with -s. */
const TMPL = (src: string, dst: string, reqid: number, mode = 'tunnel'): string => `\ttmpl src ${src} dst ${dst}
\t\tproto esp spi 0x00000000(0) reqid ${reqid}(0x${reqid.toString(16).padStart(8, '0')}) mode ${mode}
\t\tlevel required share any 
\t\tenc-mask ffffffff auth-mask ffffffff comp-mask ffffffff`;

const POLICIES = `src 10.244.1.0/24 dst 10.245.1.0/24 uid 0
\tdir out action allow index 1 priority 375423 ptype main share any flag  (0x00000000)
${LIFETIME('2026-12-06 10:47:56')}
${TMPL('10.0.0.11', '203.0.113.10', 1)}
src 0.0.0.0/0 dst 0.0.0.0/0 uid 0
\tsocket in action allow index 531 priority 0 ptype main share any flag  (0x00000000)
${LIFETIME('2026-12-06 10:50:01')}
src 10.0.0.0/8 dst 10.2.0.0/16 proto tcp dport 80 uid 0
\tdir out action allow index 17 priority 0 ptype main share any flag  (0x00000000)
${LIFETIME('2026-12-06 10:51:04')}
${TMPL('1.1.1.1', '2.2.2.2', 9, 'transport')}
src 10.0.0.0/8 dst 10.1.0.0/16 uid 0
\tdir out action allow index 9 priority 0 ptype main share any flag  (0x00000000)
${LIFETIME('2026-12-06 10:51:04')}
${TMPL('1.1.1.1', '2.2.2.2', 8)}
\tif_id 0x9
src 10.5.0.0/16 dst 10.6.0.0/16 uid 0
\tdir out action block index 25 priority 0 ptype main share any flag  (0x00000000)
${LIFETIME('2026-12-06 10:51:04')}
src fd00:1::/64 dst fd00:2::/64 uid 0
\tdir in action allow index 8 priority 0 ptype main share any flag  (0x00000000)
${LIFETIME('2026-12-06 10:51:04')}
\tmark 0x5/0xff 
${TMPL('2001:db8::2', '2001:db8::1', 7)}
`;

test('parsePolicies: selectors, direction, action, mark, if_id, templates and the add time (UTC)', () => {
  const p = parsePolicies(POLICIES);
  assert.deepEqual(p[0], {
    src: '10.244.1.0/24',
    dst: '10.245.1.0/24',
    selectorExtra: '',
    dir: 'out',
    action: 'allow',
    ptype: 'main',
    addedAt: T('2026-12-06 10:47:56'),
    templates: [{ src: '10.0.0.11', dst: '203.0.113.10', proto: 'esp', mode: 'tunnel', reqid: 1 }],
  });
  assert.deepEqual(
    p.map((x) => [x.dir, x.action, x.selectorExtra, x.mark, x.ifId, x.templates.map((t) => `${t.proto}/${t.mode}/${t.reqid}`).join()]),
    [
      ['out', 'allow', '', undefined, undefined, 'esp/tunnel/1'],
      ['socket in', 'allow', '', undefined, undefined, ''],
      ['out', 'allow', 'proto tcp dport 80', undefined, undefined, 'esp/transport/9'],
      ['out', 'allow', '', undefined, '0x9', 'esp/tunnel/8'],
      ['out', 'block', '', undefined, undefined, ''],
      ['in', 'allow', '', '0x5/0xff', undefined, 'esp/tunnel/7'],
    ],
  );
  assert.equal(p[5].src, 'fd00:1::/64');
});

test('parsePolicies: without -s (no add time), and nothing from text that is not a policy', () => {
  const p = parsePolicies('src 10.7.0.0/16 dst 10.8.0.0/16 \n\tdir fwd priority 0 ptype main \n\ttmpl src 1.1.1.1 dst 2.2.2.2\n\t\tproto esp reqid 10 mode tunnel\n\t\tlevel use \n');
  assert.deepEqual(p, [{ src: '10.7.0.0/16', dst: '10.8.0.0/16', selectorExtra: '', dir: 'fwd', action: 'allow', ptype: 'main', templates: [{ src: '1.1.1.1', dst: '2.2.2.2', proto: 'esp', mode: 'tunnel', reqid: 10 }] }]);
  assert.deepEqual(parsePolicies(''), []);
  assert.deepEqual(parsePolicies('Error: something\n'), []);
});

const KEY = '0x' + 'ab'.repeat(32);
const STATES = `src 10.0.0.9 dst 10.0.0.1
\tproto esp spi 0xc8f1dc8d(3371293837) reqid 9(0x00000009) mode tunnel
\treplay-window 0 seq 0x00000000 flag  (0x00000000)
\tanti-replay context: seq 0x0, oseq 0x0, bitmap 0x00000000
\tsel src 10.0.0.9/32 dst 10.0.0.1/32 uid 0
${LIFETIME('2026-12-06 10:51:17')}
\tstats:
\t  replay-window 0 replay 0 failed 0
src 10.0.0.1 dst 10.0.0.3
\tproto esp spi 0x00000300(768) reqid 5(0x00000005) mode tunnel
\treplay-window 0 seq 0x00000000 flag  (0x00000000)
\tmark 0x5/0xff 
\tauth-trunc hmac(sha256) ${KEY} (256 bits) 128
\tenc cbc(aes) ${KEY} (256 bits)
\tanti-replay context: seq 0x0, oseq 0x0, bitmap 0x00000000
\tif_id 0x7
\tsel src 0.0.0.0/0 dst 0.0.0.0/0 uid 0
${LIFETIME('2026-12-06 10:51:17')}
\tstats:
\t  replay-window 0 replay 0 failed 0
src 2001:db8::1 dst 2001:db8::2
\tproto esp spi 0x00000200(512) reqid 4(0x00000004) mode tunnel
\treplay-window 0 seq 0x00000000 flag  (0x00000000)
\taead rfc4106(gcm(aes)) ${KEY} (160 bits) 128
\tanti-replay context: seq 0x0, oseq 0x0, bitmap 0x00000000
\tsel src ::/0 dst ::/0 uid 0
${LIFETIME('2026-12-06 10:51:16')}
\tstats:
\t  replay-window 0 replay 0 failed 0
src 10.0.0.1 dst 10.0.0.2
\tproto esp spi 0xc1a2b3c4(3248665540) reqid 3(0x00000003) mode tunnel
\treplay-window 0 seq 0x00000000 flag af-unspec (0x00100000)
\tauth-trunc hmac(sha256) ${KEY} (256 bits) 128
\tenc cbc(aes) ${KEY} (256 bits)
\tencap type espinudp sport 4500 dport 4500 addr 0.0.0.0
\tanti-replay context: seq 0x0, oseq 0x0, bitmap 0x00000000
${LIFETIME('2026-12-06 10:51:15')}
\tstats:
\t  replay-window 0 replay 0 failed 0
`;

test('parseStates: addresses, SPI, reqid, mode, mark, if_id, add time; no key is kept', () => {
  const s = parseStates(STATES);
  assert.deepEqual(s, [
    { src: '10.0.0.9', dst: '10.0.0.1', proto: 'esp', spi: '0xc8f1dc8d', reqid: 9, mode: 'tunnel', addedAt: T('2026-12-06 10:51:17') },
    { src: '10.0.0.1', dst: '10.0.0.3', proto: 'esp', spi: '0x00000300', reqid: 5, mode: 'tunnel', mark: '0x5/0xff', ifId: '0x7', addedAt: T('2026-12-06 10:51:17') },
    { src: '2001:db8::1', dst: '2001:db8::2', proto: 'esp', spi: '0x00000200', reqid: 4, mode: 'tunnel', addedAt: T('2026-12-06 10:51:16') },
    { src: '10.0.0.1', dst: '10.0.0.2', proto: 'esp', spi: '0xc1a2b3c4', reqid: 3, mode: 'tunnel', addedAt: T('2026-12-06 10:51:15') },
  ]);
  assert.doesNotMatch(JSON.stringify(s), /abab/);
});

test('removalCommands: routes (by family), then policies by selector and direction, then states by SPI', () => {
  const [policy] = parsePolicies(POLICIES);
  const [, , v6] = parseStates(STATES);
  assert.deepEqual(
    removalCommands({ routes: [{ family: 4, dst: '10.245.1.0/24' }, { family: 6, dst: 'fd00:2::/64' }], policies: [policy], states: [v6] }).map((a) => a.join(' ')),
    [
      '-4 route del 10.245.1.0/24 table 220',
      '-6 route del fd00:2::/64 table 220',
      'xfrm policy delete src 10.244.1.0/24 dst 10.245.1.0/24 dir out',
      'xfrm state delete src 2001:db8::1 dst 2001:db8::2 proto esp spi 0x00000200',
    ],
  );
  assert.deepEqual(removalCommands({ routes: [], policies: [], states: [] }), []);
});
