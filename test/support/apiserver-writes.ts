// The API server's own count of write requests: `apiserver_request_total` from kube-apiserver's /metrics, summed
// over the write verbs. This is what the server saw (every client, retries and rejected writes included), not what
// Corvid believes it sent.
//
// The verb label, as kube-apiserver 1.20 writes it: POST, PUT, PATCH, APPLY (a server-side apply PATCH) and DELETE
// (of one object and of a collection alike) are writes; GET, LIST and WATCH are not. DELETECOLLECTION is counted
// too, for servers that name it. The counter is bumped after the answer is written, so a scrape right after a write
// can miss that write by a hair: readWritesAtLeast() waits it out.
import { request as httpRequest } from 'node:http';
import { request as httpsRequest, type RequestOptions } from 'node:https';
import { setTimeout as sleep } from 'node:timers/promises';
import { kubeUrl, type KubeConfig } from '../../src/adapters/kube/client.ts';

export const WRITE_VERBS: ReadonlySet<string> = new Set(['POST', 'PUT', 'PATCH', 'APPLY', 'DELETE', 'DELETECOLLECTION']);

/** Write requests the API server counted, since it started or (writesBetween) within a window. */
export interface ApiWrites {
  total: number;
  /** Of `total`, the dry runs (`?dryRun=All`: admitted and validated, never stored). */
  dryRun: number;
  /** By `resource.group` (`leases.coordination.k8s.io`; core resources bare, `events`), `/subresource` appended. */
  byResource: Record<string, number>;
}

/** One sample of a Prometheus text exposition: its labels and value. */
export interface Sample {
  labels: Record<string, string>;
  value: number;
}

/** The samples of metric `name` in a Prometheus text exposition (version 0.0.4): labels in any order, escapes undone. */
export function parseSamples(text: string, name: string): Sample[] {
  const out: Sample[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line.startsWith(name) || !/[\s{]/.test(line.charAt(name.length))) continue;
    let i = name.length;
    const labels: Record<string, string> = {};
    if (line[i] === '{') {
      i++;
      for (;;) {
        while (line[i] === ' ' || line[i] === ',') i++;
        if (line[i] === '}') break;
        const eq = line.indexOf('=', i);
        if (eq < 0 || line[eq + 1] !== '"') throw new Error(`${name}: bad label at ${i}: ${line}`);
        const key = line.slice(i, eq).trim();
        let value = '';
        for (i = eq + 2; i < line.length && line[i] !== '"'; i++) {
          if (line[i] !== '\\') value += line[i];
          else value += line[++i] === 'n' ? '\n' : line[i];
        }
        if (i >= line.length) throw new Error(`${name}: unterminated label value: ${line}`);
        labels[key] = value;
        i++;
      }
      i++;
    }
    // The value, then an optional timestamp.
    const value = Number(line.slice(i).trim().split(/\s+/)[0]);
    if (Number.isNaN(value)) throw new Error(`${name}: bad value: ${line}`);
    out.push({ labels, value });
  }
  return out;
}

/** The write requests among `apiserver_request_total`'s samples. */
export function sumWrites(samples: Sample[]): ApiWrites {
  const w: ApiWrites = { total: 0, dryRun: 0, byResource: {} };
  for (const { labels: l, value } of samples) {
    if (!WRITE_VERBS.has(l.verb ?? '')) continue;
    // A non-resource request (resource "") carries its path in `subresource`.
    const key = l.resource ? `${l.resource}${l.group ? `.${l.group}` : ''}${l.subresource ? `/${l.subresource}` : ''}` : l.subresource || '(none)';
    w.byResource[key] = (w.byResource[key] ?? 0) + value;
    w.total += value;
    if (l.dry_run) w.dryRun += value;
  }
  return w;
}

/** `after - before`, per resource; resources without writes in between are left out. */
export function writesBetween(before: ApiWrites, after: ApiWrites): ApiWrites {
  const byResource: Record<string, number> = {};
  for (const [k, v] of Object.entries(after.byResource)) {
    const d = v - (before.byResource[k] ?? 0);
    if (d !== 0) byResource[k] = d;
  }
  return { total: after.total - before.total, dryRun: after.dryRun - before.dryRun, byResource };
}

/** The API server's /metrics as text, with the kubeconfig's credentials (kubeRequest only returns JSON). */
export async function fetchMetrics(kc: KubeConfig): Promise<string> {
  const url = kubeUrl(kc, '/metrics');
  const opts: RequestOptions = { headers: {} };
  await kc.applyToHTTPSOptions(opts);
  const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const r = send(url, { ...opts, method: 'GET', headers: { ...(opts.headers as Record<string, string>), Accept: 'text/plain' }, timeout: 10_000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('error', reject);
      res.on('end', () => (res.statusCode === 200 ? resolve(body) : reject(new Error(`GET /metrics: ${res.statusCode}: ${body.slice(0, 300)}`))));
    });
    r.on('timeout', () => r.destroy(new Error('GET /metrics: timed out')));
    r.on('error', reject);
    r.end();
  });
}

/** Every write request the API server counted since it started. */
export async function readWrites(kc: KubeConfig): Promise<ApiWrites> {
  return sumWrites(parseSamples(await fetchMetrics(kc), 'apiserver_request_total'));
}

/**
 * readWrites(), read again (up to `ms`) until `enough` holds: writes whose answers have arrived are counted a moment
 * later. Returns the last reading either way; the caller asserts on it.
 */
export async function readWritesAtLeast(kc: KubeConfig, enough: (w: ApiWrites) => boolean, ms = 2000): Promise<ApiWrites> {
  const deadline = Date.now() + ms;
  for (;;) {
    const w = await readWrites(kc);
    if (enough(w) || Date.now() >= deadline) return w;
    await sleep(50);
  }
}

/** Write requests over a window of `ms`: what the API server counted, and per second of the measured window. */
export async function writeRate(kc: KubeConfig, ms: number): Promise<{ seconds: number; writes: ApiWrites; perSecond: number }> {
  const before = await readWrites(kc);
  const start = Date.now();
  await sleep(ms);
  const writes = writesBetween(before, await readWrites(kc));
  const seconds = (Date.now() - start) / 1000;
  return { seconds, writes, perSecond: writes.total / seconds };
}
