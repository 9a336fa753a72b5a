// Typed encode/decode of Corvid's JSON annotations on a Gateway (keys in keys.ts, documented in
// docs/gateway-annotations.md). The sync encodes; the agent decodes with readGatewayLinks().
//
// Decoding never throws. A malformed annotation is reported in `problems` and its field falls back to the
// fail-closed value: no peers, no encryption (the agent must then build no tunnel for that link).
//
// Encryption: each Gateway publishes only its own part (the global defaults, its pool's own override, the links[]
// overrides of its pairs); encryptionFor(me, peer) merges the parts of two Gateways with the topology's own rule
// (mergeLinkPolicy), so a change of one pool's override rewrites only that pool's Gateway.

import { usableIPVersion } from '../topology/ip.ts';
import { mergeLinkPolicy } from '../topology/policy.ts';
import type { RoutePool } from '../topology/route.ts';
import type { Backend, EncryptionOverride, EncryptionPolicy, MemberRouting, MemberVxlan, SecretKeyRef } from '../topology/types.ts';
import {
  CONNECTIVITY_ANNOTATION,
  DENIED_PEERS_ANNOTATION,
  ELECTION_ANNOTATION,
  ENCRYPTION_ANNOTATION,
  ENCRYPTION_DEFAULTS_ANNOTATION,
  ENCRYPTION_LINKS_ANNOTATION,
  ENCRYPTION_OVERRIDES_ANNOTATION,
  ENCRYPTION_POOL_ANNOTATION,
  PEERS_ANNOTATION,
  POOL_LABEL,
  RELAYS_FOR_ANNOTATION,
  RELAY_ANNOTATION,
  REPLICAS_ANNOTATION,
  MTU_ANNOTATION,
  MEMBER_ROUTING_ANNOTATION,
  MEMBER_VXLAN_ANNOTATION,
  NODE_ADDRESSES_ANNOTATION,
  REVISION_ANNOTATION,
  WIREGUARD_KEYS_ANNOTATION,
} from './keys.ts';
import { canonicalJson } from './canonical.ts';
import { decodeWireguardKeys, encodeWireguardKeys } from './wireguard.ts';
import type { Gateway } from './types.ts';

/** `peers` value meaning "every pool not in denied-peers". */
export const ALL_PEERS = '*';

/** Everything Corvid tells the agents about one pool's links, decoded. */
export interface GatewayLinks {
  /** The pool (label corvid.dev/pool, else metadata.name). */
  pool: string;
  /** Sorted pool names this pool may exchange traffic with, or `['*']` for all pools not denied. */
  peers: string[];
  /** Sorted pool names that are denied; takes precedence over peers. */
  deniedPeers: string[];
  /** `hub` when the topology is hub-and-spoke (corvid.dev/connectivity), else `mesh`. */
  connectivity: 'mesh' | 'hub';
  /**
   * Mesh: NAT'd pools only, the pool through which this pool reaches other NAT'd pools.
   * Hub: every spoke, the hub.
   */
  relay?: string;
  /** Relay pools only: the NAT'd pools this pool relays for (sorted). */
  relaysFor: string[];
  /** This pool's default link encryption, corvid.dev/encryption (undefined when absent or malformed). */
  encryption?: EncryptionPolicy;
  /**
   * The topology's global defaults (corvid.dev/encryption-defaults). Present = the Gateway is in the current format,
   * and encryptionFor merges encryptionPool and encryptionLinks; absent = the old format (encryptionOverrides).
   */
  encryptionDefaults?: EncryptionPolicy;
  /** This pool's own partial override (corvid.dev/encryption-pool); undefined when it sets none. */
  encryptionPool?: EncryptionOverride;
  /** Peer pool -> the partial links[] override of the pair (corvid.dev/encryption-links). */
  encryptionLinks: Record<string, EncryptionOverride>;
  /** Old format only (corvid.dev/encryption-overrides): peer pool -> full policy, where it differs from `encryption`. */
  encryptionOverrides: Record<string, EncryptionPolicy>;
  /** All endpoints of a Gateway share underNAT (upstream rule); taken from spec.endpoints[0]. */
  underNAT: boolean;
  /** The pool's uplink MTU (corvid.dev/mtu), when published and valid. */
  mtu?: number;
  /** How members reach the gateway (corvid.dev/member-routing): `vxlan` or `auto`; absent means `direct`. */
  memberRouting?: MemberRouting;
  /** The member VXLAN's settings (corvid.dev/member-vxlan); present whenever memberRouting is not `direct`. */
  memberVxlan?: MemberVxlan;
  /** corvid.dev/node-addresses: the pool's node addresses are routed across pools. */
  nodeAddresses?: boolean;
  /** corvid.dev/wireguard-keys: gateway candidate -> its WireGuard public key (valid entries only). */
  wireguardKeys: Record<string, string>;
  /** Active node -> reason of its last election decision. */
  election: Record<string, string>;
  revision?: string;
  /** Active tunnel endpoints wanted (corvid.dev/replicas, default 1). */
  replicas: number;
  /** Malformed annotations, one line each. Empty for every Gateway Corvid wrote. */
  problems: string[];
}

// ---- encoders (canonical JSON: sorted keys, sorted name lists) ----

export function encodeNameList(names: readonly string[]): string {
  return JSON.stringify([...new Set(names)].sort());
}

/** Encodings by policy object: the planner shares one object among all links with an equal policy. */
const encodedPolicies = new WeakMap<EncryptionPolicy, string>();

export function encodeEncryption(p: EncryptionPolicy): string {
  let s = encodedPolicies.get(p);
  if (s === undefined) {
    s = canonicalJson(normaliseEncryption(p));
    encodedPolicies.set(p, s);
  }
  return s;
}

/** The old format's corvid.dev/encryption-overrides (no longer written by the planner; for compatibility tests). */
export function encodeEncryptionOverrides(o: Readonly<Record<string, EncryptionPolicy>>): string {
  const parts = Object.keys(o)
    .sort()
    .map((k) => `${JSON.stringify(k)}:${encodeEncryption(o[k])}`);
  return `{${parts.join(',')}}`;
}

/** A partial override: only the fields it sets, keys sorted. */
export function encodeEncryptionOverride(o: EncryptionOverride): string {
  return canonicalJson(normaliseOverride(o));
}

/** corvid.dev/encryption-links: peer pool -> partial override, peers sorted. */
export function encodeEncryptionLinks(l: Readonly<Record<string, EncryptionOverride>>): string {
  const parts = Object.keys(l)
    .sort()
    .map((k) => `${JSON.stringify(k)}:${encodeEncryptionOverride(l[k])}`);
  return `{${parts.join(',')}}`;
}

function hasFields(o: EncryptionOverride | undefined): o is EncryptionOverride {
  return o !== undefined && Object.keys(normaliseOverride(o)).length > 0;
}

export function encodeElection(reasons: Readonly<Record<string, string>>): string {
  return canonicalJson(reasons);
}

function normaliseEncryption(p: EncryptionPolicy): EncryptionPolicy {
  const out: EncryptionPolicy = {
    backend: p.backend,
    ikeProposals: [...p.ikeProposals],
    espProposals: [...p.espProposals],
    allowInsecure: p.allowInsecure,
  };
  if (p.pskSecretRef && p.backend !== 'none') out.pskSecretRef = { name: p.pskSecretRef.name, key: p.pskSecretRef.key };
  return out;
}

function normaliseOverride(o: EncryptionOverride): EncryptionOverride {
  const out: EncryptionOverride = {};
  if (o.backend !== undefined) out.backend = o.backend;
  if (o.ikeProposals !== undefined) out.ikeProposals = [...o.ikeProposals];
  if (o.espProposals !== undefined) out.espProposals = [...o.espProposals];
  if (o.pskSecretRef !== undefined) out.pskSecretRef = { name: o.pskSecretRef.name, key: o.pskSecretRef.key };
  if (o.allowInsecure !== undefined) out.allowInsecure = o.allowInsecure;
  return out;
}

/** What the planner writes; each field absent/empty -> its annotation is omitted. */
export interface LinkAnnotations {
  peers: readonly string[];
  deniedPeers?: readonly string[];
  connectivity?: 'mesh' | 'hub';
  relay?: string;
  relaysFor?: readonly string[];
  /** corvid.dev/encryption: this pool's default (defaults <- its own override). */
  encryption: EncryptionPolicy;
  /** corvid.dev/encryption-defaults: the topology's global defaults. */
  encryptionDefaults: EncryptionPolicy;
  /** corvid.dev/encryption-pool: the pool's own raw override; omitted when absent or empty. */
  encryptionPool?: EncryptionOverride;
  /** corvid.dev/encryption-links: peer -> raw links[] override of the pair; empty overrides and an empty map omitted. */
  encryptionLinks?: Readonly<Record<string, EncryptionOverride>>;
  election?: Readonly<Record<string, string>>;
  revision?: string;
  /** Written only when above 1 (see keys.ts REPLICAS_ANNOTATION). */
  replicas?: number;
  /** corvid.dev/mtu: the pool's uplink MTU; omitted when absent. */
  mtu?: number;
  /** corvid.dev/member-routing and corvid.dev/member-vxlan: omitted when absent or `direct`. */
  memberRouting?: MemberRouting;
  memberVxlan?: MemberVxlan;
  /** corvid.dev/node-addresses: written only when true. */
  nodeAddresses?: boolean;
  /** corvid.dev/wireguard-keys: omitted when absent or empty (as without nodes, in `corvid render`). */
  wireguardKeys?: Readonly<Record<string, string>>;
}

/** Annotations for a Gateway. Omits denied-peers, relay, relays-for, encryption-pool, encryption-links, election when empty. */
export function encodeGatewayAnnotations(a: LinkAnnotations): Record<string, string> {
  const out: Record<string, string> = {};
  out[PEERS_ANNOTATION] = encodeNameList(a.peers);
  if (a.deniedPeers && a.deniedPeers.length > 0) out[DENIED_PEERS_ANNOTATION] = encodeNameList(a.deniedPeers);
  if (a.connectivity === 'hub') out[CONNECTIVITY_ANNOTATION] = 'hub';
  if (a.relay !== undefined) out[RELAY_ANNOTATION] = a.relay;
  if (a.relaysFor && a.relaysFor.length > 0) out[RELAYS_FOR_ANNOTATION] = encodeNameList(a.relaysFor);
  out[ENCRYPTION_ANNOTATION] = encodeEncryption(a.encryption);
  out[ENCRYPTION_DEFAULTS_ANNOTATION] = encodeEncryption(a.encryptionDefaults);
  if (hasFields(a.encryptionPool)) out[ENCRYPTION_POOL_ANNOTATION] = encodeEncryptionOverride(a.encryptionPool);
  const links: Record<string, EncryptionOverride> = {};
  for (const [peer, o] of Object.entries(a.encryptionLinks ?? {})) if (hasFields(o)) links[peer] = o;
  if (Object.keys(links).length > 0) out[ENCRYPTION_LINKS_ANNOTATION] = encodeEncryptionLinks(links);
  if (a.election && Object.keys(a.election).length > 0) out[ELECTION_ANNOTATION] = encodeElection(a.election);
  if (a.revision !== undefined) out[REVISION_ANNOTATION] = a.revision;
  if (a.replicas !== undefined && a.replicas > 1) out[REPLICAS_ANNOTATION] = String(a.replicas);
  if (a.mtu !== undefined) out[MTU_ANNOTATION] = String(a.mtu);
  if (a.memberRouting !== undefined && a.memberRouting !== 'direct' && a.memberVxlan !== undefined) {
    out[MEMBER_ROUTING_ANNOTATION] = a.memberRouting;
    out[MEMBER_VXLAN_ANNOTATION] = encodeMemberVxlan(a.memberVxlan);
  }
  if (a.nodeAddresses === true) out[NODE_ADDRESSES_ANNOTATION] = 'true';
  if (a.wireguardKeys !== undefined && Object.keys(a.wireguardKeys).length > 0) out[WIREGUARD_KEYS_ANNOTATION] = encodeWireguardKeys(a.wireguardKeys);
  return canonicalizeRecord(out);
}

/** corvid.dev/member-vxlan: `{"port":N,"vni":N}`. */
export function encodeMemberVxlan(v: MemberVxlan): string {
  return canonicalJson({ port: v.port, vni: v.vni });
}

/** corvid.dev/member-vxlan: both whole numbers, a VNI of 24 bits and a UDP port. */
export function decodeMemberVxlan(text: string): Decoded<MemberVxlan> {
  const j = parseJson(text);
  if (!j.ok) return j;
  const v = j.value as { port?: unknown; vni?: unknown } | null;
  const whole = (x: unknown, lo: number, hi: number): x is number => typeof x === 'number' && Number.isInteger(x) && x >= lo && x <= hi;
  if (typeof v !== 'object' || v === null || !whole(v.port, 1, 65535) || !whole(v.vni, 1, 16777215)) {
    return { ok: false, error: 'expected {"port": 1..65535, "vni": 1..16777215}' };
  }
  return { ok: true, value: { port: v.port, vni: v.vni } };
}

function canonicalizeRecord(r: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const k of Object.keys(r).sort()) out[k] = r[k];
  return out;
}

/** One address per family, as carried by corvid.dev/private-ips. */
export interface PrivateIPs {
  ipv4?: string;
  ipv6?: string;
}

/** corvid.dev/private-ips (endpoint config): the addresses, IPv4 first, comma-separated. */
export function encodePrivateIPs(ips: PrivateIPs): string {
  return [ips.ipv4, ips.ipv6].filter((x): x is string => x !== undefined).join(',');
}

// ---- decoders ----

type Decoded<T> = { ok: true; value: T } | { ok: false; error: string };

function parseJson(text: string): Decoded<unknown> {
  try {
    return { ok: true, value: JSON.parse(text) as unknown };
  } catch (e) {
    return { ok: false, error: `not JSON: ${(e as Error).message}` };
  }
}

export function decodeNameList(text: string): Decoded<string[]> {
  const j = parseJson(text);
  if (!j.ok) return j;
  if (!Array.isArray(j.value) || !j.value.every((x) => typeof x === 'string' && x !== '')) {
    return { ok: false, error: 'expected a JSON array of non-empty strings' };
  }
  return { ok: true, value: [...new Set(j.value as string[])].sort() };
}

function isStringArray(v: unknown): v is string[] {
  return Array.isArray(v) && v.every((x) => typeof x === 'string');
}

const BACKENDS: readonly unknown[] = ['ipsec', 'wireguard', 'none'] satisfies Backend[];

/** A partial policy: every field optional, each one present well-typed. Unknown fields are ignored. */
function decodeOverrideValue(v: unknown): Decoded<EncryptionOverride> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return { ok: false, error: 'expected a JSON object' };
  const o = v as Record<string, unknown>;
  const out: EncryptionOverride = {};
  if (o.backend !== undefined) {
    if (!BACKENDS.includes(o.backend)) return { ok: false, error: 'backend must be ipsec, wireguard or none' };
    out.backend = o.backend as Backend;
  }
  if (o.ikeProposals !== undefined) {
    if (!isStringArray(o.ikeProposals)) return { ok: false, error: 'ikeProposals must be an array of strings' };
    out.ikeProposals = [...o.ikeProposals];
  }
  if (o.espProposals !== undefined) {
    if (!isStringArray(o.espProposals)) return { ok: false, error: 'espProposals must be an array of strings' };
    out.espProposals = [...o.espProposals];
  }
  if (o.pskSecretRef !== undefined) {
    const r = o.pskSecretRef as Partial<SecretKeyRef> | null;
    if (typeof r !== 'object' || r === null || typeof r.name !== 'string' || typeof r.key !== 'string') {
      return { ok: false, error: 'pskSecretRef must be {name, key}' };
    }
    out.pskSecretRef = { name: r.name, key: r.key };
  }
  if (o.allowInsecure !== undefined) {
    if (typeof o.allowInsecure !== 'boolean') return { ok: false, error: 'allowInsecure must be a boolean' };
    out.allowInsecure = o.allowInsecure;
  }
  return { ok: true, value: out };
}

/** A complete policy: backend and both proposal lists required, allowInsecure defaults to false. */
function decodeEncryptionValue(v: unknown): Decoded<EncryptionPolicy> {
  const d = decodeOverrideValue(v);
  if (!d.ok) return d;
  const o = d.value;
  if (o.backend === undefined) return { ok: false, error: 'backend must be ipsec, wireguard or none' };
  if (o.ikeProposals === undefined) return { ok: false, error: 'ikeProposals must be an array of strings' };
  if (o.espProposals === undefined) return { ok: false, error: 'espProposals must be an array of strings' };
  const out: EncryptionPolicy = { backend: o.backend, ikeProposals: o.ikeProposals, espProposals: o.espProposals, allowInsecure: o.allowInsecure === true };
  if (o.pskSecretRef) out.pskSecretRef = o.pskSecretRef;
  return { ok: true, value: out };
}

function decodePeerMap<T>(text: string, value: (v: unknown) => Decoded<T>): Decoded<Record<string, T>> {
  const j = parseJson(text);
  if (!j.ok) return j;
  if (typeof j.value !== 'object' || j.value === null || Array.isArray(j.value)) return { ok: false, error: 'expected a JSON object' };
  const out: Record<string, T> = {};
  for (const [peer, v] of Object.entries(j.value)) {
    const d = value(v);
    if (!d.ok) return { ok: false, error: `${peer}: ${d.error}` };
    out[peer] = d.value;
  }
  return { ok: true, value: out };
}

export function decodeEncryption(text: string): Decoded<EncryptionPolicy> {
  const j = parseJson(text);
  return j.ok ? decodeEncryptionValue(j.value) : j;
}

export function decodeEncryptionOverride(text: string): Decoded<EncryptionOverride> {
  const j = parseJson(text);
  return j.ok ? decodeOverrideValue(j.value) : j;
}

/** The old format's corvid.dev/encryption-overrides: peer -> complete policy. */
export function decodeEncryptionOverrides(text: string): Decoded<Record<string, EncryptionPolicy>> {
  return decodePeerMap(text, decodeEncryptionValue);
}

/** corvid.dev/encryption-links: peer -> partial override. */
export function decodeEncryptionLinks(text: string): Decoded<Record<string, EncryptionOverride>> {
  return decodePeerMap(text, decodeOverrideValue);
}

export function decodeElection(text: string): Decoded<Record<string, string>> {
  const j = parseJson(text);
  if (!j.ok) return j;
  if (typeof j.value !== 'object' || j.value === null || Array.isArray(j.value)) return { ok: false, error: 'expected a JSON object' };
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(j.value)) {
    if (typeof v !== 'string') return { ok: false, error: `${k}: expected a string` };
    out[k] = v;
  }
  return { ok: true, value: out };
}

/**
 * corvid.dev/private-ips: one to two IP addresses (no zone), comma-separated, at most one per family. Anything else
 * (empty, not an IP, two of one family) is malformed: the reader must then use none of them.
 */
export function decodePrivateIPs(text: string): Decoded<PrivateIPs> {
  const out: PrivateIPs = {};
  const parts = text.split(',');
  if (parts.length > 2) return { ok: false, error: 'expected at most two addresses' };
  for (const part of parts) {
    const a = part.trim();
    const v = usableIPVersion(a);
    if (v === 0) return { ok: false, error: `${JSON.stringify(a)} is not an IP address` };
    const key = v === 4 ? 'ipv4' : 'ipv6';
    if (out[key] !== undefined) return { ok: false, error: `two IPv${v} addresses` };
    out[key] = a;
  }
  return { ok: true, value: out };
}

/**
 * Decode every Corvid annotation of a Gateway. Absent annotations mean: peers `["*"]` (upstream mesh), no denied
 * peers, no relay, no overrides. Malformed ones are listed in `problems` and fail closed: no peers; no encryption at
 * all when any encryption annotation is malformed (a wrong default could weaken an overridden link), or when
 * encryption-pool or encryption-links is present without encryption-defaults (a part of the current format without
 * the rest: never read as the old format).
 */
export function readGatewayLinks(gw: Gateway): GatewayLinks {
  const ann = gw.metadata.annotations ?? {};
  const problems: string[] = [];
  const list = (key: string, absent: string[]): Decoded<string[]> => {
    const text = ann[key];
    if (text === undefined) return { ok: true, value: absent };
    const d = decodeNameList(text);
    if (!d.ok) problems.push(`${key}: ${d.error}`);
    return d;
  };

  const peersD = list(PEERS_ANNOTATION, [ALL_PEERS]);
  const deniedD = list(DENIED_PEERS_ANNOTATION, []);
  const relaysForD = list(RELAYS_FOR_ANNOTATION, []);
  const peersOk = peersD.ok && deniedD.ok;

  let encryptionOk = true;
  const decoded = <T>(key: string, decode: (text: string) => Decoded<T>): T | undefined => {
    const text = ann[key];
    if (text === undefined) return undefined;
    const d = decode(text);
    if (d.ok) return d.value;
    encryptionOk = false;
    problems.push(`${key}: ${d.error}`);
    return undefined;
  };
  let encryption = decoded(ENCRYPTION_ANNOTATION, decodeEncryption);
  let defaults = decoded(ENCRYPTION_DEFAULTS_ANNOTATION, decodeEncryption);
  let poolOverride = decoded(ENCRYPTION_POOL_ANNOTATION, decodeEncryptionOverride);
  let linkOverrides = decoded(ENCRYPTION_LINKS_ANNOTATION, decodeEncryptionLinks) ?? {};
  let overrides = decoded(ENCRYPTION_OVERRIDES_ANNOTATION, decodeEncryptionOverrides) ?? {};
  if (encryptionOk && ann[ENCRYPTION_DEFAULTS_ANNOTATION] === undefined) {
    for (const key of [ENCRYPTION_POOL_ANNOTATION, ENCRYPTION_LINKS_ANNOTATION]) {
      if (ann[key] === undefined) continue;
      encryptionOk = false;
      problems.push(`${key}: present without ${ENCRYPTION_DEFAULTS_ANNOTATION}`);
    }
  }
  if (!encryptionOk) {
    encryption = undefined;
    defaults = undefined;
    poolOverride = undefined;
    linkOverrides = {};
    overrides = {};
  }

  let election: Record<string, string> = {};
  if (ann[ELECTION_ANNOTATION] !== undefined) {
    const d = decodeElection(ann[ELECTION_ANNOTATION]);
    if (d.ok) election = d.value;
    else problems.push(`${ELECTION_ANNOTATION}: ${d.error}`);
  }

  let replicas = 1;
  if (ann[REPLICAS_ANNOTATION] !== undefined) {
    const r = Number(ann[REPLICAS_ANNOTATION]);
    if (Number.isInteger(r) && r >= 1) replicas = r;
    else problems.push(`${REPLICAS_ANNOTATION}: expected a positive integer`);
  }
  const relay = ann[RELAY_ANNOTATION];
  const mode = ann[CONNECTIVITY_ANNOTATION];
  if (mode !== undefined && mode !== 'hub' && mode !== 'mesh') problems.push(`${CONNECTIVITY_ANNOTATION}: expected hub or mesh`);
  const out: GatewayLinks = {
    pool: gw.metadata.labels?.[POOL_LABEL] ?? gw.metadata.name,
    connectivity: mode === 'hub' ? 'hub' : 'mesh',
    peers: peersOk && peersD.ok ? peersD.value : [],
    deniedPeers: peersOk && deniedD.ok ? deniedD.value : [],
    relaysFor: relaysForD.ok ? relaysForD.value : [],
    encryptionLinks: linkOverrides,
    encryptionOverrides: overrides,
    underNAT: gw.spec?.endpoints?.[0]?.underNAT === true,
    election,
    replicas,
    wireguardKeys: {},
    problems,
  };
  if (relay !== undefined && relay !== '') out.relay = relay;
  if (encryption) out.encryption = encryption;
  if (defaults) out.encryptionDefaults = defaults;
  if (poolOverride) out.encryptionPool = poolOverride;
  if (ann[REVISION_ANNOTATION] !== undefined) out.revision = ann[REVISION_ANNOTATION];
  // Fail safe: member routing that cannot be read falls back to direct (the routes members had before the field).
  const routing = ann[MEMBER_ROUTING_ANNOTATION];
  if (routing !== undefined) {
    const vx = ann[MEMBER_VXLAN_ANNOTATION] === undefined ? undefined : decodeMemberVxlan(ann[MEMBER_VXLAN_ANNOTATION]);
    if (routing !== 'vxlan' && routing !== 'auto') problems.push(`${MEMBER_ROUTING_ANNOTATION}: expected vxlan or auto`);
    else if (vx === undefined) problems.push(`${MEMBER_ROUTING_ANNOTATION}: present without ${MEMBER_VXLAN_ANNOTATION}`);
    else if (!vx.ok) problems.push(`${MEMBER_VXLAN_ANNOTATION}: ${vx.error}`);
    else {
      out.memberRouting = routing;
      out.memberVxlan = vx.value;
    }
  }
  const nodeAddresses = ann[NODE_ADDRESSES_ANNOTATION];
  if (nodeAddresses === 'true') out.nodeAddresses = true;
  else if (nodeAddresses !== undefined) problems.push(`${NODE_ADDRESSES_ANNOTATION}: expected "true"`);
  if (ann[WIREGUARD_KEYS_ANNOTATION] !== undefined) {
    const d = decodeWireguardKeys(ann[WIREGUARD_KEYS_ANNOTATION]);
    out.wireguardKeys = d.keys;
    problems.push(...d.problems.map((p) => `${WIREGUARD_KEYS_ANNOTATION}: ${p}`));
  }
  if (ann[MTU_ANNOTATION] !== undefined) {
    const mtu = decodeMtu(ann[MTU_ANNOTATION]);
    if (mtu.ok) out.mtu = mtu.value;
    else problems.push(`${MTU_ANNOTATION}: ${mtu.error}`);
  }
  return out;
}

/** The smallest and largest MTU a pool may declare (IPv4's minimum datagram; jumbo frames). */
export const MIN_MTU = 576;
export const MAX_MTU = 9000;

/** corvid.dev/mtu: a whole number of bytes in MIN_MTU..MAX_MTU. */
export function decodeMtu(text: string): Decoded<number> {
  const n = /^\d{1,5}$/.test(text) ? Number(text) : NaN;
  if (!Number.isInteger(n) || n < MIN_MTU || n > MAX_MTU) return { ok: false, error: `expected a whole number of bytes in ${MIN_MTU}..${MAX_MTU}` };
  return { ok: true, value: n };
}

/** Whether the pool of `links` may exchange traffic with `peer` (its own annotations only; the rule is symmetric). */
export function mayPeer(links: Pick<GatewayLinks, 'pool' | 'peers' | 'deniedPeers'>, peer: string): boolean {
  if (peer === links.pool) return false;
  if (links.deniedPeers.includes(peer) || links.deniedPeers.includes(ALL_PEERS)) return false;
  return links.peers.includes(ALL_PEERS) || links.peers.includes(peer);
}

/** The encryption parts of a decoded Gateway that encryptionFor reads. */
export type GatewayEncryption = Pick<
  GatewayLinks,
  'pool' | 'encryption' | 'encryptionDefaults' | 'encryptionPool' | 'encryptionLinks' | 'encryptionOverrides'
>;

/**
 * The encryption of the link between the pools of two Gateways, as `me`'s agent uses it; undefined = build no tunnel.
 * Current format (both carry encryption-defaults): linkPolicy's rule, mergeLinkPolicy(me's defaults, me's pool
 * override, peer's pool override, me's links[] entry for peer): the same from both sides when the sync wrote both.
 * Old format (one release, while the sync is upgraded): the old rule on the old-format side, which is `me` when `me`
 * has no encryption-defaults, else `peer`: its encryption-overrides entry for the other pool, else its default. A
 * Gateway whose encryption annotations are malformed (or an upstream one without any) has neither: undefined.
 */
export function encryptionFor(me: GatewayEncryption, peer: GatewayEncryption): EncryptionPolicy | undefined {
  if (me.encryptionDefaults === undefined) return oldFormatEncryption(me, peer.pool);
  if (peer.encryptionDefaults === undefined) return oldFormatEncryption(peer, me.pool);
  const link = Object.hasOwn(me.encryptionLinks, peer.pool) ? me.encryptionLinks[peer.pool] : undefined;
  return mergeLinkPolicy(me.encryptionDefaults, { name: me.pool, encryption: me.encryptionPool }, { name: peer.pool, encryption: peer.encryptionPool }, link);
}

/** The old format's rule: the Gateway's encryption-overrides entry for `peer`, else its default. */
function oldFormatEncryption(links: GatewayEncryption, peer: string): EncryptionPolicy | undefined {
  if (!links.encryption) return undefined;
  return Object.hasOwn(links.encryptionOverrides, peer) ? links.encryptionOverrides[peer] : links.encryption;
}

/**
 * A Gateway's part in the pool-pair route rule (poolPairRoute), as every agent reads it. Behind NAT when its
 * endpoints say so or its active tunnel endpoint does; a pool without endpoints counts as not behind NAT (it has no
 * gateway anyway).
 */
export function gatewayRoutePool(gw: Gateway, links: GatewayLinks = readGatewayLinks(gw)): RoutePool {
  const active = (gw.status?.activeEndpoints ?? []).find((e) => e.type === 'tunnel');
  const out: RoutePool = {
    name: links.pool,
    nat: links.underNAT || active?.underNAT === true,
    hub: links.connectivity === 'hub',
    relaysFor: (pool) => links.relaysFor.includes(pool),
    allows: (peer) => mayPeer(links, peer),
  };
  if (links.relay !== undefined) out.relay = links.relay;
  return out;
}
