// The two ends of tcpTransfer (traffic.ts), run inside a namespace as their own Node process:
//   sink <bindIP> <port> <timeoutMs>: accept one connection, read to EOF, print {bytes, sha256, peer, peerPort, seconds}
//   source <ip> <port> <bytes> <seed> <timeoutMs> [<localIP>]: send <bytes> of seeded pseudo-random data, print
//     {bytes, sha256, local}
// Each prints one JSON line per event on stdout and exits on its own at <timeoutMs> (exit code 2) if not done.
import { createHash } from 'node:crypto';
import { createConnection, createServer } from 'node:net';

const [mode, ...args] = process.argv.slice(2);

function out(obj: unknown): void {
  process.stdout.write(JSON.stringify(obj) + '\n');
}

function deadline(ms: number): void {
  setTimeout(() => {
    out({ error: `timed out after ${ms} ms` });
    process.exit(2);
  }, ms).unref();
}

/** xorshift32 filling 64 KiB chunks: cheap, deterministic for a seed, good enough to defeat any compression. */
function* chunks(total: number, seed: number): Generator<Buffer> {
  let x = seed >>> 0 || 0x9e3779b9;
  let left = total;
  while (left > 0) {
    const words = new Uint32Array(16384);
    for (let i = 0; i < words.length; i++) {
      x ^= x << 13;
      x >>>= 0;
      x ^= x >>> 17;
      x ^= x << 5;
      x >>>= 0;
      words[i] = x;
    }
    const buf = Buffer.from(words.buffer, 0, Math.min(left, words.byteLength));
    left -= buf.length;
    yield buf;
  }
}

if (mode === 'sink') {
  const [bindIP, port, timeoutMs] = args;
  deadline(Number(timeoutMs));
  const server = createServer((sock) => {
    server.close();
    const hash = createHash('sha256');
    let bytes = 0;
    const t0 = process.hrtime.bigint();
    sock.on('data', (d: Buffer) => {
      bytes += d.length;
      hash.update(d);
    });
    sock.on('end', () => {
      const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
      out({ bytes, sha256: hash.digest('hex'), peer: sock.remoteAddress, peerPort: sock.remotePort, seconds });
      sock.end();
      process.exit(0);
    });
    sock.on('error', (e) => {
      out({ error: `sink: ${e.message}`, bytes });
      process.exit(1);
    });
  });
  server.on('error', (e) => {
    out({ error: `sink: ${e.message}` });
    process.exit(1);
  });
  server.listen(Number(port), bindIP, () => {
    const a = server.address();
    out({ listening: typeof a === 'object' && a ? a.port : Number(port) });
  });
} else if (mode === 'source') {
  const [host, port, total, seed, timeoutMs, localIP] = args;
  deadline(Number(timeoutMs));
  const hash = createHash('sha256');
  const sock = createConnection({ host, port: Number(port), localAddress: localIP || undefined });
  sock.on('error', (e) => {
    out({ error: `source: ${e.message}` });
    process.exit(1);
  });
  sock.on('connect', async () => {
    let bytes = 0;
    for (const buf of chunks(Number(total), Number(seed))) {
      hash.update(buf);
      bytes += buf.length;
      if (!sock.write(buf)) await new Promise((r) => sock.once('drain', r));
    }
    sock.end(() => {
      out({ bytes, sha256: hash.digest('hex'), local: sock.localAddress });
    });
    sock.on('close', () => process.exit(0));
  });
} else {
  process.stderr.write('usage: traffic-peer.ts sink <bindIP> <port> <timeoutMs> | source <ip> <port> <bytes> <seed> <timeoutMs> [<localIP>]\n');
  process.exit(64);
}
