import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { loadTopology } from '../../src/topology/index.ts';
import { parseSnapshot, planDesired } from '../../src/cli/inputs.ts';
import { computeImpact, formatImpact, impactIsEmpty } from '../../src/diff/impact.ts';
import type { Gateway } from '../../src/gateway/types.ts';
import type { InventoryNode } from '../../src/plan/index.ts';
import { EXAMPLE, EXAMPLE_NODES, NOW } from './cli-support.ts';

const exampleText = readFileSync(EXAMPLE, 'utf8');
const snapshot = parseSnapshot(readFileSync(EXAMPLE_NODES, 'utf8'));

function planOf(text: string, nodes: InventoryNode[] = snapshot.nodes, previous: Gateway[] = []): Gateway[] {
  const r = loadTopology(text, 'example.yaml');
  assert.ok(r.ok, JSON.stringify(!r.ok && r.errors));
  return planDesired({ topology: r.topology, revision: 'r1', nodes, leases: [], previous, now: NOW }).gateways;
}

const before = planOf(exampleText);

test('no change, no impact', () => {
  const i = computeImpact(before, planOf(exampleText, snapshot.nodes, before));
  assert.ok(impactIsEmpty(i), JSON.stringify(i));
  assert.equal(formatImpact(i), 'Impact:\n  none: no change to elections, tunnels, routes or connectivity\n');
  assert.equal(i.tunnelsBefore, 5);
});

test('a pool losing its last healthy gateway: election, tunnels, routes and connectivity', () => {
  const nodes = snapshot.nodes.map((n) => (n.name === 'berlin-gw-b' ? { ...n, ready: false } : n));
  const i = computeImpact(before, planOf(exampleText, nodes, before));
  assert.deepEqual(i.activeChanges, [{ pool: 'store-berlin', from: ['berlin-gw-b'], to: [] }]);
  assert.deepEqual(i.tunnelsRemoved, [['cloud', 'store-berlin'], ['store-berlin', 'warehouse-oslo']]);
  assert.deepEqual(i.connectivityLost, [['cloud', 'store-berlin'], ['store-berlin', 'warehouse-oslo']]);
  assert.ok(i.routeNodes.length > 0);
  const text = formatImpact(i);
  assert.match(text, /active gateway of store-berlin: berlin-gw-b → none/);
  assert.match(text, /tunnels: 5 → 3\n    removed \(2\): cloud ↔ store-berlin, store-berlin ↔ warehouse-oslo/);
  assert.match(text, /connectivity LOST \(2\): cloud ↔ store-berlin, store-berlin ↔ warehouse-oslo/);
  assert.match(text, /routes change on \d+ of 10 nodes/);
});

test('an encryption change re-keys exactly the tunnels it touches', () => {
  const changed = exampleText.replace('espProposals: [aes256-sha384]', 'espProposals: [aes256gcm16]');
  assert.notEqual(changed, exampleText);
  const i = computeImpact(before, planOf(changed, snapshot.nodes, before));
  assert.deepEqual(
    i.tunnelsChanged.map((t) => [t.pools, t.changes]),
    [
      [['cloud', 'store-berlin'], ['encryption']],
      [['store-berlin', 'warehouse-oslo'], ['encryption']],
    ],
  );
  assert.deepEqual(i.tunnelsAdded, []);
  assert.deepEqual(i.connectivityLost, []);
  assert.deepEqual(i.routeNodes, []);
  assert.match(formatImpact(i), /re-keyed, new encryption \(2\): cloud ↔ store-berlin, store-berlin ↔ warehouse-oslo/);
});

test('a new deny rule removes the tunnel and the connectivity of that pair only', () => {
  const changed = exampleText.replace(
    '      - action: deny\n        pools: [store-berlin, factory-lyon]',
    '      - action: deny\n        pools: [store-berlin, factory-lyon]\n      - action: deny\n        pools: [cloud, warehouse-oslo]',
  );
  assert.notEqual(changed, exampleText);
  const i = computeImpact(before, planOf(changed, snapshot.nodes, before));
  assert.deepEqual(i.tunnelsRemoved, [['cloud', 'warehouse-oslo']]);
  assert.deepEqual(i.connectivityLost, [['cloud', 'warehouse-oslo']]);
  assert.deepEqual(i.activeChanges, []);
});

test('removing a pool is reported as such, not as lost pairs', () => {
  const r = loadTopology(exampleText, 'example.yaml');
  assert.ok(r.ok);
  const after = before.filter((g) => g.metadata.name !== 'warehouse-oslo');
  const i = computeImpact(before, after);
  assert.deepEqual(i.poolsRemoved, ['warehouse-oslo']);
  assert.deepEqual(i.connectivityLost, []);
  assert.match(formatImpact(i), /pools removed \(1\): warehouse-oslo \(their Gateways are deleted\)/);
});
