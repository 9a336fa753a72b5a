// The agent container's WireGuard side as deploy/base/agent-daemonset.yaml runs it, on a kernel without WireGuard
// (wireguard-go): uid 0 with exactly the capabilities the manifest adds (bounding set), no_new_privs, a read-only
// root, and only the manifest's writable mounts: the key directory (a hostPath) and /run/wireguard (an emptyDir),
// with /dev/net/tun from the node. The agent's key file (loadOrCreateKey) and the commands its adapter runs for
// wireguard-go (wireguard-go, wg syncconf, ip link, wg show dump) must build corvid.wg there and listen on UDP 51820;
// and each of the manifest's parts must be needed: without NET_ADMIN, /dev/net/tun or the socket directory,
// wireguard-go fails.
// Every run is in fresh mount, network and PID namespaces: the daemon dies with them, as it does with the container.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { parseAllDocuments } from 'yaml';

const REPO_ROOT = new URL('../../', import.meta.url).pathname;
const daemonset = parseAllDocuments(readFileSync(join(REPO_ROOT, 'deploy', 'base', 'agent-daemonset.yaml'), 'utf8'))[0].toJS();
const pod = daemonset.spec.template.spec;
const agentSpec = pod.containers.find((c: { name: string }) => c.name === 'agent');
const CAPS: string[] = agentSpec.securityContext.capabilities.add;
const KEY_FILE: string = agentSpec.args.find((a: string) => a.startsWith('--wireguard-key-file=')).slice('--wireguard-key-file='.length);

function which(cmd: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
}

function skipReason(): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root (mount, network and PID namespaces, capability sets): run the tests as root';
  const missing = ['unshare', 'setpriv', 'ip', 'wg', 'wireguard-go'].filter((c) => !which(c));
  if (missing.length > 0) return `needs ${missing.join(', ')} (apt-get install wireguard-tools wireguard-go)`;
  if (!existsSync('/dev/net/tun')) return 'needs /dev/net/tun';
  return undefined;
}
const SKIP = skipReason();

interface Run {
  status: number | null;
  out: string;
  /** What the script inside printed as its last line, parsed. */
  result?: any;
}

/**
 * Inside the container: the key file (the agent's loadOrCreateKey), then the commands the agent's adapter runs for
 * wireguard-go, with the configuration text it writes (configText) and its reading of `wg show dump` (parseDump).
 * The configuration reaches wg through a pipe, never a file or the command line.
 */
const SCRIPT = `
const { configText, parseDump, wireguardPsk } = await import(process.env.WG_ADAPTER);
const { loadOrCreateKey, publicKeyOf } = await import(process.env.WG_KEYFILE);
const { spawnSync } = await import('node:child_process');
const { randomBytes } = await import('node:crypto');
const { readFileSync, statSync } = await import('node:fs');
const run = (cmd, args, input) => {
  const r = spawnSync('sh', ['-c', input === undefined ? 'exec "$@"' : 'cat | exec "$@"', 'sh', cmd, ...args], { input, encoding: 'utf8' });
  return { code: r.status, out: (r.stdout + r.stderr).split('\\n').filter((l) => l !== '' && !/^[\u2500-\u257f]/.test(l)).join('\\n') };
};
const out = {};
try {
  const key = loadOrCreateKey(process.env.KEY_FILE);
  out.keyCreated = key.created;
  out.keyMode = (statSync(process.env.KEY_FILE).mode & 0o777).toString(8);
  out.create = run('wireguard-go', ['corvid.wg']);
  if (out.create.code === 0) {
    const config = {
      device: 'corvid.wg', listenPort: 51820, privateKey: key.privateKey,
      peers: [{ name: 'corvid-b', publicKey: publicKeyOf(randomBytes(32)), presharedKey: wireguardPsk(Buffer.from('a pre-shared key of the link')),
        endpoint: '192.0.2.1:51820', allowedIPs: ['10.244.9.0/24'], persistentKeepalive: 25 }],
    };
    out.syncconf = run('wg', ['syncconf', 'corvid.wg', '/dev/stdin'], configText(config));
    out.mtu = run('ip', ['link', 'set', 'dev', 'corvid.wg', 'mtu', '1420', 'up']);
    const dump = run('wg', ['show', 'corvid.wg', 'dump']);
    out.dumpCode = dump.code;
    const actual = parseDump(dump.out);
    // The interface line: private key, public key, port, fwmark. WireGuard clamps the private key it is given, so
    // the public key is what identifies it.
    out.samePublicKey = dump.out.split('\\n')[0].split('\\t')[1] === key.publicKey;
    out.listenPort = actual.listenPort;
    out.peers = actual.peers.map((p) => ({ ...p, presharedKey: p.presharedKey === config.peers[0].presharedKey, publicKey: p.publicKey === config.peers[0].publicKey }));
    const port = (51820).toString(16).toUpperCase().padStart(4, '0');
    out.udp = ['/proc/net/udp', '/proc/net/udp6'].some((f) => readFileSync(f, 'utf8').split('\\n').some((l) => l.trim().split(/\\s+/)[1]?.endsWith(':' + port)));
    out.del = run('ip', ['link', 'del', 'corvid.wg']);
  }
} catch (e) {
  out.thrown = e.message;
}
console.log(JSON.stringify(out));
`;

/**
 * Run SCRIPT the way the agent container runs: `caps` as its whole capability set; `mounts` says which of the
 * manifest's WireGuard mounts it has (all by default).
 */
function runInContainer(caps: string[], mounts: { tun?: boolean; sockets?: boolean } = {}): Run {
  const dir = mkdtempSync(join(tmpdir(), 'corvid-agent-wireguard-'));
  try {
    mkdirSync(join(dir, 'key'));
    mkdirSync(join(dir, 'sockets'));
    const bounding = ['-all', ...caps.map((c) => `+${c.toLowerCase()}`)].join(',');
    // The image's filesystem, read-only, as the container sees it: a blank /run (the image's; /var/run is /run) with
    // the emptyDir at /run/wireguard, the key directory's hostPath, and /dev/net/tun (or not).
    const script = [
      'mount -t tmpfs -o size=1m tmpfs /run',
      ...(mounts.sockets === false ? [] : ['mkdir /run/wireguard', 'mount --bind "$1/sockets" /run/wireguard']),
      'mount -o remount,ro /run',
      'mount -t tmpfs -o size=1m tmpfs "$(dirname "$2")"',
      'mkdir "$2"',
      'mount --bind "$1/key" "$2"',
      'mount -o remount,ro "$(dirname "$2")"',
      ...(mounts.tun === false ? ['mount -t tmpfs -o size=1m,ro tmpfs /dev/net'] : []),
      'mount -o remount,bind,ro /',
      'ip link set lo up',
      `exec setpriv --no-new-privs --inh-caps -all --bounding-set ${bounding} "$3" --input-type=module -e "$4"`,
    ].join(' && ');
    const r = spawnSync(
      'unshare',
      ['--mount', '--propagation', 'private', '--net', '--pid', '--fork', '--mount-proc', 'sh', '-c', script, 'sh', dir, dirname(KEY_FILE), process.execPath, SCRIPT],
      {
        encoding: 'utf8',
        timeout: 60_000,
        env: {
          PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin',
          KEY_FILE,
          WG_ADAPTER: new URL('../../src/adapters/wireguard/wireguard.ts', import.meta.url).href,
          WG_KEYFILE: new URL('../../src/adapters/wireguard/keyfile.ts', import.meta.url).href,
        },
      },
    );
    const out = `${r.stdout}${r.stderr}`;
    const last = r.stdout.trim().split('\n').pop() ?? '';
    const run: Run = { status: r.status, out };
    try {
      run.result = JSON.parse(last);
    } catch {
      // left undefined: the assertion shows `out`
    }
    // The key stays on the "node" (the hostPath), as the manifest promises; only its owner may read it.
    if (existsSync(join(dir, 'key', 'private.key'))) assert.equal(statSync(join(dir, 'key', 'private.key')).mode & 0o077, 0);
    return run;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe('agent container: WireGuard with wireguard-go', { skip: SKIP }, () => {
  test(`builds corvid.wg with only ${CAPS.join(' + ')}, a read-only root and the manifest's mounts`, () => {
    const r = runInContainer(CAPS);
    assert.equal(r.status, 0, r.out);
    const res = r.result;
    assert.ok(res, r.out);
    assert.equal(res.thrown, undefined, r.out);
    assert.equal(res.keyCreated, true);
    assert.equal(res.keyMode, '600');
    assert.deepEqual(res.create, { code: 0, out: '' }, 'wireguard-go starts (its banner aside, it says nothing)');
    assert.deepEqual(res.syncconf, { code: 0, out: '' });
    assert.deepEqual(res.mtu, { code: 0, out: '' });
    assert.equal(res.dumpCode, 0);
    assert.equal(res.samePublicKey, true, 'the interface holds the key from the key file');
    assert.equal(res.listenPort, 51820);
    assert.equal(res.peers.length, 1);
    assert.equal(res.peers[0].publicKey, true);
    assert.equal(res.peers[0].presharedKey, true);
    assert.deepEqual(res.peers[0].allowedIPs, ['10.244.9.0/24']);
    assert.equal(res.peers[0].endpoint, '192.0.2.1:51820');
    assert.equal(res.peers[0].persistentKeepalive, 25);
    assert.equal(res.udp, true, 'wireguard-go listens on UDP 51820 (no NET_BIND_SERVICE needed)');
    assert.deepEqual(res.del, { code: 0, out: '' });
  });

  test('needs NET_ADMIN: without it wireguard-go cannot create the TUN device', () => {
    const r = runInContainer(CAPS.filter((c) => c !== 'NET_ADMIN'));
    assert.ok(r.result, r.out);
    assert.notEqual(r.result.create.code, 0);
    assert.match(r.result.create.out, /Failed to create TUN device: operation not permitted/);
  });

  test('needs /dev/net/tun', () => {
    const r = runInContainer(CAPS, { tun: false });
    assert.ok(r.result, r.out);
    assert.notEqual(r.result.create.code, 0);
    assert.match(r.result.create.out, /Failed to create TUN device: .*\/dev\/net\/tun does not exist/);
  });

  test('needs a writable /run/wireguard: wireguard-go keeps its control socket there', () => {
    const r = runInContainer(CAPS, { sockets: false });
    assert.ok(r.result, r.out);
    assert.notEqual(r.result.create.code, 0);
    assert.match(r.result.create.out, /UAPI listen error: .*read-only file system/);
  });
});
