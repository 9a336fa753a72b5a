// The VICI client against real charons: two gateways in two namespaces we create, joined by a veth.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  ViciClient,
  ViciError,
  ViciSession,
  ViciTimeoutError,
  parseUpdownEvent,
  type ConnConfig,
  type SharedKey,
  type Subscription,
  type ViciCommands,
  type ViciMessage,
} from '../../src/agent/vici/index.ts';
import { charonSkipReason, startCharon, type CharonInstance } from '../support/charon.ts';

const exec = promisify(execFile);
const skip = charonSkipReason() ?? (onPath('ping') ? undefined : 'needs ping (apt-get install iputils-ping)');

function onPath(cmd: string): boolean {
  return (process.env.PATH ?? '').split(':').some((dir) => dir !== '' && existsSync(join(dir, cmd)));
}

// TEST-NET ranges, used only inside the namespaces this file creates.
const GW_A = '192.0.2.1';
const GW_B = '192.0.2.2';
const UNREACHABLE_PEER = '192.0.2.99';
const POD_NET_A = '198.51.100.0/24';
const POD_IP_A = '198.51.100.1';
const POD_NET_B = '203.0.113.0/24';
const POD_IP_B = '203.0.113.1';
const ID_A = 'gw-a.corvid.test';
const ID_B = 'gw-b.corvid.test';
const CONN = 'corvid-ab';
const CHILD = 'pods';
const PSK_ID = 'psk-corvid-ab';

function conn(local: string, remote: string, localId: string, remoteId: string, localTs: string, remoteTs: string): ConnConfig {
  return {
    version: 2,
    local_addrs: [local],
    remote_addrs: [remote],
    proposals: ['aes256-sha256-modp2048'],
    dpd_delay: 10,
    local: { auth: 'psk', id: localId },
    remote: { auth: 'psk', id: remoteId },
    children: {
      [CHILD]: {
        local_ts: [localTs],
        remote_ts: [remoteTs],
        esp_proposals: ['aes256-sha256'],
        start_action: 'none',
        dpd_action: 'clear',
        close_action: 'none',
        mode: 'tunnel',
      },
    },
  };
}

const CONN_A = conn(GW_A, GW_B, ID_A, ID_B, POD_NET_A, POD_NET_B);
const CONN_B = conn(GW_B, GW_A, ID_B, ID_A, POD_NET_B, POD_NET_A);

async function ip(...args: string[]): Promise<void> {
  await exec('ip', args);
}

async function waitFor<T>(what: string, probe: () => T | undefined | Promise<T | undefined>, timeoutMs = 5_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(25);
  }
}

async function withTimeout<T>(promise: Promise<T>, timeoutMs: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)), timeoutMs);
  });
  try {
    return await Promise.race([promise, expired]);
  } finally {
    clearTimeout(timer);
  }
}

interface SeenEvent {
  name: string;
  msg: ViciMessage;
}

function upEvent(events: SeenEvent[], name: string): SeenEvent | undefined {
  return events.find((e) => e.name === name && parseUpdownEvent(e.msg).up && parseUpdownEvent(e.msg).sas[0]?.name === CONN);
}

async function loadGateway(vici: ViciCommands, psk: string, connConfig: ConnConfig): Promise<void> {
  const key: SharedKey = { id: PSK_ID, type: 'IKE', data: psk, owners: [ID_A, ID_B] };
  await vici.loadShared(key);
  await vici.loadConn(CONN, connConfig);
}

async function unloadGateway(vici: ViciCommands): Promise<void> {
  await vici.unloadConn(CONN);
  await vici.unloadShared(PSK_ID);
}

describe('VICI client against real charons', { skip }, () => {
  const suffix = randomBytes(3).toString('hex');
  const nsA = `corvid-vt-${suffix}a`;
  const nsB = `corvid-vt-${suffix}b`;
  const psk = randomBytes(32).toString('base64');
  let charonA: CharonInstance | undefined;
  let charonB: CharonInstance | undefined;
  let viciA: ViciClient | undefined;
  let viciB: ViciClient | undefined;
  const subscriptions: Subscription[] = [];
  const sessions: ViciSession[] = [];

  before(async () => {
    await ip('netns', 'add', nsA);
    await ip('netns', 'add', nsB);
    // The peer end is created straight in nsB, so the host never sees either end.
    await ip('-n', nsA, 'link', 'add', 'veth0', 'type', 'veth', 'peer', 'name', 'veth0', 'netns', nsB);
    for (const [ns, gw, pod] of [[nsA, GW_A, POD_IP_A], [nsB, GW_B, POD_IP_B]] as const) {
      await ip('-n', ns, 'addr', 'add', `${gw}/24`, 'dev', 'veth0');
      await ip('-n', ns, 'addr', 'add', `${pod}/32`, 'dev', 'lo');
      await ip('-n', ns, 'link', 'set', 'lo', 'up');
      await ip('-n', ns, 'link', 'set', 'veth0', 'up');
    }
    // One at a time, so a failed start never loses track of a started instance.
    const t0 = Date.now();
    charonA = await startCharon({ netns: nsA });
    const t1 = Date.now();
    charonB = await startCharon({ netns: nsB });
    // Visible in the test output; the team tracks these timings.
    console.log(`# charon ready in ${t1 - t0} ms and ${Date.now() - t1} ms`);
    viciA = await ViciClient.connect(charonA.socketPath);
    viciB = await ViciClient.connect(charonB.socketPath);
  });

  after(async () => {
    await Promise.allSettled(subscriptions.map((s) => s.close()));
    await Promise.allSettled(sessions.map((s) => s.close()));
    await Promise.allSettled([viciA?.close(), viciB?.close()]);
    await Promise.allSettled([charonA?.stop(), charonB?.stop()]);
    for (const ns of [nsA, nsB]) await ip('netns', 'del', ns).catch(() => {});
  });

  test('version, stats and an unknown command', async () => {
    const version = await viciA!.version();
    assert.equal(version.daemon, 'charon');
    assert.match(version.version, /^\d+\.\d+\.\d+/);
    const stats = await viciA!.stats();
    assert.ok(Array.isArray(stats.plugins) && stats.plugins.includes('kernel-libipsec'));
    await assert.rejects(viciA!.request('no-such-command'), (err: Error) => {
      assert.ok(err instanceof ViciError);
      assert.match(err.message, /unknown VICI command no-such-command/);
      return true;
    });
    // The connection stays usable after a failed command.
    assert.equal((await viciA!.version()).daemon, 'charon');
  });

  test('charon errors surface as ViciError without the secret', async () => {
    const secret = randomBytes(32).toString('hex');
    const bogus = { id: 'bogus', type: 'BOGUS', data: secret, owners: [ID_A] } as unknown as SharedKey;
    await assert.rejects(viciA!.loadShared(bogus), (err: Error) => {
      assert.ok(err instanceof ViciError, String(err));
      assert.match(err.message, /load-shared failed: .*BOGUS/);
      assert.ok(!err.message.includes(secret) && !String(err.stack).includes(secret));
      return true;
    });
    await assert.rejects(viciA!.unloadConn('no-such-conn'), ViciError);
  });

  test('PSK tunnel between two namespaces: up, listed, events, traffic, torn down', async () => {
    const events: SeenEvent[] = [];
    const subA = await viciA!.subscribe(['ike-updown', 'child-updown'], (name, msg) => events.push({ name, msg }));
    subscriptions.push(subA);
    const eventsB: SeenEvent[] = [];
    const subB = await viciB!.subscribe(['child-updown'], (name, msg) => eventsB.push({ name, msg }));
    subscriptions.push(subB);

    await loadGateway(viciA!, psk, CONN_A);
    await loadGateway(viciB!, psk, CONN_B);
    assert.deepEqual(await viciA!.getConns(), [CONN]);
    assert.deepEqual(await viciB!.getShared(), [PSK_ID]);

    const t0 = Date.now();
    await viciA!.initiate({ child: CHILD, ike: CONN, timeoutMs: 10_000 });
    console.log(`# SA up (initiate returned) in ${Date.now() - t0} ms`);

    for (const [side, vici, remote] of [['A', viciA!, GW_B], ['B', viciB!, GW_A]] as const) {
      const sas = await waitFor(`INSTALLED child on ${side}`, async () => {
        const list = await vici.listSas();
        return list[0]?.children[0]?.state === 'INSTALLED' ? list : undefined;
      });
      assert.equal(sas.length, 1, `one IKE_SA on ${side}`);
      const [ike] = sas;
      assert.equal(ike.name, CONN);
      assert.equal(ike.state, 'ESTABLISHED');
      assert.equal(ike.remoteHost, remote);
      assert.match(ike.uniqueId, /^\d+$/);
      assert.equal(ike.children.length, 1);
      assert.equal(ike.children[0].name, CHILD);
      assert.equal(typeof ike.children[0].installTime, 'number');
    }
    assert.equal((await viciA!.listSas({ ike: 'other' })).length, 0);

    await waitFor('child-updown up on A', () => upEvent(events, 'child-updown'));
    await waitFor('ike-updown up on A', () => upEvent(events, 'ike-updown'));
    await waitFor('child-updown up on B', () => upEvent(eventsB, 'child-updown'));
    const childUp = parseUpdownEvent(upEvent(events, 'child-updown')!.msg);
    assert.equal(childUp.sas[0].children[0].name, CHILD);

    // Pod-to-pod traffic through the tunnel moves the byte counters.
    await exec('ip', ['netns', 'exec', nsA, 'ping', '-c', '2', '-W', '2', '-I', POD_IP_A, POD_IP_B]);
    const [ikeA] = await viciA!.listSas({ ike: CONN });
    assert.ok(ikeA.children[0].bytesOut > 0 && ikeA.children[0].bytesIn > 0, JSON.stringify(ikeA.children[0]));

    await viciA!.terminate({ ike: CONN, timeoutMs: 5_000 });
    assert.deepEqual(await viciA!.listSas(), []);
    await waitFor('no SAs on B', async () => ((await viciB!.listSas()).length === 0 ? true : undefined));
    await waitFor('child-updown down on A', () =>
      events.find((e) => e.name === 'child-updown' && !parseUpdownEvent(e.msg).up),
    );

    await unloadGateway(viciA!);
    await unloadGateway(viciB!);
    for (const vici of [viciA!, viciB!]) {
      assert.deepEqual(await vici.getConns(), []);
      assert.deepEqual(await vici.getShared(), []);
      assert.deepEqual(await vici.listSas(), []);
    }
  });

  test('a command timeout destroys the connection', async () => {
    await viciA!.loadConn('corvid-dead', conn(GW_A, UNREACHABLE_PEER, ID_A, ID_B, POD_NET_A, POD_NET_B));
    const client = await ViciClient.connect(charonA!.socketPath);
    try {
      // timeout 0 makes charon wait for the IKE_SA, which never answers.
      await assert.rejects(
        client.request('initiate', { child: CHILD, ike: 'corvid-dead', timeout: '0' }, { timeoutMs: 300 }),
        ViciTimeoutError,
      );
      assert.equal(client.closed, true);
      await assert.rejects(client.version(), /closed|timeout|no answer/);
    } finally {
      await client.close();
    }
    await viciA!.terminate({ ike: 'corvid-dead', force: true, timeoutMs: 3_000 }).catch(() => {});
    await viciA!.unloadConn('corvid-dead');
    await waitFor('dead SA gone', async () => ((await viciA!.listSas()).length === 0 ? true : undefined));
  });

  test('a ViciSession survives a charon restart and its subscription re-registers', async () => {
    const session = new ViciSession(charonA!.socketPath, { reconnectTimeoutMs: 20_000 });
    sessions.push(session);
    const events: SeenEvent[] = [];
    const sub = await session.subscribe(['ike-updown', 'child-updown'], (name, msg) => events.push({ name, msg }));
    assert.equal((await session.version()).daemon, 'charon');

    const pidBefore = charonA!.pid;
    const t0 = Date.now();
    await charonA!.restart();
    console.log(`# charon restart took ${Date.now() - t0} ms`);
    assert.notEqual(charonA!.pid, pidBefore);

    // Same session object, no manual reconnect.
    assert.equal((await session.version()).daemon, 'charon');
    await withTimeout(sub.ready(), 10_000, 'the subscription to re-register');

    // charon forgot everything: load again and bring the tunnel up through the session.
    await loadGateway(session, psk, CONN_A);
    await loadGateway(viciB!, psk, CONN_B);
    await session.initiate({ child: CHILD, ike: CONN, timeoutMs: 10_000 });
    await waitFor('child-updown up after restart', () => upEvent(events, 'child-updown'));
    assert.equal((await session.listSas())[0]?.state, 'ESTABLISHED');

    await session.terminate({ ike: CONN, timeoutMs: 5_000 });
    await unloadGateway(session);
    await waitFor('no SAs on B', async () => ((await viciB!.listSas()).length === 0 ? true : undefined));
    await unloadGateway(viciB!);
    assert.deepEqual(await session.getConns(), []);
    await session.close();
  });
});
