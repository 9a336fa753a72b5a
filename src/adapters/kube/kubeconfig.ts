// Kubeconfig loading, as kubectl does it: --kubeconfig, else $KUBECONFIG (a list, merged first-wins), else
// ~/.kube/config, else the pod's ServiceAccount.
//
// Why not client-node's KubeConfig for all of it: importing @kubernetes/client-node loads about 1,000 modules (its
// generated API, undici, OIDC, proxies) for 86 MiB of RSS and 0.6 s of start-up, 16 s in a User-Mode Linux guest, and
// the agent runs on every edge node. What nodes and the sync use (server, CA, token or token file, client
// certificate, basic auth) is read here. A kubeconfig that needs more (an exec or auth-provider plugin, a proxy,
// impersonation) is handed whole to client-node, imported only then, so every kubeconfig kubectl takes still works.

import { readFileSync, statSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { delimiter, dirname, isAbsolute, join, resolve } from 'node:path';
import type { RequestOptions } from 'node:https';
import { ipVersion } from '../../topology/ip.ts';

/** What a request needs from a kubeconfig. client-node's KubeConfig has the same shape, so either serves. */
export interface KubeConfig {
  getCurrentCluster(): { readonly name: string; readonly server: string } | null;
  /** Adds the TLS material and the Authorization header of the current user to `opts`. */
  applyToHTTPSOptions(opts: RequestOptions): Promise<void>;
}

export interface LoadKubeConfigOptions {
  /** Path of a kubeconfig file. Default: $KUBECONFIG, ~/.kube/config, then the in-cluster service account. */
  kubeconfig?: string;
  /** Context to use instead of the file's current-context. */
  context?: string;
  /** Where KUBECONFIG, HOME and KUBERNETES_SERVICE_HOST/PORT are read. Default process.env. */
  env?: Record<string, string | undefined>;
  /** The pod's ServiceAccount mount. Default /var/run/secrets/kubernetes.io/serviceaccount. */
  serviceAccountDir?: string;
}

/** Nothing to load: no --kubeconfig, no $KUBECONFIG, no ~/.kube/config and not in a pod. */
export class NoKubeconfigError extends Error {
  constructor() {
    super('no kubeconfig found');
    this.name = 'NoKubeconfigError';
  }
}

export const SERVICE_ACCOUNT_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

/** How long file-based credentials (rotated ServiceAccount tokens, renewed certificates) are reused before a re-read. */
const FILE_REFRESH_MS = 60_000;

type Entry = Record<string, unknown>;

/** A kubeconfig merged from its files, with every file path made absolute. */
interface RawConfig {
  clusters: Map<string, Entry>;
  users: Map<string, Entry>;
  contexts: Map<string, Entry>;
  currentContext: string;
}

/** Load a kubeconfig the way kubectl does. Throws with a plain message when a file or context does not exist. */
export async function loadKubeConfig(opts: LoadKubeConfigOptions = {}): Promise<KubeConfig> {
  const env = opts.env ?? process.env;
  const raw = await readRawConfig(opts, env);
  const contextName = opts.context || raw.currentContext;
  if (opts.context && !raw.contexts.has(opts.context)) throw new Error(`kubeconfig has no context "${opts.context}"`);
  const context = raw.contexts.get(contextName);
  const cluster = context === undefined ? undefined : raw.clusters.get(str(context.cluster) ?? '');
  if (context === undefined || cluster === undefined || str(cluster.server) === undefined) {
    throw new Error('kubeconfig has no current cluster (set --kubeconfig, $KUBECONFIG or run in a cluster)');
  }
  const userName = str(context.user) ?? '';
  const user = raw.users.get(userName) ?? {};
  if (needsClientNode(cluster, user)) return loadWithClientNode(raw, contextName);
  return new FileKubeConfig(str(context.cluster)!, cluster, user);
}

async function readRawConfig(opts: LoadKubeConfigOptions, env: Record<string, string | undefined>): Promise<RawConfig> {
  if (opts.kubeconfig !== undefined && opts.kubeconfig !== '') return mergeFiles([opts.kubeconfig], true);
  const list = (env.KUBECONFIG ?? '').split(delimiter).filter((f) => f !== '');
  // kubectl skips the files of $KUBECONFIG that do not exist, and fails only when none does.
  if (list.length > 0) return mergeFiles(list, false);
  const home = env.HOME;
  if (home !== undefined && home !== '' && isFile(join(home, '.kube', 'config'))) return mergeFiles([join(home, '.kube', 'config')], true);
  const saDir = opts.serviceAccountDir ?? SERVICE_ACCOUNT_DIR;
  if (env.KUBERNETES_SERVICE_HOST && env.KUBERNETES_SERVICE_PORT && isFile(join(saDir, 'token'))) {
    return inClusterConfig(env.KUBERNETES_SERVICE_HOST, env.KUBERNETES_SERVICE_PORT, saDir);
  }
  throw new NoKubeconfigError();
}

async function mergeFiles(files: string[], mustExist: boolean): Promise<RawConfig> {
  // Loaded only for files: an agent in a pod (ServiceAccount) never pays for the YAML library.
  const { parse: parseYaml } = await import('yaml');
  const merged: RawConfig = { clusters: new Map(), users: new Map(), contexts: new Map(), currentContext: '' };
  let read = 0;
  for (const file of files) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (e) {
      if (!mustExist && (e as NodeJS.ErrnoException).code === 'ENOENT') continue;
      throw new Error(`cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
    read++;
    let doc: unknown;
    try {
      doc = parseYaml(text);
    } catch (e) {
      throw new Error(`${file} is not YAML: ${(e as Error).message.split('\n')[0]}`);
    }
    const d = (doc ?? {}) as Entry;
    const base = dirname(resolve(file));
    // First definition of a name wins, as in kubectl; so does the first current-context.
    for (const [list, key, target] of [['clusters', 'cluster', merged.clusters], ['users', 'user', merged.users], ['contexts', 'context', merged.contexts]] as const) {
      for (const item of Array.isArray(d[list]) ? (d[list] as Entry[]) : []) {
        const name = str(item?.name);
        if (name === undefined || target.has(name)) continue;
        target.set(name, absolutePaths((item[key] ?? {}) as Entry, base));
      }
    }
    if (merged.currentContext === '') merged.currentContext = str(d['current-context']) ?? '';
  }
  if (read === 0) throw new Error(`none of the $KUBECONFIG files exists (${files.join(delimiter)})`);
  return merged;
}

const PATH_FIELDS = ['certificate-authority', 'client-certificate', 'client-key', 'tokenFile'];

function absolutePaths(e: Entry, base: string): Entry {
  const out: Entry = { ...e };
  for (const f of PATH_FIELDS) {
    const p = str(out[f]);
    if (p !== undefined && p !== '' && !isAbsolute(p)) out[f] = resolve(base, p);
  }
  return out;
}

function inClusterConfig(host: string, port: string, saDir: string): RawConfig {
  const server = `https://${ipVersion(host) === 6 ? `[${host}]` : host}:${port}`;
  return {
    clusters: new Map([['in-cluster', { server, 'certificate-authority': join(saDir, 'ca.crt') }]]),
    users: new Map([['in-cluster', { tokenFile: join(saDir, 'token') }]]),
    contexts: new Map([['in-cluster', { cluster: 'in-cluster', user: 'in-cluster' }]]),
    currentContext: 'in-cluster',
  };
}

/** What only client-node's plugins and proxy support do. */
function needsClientNode(cluster: Entry, user: Entry): boolean {
  return user.exec !== undefined || user['auth-provider'] !== undefined || user.as !== undefined || cluster['proxy-url'] !== undefined;
}

async function loadWithClientNode(raw: RawConfig, contextName: string): Promise<KubeConfig> {
  const { KubeConfig: ClientNodeKubeConfig } = await import('@kubernetes/client-node');
  const kc = new ClientNodeKubeConfig();
  const list = (m: Map<string, Entry>, key: string): Entry[] => [...m].map(([name, v]) => ({ name, [key]: v }));
  // JSON is YAML: the merged config, its paths already absolute, in kubeconfig's own format.
  kc.loadFromString(JSON.stringify({
    apiVersion: 'v1',
    kind: 'Config',
    clusters: list(raw.clusters, 'cluster'),
    users: list(raw.users, 'user'),
    contexts: list(raw.contexts, 'context'),
    'current-context': contextName,
  }));
  return kc;
}

/** Inline data (base64) or a file, re-read at most once a minute. */
class Material {
  private cached: { value: Buffer; at: number } | undefined;
  private readonly data: Buffer | undefined;
  private readonly file: string | undefined;
  constructor(data: string | undefined, file: string | undefined) {
    this.data = data !== undefined && data !== '' ? Buffer.from(data, 'base64') : undefined;
    this.file = this.data === undefined && file !== undefined && file !== '' ? file : undefined;
  }
  async read(now: number): Promise<Buffer | undefined> {
    if (this.data !== undefined) return this.data;
    if (this.file === undefined) return undefined;
    if (this.cached === undefined || now - this.cached.at >= FILE_REFRESH_MS) {
      this.cached = { value: await readFile(this.file), at: now };
    }
    return this.cached.value;
  }
}

class FileKubeConfig implements KubeConfig {
  private readonly cluster: { name: string; server: string };
  private readonly ca: Material;
  private readonly cert: Material;
  private readonly key: Material;
  private readonly tokenFile: Material;
  private readonly token: string | undefined;
  private readonly basic: string | undefined;
  private readonly skipVerify: boolean;
  private readonly serverName: string | undefined;

  constructor(name: string, cluster: Entry, user: Entry) {
    this.cluster = { name, server: str(cluster.server)! };
    this.ca = new Material(str(cluster['certificate-authority-data']), str(cluster['certificate-authority']));
    this.skipVerify = cluster['insecure-skip-tls-verify'] === true;
    this.serverName = str(cluster['tls-server-name']) || undefined;
    this.cert = new Material(str(user['client-certificate-data']), str(user['client-certificate']));
    this.key = new Material(str(user['client-key-data']), str(user['client-key']));
    this.token = str(user.token) || undefined;
    this.tokenFile = new Material(undefined, this.token === undefined ? str(user.tokenFile) : undefined);
    const username = str(user.username);
    this.basic = username !== undefined && username !== '' ? Buffer.from(`${username}:${str(user.password) ?? ''}`).toString('base64') : undefined;
  }

  getCurrentCluster(): { name: string; server: string } {
    return this.cluster;
  }

  async applyToHTTPSOptions(opts: RequestOptions): Promise<void> {
    const now = Date.now();
    const [ca, cert, key, tokenFromFile] = await Promise.all([this.ca.read(now), this.cert.read(now), this.key.read(now), this.tokenFile.read(now)]);
    if (ca !== undefined) opts.ca = ca;
    if (cert !== undefined) opts.cert = cert;
    if (key !== undefined) opts.key = key;
    if (this.skipVerify) opts.rejectUnauthorized = false;
    if (this.serverName !== undefined) opts.servername = this.serverName;
    const token = this.token ?? tokenFromFile?.toString('utf8').trim();
    const headers = (opts.headers ??= {}) as Record<string, string>;
    if (token !== undefined && token !== '') headers.Authorization = `Bearer ${token}`;
    else if (this.basic !== undefined) headers.Authorization = `Basic ${this.basic}`;
  }
}

function str(v: unknown): string | undefined {
  return typeof v === 'string' ? v : undefined;
}

function isFile(p: string): boolean {
  try {
    return statSync(p).isFile();
  } catch {
    return false;
  }
}
