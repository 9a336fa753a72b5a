// UdpLiveness inside a network namespace, for an agent that stays in its own (`--netns`, tests: the API server is on
// the host's loopback). Started by endpoint.ts as `ip netns exec NS node worker.ts PORT INTERVAL_MS`. Reads lines
// `ROLE TARGETS` on stdin (ROLE `a` when this node's datapath holds the active role, else `s`; TARGETS the
// comma-separated addresses), repeated every interval as the agent's sign of life; writes `s ADDR` for each probe sent
// and `a ADDR ROLE` for each answer. It answers only while its agent speaks (a paused or stalled agent's
// node goes silent, as it would with the socket in the agent itself), and exits when stdin closes, so it never
// outlives its agent.
import { createInterface } from 'node:readline';
import { UdpLiveness } from './udp.ts';

const [port, intervalMs] = process.argv.slice(2).map(Number);
const out: string[] = [];
let flushing = false;
const emit = (line: string): void => {
  out.push(line);
  if (flushing) return;
  flushing = true;
  setImmediate(() => {
    flushing = false;
    process.stdout.write(out.splice(0).join('\n') + '\n');
  });
};
/** The agent is alive while it has written a line within this many intervals. */
const SILENT_AFTER_INTERVALS = 5;
let lastLineMs = Date.now();
let active = false;
const udp = new UdpLiveness({
  port,
  intervalMs,
  answering: () => Date.now() - lastLineMs <= SILENT_AFTER_INTERVALS * intervalMs,
  active: () => active,
  onSent: (a) => emit(`s ${a}`),
  onAnswer: (a, isActive) => emit(`a ${a} ${isActive ? 'a' : 's'}`),
  onError: (m) => process.stderr.write(`${m}\n`),
});
try {
  await udp.start();
} catch (e) {
  process.stderr.write(`cannot bind the liveness port ${port}: ${(e as Error).message}\n`);
  process.exit(1);
}
emit('ready');
const lines = createInterface({ input: process.stdin });
lines.on('line', (l) => {
  lastLineMs = Date.now();
  const [role, targets = ''] = l.split(' ');
  active = role === 'a';
  udp.setTargets(targets.split(',').filter((x) => x !== ''));
});
lines.on('close', () => {
  void udp.close().then(() => process.exit(0));
});
