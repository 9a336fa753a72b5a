// The kubeconfig loader (src/adapters/kube/kubeconfig.ts): kubectl's lookup order and merge rules, what each
// credential kind puts on a request, and the hand-over to client-node for plugins. Real files in a temp dir; the
// TLS and watch tests talk to servers on loopback.
import { after, before, mock, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { RequestOptions } from 'node:https';
import { stringify } from 'yaml';
import { loadKubeConfig, NoKubeconfigError, type KubeConfig } from '../../src/adapters/kube/kubeconfig.ts';
import { kubeRequest, kubeWatch, statusCode, type WatchEvent } from '../../src/adapters/kube/client.ts';

let dir: string;
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'corvid-kubeconfig-'));
});
after(() => rmSync(dir, { recursive: true, force: true }));

function kubeconfig(name: string, o: { clusters?: Record<string, object>; users?: Record<string, object>; contexts?: Record<string, { cluster: string; user: string }>; current?: string }): string {
  const list = (m: Record<string, object> | undefined, key: string): object[] => Object.entries(m ?? {}).map(([n, v]) => ({ name: n, [key]: v }));
  const path = join(dir, name);
  mkdirSync(join(path, '..'), { recursive: true });
  writeFileSync(path, stringify({ apiVersion: 'v1', kind: 'Config', clusters: list(o.clusters, 'cluster'), users: list(o.users, 'user'), contexts: list(o.contexts, 'context'), 'current-context': o.current ?? '' }));
  return path;
}

async function applied(kc: KubeConfig): Promise<RequestOptions & { headers: Record<string, string> }> {
  const opts: RequestOptions = { headers: {} };
  await kc.applyToHTTPSOptions(opts);
  return opts as RequestOptions & { headers: Record<string, string> };
}

const b64 = (s: string): string => Buffer.from(s).toString('base64');
const NO_ENV = { HOME: '/nonexistent-home' };

test('a kubeconfig with inline CA, token and tls-server-name: server, CA bytes, bearer token, server name', async () => {
  const f = kubeconfig('inline.yaml', {
    clusters: { c: { server: 'https://10.0.0.1:6443/', 'certificate-authority-data': b64('CA PEM'), 'tls-server-name': 'api.internal' } },
    users: { u: { token: 'tok-123' } },
    contexts: { ctx: { cluster: 'c', user: 'u' } },
    current: 'ctx',
  });
  const kc = await loadKubeConfig({ kubeconfig: f, env: NO_ENV });
  assert.deepEqual(kc.getCurrentCluster(), { name: 'c', server: 'https://10.0.0.1:6443/' });
  const o = await applied(kc);
  assert.equal(o.ca?.toString(), 'CA PEM');
  assert.equal(o.headers.Authorization, 'Bearer tok-123');
  assert.equal(o.servername, 'api.internal');
  assert.equal(o.rejectUnauthorized, undefined);
});

test('file paths are relative to the kubeconfig file; client certificate, key and CA are read from them', async () => {
  mkdirSync(join(dir, 'rel', 'pki'), { recursive: true });
  writeFileSync(join(dir, 'rel', 'pki', 'ca.crt'), 'CA FILE');
  writeFileSync(join(dir, 'rel', 'pki', 'client.crt'), 'CERT FILE');
  writeFileSync(join(dir, 'rel', 'pki', 'client.key'), 'KEY FILE');
  const f = kubeconfig('rel/config', {
    clusters: { c: { server: 'https://k:6443', 'certificate-authority': 'pki/ca.crt' } },
    users: { u: { 'client-certificate': 'pki/client.crt', 'client-key': './pki/client.key' } },
    contexts: { ctx: { cluster: 'c', user: 'u' } },
    current: 'ctx',
  });
  const o = await applied(await loadKubeConfig({ kubeconfig: f, env: NO_ENV }));
  assert.equal(o.ca?.toString(), 'CA FILE');
  assert.equal(o.cert?.toString(), 'CERT FILE');
  assert.equal(o.key?.toString(), 'KEY FILE');
  assert.equal(o.headers.Authorization, undefined);
});

test('insecure-skip-tls-verify and basic auth', async () => {
  const f = kubeconfig('basic.yaml', {
    clusters: { c: { server: 'https://k:6443', 'insecure-skip-tls-verify': true } },
    users: { u: { username: 'admin', password: 'pw' } },
    contexts: { ctx: { cluster: 'c', user: 'u' } },
    current: 'ctx',
  });
  const o = await applied(await loadKubeConfig({ kubeconfig: f, env: NO_ENV }));
  assert.equal(o.rejectUnauthorized, false);
  assert.equal(o.headers.Authorization, `Basic ${b64('admin:pw')}`);
});

test('$KUBECONFIG: a list merged first-wins (names and current-context), missing files skipped, none at all an error', async () => {
  const a = kubeconfig('merge-a.yaml', {
    clusters: { shared: { server: 'https://first:6443' } },
    users: { u: { token: 'first' } },
    contexts: { a: { cluster: 'shared', user: 'u' } },
    current: '',
  });
  const b = kubeconfig('merge-b.yaml', {
    clusters: { shared: { server: 'https://second:6443' }, other: { server: 'https://other:6443' } },
    users: { u: { token: 'second' } },
    contexts: { a: { cluster: 'other', user: 'u' }, b: { cluster: 'other', user: 'u' } },
    current: 'a',
  });
  const env = { ...NO_ENV, KUBECONFIG: [join(dir, 'missing.yaml'), a, '', b].join(':') };
  const kc = await loadKubeConfig({ env });
  // current-context "a" comes from the second file, but context "a" itself from the first.
  assert.equal(kc.getCurrentCluster()?.server, 'https://first:6443');
  assert.equal((await applied(kc)).headers.Authorization, 'Bearer first');
  assert.equal((await loadKubeConfig({ env, context: 'b' })).getCurrentCluster()?.server, 'https://other:6443');
  await assert.rejects(loadKubeConfig({ env, context: 'nope' }), /kubeconfig has no context "nope"/);
  await assert.rejects(loadKubeConfig({ env: { ...NO_ENV, KUBECONFIG: join(dir, 'missing.yaml') } }), /none of the \$KUBECONFIG files exists/);
});

test('errors: an explicit file that does not exist, YAML that is not, a kubeconfig without a current cluster', async () => {
  await assert.rejects(loadKubeConfig({ kubeconfig: join(dir, 'absent'), env: NO_ENV }), /cannot read .*absent: ENOENT/);
  writeFileSync(join(dir, 'broken.yaml'), 'clusters: [\n');
  await assert.rejects(loadKubeConfig({ kubeconfig: join(dir, 'broken.yaml'), env: NO_ENV }), /broken\.yaml is not YAML/);
  const f = kubeconfig('nocurrent.yaml', { clusters: { c: { server: 'https://k' } }, users: {}, contexts: { ctx: { cluster: 'c', user: 'u' } } });
  await assert.rejects(loadKubeConfig({ kubeconfig: f, env: NO_ENV }), /no current cluster/);
  // The context names a user that is not there: no credentials, as kubectl (anonymous).
  const kc = await loadKubeConfig({ kubeconfig: f, env: NO_ENV, context: 'ctx' });
  assert.equal((await applied(kc)).headers.Authorization, undefined);
});

test('lookup order: ~/.kube/config, else the ServiceAccount (IPv6 host bracketed), else NoKubeconfigError', async () => {
  const home = join(dir, 'home');
  kubeconfig('home/.kube/config', { clusters: { c: { server: 'https://home:6443' } }, users: { u: {} }, contexts: { x: { cluster: 'c', user: 'u' } }, current: 'x' });
  const sa = join(dir, 'sa');
  mkdirSync(sa, { recursive: true });
  writeFileSync(join(sa, 'token'), 'sa-token-1\n');
  writeFileSync(join(sa, 'ca.crt'), 'SA CA');
  const pod = { KUBERNETES_SERVICE_HOST: 'fd00::1', KUBERNETES_SERVICE_PORT: '443' };
  assert.equal((await loadKubeConfig({ env: { HOME: home, ...pod }, serviceAccountDir: sa })).getCurrentCluster()?.server, 'https://home:6443');
  const kc = await loadKubeConfig({ env: { ...NO_ENV, ...pod }, serviceAccountDir: sa });
  assert.equal(kc.getCurrentCluster()?.server, 'https://[fd00::1]:443');
  const o = await applied(kc);
  assert.equal(o.headers.Authorization, 'Bearer sa-token-1');
  assert.equal(o.ca?.toString(), 'SA CA');
  await assert.rejects(loadKubeConfig({ env: NO_ENV, serviceAccountDir: sa }), NoKubeconfigError);
  await assert.rejects(loadKubeConfig({ env: { ...NO_ENV, ...pod }, serviceAccountDir: join(dir, 'no-sa') }), NoKubeconfigError);
});

test('a rotated ServiceAccount token is read again after a minute, not on every request', async (t) => {
  const sa = join(dir, 'sa-rotate');
  mkdirSync(sa, { recursive: true });
  writeFileSync(join(sa, 'token'), 'old');
  writeFileSync(join(sa, 'ca.crt'), 'CA');
  mock.timers.enable({ apis: ['Date'], now: 1_000_000 });
  t.after(() => mock.timers.reset());
  const kc = await loadKubeConfig({ env: { ...NO_ENV, KUBERNETES_SERVICE_HOST: '10.96.0.1', KUBERNETES_SERVICE_PORT: '443' }, serviceAccountDir: sa });
  assert.equal((await applied(kc)).headers.Authorization, 'Bearer old');
  writeFileSync(join(sa, 'token'), 'new');
  mock.timers.tick(59_000);
  assert.equal((await applied(kc)).headers.Authorization, 'Bearer old');
  mock.timers.tick(1_000);
  assert.equal((await applied(kc)).headers.Authorization, 'Bearer new');
});

test('an exec plugin user is handed to client-node, which runs the plugin and sends its token', async () => {
  const plugin = join(dir, 'exec-plugin.sh');
  writeFileSync(plugin, `#!/bin/sh\necho '{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","status":{"token":"from-exec-'"$CORVID_ARG"'"}}'\n`);
  chmodSync(plugin, 0o755);
  const f = kubeconfig('exec.yaml', {
    clusters: { c: { server: 'https://k:6443' } },
    users: { u: { exec: { apiVersion: 'client.authentication.k8s.io/v1', command: plugin, env: [{ name: 'CORVID_ARG', value: 'x1' }], interactiveMode: 'Never' } } },
    contexts: { ctx: { cluster: 'c', user: 'u' } },
    current: 'ctx',
  });
  const kc = await loadKubeConfig({ kubeconfig: f, env: NO_ENV });
  assert.equal(kc.constructor.name, 'KubeConfig', 'client-node took it');
  assert.equal(kc.getCurrentCluster()?.server, 'https://k:6443');
  assert.equal((await applied(kc)).headers.Authorization, 'Bearer from-exec-x1');
});

// ---------------------------------------------------------------- against servers on loopback

function openssl(args: string[]): void {
  execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' });
}

test('TLS for real: the server is verified by the kubeconfig CA, and the client certificate is presented', async (t) => {
  openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', 'ca.key', '-out', 'ca.crt', '-subj', '/CN=test-ca', '-days', '1']);
  for (const [name, subj, ext] of [['server', '/CN=server', 'subjectAltName=DNS:localhost'], ['client', '/CN=corvid-agent/O=corvid', 'extendedKeyUsage=clientAuth']] as const) {
    openssl(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', subj]);
    writeFileSync(join(dir, `${name}.ext`), `${ext}\n`);
    openssl(['x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${name}.crt`, '-days', '1', '-extfile', `${name}.ext`]);
  }
  const read = (f: string): Buffer => readFileSync(join(dir, f));
  const server = createHttpsServer({ key: read('server.key'), cert: read('server.crt'), ca: read('ca.crt'), requestCert: true, rejectUnauthorized: true }, (req, res) => {
    const peer = (req.socket as TLSSocket).getPeerCertificate();
    res.setHeader('Content-Type', 'application/json');
    res.end(JSON.stringify({ kind: 'Status', message: `hello ${peer.subject?.CN}` }));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.after(() => server.close());
  const port = (server.address() as AddressInfo).port;
  const f = kubeconfig('tls.yaml', {
    // The server's certificate names localhost; the address is loopback: tls-server-name bridges them.
    clusters: { c: { server: `https://127.0.0.1:${port}`, 'certificate-authority': join(dir, 'ca.crt'), 'tls-server-name': 'localhost' } },
    users: { u: { 'client-certificate-data': read('client.crt').toString('base64'), 'client-key': join(dir, 'client.key') } },
    contexts: { ctx: { cluster: 'c', user: 'u' } },
    current: 'ctx',
  });
  const kc = await loadKubeConfig({ kubeconfig: f, env: NO_ENV });
  assert.deepEqual(await kubeRequest(kc, { method: 'GET', path: '/version' }), { kind: 'Status', message: 'hello corvid-agent' });
  // Without the CA the server is not trusted.
  const untrusted = kubeconfig('untrusted.yaml', {
    clusters: { c: { server: `https://127.0.0.1:${port}`, 'tls-server-name': 'localhost' } },
    users: { u: { 'client-certificate': join(dir, 'client.crt'), 'client-key': join(dir, 'client.key') } },
    contexts: { ctx: { cluster: 'c', user: 'u' } },
    current: 'ctx',
  });
  await assert.rejects(kubeRequest(await loadKubeConfig({ kubeconfig: untrusted, env: NO_ENV }), { method: 'GET', path: '/version' }), /self-signed|unable to (get|verify)/);
});

async function httpServer(t: { after(fn: () => void): void }, handler: Parameters<typeof createHttpServer>[1]): Promise<KubeConfig> {
  const server: Server = createHttpServer(handler);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.after(() => {
    server.closeAllConnections();
    server.close();
  });
  const f = kubeconfig(`http-${(server.address() as AddressInfo).port}.yaml`, {
    clusters: { c: { server: `http://127.0.0.1:${(server.address() as AddressInfo).port}` } },
    users: { u: { token: 'w' } },
    contexts: { ctx: { cluster: 'c', user: 'u' } },
    current: 'ctx',
  });
  return loadKubeConfig({ kubeconfig: f, env: NO_ENV });
}

test('kubeWatch: events split across chunks arrive whole and in order; the query carries watch=true and the token', async (t) => {
  let seen: URL | undefined;
  let auth: string | undefined;
  const kc = await httpServer(t, (req, res) => {
    seen = new URL(req.url!, 'http://x');
    auth = req.headers.authorization;
    res.writeHead(200, { 'Content-Type': 'application/json' });
    const text = ['ADDED', 'MODIFIED', 'BOOKMARK', 'DELETED'].map((type, i) => JSON.stringify({ type, object: { metadata: { name: `o${i}`, resourceVersion: String(i + 1) } } })).join('\n') + '\n';
    // In awkward pieces: mid-object, mid-line.
    const cut = [7, 40, 41, 100];
    let from = 0;
    for (const c of cut) {
      res.write(text.slice(from, c));
      from = c;
    }
    res.end(text.slice(from));
  });
  const events: WatchEvent[] = [];
  await kubeWatch(kc, '/api/v1/nodes', { resourceVersion: '5', timeoutSeconds: 300 }, (e) => events.push(e), { signal: new AbortController().signal, idleTimeoutMs: 5_000 });
  assert.deepEqual(events.map((e) => `${e.type}:${e.object.metadata.name}`), ['ADDED:o0', 'MODIFIED:o1', 'BOOKMARK:o2', 'DELETED:o3']);
  assert.equal(seen?.searchParams.get('watch'), 'true');
  assert.equal(seen?.searchParams.get('resourceVersion'), '5');
  assert.equal(auth, 'Bearer w');
});

test('kubeWatch: an HTTP error is a KubeApiError with its code (410 Gone); a silent connection ends at the idle timeout; abort rejects', async (t) => {
  let mode = 'gone';
  const kc = await httpServer(t, (req, res) => {
    if (mode === 'gone') {
      res.writeHead(410, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify({ kind: 'Status', code: 410, reason: 'Expired', message: 'too old resource version' }));
      return;
    }
    res.writeHead(200, { 'Content-Type': 'application/json' });
    res.write(JSON.stringify({ type: 'ADDED', object: { metadata: { name: 'a' } } }) + '\n');
    // ... and then nothing, ever: a peer gone without a FIN.
  });
  const opts = (signal: AbortSignal) => ({ signal, idleTimeoutMs: 300 });
  const err = await kubeWatch(kc, '/api/v1/nodes', {}, () => {}, opts(new AbortController().signal)).then(() => undefined, (e: unknown) => e);
  assert.equal(statusCode(err), 410);
  assert.match(String(err), /too old resource version/);

  mode = 'silent';
  const events: WatchEvent[] = [];
  const started = Date.now();
  await kubeWatch(kc, '/api/v1/nodes', {}, (e) => events.push(e), opts(new AbortController().signal));
  assert.equal(events.length, 1);
  assert.ok(Date.now() - started >= 250, 'ended by the idle timeout, not at once');

  const ac = new AbortController();
  const watching = kubeWatch(kc, '/api/v1/nodes', {}, () => ac.abort(), { signal: ac.signal, idleTimeoutMs: 60_000 });
  await assert.rejects(watching, { name: 'AbortError' });
});
