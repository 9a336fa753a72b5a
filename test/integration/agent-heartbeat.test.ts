// The heartbeat Lease writer against a real kube-apiserver.
import { describe, test, before } from 'node:test';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import assert from 'node:assert/strict';
import { useControlPlane, ensureNamespace } from '../support/controlplane.ts';
import { Heartbeat, encodeTunnels, microTime } from '../../src/adapters/kube/heartbeat.ts';
import { heartbeatFromLease, type LeaseJson } from '../../src/adapters/kube/leases.ts';
import { kubeRequest, statusCode } from '../../src/adapters/kube/client.ts';
import { DATAPATH_DOWN_ANNOTATION, TUNNEL_HEALTH_ANNOTATION, WIREGUARD_KEY_LEASE_ANNOTATION } from '../../src/gateway/keys.ts';
import { loadOrCreateKey } from '../../src/adapters/wireguard/keyfile.ts';
import { waitFor } from './agent-lab.ts';

const cp = useControlPlane();
const NS = 'corvid-hb-test';

async function getLease(name: string): Promise<LeaseJson | undefined> {
  try {
    return await kubeRequest<LeaseJson>(cp.get().kubeConfig, { method: 'GET', path: `/apis/coordination.k8s.io/v1/namespaces/${NS}/leases/${name}` });
  } catch (e) {
    if (statusCode(e) === 404) return undefined;
    throw e;
  }
}

test('microTime has six fractional digits; tunnels encode sorted', () => {
  assert.equal(microTime(new Date('2026-11-24T10:00:00.123Z')), '2026-11-24T10:00:00.123000Z');
  assert.equal(encodeTunnels({ z: { up: false, since: 't2' }, a: { up: true, since: 't1' } }), '{"a":{"up":true,"since":"t1"},"z":{"up":false,"since":"t2"}}');
});

describe('heartbeat Lease', { skip: cp.skip }, () => {
  before(async () => {
    await ensureNamespace(cp.get().kubeConfig, NS);
  });

  test('creates, renews only renewTime, writes the tunnel annotation only on change, stops when disabled', { timeout: 30_000 }, async () => {
    const hb = new Heartbeat({ kc: cp.get().kubeConfig, nodeName: 'gw-1', namespace: NS, renewIntervalMs: 150, leaseDurationSeconds: 3 });
    await hb.renew(); // disabled: nothing
    assert.equal(await getLease('gw-1'), undefined);
    hb.setEnabled(true);
    hb.start();
    try {
      const l1 = await waitFor('Lease created', () => getLease('gw-1'), 5000, 50);
      assert.equal(l1.spec?.holderIdentity, 'gw-1');
      assert.equal(l1.spec?.leaseDurationSeconds, 3);
      assert.equal(l1.metadata?.annotations?.[TUNNEL_HEALTH_ANNOTATION], undefined);

      hb.setTunnels({ b: { up: true, since: '2026-11-24T10:00:00Z' } });
      const l2 = await waitFor('annotation', async () => {
        const l = await getLease('gw-1');
        return l?.metadata?.annotations?.[TUNNEL_HEALTH_ANNOTATION] ? l : undefined;
      }, 5000, 50);
      assert.deepEqual(heartbeatFromLease(l2)?.tunnels, { b: { up: true, since: '2026-11-24T10:00:00Z' } });
      // The server can show the write before the client has counted it (the response is still on its way).
      await waitFor('the write counted', () => hb.counts.annotationWrites >= 1, 5000, 20);
      const writes = hb.counts.annotationWrites;
      const renewals = hb.counts.renewals;
      hb.setTunnels({ b: { up: true, since: '2026-11-24T10:00:00Z' } }); // same content: no write
      await waitFor('more renewals', () => hb.counts.renewals >= renewals + 4, 5000, 50);
      assert.equal(hb.counts.annotationWrites, writes);
      const l3 = await getLease('gw-1');
      assert.ok(Date.parse(l3!.spec!.renewTime!) > Date.parse(l2.spec!.renewTime!));
      assert.equal(l3!.spec!.acquireTime, l1.spec!.acquireTime);

      // No longer the active gateway: the annotation goes.
      hb.setTunnels(undefined);
      await waitFor('annotation removed', async () => ((await getLease('gw-1'))?.metadata?.annotations?.[TUNNEL_HEALTH_ANNOTATION] === undefined ? true : undefined), 5000, 50);

      // No longer a candidate: renewals stop.
      hb.setEnabled(false);
      await new Promise((r) => setTimeout(r, 300));
      const frozen = (await getLease('gw-1'))!.spec!.renewTime;
      await new Promise((r) => setTimeout(r, 500));
      assert.equal((await getLease('gw-1'))!.spec!.renewTime, frozen);
    } finally {
      await hb.stop();
    }
  });

  test('takes over a Lease left by someone else and recreates a deleted one', { timeout: 30_000 }, async () => {
    const kc = cp.get().kubeConfig;
    await kubeRequest(kc, {
      method: 'POST',
      path: `/apis/coordination.k8s.io/v1/namespaces/${NS}/leases`,
      body: { apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: { name: 'gw-2' }, spec: { holderIdentity: 'old', leaseDurationSeconds: 15, leaseTransitions: 2 } },
    });
    const states: boolean[] = [];
    const hb = new Heartbeat({ kc, nodeName: 'gw-2', namespace: NS, renewIntervalMs: 100, leaseDurationSeconds: 3, onStateChange: (ok) => states.push(ok) });
    hb.setEnabled(true);
    await hb.renew();
    const l = await getLease('gw-2');
    assert.equal(l?.spec?.holderIdentity, 'gw-2');
    assert.equal(l?.spec?.leaseDurationSeconds, 3);
    assert.equal(l?.spec?.leaseTransitions, 3);
    assert.deepEqual(states, [true]);

    await kubeRequest(kc, { method: 'DELETE', path: `/apis/coordination.k8s.io/v1/namespaces/${NS}/leases/gw-2` });
    await hb.renew(); // 404 on the patch: forgets what it knew
    assert.deepEqual(states, [true, false]);
    await hb.renew(); // creates it again
    assert.equal((await getLease('gw-2'))?.spec?.holderIdentity, 'gw-2');
    assert.deepEqual(states, [true, false, true]);
  });

  test('release on a clean stop: holder "" and no tunnel annotation, read as released; the next start takes it back', { timeout: 30_000 }, async () => {
    const kc = cp.get().kubeConfig;
    const hb = new Heartbeat({ kc, nodeName: 'gw-3', namespace: NS, renewIntervalMs: 100, leaseDurationSeconds: 3 });
    assert.deepEqual(await hb.release(), { released: false }, 'nothing written yet: nothing to release');
    hb.setEnabled(true);
    hb.setTunnels({ b: { up: true, since: '2026-11-24T10:00:00Z' } });
    hb.start();
    await waitFor('Lease with tunnels', async () => ((await getLease('gw-3'))?.metadata?.annotations?.[TUNNEL_HEALTH_ANNOTATION] ? true : undefined), 5000, 20);
    assert.deepEqual(await hb.release(), { released: true });
    const released = (await getLease('gw-3'))!;
    assert.equal(released.spec?.holderIdentity, '');
    assert.equal(released.metadata?.annotations?.[TUNNEL_HEALTH_ANNOTATION], undefined);
    assert.equal(heartbeatFromLease(released)?.released, true);
    await new Promise((r) => setTimeout(r, 300));
    assert.equal((await getLease('gw-3'))!.metadata?.resourceVersion, released.metadata?.resourceVersion, 'stopped: no renewal after the release');

    // The agent starts again: it takes the Lease back, as a new acquisition.
    const again = new Heartbeat({ kc, nodeName: 'gw-3', namespace: NS, renewIntervalMs: 100, leaseDurationSeconds: 3 });
    again.setEnabled(true);
    await again.renew();
    const back = (await getLease('gw-3'))!;
    assert.equal(back.spec?.holderIdentity, 'gw-3');
    assert.equal(back.spec?.leaseTransitions, (released.spec?.leaseTransitions ?? 0) + 1);
    assert.equal(heartbeatFromLease(back)?.released, undefined);
  });

  test('datapath verdict: written once on a change, removed when it clears, taken over from a Lease left behind', { timeout: 30_000 }, async () => {
    const kc = cp.get().kubeConfig;
    const hb = new Heartbeat({ kc, nodeName: 'gw-7', namespace: NS, renewIntervalMs: 100, leaseDurationSeconds: 3 });
    hb.setEnabled(true);
    await hb.renew();
    assert.equal((await getLease('gw-7'))?.metadata?.annotations?.[DATAPATH_DOWN_ANNOTATION], undefined);
    assert.equal(hb.setDatapathDown('IPv4 forwarding is off'), true);
    assert.equal(hb.setDatapathDown('IPv4 forwarding is off'), false, 'the same verdict is no change');
    await hb.renew();
    const down = (await getLease('gw-7'))!;
    assert.equal(down.metadata?.annotations?.[DATAPATH_DOWN_ANNOTATION], 'IPv4 forwarding is off');
    assert.equal(heartbeatFromLease(down)?.datapathDown, 'IPv4 forwarding is off');
    const writes = hb.counts.annotationWrites;
    await hb.renew();
    assert.equal(hb.counts.annotationWrites, writes, 'renewals of an unchanged verdict write no annotation');

    // A new agent on the node (restart) starts with no verdict: the one left on the Lease goes at its first renewal.
    const again = new Heartbeat({ kc, nodeName: 'gw-7', namespace: NS, renewIntervalMs: 100, leaseDurationSeconds: 3 });
    again.setEnabled(true);
    await again.renew();
    assert.equal((await getLease('gw-7'))?.metadata?.annotations?.[DATAPATH_DOWN_ANNOTATION], undefined);
  });

  test('a tunnel change made while a renewal is in flight is written by the next renewal', { timeout: 30_000 }, async () => {
    const kc = cp.get().kubeConfig;
    const hb = new Heartbeat({ kc, nodeName: 'gw-5', namespace: NS, renewIntervalMs: 100, leaseDurationSeconds: 3 });
    hb.setEnabled(true);
    const first = hb.renew(); // creates the Lease, without tunnels: the value when the round began
    hb.setTunnels({ b: { up: true, since: '2026-11-24T10:00:00Z' } });
    await first;
    assert.equal((await getLease('gw-5'))?.metadata?.annotations?.[TUNNEL_HEALTH_ANNOTATION], undefined);
    await hb.renew();
    const l = await getLease('gw-5');
    assert.deepEqual(heartbeatFromLease(l!)?.tunnels, { b: { up: true, since: '2026-11-24T10:00:00Z' } }, 'the change was lost');
  });

  test('release never takes a Lease that someone else holds now', { timeout: 30_000 }, async () => {
    const kc = cp.get().kubeConfig;
    const hb = new Heartbeat({ kc, nodeName: 'gw-4', namespace: NS, renewIntervalMs: 100, leaseDurationSeconds: 3 });
    hb.setEnabled(true);
    await hb.renew();
    const path = `/apis/coordination.k8s.io/v1/namespaces/${NS}/leases/gw-4`;
    await kubeRequest(kc, { method: 'PATCH', path, body: { spec: { holderIdentity: 'someone-else' } }, contentType: 'application/merge-patch+json' });
    const rel = await hb.release();
    assert.equal(rel.released, false);
    assert.ok('error' in rel && rel.error, 'the refused write is reported');
    assert.equal((await getLease('gw-4'))?.spec?.holderIdentity, 'someone-else');
  });

  test('the WireGuard public key: on the Lease once, not rewritten by renewals, one write when it changes, kept on release', { timeout: 30_000 }, async () => {
    const kc = cp.get().kubeConfig;
    const dir = mkdtempSync(join(tmpdir(), 'corvid-hb-wg-'));
    try {
      const k1 = loadOrCreateKey(join(dir, 'one.key')).publicKey;
      const k2 = loadOrCreateKey(join(dir, 'two.key')).publicKey;
      const keyOf = async (): Promise<string | undefined> => (await getLease('gw-6'))?.metadata?.annotations?.[WIREGUARD_KEY_LEASE_ANNOTATION];
      const hb = new Heartbeat({ kc, nodeName: 'gw-6', namespace: NS, renewIntervalMs: 100, leaseDurationSeconds: 3 });
      // As the agent does: the key before the first renewal, so the Lease is created with it.
      assert.equal(hb.setWireguardKey(k1), true);
      assert.equal(hb.setWireguardKey(k1), false, 'the same key is no change');
      hb.setEnabled(true);
      hb.start();
      try {
        await waitFor('Lease with the key', async () => ((await keyOf()) === k1 ? true : undefined), 5000, 20);
        assert.equal(heartbeatFromLease((await getLease('gw-6'))!)?.wireguardKey, k1);
        assert.equal(hb.counts.creates, 1);
        assert.equal(hb.counts.annotationWrites, 1, 'written with the create');
        let renewals = hb.counts.renewals;
        await waitFor('renewals', () => hb.counts.renewals >= renewals + 5, 5000, 20);
        assert.equal(hb.counts.annotationWrites, 1, 'renewals do not write the key again');

        // A tunnel annotation written later leaves the key alone (one write, of the tunnels).
        hb.setTunnels({ b: { up: true, since: '2026-11-24T10:00:00Z' } });
        hb.kick();
        await waitFor('tunnels written', () => hb.counts.annotationWrites >= 2, 5000, 20);
        assert.ok(heartbeatFromLease((await getLease('gw-6'))!)?.tunnels?.b?.up);
        assert.equal(await keyOf(), k1);

        // A new key: exactly one more write, and then none.
        assert.equal(hb.setWireguardKey(k2), true);
        hb.kick();
        await waitFor('the new key on the Lease', async () => ((await keyOf()) === k2 ? true : undefined), 5000, 20);
        await waitFor('the write counted', () => hb.counts.annotationWrites >= 3, 5000, 20);
        renewals = hb.counts.renewals;
        await waitFor('renewals', () => hb.counts.renewals >= renewals + 5, 5000, 20);
        assert.equal(hb.counts.annotationWrites, 3);
      } finally {
        await hb.stop();
      }

      // A clean stop gives the Lease up and drops the tunnels, but the key stays: it is still this node's.
      assert.deepEqual(await hb.release(), { released: true });
      const released = (await getLease('gw-6'))!;
      assert.equal(released.spec?.holderIdentity, '');
      assert.equal(released.metadata?.annotations?.[TUNNEL_HEALTH_ANNOTATION], undefined);
      assert.deepEqual([heartbeatFromLease(released)?.released, heartbeatFromLease(released)?.wireguardKey], [true, k2]);

      // The agent restarts with the same key: it takes the Lease back without writing the key again.
      const again = new Heartbeat({ kc, nodeName: 'gw-6', namespace: NS, renewIntervalMs: 100, leaseDurationSeconds: 3 });
      again.setWireguardKey(k2);
      again.setEnabled(true);
      await again.renew();
      await again.renew();
      assert.equal((await getLease('gw-6'))?.spec?.holderIdentity, 'gw-6');
      assert.deepEqual([again.counts.creates, again.counts.renewals, again.counts.annotationWrites], [0, 2, 0]);
      assert.equal(await keyOf(), k2);
      // Without a key (WireGuard turned off on the node): the annotation goes, in one write.
      again.setWireguardKey(undefined);
      await again.renew();
      await again.renew();
      assert.equal(await keyOf(), undefined);
      assert.equal(again.counts.annotationWrites, 1);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
