// The agent's heartbeat: a coordination.k8s.io/v1 Lease per gateway candidate (name = node name, holderIdentity =
// node name), renewed every renewInterval. The active gateway also reports per-peer tunnel state in the Lease
// annotation corvid.dev/tunnels = JSON {peerPool: {up, since}}, and every candidate its WireGuard public key in
// corvid.dev/wireguard-public-key. Annotations are written only when they change, so an ordinary renewal is a merge
// patch of spec.renewTime alone. The reader side is leases.ts.

import type { KubeConfig } from './kubeconfig.ts';
import { DATAPATH_DOWN_ANNOTATION, HANDOVER_WANTED_ANNOTATION, TUNNEL_HEALTH_ANNOTATION, UNREACHABLE_ANNOTATION, WIREGUARD_KEY_LEASE_ANNOTATION } from '../../gateway/keys.ts';
import { CONTENT_TYPE, errorMessage, kubeRequest, statusCode } from './client.ts';
import { DEFAULT_LEASE_NAMESPACE, leasesPath, type LeaseJson } from './leases.ts';

export interface TunnelHealth {
  up: boolean;
  /** RFC 3339 time since which `up` has had this value. */
  since: string;
}

export interface HeartbeatOptions {
  kc: KubeConfig;
  nodeName: string;
  /** Default corvid-heartbeats. */
  namespace?: string;
  /** Default 1000 ms. */
  renewIntervalMs?: number;
  /** Default 3 s. */
  leaseDurationSeconds?: number;
  now?: () => Date;
  /** Called on the first failure after a success and on recovery (not on every failed renewal). */
  onStateChange?: (ok: boolean, detail: string) => void;
}

/** Kubernetes MicroTime: RFC 3339 with exactly six fractional digits. */
export function microTime(d: Date): string {
  return d.toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');
}

/** Canonical annotation value: peers sorted, keys in a fixed order. */
export function encodeTunnels(t: Record<string, TunnelHealth>): string {
  const out: Record<string, TunnelHealth> = {};
  for (const peer of Object.keys(t).sort()) out[peer] = { up: t[peer].up, since: t[peer].since };
  return JSON.stringify(out);
}

export class Heartbeat {
  private readonly o: Required<Omit<HeartbeatOptions, 'onStateChange'>> & Pick<HeartbeatOptions, 'onStateChange'>;
  private enabled = false;
  /** Desired annotation values; null = no annotation. */
  private readonly desired: Annotations = { ...NO_ANNOTATIONS };
  /** What the Lease holds as far as we know; undefined = unknown (read it first). */
  private written: Annotations | undefined;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private stopped = true;
  private lastOk: boolean | undefined;
  /** Time of the last successful renewal. */
  lastRenew: Date | undefined;
  /** Renewals and writes performed (for tests and metrics); a write that changes both annotations counts once. */
  readonly counts = { creates: 0, renewals: 0, annotationWrites: 0, errors: 0 };

  constructor(opts: HeartbeatOptions) {
    this.o = {
      kc: opts.kc,
      nodeName: opts.nodeName,
      namespace: opts.namespace ?? DEFAULT_LEASE_NAMESPACE,
      renewIntervalMs: opts.renewIntervalMs ?? 1000,
      leaseDurationSeconds: opts.leaseDurationSeconds ?? 3,
      now: opts.now ?? (() => new Date()),
      onStateChange: opts.onStateChange,
    };
  }

  /**
   * Only gateway candidates heartbeat. Turning it on writes at once (a new candidate is elected only once its
   * heartbeat is seen, not one renew interval later); turning it off stops renewing (the Lease then expires).
   */
  setEnabled(on: boolean): void {
    const was = this.enabled;
    this.enabled = on;
    if (on && !was) this.kick();
  }

  get isEnabled(): boolean {
    return this.enabled;
  }

  /**
   * The active gateway's tunnel state; undefined removes the annotation (not the active gateway). Returns whether
   * the annotation value changed.
   */
  setTunnels(t: Record<string, TunnelHealth> | undefined): boolean {
    return this.desire('tunnels', t === undefined ? null : encodeTunnels(t));
  }

  /** This node's WireGuard public key; undefined removes the annotation. Returns whether the value changed. */
  setWireguardKey(key: string | undefined): boolean {
    return this.desire('wireguardKey', key ?? null);
  }

  /**
   * Why this node cannot forward (charon not answering, forwarding off); undefined when it can. Returns whether the
   * value changed (the caller kicks a renewal, so the sync hears of it at once).
   */
  setDatapathDown(reason: string | undefined): boolean {
    return this.desire('datapathDown', reason ?? null);
  }

  /**
   * Why this node, an active gateway, asks for its role to go to another candidate; undefined when it does not.
   * Returns whether the value changed (the caller kicks a renewal).
   */
  setHandoverWanted(reason: string | undefined): boolean {
    return this.desire('handoverWanted', reason ?? null);
  }

  /**
   * The other candidates of this node's pool that it cannot reach over the LAN (sorted); empty or undefined removes
   * the annotation. Returns whether the value changed (the caller kicks a renewal).
   */
  setUnreachable(nodes: readonly string[] | undefined): boolean {
    return this.desire('unreachable', nodes === undefined || nodes.length === 0 ? null : [...nodes].sort().join(','));
  }

  /** Set a desired annotation value; whether it changed. */
  private desire(field: keyof Annotations, value: string | null): boolean {
    const changed = value !== this.desired[field];
    this.desired[field] = value;
    return changed;
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.tick();
  }

  /** Renew now instead of at the next interval (a changed tunnel state is written at once). */
  kick(): void {
    if (this.stopped || !this.enabled) return;
    if (this.running) {
      this.kickWanted = true;
      return;
    }
    if (this.timer) clearTimeout(this.timer);
    this.tick();
  }

  private kickWanted = false;

  private tick(): void {
    if (this.stopped) return;
    this.kickWanted = false;
    this.running = this.renew().finally(() => {
      this.running = undefined;
      if (!this.stopped) this.timer = setTimeout(() => this.tick(), this.kickWanted ? 0 : this.o.renewIntervalMs);
    });
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await this.running;
  }

  /**
   * Stop, then give the Lease up (holderIdentity "", tunnel annotation removed) so the sync moves the election at
   * once instead of after the heartbeat timeout. Only a Lease this heartbeat still holds is touched (a JSON patch
   * that tests the holder). Best effort: a failed write is reported, never thrown; the Lease then simply expires.
   */
  async release(timeoutMs = 3_000): Promise<{ released: true } | { released: false; error?: string }> {
    await this.stop();
    if (!this.enabled || this.written === undefined) return { released: false };
    const ops: Record<string, unknown>[] = [
      { op: 'test', path: '/spec/holderIdentity', value: this.o.nodeName },
      { op: 'replace', path: '/spec/holderIdentity', value: '' },
    ];
    // The key stays: it is still this node's, and a restart publishes the same one.
    if (this.written.tunnels !== null) ops.push({ op: 'remove', path: `/metadata/annotations/${TUNNEL_HEALTH_ANNOTATION.replace('/', '~1')}` });
    try {
      await kubeRequest(this.o.kc, { method: 'PATCH', path: this.path(this.o.nodeName), body: ops, contentType: CONTENT_TYPE.jsonPatch, timeoutMs });
      this.written = undefined;
      return { released: true };
    } catch (e) {
      return { released: false, error: errorMessage(e) };
    }
  }

  private path(name?: string): string {
    const base = leasesPath(this.o.namespace);
    return name === undefined ? base : `${base}/${encodeURIComponent(name)}`;
  }

  /** One renewal round. Never throws. */
  async renew(): Promise<void> {
    if (!this.enabled) return;
    try {
      await this.renewOnce();
      this.lastRenew = this.o.now();
      this.report(true, 'renewed');
    } catch (e) {
      this.counts.errors++;
      if (statusCode(e) === 404 || statusCode(e) === 409) this.written = undefined;
      this.report(false, errorMessage(e));
    }
  }

  private report(ok: boolean, detail: string): void {
    if (this.lastOk !== ok) this.o.onStateChange?.(ok, detail);
    this.lastOk = ok;
  }

  private async renewOnce(): Promise<void> {
    const kc = this.o.kc;
    const now = microTime(this.o.now());
    const name = this.o.nodeName;
    // What this round writes: setTunnels may change the desired value while a request is in flight, and `written`
    // must record what was really sent, or the change would never be written.
    const want: Annotations = { ...this.desired };
    if (this.written === undefined) {
      let lease: LeaseJson | undefined;
      try {
        lease = await kubeRequest<LeaseJson>(kc, { method: 'GET', path: this.path(name), timeoutMs: 10_000 });
      } catch (e) {
        if (statusCode(e) !== 404) throw e;
      }
      if (lease === undefined) {
        const annotations = annotationPatch(NO_ANNOTATIONS, want);
        const body: LeaseJson = {
          apiVersion: 'coordination.k8s.io/v1',
          kind: 'Lease',
          metadata: { name, namespace: this.o.namespace, ...(annotations !== undefined ? { annotations } : {}) },
          spec: { holderIdentity: name, leaseDurationSeconds: this.o.leaseDurationSeconds, acquireTime: now, renewTime: now, leaseTransitions: 0 },
        } as LeaseJson;
        await kubeRequest(kc, { method: 'POST', path: this.path(), body, timeoutMs: 10_000 });
        this.counts.creates++;
        if (annotations !== undefined) this.counts.annotationWrites++;
        this.written = want;
        return;
      }
      // Take over an existing Lease (ours from an earlier run, or left behind): fix holder and duration once.
      const spec: Record<string, unknown> = { renewTime: now };
      if (lease.spec?.holderIdentity !== name) {
        spec.holderIdentity = name;
        spec.acquireTime = now;
        spec.leaseTransitions = (lease.spec?.leaseTransitions ?? 0) + 1;
      }
      if (lease.spec?.leaseDurationSeconds !== this.o.leaseDurationSeconds) spec.leaseDurationSeconds = this.o.leaseDurationSeconds;
      const current = { ...NO_ANNOTATIONS };
      for (const field of ANNOTATION_FIELDS) current[field] = lease.metadata?.annotations?.[ANNOTATION_KEYS[field]] ?? null;
      await this.renewWith(spec, current, want);
      return;
    }
    await this.renewWith({ renewTime: now }, this.written, want);
  }

  /** A merge patch of `spec` and of the annotations that differ from what the Lease holds. */
  private async renewWith(spec: Record<string, unknown>, current: Annotations, want: Annotations): Promise<void> {
    const body: Record<string, unknown> = { spec };
    const annotations = annotationPatch(current, want);
    if (annotations !== undefined) body.metadata = { annotations };
    await this.patch(body);
    this.counts.renewals++;
    if (annotations !== undefined) this.counts.annotationWrites++;
    this.written = want;
  }

  private async patch(body: Record<string, unknown>): Promise<void> {
    await kubeRequest(this.o.kc, {
      method: 'PATCH',
      path: this.path(this.o.nodeName),
      body,
      contentType: CONTENT_TYPE.mergePatch,
      timeoutMs: 10_000,
    });
  }
}

/** The annotations the agent writes on its Lease, by the field that holds each. */
const ANNOTATION_KEYS = {
  tunnels: TUNNEL_HEALTH_ANNOTATION,
  wireguardKey: WIREGUARD_KEY_LEASE_ANNOTATION,
  datapathDown: DATAPATH_DOWN_ANNOTATION,
  handoverWanted: HANDOVER_WANTED_ANNOTATION,
  unreachable: UNREACHABLE_ANNOTATION,
} as const;
const ANNOTATION_FIELDS = Object.keys(ANNOTATION_KEYS) as Array<keyof typeof ANNOTATION_KEYS>;

/** Their values; null = absent. */
type Annotations = Record<keyof typeof ANNOTATION_KEYS, string | null>;

const NO_ANNOTATIONS: Readonly<Annotations> = { tunnels: null, wireguardKey: null, datapathDown: null, handoverWanted: null, unreachable: null };

/** The merge-patch annotations that turn `current` into `want` (null removes one); undefined when equal. */
function annotationPatch(current: Annotations, want: Annotations): Record<string, string | null> | undefined {
  const out: Record<string, string | null> = {};
  for (const field of ANNOTATION_FIELDS) if (current[field] !== want[field]) out[ANNOTATION_KEYS[field]] = want[field];
  return Object.keys(out).length === 0 ? undefined : out;
}
