// Issue 15: a pool's memberRouting, the topology's memberVxlan, and what the Gateways publish for the agents.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { loadTopology } from '../../src/topology/index.ts';
import { decodeMemberVxlan, readGatewayLinks } from '../../src/gateway/annotations.ts';
import { MEMBER_ROUTING_ANNOTATION, MEMBER_VXLAN_ANNOTATION } from '../../src/gateway/keys.ts';
import { plan } from '../../src/plan/planner.ts';
import { doc, expectErrors, expectValid, FILE, pool } from './topology-helpers.ts';

const MEANING =
  "memberRouting direct routes a member's cross-pool traffic to its gateway's node address on the LAN, vxlan sends it to the gateway inside Corvid's VXLAN (spec.memberVxlan) so the network sees node addresses only, auto picks vxlan for a member whose gateway is not on-link";
const VXLAN = "members of pools with memberRouting vxlan or auto reach their gateway over a VXLAN of Corvid's own";

describe('topology: memberRouting and memberVxlan', () => {
  it('defaults to direct, keeping the canonical form of existing topologies', () => {
    const t = expectValid(doc({ pools: [pool('cloud'), pool('edge', 'memberRouting: direct')] }));
    assert.deepEqual(t.pools.map((p) => p.memberRouting), [undefined, undefined]);
    assert.equal(t.memberVxlan, undefined);
  });

  it('keeps vxlan and auto, and fills memberVxlan defaults where it is written', () => {
    const t = expectValid(doc({ other: 'memberVxlan: {vni: 77}', pools: [pool('cloud', 'memberRouting: vxlan'), pool('edge', 'memberRouting: auto')] }));
    assert.deepEqual(t.pools.map((p) => p.memberRouting), ['vxlan', 'auto']);
    assert.deepEqual(t.memberVxlan, { vni: 77, port: 4793 });
  });

  it('refuses an unknown mode through the schema', () => {
    const t = doc({ pools: [pool('cloud', 'memberRouting: overlay'), pool('edge')] });
    expectErrors(t, [['memberRouting: ^overlay', 'spec.pools[0].memberRouting', 'must be one of: direct, vxlan, auto']]);
  });

  it("refuses the CNIs' VNIs and ports, saying what the VXLAN is for", () => {
    const t = doc({ other: 'memberVxlan: {vni: 1, port: 4789}', pools: [pool('cloud', 'memberRouting: vxlan'), pool('edge')] });
    expectErrors(t, [
      ['vni: ^1', 'spec.memberVxlan.vni', `VNI 1 is flannel's; ${VXLAN}, and a device of the CNI's VNI on the same port would take its traffic; choose another (default 9027)`],
      ['port: ^4789', 'spec.memberVxlan.port', `UDP port 4789 is Calico's (and the IANA VXLAN port); ${VXLAN}, and sharing the port would mix its packets with the other's; choose another (default 4793)`],
    ]);
    const u = doc({ other: 'memberVxlan: {vni: 4096, port: 8472}', pools: [pool('cloud', 'memberRouting: vxlan'), pool('edge')] });
    const r = loadTopology(u, FILE);
    assert.equal(r.ok, false);
    if (!r.ok) assert.deepEqual(r.errors.map((e) => e.message.split(';')[0]), ["VNI 4096 is Calico's", "UDP port 8472 is flannel's (and the kernel's default)"]);
    // WireGuard's too (IKE's 500 is below the schema's 1024 already).
    for (const [port, whose] of [[51820, "WireGuard's (every gateway with WireGuard links listens on it)"]] as const) {
      const w = loadTopology(doc({ other: `memberVxlan: {port: ${port}}`, pools: [pool('cloud', 'memberRouting: vxlan'), pool('edge')] }), FILE);
      assert.equal(w.ok, false);
      if (!w.ok) assert.deepEqual(w.errors.map((e) => e.message.split(';')[0]), [`UDP port ${port} is ${whose}`]);
    }
  });

  it("refuses a gateway's publicPort equal to the VXLAN port in a pool that uses it, explaining the modes", () => {
    const t = doc({ other: 'memberVxlan: {port: 4600}', pools: [pool('cloud', 'memberRouting: auto', '[{node: g1, publicPort: 4600}]'), pool('edge', '', '[{node: g2, publicPort: 4600}]')] });
    expectErrors(t, [
      [
        'publicPort: ^4600',
        'spec.pools[0].gateways[0].publicPort',
        `is the member VXLAN's UDP port (spec.memberVxlan.port 4600), and pool cloud has memberRouting: auto (${MEANING}); a gateway cannot receive IKE and VXLAN on one port: change one of them, or use memberRouting: direct`,
      ],
    ]);
  });

  it('warns about memberVxlan that no pool uses', () => {
    const t = doc({ other: 'memberVxlan: {vni: 77}', pools: [pool('cloud'), pool('edge')] });
    expectValid(t, [['^memberVxlan', 'spec.memberVxlan', `no pool uses it: ${MEANING}; set memberRouting: vxlan or auto on a pool, or remove spec.memberVxlan`]]);
  });
});

describe('Gateway annotations: member routing', () => {
  const gateways = (text: string) => {
    const r = loadTopology(text, FILE);
    assert.ok(r.ok);
    return plan({ topology: r.topology, nodes: [], health: {}, previous: [], now: '2026-12-06T00:00:00Z', revision: 'r1' }).gateways;
  };

  it('publishes the mode and the VXLAN settings for vxlan and auto pools only, deterministically', () => {
    const text = doc({ other: 'memberVxlan: {vni: 77, port: 4600}', pools: [pool('cloud', 'memberRouting: vxlan'), pool('edge', 'memberRouting: auto'), pool('lan')] });
    const a = gateways(text);
    assert.deepEqual(a, gateways(text));
    const ann = Object.fromEntries(a.map((g) => [g.metadata.name, g.metadata.annotations ?? {}]));
    assert.equal(ann.cloud[MEMBER_ROUTING_ANNOTATION], 'vxlan');
    assert.equal(ann.cloud[MEMBER_VXLAN_ANNOTATION], '{"port":4600,"vni":77}');
    assert.equal(ann.edge[MEMBER_ROUTING_ANNOTATION], 'auto');
    assert.equal(ann.lan[MEMBER_ROUTING_ANNOTATION], undefined);
    assert.equal(ann.lan[MEMBER_VXLAN_ANNOTATION], undefined);
    const links = readGatewayLinks(a[0]);
    assert.equal(links.memberRouting, 'vxlan');
    assert.deepEqual(links.memberVxlan, { port: 4600, vni: 77 });
    assert.deepEqual(links.problems, []);
  });

  it('reads a malformed member routing as direct, with a problem', () => {
    const gw = (ann: Record<string, string>) => readGatewayLinks({ apiVersion: 'raven.openyurt.io/v1beta1', kind: 'Gateway', metadata: { name: 'p', annotations: ann } } as never);
    for (const [ann, problem] of [
      [{ [MEMBER_ROUTING_ANNOTATION]: 'tunnel', [MEMBER_VXLAN_ANNOTATION]: '{"port":1,"vni":2}' }, 'corvid.dev/member-routing: expected vxlan or auto'],
      [{ [MEMBER_ROUTING_ANNOTATION]: 'vxlan' }, 'corvid.dev/member-routing: present without corvid.dev/member-vxlan'],
      [{ [MEMBER_ROUTING_ANNOTATION]: 'vxlan', [MEMBER_VXLAN_ANNOTATION]: '{"port":0,"vni":2}' }, 'corvid.dev/member-vxlan: expected {"port": 1..65535, "vni": 1..16777215}'],
    ] as const) {
      const l = gw(ann);
      assert.equal(l.memberRouting, undefined);
      assert.deepEqual(l.problems, [problem]);
    }
    assert.deepEqual(decodeMemberVxlan('{"vni":9027,"port":4793}'), { ok: true, value: { port: 4793, vni: 9027 } });
  });
});
