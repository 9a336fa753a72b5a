// Runs inside the UML guest of kernel-esp.e2e.ts (`node kernel-esp-guest.ts <phase> <run dir>`): builds the network
// there, runs charon with the shipped config, and writes what it saw to <run dir>/result-<phase>.json for the host
// to assert on. It never asserts itself: the host's test says what failed.
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { NetnsLab } from '../support/netns.ts';
import { startCharon, type CharonInstance } from '../support/charon.ts';
import { ViciClient } from '../../src/agent/vici/index.ts';

const [phase, runDir] = process.argv.slice(2);
const result: Record<string, unknown> = { phase, steps: [] as string[] };
const t0 = Date.now();

function save(): void {
  writeFileSync(join(runDir, `result-${phase}.json`), `${JSON.stringify(result, null, 1)}\n`);
}

function step(name: string): void {
  (result.steps as string[]).push(`${((Date.now() - t0) / 1000).toFixed(1)}s ${name}`);
  save();
}

function sh(ns: string, cmd: string): string {
  try {
    const argv = ns === '' ? ['sh', '-c', cmd] : ['ip', 'netns', 'exec', ns, 'sh', '-c', cmd];
    return execFileSync(argv[0], argv.slice(1), { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (e) {
    const err = e as { stdout?: string; stderr?: string };
    return `${err.stdout ?? ''}${err.stderr ?? ''}`;
  }
}

/** Packets through the ESP states of a namespace (`ip -s xfrm state`: "lifetime current: <bytes>(bytes), <n>(packets)"). */
export function espPackets(text: string): number {
  let n = 0;
  for (const m of text.matchAll(/(\d+)\(bytes\), (\d+)\(packets\)/g)) n += Number(m[2]);
  return n;
}

/** A node namespace with a pod namespace behind it (node pod0 = <subnet>.1, pod eth0 = <subnet>.2). */
async function podOf(lab: NetnsLab, node: string, label: string, subnet24: string): Promise<string> {
  const pod = await lab.addNs(label);
  await lab.veth(node, 'pod0', pod, 'eth0');
  await lab.addr(node, 'pod0', `${subnet24}.1/24`);
  await lab.addr(pod, 'eth0', `${subnet24}.2/24`);
  await lab.route(pod, 'default', 'via', `${subnet24}.1`);
  return pod;
}

// ------------------------------------------------------------------ phase pair: charon alone, two namespaces

async function pair(lab: NetnsLab, charons: CharonInstance[]): Promise<void> {
  const [a, b] = [await lab.addNs('gwa'), await lab.addNs('gwb')];
  await lab.veth(a, 'wan0', b, 'wan0');
  await lab.addr(a, 'wan0', '10.1.0.1/24');
  await lab.addr(b, 'wan0', '10.1.0.2/24');
  const pa = await podOf(lab, a, 'poda', '10.244.1');
  const pb = await podOf(lab, b, 'podb', '10.244.2');
  await lab.forwarding(a);
  await lab.forwarding(b);
  step('namespaces');
  const sides = [
    { ns: a, me: '10.1.0.1', peer: '10.1.0.2', id: 'a', peerId: 'b', local: '10.244.1.0/24', remote: '10.244.2.0/24' },
    { ns: b, me: '10.1.0.2', peer: '10.1.0.1', id: 'b', peerId: 'a', local: '10.244.2.0/24', remote: '10.244.1.0/24' },
  ];
  const vicis: ViciClient[] = [];
  try {
    for (const s of sides) {
      const c = await startCharon({ netns: s.ns, config: 'shipped' });
      charons.push(c);
      const v = await ViciClient.connect(c.socketPath);
      vicis.push(v);
      await v.loadShared({ id: 'psk', type: 'IKE', data: 'kernel-esp-pair-test-key-0123456789', owners: ['a', 'b'] });
      await v.loadConn('pair', {
        version: 2,
        local_addrs: [s.me],
        remote_addrs: [s.peer],
        proposals: ['aes256-sha256-modp2048'],
        local: { auth: 'psk', id: s.id },
        remote: { auth: 'psk', id: s.peerId },
        children: { pair: { local_ts: [s.local], remote_ts: [s.remote], esp_proposals: ['aes256-sha256'], start_action: 'none' } },
      });
    }
    result.plugins = sh(a, `grep -o 'loaded plugins:.*' ${charons[0].dir}/charon.out | head -1`).trim();
    step('charons up, connections loaded');
    await vicis[0].initiate({ child: 'pair', ike: 'pair', timeoutMs: 10_000 });
    step('initiated');
    result.ping = sh(pa, 'ping -c 3 -i 0.2 -W 2 10.244.2.2');
    result.xfrmState = sh(a, 'ip -s xfrm state');
    result.xfrmPolicy = sh(a, 'ip xfrm policy');
    result.table220 = sh(a, 'ip route show table 220');
    result.links = sh(a, 'ip -o link');
    result.espPackets = espPackets(String(result.xfrmState));
    void pb;
    step('pinged');
  } finally {
    await Promise.all(vicis.map((v) => v.close().catch(() => undefined)));
  }
}

// ------------------------------------------------------------------ main

const lab = new NetnsLab();
const charons: CharonInstance[] = [];
try {
  if (phase === 'pair') await pair(lab, charons);
  else throw new Error(`unknown phase ${phase}`);
} catch (e) {
  result.error = (e as Error).stack ?? String(e);
  for (const c of charons) result[`charon-${c.pid}`] = sh('', `tail -30 ${c.dir}/charon.out`);
} finally {
  await Promise.all(charons.map((c) => c.stop()));
  await lab.cleanup();
  step('done');
}
