// TunnelPlan -> the swanctl connection the agent loads over VICI, plus what the agent reads back from list-sas.

import { createHash } from 'node:crypto';
import type { ConnConfig, IkeSaInfo } from './vici/index.ts';
import { CONN_PREFIX, canonicalPrefix, sortPrefixes, type IkePeerPlan, type TunnelPlan } from '../nodeplan/index.ts';

/** Dead-peer detection interval: an idle tunnel is probed this often, so a dead peer is noticed. */
export const DPD_DELAY = '5s';

/**
 * The IKEv2 connections of a tunnel, one per gateway candidate of the peer pool (TunnelPlan.peers), each with the
 * tunnel's one CHILD_SA (named as the tunnel) carrying all local subnets to all remote subnets. Exactly one mechanism
 * starts a tunnel: the agent, which initiates explicitly (start_action `none`; `trap` drops packets with
 * kernel-libipsec) at every reconcile that finds it down, and reconciles right after a VICI down event. charon itself
 * never restarts it (close_action `none`, dpd_action `clear`): a charon-side restart racing the agent's initiate made
 * two handshakes, one of them possibly against the peer's old config.
 */
export function tunnelConns(t: TunnelPlan): Array<{ name: string; conn: ConnConfig }> {
  return t.peers.map((p) => ({ name: p.conn, conn: peerConn(t, p) }));
}

function peerConn(t: TunnelPlan, p: IkePeerPlan): ConnConfig {
  const conn: ConnConfig = {
    version: 2,
    // No local_addrs: IKE binds to any address and the kernel picks the source towards the peer. A gateway reached
    // on a public address it holds on another interface (or behind 1:1 NAT) then works as well as one on a flat
    // network; identities and the PSK, not addresses, authenticate the peer.
    remote_addrs: [p.addr],
    proposals: [...t.ikeProposals],
    dpd_delay: DPD_DELAY,
    local: { auth: 'psk', id: t.localId },
    remote: { auth: 'psk', id: p.id },
    // A candidate's new IKE_SA (its charon restarted) replaces its old one at once, rather than both living until
    // dead-peer detection. Another candidate's is another identity: a hand-over keeps both until the CHILD_SA moved.
    unique: 'replace',
    // A hand-over's successor brings up its IKE_SA without a CHILD_SA, and its peer creates the CHILD_SA on it
    // (planViciActions): the side that keeps sending is the one that installs last.
    childless: 'allow',
    children: {
      [t.name]: {
        local_ts: [...t.localTs],
        remote_ts: [...t.remoteTs],
        esp_proposals: [...t.espProposals],
        mode: 'tunnel',
        start_action: 'none',
        dpd_action: 'clear',
        close_action: 'none',
      },
    },
  };
  if (p.port !== undefined) {
    conn.remote_port = p.port;
    // IKE to a port other than 500 goes out from 4500 with the non-ESP marker from the first packet. From port 500 a
    // NAT may still hold the mapping of another node behind it, and the peer would take the packets for ESP.
    if (p.port !== 500) conn.local_port = 4500;
  }
  return conn;
}

/** Stable fingerprint of a connection config (what the agent compares to decide on a reload). */
export function connHash(conn: ConnConfig): string {
  return createHash('sha256').update(JSON.stringify(sortKeys(conn))).digest('hex').slice(0, 16);
}

function sortKeys(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(sortKeys);
  if (v !== null && typeof v === 'object') {
    const out: Record<string, unknown> = {};
    for (const k of Object.keys(v).sort()) out[k] = sortKeys((v as Record<string, unknown>)[k]);
    return out;
  }
  return v;
}

export function ours(name: string): boolean {
  return name.startsWith(CONN_PREFIX);
}

const UP_CHILD_STATES = new Set(['INSTALLED', 'REKEYING', 'REKEYED']);
const PENDING_CHILD_STATES = new Set(['CREATED', 'ROUTED', 'INSTALLING']);

export interface SaSummary {
  /** An ESTABLISHED IKE_SA with an installed CHILD_SA of this connection. */
  up: boolean;
  /** A handshake in progress (IKE_SA CONNECTING, or a CHILD_SA being set up). */
  pending: boolean;
  bytesIn: number;
  bytesOut: number;
  /** The peer's address of an ESTABLISHED IKE_SA with an installed CHILD_SA (where a NAT'd peer was found). */
  remoteHost?: string;
  /** Per CHILD_SA unique id: bytes so far (for monotonic counters). */
  children: Array<{ uniqueId: string; bytesIn: number; bytesOut: number; localTs: string[]; remoteTs: string[]; up: boolean }>;
}

/** What list-sas says about the CHILD_SAs `child` on the IKE_SAs of connection `ike`. */
export function summariseSas(sas: readonly IkeSaInfo[], ike: string, child: string): SaSummary {
  const out: SaSummary = { up: false, pending: false, bytesIn: 0, bytesOut: 0, children: [] };
  for (const sa of sas) {
    if (sa.name !== ike) continue;
    if (sa.state === 'CONNECTING') out.pending = true;
    for (const c of sa.children) {
      if (c.name !== child) continue;
      const up = sa.state === 'ESTABLISHED' && UP_CHILD_STATES.has(c.state);
      if (up) out.up = true;
      if (up && sa.remoteHost !== undefined) out.remoteHost ??= sa.remoteHost;
      if (PENDING_CHILD_STATES.has(c.state)) out.pending = true;
      out.bytesIn += c.bytesIn;
      out.bytesOut += c.bytesOut;
      out.children.push({ uniqueId: c.uniqueId, bytesIn: c.bytesIn, bytesOut: c.bytesOut, localTs: c.localTs, remoteTs: c.remoteTs, up });
    }
  }
  return out;
}

function canonList(list: string[]): string {
  return sortPrefixes(list.map((s) => canonicalPrefix(s) ?? s)).join(',');
}

/** Whether an installed CHILD_SA carries exactly the tunnel's traffic selectors. */
export function saMatchesTunnel(s: SaSummary, t: TunnelPlan): boolean {
  const l = canonList(t.localTs);
  const r = canonList(t.remoteTs);
  return s.children.some((c) => c.up && canonList(c.localTs) === l && canonList(c.remoteTs) === r);
}
