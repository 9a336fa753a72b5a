// Leader election on a coordination.k8s.io/v1 Lease, the client-go way:
// - A candidate takes the Lease when it does not exist, is released (no holder), or has not changed for
//   leaseDuration by the candidate's own clock (so clock skew between replicas does not matter).
// - The leader renews every retryPeriod; if it has not renewed successfully for renewDeadline it stops leading.
//   isLeader() checks that deadline itself, so a stuck renew loop can never leave a stale leader writing.
// - Updates carry the resourceVersion, so two candidates can never both win the same round.
// - stop() stops leading at once, then releases the Lease (holder cleared) so a standby takes over within a retry.

import type { KubeConfig } from './kubeconfig.ts';
import { errorMessage, kubeRequest, statusCode } from './client.ts';
import { microTime } from './events.ts';
import { LEADER_LEASE_NAME, leasesPath, type LeaseJson } from './leases.ts';
import { setTimeout as delay } from 'node:timers/promises';

export interface LeaderElectionOptions {
  namespace: string;
  /** Lease name; default corvid-sync-leader. */
  name?: string;
  /** This replica's identity (pod name plus a random suffix, say). */
  identity: string;
  /** How long a non-leader waits after the last observed change before taking over. Default 15 s. */
  leaseDurationMs?: number;
  /** How long the leader keeps trying to renew before it gives up leading. Default 10 s. */
  renewDeadlineMs?: number;
  /** Interval between tries. Default 2 s. */
  retryPeriodMs?: number;
  onStartedLeading?: () => void;
  onStoppedLeading?: () => void;
  /** Called whenever the observed holder changes (including to this replica). */
  onNewLeader?: (identity: string) => void;
  onError?: (e: unknown) => void;
  /** Clock; default Date.now. */
  now?: () => number;
}

// Resolves after ms, or at once when the signal aborts (never rejects).
function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return delay(ms, undefined, { signal }).then(
    () => undefined,
    () => undefined,
  );
}

export class LeaderElector {
  readonly identity: string;
  private readonly kc: KubeConfig;
  private readonly o: Required<Pick<LeaderElectionOptions, 'leaseDurationMs' | 'renewDeadlineMs' | 'retryPeriodMs'>> &
    LeaderElectionOptions;
  private readonly name: string;
  private readonly clock: () => number;
  private leading = false;
  private lastRenew = 0;
  private observed: { key: string; at: number } | undefined;
  private observedHolder = '';
  private abort: AbortController | undefined;
  private running: Promise<void> | undefined;
  private lease: LeaseJson | undefined;

  constructor(kc: KubeConfig, opts: LeaderElectionOptions) {
    this.kc = kc;
    this.o = { leaseDurationMs: 15_000, renewDeadlineMs: 10_000, retryPeriodMs: 2_000, ...opts };
    if (this.o.renewDeadlineMs >= this.o.leaseDurationMs) throw new Error('renewDeadline must be shorter than leaseDuration');
    if (this.o.retryPeriodMs >= this.o.renewDeadlineMs) throw new Error('retryPeriod must be shorter than renewDeadline');
    this.identity = opts.identity;
    this.name = opts.name ?? LEADER_LEASE_NAME;
    this.clock = opts.now ?? Date.now;
  }

  /** True only while this replica holds the Lease and renewed it within renewDeadline. Check before every write. */
  isLeader(): boolean {
    if (!this.leading) return false;
    if (this.clock() - this.lastRenew > this.o.renewDeadlineMs) {
      this.loseLeadership();
      return false;
    }
    return true;
  }

  /** The holder last seen on the Lease ('' when none). */
  leader(): string {
    return this.observedHolder;
  }

  start(): void {
    if (this.running !== undefined) return;
    this.abort = new AbortController();
    this.running = this.loop(this.abort.signal);
  }

  /** Stop leading immediately (no write after this returns... or starts), then release the Lease. */
  async stop(opts: { release?: boolean } = {}): Promise<void> {
    const wasLeading = this.leading;
    this.abort?.abort();
    if (this.leading) this.loseLeadership();
    await this.running;
    this.running = undefined;
    if (wasLeading && opts.release !== false) {
      try {
        await this.release();
      } catch (e) {
        this.o.onError?.(e);
      }
    }
  }

  private loseLeadership(): void {
    if (!this.leading) return;
    this.leading = false;
    try {
      this.o.onStoppedLeading?.();
    } catch {
      // ignore
    }
  }

  private async loop(signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      let ok = false;
      try {
        ok = await this.tryAcquireOrRenew(signal);
      } catch (e) {
        if (signal.aborted) break;
        this.o.onError?.(e);
      }
      if (signal.aborted) break;
      const now = this.clock();
      if (ok) {
        this.lastRenew = now;
        if (!this.leading) {
          this.leading = true;
          try {
            this.o.onStartedLeading?.();
          } catch {
            // ignore
          }
        }
      } else if (this.leading && now - this.lastRenew > this.o.renewDeadlineMs) {
        this.loseLeadership();
      }
      // Candidates retry with jitter (client-go: JitterFactor 1.2); the leader renews on the period.
      const wait = this.leading ? this.o.retryPeriodMs : this.o.retryPeriodMs * (1 + Math.random() * 0.2);
      await sleep(wait, signal);
    }
  }

  private observe(lease: LeaseJson): void {
    const spec = lease.spec ?? {};
    const key = `${spec.holderIdentity ?? ''}|${spec.renewTime ?? ''}|${spec.leaseTransitions ?? ''}`;
    if (this.observed === undefined || this.observed.key !== key) this.observed = { key, at: this.clock() };
    const holder = spec.holderIdentity ?? '';
    if (holder !== this.observedHolder) {
      this.observedHolder = holder;
      if (holder !== '') this.o.onNewLeader?.(holder);
    }
  }

  private async tryAcquireOrRenew(signal: AbortSignal): Promise<boolean> {
    const path = `${leasesPath(this.o.namespace)}/${encodeURIComponent(this.name)}`;
    const timeoutMs = Math.max(500, this.o.retryPeriodMs);
    const nowText = microTime(new Date(this.clock()));
    const durationS = Math.max(1, Math.ceil(this.o.leaseDurationMs / 1000));
    let current: LeaseJson | undefined;
    try {
      current = await kubeRequest<LeaseJson>(this.kc, { method: 'GET', path, timeoutMs, signal });
    } catch (e) {
      if (statusCode(e) !== 404) throw e;
    }
    if (current === undefined) {
      try {
        this.lease = await kubeRequest<LeaseJson>(this.kc, {
          method: 'POST',
          path: leasesPath(this.o.namespace),
          timeoutMs,
          signal,
          body: {
            apiVersion: 'coordination.k8s.io/v1',
            kind: 'Lease',
            metadata: { name: this.name, namespace: this.o.namespace },
            spec: {
              holderIdentity: this.identity,
              leaseDurationSeconds: durationS,
              acquireTime: nowText,
              renewTime: nowText,
              leaseTransitions: 0,
            },
          },
        });
        this.observe(this.lease);
        return true;
      } catch (e) {
        if (statusCode(e) === 409) return false;
        throw e;
      }
    }
    this.observe(current);
    const spec = current.spec ?? {};
    const holder = spec.holderIdentity ?? '';
    const mine = holder === this.identity;
    if (!mine && holder !== '' && this.observed !== undefined && this.observed.at + this.o.leaseDurationMs > this.clock()) {
      // Someone else holds it: if we thought we led, we do not any more, as of now (not after renewDeadline).
      this.loseLeadership();
      return false;
    }
    const next: LeaseJson = {
      ...current,
      spec: {
        ...spec,
        holderIdentity: this.identity,
        leaseDurationSeconds: durationS,
        renewTime: nowText,
        acquireTime: mine && spec.acquireTime ? spec.acquireTime : nowText,
        leaseTransitions: mine ? (spec.leaseTransitions ?? 0) : (spec.leaseTransitions ?? 0) + 1,
      },
    };
    try {
      this.lease = await kubeRequest<LeaseJson>(this.kc, { method: 'PUT', path, body: next, timeoutMs, signal });
      this.observe(this.lease);
      return true;
    } catch (e) {
      if (statusCode(e) === 409) return false;
      throw new Error(`leader election: renew ${this.o.namespace}/${this.name}: ${errorMessage(e)}`);
    }
  }

  private async release(): Promise<void> {
    const path = `${leasesPath(this.o.namespace)}/${encodeURIComponent(this.name)}`;
    const current = await kubeRequest<LeaseJson>(this.kc, { method: 'GET', path, timeoutMs: 2000 });
    if (current.spec?.holderIdentity !== this.identity) return;
    const nowText = microTime(new Date(this.clock()));
    await kubeRequest(this.kc, {
      method: 'PUT',
      path,
      timeoutMs: 2000,
      body: {
        ...current,
        spec: { ...current.spec, holderIdentity: '', leaseDurationSeconds: 1, renewTime: nowText, acquireTime: nowText },
      },
    });
  }
}
