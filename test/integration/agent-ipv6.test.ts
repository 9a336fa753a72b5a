// Dual stack, from Node objects to the kernel: a member routes the other pool's IPv6 pod CIDR via its gateway's IPv6
// address, which only corvid.dev/private-ips (status.activeEndpoints[].config) carries.
//
//   member a-n1 (eth0: 10.71.0.11/24, fd00:71::11/64) ── veth ── gateway a-gw (lan0: 10.71.0.10/24, fd00:71::10/64)
//                                                                 "pod" fd00:b::5 on lo
//
// Pool b has no namespace: the test needs the member's side only. fd00:b::5 on the gateway's lo stands in for a pod
// of pool b behind the tunnel (the gateway answers it itself), so a ping from the member proves the route it took.
// No namespace has a default route: without our route the ping has nowhere to go. ULA and 10.x addresses only.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { NetnsLab, netnsSkipReason, sweepStaleNamespaces } from '../support/netns.ts';
import { Iproute } from '../../src/adapters/iproute/iproute.ts';
import { DatapathReconciler } from '../../src/agent/reconciler.ts';
import { SecretReader } from '../../src/agent/secrets.ts';
import { silentLogger } from '../../src/shell/log.ts';
import { nodePlan } from '../../src/nodeplan/index.ts';
import { inventoryFromNodeList } from '../../src/plan/inventory.ts';
import { plan } from '../../src/plan/planner.ts';
import type { Gateway } from '../../src/gateway/types.ts';
import { input, pool, POOL_KEY, T0, topology } from '../unit/plan-fixtures.ts';
import { makeSecretDir } from './agent-lab.ts';

const skip = netnsSkipReason();
const lab = new NetnsLab();
const TABLE = 9027;
let memberNs = '';
let gwNs = '';
let secrets: { dir: string; remove(): Promise<void> } | undefined;

before(async () => {
  if (skip) return;
  sweepStaleNamespaces();
  gwNs = await lab.addNs('v6gw');
  memberNs = await lab.addNs('v6n1');
  await lab.veth(gwNs, 'lan0', memberNs, 'eth0');
  await lab.addr(gwNs, 'lan0', '10.71.0.10/24');
  await lab.addr(gwNs, 'lan0', 'fd00:71::10/64');
  await lab.addr(memberNs, 'eth0', '10.71.0.11/24');
  await lab.addr(memberNs, 'eth0', 'fd00:71::11/64');
  await lab.addr(gwNs, 'lo', 'fd00:b::5/128');
  secrets = await makeSecretDir();
});

after(async () => {
  await lab.cleanup();
  await secrets?.remove();
});

/** A Ready v1 Node, as `kubectl get node -o json` shows it. */
function v1Node(name: string, poolName: string, addresses: string[], podCIDRs: string[]): unknown {
  return {
    apiVersion: 'v1',
    kind: 'Node',
    metadata: { name, labels: { [POOL_KEY]: poolName } },
    spec: { podCIDR: podCIDRs[0], podCIDRs },
    status: {
      addresses: [{ type: 'Hostname', address: name }, ...addresses.map((address) => ({ type: 'InternalIP', address }))],
      conditions: [{ type: 'Ready', status: 'True', lastTransitionTime: T0 }],
    },
  };
}

/** The Gateways the sync would write for these nodes (inventory + planner, the real code). */
function gateways(): Gateway[] {
  const nodes = inventoryFromNodeList({
    kind: 'NodeList',
    items: [
      v1Node('a-gw', 'a', ['10.71.0.10', 'fd00:71::10'], ['10.201.0.0/24', 'fd00:a::/64']),
      v1Node('a-n1', 'a', ['10.71.0.11', 'fd00:71::11'], ['10.201.1.0/24', 'fd00:a:1::/64']),
      v1Node('b-gw', 'b', ['10.72.0.10', 'fd00:72::10'], ['10.202.0.0/24', 'fd00:b::/64']),
    ],
  });
  const t = topology([pool('a', ['a-gw']), pool('b', ['b-gw'], { publicIPs: { 'b-gw': '192.0.2.2' } })]);
  return plan(input(t, nodes)).gateways;
}

async function ip6Table(): Promise<string> {
  return (await lab.exec(memberNs, ['ip', '-6', 'route', 'show', 'table', String(TABLE)])).stdout;
}

async function ip6RulesOfOurs(): Promise<string[]> {
  const rules = JSON.parse((await lab.exec(memberNs, ['ip', '-6', '-json', 'rule', 'show'])).stdout) as Array<{ priority: number; table: string }>;
  return rules.filter((r) => r.table === String(TABLE)).map((r) => `${r.priority} ${r.table}`);
}

async function ping6(to: string): Promise<boolean> {
  return (await lab.exec(memberNs, ['ping', '-6', '-c', '1', '-W', '1', to], { allowFail: true })).code === 0;
}

test('dual stack: the member routes the other pool\'s IPv6 pods via the gateway\'s IPv6 address; repaired; torn down', { skip, timeout: 60_000 }, async () => {
  const gws = gateways();
  const a = gws.find((g) => g.metadata.name === 'a')!;
  assert.deepEqual(a.status?.activeEndpoints?.map((e) => [e.nodeName, e.config?.['corvid.dev/private-ips']]), [['a-gw', '10.71.0.10,fd00:71::10']]);
  assert.equal(JSON.stringify(a.spec).includes('private-ips'), false, 'spec carries nothing from live nodes');

  const p = nodePlan({ gateways: gws, nodeName: 'a-n1', routeTable: TABLE, rulePriority: TABLE });
  assert.equal(p.role, 'member');
  assert.deepEqual(p.findings, []);
  assert.deepEqual(p.routes.map((r) => `${r.dst} via ${r.via}`), ['10.202.0.0/24 via 10.71.0.10', 'fd00:b::/64 via fd00:71::10']);

  // Nothing routes there yet.
  assert.equal(await ping6('fd00:b::5'), false);

  const member = new DatapathReconciler({ iproute: new Iproute({ table: TABLE, netns: memberNs }), secrets: new SecretReader(secrets!.dir), log: silentLogger });
  const first = await member.reconcile(p);
  assert.deepEqual(first.errors, []);
  assert.equal(first.viciChecked, false);
  assert.match(await ip6Table(), /^fd00:b::\/64 via fd00:71::10 dev eth0/m);
  assert.deepEqual(await ip6RulesOfOurs(), [`${TABLE} ${TABLE}`]);
  assert.equal(await ping6('fd00:b::5'), true, 'ping -6 from the member to the "pod" behind the gateway');

  // Steady state: nothing to do.
  assert.deepEqual((await member.reconcile(p)).ipChanges, []);

  // Drift: the IPv6 route deleted, then the IPv6 rule deleted; each is repaired by the next reconcile.
  await lab.exec(memberNs, ['ip', '-6', 'route', 'del', 'fd00:b::/64', 'table', String(TABLE)]);
  assert.equal(await ip6Table(), '');
  assert.equal(await ping6('fd00:b::5'), false);
  assert.deepEqual((await member.reconcile(p)).ipChanges, [`route replace fd00:b::/64 via fd00:71::10 table ${TABLE}`]);
  assert.match(await ip6Table(), /^fd00:b::\/64 via fd00:71::10 dev eth0/m);
  await lab.exec(memberNs, ['ip', '-6', 'rule', 'del', 'pref', String(TABLE), 'lookup', String(TABLE)]);
  assert.deepEqual((await member.reconcile(p)).ipChanges, [`rule add pref ${TABLE} lookup ${TABLE}`]);
  assert.equal(await ping6('fd00:b::5'), true);

  // A wrong next hop (changed by hand) is replaced.
  await lab.exec(memberNs, ['ip', '-6', 'route', 'replace', 'fd00:b::/64', 'via', 'fd00:71::99', 'table', String(TABLE)]);
  assert.deepEqual((await member.reconcile(p)).ipChanges, [`route replace fd00:b::/64 via fd00:71::10 table ${TABLE}`]);

  // Teardown removes the IPv6 route and rule with the rest; the main table keeps its own routes.
  const down = await member.teardown();
  assert.deepEqual(down.errors, []);
  assert.equal(await ip6Table(), '');
  assert.deepEqual(await ip6RulesOfOurs(), []);
  assert.deepEqual(await new Iproute({ table: TABLE, netns: memberNs }).read(), { routes: [], rules: [] });
  assert.match((await lab.exec(memberNs, ['ip', '-6', 'route', 'show'])).stdout, /^fd00:71::\/64 dev eth0/m);
  assert.equal(await ping6('fd00:b::5'), false);
});
