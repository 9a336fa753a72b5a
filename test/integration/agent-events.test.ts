// The agent keeps its reported tunnel state fresh between reconciles: charon's ike-updown/child-updown events make
// it re-read list-sas and write the Lease annotation at once, and a down event triggers a repair right away.
// Two in-process Agents (a-gw, b-gw) against a real kube-apiserver and two real charons in namespaces; the repair
// interval and the lease renewal are long (60 s / 20 s), so only the event path can explain a prompt update. A
// charon restart raises no event: re-registering the subscription triggers the repair.
import { join } from 'node:path';
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { NetnsLab, netnsSkipReason, sweepStaleNamespaces } from '../support/netns.ts';
import { charonSkipReason, startCharon, type CharonInstance } from '../support/charon.ts';
import { installCrds, useControlPlane, ensureNamespace } from '../support/controlplane.ts';
import { ViciSession } from '../../src/agent/vici/index.ts';
import { Agent } from '../../src/agent/agent.ts';
import { silentLogger } from '../../src/shell/log.ts';
import { applyGateway, applyGatewayStatus } from '../../src/adapters/kube/gateways.ts';
import { kubeRequest, statusCode } from '../../src/adapters/kube/client.ts';
import type { LeaseJson } from '../../src/adapters/kube/leases.ts';
import { TUNNEL_HEALTH_ANNOTATION } from '../../src/gateway/keys.ts';
import type { Gateway } from '../../src/gateway/types.ts';
import { buildTwoPools, gatewayFor, makeSecretDir, waitFor, type PoolLab } from './agent-lab.ts';

const cp = useControlPlane();
const skip = netnsSkipReason() ?? charonSkipReason() ?? cp.skip;
const LEASE_NS = 'corvid-events';
const TABLE = 9028;

const lab = new NetnsLab();
let a: PoolLab;
let b: PoolLab;
const charons = new Map<string, CharonInstance>();
const sessions: ViciSession[] = [];
const agents: Agent[] = [];
let secrets: { dir: string; remove(): Promise<void> } | undefined;
let agentB2: Agent | undefined;

function vici(node: string): ViciSession {
  const s = new ViciSession(charons.get(node)!.socketPath, { reconnectTimeoutMs: 5000 });
  sessions.push(s);
  return s;
}

async function startAgent(p: PoolLab): Promise<Agent> {
  const agent = new Agent({
    nodeName: p.gwNode,
    kubeConfig: cp.get().kubeConfig,
    viciSocket: charons.get(p.gwNode)!.socketPath,
    routeTable: TABLE,
    rulePriority: TABLE,
    secretDir: secrets!.dir,
    stateDir: join(secrets!.dir, `state-${p.gwNode}`),
    leaseNamespace: LEASE_NS,
    leaseRenewMs: 20_000,
    leaseDurationSeconds: 60,
    repairIntervalMs: 60_000,
    metricsAddr: '',
    log: silentLogger,
    netns: p.gwNs,
  });
  agents.push(agent);
  await agent.start();
  return agent;
}

async function applyPool(gw: Gateway): Promise<void> {
  const kc = cp.get().kubeConfig;
  await applyGateway(kc, gw, { fieldManager: 'corvid-test' });
  await applyGatewayStatus(kc, gw.metadata.name, gw.status!, { fieldManager: 'corvid-test-status' });
}

async function tunnels(node: string): Promise<Record<string, { up: boolean; since: string }> | undefined> {
  try {
    const l = await kubeRequest<LeaseJson>(cp.get().kubeConfig, { method: 'GET', path: `/apis/coordination.k8s.io/v1/namespaces/${LEASE_NS}/leases/${node}` });
    const v = l.metadata?.annotations?.[TUNNEL_HEALTH_ANNOTATION];
    return v === undefined ? undefined : (JSON.parse(v) as Record<string, { up: boolean; since: string }>);
  } catch (e) {
    if (statusCode(e) === 404) return undefined;
    throw e;
  }
}

function tunnelUpMetric(text: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith('corvid_tunnel_up{peer="b"}'));
  return line === undefined ? undefined : Number(line.split(' ').pop());
}

describe('agent tunnel state from VICI events', { skip }, () => {
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
    for (const p of [a, b]) await applyPool(gatewayFor(p));
  }, { timeout: 120_000 });

  after(async () => {
    for (const agent of agents) await agent.stop().catch(() => {});
    await Promise.all(sessions.map((s) => s.close().catch(() => {})));
    for (const c of charons.values()) await c.stop();
    await lab.cleanup();
    await secrets?.remove();
  });

  test('a tunnel closed by the peer is reported down/up and repaired at once; since changes only with the state', { skip, timeout: 60_000 }, async () => {
    // Responder first, so the initiator's first initiate succeeds (its next repair tick is 60 s away).
    const agentB = await startAgent(b);
    await waitFor('b-gw loaded corvid-a', async () => (await vici(b.gwNode).getConns()).includes('corvid-a@a-gw'), 10_000);
    const agentA = await startAgent(a);
    const t1 = await waitFor('tunnel up in a-gw\'s Lease', async () => ((await tunnels(a.gwNode))?.b?.up === true ? tunnels(a.gwNode) : undefined), 10_000, 100);
    const reconciles = agentA.reconciles;

    // The peer closes the tunnel. Without events nothing would notice before the next repair tick (60 s).
    await new Promise((r) => setTimeout(r, 1100)); // `since` has a one-second resolution
    await vici(b.gwNode).terminate({ ike: 'corvid-a@a-gw', timeoutMs: 3000 });
    const t2 = await waitFor('tunnel up again with a new since', async () => {
      const t = await tunnels(a.gwNode);
      return t?.b?.up === true && t.b.since !== t1!.b.since ? t : undefined;
    }, 8_000, 100);
    assert.ok(agentA.reconciles > reconciles, 'the down event triggered a reconcile');
    assert.ok(Date.parse(t2.b.since) > Date.parse(t1!.b.since));
    assert.equal((await vici(a.gwNode).listSas()).length, 1, 'one IKE_SA: the tunnel was started once');

    // Refreshes without a state change keep `since`.
    await new Promise((r) => setTimeout(r, 1500));
    assert.deepEqual(await tunnels(a.gwNode), t2);

    // The peer goes away for good (its agent stops and removes its conn): reported down at once, metric too.
    await agentB.stop();
    const t3 = await waitFor('tunnel down in a-gw\'s Lease', async () => ((await tunnels(a.gwNode))?.b?.up === false ? tunnels(a.gwNode) : undefined), 8_000, 100);
    assert.notEqual(t3!.b.since, t2.b.since);
    assert.equal(tunnelUpMetric(await agentA.metrics.text()), 0);
  });

  test('a charon crash (no event tells of it) is repaired as soon as the events are re-registered', { skip, timeout: 60_000 }, async () => {
    // The peer is back; a-gw's last initiate failed and its next repair tick is a minute away.
    agentB2 = await startAgent(b);
    await waitFor('b-gw loaded corvid-a', async () => (await vici(b.gwNode).getConns()).includes('corvid-a@a-gw'), 10_000);
    await new Promise((r) => setTimeout(r, 1000)); // let the repair the last test's down event triggered pass
    // A crash (SIGKILL): charon says nothing on the way out, and comes back with no conn, key or SA.
    const charon = charons.get(a.gwNode)!;
    process.kill(charon.pid, 'SIGKILL');
    await charon.restart();
    await waitFor('a-gw\'s charon has the tunnel again', async () => {
      const sas = await vici(a.gwNode).listSas();
      return sas.some((sa) => sa.name === 'corvid-b@b-gw' && sa.state === 'ESTABLISHED' && sa.children.length > 0);
    }, 10_000, 100);
    assert.deepEqual(await vici(a.gwNode).getConns(), ['corvid-b@b-gw']);
    await waitFor('tunnel up in a-gw\'s Lease', async () => (await tunnels(a.gwNode))?.b?.up === true, 5_000, 100);
  });

  test('a crash of the responder\'s charon is noticed by the initiator (DPD) and healed without anyone intervening', { skip, timeout: 90_000 }, async () => {
    // Behind NAT only the initiator can start a tunnel; when the responder's charon dies and comes back empty, the
    // initiator still holds its SA and hears nothing. Dead-peer detection (DPD_DELAY plus the shipped retransmission
    // schedule, about 20 s) must clear the stale SA, and the down event makes the agent initiate again. With
    // charon's default timers this takes minutes.
    await waitFor('tunnel up before', async () => (await tunnels(a.gwNode))?.b?.up === true, 10_000, 100);
    const before = (await vici(a.gwNode).listSas()).find((sa) => sa.name === 'corvid-b@b-gw')!;
    const charon = charons.get(b.gwNode)!;
    const crashedAt = Date.now();
    process.kill(charon.pid, 'SIGKILL');
    await charon.restart();
    await waitFor('b-gw\'s agent loaded corvid-a into the new charon', async () => (await vici(b.gwNode).getConns()).includes('corvid-a@a-gw'), 10_000, 100);
    assert.equal((await vici(b.gwNode).listSas()).length, 0, 'the responder does not initiate');
    await waitFor('a-gw has a new tunnel to b-gw, established with the restarted charon', async () => {
      const sas = await vici(b.gwNode).listSas();
      return sas.some((sa) => sa.name === 'corvid-a@a-gw' && sa.state === 'ESTABLISHED' && sa.children.length > 0);
    }, 40_000, 200);
    const after = (await vici(a.gwNode).listSas()).filter((sa) => sa.name === 'corvid-b@b-gw');
    assert.equal(after.length, 1, 'one IKE_SA: the stale one is gone');
    assert.notEqual(after[0].uniqueId, before.uniqueId, 'a new IKE_SA');
    await waitFor('tunnel up in a-gw\'s Lease', async () => (await tunnels(a.gwNode))?.b?.up === true, 5_000, 100);
    console.log(`# responder charon crash healed by DPD in ${Date.now() - crashedAt} ms`);
  });

  test('an initiate that fails because the peer has not loaded its side yet is retried within seconds', { skip, timeout: 60_000 }, async () => {
    await waitFor('tunnel up before', async () => (await tunnels(a.gwNode))?.b?.up === true, 10_000, 100);
    // The peer's agent goes (removing its conn): a-gw's initiates fail until it is back.
    await agentB2!.stop();
    // Meanwhile b-gw's charon holds a conn for someone else (the peer's old config): a-gw's IKE_AUTH fails outright.
    await vici(b.gwNode).loadConn('corvid-a@a-gw', { version: 2, remote_addrs: [a.publicIP], local: { auth: 'psk', id: b.gwNode }, remote: { auth: 'psk', id: 'someone-else' }, children: { 'corvid-a': { local_ts: [b.gwSubnet], remote_ts: [a.gwSubnet] } } });
    await waitFor('tunnel down in a-gw\'s Lease', async () => (await tunnels(a.gwNode))?.b?.up === false, 8_000, 100);
    await new Promise((r) => setTimeout(r, 1500));
    assert.equal((await vici(a.gwNode).listSas()).length, 0, 'the failed attempt left nothing pending');
    const back = Date.now();
    await startAgent(b);
    await waitFor('a-gw re-initiated without waiting for its repair tick (60 s)', async () => {
      const sas = await vici(a.gwNode).listSas();
      return sas.some((sa) => sa.name === 'corvid-b@b-gw' && sa.state === 'ESTABLISHED' && sa.children.length > 0);
    }, 10_000, 100);
    assert.ok(Date.now() - back < 10_000);
  });
});
