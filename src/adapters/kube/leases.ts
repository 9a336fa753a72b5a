// Heartbeat Leases (coordination.k8s.io/v1, one per node, written by the agents): list, watch, convert to the
// planner's HeartbeatLease. The agent's writer is heartbeat.ts; this is the reader.

import type { KubeConfig } from './kubeconfig.ts';
import { DATAPATH_DOWN_ANNOTATION, HANDOVER_WANTED_ANNOTATION, TUNNEL_HEALTH_ANNOTATION, UNREACHABLE_ANNOTATION, WIREGUARD_KEY_LEASE_ANNOTATION } from '../../gateway/keys.ts';
import { isWireguardKey } from '../../gateway/wireguard.ts';
import type { HeartbeatLease } from '../../plan/health.ts';
import { isDnsSubdomain } from '../../plan/selector.ts';
import { listAll, type KubeObject } from './client.ts';
import { Informer, type InformerOptions } from './informer.ts';

/**
 * The heartbeats' own namespace: agents may write Leases here and nowhere else, so no agent can touch the sync's
 * leader Lease (in corvid-system).
 */
export const DEFAULT_LEASE_NAMESPACE = 'corvid-heartbeats';

/** The longest datapath-down reason carried into status (the agent writes far shorter ones). */
export const DATAPATH_REASON_MAX = 200;

/** The most nodes one unreachable report names (a pool has a handful of candidates); the rest is ignored. */
export const UNREACHABLE_REPORT_MAX = 16;

/** Leases of the sync's own leader election; never heartbeats. */
export const LEADER_LEASE_NAME = 'corvid-sync-leader';

export function leasesPath(namespace: string): string {
  return `/apis/coordination.k8s.io/v1/namespaces/${encodeURIComponent(namespace)}/leases`;
}

/** A coordination.k8s.io/v1 Lease as wire JSON. */
export interface LeaseJson extends KubeObject {
  spec?: {
    holderIdentity?: string;
    leaseDurationSeconds?: number;
    acquireTime?: string;
    renewTime?: string;
    leaseTransitions?: number;
  };
}

/**
 * The planner's view of a heartbeat Lease: node = Lease name; times as sent; tunnels from the corvid.dev/tunnels
 * annotation (an unparsable annotation is left out rather than guessed at); released when the holder is ""; the
 * WireGuard public key when the annotation holds one; datapathDown from corvid.dev/datapath-down; handoverWanted from
 * corvid.dev/handover-wanted.
 * Returns undefined for the leader Lease.
 */
export function heartbeatFromLease(lease: LeaseJson): HeartbeatLease | undefined {
  const name = lease.metadata?.name;
  if (!name || name === LEADER_LEASE_NAME) return undefined;
  const hb: HeartbeatLease = { node: name };
  const spec = lease.spec ?? {};
  if (spec.renewTime) hb.renewTime = spec.renewTime;
  if (spec.acquireTime) hb.acquireTime = spec.acquireTime;
  if (typeof spec.leaseDurationSeconds === 'number') hb.leaseDurationSeconds = spec.leaseDurationSeconds;
  // Released the way client-go's leader election does it: the holder is set to "" (absent = never claimed).
  if (spec.holderIdentity === '') hb.released = true;
  const raw = lease.metadata?.annotations?.[TUNNEL_HEALTH_ANNOTATION];
  if (raw !== undefined) {
    const tunnels = parseTunnels(raw);
    if (tunnels !== undefined) hb.tunnels = tunnels;
  }
  const key = lease.metadata?.annotations?.[WIREGUARD_KEY_LEASE_ANNOTATION];
  if (isWireguardKey(key)) hb.wireguardKey = key;
  const down = agentReason(lease.metadata?.annotations?.[DATAPATH_DOWN_ANNOTATION], 'datapath down');
  if (down !== undefined) hb.datapathDown = down;
  const handover = agentReason(lease.metadata?.annotations?.[HANDOVER_WANTED_ANNOTATION], 'handover wanted');
  if (handover !== undefined) hb.handoverWanted = handover;
  const unreachable = parseUnreachable(lease.metadata?.annotations?.[UNREACHABLE_ANNOTATION]);
  if (unreachable.length > 0) hb.unreachable = unreachable;
  return hb;
}

/**
 * An agent's verdict annotation (datapath-down, handover-wanted): any value says yes; the text is the agent's reason,
 * shortened for status and logs, and `empty` stands in for none.
 */
function agentReason(raw: string | undefined, empty: string): string | undefined {
  if (raw === undefined) return undefined;
  return raw === '' ? empty : raw.slice(0, DATAPATH_REASON_MAX);
}

/** corvid.dev/unreachable: node names, comma-separated; anything that is not a node name is dropped. */
export function parseUnreachable(raw: string | undefined): string[] {
  if (raw === undefined) return [];
  const names = raw.split(',').map((x) => x.trim()).filter(isDnsSubdomain);
  return [...new Set(names)].sort().slice(0, UNREACHABLE_REPORT_MAX);
}

function parseTunnels(raw: string): HeartbeatLease['tunnels'] {
  let v: unknown;
  try {
    v = JSON.parse(raw);
  } catch {
    return undefined;
  }
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return undefined;
  const out: NonNullable<HeartbeatLease['tunnels']> = {};
  for (const [peer, t] of Object.entries(v as Record<string, unknown>)) {
    if (t === null || typeof t !== 'object') continue;
    const { up, since } = t as { up?: unknown; since?: unknown };
    if (typeof up !== 'boolean') continue;
    out[peer] = { up, since: typeof since === 'string' ? since : '' };
  }
  return out;
}

/** Heartbeat Leases of a namespace, converted. */
export async function listHeartbeatLeases(kc: KubeConfig, namespace = DEFAULT_LEASE_NAMESPACE): Promise<HeartbeatLease[]> {
  const { items } = await listAll<LeaseJson>(kc, leasesPath(namespace));
  return heartbeatsFrom(items);
}

/** Convert a list of Leases (e.g. an informer's cache), dropping the non-heartbeat ones. */
export function heartbeatsFrom(leases: readonly LeaseJson[]): HeartbeatLease[] {
  const out: HeartbeatLease[] = [];
  for (const l of leases) {
    const hb = heartbeatFromLease(l);
    if (hb !== undefined) out.push(hb);
  }
  return out;
}

/** An informer on the Leases of one namespace. */
export function leaseInformer(
  kc: KubeConfig,
  namespace = DEFAULT_LEASE_NAMESPACE,
  opts: Omit<InformerOptions, 'path'> = {},
): Informer<LeaseJson> {
  return new Informer<LeaseJson>(kc, { ...opts, path: leasesPath(namespace) });
}
