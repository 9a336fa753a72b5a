// client-go's rest_client_requests_total for the API requests of this adapter (client.ts), on the caller's registry.
// No series exists before the first request: the status codes are not known in advance.

import { Counter, type Registry } from 'prom-client';
import { observeRequests, type KubeConfig } from './client.ts';

export type RestClientRequests = Counter<'code' | 'method' | 'host'>;

export function restClientRequests(registry: Registry): RestClientRequests {
  return new Counter({
    name: 'rest_client_requests_total',
    help: 'Number of HTTP requests, partitioned by status code, method, and host.',
    labelNames: ['code', 'method', 'host'] as const,
    registers: [registry],
  });
}

/** Count every request made with `kc` from now on. Returns the function that stops counting. */
export function countRequests(counter: RestClientRequests, kc: KubeConfig): () => void {
  return observeRequests(kc, (r) => counter.inc({ code: r.code, method: r.method, host: r.host }));
}
