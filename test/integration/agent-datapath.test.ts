// THE datapath test: real packets between two pools of network namespaces, through tunnels that four `corvid agent`
// processes build from Gateways in a real kube-apiserver, with one real charon (kernel-libipsec) per gateway.
//
// Pool a: a-gw (gateway) + a-n1 (ordinary node); pool b: b-gw + b-n1 (see agent-lab.ts for the addresses).
// The agents run on the host (the API server listens on the host's loopback) and drive their node's namespace with
// `--netns` (ip -n) and their node's charon through its VICI socket.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { NetnsLab, netnsSkipReason, stopChild, sweepStaleNamespaces } from '../support/netns.ts';
import { charonSkipReason, startCharon, type CharonInstance } from '../support/charon.ts';
import { createNode, installCrds, useControlPlane, ensureNamespace } from '../support/controlplane.ts';
import { ViciSession } from '../../src/agent/vici/index.ts';
import { Iproute } from '../../src/adapters/iproute/iproute.ts';
import { applyGateway, applyGatewayStatus, deleteGateway } from '../../src/adapters/kube/gateways.ts';
import { kubeRequest, statusCode } from '../../src/adapters/kube/client.ts';
import type { LeaseJson } from '../../src/adapters/kube/leases.ts';
import { DATAPATH_DOWN_ANNOTATION, TUNNEL_HEALTH_ANNOTATION } from '../../src/gateway/keys.ts';
import type { Gateway } from '../../src/gateway/types.ts';
import { buildTwoPools, gatewayFor, makeSecretDir, waitFor, type PoolLab } from './agent-lab.ts';

const REPO = fileURLToPath(new URL('../../', import.meta.url));
const cp = useControlPlane();
const skip = netnsSkipReason() ?? charonSkipReason() ?? cp.skip;
const TABLE = 9027;
const REPAIR_MS = 1000;
const LEASE_NS = 'corvid-system';

const lab = new NetnsLab();
let a: PoolLab;
let b: PoolLab;
const charons = new Map<string, CharonInstance>();
const sessions: ViciSession[] = [];
let secrets: { dir: string; remove(): Promise<void> } | undefined;

interface AgentProc {
  node: string;
  ns: string;
  child: ChildProcess;
  log: string[];
  port?: number;
}
const agents = new Map<string, AgentProc>();

function vici(node: string): ViciSession {
  const s = new ViciSession(charons.get(node)!.socketPath, { reconnectTimeoutMs: 5000 });
  sessions.push(s);
  return s;
}

function startAgent(node: string, ns: string): AgentProc {
  const socket = charons.get(node)?.socketPath ?? join(tmpdir(), `corvid-no-charon-${process.pid}.vici`);
  const args = [
    join(REPO, 'bin/corvid.js'), 'agent',
    '--node-name', node,
    '--netns', ns,
    '--kubeconfig', cp.get().kubeconfigPath,
    '--vici-socket', socket,
    '--secret-dir', secrets!.dir,
    '--state-dir', join(secrets!.dir, `state-${node}`),
    '--wireguard', 'off',
    '--route-table', String(TABLE),
    '--repair-interval', `${REPAIR_MS}ms`,
    '--lease-namespace', LEASE_NS,
    '--lease-renew', '500ms',
    '--lease-duration', '3s',
    '--metrics-addr', '127.0.0.1:0',
  ];
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, NODE_NAME: '' } });
  lab.track(child);
  const proc: AgentProc = { node, ns, child, log: [] };
  let buf = '';
  child.stderr!.setEncoding('utf8').on('data', (c: string) => {
    buf += c;
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      proc.log.push(line);
      try {
        const j = JSON.parse(line) as { msg?: string; port?: number };
        if (j.msg?.startsWith('serving') && typeof j.port === 'number') proc.port = j.port;
      } catch {
        // not JSON: kept as is
      }
    }
  });
  agents.set(node, proc);
  return proc;
}

function logTail(lines = 25): string {
  return [...agents.values()].map((p) => `--- ${p.node} (exit ${p.child.exitCode ?? p.child.signalCode ?? 'running'})\n${p.log.slice(-lines).join('\n')}`).join('\n');
}

async function ping(ns: string, from: string, to: string, count = 1): Promise<boolean> {
  const r = await lab.exec(ns, ['ping', '-c', String(count), '-i', '0.2', '-W', '1', '-I', from, to], { allowFail: true });
  return r.code === 0;
}

async function applyPool(gw: Gateway): Promise<void> {
  const kc = cp.get().kubeConfig;
  await applyGateway(kc, gw, { fieldManager: 'corvid-test' });
  await applyGatewayStatus(kc, gw.metadata.name, gw.status!, { fieldManager: 'corvid-test-status' });
}

async function ourState(node: string, ns: string) {
  const routes = await new Iproute({ table: TABLE, netns: ns }).read();
  const s = charons.has(node) ? vici(node) : undefined;
  return {
    conns: s ? (await s.getConns()).filter((c) => c.startsWith('corvid-')) : [],
    keys: s ? (await s.getShared()).filter((c) => c.startsWith('corvid-')) : [],
    sas: s ? (await s.listSas()).filter((c) => c.name.startsWith('corvid-')).length : 0,
    routes: routes.routes.length,
    rules: routes.rules.length,
  };
}

async function metricsOf(node: string): Promise<string> {
  const port = agents.get(node)?.port;
  assert.ok(port, `agent ${node} reported no metrics port`);
  const res = await fetch(`http://127.0.0.1:${port}/metrics`);
  return res.text();
}

function metric(text: string, name: string, labels: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${name}{${labels}}`));
  return line === undefined ? undefined : Number(line.split(' ').pop());
}

async function lease(node: string): Promise<LeaseJson | undefined> {
  try {
    return await kubeRequest<LeaseJson>(cp.get().kubeConfig, { method: 'GET', path: `/apis/coordination.k8s.io/v1/namespaces/${LEASE_NS}/leases/${node}` });
  } catch (e) {
    if (statusCode(e) === 404) return undefined;
    throw e;
  }
}

// Root-level hooks start at registration, so the control plane's before hook may still be running: a suite's hooks
// run only after it.
describe('agent datapath', { skip }, () => {
  before(async () => {
    if (skip) return;
    sweepStaleNamespaces();
    [a, b] = await buildTwoPools(lab);
    charons.set(a.gwNode, await startCharon({ netns: a.gwNs }));
    charons.set(b.gwNode, await startCharon({ netns: b.gwNs }));
    secrets = await makeSecretDir();

    const kc = cp.get().kubeConfig;
    await installCrds(kc);
    await ensureNamespace(kc, LEASE_NS);
    for (const p of [a, b]) {
      await createNode(kc, { name: p.gwNode, labels: { 'corvid.dev/pool': p.pool }, internalIP: p.gwLan, podCIDRs: [p.gwSubnet] });
      await createNode(kc, { name: p.memberNode, labels: { 'corvid.dev/pool': p.pool }, internalIP: p.memberLan, podCIDRs: [p.memberSubnet] });
    }
    for (const p of [a, b]) {
      startAgent(p.gwNode, p.gwNs);
      startAgent(p.memberNode, p.memberNs);
    }
    for (const p of [a, b]) await applyPool(gatewayFor(p));
  }, { timeout: 120_000 });

  after(async () => {
    await Promise.all([...agents.values()].map((p) => stopChild(p.child, 8000)));
    if (process.env.CORVID_TEST_LOGS) console.log(logTail(200));
    await Promise.all(sessions.map((s) => s.close().catch(() => {})));
    for (const c of charons.values()) await c.stop();
    await lab.cleanup();
    await secrets?.remove();
  });

  test('pods in pool a reach pods in pool b through an encrypted tunnel built by the agents', { skip, timeout: 90_000 }, async () => {
    const t0 = Date.now();
    try {
      try {
        await waitFor('ping a-n1 pod -> b-n1 pod', () => ping(a.memberNs, a.memberPod, b.memberPod), 30_000, 250);
      } catch (e) {
        throw new Error(`${(e as Error).message}\n${logTail()}`);
      }
      assert.ok(await ping(b.memberNs, b.memberPod, a.memberPod), 'reverse direction');
      assert.ok(await ping(a.gwNs, a.gwPod, b.memberPod), 'gateway pod to remote member pod');

      // The packets crossed the underlay as ESP, and no ICMP between pod addresses appeared there in the clear.
      // (IPv4 only: the fresh veths' own IPv6 router solicitations are ICMPv6 and have nothing to do with pods.)
      const dump = lab.spawn(b.gwNs, ['timeout', '6', 'tcpdump', '-n', '-l', '-i', 'wan0', '-c', '8', 'ip']);
      let out = '';
      let listening = false;
      dump.stdout!.setEncoding('utf8').on('data', (c: string) => (out += c));
      dump.stderr!.setEncoding('utf8').on('data', (c: string) => {
        if (c.includes('listening on')) listening = true;
      });
      await waitFor('tcpdump listening', () => listening, 5000, 50);
      assert.ok(await ping(a.memberNs, a.memberPod, b.memberPod, 4));
      await new Promise<void>((resolve) => (dump.exitCode !== null ? resolve() : dump.once('exit', () => resolve())));
      assert.match(out, /ESP\(spi=0x[0-9a-f]+/, `no ESP on the underlay:\n${out}`);
      assert.doesNotMatch(out, /ICMP/, `cleartext ICMP on the underlay:\n${out}`);
      assert.doesNotMatch(out, /10\.10[12]\./, `pod addresses visible on the underlay:\n${out}`);

      // list-sas: one CHILD_SA carrying every subnet of both pools, with bytes both ways.
      const [sa] = await vici(a.gwNode).listSas();
      assert.equal(sa.name, 'corvid-b@b-gw');
      assert.deepEqual(sa.children.map((c) => [c.name, c.localTs, c.remoteTs]), [
        ['corvid-b', [a.gwSubnet, a.memberSubnet], [b.gwSubnet, b.memberSubnet]],
      ]);
      assert.ok(sa.children[0].bytesIn > 0 && sa.children[0].bytesOut > 0);

      // Members: our table and one rule; no route for the own pool.
      const member = await new Iproute({ table: TABLE, netns: a.memberNs }).read();
      assert.deepEqual(member.routes.map((r) => `${r.dst} via ${r.via}`).sort(), [`${b.gwSubnet} via ${a.gwLan}`, `${b.memberSubnet} via ${a.gwLan}`]);
      assert.deepEqual(member.rules.map((r) => [r.family, r.priority]), [[4, 9027]]);

      // Metrics of the gateway agent (after a repair tick has read the counters).
      await waitFor('byte counters in /metrics', async () => {
        const m = await metricsOf(a.gwNode);
        return (metric(m, 'corvid_tunnel_transmit_bytes_total', 'peer="b"') ?? 0) > 0 && (metric(m, 'corvid_tunnel_receive_bytes_total', 'peer="b"') ?? 0) > 0;
      }, 5000, 200);
      const m = await metricsOf(a.gwNode);
      assert.equal(metric(m, 'corvid_tunnel_up', 'peer="b"'), 1);
      assert.ok((metric(m, 'corvid_agent_last_apply_timestamp_seconds', '') ?? Number(m.match(/^corvid_agent_last_apply_timestamp_seconds (\S+)$/m)?.[1])) > 0);
      assert.equal(metric(await metricsOf(a.memberNode), 'corvid_routes', 'table="9027"'), 2);
      const ready = await fetch(`http://127.0.0.1:${agents.get(a.memberNode)!.port}/readyz`);
      assert.equal(ready.status, 200);

      // Heartbeat: gateway candidates hold a Lease; the active gateway reports its tunnel.
      const l = await waitFor('tunnel state in the Lease', async () => {
        const x = await lease(a.gwNode);
        return x?.metadata?.annotations?.[TUNNEL_HEALTH_ANNOTATION]?.includes('"up":true') ? x : undefined;
      }, 10_000, 200);
      assert.equal(l.spec?.holderIdentity, a.gwNode);
      assert.equal(l.spec?.leaseDurationSeconds, 3);
      const tunnels = JSON.parse(l.metadata!.annotations![TUNNEL_HEALTH_ANNOTATION]) as Record<string, { up: boolean; since: string }>;
      assert.deepEqual(Object.keys(tunnels), ['b']);
      assert.match(tunnels.b.since, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
      const renewed = Date.parse(l.spec!.renewTime!);
      await new Promise((r) => setTimeout(r, 1200));
      const l2 = await lease(a.gwNode);
      assert.ok(Date.parse(l2!.spec!.renewTime!) > renewed, 'Lease renewed');
      assert.equal(l2!.metadata!.annotations![TUNNEL_HEALTH_ANNOTATION], l.metadata!.annotations![TUNNEL_HEALTH_ANNOTATION], 'annotation unchanged while the tunnel is stable');
      assert.equal(await lease(a.memberNode), undefined, 'ordinary nodes that are not candidates keep no Lease');
    } catch (e) {
      throw new Error(`${(e as Error).message}\n(after ${Date.now() - t0} ms)\n${logTail(40)}`);
    }
  });

  test('a Gateway that is not Corvid\'s (Raven\'s, not imported) naming our gateway node changes nothing: its tunnel stays, no route to the other pool', { skip, timeout: 30_000 }, async () => {
    const kc = cp.get().kubeConfig;
    // A Gateway Raven left (one the migration did not import, or one not yet adopted) that names our gateway node as
    // its active endpoint: the agent used to take it for a second pool of its node and drop its tunnel.
    const ep = { nodeName: a.gwNode, type: 'tunnel' as const, port: 4500, publicIP: '198.51.100.77' };
    const raven: Gateway = {
      apiVersion: 'raven.openyurt.io/v1beta1',
      kind: 'Gateway',
      metadata: { name: 'gw-site-c' },
      spec: { nodeSelector: { matchLabels: { 'raven.openyurt.io/gateway': 'gw-site-c' } }, endpoints: [ep], tunnelConfig: { Replicas: 1 } },
      status: { nodes: [{ nodeName: a.gwNode, privateIP: a.gwLan, subnets: ['10.109.0.0/24'] }], activeEndpoints: [ep] },
    };
    await applyGateway(kc, raven, { fieldManager: 'raven' });
    await applyGatewayStatus(kc, raven.metadata.name, raven.status!, { fieldManager: 'yurt-manager' });
    try {
      // A Corvid change after it, which the agents do act on: once it shows, they have seen the other one too.
      const withDeny = gatewayFor(a, { denied: ['nowhere'] });
      await applyPool(withDeny);
      await waitFor('the agents saw the Corvid change', async () => (await ping(a.memberNs, a.memberPod, b.memberPod)) && (await vici(a.gwNode).getConns()).length > 0, 10_000, 200);
      await new Promise((r) => setTimeout(r, 1500));
      assert.deepEqual(await vici(a.gwNode).getConns(), ['corvid-b@b-gw'], 'our tunnel stays, and none for the Raven Gateway');
      assert.ok(await ping(a.memberNs, a.memberPod, b.memberPod), 'pods still reach each other');
      for (const ns of [a.gwNs, a.memberNs]) {
        const routes = (await new Iproute({ table: TABLE, netns: ns }).read()).routes.map((r) => r.dst);
        assert.ok(!routes.includes('10.109.0.0/24'), `${ns}: no route to the Raven site (${routes.join(', ')})`);
      }
    } finally {
      await deleteGateway(kc, raven.metadata.name, {});
      await applyPool(gatewayFor(a));
    }
  });

  test('repair: a route deleted and a conn unloaded by hand come back within the repair interval', { skip, timeout: 30_000 }, async () => {
    const va = vici(a.gwNode);
    assert.deepEqual(await va.getConns(), ['corvid-b@b-gw']);
    await lab.exec(a.memberNs, ['ip', 'route', 'del', b.memberSubnet, 'table', String(TABLE)]);
    await va.unloadConn('corvid-b@b-gw');
    const t0 = Date.now();
    await waitFor('route and conn restored', async () => {
      const routes = (await new Iproute({ table: TABLE, netns: a.memberNs }).read()).routes.map((r) => r.dst);
      return routes.includes(b.memberSubnet) && (await va.getConns()).includes('corvid-b@b-gw');
    }, REPAIR_MS * 3 + 2000, 100);
    const took = Date.now() - t0;
    assert.ok(took <= REPAIR_MS * 2 + 1000, `repaired after ${took} ms`);
    assert.ok(await ping(a.memberNs, a.memberPod, b.memberPod));
  });

  test('a gateway that cannot forward says so on its Lease at once: charon killed, forwarding off; and clears it', { skip, timeout: 60_000 }, async () => {
    const verdict = async (): Promise<string | undefined> => (await lease(a.gwNode))?.metadata?.annotations?.[DATAPATH_DOWN_ANNOTATION];
    assert.equal(await verdict(), undefined, 'a working gateway reports nothing');
    const said = async (what: string, re: RegExp): Promise<number> => {
      const t0 = Date.now();
      await waitFor(what, async () => re.test((await verdict()) ?? ''), 5_000, 50);
      return Date.now() - t0;
    };
    const cleared = (what: string) => waitFor(what, async () => (await verdict()) === undefined, 10_000, 100);

    // charon dies (and nothing restarts it): two probes 500 ms apart, then one Lease write.
    const charon = charons.get(a.gwNode)!;
    process.kill(charon.pid, 'SIGKILL');
    const charonMs = await said('charon verdict on the Lease', /charon does not answer/);
    assert.ok(charonMs < 3_000, `said after ${charonMs} ms`);
    assert.ok(agents.get(a.gwNode)!.log.some((l) => l.includes('this node cannot forward')), 'logged once, as a warning');
    await charon.restart();
    await cleared('charon back: verdict cleared');
    // The agent loads its conn into the new charon (repair) and the tunnel carries pods again.
    await waitFor('tunnel back after the charon restart', () => ping(a.memberNs, a.memberPod, b.memberPod), REPAIR_MS * 3 + 10_000, 250);

    await lab.exec(a.gwNs, ['sysctl', '-q', '-w', 'net.ipv4.ip_forward=0']);
    try {
      const fwdMs = await said('forwarding verdict on the Lease', /^IPv4 forwarding is off$/);
      assert.ok(fwdMs < 3_000, `said after ${fwdMs} ms`);
    } finally {
      await lab.exec(a.gwNs, ['sysctl', '-q', '-w', 'net.ipv4.ip_forward=1']);
    }
    await cleared('forwarding on: verdict cleared');
    assert.equal((await lease(b.gwNode))?.metadata?.annotations?.[DATAPATH_DOWN_ANNOTATION], undefined, 'the other gateway said nothing all along');
  });

  test('deleting the Gateways removes every conn, key, SA, route and rule the agents made', { skip, timeout: 60_000 }, async () => {
    const kc = cp.get().kubeConfig;
    // Foreign state in the same places must survive.
    await lab.exec(a.memberNs, ['ip', 'route', 'add', '10.200.0.0/24', 'via', a.gwLan, 'table', '100']);
    await lab.exec(a.memberNs, ['ip', 'rule', 'add', 'pref', '9027', 'lookup', '100']);
    await vici(a.gwNode).loadConn('other-conn', { version: 2, remote_addrs: ['192.0.2.77'], local: { auth: 'psk' }, remote: { auth: 'psk' }, children: { x: { remote_ts: ['10.200.0.0/24'] } } });

    for (const p of [a, b]) assert.ok(await deleteGateway(kc, p.pool, {}));
    const nodes = [[a.gwNode, a.gwNs], [a.memberNode, a.memberNs], [b.gwNode, b.gwNs], [b.memberNode, b.memberNs]] as const;
    try {
      for (const [node, ns] of nodes) {
        await waitFor(`${node} clean`, async () => {
          const s = await ourState(node, ns);
          return s.conns.length + s.keys.length + s.sas + s.routes + s.rules === 0 ? s : undefined;
        }, 10_000, 200);
      }
    } catch (e) {
      throw new Error(`${(e as Error).message}\n${logTail()}`);
    }
    assert.equal(await ping(a.memberNs, a.memberPod, b.memberPod), false, 'no path without the tunnel');
    assert.deepEqual(await vici(a.gwNode).getConns(), ['other-conn']);
    assert.match((await lab.exec(a.memberNs, ['ip', 'route', 'show', 'table', '100'])).stdout, /10\.200\.0\.0\/24/);
    assert.match((await lab.exec(a.memberNs, ['ip', 'rule', 'show'])).stdout, /9027:\s+from all lookup 100/);
    // The tunnel annotation goes once the node is no longer an active gateway... and the Lease stops being renewed.
    await vici(a.gwNode).unloadConn('other-conn');
    await lab.exec(a.memberNs, ['ip', 'route', 'del', '10.200.0.0/24', 'table', '100']);
    await lab.exec(a.memberNs, ['ip', 'rule', 'del', 'pref', '9027', 'lookup', '100']);
  });

  test('SIGTERM: the agents remove exactly what they created and exit 0', { skip, timeout: 60_000 }, async () => {
    for (const p of [a, b]) await applyPool(gatewayFor(p));
    await waitFor('tunnel back after re-creating the Gateways', () => ping(a.memberNs, a.memberPod, b.memberPod), 20_000, 250);
    for (const [node, ns] of [[a.gwNode, a.gwNs], [a.memberNode, a.memberNs]] as const) {
      const s = await ourState(node, ns);
      assert.ok(s.conns.length + s.routes > 0, `${node} has state before SIGTERM`);
    }
    const exits = await Promise.all(
      [...agents.values()].map(
        (p) =>
          new Promise<number | null>((resolve) => {
            p.child.once('exit', (code) => resolve(code));
            p.child.kill('SIGTERM');
          }),
      ),
    );
    assert.deepEqual(exits, [0, 0, 0, 0], logTail());
    for (const [node, ns] of [[a.gwNode, a.gwNs], [a.memberNode, a.memberNs], [b.gwNode, b.gwNs], [b.memberNode, b.memberNs]] as const) {
      assert.deepEqual(await ourState(node, ns), { conns: [], keys: [], sas: 0, routes: 0, rules: 0 }, node);
    }
    // The agents logged what they removed, and never a key.
    const all = [...agents.values()].flatMap((p) => p.log).join('\n');
    assert.match(all, /removed everything the agent created/);
    const { readFileSync } = await import('node:fs');
    const psk = readFileSync(join(secrets!.dir, 'corvid-psk', 'psk'), 'utf8');
    assert.ok(!all.includes(psk), 'the PSK never appears in the logs');
  });
});
