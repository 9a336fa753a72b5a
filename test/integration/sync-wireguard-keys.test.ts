// WireGuard public keys from the agents' heartbeat Leases (written by the agent's own Heartbeat) to the Gateways'
// corvid.dev/wireguard-keys annotation, through a real sync against a real kube-apiserver: only when the topology
// uses WireGuard, only valid keys, and each pool's gateway candidates' only.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createNode, useControlPlane } from '../support/controlplane.ts';
import { ensureNamespace, installCorvidCrds, startTestSync, topologyYaml, waitFor, writeAtomically, type TestSync } from './sync-fixtures.ts';
import { getGateway } from '../../src/adapters/kube/gateways.ts';
import { Heartbeat } from '../../src/adapters/kube/heartbeat.ts';
import { loadOrCreateKey } from '../../src/adapters/wireguard/keyfile.ts';
import { WIREGUARD_KEYS_ANNOTATION, WIREGUARD_KEY_LEASE_ANNOTATION } from '../../src/gateway/keys.ts';
import { kubeRequest } from '../../src/adapters/kube/client.ts';
import { leasesPath, type LeaseJson } from '../../src/adapters/kube/leases.ts';

let dir: string | undefined;
let sync: TestSync | undefined;
const beats: Heartbeat[] = [];
// Registered before useControlPlane() so it runs before the control plane is stopped.
after(async () => {
  await sync?.handle.stop();
  await Promise.all(beats.map((b) => b.stop()));
  if (dir) await rm(dir, { recursive: true, force: true });
});
const cp = useControlPlane();
const POOLS = [
  { name: 'east', label: 'e', gateways: ['e1', 'e2'] },
  { name: 'west', label: 'w', gateways: ['w1'] },
];

function topology(backend: 'wireguard' | 'ipsec'): string {
  const text = topologyYaml({ name: 'wg-keys', pools: POOLS, heartbeatTimeout: '5s', minHealthy: '0s' });
  assert.ok(text.includes('  encryption:\n'));
  return text.replace('  encryption:\n', `  encryption:\n    backend: ${backend}\n`);
}

async function keysOf(pool: string): Promise<string | undefined> {
  return (await getGateway(cp.get().kubeConfig, pool))?.metadata.annotations?.[WIREGUARD_KEYS_ANNOTATION];
}

test('sync: the candidates\' Lease keys go into corvid.dev/wireguard-keys with backend wireguard, invalid ones are left out, none with ipsec', { skip: cp.skip, timeout: 40_000 }, async () => {
  const kc = cp.get().kubeConfig;
  await installCorvidCrds(kc);
  await ensureNamespace(kc, 'corvid-system');
  for (const [i, [name, pool]] of [['e1', 'e'], ['e2', 'e'], ['w1', 'w']].entries()) {
    await createNode(kc, { name, labels: { pool }, internalIP: `10.0.9.${i + 1}`, podCIDRs: [`10.244.9${i}.0/24`], ready: true });
  }
  dir = await mkdtemp(join(tmpdir(), 'corvid-sync-wg-'));
  const key = (node: string) => loadOrCreateKey(join(dir!, 'keys', `${node}.key`)).publicKey;
  const hb = new Map<string, Heartbeat>();
  for (const node of ['e1', 'e2', 'w1']) {
    const h = new Heartbeat({ kc, nodeName: node, namespace: 'corvid-system', renewIntervalMs: 300, leaseDurationSeconds: 3 });
    h.setEnabled(true);
    hb.set(node, h);
    beats.push(h);
  }
  // e1 publishes a key, e2 something that is not one, w1 nothing yet.
  hb.get('e1')!.setWireguardKey(key('e1'));
  hb.get('e2')!.setWireguardKey('not-a-wireguard-key');
  for (const h of hb.values()) h.start();

  const file = join(dir, 'topology.yaml');
  await writeFile(file, topology('wireguard'));
  sync = await startTestSync(kc, { source: { kind: 'file', path: file, intervalMs: 600_000 } });
  await waitFor('east carries e1\'s key', async () => ((await keysOf('east')) === JSON.stringify({ e1: key('e1') }) ? true : undefined), 15_000);
  assert.equal(await keysOf('west'), undefined, 'no candidate has a key yet: no annotation (as in `corvid render`)');
  const e2Lease = await kubeRequest<LeaseJson>(kc, { method: 'GET', path: `${leasesPath('corvid-system')}/e2` });
  assert.equal(e2Lease.metadata?.annotations?.[WIREGUARD_KEY_LEASE_ANNOTATION], 'not-a-wireguard-key', 'published, as a broken agent would');
  const gwEast = (await getGateway(kc, 'east'))!;
  assert.ok(!JSON.stringify(gwEast).includes('not-a-wireguard-key'), 'an invalid key is nowhere in the Gateway');

  // w1's agent publishes its key: it reaches west's Gateway and no other.
  hb.get('w1')!.setWireguardKey(key('w1'));
  hb.get('w1')!.kick();
  await waitFor('west carries w1\'s key', async () => ((await keysOf('west')) === JSON.stringify({ w1: key('w1') }) ? true : undefined), 10_000);
  assert.equal(await keysOf('east'), JSON.stringify({ e1: key('e1') }));

  // e2 fixes its key: both candidates of east, sorted.
  hb.get('e2')!.setWireguardKey(key('e2'));
  hb.get('e2')!.kick();
  await waitFor('east carries both keys', async () => ((await keysOf('east')) === JSON.stringify({ e1: key('e1'), e2: key('e2') }) ? true : undefined), 10_000);

  // The topology goes back to IPsec: no key annotation on any Gateway.
  await writeAtomically(file, topology('ipsec'));
  await waitFor('no key annotation with ipsec', async () => ((await keysOf('east')) === undefined && (await keysOf('west')) === undefined ? true : undefined), 10_000);
  // And to WireGuard again: the keys come back from the Leases as they are.
  await writeAtomically(file, topology('wireguard'));
  await waitFor('keys back with wireguard', async () => ((await keysOf('west')) === JSON.stringify({ w1: key('w1') }) ? true : undefined), 10_000);
  assert.equal(await keysOf('east'), JSON.stringify({ e1: key('e1'), e2: key('e2') }));
});
