// Push-webhook authentication: HMAC-SHA256 over the raw request body.
// GitHub (and Gitea/Forgejo, which send it too): `X-Hub-Signature-256: sha256=<hex>`. Gitea: `X-Gitea-Signature: <hex>`.
// The comparison is constant-time; a missing or malformed signature is a failure, never a pass.

import { createHmac, timingSafeEqual } from 'node:crypto';

export type WebhookVerdict = { ok: true; provider: 'github' | 'gitea' } | { ok: false; reason: string };

function header(headers: Record<string, string | string[] | undefined>, name: string): string | undefined {
  const v = headers[name.toLowerCase()];
  return Array.isArray(v) ? v[0] : v;
}

function equalHex(expected: Buffer, hex: string): boolean {
  if (!/^[0-9a-fA-F]{64}$/.test(hex)) return false;
  const got = Buffer.from(hex, 'hex');
  return got.length === expected.length && timingSafeEqual(got, expected);
}

/** Check a push webhook's signature. `headers` as node:http gives them (lower-case names). */
export function verifyWebhookSignature(
  headers: Record<string, string | string[] | undefined>,
  rawBody: Buffer,
  secret: Buffer | string,
): WebhookVerdict {
  if (secret.length === 0) return { ok: false, reason: 'no webhook secret configured' };
  const mac = createHmac('sha256', secret).update(rawBody).digest();
  const hub = header(headers, 'x-hub-signature-256');
  if (hub !== undefined) {
    const m = /^sha256=(.*)$/.exec(hub.trim());
    return m && equalHex(mac, m[1]) ? { ok: true, provider: 'github' } : { ok: false, reason: 'X-Hub-Signature-256 does not match' };
  }
  const gitea = header(headers, 'x-gitea-signature');
  if (gitea !== undefined) {
    return equalHex(mac, gitea.trim()) ? { ok: true, provider: 'gitea' } : { ok: false, reason: 'X-Gitea-Signature does not match' };
  }
  return { ok: false, reason: 'no X-Hub-Signature-256 or X-Gitea-Signature header' };
}
