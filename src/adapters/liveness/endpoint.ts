// Where the liveness socket lives: in this process (a DaemonSet agent shares its node's network namespace), or in a
// worker started inside the node's named namespace (`--netns`, tests). Either way every probe sent and every answer
// lands in the caller's ProbeBook, timed by the caller's clock.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import { inNetns } from '../command.ts';
import { UdpLiveness, type ProbeBook } from './udp.ts';

export interface LivenessEndpoint {
  setTargets(addresses: readonly string[]): void;
  /** Whether this node's datapath holds its pool's active role (said in every answer). */
  setActive(active: boolean): void;
  close(): Promise<void>;
}

export interface LivenessEndpointOptions {
  port: number;
  intervalMs: number;
  book: ProbeBook;
  netns?: string;
  ipPath?: string;
  onError: (message: string) => void;
}

/** Open the liveness socket; rejects when the port cannot be bound. */
export async function openLiveness(o: LivenessEndpointOptions): Promise<LivenessEndpoint> {
  const setTargets = (addresses: readonly string[]): readonly string[] => {
    o.book.setTargets(addresses);
    return o.book.targets();
  };
  if (o.netns === undefined) {
    let active = false;
    const udp = new UdpLiveness({
      port: o.port,
      intervalMs: o.intervalMs,
      active: () => active,
      onSent: (a) => o.book.sent(a),
      onAnswer: (a, isActive) => o.book.answered(a, isActive),
      onError: o.onError,
    });
    await udp.start();
    return {
      setTargets: (a) => udp.setTargets(setTargets(a)),
      setActive: (a) => {
        active = a;
      },
      close: () => udp.close(),
    };
  }
  // .js in the npm package's compiled JavaScript (dist/), .ts in src/.
  const worker = fileURLToPath(new URL(`./worker${import.meta.url.slice(import.meta.url.lastIndexOf('.'))}`, import.meta.url));
  const [cmd, args] = inNetns(o.netns, process.execPath, [worker, String(o.port), String(o.intervalMs)], o.ipPath);
  const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (c: string) => {
    stderr = (stderr + c).slice(-2000);
    o.onError(c.trim());
  });
  const exited = new Promise<void>((r) => child.once('close', () => r()));
  await new Promise<void>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code) => reject(new Error(`liveness worker in ${o.netns} exited (${code}): ${stderr.trim()}`)));
    createInterface({ input: child.stdout! }).on('line', (l) => {
      if (l === 'ready') resolve();
      else if (l.startsWith('s ')) o.book.sent(l.slice(2));
      else if (l.startsWith('a ')) {
        const [, address, role] = l.split(' ');
        o.book.answered(address, role === 'a');
      }
    });
  });
  child.stdin!.on('error', () => {}); // the worker died: close() and the silence say so
  // The targets again every interval: the worker answers only while this process speaks (see worker.ts).
  let targets = '';
  let active = false;
  const tell = (): void => {
    if (child.exitCode === null && child.stdin!.writable) child.stdin!.write(`${active ? 'a' : 's'} ${targets}\n`);
  };
  const keepalive = setInterval(tell, o.intervalMs);
  return {
    setTargets: (a) => {
      targets = setTargets(a).join(',');
      tell();
    },
    setActive: (a) => {
      if (a === active) return;
      active = a;
      tell();
    },
    close: async () => {
      clearInterval(keepalive);
      child.stdin!.end();
      const t = setTimeout(() => child.kill('SIGKILL'), 2000);
      await exited;
      clearTimeout(t);
    },
  };
}
