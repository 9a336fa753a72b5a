// VICI wire format: segments (u32 BE length), packets (type byte + optional name) and messages
// (a flat stream of section/key/list elements). Spec: strongSwan src/libcharon/plugins/vici/README.md.

/** Largest segment payload charon accepts or sends. */
export const MAX_SEGMENT_BYTES = 512 * 1024;
/** Values and list items carry a u16 length. */
export const MAX_VALUE_BYTES = 0xffff;
/** Names carry a u8 length. */
export const MAX_NAME_BYTES = 0xff;

export const PacketType = {
  CMD_REQUEST: 0,
  CMD_RESPONSE: 1,
  CMD_UNKNOWN: 2,
  EVENT_REGISTER: 3,
  EVENT_UNREGISTER: 4,
  EVENT_CONFIRM: 5,
  EVENT_UNKNOWN: 6,
  EVENT: 7,
} as const;
export type PacketType = (typeof PacketType)[keyof typeof PacketType];

export const ElementType = {
  SECTION_START: 1,
  SECTION_END: 2,
  KEY_VALUE: 3,
  LIST_START: 4,
  LIST_ITEM: 5,
  LIST_END: 6,
} as const;
export type ElementType = (typeof ElementType)[keyof typeof ElementType];

/** Values decode as UTF-8 strings; Buffer is accepted when encoding (binary secrets). */
export type ViciValue = string | Buffer | string[] | ViciMessage;
export interface ViciMessage {
  [key: string]: ViciValue;
}

export type ViciPacket =
  | { type: typeof PacketType.CMD_REQUEST; name: string; message: ViciMessage }
  | { type: typeof PacketType.CMD_RESPONSE; message: ViciMessage }
  | { type: typeof PacketType.CMD_UNKNOWN }
  | { type: typeof PacketType.EVENT_REGISTER; name: string }
  | { type: typeof PacketType.EVENT_UNREGISTER; name: string }
  | { type: typeof PacketType.EVENT_CONFIRM }
  | { type: typeof PacketType.EVENT_UNKNOWN }
  | { type: typeof PacketType.EVENT; name: string; message: ViciMessage };

export class ViciCodecError extends Error {
  override name = 'ViciCodecError';
}

const PACKET_TYPE_NAMES: Record<number, string> = Object.fromEntries(
  Object.entries(PacketType).map(([name, value]) => [value, name]),
);

export function packetTypeName(type: number): string {
  return PACKET_TYPE_NAMES[type] ?? `unknown(${type})`;
}

// ---------------------------------------------------------------- encoding

function encodeName(name: string, what: string): Buffer {
  for (let i = 0; i < name.length; i++) {
    if (name.charCodeAt(i) > 0x7f) throw new ViciCodecError(`${what} ${JSON.stringify(name)} is not ASCII`);
  }
  if (name.length > MAX_NAME_BYTES) {
    // Only a prefix: names are never secret, but can be long.
    throw new ViciCodecError(
      `${what} ${JSON.stringify(name.slice(0, 40))}... is ${name.length} bytes, over the ${MAX_NAME_BYTES}-byte limit`,
    );
  }
  const out = Buffer.alloc(1 + name.length);
  out[0] = name.length;
  out.write(name, 1, 'ascii');
  return out;
}

// Error messages name the key and size, never the value: values may be PSKs.
function encodeValue(value: string | Buffer, where: string): Buffer {
  const bytes = typeof value === 'string' ? Buffer.from(value, 'utf8') : value;
  if (bytes.length > MAX_VALUE_BYTES) {
    throw new ViciCodecError(`value of ${where} is ${bytes.length} bytes, over the ${MAX_VALUE_BYTES}-byte limit`);
  }
  const out = Buffer.alloc(2 + bytes.length);
  out.writeUInt16BE(bytes.length, 0);
  bytes.copy(out, 2);
  return out;
}

function encodeSection(msg: ViciMessage, path: string, parts: Buffer[]): void {
  for (const [key, value] of Object.entries(msg)) {
    // Lets callers build messages with optional fields without filtering them first.
    if (value === undefined) continue;
    const where = path === '' ? `key ${JSON.stringify(key)}` : `key ${JSON.stringify(`${path}.${key}`)}`;
    const childPath = path === '' ? key : `${path}.${key}`;
    if (typeof value === 'string' || Buffer.isBuffer(value)) {
      parts.push(Buffer.of(ElementType.KEY_VALUE), encodeName(key, 'key'), encodeValue(value, where));
    } else if (Array.isArray(value)) {
      parts.push(Buffer.of(ElementType.LIST_START), encodeName(key, 'list name'));
      value.forEach((item: unknown, i) => {
        if (typeof item !== 'string' && !Buffer.isBuffer(item)) {
          throw new ViciCodecError(`item ${i} of list ${JSON.stringify(childPath)} is ${typeof item}, not a string`);
        }
        parts.push(Buffer.of(ElementType.LIST_ITEM), encodeValue(item, `item ${i} of list ${JSON.stringify(childPath)}`));
      });
      parts.push(Buffer.of(ElementType.LIST_END));
    } else if (typeof value === 'object' && value !== null) {
      parts.push(Buffer.of(ElementType.SECTION_START), encodeName(key, 'section name'));
      encodeSection(value, childPath, parts);
      parts.push(Buffer.of(ElementType.SECTION_END));
    } else {
      throw new ViciCodecError(`${where} has a ${typeof value} value; VICI values are strings, lists or sections`);
    }
  }
}

export function encodeMessage(msg: ViciMessage): Buffer {
  const parts: Buffer[] = [];
  encodeSection(msg, '', parts);
  return Buffer.concat(parts);
}

/** Packet bytes without the segment length prefix. */
export function encodePacket(packet: ViciPacket): Buffer {
  const parts: Buffer[] = [Buffer.of(packet.type)];
  if ('name' in packet) parts.push(encodeName(packet.name, `${packetTypeName(packet.type)} name`));
  if ('message' in packet) parts.push(encodeMessage(packet.message));
  return Buffer.concat(parts);
}

/** Prefixes a payload with its u32 BE length. */
export function frameSegment(payload: Buffer): Buffer {
  if (payload.length > MAX_SEGMENT_BYTES) {
    throw new ViciCodecError(`segment of ${payload.length} bytes exceeds the ${MAX_SEGMENT_BYTES}-byte VICI limit`);
  }
  const out = Buffer.alloc(4 + payload.length);
  out.writeUInt32BE(payload.length, 0);
  payload.copy(out, 4);
  return out;
}

/** What goes on the wire for one packet. */
export function encodeSegment(packet: ViciPacket): Buffer {
  return frameSegment(encodePacket(packet));
}

// ---------------------------------------------------------------- decoding

class ByteCursor {
  offset = 0;
  readonly buf: Buffer;
  readonly what: string;
  constructor(buf: Buffer, what: string) {
    this.buf = buf;
    this.what = what;
  }
  get remaining(): number {
    return this.buf.length - this.offset;
  }
  need(n: number, field: string): void {
    if (this.remaining < n) {
      throw new ViciCodecError(
        `truncated ${this.what}: ${field} needs ${n} bytes at offset ${this.offset}, ${this.remaining} left`,
      );
    }
  }
  u8(field: string): number {
    this.need(1, field);
    return this.buf[this.offset++];
  }
  name(field: string): string {
    const len = this.u8(`${field} length`);
    this.need(len, field);
    const name = this.buf.toString('latin1', this.offset, this.offset + len);
    this.offset += len;
    return name;
  }
  value(field: string): string {
    this.need(2, `${field} length`);
    const len = this.buf.readUInt16BE(this.offset);
    this.offset += 2;
    this.need(len, field);
    const value = this.buf.toString('utf8', this.offset, this.offset + len);
    this.offset += len;
    return value;
  }
}

// defineProperty so a key such as "__proto__" stays an ordinary own property.
function setOwn(target: ViciMessage, key: string, value: ViciValue, sectionPath: string): void {
  if (Object.prototype.hasOwnProperty.call(target, key)) {
    throw new ViciCodecError(`duplicate key ${JSON.stringify(key)} in ${sectionPath === '' ? 'root section' : `section ${JSON.stringify(sectionPath)}`}`);
  }
  Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
}

/**
 * Decodes a message. Keys keep wire order, except that JavaScript orders integer-like keys
 * (e.g. "0", "1") first.
 */
export function decodeMessage(buf: Buffer): ViciMessage {
  const cur = new ByteCursor(buf, 'message');
  const root: ViciMessage = {};
  const stack: { section: ViciMessage; path: string }[] = [{ section: root, path: '' }];
  let list: { name: string; items: string[] } | undefined;

  while (cur.remaining > 0) {
    const at = cur.offset;
    const type = cur.u8('element type');
    const top = stack[stack.length - 1];
    if (list !== undefined && type !== ElementType.LIST_ITEM && type !== ElementType.LIST_END) {
      throw new ViciCodecError(`bad nesting at offset ${at}: element type ${type} inside list ${JSON.stringify(list.name)}`);
    }
    switch (type) {
      case ElementType.SECTION_START: {
        const name = cur.name('section name');
        const section: ViciMessage = {};
        setOwn(top.section, name, section, top.path);
        stack.push({ section, path: top.path === '' ? name : `${top.path}.${name}` });
        break;
      }
      case ElementType.SECTION_END:
        if (stack.length === 1) throw new ViciCodecError(`bad nesting at offset ${at}: SECTION_END without an open section`);
        stack.pop();
        break;
      case ElementType.KEY_VALUE: {
        const name = cur.name('key name');
        setOwn(top.section, name, cur.value(`value of ${JSON.stringify(name)}`), top.path);
        break;
      }
      case ElementType.LIST_START: {
        const name = cur.name('list name');
        list = { name, items: [] };
        setOwn(top.section, name, list.items, top.path);
        break;
      }
      case ElementType.LIST_ITEM:
        if (list === undefined) throw new ViciCodecError(`bad nesting at offset ${at}: LIST_ITEM outside a list`);
        list.items.push(cur.value(`item of list ${JSON.stringify(list.name)}`));
        break;
      case ElementType.LIST_END:
        if (list === undefined) throw new ViciCodecError(`bad nesting at offset ${at}: LIST_END without an open list`);
        list = undefined;
        break;
      default:
        throw new ViciCodecError(`unknown element type ${type} at offset ${at}`);
    }
  }
  if (list !== undefined) throw new ViciCodecError(`truncated message: list ${JSON.stringify(list.name)} not closed`);
  if (stack.length > 1) {
    throw new ViciCodecError(`truncated message: section ${JSON.stringify(stack[stack.length - 1].path)} not closed`);
  }
  return root;
}

/** Decodes one packet from a segment payload (without the length prefix). */
export function decodePacket(payload: Buffer): ViciPacket {
  const cur = new ByteCursor(payload, 'packet');
  const type = cur.u8('packet type');
  const rest = (): Buffer => payload.subarray(cur.offset);
  const noTrailing = (): void => {
    if (cur.remaining > 0) {
      throw new ViciCodecError(`${packetTypeName(type)} packet has ${cur.remaining} unexpected trailing bytes`);
    }
  };
  switch (type) {
    case PacketType.CMD_REQUEST:
      return { type, name: cur.name('command name'), message: decodeMessage(rest()) };
    case PacketType.EVENT:
      return { type, name: cur.name('event name'), message: decodeMessage(rest()) };
    case PacketType.CMD_RESPONSE:
      return { type, message: decodeMessage(rest()) };
    case PacketType.EVENT_REGISTER:
    case PacketType.EVENT_UNREGISTER: {
      const name = cur.name('event name');
      noTrailing();
      return { type, name };
    }
    case PacketType.CMD_UNKNOWN:
    case PacketType.EVENT_CONFIRM:
    case PacketType.EVENT_UNKNOWN:
      noTrailing();
      return { type };
    default:
      throw new ViciCodecError(`unknown packet type ${type}`);
  }
}

/**
 * Accumulates stream chunks and returns complete packets; copes with segments split across
 * reads and several segments in one read.
 */
export class SegmentReader {
  private pending: Buffer = Buffer.alloc(0);

  /** Bytes held that do not yet form a whole segment. */
  get buffered(): number {
    return this.pending.length;
  }

  push(chunk: Buffer): ViciPacket[] {
    this.pending = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk]);
    const packets: ViciPacket[] = [];
    let offset = 0;
    while (this.pending.length - offset >= 4) {
      const length = this.pending.readUInt32BE(offset);
      if (length > MAX_SEGMENT_BYTES) {
        throw new ViciCodecError(`segment length ${length} exceeds the ${MAX_SEGMENT_BYTES}-byte VICI limit`);
      }
      if (length === 0) throw new ViciCodecError('empty segment: a packet needs at least its type byte');
      if (this.pending.length - offset - 4 < length) break;
      packets.push(decodePacket(this.pending.subarray(offset + 4, offset + 4 + length)));
      offset += 4 + length;
    }
    // Copy the tail so a big chunk is not kept alive by a small leftover.
    this.pending = offset === 0 ? this.pending : Buffer.from(this.pending.subarray(offset));
    return packets;
  }

  /** Call at end of stream: throws if a partial segment is left. */
  end(): void {
    if (this.pending.length > 0) {
      throw new ViciCodecError(`truncated stream: ${this.pending.length} bytes of an incomplete segment left`);
    }
  }
}
