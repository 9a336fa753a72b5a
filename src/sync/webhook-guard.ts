// What the push webhook lets through besides a valid signature: a rate limit, and no replays.
//
// - Rate: a token bucket over every request (checked before the HMAC, so a flood costs nothing but this), answered
//   429 with Retry-After when empty. One bucket for the endpoint: pushes come from a forge's few addresses.
// - Replays: the signature covers only the body, so a captured request can be sent again at will (with any headers).
//   A delivery is remembered by its body's digest and by its delivery id (X-GitHub-Delivery, X-Gitea-Delivery) for
//   `windowMs`; the same one again inside the window is refused (409). A body that says when it was pushed (GitHub's
//   repository.pushed_at) and is older than the window is refused too (403), so a replay cannot wait the window out.
//   Memory is bounded: at most `maxRemembered` deliveries, the oldest forgotten first.
// Pure but for the clock, which is injected.

import { createHash } from 'node:crypto';

export interface WebhookGuardOptions {
  /** Requests per second allowed in the long run. Default 5. */
  ratePerSecond?: number;
  /** Requests allowed at once after a quiet spell. Default 20. */
  burst?: number;
  /** How long a delivery is remembered, and how old a pushed_at may be. Default 10 minutes. */
  windowMs?: number;
  /** Deliveries remembered at most. Default 4096. */
  maxRemembered?: number;
  now?: () => number;
}

export type GuardVerdict = { ok: true } | { ok: false; status: 403 | 409 | 429; reason: string; retryAfterS?: number };

function header(headers: Record<string, string | string[] | undefined>, name: string): string | undefined {
  const v = headers[name];
  return Array.isArray(v) ? v[0] : v;
}

/** repository.pushed_at (unix seconds) of a GitHub push payload, when the body has one. */
function pushedAtMs(body: Buffer): number | undefined {
  try {
    const j = JSON.parse(body.toString('utf8')) as { repository?: { pushed_at?: unknown } };
    const t = j?.repository?.pushed_at;
    return typeof t === 'number' && Number.isFinite(t) ? t * 1000 : undefined;
  } catch {
    return undefined;
  }
}

export class WebhookGuard {
  private readonly rate: number;
  private readonly burst: number;
  private readonly windowMs: number;
  private readonly max: number;
  private readonly now: () => number;
  private tokens: number;
  private refilledAt: number;
  /** Key (body digest or delivery id) -> when it was seen; insertion order is age order. */
  private readonly seen = new Map<string, number>();

  constructor(o: WebhookGuardOptions = {}) {
    this.rate = o.ratePerSecond ?? 5;
    this.burst = o.burst ?? 20;
    this.windowMs = o.windowMs ?? 10 * 60_000;
    this.max = o.maxRemembered ?? 4096;
    this.now = o.now ?? Date.now;
    this.tokens = this.burst;
    this.refilledAt = this.now();
  }

  /** Before anything else: one token per request. */
  admit(): GuardVerdict {
    const t = this.now();
    this.tokens = Math.min(this.burst, this.tokens + ((t - this.refilledAt) / 1000) * this.rate);
    this.refilledAt = t;
    if (this.tokens >= 1) {
      this.tokens -= 1;
      return { ok: true };
    }
    return { ok: false, status: 429, reason: 'too many webhook requests', retryAfterS: Math.max(1, Math.ceil((1 - this.tokens) / this.rate)) };
  }

  /** After a valid signature: refuse a delivery seen before or pushed too long ago, else remember it. */
  accept(headers: Record<string, string | string[] | undefined>, body: Buffer): GuardVerdict {
    const t = this.now();
    this.forget(t);
    const keys = [`body:${createHash('sha256').update(body).digest('hex')}`];
    const id = header(headers, 'x-github-delivery') ?? header(headers, 'x-gitea-delivery');
    if (id !== undefined && id !== '') keys.push(`id:${id.slice(0, 128)}`);
    if (keys.some((k) => this.seen.has(k))) return { ok: false, status: 409, reason: 'delivery already received (a replay)' };
    const pushed = pushedAtMs(body);
    if (pushed !== undefined && t - pushed > this.windowMs) {
      return { ok: false, status: 403, reason: `delivery pushed ${Math.round((t - pushed) / 1000)} s ago, older than the replay window` };
    }
    for (const k of keys) this.seen.set(k, t);
    while (this.seen.size > this.max) this.seen.delete(this.seen.keys().next().value as string);
    return { ok: true };
  }

  private forget(t: number): void {
    for (const [k, at] of this.seen) {
      if (t - at <= this.windowMs) break;
      this.seen.delete(k);
    }
  }
}
