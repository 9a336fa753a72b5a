// Data-plane liveness between two node namespaces on one LAN, through the worker that runs the socket inside each
// namespace (the agent's --netns mode): both sides hear each other; 5 % random loss each way (nftables) gives no
// verdict; a side that goes away is reported within downAfter plus a probe or two; it is reachable again at once;
// a node answers only the candidates it watches; a worker whose agent falls silent (paused, stalled) stops answering.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { openLiveness, type LivenessEndpoint } from '../../src/adapters/liveness/endpoint.ts';
import { ProbeBook } from '../../src/adapters/liveness/udp.ts';
import { DEFAULT_LIVENESS, unreachableTargets } from '../../src/nodeplan/liveness.ts';
import { NetnsLab, missingToolsReason, netnsSkipReason, sweepStaleNamespaces } from '../support/netns.ts';
import { fileURLToPath } from 'node:url';

const skip = netnsSkipReason() ?? missingToolsReason('liveness under loss', [['nft', 'nftables']]);
const lab = new NetnsLab();
let nsA = '';
let nsB = '';
const PORT = 9472;
const A = '10.79.0.1';
const B = '10.79.0.2';

before(async () => {
  if (skip) return;
  sweepStaleNamespaces();
  nsA = await lab.addNs('liveA');
  nsB = await lab.addNs('liveB');
  await lab.veth(nsA, 'eth0', nsB, 'eth0');
  await lab.addr(nsA, 'eth0', `${A}/24`);
  await lab.addr(nsB, 'eth0', `${B}/24`);
});

after(async () => {
  await lab.cleanup();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The verdict on `node` at address `addr`, as the agent makes it. */
function verdict(book: ProbeBook, addr: string): string[] {
  const o = book.observation(addr);
  return o === undefined ? [] : unreachableTargets([{ node: addr, ...o }], Date.now(), DEFAULT_LIVENESS);
}

/** Poll A's verdict until it names B; the time it did, or undefined after `withinMs`. */
async function verdictAt(book: ProbeBook, addr: string, withinMs: number): Promise<number | undefined> {
  const until = Date.now() + withinMs;
  while (Date.now() < until) {
    if (verdict(book, addr).includes(addr)) return Date.now();
    await sleep(10);
  }
  return undefined;
}

test('liveness between two namespaces: heard both ways, no verdict under 5 % loss, a dead side seen within 0.7 s', { skip, timeout: 60_000 }, async () => {
  const bookA = new ProbeBook();
  const bookB = new ProbeBook();
  const open = (ns: string, book: ProbeBook) =>
    openLiveness({ port: PORT, intervalMs: DEFAULT_LIVENESS.probeIntervalMs, book, netns: ns, onError: () => {} });
  const epA = await open(nsA, bookA);
  let epB: LivenessEndpoint | undefined = await open(nsB, bookB);
  try {
    epA.setTargets([B]);
    epB.setTargets([A]);
    await sleep(300);
    assert.ok(bookA.observation(B)?.lastReplyMs !== undefined, 'A hears B');
    assert.ok(bookB.observation(A)?.lastReplyMs !== undefined, 'B hears A');
    // Each answer says whether the answerer's datapath holds the active role: a hand-over's successor waits on it.
    assert.equal(bookB.saysActive(A, 200), false, 'a standby at first');
    epA.setActive(true);
    await sleep(200);
    assert.equal(bookB.saysActive(A, 200), true, 'A holds the role');
    epA.setActive(false);
    await sleep(200);
    assert.equal(bookB.saysActive(A, 200), false, 'A let go');

    // 5 % of packets dropped at random, each way, on A's side of the link, for 10 s: 200 probes, no verdict.
    await lab.exec(nsA, ['nft', '-f', '-'], {
      input: `table inet lossy {
        chain in { type filter hook input priority 0; numgen random mod 100 < 5 drop; }
        chain out { type filter hook output priority 0; numgen random mod 100 < 5 drop; }
      }\n`,
    });
    const lossUntil = Date.now() + 10_000;
    let verdicts = 0;
    while (Date.now() < lossUntil) {
      if (verdict(bookA, B).length > 0 || verdict(bookB, A).length > 0) verdicts++;
      await sleep(20);
    }
    const dropped = (await lab.exec(nsA, ['nft', 'list', 'table', 'inet', 'lossy'])).stdout;
    await lab.exec(nsA, ['nft', 'delete', 'table', 'inet', 'lossy']);
    assert.equal(verdicts, 0, 'no unreachable verdict under 5 % loss');
    assert.ok(dropped.includes('numgen'), 'the loss rules were in place');

    // B goes away (its worker closes the socket, as when its agent dies): A's verdict within downAfter + a bit.
    const goneAt = Date.now();
    await epB.close();
    epB = undefined;
    const seenAt = await verdictAt(bookA, B, 3000);
    assert.ok(seenAt !== undefined, 'B reported unreachable');
    const ms = seenAt - goneAt;
    // The silence began with B's last answer, up to a probe interval (and some scheduling) before it went away.
    const silentMs = seenAt - bookA.observation(B)!.lastReplyMs!;
    console.log(`# liveness: B gone -> A's verdict after ${ms} ms, ${silentMs} ms after B's last answer (downAfter ${DEFAULT_LIVENESS.downAfterMs} ms)`);
    assert.ok(silentMs >= DEFAULT_LIVENESS.downAfterMs, `a verdict after only ${silentMs} ms of silence`);
    assert.ok(ms < DEFAULT_LIVENESS.downAfterMs + 200, `verdict ${ms} ms after B went away`);

    // Back: reachable again with the first answer.
    epB = await open(nsB, bookB);
    epB.setTargets([A]);
    await sleep(300);
    assert.deepEqual(verdict(bookA, B), []);

    // B answers only the candidates it watches: once A is not among them, A hears nothing from B.
    epB.setTargets(['10.79.0.99']);
    await sleep(DEFAULT_LIVENESS.downAfterMs + 150);
    assert.deepEqual(verdict(bookA, B), [B], 'B stays silent to a node it does not watch');
  } finally {
    await epA.close();
    await epB?.close();
  }
});

test('a worker whose agent stops speaking (SIGSTOP, a stalled event loop) stops answering', { skip, timeout: 30_000 }, async () => {
  const bookA = new ProbeBook();
  const epA = await openLiveness({ port: PORT, intervalMs: DEFAULT_LIVENESS.probeIntervalMs, book: bookA, netns: nsA, onError: () => {} });
  // B's worker, driven by hand: told its targets once, then never again, as by an agent that froze.
  const worker = fileURLToPath(new URL('../../src/adapters/liveness/worker.ts', import.meta.url));
  const b = lab.spawn(nsB, [process.execPath, worker, String(PORT), String(DEFAULT_LIVENESS.probeIntervalMs)], { stdio: ['pipe', 'pipe', 'pipe'] });
  b.stdout!.resume();
  try {
    await new Promise<void>((resolve) => b.stdout!.once('data', () => resolve()));
    epA.setTargets([B]);
    const toldAt = Date.now();
    b.stdin!.write(`s ${A}\n`);
    await sleep(150);
    assert.ok(bookA.observation(B)?.lastReplyMs !== undefined, 'B answers while its agent has just spoken');
    const seenAt = await verdictAt(bookA, B, 5000);
    assert.ok(seenAt !== undefined, 'B reported unreachable once its agent fell silent');
    // About 5 intervals of grace in the worker, then downAfter of silence at A.
    const ms = seenAt - toldAt;
    console.log(`# liveness: agent silent -> its worker silent -> verdict after ${ms} ms`);
    assert.ok(ms >= DEFAULT_LIVENESS.downAfterMs, `${ms} ms`);
    // It speaks again: answered again.
    b.stdin!.write(`s ${A}\n`);
    await sleep(100);
    assert.deepEqual(verdict(bookA, B), []);
  } finally {
    b.stdin!.end();
    await epA.close();
  }
});
