// The cut-over from OpenYurt Raven (docs/migrate-from-raven.md, steps 6 and 7) on the flannel fabric of scenarios.ts,
// with real traffic. The cluster is as steps 1-5 leave it: OpenYurt's Gateway CRD (installed by Helm), Raven's
// Gateways as yurt-manager and raven-agent wrote them, each pool's nodes labelled raven.openyurt.io/gateway=<name>,
// and one Gateway the import does not take (it has no nodeSelector) still naming a node. raven-agent is gone (6.1):
// there is none in this environment, so the part of the pause that is Raven's (its clean-up) is not measured here.
//
// M1 (6.2) Corvid's agents start next to Raven's Gateways and touch nothing; no pod reaches another pool.
// M2 (6.3, 7) `corvid import`, the hand edits its notes ask for, a push: every Gateway adopted in place, every pod
//    reaches every pod (the pause from the push is measured), bulk TCP and DF, `corvid diff` exits 0.
// Run as root: npx node --test --test-concurrency=1 test/e2e/system-migrate.e2e.ts
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { parseDocument } from 'yaml';
import { useControlPlane } from '../support/controlplane.ts';
import { corvid } from '../unit/cli-support.ts';
import { createRavenGateways } from '../support/openyurt.ts';
import { MANAGED_BY_LABEL, MANAGED_BY_VALUE, TOPOLOGY_LABEL } from '../../src/gateway/keys.ts';
import type { Endpoint, Gateway } from '../../src/gateway/types.ts';
import { Fabric, NARROW_POOL, NARROW_WAN_MTU, type FabricNode, type FabricPool, type PoolName } from './fabric.ts';
import { CorvidSystem, systemSkipReason, TOPOLOGY_NAME, waitFor } from './system.ts';
import { actives, everyone, scenarioChecks, waitForMatrix } from './checks.ts';

const RAVEN_LABEL = 'raven.openyurt.io/gateway';
const ravenName = (pool: PoolName): string => `gw-${pool}`;
/** The node Raven had elected in each pool: in two of them not the first endpoint, which Corvid would pick afresh. */
const RAVEN_ACTIVE: Record<PoolName, string> = { cloud: 'cloud-gw-2', 'edge-a': 'edge-a-gw-1', 'edge-b': 'edge-b-gw-2' };
/** A Gateway created while yurt-manager's webhook was down (no nodeSelector): not imported, and it names a node. */
const LEFT_BEHIND = 'gw-unlabelled';
const LEFT_BEHIND_NODE = 'edge-a-gw-2';
const BUDGET_MS = 4 * 60_000;

/** A tunnel endpoint as raven-agent leaves it: the address it detected (behind NAT, its router's) as publicIP. */
function ravenEndpoint(p: FabricPool, n: FabricNode): Endpoint {
  const publicIP = n.publicIP ?? p.router?.wanIP;
  return { nodeName: n.name, type: 'tunnel', port: 4500, ...(p.behindNAT ? { underNAT: true } : {}), ...(publicIP ? { publicIP } : {}) };
}

/** Raven's Gateways for the fabric's pools, with status as yurt-manager's gateway-pickup controller writes it. */
function ravenGateways(f: Fabric): Gateway[] {
  const gateways: Gateway[] = [...f.pools.values()].map((p) => {
    const endpoints = p.nodes.filter((n) => n.kind === 'candidate').map((n) => ravenEndpoint(p, n));
    const active = endpoints.find((e) => e.nodeName === RAVEN_ACTIVE[p.name])!;
    return {
      apiVersion: 'raven.openyurt.io/v1beta1',
      kind: 'Gateway',
      metadata: { name: ravenName(p.name) },
      spec: { nodeSelector: { matchLabels: { [RAVEN_LABEL]: ravenName(p.name) } }, proxyConfig: { Replicas: 0 }, tunnelConfig: { Replicas: 1 }, endpoints },
      status: {
        activeEndpoints: [{ ...active, config: { 'enable-l3-tunnel': 'true' } }],
        nodes: [...p.nodes].sort((a, b) => a.name.localeCompare(b.name)).map((n) => ({ nodeName: n.name, privateIP: n.lanIP, subnets: n.podCIDRs })),
      },
    } as Gateway;
  });
  const pool = f.pool('edge-a');
  const node = f.node(LEFT_BEHIND_NODE);
  const ep = ravenEndpoint(pool, node);
  gateways.push({
    apiVersion: 'raven.openyurt.io/v1beta1',
    kind: 'Gateway',
    metadata: { name: LEFT_BEHIND },
    spec: { proxyConfig: { Replicas: 0 }, tunnelConfig: { Replicas: 1 }, endpoints: [ep] },
    status: { activeEndpoints: [{ ...ep, config: { 'enable-l3-tunnel': 'true' } }], nodes: [{ nodeName: node.name, privateIP: node.lanIP, subnets: node.podCIDRs }] },
  } as Gateway);
  return gateways;
}

const cp = useControlPlane();
const skip = systemSkipReason(cp.skip);

describe('e2e (flannel): the cut-over from Raven, with traffic', { skip, timeout: BUDGET_MS }, () => {
  let f: Fabric;
  let sys: CorvidSystem;
  /** Raven's Gateways as they were before the push. */
  let raven = new Map<string, Gateway>();

  before(async () => {
    f = await Fabric.build({ cni: 'flannel' });
    sys = await CorvidSystem.start(cp.get(), f, {
      gatewayCrd: 'openyurt',
      nodeLabels: (n) => ({ [RAVEN_LABEL]: ravenName(n.pool) }),
      seed: (kc) => createRavenGateways(kc, ravenGateways(f)),
    });
  }, { timeout: 120_000 });

  after(async () => {
    await sys?.stop();
    await f?.cleanup();
  });

  const { fail, traffic } = scenarioChecks(() => ({ f, sys }));

  test('M1: Corvid\'s agents start next to Raven\'s Gateways and touch nothing: no Lease, no conn, no route; no pod reaches another pool', { timeout: 60_000 }, async () => {
    // Long enough for an agent that acted on them to have written its Lease and loaded its conns.
    await new Promise((r) => setTimeout(r, 3000));
    raven = await sys.gateways();
    assert.ok(raven.has(LEFT_BEHIND), `${LEFT_BEHIND} is there`);
    for (const n of f.candidates()) {
      assert.deepEqual(await sys.sas(n.name), [], `${n.name}: no IKE_SA`);
      assert.equal(await sys.lease(n.name), undefined, `${n.name}: no heartbeat (it is no candidate of a Corvid Gateway)`);
    }
    for (const n of f.nodes.values()) {
      // An empty table does not exist at all (ip says so and fails).
      const routes = await f.lab.exec(n.ns, ['ip', 'route', 'show', 'table', '9027'], { allowFail: true });
      assert.equal(routes.stdout.trim(), '', `${n.name}: nothing in Corvid's table`);
    }
    assert.equal(await f.podPing('edge-a-node-1', 'cloud-node-1', { count: 1, waitS: 1 }), false, 'raven-agent is gone: no path across pools');
  });

  test('M2: import, the hand edits its notes ask for, a push: each Gateway adopted in place, every pod reaches every pod, Raven\'s left-over untouched', { timeout: 150_000 }, async () => {
    const file = await sys.file('imported.yaml', '');
    const imported = await sys.corvid(['import', '-f', file, '--name', TOPOLOGY_NAME]);
    assert.equal(imported.code, 1, `written, with notes:\n${imported.stderr}`);
    assert.match(imported.stderr, new RegExp(`Gateway ${LEFT_BEHIND}: not imported: it has no spec\\.nodeSelector`));
    assert.match(imported.stderr, /add relay: gw-cloud to gw-edge-a, gw-edge-b/);
    const validated = await corvid(['validate', file]);
    assert.equal(validated.code, 0, validated.stdout + validated.stderr);

    // Step 2, as an operator does it: keep Raven's relay (the note's suggestion) and state the narrow WAN, which no
    // Gateway of Raven's records.
    const doc = parseDocument(readFileSync(file, 'utf8'));
    const pools = doc.getIn(['spec', 'pools']) as { items: Array<{ get(k: string): unknown; set(k: string, v: unknown): void }> };
    for (const p of pools.items) {
      const pool = String(p.get('name')).replace(/^gw-/, '') as PoolName;
      if (f.pool(pool).behindNAT) p.set('relay', ravenName('cloud'));
      if (pool === NARROW_POOL) p.set('mtu', NARROW_WAN_MTU);
    }
    const text = doc.toString();
    const edited = await sys.file('imported.yaml', text);
    const revalidated = await corvid(['validate', edited]);
    assert.equal(revalidated.code, 0, revalidated.stdout + revalidated.stderr);

    const t0 = Date.now();
    const revision = await sys.push(text, 'migrate: the topology imported from Raven');
    await waitFor('the imported revision applied', async () => (await sys.topology())?.status?.lastAppliedRevision === revision, 30_000).catch((e) => fail((e as Error).message));
    const bad = await waitForMatrix(f, everyone, 60_000);
    if (bad.length > 0) fail(`after the cut-over, not every pod reaches every pod:\n${bad.join('\n')}`);
    const pause = Date.now() - t0;
    const gws = await sys.gateways();
    console.log(`# cut-over: push of the imported topology -> all ${f.nodes.size * (f.nodes.size - 1)} pod pairs reachable in ${pause} ms; active gateways ${JSON.stringify(actives(gws))} (Raven had ${JSON.stringify(RAVEN_ACTIVE)})`);

    // Sticky across the cut-over: the gateway Raven had elected in each pool is Corvid's first choice too.
    const want = Object.fromEntries([...f.pools.keys()].map((p) => [ravenName(p), RAVEN_ACTIVE[p]]));
    assert.deepEqual(Object.fromEntries(Object.entries(actives(gws)).filter(([g]) => g !== LEFT_BEHIND)), want, 'Raven\'s elected gateways kept');
    // Adopted in place: the same objects (uid), now Corvid's.
    for (const p of f.pools.keys()) {
      const g = gws.get(ravenName(p));
      assert.ok(g, `${ravenName(p)} is still there`);
      assert.equal(g.metadata.labels?.[MANAGED_BY_LABEL], MANAGED_BY_VALUE, `${ravenName(p)} is Corvid's`);
      assert.equal(g.metadata.labels?.[TOPOLOGY_LABEL], TOPOLOGY_NAME);
      assert.equal(g.metadata.uid, raven.get(ravenName(p))?.metadata.uid, `${ravenName(p)}: the same object`);
    }
    assert.equal(gws.get(LEFT_BEHIND)?.metadata.resourceVersion, raven.get(LEFT_BEHIND)?.metadata.resourceVersion, `${LEFT_BEHIND} is left alone`);
    assert.deepEqual([...gws.keys()].sort(), [...[...f.pools.keys()].map(ravenName), LEFT_BEHIND].sort(), 'no Gateway created or deleted');

    await traffic('after the cut-over');
    const diff = await sys.corvid(['diff', '-f', edited]);
    assert.equal(diff.code, 0, `corvid diff after the cut-over:\n${diff.stdout}${diff.stderr}`);
  });
});
