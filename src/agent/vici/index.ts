// The agent's strongSwan adapter: VICI codec, messages and commands, one connection, and a reconnecting session.
export {
  MAX_NAME_BYTES,
  MAX_SEGMENT_BYTES,
  MAX_VALUE_BYTES,
  ElementType,
  PacketType,
  SegmentReader,
  ViciCodecError,
  decodeMessage,
  decodePacket,
  encodeMessage,
  encodePacket,
  encodeSegment,
  frameSegment,
  packetTypeName,
} from './codec.ts';
export type { ViciMessage, ViciPacket, ViciValue } from './codec.ts';
export {
  DEFAULT_TIMEOUT_MS,
  ViciCommands,
  ViciConnectionError,
  ViciError,
  ViciTimeoutError,
  connToMessage,
  parseChildSa,
  parseIkeSa,
  parseSaMessage,
  parseUpdownEvent,
} from './messages.ts';
export { ViciClient } from './connection.ts';
export { ViciSession, viciAnswers } from './session.ts';
export type {
  AuthConfig,
  ChildAction,
  ChildConfig,
  ChildSaInfo,
  ConnConfig,
  EventHandler,
  IkeSaInfo,
  InitiateOptions,
  RequestOptions,
  SaFilter,
  SharedKey,
  Subscription,
  TerminateOptions,
  VersionInfo,
} from './messages.ts';
export type { ViciSessionOptions } from './session.ts';
