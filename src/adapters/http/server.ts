// The one HTTP server of the sync and the agent (/healthz, /readyz, /metrics; the sync's POST /hooks/git): routes by
// method and path, bounded connections, bodies and timeouts. `:port` means every interface, IPv4 and IPv6, for both.

import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export type Handler = (req: IncomingMessage, res: ServerResponse, body: Buffer) => void | Promise<void>;

/** `:8080` -> all interfaces, `127.0.0.1:0` -> loopback and a free port. Throws on anything else. */
export function parseAddress(addr: string): { host: string | undefined; port: number } {
  const m = /^(.*):(\d{1,5})$/.exec(addr);
  if (!m) throw new Error(`bind address must be [host]:port, got "${addr}"`);
  const port = Number(m[2]);
  if (port > 65535) throw new Error(`port ${port} is out of range (0-65535) in "${addr}"`);
  const host = m[1] === '' ? undefined : m[1].replace(/^\[(.*)\]$/, '$1');
  if (host !== undefined && !/^[A-Za-z0-9.:%-]+$/.test(host)) throw new Error(`bind address must be [host]:port, got "${addr}"`);
  return { host, port };
}

const MAX_BODY = 1 << 20;
/** Connections open at once per listen address; more are refused by the kernel's accept (closed at once). */
export const MAX_CONNECTIONS = 64;
/** Time to receive a request's headers, and the whole request. */
const HEADERS_TIMEOUT_MS = 10_000;
const REQUEST_TIMEOUT_MS = 30_000;

export interface Listening {
  /** host:port actually bound. */
  address: string;
  /** The port actually bound (the one asked for, or the one the kernel picked for port 0). */
  port: number;
  close(): Promise<void>;
}

/** Serve `routes` ("METHOD /path") on `addr`. Unknown paths 404, other methods 405, bodies over 1 MiB 413. */
export async function serve(addr: string, routes: Record<string, Handler>): Promise<Listening> {
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    const handler = routes[`${req.method} ${path}`];
    if (handler === undefined) {
      const known = Object.keys(routes).some((k) => k.split(' ')[1] === path);
      res.writeHead(known ? 405 : 404, { 'Content-Type': 'text/plain' }).end(known ? 'method not allowed\n' : 'not found\n');
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY) {
        res.writeHead(413).end('body too large\n');
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => {
      if (res.writableEnded) return;
      Promise.resolve(handler(req, res, Buffer.concat(chunks))).catch(() => {
        if (!res.headersSent) res.writeHead(500).end('internal error\n');
      });
    });
  });
  // Bounded: a flood of connections or a client that sends its request slowly (slowloris) must not take the health
  // endpoints down with the webhook, nor hold memory. Probes and a forge's deliveries need far less.
  server.maxConnections = MAX_CONNECTIONS;
  server.headersTimeout = HEADERS_TIMEOUT_MS;
  server.requestTimeout = REQUEST_TIMEOUT_MS;
  const { host, port } = parseAddress(addr);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  const a = server.address() as AddressInfo;
  return {
    address: `${a.family === 'IPv6' ? `[${a.address}]` : a.address}:${a.port}`,
    port: a.port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
