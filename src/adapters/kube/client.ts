// Kubernetes connection: load a kubeconfig, and a small JSON REST client on top of it.
//
// Why our own request function rather than the generated API classes of @kubernetes/client-node: the generated
// classes turn timestamps into Date objects and drop fields they do not know, while a watch delivers the wire JSON.
// Every object Corvid reads (list or watch) is the wire JSON, so caches and the pure planner see one shape.
// Authentication is the kubeconfig's (kubeconfig.ts).

import { Agent as HttpAgent, request as httpRequest } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest, type RequestOptions } from 'node:https';
import type { KubeConfig } from './kubeconfig.ts';

export { loadKubeConfig, NoKubeconfigError, type KubeConfig, type LoadKubeConfigOptions } from './kubeconfig.ts';

/** The Kubernetes `Status` object the API server sends with an error. */
export interface KubeStatus {
  kind?: string;
  status?: string;
  message?: string;
  reason?: string;
  code?: number;
  details?: unknown;
}

/** An HTTP error answer of the API server. `code` is the HTTP status (as in client-node's ApiException). */
export class KubeApiError extends Error {
  readonly code: number;
  readonly statusCode: number;
  readonly reason: string;
  readonly status: KubeStatus | undefined;
  constructor(method: string, path: string, code: number, status: KubeStatus | undefined, raw: string) {
    const detail = status?.message ?? (raw.length > 300 ? `${raw.slice(0, 300)}...` : raw);
    super(`${method} ${path}: ${code}${status?.reason ? ` ${status.reason}` : ''}: ${detail}`);
    this.name = 'KubeApiError';
    this.code = code;
    this.statusCode = code;
    this.reason = status?.reason ?? '';
    this.status = status;
  }
}

/** HTTP status of an error from this client or from client-node; undefined for network errors. */
export function statusCode(e: unknown): number | undefined {
  if (e === null || typeof e !== 'object') return undefined;
  const o = e as { statusCode?: unknown; code?: unknown };
  if (typeof o.statusCode === 'number') return o.statusCode;
  if (typeof o.code === 'number') return o.code;
  return undefined;
}

/**
 * True for errors worth retrying with backoff: network errors, timeouts, 409 conflicts, 429, and 5xx answers except
 * the 500 that kube-apiserver 1.20 sends when a server-side apply fails the CRD schema (that one is permanent).
 */
export function isTransient(e: unknown): boolean {
  const code = statusCode(e);
  if (code === undefined) return true;
  if (code === 500 && isSchemaRejection(e)) return false;
  return code === 409 || code === 429 || code >= 500;
}

/** A write rejected by validation: 422, or (1.20 server-side apply) 500 "failed to create typed patch object". */
export function isSchemaRejection(e: unknown): boolean {
  const code = statusCode(e);
  if (code === 422) return true;
  return code === 500 && /failed to create typed patch object/.test(errorMessage(e));
}

export function errorMessage(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

export type HttpMethod = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

export interface KubeRequest {
  method: HttpMethod;
  /** API path, e.g. `/api/v1/nodes`. */
  path: string;
  query?: Record<string, string | number | boolean | undefined>;
  /** Sent as JSON (JSON is valid YAML, so this also serves `application/apply-patch+yaml`). */
  body?: unknown;
  /** Default `application/json`. */
  contentType?: string;
  /** Whole-request timeout; default 30 s. */
  timeoutMs?: number;
  signal?: AbortSignal;
}

/** Content types of the PATCH strategies (the ones client-node's PatchStrategy names). */
export const CONTENT_TYPE = {
  json: 'application/json',
  mergePatch: 'application/merge-patch+json',
  jsonPatch: 'application/json-patch+json',
  /** Server-side apply (PatchStrategy.ServerSideApply). Custom resources need this one. */
  apply: 'application/apply-patch+yaml',
} as const;

/**
 * How one API request ended, as client-go's rest_client_requests_total labels it: `code` is the HTTP status, or
 * `<error>` when no answer came (network error, timeout); `host` is the API server's host:port.
 */
export interface RequestResult {
  code: string;
  method: HttpMethod;
  host: string;
}

// Per KubeConfig, so that several syncs or agents in one process (tests) each count their own requests.
const requestObservers = new WeakMap<KubeConfig, Set<(r: RequestResult) => void>>();

/** Call `observer` after every request (a watch included) made with `kc`. Returns the function that stops it. */
export function observeRequests(kc: KubeConfig, observer: (r: RequestResult) => void): () => void {
  let set = requestObservers.get(kc);
  if (set === undefined) {
    set = new Set();
    requestObservers.set(kc, set);
  }
  set.add(observer);
  return () => void set.delete(observer);
}

/** Reports a request's end once: its status when an answer came, else `<error>`. */
function requestReporter(kc: KubeConfig, method: HttpMethod, url: URL): (statusCode: number | undefined) => void {
  let reported = false;
  return (statusCode) => {
    if (reported) return;
    reported = true;
    const result: RequestResult = { code: statusCode === undefined ? '<error>' : String(statusCode), method, host: url.host };
    for (const observe of requestObservers.get(kc) ?? []) {
      try {
        observe(result);
      } catch {
        // a metric must never fail a request
      }
    }
  };
}

const agents = new WeakMap<KubeConfig, HttpAgent>();
// Watches hold their connection for minutes: they get their own sockets rather than taking the request pool's.
const watchAgents = new WeakMap<KubeConfig, HttpAgent>();

function agentFor(kc: KubeConfig, tls: boolean): HttpAgent {
  let agent = agents.get(kc);
  if (agent === undefined) {
    agent = tls ? new HttpsAgent({ keepAlive: true, maxSockets: 32 }) : new HttpAgent({ keepAlive: true, maxSockets: 32 });
    agents.set(kc, agent);
  }
  return agent;
}

function watchAgentFor(kc: KubeConfig, tls: boolean): HttpAgent {
  let agent = watchAgents.get(kc);
  if (agent === undefined) {
    agent = tls ? new HttpsAgent({ keepAlive: false }) : new HttpAgent({ keepAlive: false });
    watchAgents.set(kc, agent);
  }
  return agent;
}

/** The URL of `path` with `query` on the current cluster. */
export function kubeUrl(kc: KubeConfig, path: string, query?: KubeRequest['query']): URL {
  const cluster = kc.getCurrentCluster();
  if (cluster === null) throw new Error('kubeconfig has no current cluster');
  const url = new URL(cluster.server.replace(/\/+$/, '') + path);
  for (const [k, v] of Object.entries(query ?? {})) {
    if (v !== undefined) url.searchParams.set(k, String(v));
  }
  return url;
}

/**
 * One API request; resolves to the parsed JSON answer (undefined for an empty body).
 * Rejects with KubeApiError for HTTP errors and with the socket's error for network failures.
 */
export async function kubeRequest<T = any>(kc: KubeConfig, req: KubeRequest): Promise<T> {
  const body = req.body === undefined ? undefined : Buffer.from(JSON.stringify(req.body));
  const { url, options, send } = await prepare(kc, req, body === undefined ? undefined : { type: req.contentType ?? CONTENT_TYPE.json, length: body.length });
  const report = requestReporter(kc, req.method, url);
  return new Promise<T>((resolve, reject) => {
    const r = send(url, options, (res) => {
      report(res.statusCode);
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', reject);
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        const code = res.statusCode ?? 0;
        if (code >= 200 && code < 300) resolve(parseJson(text) as T);
        else reject(apiError(req.method, req.path, code, text));
      });
    });
    r.on('timeout', () => r.destroy(new Error(`${req.method} ${req.path}: timed out after ${req.timeoutMs ?? 30_000} ms`)));
    r.on('error', (e) => {
      report(undefined);
      reject(e);
    });
    if (body !== undefined) r.write(body);
    r.end();
  });
}

/** The parsed JSON of an answer; undefined for an empty or unparsable body. */
function parseJson(text: string): unknown {
  try {
    return text === '' ? undefined : JSON.parse(text);
  } catch {
    return undefined;
  }
}

/** The KubeApiError of an HTTP error answer, with its Status object when the body is one. */
function apiError(method: HttpMethod, path: string, code: number, text: string): KubeApiError {
  const parsed = parseJson(text);
  return new KubeApiError(method, path, code, parsed !== null && typeof parsed === 'object' ? (parsed as KubeStatus) : undefined, text);
}

/** URL, options (TLS, auth, keep-alive agent) and request function of one API call. */
async function prepare(
  kc: KubeConfig,
  req: { method: HttpMethod; path: string; query?: KubeRequest['query']; timeoutMs?: number; signal?: AbortSignal },
  body?: { type: string; length: number },
): Promise<{ url: URL; options: RequestOptions; send: typeof httpsRequest }> {
  const url = kubeUrl(kc, req.path, req.query);
  const tls = url.protocol === 'https:';
  const opts: RequestOptions = { headers: {} };
  await kc.applyToHTTPSOptions(opts);
  const headers: Record<string, string> = { ...(opts.headers as Record<string, string>), Accept: 'application/json' };
  if (body !== undefined) {
    headers['Content-Type'] = body.type;
    headers['Content-Length'] = String(body.length);
  }
  const options: RequestOptions = {
    ...opts,
    method: req.method,
    headers,
    agent: agentFor(kc, tls),
    timeout: req.timeoutMs ?? 30_000,
    signal: req.signal,
  };
  return { url, options, send: tls ? httpsRequest : httpRequest };
}

/** One event of a watch stream, as the API server sends it. */
export interface WatchEvent {
  type: 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR' | string;
  object: any;
}

/**
 * Stream a watch of the collection at `path` (`watch=true` is added). Each event goes to `onEvent` as its line
 * arrives. Resolves when the server ends the stream (its timeoutSeconds) or the connection has been idle for
 * `idleTimeoutMs` (a peer or NAT that vanished without a FIN); rejects with KubeApiError for an HTTP error and with
 * the socket's error otherwise, or the AbortError of `signal`.
 */
export async function kubeWatch(
  kc: KubeConfig,
  path: string,
  query: Record<string, string | number | boolean | undefined>,
  onEvent: (e: WatchEvent) => void,
  o: { signal: AbortSignal; idleTimeoutMs: number },
): Promise<void> {
  const { url, options, send } = await prepare(kc, { method: 'GET', path, query: { ...query, watch: true }, timeoutMs: o.idleTimeoutMs, signal: o.signal });
  options.agent = watchAgentFor(kc, url.protocol === 'https:');
  const report = requestReporter(kc, 'GET', url);
  return new Promise<void>((resolve, reject) => {
    const r = send(url, options, (res) => {
      report(res.statusCode);
      const code = res.statusCode ?? 0;
      if (code < 200 || code >= 300) {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', reject);
        res.on('end', () => reject(apiError('GET', path, code, Buffer.concat(chunks).toString('utf8'))));
        return;
      }
      res.setEncoding('utf8');
      let buffered = '';
      res.on('data', (chunk: string) => {
        buffered += chunk;
        let nl: number;
        while ((nl = buffered.indexOf('\n')) >= 0) {
          const line = buffered.slice(0, nl).trim();
          buffered = buffered.slice(nl + 1);
          if (line === '') continue;
          let e: WatchEvent;
          try {
            e = JSON.parse(line) as WatchEvent;
          } catch {
            r.destroy(new Error(`watch ${path}: not a JSON event: ${line.slice(0, 200)}`));
            return;
          }
          onEvent(e);
        }
      });
      res.on('error', reject);
      res.on('end', () => resolve());
      res.on('close', () => resolve());
    });
    // The socket's idle timeout: nothing (not even a bookmark) for that long means the connection is gone.
    r.on('timeout', () => r.destroy());
    r.on('close', () => {
      report(undefined); // closed before any answer (idle timeout); a no-op once answered
      resolve();
    });
    r.on('error', (e) => {
      report(undefined);
      reject(e);
    });
    r.end();
  });
}

/** A list answer: items plus the list's resourceVersion (the point to watch from). */
export interface KubeList<T> {
  items: T[];
  resourceVersion: string;
}

/** GET a collection; follows `continue` tokens so the result is complete. `transform` maps each item as its page arrives. */
export async function listAll<T>(
  kc: KubeConfig,
  path: string,
  query: { labelSelector?: string; fieldSelector?: string } = {},
  transform?: (item: T) => T,
): Promise<KubeList<T>> {
  const items: T[] = [];
  let cont: string | undefined;
  let resourceVersion = '';
  do {
    const page = await kubeRequest<{ items?: T[]; metadata?: { resourceVersion?: string; continue?: string } }>(kc, {
      method: 'GET',
      path,
      query: { ...query, limit: 500, continue: cont },
    });
    for (const item of page.items ?? []) items.push(transform ? transform(item) : item);
    resourceVersion = page.metadata?.resourceVersion ?? resourceVersion;
    cont = page.metadata?.continue || undefined;
  } while (cont !== undefined);
  return { items, resourceVersion };
}

/** `metadata` fields every object has (what the informer and the helpers rely on). */
export interface KubeObjectMeta {
  name?: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
  generation?: number;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  creationTimestamp?: string;
  deletionTimestamp?: string;
  managedFields?: unknown[];
}

export interface KubeObject {
  apiVersion?: string;
  kind?: string;
  metadata?: KubeObjectMeta;
}

/** A shallow copy of `o` whose metadata has no managedFields (what an informer cache keeps). */
export function withoutManagedFields<T extends KubeObject>(o: T): T {
  if (o.metadata === undefined) return { ...o };
  const { managedFields: _dropped, ...metadata } = o.metadata;
  return { ...o, metadata };
}

/** Serialise a label map as a selector string: `a=b,c=d` (sorted). */
export function labelSelector(labels: Record<string, string>): string {
  return Object.keys(labels)
    .sort()
    .map((k) => `${k}=${labels[k]}`)
    .join(',');
}
