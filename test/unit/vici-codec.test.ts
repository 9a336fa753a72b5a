// Byte-level vectors for the VICI codec; expected bytes are written out by hand from the spec.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  PacketType,
  SegmentReader,
  ViciCodecError,
  decodeMessage,
  decodePacket,
  encodeMessage,
  encodeSegment,
  frameSegment,
  type ViciPacket,
} from '../../src/agent/vici/index.ts';
import { connToMessage, parseSaMessage, parseUpdownEvent } from '../../src/agent/vici/index.ts';

/** Numbers are bytes; strings are their ASCII bytes. */
function bytes(...parts: (number | string)[]): Buffer {
  return Buffer.concat(parts.map((p) => (typeof p === 'number' ? Buffer.of(p) : Buffer.from(p, 'ascii'))));
}

const VERSION_REQUEST = bytes(0, 0, 0, 9, /* CMD_REQUEST */ 0, 7, 'version');

// The README's encoding example.
const README_MESSAGE = bytes(
  3, 4, 'key1', 0, 6, 'value1',
  1, 8, 'section1',
  1, 11, 'sub-section',
  3, 4, 'key2', 0, 6, 'value2',
  2,
  4, 5, 'list1',
  5, 0, 5, 'item1',
  5, 0, 5, 'item2',
  6,
  2,
);
const README_OBJECT = {
  key1: 'value1',
  section1: { 'sub-section': { key2: 'value2' }, list1: ['item1', 'item2'] },
};

describe('encoding', () => {
  test('version request packet', () => {
    assert.deepEqual(encodeSegment({ type: PacketType.CMD_REQUEST, name: 'version', message: {} }), VERSION_REQUEST);
  });

  test('message with a key-value, nested sections and a list', () => {
    assert.deepEqual(encodeMessage(README_OBJECT), README_MESSAGE);
  });

  test('event registration and a request carrying a message', () => {
    assert.deepEqual(
      encodeSegment({ type: PacketType.EVENT_REGISTER, name: 'list-sa' }),
      bytes(0, 0, 0, 9, 3, 7, 'list-sa'),
    );
    assert.deepEqual(
      encodeSegment({ type: PacketType.CMD_REQUEST, name: 'unload-conn', message: { name: 'gw' } }),
      bytes(0, 0, 0, 23, 0, 11, 'unload-conn', 3, 4, 'name', 0, 2, 'gw'),
    );
  });

  test('Buffer values are raw bytes; UTF-8 strings count bytes, not characters', () => {
    assert.deepEqual(encodeMessage({ k: Buffer.of(0, 255) }), bytes(3, 1, 'k', 0, 2, 0, 255));
    assert.deepEqual(encodeMessage({ k: 'é' }), bytes(3, 1, 'k', 0, 2, 0xc3, 0xa9));
  });

  test('empty list and empty section', () => {
    assert.deepEqual(encodeMessage({ l: [], s: {} }), bytes(4, 1, 'l', 6, 1, 1, 's', 2));
  });

  test('undefined values are left out', () => {
    const msg = { a: 'x', b: undefined } as unknown as Record<string, string>;
    assert.deepEqual(encodeMessage(msg), bytes(3, 1, 'a', 0, 1, 'x'));
  });

  test('packets without payload are a lone type byte', () => {
    assert.deepEqual(encodeSegment({ type: PacketType.EVENT_CONFIRM }), bytes(0, 0, 0, 1, 5));
  });
});

describe('decoding', () => {
  test('README message round-trips to nested objects and string lists', () => {
    assert.deepEqual(decodeMessage(README_MESSAGE), README_OBJECT);
  });

  test('a CMD_RESPONSE', () => {
    const payload = bytes(1, 3, 7, 'success', 0, 2, 'no', 3, 6, 'errmsg', 0, 4, 'nope');
    assert.deepEqual(decodePacket(payload), { type: PacketType.CMD_RESPONSE, message: { success: 'no', errmsg: 'nope' } });
  });

  test('an EVENT, CMD_UNKNOWN and EVENT_CONFIRM', () => {
    assert.deepEqual(decodePacket(bytes(7, 3, 'log', 3, 3, 'msg', 0, 2, 'hi')), {
      type: PacketType.EVENT,
      name: 'log',
      message: { msg: 'hi' },
    });
    assert.deepEqual(decodePacket(bytes(2)), { type: PacketType.CMD_UNKNOWN });
    assert.deepEqual(decodePacket(bytes(5)), { type: PacketType.EVENT_CONFIRM });
    assert.deepEqual(decodePacket(bytes(6)), { type: PacketType.EVENT_UNKNOWN });
  });

  test('values decode as UTF-8; insertion order is kept', () => {
    const msg = decodeMessage(bytes(3, 1, 'z', 0, 2, 0xc3, 0xa9, 3, 1, 'a', 0, 0, 3, 1, 'm', 0, 1, 'x'));
    assert.deepEqual(Object.keys(msg), ['z', 'a', 'm']);
    assert.equal(msg.z, 'é');
    assert.equal(msg.a, '');
  });

  test('a "__proto__" key stays an ordinary property', () => {
    const msg = decodeMessage(bytes(3, 9, '__proto__', 0, 1, 'x'));
    assert.equal(Object.getPrototypeOf(msg), Object.prototype);
    assert.deepEqual(Object.keys(msg), ['__proto__']);
  });

  test('every packet type round-trips', () => {
    const packets: ViciPacket[] = [
      { type: PacketType.CMD_REQUEST, name: 'list-sas', message: { ike: 'a' } },
      { type: PacketType.CMD_RESPONSE, message: { s: { l: ['1'] } } },
      { type: PacketType.CMD_UNKNOWN },
      { type: PacketType.EVENT_REGISTER, name: 'ike-updown' },
      { type: PacketType.EVENT_UNREGISTER, name: 'ike-updown' },
      { type: PacketType.EVENT_CONFIRM },
      { type: PacketType.EVENT_UNKNOWN },
      { type: PacketType.EVENT, name: 'child-updown', message: { up: 'yes' } },
    ];
    for (const packet of packets) assert.deepEqual(decodePacket(encodeSegment(packet).subarray(4)), packet);
  });
});

describe('SegmentReader', () => {
  const response = bytes(0, 0, 0, 15, 1, 3, 7, 'success', 0, 3, 'yes');
  const event = bytes(0, 0, 0, 11, 7, 3, 'log', 3, 1, 'm', 0, 1, 'x');
  const stream = Buffer.concat([event, response, VERSION_REQUEST]);
  const expected = [
    { type: PacketType.EVENT, name: 'log', message: { m: 'x' } },
    { type: PacketType.CMD_RESPONSE, message: { success: 'yes' } },
    { type: PacketType.CMD_REQUEST, name: 'version', message: {} },
  ];

  test('coalesced segments in one chunk', () => {
    const reader = new SegmentReader();
    assert.deepEqual(reader.push(stream), expected);
    assert.equal(reader.buffered, 0);
    reader.end();
  });

  test('split at every pair of boundaries', () => {
    for (let i = 0; i <= stream.length; i++) {
      for (let j = i; j <= stream.length; j++) {
        const reader = new SegmentReader();
        const got = [
          ...reader.push(stream.subarray(0, i)),
          ...reader.push(stream.subarray(i, j)),
          ...reader.push(stream.subarray(j)),
        ];
        assert.deepEqual(got, expected, `split at ${i}/${j}`);
        reader.end();
      }
    }
  });

  test('one byte at a time', () => {
    const reader = new SegmentReader();
    const got: unknown[] = [];
    for (const b of stream) got.push(...reader.push(Buffer.of(b)));
    assert.deepEqual(got, expected);
  });

  test('a partial segment is held, and reported as truncated at end', () => {
    const reader = new SegmentReader();
    assert.deepEqual(reader.push(response.subarray(0, 7)), []);
    assert.equal(reader.buffered, 7);
    assert.throws(() => reader.end(), { name: 'ViciCodecError', message: /truncated stream: 7 bytes/ });
  });

  test('an oversize or empty segment length is refused', () => {
    assert.throws(() => new SegmentReader().push(bytes(0, 8, 0, 1)), {
      name: 'ViciCodecError',
      message: 'segment length 524289 exceeds the 524288-byte VICI limit',
    });
    assert.throws(() => new SegmentReader().push(bytes(0, 0, 0, 0)), /empty segment/);
  });

  test('a 512 KiB segment is fine', () => {
    const payload = Buffer.alloc(512 * 1024);
    payload[0] = PacketType.CMD_RESPONSE;
    // Fill the message with one large key-value per 64 KiB so it decodes.
    let off = 1;
    let n = 0;
    while (payload.length - off > 0) {
      const room = payload.length - off - 1 - 1 - 4 - 2;
      const len = Math.min(0xffff, room);
      payload[off] = 3;
      payload[off + 1] = 4;
      payload.write(`k${String(n++).padStart(3, '0')}`, off + 2, 'ascii');
      payload.writeUInt16BE(len, off + 6);
      off += 8 + len;
    }
    const reader = new SegmentReader();
    const [packet] = reader.push(frameSegment(payload));
    assert.equal(packet.type, PacketType.CMD_RESPONSE);
  });
});

describe('errors', () => {
  const codecError = (message: RegExp) => ({ name: 'ViciCodecError', message });

  test('value over 65535 bytes names the key, not the value', () => {
    const secret = 'S3CRET-'.repeat(10_000);
    assert.throws(
      () => encodeMessage({ data: secret }),
      (err: Error) => {
        assert.ok(err instanceof ViciCodecError);
        assert.equal(err.message, 'value of key "data" is 70000 bytes, over the 65535-byte limit');
        assert.ok(!err.message.includes('S3CRET'));
        return true;
      },
    );
    assert.throws(() => encodeMessage({ s: { l: ['ok', 'x'.repeat(65_536)] } }), codecError(/item 1 of list "s\.l" is 65536 bytes/));
    assert.doesNotThrow(() => encodeMessage({ data: 'x'.repeat(65_535) }));
  });

  test('names over 255 bytes or not ASCII', () => {
    assert.throws(() => encodeMessage({ ['k'.repeat(256)]: 'v' }), codecError(/is 256 bytes, over the 255-byte limit/));
    assert.throws(() => encodeSegment({ type: PacketType.CMD_REQUEST, name: 'c'.repeat(256), message: {} }), codecError(/CMD_REQUEST name/));
    assert.throws(() => encodeMessage({ 'schlüssel': 'v' }), codecError(/not ASCII/));
  });

  test('segments over 512 KiB are refused before sending', () => {
    const big: Record<string, string> = {};
    for (let i = 0; i < 9; i++) big[`k${i}`] = 'x'.repeat(65_000);
    assert.throws(
      () => encodeSegment({ type: PacketType.CMD_REQUEST, name: 'load-conn', message: big }),
      codecError(/segment of \d+ bytes exceeds the 524288-byte VICI limit/),
    );
  });

  test('bad nesting', () => {
    assert.throws(() => decodeMessage(bytes(2)), codecError(/SECTION_END without an open section/));
    assert.throws(() => decodeMessage(bytes(5, 0, 1, 'x')), codecError(/LIST_ITEM outside a list/));
    assert.throws(() => decodeMessage(bytes(6)), codecError(/LIST_END without an open list/));
    assert.throws(() => decodeMessage(bytes(4, 1, 'l', 3, 1, 'k', 0, 0, 6)), codecError(/element type 3 inside list "l"/));
    assert.throws(() => decodeMessage(bytes(4, 1, 'l', 4, 1, 'm', 6, 6)), codecError(/element type 4 inside list "l"/));
    assert.throws(() => decodeMessage(bytes(4, 1, 'l', 2)), codecError(/element type 2 inside list "l"/));
    assert.throws(() => decodeMessage(bytes(1, 1, 'a', 1, 1, 'b', 2)), codecError(/section "a" not closed/));
    assert.throws(() => decodeMessage(bytes(4, 1, 'l', 5, 0, 1, 'x')), codecError(/list "l" not closed/));
    assert.throws(() => decodeMessage(bytes(3, 1, 'k', 0, 0, 3, 1, 'k', 0, 0)), codecError(/duplicate key "k" in root section/));
  });

  test('truncated input', () => {
    assert.throws(() => decodeMessage(bytes(3, 4, 'ke')), codecError(/truncated message: key name needs 4 bytes at offset 2, 2 left/));
    assert.throws(() => decodeMessage(bytes(3, 1, 'k', 0)), codecError(/truncated message: value of "k" length needs 2 bytes/));
    assert.throws(() => decodeMessage(bytes(3, 1, 'k', 0, 5, 'abc')), codecError(/truncated message: value of "k" needs 5 bytes/));
    assert.throws(() => decodePacket(bytes(0, 9, 'vers')), codecError(/truncated packet: command name needs 9 bytes/));
    assert.throws(() => decodePacket(Buffer.alloc(0)), codecError(/truncated packet: packet type/));
  });

  test('unknown element and packet types, trailing bytes', () => {
    assert.throws(() => decodeMessage(bytes(9)), codecError(/unknown element type 9 at offset 0/));
    assert.throws(() => decodePacket(bytes(8)), codecError(/unknown packet type 8/));
    assert.throws(() => decodePacket(bytes(2, 0)), codecError(/CMD_UNKNOWN packet has 1 unexpected trailing bytes/));
  });
});

describe('agent message shapes', () => {
  test('connToMessage sends list-typed keys as VICI lists and the rest as key-values', () => {
    const msg = connToMessage({
      version: 2,
      local_addrs: ['192.0.2.1'],
      remote_addrs: ['192.0.2.2'],
      remote_port: 4500,
      proposals: ['aes256-sha256-modp2048'],
      encap: true,
      dpd_delay: 10,
      local: { auth: 'psk', id: 'a' },
      remote: { auth: 'psk' },
      children: { c: { local_ts: ['10.0.0.0/24'], esp_proposals: ['aes256-sha256'], start_action: 'none', mode: 'tunnel' } },
    });
    assert.deepEqual(msg, {
      version: '2',
      local_addrs: ['192.0.2.1'],
      remote_addrs: ['192.0.2.2'],
      remote_port: '4500',
      proposals: ['aes256-sha256-modp2048'],
      encap: 'yes',
      dpd_delay: '10',
      local: { auth: 'psk', id: 'a' },
      remote: { auth: 'psk' },
      children: { c: { local_ts: ['10.0.0.0/24'], esp_proposals: ['aes256-sha256'], start_action: 'none', mode: 'tunnel' } },
    });
    // proposals on the wire: LIST_START, one LIST_ITEM, LIST_END.
    assert.ok(
      encodeMessage(msg).includes(bytes(4, 9, 'proposals', 5, 0, 22, 'aes256-sha256-modp2048', 6)),
    );
  });

  test('list-sa and updown messages parse into IkeSaInfo', () => {
    const sa = {
      gw: {
        uniqueid: '3',
        version: '2',
        state: 'ESTABLISHED',
        'local-host': '192.0.2.1',
        'local-port': '500',
        'remote-host': '192.0.2.2',
        'remote-port': '500',
        'remote-id': 'b',
        initiator: 'yes',
        established: '4',
        'child-sas': {
          'pods-7': {
            name: 'pods',
            uniqueid: '7',
            state: 'INSTALLED',
            mode: 'TUNNEL',
            'bytes-in': '168',
            'bytes-out': '84',
            'install-time': '4',
            'local-ts': ['10.0.0.0/24'],
            'remote-ts': ['10.1.0.0/24'],
          },
        },
      },
    };
    const [ike] = parseSaMessage(sa);
    assert.equal(ike.name, 'gw');
    assert.equal(ike.uniqueId, '3');
    assert.equal(ike.remoteHost, '192.0.2.2');
    assert.equal(ike.initiator, true);
    assert.deepEqual(ike.children.map((c) => [c.name, c.uniqueId, c.state, c.bytesIn, c.bytesOut, c.installTime]), [
      ['pods', '7', 'INSTALLED', 168, 84, 4],
    ]);
    assert.deepEqual(parseUpdownEvent({ up: 'yes', ...sa }).up, true);
    assert.deepEqual(parseUpdownEvent(sa).up, false);
    assert.equal(parseUpdownEvent({ up: 'yes', ...sa }).sas.length, 1);
  });
});
