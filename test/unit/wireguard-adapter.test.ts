// The corvid.wg adapter's pure parts (wg show dump, the diff, the syncconf text, the derived preshared key), the
// reconciler's view of a peer as a tunnel, and the node's key file.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { chmodSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { configText, diffWireguard, HANDSHAKE_NUDGE_AFTER_MS, parseDump, peersToNudge, wireguardGoError, wireguardPsk, type ActualWireguard, type WireguardConfig } from '../../src/adapters/wireguard/wireguard.ts';
import { loadOrCreateKey, publicKeyOf } from '../../src/adapters/wireguard/keyfile.ts';
import { wireguardTunnel } from '../../src/agent/reconciler.ts';
import { WIREGUARD_SESSION_SECONDS } from '../../src/nodeplan/index.ts';
import { isWireguardKey } from '../../src/gateway/wireguard.ts';
import { onPath } from '../support/host.ts';

/** A well-formed key per label (32 bytes of a hash, base64). */
function key(label: string): string {
  return createHash('sha256').update(label).digest('base64');
}

const PRIV = key('private');
const PUB_B = key('b-gw');
const PUB_C = key('c-gw');
const PSK_B = key('psk-b');
const PSK_C = key('psk-c');

// ---------------------------------------------------------------- parseDump

/** `wg show corvid.wg dump` as wireguard-go 0.0.20220316 and wg 1.0.20210914 print it (tabs, one line per peer). */
const DUMP = [
  [PRIV, key('a-gw'), '51820', 'off'],
  [PUB_B, PSK_B, '192.0.2.2:51820', '10.102.0.0/24,10.102.1.0/24', '1765000000', '1234', '5678', '25'],
  [PUB_C, '(none)', '(none)', '(none)', '0', '0', '0', 'off'],
  [key('d-gw'), PSK_C, '[2001:db8::4]:51820', 'fd00:4::/64,10.104.0.0/24', '1765000100', '1', '2', '25'],
]
  .map((l) => l.join('\t'))
  .join('\n');

test('parseDump: interface line, peers, (none) fields, keepalive off, IPv6 endpoints', () => {
  const d = parseDump(`${DUMP}\n`);
  assert.equal(d.privateKey, PRIV);
  assert.equal(d.listenPort, 51820);
  assert.deepEqual(d.peers, [
    { publicKey: PUB_B, presharedKey: PSK_B, endpoint: '192.0.2.2:51820', allowedIPs: ['10.102.0.0/24', '10.102.1.0/24'], latestHandshake: 1765000000, rxBytes: 1234, txBytes: 5678, persistentKeepalive: 25 },
    { publicKey: PUB_C, allowedIPs: [], latestHandshake: 0, rxBytes: 0, txBytes: 0, persistentKeepalive: 0 },
    { publicKey: key('d-gw'), presharedKey: PSK_C, endpoint: '[2001:db8::4]:51820', allowedIPs: ['fd00:4::/64', '10.104.0.0/24'], latestHandshake: 1765000100, rxBytes: 1, txBytes: 2, persistentKeepalive: 25 },
  ]);
});

test('parseDump: an interface without a private key, without peers, and empty output', () => {
  assert.deepEqual(parseDump(`(none)\t(none)\t0\toff\n`), { listenPort: 0, peers: [] });
  assert.deepEqual(parseDump(`${PRIV}\t${key('a-gw')}\t51820\toff\n`), { privateKey: PRIV, listenPort: 51820, peers: [] });
  assert.deepEqual(parseDump(''), { listenPort: 0, peers: [] });
  assert.deepEqual(parseDump('\n\n'), { listenPort: 0, peers: [] });
});

// ---------------------------------------------------------------- diffWireguard

function desired(o: Partial<WireguardConfig> = {}): WireguardConfig {
  return {
    device: 'corvid.wg',
    listenPort: 51820,
    privateKey: PRIV,
    peers: [
      { name: 'corvid-b', publicKey: PUB_B, presharedKey: PSK_B, endpoint: '192.0.2.2:51820', allowedIPs: ['10.102.0.0/24', '10.102.1.0/24'], persistentKeepalive: 25 },
      { name: 'corvid-c', publicKey: PUB_C, presharedKey: PSK_C, allowedIPs: ['10.103.0.0/24'], persistentKeepalive: 25 },
    ],
    ...o,
  };
}

/** The interface holding exactly `c` (a peer without endpoint has learnt one: it came to us). */
function actualOf(c: WireguardConfig): ActualWireguard {
  return {
    privateKey: c.privateKey,
    listenPort: c.listenPort,
    peers: c.peers.map((p) => ({
      publicKey: p.publicKey,
      presharedKey: p.presharedKey,
      endpoint: p.endpoint ?? '198.51.100.7:40123',
      allowedIPs: [...p.allowedIPs].reverse(),
      latestHandshake: 1765000000,
      rxBytes: 10,
      txBytes: 20,
      persistentKeepalive: p.persistentKeepalive,
    })),
  };
}

test('diffWireguard: nothing when equal (allowed IPs as a set; a learnt endpoint is no difference when none is configured)', () => {
  assert.deepEqual(diffWireguard(actualOf(desired()), desired()), []);
});

test('diffWireguard: each kind of difference, one line each, peers by name', () => {
  const want = desired();
  const cases: Array<[string, (a: ActualWireguard) => void, string[]]> = [
    ['private key', (a) => (a.privateKey = key('other')), ['private key']],
    ['no private key', (a) => delete a.privateKey, ['private key']],
    ['listen port', (a) => (a.listenPort = 51821), ['listen port 51820']],
    ['peer missing', (a) => a.peers.splice(1, 1), ['peer corvid-c added']],
    ['extra peers', (a) => a.peers.push({ ...a.peers[0], publicKey: key('x') }, { ...a.peers[0], publicKey: key('y') }), ['2 peers removed']],
    ['one extra peer', (a) => a.peers.push({ ...a.peers[0], publicKey: key('x') }), ['1 peer removed']],
    ['psk', (a) => (a.peers[0].presharedKey = key('other')), ['peer corvid-b preshared key']],
    ['no psk', (a) => delete a.peers[1].presharedKey, ['peer corvid-c preshared key']],
    ['allowed IPs narrowed', (a) => (a.peers[0].allowedIPs = ['10.102.0.0/24']), ['peer corvid-b allowed IPs']],
    ['allowed IPs changed', (a) => (a.peers[0].allowedIPs = ['10.102.0.0/24', '10.102.9.0/24']), ['peer corvid-b allowed IPs']],
    ['endpoint', (a) => (a.peers[0].endpoint = '192.0.2.99:51820'), ['peer corvid-b endpoint']],
    ['endpoint unknown', (a) => delete a.peers[0].endpoint, ['peer corvid-b endpoint']],
    ['keepalive', (a) => (a.peers[1].persistentKeepalive = 0), ['peer corvid-c keepalive']],
    [
      'several at once',
      (a) => {
        a.peers[0].persistentKeepalive = 0;
        a.peers[0].allowedIPs = [];
        a.peers[0].presharedKey = undefined;
      },
      ['peer corvid-b preshared key, allowed IPs, keepalive'],
    ],
  ];
  for (const [what, change, lines] of cases) {
    const a = actualOf(want);
    change(a);
    const d = diffWireguard(a, want);
    assert.deepEqual(d, lines, what);
    // Lines name peers, never keys.
    for (const k of [PRIV, PUB_B, PUB_C, PSK_B, PSK_C, key('other'), key('x'), key('y')]) assert.ok(!d.join('\n').includes(k), `${what}: a key in ${d}`);
  }
  // The endpoint of a peer without one configured (behind NAT) is wherever it comes from, even nowhere yet.
  const noEndpoint = actualOf(want);
  delete noEndpoint.peers[1].endpoint;
  assert.deepEqual(diffWireguard(noEndpoint, want), []);
  // A fresh interface: everything.
  assert.deepEqual(diffWireguard(parseDump('(none)\t(none)\t0\toff\n'), want), ['private key', 'listen port 51820', 'peer corvid-b added', 'peer corvid-c added']);
  // No peers wanted, an interface with some.
  assert.deepEqual(diffWireguard(actualOf(want), desired({ peers: [] })), ['2 peers removed']);
});

// ---------------------------------------------------------------- configText

test('peersToNudge: a peer we send to is re-added after HANDSHAKE_NUDGE_AFTER_MS without a handshake, and again as long after; never one that comes to us or has shaken hands', () => {
  const c = desired();
  const none = actualOf(c);
  for (const p of none.peers) p.latestHandshake = 0;
  const since = new Map<string, number>();
  const names = (r: { nudge: { name: string }[]; waiting: { name: string }[] }): [string[], string[]] => [r.nudge.map((p) => p.name), r.waiting.map((p) => p.name)];
  // corvid-c has no endpoint (behind NAT: it initiates): never waited for, never nudged.
  assert.deepEqual(names(peersToNudge(none, c, since, 0)), [[], ['corvid-b']]);
  assert.deepEqual(names(peersToNudge(none, c, since, HANDSHAKE_NUDGE_AFTER_MS - 1)), [[], ['corvid-b']]);
  assert.deepEqual(names(peersToNudge(none, c, since, HANDSHAKE_NUDGE_AFTER_MS)), [['corvid-b'], ['corvid-b']]);
  // Re-added just now: its own initiation gets a second again.
  assert.deepEqual(names(peersToNudge(none, c, since, HANDSHAKE_NUDGE_AFTER_MS * 1.5)), [[], ['corvid-b']]);
  assert.deepEqual(names(peersToNudge(none, c, since, 2 * HANDSHAKE_NUDGE_AFTER_MS)), [['corvid-b'], ['corvid-b']]);
  // A peer not on the interface yet (being added) waits from now.
  const fresh = new Map<string, number>();
  assert.deepEqual(names(peersToNudge({ ...none, peers: [] }, c, fresh, 5_000)), [[], ['corvid-b']]);
  assert.equal(fresh.get(PUB_B), 5_000);
  // A peer this apply adds again (removed by hand) or sends elsewhere waits from now, whatever it waited before.
  const stale = new Map([[PUB_B, 0]]);
  assert.deepEqual(names(peersToNudge({ ...none, peers: [] }, c, stale, 60_000)), [[], ['corvid-b']]);
  assert.equal(stale.get(PUB_B), 60_000);
  const moved = { ...none, peers: none.peers.map((p) => ({ ...p, endpoint: '192.0.2.9:51820' })) };
  assert.deepEqual(names(peersToNudge(moved, c, new Map([[PUB_B, 0]]), 60_000)), [[], ['corvid-b']]);
  // A handshake ends the wait and forgets the peer.
  assert.deepEqual(names(peersToNudge(actualOf(c), c, since, 10 * HANDSHAKE_NUDGE_AFTER_MS)), [[], []]);
  assert.equal(since.size, 0);
  // A warm session (a standby's) is left to WireGuard's own retries: never waited for, never nudged.
  const warm = { ...c, peers: c.peers.map((p) => ({ ...p, warm: true })) };
  assert.deepEqual(names(peersToNudge(none, warm, new Map([[PUB_B, 0]]), 60_000)), [[], []]);
});

test('configText: the wg syncconf text, endpoint and allowed IPs only when there are some', () => {
  const c = desired({ mtu: 1440 });
  c.peers.push({ name: 'corvid-d', publicKey: key('d-gw'), presharedKey: key('psk-d'), endpoint: '[2001:db8::4]:51820', allowedIPs: [], persistentKeepalive: 25 });
  assert.equal(
    configText(c),
    [
      '[Interface]',
      `PrivateKey = ${PRIV}`,
      'ListenPort = 51820',
      '',
      '[Peer]',
      `PublicKey = ${PUB_B}`,
      `PresharedKey = ${PSK_B}`,
      'AllowedIPs = 10.102.0.0/24, 10.102.1.0/24',
      'Endpoint = 192.0.2.2:51820',
      'PersistentKeepalive = 25',
      '',
      '[Peer]',
      `PublicKey = ${PUB_C}`,
      `PresharedKey = ${PSK_C}`,
      'AllowedIPs = 10.103.0.0/24',
      'PersistentKeepalive = 25',
      '',
      '[Peer]',
      `PublicKey = ${key('d-gw')}`,
      `PresharedKey = ${key('psk-d')}`,
      'Endpoint = [2001:db8::4]:51820',
      'PersistentKeepalive = 25',
      '',
    ].join('\n'),
  );
  // No MTU in it (wg does not take one: the link's MTU is set with ip), and no peers: the interface alone.
  assert.equal(configText(desired({ peers: [] })), `[Interface]\nPrivateKey = ${PRIV}\nListenPort = 51820\n`);
});

// ---------------------------------------------------------------- wireguardPsk

test('wireguardPsk: 32 bytes, deterministic, different per secret, not the secret itself', () => {
  const s1 = randomBytes(32);
  const s2 = Buffer.from(s1);
  s2[31] ^= 1;
  const k1 = wireguardPsk(s1);
  assert.equal(Buffer.from(k1, 'base64').length, 32);
  assert.ok(isWireguardKey(k1), 'base64 of 32 bytes, as wg takes it');
  assert.equal(wireguardPsk(Buffer.from(s1)), k1, 'both ends derive the same key');
  assert.notEqual(wireguardPsk(s2), k1);
  assert.notEqual(k1, s1.toString('base64'));
  // Whatever the Secret's length: a 44-byte base64 text file, a long one.
  const long = wireguardPsk(Buffer.from('x'.repeat(1000) + 'y'));
  assert.equal(Buffer.from(long, 'base64').length, 32);
  assert.notEqual(wireguardPsk(Buffer.from(s1.toString('base64'))), k1);
});

// ---------------------------------------------------------------- wireguardTunnel

test('wireguardTunnel: up within 180 s of the last handshake, pending before any, down when the peer is not there', () => {
  const now = 1765000000;
  const peer = (hs: number) => ({ publicKey: PUB_B, presharedKey: PSK_B, allowedIPs: ['10.102.0.0/24'], latestHandshake: hs, rxBytes: 100, txBytes: 200, persistentKeepalive: 25 });
  assert.equal(WIREGUARD_SESSION_SECONDS, 180);
  const up = wireguardTunnel('b', 'corvid-b', peer(now - 5), now);
  assert.deepEqual(up, {
    peer: 'b',
    conn: 'corvid-b',
    up: true,
    pending: false,
    bytesIn: 100,
    bytesOut: 200,
    children: [{ uniqueId: `wireguard ${PUB_B}`, bytesIn: 100, bytesOut: 200, localTs: [], remoteTs: ['10.102.0.0/24'], up: true }],
  });
  assert.equal(wireguardTunnel('b', 'corvid-b', peer(now - 180), now).up, true, 'exactly 180 s');
  const stale = wireguardTunnel('b', 'corvid-b', peer(now - 181), now);
  assert.deepEqual([stale.up, stale.pending], [false, false], 'older than a session lives: down, not pending');
  const fresh = wireguardTunnel('b', 'corvid-b', peer(0), now);
  assert.deepEqual([fresh.up, fresh.pending], [false, true], 'configured, no handshake yet');
  const none = wireguardTunnel('b', 'corvid-b', undefined, now);
  assert.deepEqual(none, { peer: 'b', conn: 'corvid-b', up: false, pending: false, bytesIn: 0, bytesOut: 0, children: [] });
  // Fractional clocks (Date.now() / 1000) count the same way.
  assert.equal(wireguardTunnel('b', 'corvid-b', peer(now), now + 180.5).up, false);
  // The preshared key is never part of it.
  assert.ok(!JSON.stringify(up).includes(PSK_B));
});

// ---------------------------------------------------------------- the key file

function tempDir(): { dir: string; [Symbol.dispose](): void } {
  const dir = mkdtempSync(join(tmpdir(), 'corvid-wgkey-'));
  return { dir, [Symbol.dispose]: () => rmSync(dir, { recursive: true, force: true }) };
}

const mode = (p: string): number => statSync(p).mode & 0o777;

test('key file: created 0600 in a 0700 directory, the same key on the next load', () => {
  using t = tempDir();
  const path = join(t.dir, 'sub', 'private.key');
  const k = loadOrCreateKey(path);
  assert.equal(k.created, true);
  assert.equal(k.tightened, false);
  assert.equal(mode(path), 0o600);
  assert.equal(mode(join(t.dir, 'sub')), 0o700);
  assert.ok(isWireguardKey(k.privateKey) && isWireguardKey(k.publicKey));
  assert.notEqual(k.privateKey, k.publicKey);
  assert.equal(readFileSync(path, 'utf8'), `${k.privateKey}\n`, 'as wg genkey writes it');
  const again = loadOrCreateKey(path);
  assert.deepEqual(again, { privateKey: k.privateKey, publicKey: k.publicKey, created: false, tightened: false });
  // Another file, another key.
  assert.notEqual(loadOrCreateKey(join(t.dir, 'other.key')).publicKey, k.publicKey);
});

test('key file: the public key is what wg pubkey prints, for our keys and for a file wg genkey wrote', { skip: onPath('wg') ? false : 'needs wg (apt-get install wireguard-tools)' }, () => {
  using t = tempDir();
  const ours = join(t.dir, 'ours.key');
  const k = loadOrCreateKey(ours);
  assert.equal(execFileSync('wg', ['pubkey'], { input: readFileSync(ours), encoding: 'utf8' }).trim(), k.publicKey);
  const theirs = join(t.dir, 'genkey.key');
  writeFileSync(theirs, execFileSync('wg', ['genkey'], { encoding: 'utf8' }), { mode: 0o600 });
  const g = loadOrCreateKey(theirs);
  assert.equal(g.created, false);
  assert.equal(g.privateKey, readFileSync(theirs, 'utf8').trim());
  assert.equal(g.publicKey, execFileSync('wg', ['pubkey'], { input: readFileSync(theirs), encoding: 'utf8' }).trim());
});

test('key file: an unclamped key is handed on clamped, as WireGuard reports it (no difference at every comparison)', () => {
  using t = tempDir();
  const raw = randomBytes(32);
  raw[0] |= 7;
  raw[31] |= 0x80;
  raw[31] &= ~0x40;
  const path = join(t.dir, 'raw.key');
  writeFileSync(path, `${raw.toString('base64')}\n`, { mode: 0o600 });
  const k = loadOrCreateKey(path);
  const clamped = Buffer.from(raw);
  clamped[0] &= 248;
  clamped[31] = (clamped[31] & 127) | 64;
  assert.equal(k.privateKey, clamped.toString('base64'));
  assert.equal(k.publicKey, publicKeyOf(raw), 'the same public key either way');
  assert.equal(readFileSync(path, 'utf8'), `${raw.toString('base64')}\n`, 'the file is not rewritten');
  if (onPath('wg')) assert.equal(execFileSync('wg', ['pubkey'], { input: readFileSync(path), encoding: 'utf8' }).trim(), k.publicKey);
});

test('key file: a file readable by others is made 0600 and says so', () => {
  using t = tempDir();
  const path = join(t.dir, 'private.key');
  const first = loadOrCreateKey(path);
  chmodSync(path, 0o644);
  const k = loadOrCreateKey(path);
  assert.deepEqual([k.created, k.tightened, k.privateKey], [false, true, first.privateKey]);
  assert.equal(mode(path), 0o600);
  chmodSync(path, 0o640);
  assert.equal(loadOrCreateKey(path).tightened, true);
  assert.equal(loadOrCreateKey(path).tightened, false);
});

test('key file: a corrupt file is refused, naming the path and never the content; it is left in place', () => {
  using t = tempDir();
  const path = join(t.dir, 'private.key');
  const secretish = 'c2VjcmV0LXRoYXQtbXVzdC1ub3QtbGVhaw-NOT-A-KEY';
  for (const content of [secretish, `${randomBytes(31).toString('base64')}\n`, `${randomBytes(33).toString('base64')}\n`, '', `${key('x')}\n${key('y')}\n`]) {
    writeFileSync(path, content, { mode: 0o600 });
    assert.throws(
      () => loadOrCreateKey(path),
      (e: Error) => {
        assert.ok(e.message.includes(path), e.message);
        for (const line of content.split('\n').filter((l) => l.length >= 8)) assert.ok(!e.message.includes(line), `content in: ${e.message}`);
        assert.ok(!e.message.includes(secretish.slice(0, 12)));
        return true;
      },
      JSON.stringify(content.slice(0, 5)),
    );
    assert.equal(readFileSync(path, 'utf8'), content, 'never overwritten: moving it away is the operator\'s call');
  }
});

test('key file: a path that cannot be created is an error naming it', () => {
  using t = tempDir();
  writeFileSync(join(t.dir, 'file'), 'x');
  const path = join(t.dir, 'file', 'private.key');
  assert.throws(() => loadOrCreateKey(path), (e: Error) => e.message.includes(join(t.dir, 'file')));
});

test('key file: agents starting at once all get the one key made, and no temporary file is left', async () => {
  using t = tempDir();
  const path = join(t.dir, 'keys', 'private.key');
  const module = new URL('../../src/adapters/wireguard/keyfile.ts', import.meta.url).href;
  const script = `const { loadOrCreateKey } = await import(${JSON.stringify(module)}); const k = loadOrCreateKey(${JSON.stringify(path)}); console.log(JSON.stringify({ publicKey: k.publicKey, created: k.created }));`;
  const runs = await Promise.all(
    Array.from({ length: 6 }, () => new Promise<{ publicKey: string; created: boolean }>((resolve, reject) => {
      execFile(process.execPath, ['--input-type=module', '-e', script], (err, stdout, stderr) => (err ? reject(new Error(`${err.message}: ${stderr}`)) : resolve(JSON.parse(stdout) as { publicKey: string; created: boolean })));
    })),
  );
  assert.equal(new Set(runs.map((r) => r.publicKey)).size, 1, JSON.stringify(runs));
  assert.equal(runs.filter((r) => r.created).length, 1);
  assert.equal(runs[0].publicKey, loadOrCreateKey(path).publicKey);
  assert.deepEqual(readdirSync(join(t.dir, 'keys')), ['private.key']);
});

test('wireguardGoError: its ERROR line (printed on stdout), without the banner it draws on stderr', () => {
  const banner = ['┌──────┐', '│   Running wireguard-go is not required because this  │', '└──────┘'].join('\n');
  assert.equal(
    wireguardGoError({ code: 1, stdout: 'ERROR: (corvid.wg) 2026/12/06 10:46:00 Failed to create TUN device: device or resource busy\n', stderr: banner }),
    'Failed to create TUN device: device or resource busy',
  );
  assert.equal(wireguardGoError({ code: 1, stdout: '', stderr: `${banner}\nsh: 1: wireguard-go: not found\n` }), 'sh: 1: wireguard-go: not found');
  assert.equal(wireguardGoError({ code: 3, stdout: '', stderr: banner }), 'exit 3');
});
