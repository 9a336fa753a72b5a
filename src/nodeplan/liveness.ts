// Liveness on the data plane: the gateway candidates of a pool watch one another over their LAN (a UDP probe every
// few tens of milliseconds, answered by each candidate's agent), and each reports on its heartbeat Lease which of the
// others it cannot reach. A report is written when the verdict changes, not on every probe; the sync takes a
// candidate reported unreachable by another live candidate of its pool out of the election at once
// (plan/health.ts, plan/election.ts). Pure.
import type { Gateway } from '../gateway/types.ts';
import { candidateNodes } from '../gateway/candidates.ts';

/** A candidate of this node's pool that this node watches, at the LAN address its Gateway gives. */
export interface LivenessTarget {
  node: string;
  address: string;
}

/**
 * The other gateway candidates of every pool this node is a candidate of (spec.endpoints of type tunnel), at their
 * privateIP from the Gateway's status.nodes. A candidate with no known address is left out (nothing to probe).
 * Sorted by node name.
 */
export function livenessTargets(gateways: readonly Gateway[], nodeName: string): LivenessTarget[] {
  const out = new Map<string, string>();
  for (const g of gateways) {
    const candidates = candidateNodes(g);
    if (!candidates.includes(nodeName)) continue;
    const ipOf = new Map((g.status?.nodes ?? []).map((n) => [n.nodeName, n.privateIP]));
    for (const c of candidates) {
      const ip = ipOf.get(c);
      if (c !== nodeName && ip !== undefined && ip !== '') out.set(c, ip);
    }
  }
  return [...out].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([node, address]) => ({ node, address }));
}

export interface LivenessSettings {
  /** How often each target is probed. */
  probeIntervalMs: number;
  /** A target that has answered nothing for this long is unreachable. */
  downAfterMs: number;
}

/**
 * The defaults: a probe every 50 ms, unreachable after 400 ms of silence (BFD-style: a fixed number of missed probes,
 * eight). At 5 % random loss each way (about one probe in ten lost on its round trip), eight in a row are lost about
 * once in 10^8 windows, one false verdict in about two months of such loss per pair of candidates. A dead candidate
 * is seen within 0.4–0.45 s.
 */
export const DEFAULT_LIVENESS: LivenessSettings = { probeIntervalMs: 50, downAfterMs: 400 };

/** What the prober saw of one target. */
export interface TargetObservation {
  node: string;
  /** The last answer from it. */
  lastReplyMs?: number;
  /** Probes sent to it since its last answer (or since it was first watched). */
  unansweredProbes: number;
}

/**
 * Whether the prober itself was not running between two of its judgements, taken every half probe interval: for
 * downAfterMs or more (a paused process, a stalled event loop, a host that did not schedule it). What it did not hear
 * meanwhile says nothing of its targets, and what it hears next may be a backlog from that time: it starts each
 * target's silence afresh (ProbeBook.restart), so a target is judged only on a silence the prober was there for.
 */
export function proberWasAway(previousJudgementMs: number, nowMs: number, s: LivenessSettings): boolean {
  return nowMs - previousJudgementMs >= s.downAfterMs;
}

/**
 * The targets that are unreachable at nowMs: heard at least once, then silent for downAfterMs, and probed at least as
 * many times in that silence as the settings promise (downAfter / interval). A target never heard is not judged: its
 * agent may not have opened its socket yet (candidates start seconds apart), or a firewall drops the port; its
 * heartbeat still tells. The probe count keeps a prober that was not running (a stalled event loop, a paused
 * process) from blaming its own silence on the target. Sorted.
 */
export function unreachableTargets(observations: readonly TargetObservation[], nowMs: number, s: LivenessSettings): string[] {
  const minProbes = Math.max(1, Math.floor(s.downAfterMs / s.probeIntervalMs));
  return observations
    .filter((o) => o.lastReplyMs !== undefined && nowMs - o.lastReplyMs >= s.downAfterMs && o.unansweredProbes >= minProbes)
    .map((o) => o.node)
    .sort();
}
