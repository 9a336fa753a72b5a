import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parse } from 'yaml';
import { inventoryFromNode, inventoryFromNodeList, InventoryError, isIP } from '../../src/plan/inventory.ts';

const NODE_YAML = `
apiVersion: v1
kind: Node
metadata:
  name: lyon-edge-1
  labels:
    topology.corvid.dev/pool: factory-lyon
    kubernetes.io/hostname: lyon-edge-1
  annotations:
    corvid.dev/public-ip: " 198.51.100.7 "
    corvid.dev/drain: "true"
    unrelated: "x"
spec:
  podCIDR: 10.244.1.0/24
  podCIDRs: [10.244.1.0/24, "fd00:10:244:1::/64"]
  unschedulable: true
status:
  addresses:
    - {type: Hostname, address: lyon-edge-1}
    - {type: ExternalIP, address: 198.51.100.7}
    - {type: InternalIP, address: 192.168.1.10}
    - {type: InternalIP, address: "fd00::10"}
  conditions:
    - {type: MemoryPressure, status: "False", lastTransitionTime: "2026-01-01T00:00:00Z"}
    - {type: Ready, status: "True", lastTransitionTime: "2026-01-01T00:05:00Z"}
`;

test('every field from a kubectl -o yaml Node', () => {
  assert.deepEqual(inventoryFromNode(parse(NODE_YAML)), {
    name: 'lyon-edge-1',
    labels: { 'topology.corvid.dev/pool': 'factory-lyon', 'kubernetes.io/hostname': 'lyon-edge-1' },
    ready: true,
    readySince: '2026-01-01T00:05:00Z',
    internalIP: '192.168.1.10',
    internalIPOtherFamily: 'fd00::10',
    podCIDRs: ['10.244.1.0/24', 'fd00:10:244:1::/64'],
    unschedulable: true,
    publicIP: '198.51.100.7',
    drained: true,
  });
});

const internal = (...addresses: string[]) => ({
  metadata: { name: 'n' },
  status: { addresses: [{ type: 'ExternalIP', address: '2001:db8::99' }, ...addresses.map((address) => ({ type: 'InternalIP', address }))] },
});

test('dual stack: the first InternalIP stays internalIP; the first of the other family is internalIPOtherFamily', () => {
  const pick = (...a: string[]) => {
    const n = inventoryFromNode(internal(...a));
    return [n.internalIP, n.internalIPOtherFamily];
  };
  assert.deepEqual(pick('10.0.0.1', 'fd00::1', 'fd00::2'), ['10.0.0.1', 'fd00::1']);
  assert.deepEqual(pick('10.0.0.1', '10.0.0.2', 'fd00::2', 'fd00::3'), ['10.0.0.1', 'fd00::2']);
  // IPv6-primary: the other family is IPv4.
  assert.deepEqual(pick('fd00::1', '10.0.0.9', '10.0.0.1'), ['fd00::1', '10.0.0.9']);
});

test('single stack: no internalIPOtherFamily (and the node reads exactly as before)', () => {
  for (const a of [['10.0.0.1'], ['10.0.0.1', '10.0.0.2'], ['fd00::1', 'fd00::2'], []]) {
    const n = inventoryFromNode(internal(...a));
    assert.equal('internalIPOtherFamily' in n, false, a.join(','));
    assert.equal(n.internalIP, a[0]);
  }
  // An ExternalIP of the other family is not an InternalIP; a first InternalIP that is no address has no family.
  assert.equal(inventoryFromNode(internal('10.0.0.1')).internalIPOtherFamily, undefined);
  assert.deepEqual(inventoryFromNode(internal('node-1.example', 'fd00::1')).internalIPOtherFamily, undefined);
  // An unusable address of the other family is skipped.
  assert.equal(inventoryFromNode(internal('10.0.0.1', 'fd00::zz', 'fd00::5')).internalIPOtherFamily, 'fd00::5');
});

test('podCIDR is used when podCIDRs is absent; no CIDR at all gives []', () => {
  assert.deepEqual(inventoryFromNode({ metadata: { name: 'a' }, spec: { podCIDR: '10.0.0.0/24' } }).podCIDRs, ['10.0.0.0/24']);
  assert.deepEqual(inventoryFromNode({ metadata: { name: 'a' }, spec: { podCIDRs: [], podCIDR: '10.0.0.0/24' } }).podCIDRs, ['10.0.0.0/24']);
  assert.deepEqual(inventoryFromNode({ metadata: { name: 'a' } }).podCIDRs, []);
});

test('a bare Node: not ready, no IP, not drained, schedulable', () => {
  assert.deepEqual(inventoryFromNode({ metadata: { name: 'bare' } }), {
    name: 'bare',
    labels: {},
    ready: false,
    podCIDRs: [],
    unschedulable: false,
    drained: false,
  });
});

test('Ready False or Unknown is not ready, but its transition time is kept; Unknown (kubelet not heard from) is told apart', () => {
  for (const status of ['False', 'Unknown']) {
    const n = inventoryFromNode({
      metadata: { name: 'a' },
      status: { conditions: [{ type: 'Ready', status, lastTransitionTime: '2026-01-01T00:00:00Z' }] },
    });
    assert.equal(n.ready, false);
    assert.equal(n.readySince, '2026-01-01T00:00:00Z');
    assert.equal(n.readyUnknown, status === 'Unknown' ? true : undefined);
  }
});

test('drain only when the annotation is exactly "true"', () => {
  for (const v of ['True', '1', 'yes', '']) {
    assert.equal(inventoryFromNode({ metadata: { name: 'a', annotations: { 'corvid.dev/drain': v } } }).drained, false, v);
  }
});

test('@kubernetes/client-node V1Node: Date timestamps become RFC 3339', () => {
  const n = inventoryFromNode({
    metadata: { name: 'a' },
    status: { conditions: [{ type: 'Ready', status: 'True', lastTransitionTime: new Date('2026-01-01T00:05:00Z') }] },
  });
  assert.equal(n.readySince, '2026-01-01T00:05:00Z');
});

test('a Node without a name, or of another kind, is an InventoryError', () => {
  assert.throws(() => inventoryFromNode({ metadata: {} }), InventoryError);
  assert.throws(() => inventoryFromNode('node'), InventoryError);
  assert.throws(() => inventoryFromNode({ kind: 'Pod', metadata: { name: 'p' } }), /expected a Node/);
});

test('inventoryFromNodeList: List, NodeList, bare array, single Node', () => {
  const node = parse(NODE_YAML);
  const list = { apiVersion: 'v1', kind: 'List', items: [node, { kind: 'Node', metadata: { name: 'b' } }] };
  assert.deepEqual(inventoryFromNodeList(list).map((n) => n.name), ['lyon-edge-1', 'b']);
  assert.deepEqual(inventoryFromNodeList({ ...list, kind: 'NodeList' }).map((n) => n.name), ['lyon-edge-1', 'b']);
  assert.deepEqual(inventoryFromNodeList([node]).map((n) => n.name), ['lyon-edge-1']);
  assert.deepEqual(inventoryFromNodeList(node).map((n) => n.name), ['lyon-edge-1']);
  assert.deepEqual(inventoryFromNodeList({ kind: 'List', items: [] }), []);
});

test('inventoryFromNodeList names the bad item', () => {
  assert.throws(() => inventoryFromNodeList({ kind: 'List', items: [{ metadata: { name: 'a' } }, { kind: 'Pod', metadata: { name: 'p' } }] }), /items\[1\]: expected a Node/);
  assert.throws(() => inventoryFromNodeList({ kind: 'PodList', items: [] }), /List or NodeList/);
});

test('isIP accepts IPv4 and IPv6 text forms only', () => {
  for (const ok of ['203.0.113.10', '0.0.0.0', '::', '::1', 'fd00::10', '2001:db8::1:2', '1:2:3:4:5:6:7:8', '::ffff:192.0.2.1', '64:ff9b::192.0.2.33']) {
    assert.equal(isIP(ok), true, ok);
  }
  for (const bad of ['', '256.1.1.1', '1.2.3', '01.2.3.4', 'example.com', '1:2:3:4:5:6:7:8:9', '1::2::3', ':1', 'fe80::1%eth0', '1.2.3.4/24', '12345::']) {
    assert.equal(isIP(bad), false, bad);
  }
});
