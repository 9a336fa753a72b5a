// The built image (deploy/image/build.sh, an OCI layout) run from its own root filesystem with chroot: the image's
// entrypoint, user and environment for `corvid --help` and `corvid validate`, then charon and swanctl from the image
// in two network namespaces bringing up an IKE SA and a CHILD_SA between them, with a ping through it.
//
// The layout is read directly (index.json, manifest, the one gzip layer), so umoci is not needed to run this test.
// Every chroot gets its own mount namespace (its /proc, a tmpfs /dev with the few nodes charon opens, a private
// /run); nothing is mounted on the host, and the unpacked root filesystem is removed at the end.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { deployedNodeOptions } from '../support/manifests.ts';
import { randomBytes } from 'node:crypto';
import { closeSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse as parseYaml } from 'yaml';
import { NetnsLab, netnsSkipReason, sweepStaleNamespaces } from '../support/netns.ts';
import { onPath, onProcessExit, stopChild } from '../support/host.ts';
import { controlPlaneSkipReason, createNode, ensureNamespace, installCrds, startControlPlane, type ControlPlane } from '../support/controlplane.ts';
import { applyGateway, applyGatewayStatus } from '../../src/adapters/kube/gateways.ts';
import { buildTwoPools, gatewayFor, makeSecretDir, type PoolLab } from './agent-lab.ts';
import { waitFor } from '../support/wait.ts';
import { ViciClient } from '../../src/agent/vici/index.ts';

const REPO = fileURLToPath(new URL('../../', import.meta.url));
const TAG = parseYaml(readFileSync(join(REPO, 'deploy', 'image', 'image-tag.yaml'), 'utf8')).imageTag as { newName: string; newTag: string };
const LAYOUT = process.env.CORVID_IMAGE_DIR || join(process.env.CORVID_CACHE_DIR || join(homedir(), '.cache', 'corvid'), 'image');

interface ImageConfig {
  config: { User?: string; Env?: string[]; Entrypoint?: string[]; Cmd?: string[] };
  rootfs: { diff_ids: string[] };
}

function skipReason(): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root (chroot, mount and network namespaces): run the tests as root';
  if (!existsSync(join(LAYOUT, 'index.json'))) return `image not built: run deploy/image/build.sh (root, mmdebstrap, umoci) to write ${LAYOUT}`;
  const missing = ['tar', 'unshare', 'chroot', 'mount'].filter((c) => !onPath(c));
  return missing.length > 0 ? `needs ${missing.join(', ')}` : undefined;
}
const SKIP = skipReason();

const blob = (digest: string, layout = LAYOUT): string => join(layout, 'blobs', ...digest.split(':'));
const readJson = <T>(digest: string, layout = LAYOUT): T => JSON.parse(readFileSync(blob(digest, layout), 'utf8')) as T;

/** The manifest of the tag the manifests name, its config, and its layers. */
function image(layout = LAYOUT): { digest: string; config: ImageConfig; layers: Array<{ digest: string; size: number; mediaType: string }> } {
  const index = JSON.parse(readFileSync(join(layout, 'index.json'), 'utf8')) as { manifests: Array<{ digest: string; annotations?: Record<string, string> }> };
  const entry = index.manifests.find((m) => m.annotations?.['org.opencontainers.image.ref.name'] === TAG.newTag);
  assert.ok(entry, `${layout} has no tag ${TAG.newTag}: rebuild with deploy/image/build.sh`);
  const manifest = readJson<{ config: { digest: string }; layers: Array<{ digest: string; size: number; mediaType: string }> }>(entry.digest, layout);
  return { digest: entry.digest, config: readJson<ImageConfig>(manifest.config.digest, layout), layers: manifest.layers };
}

let rootfs = '';
let work = '';
let img: ReturnType<typeof image>;

/** No mount of ours may be left under the root filesystem before it is removed (that would remove host files). */
function mountsUnder(dir: string): string[] {
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((l) => l.split(' ')[4])
    .filter((m) => m !== undefined && (m === dir || m.startsWith(`${dir}/`)));
}

function removeWork(): void {
  if (work === '' || !existsSync(work)) return;
  const left = mountsUnder(work);
  if (left.length > 0) throw new Error(`not removing ${work}: still mounted: ${left.join(', ')}`);
  rmSync(work, { recursive: true, force: true });
}

// In a private mount namespace: the image's root (bound onto itself) with its own /proc, a /dev of its own holding only the nodes charon
// and Node open (bound from the host's), and /run bound to a directory of the test's (charon's pid file and VICI
// socket, reachable from the host). Then chroot, as `user` when given.
const CHROOT_SCRIPT = [
  'set -e',
  'root=$1 run=$2 user=$3 netns=$4; shift 4',
  // The root a mount of its own, as a runtime's pivot_root makes it: `ip -n` (setns, then --make-rslave /) needs that.
  'mount --bind "$root" "$root"',
  'mount -t proc proc "$root/proc"',
  'mount -t tmpfs -o mode=0755,nosuid tmpfs "$root/dev"',
  'for n in null zero random urandom; do touch "$root/dev/$n"; mount --bind "/dev/$n" "$root/dev/$n"; done',
  'if [ -c /dev/net/tun ]; then mkdir "$root/dev/net"; touch "$root/dev/net/tun"; mount --bind /dev/net/tun "$root/dev/net/tun"; fi',
  'if [ -n "$run" ]; then mount --bind "$run" "$root/run"; fi',
  // An agent on the host's network that drives a node's namespace with --netns (ip -n) needs to see it.
  'if [ "$netns" = yes ]; then mkdir -p "$root/run/netns"; mount --rbind /run/netns "$root/run/netns"; fi',
  'if [ -n "$user" ]; then exec chroot --userspec="$user" "$root" "$@"; fi',
  'exec chroot "$root" "$@"',
].join('\n');

/** argv that runs `cmd` from the image: its own mount namespace (and PID namespace when `pid`), then chroot. */
function inImage(cmd: string[], o: { run?: string; user?: string; pid?: boolean; netns?: boolean } = {}): string[] {
  const unshare = ['unshare', '--mount', '--propagation', 'private', ...(o.pid ? ['--pid', '--fork'] : [])];
  return [...unshare, 'sh', '-c', CHROOT_SCRIPT, 'sh', rootfs, o.run ?? '', o.user ?? '', o.netns ? 'yes' : 'no', ...cmd];
}

// ---------------------------------------------------------------- charon and swanctl from the image, in a netns

// The shipped charon config, with kernel-libipsec (ESP in userspace, as every netns test here runs it) ahead of
// kernel-netlink; its VICI socket /run/corvid/charon.vici is <run>/corvid/charon.vici on the host.
const CHARON_CONF = readFileSync(join(REPO, 'deploy/charon/strongswan.conf'), 'utf8').replace(/^(\s*load = .*)kernel-netlink/m, '$1kernel-libipsec kernel-netlink');

/** charon from the image in `ns`, its /run being `run`; resolves when it answers on VICI. */
async function startImageCharon(lab: NetnsLab, ns: string, run: string): Promise<void> {
  mkdirSync(join(run, 'corvid'), { recursive: true });
  writeFileSync(join(run, 'strongswan.conf'), CHARON_CONF);
  const out = openSync(join(run, 'charon.out'), 'a');
  try {
    lab.spawn(ns, inImage(['/usr/lib/ipsec/charon'], { run }), { env: imageEnv({ STRONGSWAN_CONF: '/run/strongswan.conf' }), stdio: ['ignore', out, out] });
  } finally {
    closeSync(out);
  }
  await waitFor(`charon from the image answering VICI in ${ns}\n${charonLog(run)}`, async () => {
    const c = await ViciClient.connect(join(run, 'corvid', 'charon.vici'), { timeoutMs: 1000 });
    try {
      return (await c.version()).daemon === 'charon';
    } finally {
      await c.close();
    }
  }, 20_000, 100);
}

function charonLog(run: string, lines = 25): string {
  try {
    return readFileSync(join(run, 'charon.out'), 'utf8').split('\n').slice(-lines).join('\n');
  } catch {
    return '';
  }
}

/** swanctl from the image, in `ns`, talking to the charon whose /run is `run`. */
function imageSwanctl(lab: NetnsLab, ns: string, run: string, ...args: string[]) {
  const env = Object.entries(imageEnv({ STRONGSWAN_CONF: '/run/strongswan.conf' })).map(([k, v]) => `${k}=${v}`);
  return lab.exec(ns, ['env', '-i', ...env, ...inImage(['swanctl', ...args, '--uri', 'unix:///run/corvid/charon.vici'], { run })], { allowFail: true });
}

/** The image's environment (config.Env), nothing of the host's. */
function imageEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' };
  for (const kv of img.config.config.Env ?? []) env[kv.slice(0, kv.indexOf('='))] = kv.slice(kv.indexOf('=') + 1);
  return { ...env, ...extra };
}

/** Run the image as a container runtime would: entrypoint + args, as the image's user, tini as PID 1. */
function runImage(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const { Entrypoint = [], User } = img.config.config;
  const [cmd, ...argv] = inImage([...Entrypoint, ...args], { user: User, pid: true });
  const r = spawnSync(cmd, argv, {
    encoding: 'utf8',
    env: imageEnv(),
    timeout: 60_000,
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('the image', { skip: SKIP }, () => {
  before(() => {
    onProcessExit(() => {
      try {
        removeWork();
      } catch {
        // leave it: a mount is still there
      }
    });
    img = image();
    work = mkdtempSync(join(tmpdir(), 'corvid-image-test-'));
    rootfs = join(work, 'rootfs');
    mkdirSync(rootfs);
    for (const layer of img.layers) {
      assert.match(layer.mediaType, /tar\+gzip$/, layer.mediaType);
      const r = spawnSync('tar', ['-xzf', blob(layer.digest), '-C', rootfs, '--numeric-owner'], { encoding: 'utf8' });
      assert.equal(r.status, 0, `unpacking ${layer.digest}: ${r.stderr}`);
    }
  });

  after(() => removeWork());

  test('its size and digest', (t) => {
    const compressed = img.layers.reduce((n, l) => n + l.size, 0);
    const du = spawnSync('du', ['-sb', rootfs], { encoding: 'utf8' });
    const unpacked = Number(du.stdout.split('\t')[0]);
    t.diagnostic(`${TAG.newName}:${TAG.newTag} ${img.digest}: ${(compressed / 2 ** 20).toFixed(0)} MiB compressed, ${(unpacked / 2 ** 20).toFixed(0)} MiB unpacked`);
    assert.equal(img.layers.length, 1);
    assert.equal(statSync(blob(img.layers[0].digest)).size, img.layers[0].size);
    assert.deepEqual(img.config.config.Entrypoint, ['tini', '--', 'corvid']);
    assert.notEqual(img.config.config.User?.split(':')[0], '0', 'not root by default');
    // What the manifests run: charon (the sidecar's command), swanctl (its probes), the agent's tools.
    for (const f of ['usr/lib/ipsec/charon', 'usr/sbin/swanctl', 'usr/bin/ip', 'usr/sbin/nft', 'usr/bin/wg', 'usr/bin/wireguard-go', 'usr/bin/tini', 'usr/bin/git', 'usr/local/bin/node']) {
      assert.ok(existsSync(join(rootfs, f)), `/${f} in the image`);
    }
    assert.equal(readFileSync(join(rootfs, 'etc/corvid/charon/strongswan.conf'), 'utf8'), readFileSync(join(REPO, 'deploy/charon/strongswan.conf'), 'utf8'));
  });

  test('corvid --help (entrypoint, user and environment of the image)', () => {
    const r = runImage(['--help']);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /validate/);
    assert.match(r.stdout, /agent/);
  });

  test('corvid validate on the example topology', () => {
    copyFileSync(join(REPO, 'topology', 'example.yaml'), join(rootfs, 'tmp', 'example.yaml'));
    const r = runImage(['validate', '/tmp/example.yaml']);
    assert.equal(r.status, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /valid \(\d+ pools\)/);
    // And a broken one fails.
    writeFileSync(join(rootfs, 'tmp', 'broken.yaml'), 'apiVersion: corvid.dev/v1alpha1\nkind: Topology\nspec: {pools: 3}\n');
    assert.notEqual(runImage(['validate', '/tmp/broken.yaml']).status, 0);
  });

  describe('charon and swanctl from the image, two gateways in network namespaces', { skip: netnsSkipReason() }, () => {
    const lab = new NetnsLab();
    const gws = [
      { name: 'a', wan: '192.0.2.1', pod: '10.101.0.5', ns: '', run: '' },
      { name: 'b', wan: '192.0.2.2', pod: '10.102.0.5', ns: '', run: '' },
    ];
    const psk = randomBytes(32).toString('base64');

    const swanctlConf = (me: (typeof gws)[0], peer: (typeof gws)[0]): string => `connections {
  smoke {
    version = 2
    local_addrs = ${me.wan}
    remote_addrs = ${peer.wan}
    proposals = aes256-sha256-modp2048
    local { auth = psk
      id = ${me.wan} }
    remote { auth = psk
      id = ${peer.wan} }
    children {
      smoke {
        local_ts = ${me.pod}/32
        remote_ts = ${peer.pod}/32
        esp_proposals = aes256-sha256
      }
    }
  }
}
secrets {
  ike-smoke {
    id-a = ${me.wan}
    id-b = ${peer.wan}
    secret = "${psk}"
  }
}
`;

    const swanctl = (gw: (typeof gws)[0], ...args: string[]) => imageSwanctl(lab, gw.ns, gw.run, ...args);

    before(async () => {
      sweepStaleNamespaces();
      for (const gw of gws) {
        gw.ns = await lab.addNs(`img${gw.name}`);
        gw.run = join(work, `run-${gw.name}`);
      }
      const [a, b] = gws;
      await lab.veth(a.ns, 'wan0', b.ns, 'wan0');
      for (const gw of gws) {
        await lab.addr(gw.ns, 'wan0', `${gw.wan}/24`);
        // A pod address on lo: kernel-libipsec wants a local address inside its traffic selector.
        await lab.addr(gw.ns, 'lo', `${gw.pod}/32`);
        await startImageCharon(lab, gw.ns, gw.run);
        writeFileSync(join(gw.run, 'swanctl.conf'), swanctlConf(gw, gw === a ? b : a));
      }
    }, { timeout: 60_000 });

    after(async () => {
      await lab.cleanup(5000);
    });

    test('swanctl loads a connection in each, a initiates: IKE SA and CHILD_SA up, a ping goes through', { timeout: 60_000 }, async () => {
      const [a, b] = gws;
      for (const gw of gws) {
        const r = await swanctl(gw, '--load-all', '--file', '/run/swanctl.conf');
        assert.equal(r.code, 0, `swanctl --load-all in ${gw.name}: ${r.stdout}${r.stderr}`);
      }
      const init = await swanctl(a, '--initiate', '--child', 'smoke', '--timeout', '20');
      const logs = () => gws.map((g) => `--- charon ${g.name}\n${charonLog(g.run)}`).join('\n');
      assert.equal(init.code, 0, `swanctl --initiate: ${init.stdout}${init.stderr}\n${logs()}`);
      for (const gw of gws) {
        const sas = await swanctl(gw, '--list-sas');
        assert.match(sas.stdout, /smoke: #\d+, ESTABLISHED, IKEv2/, `${gw.name}: ${sas.stdout}`);
        assert.match(sas.stdout, /smoke: #\d+, reqid \d+, INSTALLED, TUNNEL/, `${gw.name}: ${sas.stdout}`);
      }
      const ping = await lab.exec(a.ns, ['ping', '-c', '3', '-i', '0.2', '-W', '2', '-I', a.pod, b.pod], { allowFail: true });
      assert.equal(ping.code, 0, `ping ${b.pod} from ${a.pod} through the tunnel: ${ping.stdout}${ping.stderr}\n${logs()}`);
      const counters = await swanctl(b, '--list-sas');
      assert.match(counters.stdout, /in +\w+, +[1-9]\d* bytes/, `ESP bytes counted on b: ${counters.stdout}`);
    });
  });

  // The DaemonSet's pair as the image runs it: charon and `corvid agent` from the image for each gateway of two
  // pools. The agents read the Gateways from a real kube-apiserver on the host's loopback, so they stay on the host's
  // network and drive their node's namespace with --netns (ip -n, from the image), like agent-datapath.test.ts.
  describe('corvid agent and charon from the image: the agents build the tunnel from the Gateways', { skip: netnsSkipReason() ?? controlPlaneSkipReason() }, () => {
    const lab = new NetnsLab();
    let cp: ControlPlane | undefined;
    let a: PoolLab;
    let b: PoolLab;
    const runs = new Map<string, string>();
    const agents = new Map<string, { child: ChildProcess; log: string[] }>();
    const LEASE_NS = 'corvid-system';

    const agentLogs = (): string =>
      [...agents].map(([node, p]) => `--- agent ${node} (exit ${p.child.exitCode ?? p.child.signalCode ?? 'running'})\n${p.log.slice(-20).join('\n')}`).join('\n') +
      [...runs].map(([node, run]) => `\n--- charon ${node}\n${charonLog(run, 15)}`).join('');

    function startAgent(p: PoolLab): void {
      const run = runs.get(p.gwNode)!;
      // What the pod mounts: the PSK Secret, a state directory, the VICI socket charon shares (all under /run here).
      mkdirSync(join(run, 'secrets', 'corvid-psk'), { recursive: true });
      copyFileSync(join(secrets!.dir, 'corvid-psk', 'psk'), join(run, 'secrets', 'corvid-psk', 'psk'));
      copyFileSync(cp!.kubeconfigPath, join(run, 'kubeconfig'));
      const { Entrypoint = [] } = img.config.config;
      const args = [
        'agent', '--node-name', p.gwNode, '--netns', p.gwNs, '--kubeconfig', '/run/kubeconfig',
        '--vici-socket', '/run/corvid/charon.vici', '--secret-dir', '/run/secrets', '--state-dir', '/run/state',
        '--wireguard', 'off', '--packet-filter', 'off', '--rp-filter', 'keep', '--liveness-port', '0',
        '--repair-interval', '1s', '--lease-namespace', LEASE_NS, '--lease-renew', '500ms', '--lease-duration', '3s', '--metrics-addr', '',
      ];
      // The agent container runs as root (NET_ADMIN); tini is not PID 1 here, so it registers as a subreaper.
      const [cmd, ...argv] = inImage([...Entrypoint, ...args], { run, netns: true });
      // With the V8 flags of the DaemonSet (--jitless among them): the agent must work as deployed.
      const child = spawn(cmd, argv, { env: imageEnv({ TINI_SUBREAPER: '1', NODE_OPTIONS: deployedNodeOptions('agent-daemonset.yaml', 'agent') }), stdio: ['ignore', 'ignore', 'pipe'] });
      lab.track(child);
      const log: string[] = [];
      child.stderr!.setEncoding('utf8').on('data', (c: string) => log.push(...c.split('\n').filter((l) => l !== '')));
      agents.set(p.gwNode, { child, log });
    }

    let secrets: { dir: string; remove(): Promise<void> } | undefined;

    before(async () => {
      sweepStaleNamespaces();
      cp = await startControlPlane();
      [a, b] = await buildTwoPools(lab);
      secrets = await makeSecretDir();
      for (const p of [a, b]) {
        runs.set(p.gwNode, join(work, `run-agent-${p.pool}`));
        await startImageCharon(lab, p.gwNs, runs.get(p.gwNode)!);
      }
      const kc = cp.kubeConfig;
      await installCrds(kc);
      await ensureNamespace(kc, LEASE_NS);
      for (const p of [a, b]) {
        await createNode(kc, { name: p.gwNode, labels: { 'corvid.dev/pool': p.pool }, internalIP: p.gwLan, podCIDRs: [p.gwSubnet] });
        await createNode(kc, { name: p.memberNode, labels: { 'corvid.dev/pool': p.pool }, internalIP: p.memberLan, podCIDRs: [p.memberSubnet] });
      }
      for (const p of [a, b]) startAgent(p);
      for (const p of [a, b]) {
        const gw = gatewayFor(p);
        await applyGateway(kc, gw, { fieldManager: 'corvid-test' });
        await applyGatewayStatus(kc, gw.metadata.name, gw.status!, { fieldManager: 'corvid-test-status' });
      }
    }, { timeout: 180_000 });

    after(async () => {
      // SIGTERM first: the agents remove what they made, while charon still answers.
      await Promise.all([...agents.values()].map((p) => stopChild(p.child, 8000)));
      await lab.cleanup(5000);
      await cp?.stop();
      await secrets?.remove();
    });

    test('IKE SA and CHILD_SA up between the gateways, gateway pods reach each other, the agents exit clean', { timeout: 90_000 }, async () => {
      try {
        await waitFor('ping a-gw pod -> b-gw pod through the tunnel', async () => {
          const r = await lab.exec(a.gwNs, ['ping', '-c', '1', '-W', '1', '-I', a.gwPod, b.gwPod], { allowFail: true });
          return r.code === 0;
        }, 45_000, 250);
        for (const p of [a, b]) {
          const sas = await imageSwanctl(lab, p.gwNs, runs.get(p.gwNode)!, '--list-sas');
          const peer = p === a ? b : a;
          // The IKE connection of the peer's gateway, carrying the tunnel's one CHILD_SA.
          assert.match(sas.stdout, new RegExp(`corvid-${peer.pool}@${peer.gwNode}: #\\d+, ESTABLISHED, IKEv2`), `${p.gwNode}: ${sas.stdout}`);
          assert.match(sas.stdout, new RegExp(`corvid-${peer.pool}: #\\d+, reqid \\d+, INSTALLED, TUNNEL`), `${p.gwNode}: ${sas.stdout}`);
        }
        // SIGTERM: each agent unloads its connection and exits 0.
        for (const p of [a, b]) {
          const { child } = agents.get(p.gwNode)!;
          await stopChild(child, 8000);
          assert.equal(child.exitCode, 0, `agent ${p.gwNode} exit`);
          const conns = await imageSwanctl(lab, p.gwNs, runs.get(p.gwNode)!, '--list-conns');
          assert.doesNotMatch(conns.stdout, /corvid-/, `${p.gwNode} after the agent left: ${conns.stdout}`);
        }
      } catch (e) {
        throw new Error(`${(e as Error).message}\n${agentLogs()}`);
      }
    });
  });
});

// ---------------------------------------------------------------- reproducible: the same inputs, the same digest

function rebuildSkipReason(): string | undefined {
  if (SKIP !== undefined) return SKIP;
  const missing = ['mmdebstrap', 'umoci', 'jq'].filter((c) => !onPath(c));
  return missing.length > 0 ? `needs ${missing.join(', ')} to build the image again (apt-get install mmdebstrap umoci jq)` : undefined;
}

/** deploy/image/build.sh into `out` (the cached image when `out` is LAYOUT and its inputs are unchanged). */
function buildImage(out: string, rebuild: boolean): void {
  const r = spawnSync('bash', [join(REPO, 'deploy/image/build.sh'), out], {
    encoding: 'utf8',
    env: { ...process.env, CORVID_IMAGE_REBUILD: rebuild ? '1' : '' },
    timeout: 240_000,
  });
  assert.equal(r.status, 0, `deploy/image/build.sh ${out}: exit ${r.status}\n${r.stdout.slice(-2000)}\n${r.stderr.slice(-4000)}`);
}

const buildRecord = (layout: string): { inputs: string; debian_packages: string[] } =>
  JSON.parse(readFileSync(join(layout, 'corvid-build.json'), 'utf8')) as { inputs: string; debian_packages: string[] };

describe('the image build', { skip: rebuildSkipReason() }, () => {
  test('is reproducible: a second build of the same inputs gives the same digest', { timeout: 600_000 }, (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'corvid-image-again-'));
    try {
      // The cached image, brought up to date with the working tree if it is not (as .ci/run does before npm test).
      buildImage(LAYOUT, false);
      const again = join(dir, 'image');
      buildImage(again, true);
      const [a, b] = [buildRecord(LAYOUT), buildRecord(again)];
      assert.equal(b.inputs, a.inputs, 'the same inputs (sources, lockfile, Node binary, packages list, epoch)');
      const [first, second] = [image(LAYOUT), image(again)];
      if (first.digest !== second.digest) {
        const archive = a.debian_packages.filter((p) => !b.debian_packages.includes(p));
        // The one input the build does not pin: deb.debian.org published new package versions between the builds.
        if (archive.length > 0 || a.debian_packages.length !== b.debian_packages.length) {
          t.skip(`the Debian archive changed between the two builds (${archive.slice(0, 5).join(', ')}): not comparable`);
          return;
        }
        const which = first.config.rootfs.diff_ids[0] === second.config.rootfs.diff_ids[0] ? 'the layers are equal, the configs differ' : 'the layers differ';
        assert.fail(`two builds of the same inputs and Debian packages: ${first.digest} and ${second.digest} (${which})`);
      }
      t.diagnostic(`built twice: ${second.digest}, ${b.debian_packages.length} Debian packages`);
      assert.ok(b.debian_packages.some((p) => p.startsWith('charon ') || p.startsWith('strongswan-charon ')), 'the package list names charon');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
