// The DatapathReconciler against two real charons (kernel-libipsec) in network namespaces, without Kubernetes:
// plan -> conns, keys, initiate; pod-to-pod ping through the tunnel; drift repair; a charon restart; teardown.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { NetnsLab, netnsSkipReason, sweepStaleNamespaces } from '../support/netns.ts';
import { charonSkipReason, startCharon, type CharonInstance } from '../support/charon.ts';
import { ViciSession } from '../../src/agent/vici/index.ts';
import { Iproute } from '../../src/adapters/iproute/iproute.ts';
import { DatapathReconciler } from '../../src/agent/reconciler.ts';
import { SecretReader } from '../../src/agent/secrets.ts';
import { silentLogger } from '../../src/shell/log.ts';
import { nodePlan } from '../../src/nodeplan/index.ts';
import { tunnelConns } from '../../src/agent/conns.ts';
import { buildTwoPools, gatewayFor, makeSecretDir, waitFor, type PoolLab } from './agent-lab.ts';

const skip = netnsSkipReason() ?? charonSkipReason();
const lab = new NetnsLab();
let a: PoolLab;
let b: PoolLab;
let charonA: CharonInstance | undefined;
let charonB: CharonInstance | undefined;
let secrets: { dir: string; remove(): Promise<void> } | undefined;
const sessions: ViciSession[] = [];

before(async () => {
  if (skip) return;
  sweepStaleNamespaces();
  [a, b] = await buildTwoPools(lab);
  charonA = await startCharon({ netns: a.gwNs });
  charonB = await startCharon({ netns: b.gwNs });
  secrets = await makeSecretDir();
});

after(async () => {
  if (process.env.CORVID_KEEP_LOGS) for (const c of [charonA, charonB]) if (c) console.log(await import('node:fs').then((fs) => fs.readFileSync(`${c.dir}/charon.log`, 'utf8')));
  await Promise.all(sessions.map((s) => s.close().catch(() => {})));
  await charonA?.stop();
  await charonB?.stop();
  await lab.cleanup();
  await secrets?.remove();
});

function side(p: PoolLab, charon: CharonInstance, memberNs?: string) {
  const vici = new ViciSession(charon.socketPath, { reconnectTimeoutMs: 5000 });
  sessions.push(vici);
  const mk = (ns: string, withVici: boolean) =>
    new DatapathReconciler({
      vici: withVici ? vici : undefined,
      iproute: new Iproute({ table: 9027, netns: ns }),
      secrets: new SecretReader(secrets!.dir),
      log: silentLogger,
    });
  return { vici, gw: mk(p.gwNs, true), member: mk(memberNs ?? p.memberNs, false) };
}

async function ping(ns: string, from: string, to: string): Promise<boolean> {
  const r = await lab.exec(ns, ['ping', '-c', '1', '-W', '1', '-I', from, to], { allowFail: true });
  return r.code === 0;
}

test('reconciler: tunnel up from the plan, pods ping across, drift and charon restart repaired, teardown is exact', { skip, timeout: 120_000 }, async () => {
  const gws = [gatewayFor(a), gatewayFor(b)];
  const A = side(a, charonA!);
  const B = side(b, charonB!);
  const plan = (node: string) => nodePlan({ gateways: gws, nodeName: node });

  // Responder first, so the initiator's first attempt succeeds.
  const rb = await B.gw.reconcile(plan(b.gwNode));
  assert.deepEqual(rb.errors, []);
  assert.deepEqual(rb.viciActions, ['load-shared corvid-a', 'load-conn corvid-a@a-gw']);
  const ra = await A.gw.reconcile(plan(a.gwNode));
  assert.deepEqual(ra.errors, []);
  assert.deepEqual(ra.viciActions, ['load-shared corvid-b', 'load-conn corvid-b@b-gw', 'initiate corvid-b@b-gw child corvid-b']);
  assert.equal(ra.tunnels[0].up, true);
  for (const [node, r] of [[a.memberNode, A.member], [b.memberNode, B.member]] as const) {
    const res = await r.reconcile(plan(node));
    assert.deepEqual(res.errors, []);
    assert.equal(res.viciChecked, false);
  }

  // Member pod to member pod, and gateway pod to member pod, both ways.
  assert.ok(await waitFor('ping a-n1 -> b-n1', () => ping(a.memberNs, a.memberPod, b.memberPod), 10_000));
  assert.ok(await ping(b.memberNs, b.memberPod, a.memberPod));
  assert.ok(await ping(a.gwNs, a.gwPod, b.memberPod));
  const [sa] = await A.vici.listSas();
  assert.deepEqual(sa.children.map((c) => [c.name, c.localTs, c.remoteTs]), [
    ['corvid-b', ['10.101.0.0/24', '10.101.1.0/24'], ['10.102.0.0/24', '10.102.1.0/24']],
  ]);
  assert.ok(sa.children[0].bytesOut > 0 && sa.children[0].bytesIn > 0);
  // The peer is on port 4500: IKE leaves from 4500 (non-ESP marker from the first packet) and both ends agree.
  assert.deepEqual([sa.localPort, sa.remotePort], [4500, 4500]);
  const [saB] = await B.vici.listSas();
  assert.deepEqual([saB.localPort, saB.remotePort], [4500, 4500]);

  // Steady state: nothing to do.
  const again = await A.gw.reconcile(plan(a.gwNode));
  assert.deepEqual([again.viciActions, again.ipChanges, again.errors], [[], [], []]);

  // Drift: the conn unloaded by hand (its SA stays up) and a member route deleted.
  await A.vici.unloadConn('corvid-b@b-gw');
  await lab.exec(a.memberNs, ['ip', 'route', 'del', b.memberSubnet, 'table', '9027']);
  const fixed = await A.gw.reconcile(plan(a.gwNode));
  assert.deepEqual(fixed.viciActions, ['load-conn corvid-b@b-gw']);
  assert.deepEqual((await A.member.reconcile(plan(a.memberNode))).ipChanges, [`route replace ${b.memberSubnet} via ${a.gwLan} table 9027`]);
  assert.ok(await ping(a.memberNs, a.memberPod, b.memberPod));

  // A charon restart loses every conn, key and SA: the next reconcile reloads and re-initiates.
  await charonA!.restart();
  const afterRestart = await A.gw.reconcile(plan(a.gwNode));
  assert.deepEqual(afterRestart.errors, []);
  assert.deepEqual(afterRestart.viciActions, ['load-shared corvid-b', 'load-conn corvid-b@b-gw', 'initiate corvid-b@b-gw child corvid-b']);
  assert.ok(await waitFor('ping after charon restart', () => ping(a.memberNs, a.memberPod, b.memberPod), 10_000));

  // A new DatapathReconciler (agent restart) with the same plan leaves the working SA alone.
  const fresh = side(a, charonA!).gw;
  const r2 = await fresh.reconcile(plan(a.gwNode));
  assert.deepEqual(r2.errors, []);
  assert.deepEqual(r2.viciActions, ['load-shared corvid-b', 'load-conn corvid-b@b-gw']);
  assert.equal((await A.vici.listSas()).length, 1);

  // Foreign state that must survive teardown: a conn and a key not named corvid-*, a route in another table.
  await A.vici.loadConn('other-conn', { version: 2, remote_addrs: ['192.0.2.77'], local: { auth: 'psk' }, remote: { auth: 'psk' }, children: { x: { remote_ts: ['10.200.0.0/24'] } } });
  await A.vici.loadShared({ id: 'other-key', type: 'IKE', data: 'x'.repeat(40), owners: ['someone'] });
  await lab.exec(a.memberNs, ['ip', 'route', 'add', '10.200.0.0/24', 'via', a.gwLan, 'table', '100']);

  const down = await fresh.teardown();
  assert.deepEqual(down.errors, []);
  assert.deepEqual(down.viciActions, ['terminate corvid-b@b-gw', 'unload-conn corvid-b@b-gw', 'unload-shared corvid-b']);
  const m = await A.member.teardown();
  assert.deepEqual(m.errors, []);
  assert.deepEqual(await A.vici.getConns(), ['other-conn']);
  assert.deepEqual(await A.vici.getShared(), ['other-key']);
  assert.deepEqual(await new Iproute({ table: 9027, netns: a.memberNs }).read(), { routes: [], rules: [] });
  assert.match((await lab.exec(a.memberNs, ['ip', 'route', 'show', 'table', '100'])).stdout, /10\.200\.0\.0\/24/);
  assert.equal(await ping(a.memberNs, a.memberPod, b.memberPod), false);
  await A.vici.unloadConn('other-conn');
  await A.vici.unloadShared('other-key');
  await B.gw.teardown();
  await B.member.teardown();
});

test('reconciler: a weak or missing PSK is refused and never appears in errors', { skip }, async () => {
  const gws = [gatewayFor(a), gatewayFor(b)];
  const weakDir = await makeSecretDir();
  try {
    const key = 'password-changeme-secret-2024-password';
    await writeFile(join(weakDir.dir, 'corvid-psk', 'psk'), key, { mode: 0o600 });
    const vici = new ViciSession(charonA!.socketPath);
    sessions.push(vici);
    const r = new DatapathReconciler({ vici, iproute: new Iproute({ table: 9027, netns: a.gwNs }), secrets: new SecretReader(weakDir.dir), log: silentLogger });
    const res = await r.reconcile(nodePlan({ gateways: gws, nodeName: a.gwNode }));
    assert.equal(res.ok, false);
    assert.match(res.errors.join('\n'), /refusing PSK from .*corvid-psk\/psk: a known placeholder value/);
    assert.ok(!res.errors.join('\n').includes(key));
    assert.deepEqual(await vici.getConns(), []);
    assert.deepEqual(await vici.getShared(), []);

    const missing = new DatapathReconciler({ vici, iproute: new Iproute({ table: 9027, netns: a.gwNs }), secrets: new SecretReader('/nonexistent'), log: silentLogger });
    const res2 = await missing.reconcile(nodePlan({ gateways: gws, nodeName: a.gwNode }));
    assert.match(res2.errors.join('\n'), /cannot read PSK file \/nonexistent\/corvid-psk\/psk \(ENOENT\)/);
  } finally {
    await weakDir.remove();
  }
});

test('reconciler: a gateway that loses the election becomes an ordinary node (conns terminated and unloaded, routes added)', { skip, timeout: 60_000 }, async () => {
  const gws = [gatewayFor(a), gatewayFor(b)];
  const A = side(a, charonA!);
  const B = side(b, charonB!);
  await B.gw.reconcile(nodePlan({ gateways: gws, nodeName: b.gwNode }));
  const up = await A.gw.reconcile(nodePlan({ gateways: gws, nodeName: a.gwNode }));
  assert.equal(up.tunnels[0]?.up, true, JSON.stringify(up.errors));

  // a-n1 wins pool a's election: a-gw is now an ordinary node of pool a.
  const lost = nodePlan({ gateways: [gatewayFor(a, { active: a.memberNode }), gatewayFor(b)], nodeName: a.gwNode });
  assert.equal(lost.role, 'member');
  const res = await A.gw.reconcile(lost);
  assert.deepEqual(res.errors, []);
  assert.deepEqual(res.viciActions, ['terminate corvid-b@b-gw', 'unload-conn corvid-b@b-gw', 'unload-shared corvid-b']);
  assert.deepEqual(res.ipChanges.sort(), [
    `route replace ${b.gwSubnet} via ${a.memberLan} table 9027`,
    `route replace ${b.memberSubnet} via ${a.memberLan} table 9027`,
    'rule add pref 9027 lookup 9027',
  ]);
  assert.deepEqual(await A.vici.listSas(), []);
  assert.deepEqual(await A.vici.getConns(), []);
  assert.deepEqual(await A.vici.getShared(), []);
  await A.gw.teardown();
  await B.gw.teardown();
  assert.deepEqual(await new Iproute({ table: 9027, netns: a.gwNs }).read(), { routes: [], rules: [] });
});

test('reconciler: an SA negotiated against the peer\'s old config (fewer traffic selectors) is replaced in the steady state', { skip, timeout: 60_000 }, async () => {
  const full = [gatewayFor(a), gatewayFor(b)];
  // Pool a as b's old config knew it: only a-gw's subnet.
  const aOld = gatewayFor(a);
  aOld.status!.nodes = aOld.status!.nodes!.filter((n) => n.nodeName === a.gwNode);
  const A = side(a, charonA!);
  const B = side(b, charonB!);
  const planA = nodePlan({ gateways: full, nodeName: a.gwNode });
  const planBOld = nodePlan({ gateways: [aOld, gatewayFor(b)], nodeName: b.gwNode });
  const planBNew = nodePlan({ gateways: full, nodeName: b.gwNode });
  assert.deepEqual(planBOld.tunnels[0].remoteTs, [a.gwSubnet]);

  await B.gw.reconcile(planBOld);
  const first = await A.gw.reconcile(planA);
  assert.deepEqual(first.errors, []);
  assert.equal(first.tunnels[0].up, true);
  const narrowed = (await A.vici.listSas())[0].children[0];
  assert.deepEqual(narrowed.localTs, [a.gwSubnet], 'b narrowed the CHILD_SA to its old config');

  // b's agent loads its new config while the SA stays (the reload raced the negotiation): nothing tears it down.
  for (const c of tunnelConns(planBNew.tunnels[0])) await B.vici.loadConn(c.name, c.conn);
  const fixed = await A.gw.reconcile(planA);
  assert.deepEqual(fixed.errors, []);
  assert.deepEqual(fixed.viciActions, ['terminate corvid-b@b-gw (traffic selectors differ from the plan)', 'initiate corvid-b@b-gw child corvid-b']);
  const sas = await A.vici.listSas();
  assert.equal(sas.length, 1);
  assert.deepEqual(sas[0].children.map((c) => [c.localTs, c.remoteTs]), [[[a.gwSubnet, a.memberSubnet], [b.gwSubnet, b.memberSubnet]]]);
  assert.ok(await waitFor('ping a-n1 -> b-n1 after the replacement', async () => {
    await A.member.reconcile(nodePlan({ gateways: full, nodeName: a.memberNode }));
    await B.member.reconcile(nodePlan({ gateways: full, nodeName: b.memberNode }));
    return ping(a.memberNs, a.memberPod, b.memberPod);
  }, 10_000));

  // Steady again: nothing to do.
  const again = await A.gw.reconcile(planA);
  assert.deepEqual([again.viciActions, again.errors], [[], []]);
  await A.gw.teardown();
  await B.gw.teardown();
  await A.member.teardown();
  await B.member.teardown();
});
