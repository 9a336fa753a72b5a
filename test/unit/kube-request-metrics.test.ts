// rest_client_requests_total (src/adapters/kube/request-metrics.ts): every request of the Kubernetes adapter,
// watches included, counted once with client-go's labels, against a stand-in API server on loopback.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Registry } from 'prom-client';
import { kubeRequest, kubeWatch, type KubeConfig } from '../../src/adapters/kube/client.ts';
import { countRequests, restClientRequests } from '../../src/adapters/kube/request-metrics.ts';

let server: Server;
let host: string;

before(async () => {
  server = createServer((req, res) => {
    if (req.url?.startsWith('/api/v1/nodes?watch=true')) {
      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.end('{"type":"ADDED","object":{"metadata":{"name":"n1"}}}\n');
    } else if (req.url === '/api/v1/nodes/missing') {
      res.writeHead(404, { 'Content-Type': 'application/json' }).end('{"kind":"Status","code":404,"reason":"NotFound"}');
    } else res.writeHead(200, { 'Content-Type': 'application/json' }).end('{}');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  host = `127.0.0.1:${(server.address() as AddressInfo).port}`;
});
after(() => new Promise<void>((resolve) => server.close(() => resolve())));

function kubeConfig(server: string): KubeConfig {
  return { getCurrentCluster: () => ({ name: 'test', server }), applyToHTTPSOptions: async () => undefined };
}

async function samples(registry: Registry): Promise<string[]> {
  return (await registry.metrics()).split('\n').filter((l) => l.startsWith('rest_client_requests_total{')).sort();
}

test('answers by status code, method and host; a watch counts when it is answered; no answer is <error>', async () => {
  const registry = new Registry();
  const counter = restClientRequests(registry);
  const kc = kubeConfig(`http://${host}`);
  const stop = countRequests(counter, kc);
  await kubeRequest(kc, { method: 'GET', path: '/api/v1/nodes/n1' });
  await kubeRequest(kc, { method: 'PATCH', path: '/api/v1/nodes/n1', body: {} });
  await assert.rejects(kubeRequest(kc, { method: 'GET', path: '/api/v1/nodes/missing' }), /404/);
  const events: unknown[] = [];
  await kubeWatch(kc, '/api/v1/nodes', {}, (e) => events.push(e), { signal: new AbortController().signal, idleTimeoutMs: 5000 });
  assert.equal(events.length, 1);

  // A port nobody listens on: the port of a server that was just closed.
  const closed = createServer();
  await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
  const deadHost = `127.0.0.1:${(closed.address() as AddressInfo).port}`;
  await new Promise<void>((resolve) => closed.close(() => resolve()));
  const dead = kubeConfig(`http://${deadHost}`);
  const stopDead = countRequests(counter, dead);
  await assert.rejects(kubeRequest(dead, { method: 'DELETE', path: '/api/v1/nodes/n1' }));

  assert.deepEqual(await samples(registry), [
    `rest_client_requests_total{code="200",method="GET",host="${host}"} 2`,
    `rest_client_requests_total{code="200",method="PATCH",host="${host}"} 1`,
    `rest_client_requests_total{code="404",method="GET",host="${host}"} 1`,
    `rest_client_requests_total{code="<error>",method="DELETE",host="${deadHost}"} 1`,
  ].sort());

  stop();
  stopDead();
  await kubeRequest(kc, { method: 'GET', path: '/api/v1/nodes/n1' });
  assert.match((await samples(registry)).join('\n'), /code="200",method="GET",host="[^"]+"\} 2/, 'not counted once stopped');
});

test('each KubeConfig counts only its own requests', async () => {
  const mine = new Registry();
  const theirs = new Registry();
  const kcMine = kubeConfig(`http://${host}`);
  const kcTheirs = kubeConfig(`http://${host}`);
  const stops = [countRequests(restClientRequests(mine), kcMine), countRequests(restClientRequests(theirs), kcTheirs)];
  await kubeRequest(kcMine, { method: 'GET', path: '/api/v1/nodes/n1' });
  assert.deepEqual(await samples(mine), [`rest_client_requests_total{code="200",method="GET",host="${host}"} 1`]);
  assert.deepEqual(await samples(theirs), []);
  for (const stop of stops) stop();
});
