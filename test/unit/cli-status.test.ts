import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { loadTopology } from '../../src/topology/index.ts';
import { parseSnapshot, planDesired } from '../../src/cli/inputs.ts';
import type { LiveState } from '../../src/cli/inputs.ts';
import { formatTable } from '../../src/cli/commands/status.ts';
import { candidateVerdicts, heartbeatTimeoutOf, statusReport, type CandidateVerdict } from '../../src/plan/index.ts';
import { buildGraph } from '../../src/graph/model.ts';
import { corvid, EXAMPLE, EXAMPLE_NODES, golden, NOW } from './cli-support.ts';

function liveState(): LiveState {
  const snap = parseSnapshot(readFileSync(EXAMPLE_NODES, 'utf8'));
  const r = loadTopology(readFileSync(EXAMPLE, 'utf8'), 'example.yaml');
  assert.ok(r.ok);
  const gateways = planDesired({ topology: r.topology, revision: 'main@sha1:0123456789abcdef0123456789abcdef01234567', nodes: snap.nodes, leases: [], previous: [], now: NOW }).gateways;
  const ready: Record<string, boolean> = {};
  for (const n of snap.nodes) ready[n.name] = n.ready;
  const fresh = '2026-11-20T09:59:58Z';
  return {
    nodes: snap.nodes,
    ready,
    gateways,
    leases: [
      { node: 'cloud-gw-1', renewTime: fresh, leaseDurationSeconds: 10, tunnels: { 'factory-lyon': { up: true, since: fresh }, 'store-berlin': { up: true, since: fresh }, 'warehouse-oslo': { up: false, since: fresh } } },
      { node: 'cloud-gw-2', renewTime: '2026-11-20T09:00:00Z', leaseDurationSeconds: 10 },
      { node: 'lyon-edge-1', renewTime: fresh, leaseDurationSeconds: 10, tunnels: { cloud: { up: true, since: fresh }, 'warehouse-oslo': { up: true, since: fresh } } },
      { node: 'oslo-gw-1', renewTime: fresh, leaseDurationSeconds: 10, tunnels: { cloud: { up: false, since: fresh } } },
    ],
  };
}

const topologies = [
  {
    name: 'edge-network',
    lastAppliedRevision: 'main@sha1:0123456789abcdef0123456789abcdef01234567',
    conditions: [{ type: 'Ready', status: 'True', reason: 'ReconciliationSucceeded', message: 'applied' }],
  },
];

test('status report: active, candidates with health, tunnels up/expected, conditions', () => {
  const report = statusReport(liveState(), topologies, NOW);
  const by = new Map(report.pools.map((p) => [p.pool, p]));
  const cloud = by.get('cloud')!;
  assert.deepEqual(cloud.active, ['cloud-gw-1']);
  assert.deepEqual(cloud.candidates, [
    { node: 'cloud-gw-1', active: true, health: 'ok' },
    { node: 'cloud-gw-2', active: false, health: 'stale' },
  ]);
  assert.equal(cloud.tunnelsExpected, 3);
  assert.equal(cloud.tunnelsUp, 2);
  assert.deepEqual(cloud.tunnelsDown, ['warehouse-oslo']);
  assert.deepEqual(cloud.conditions, ['TunnelsDown']);
  const berlin = by.get('store-berlin')!;
  assert.deepEqual(berlin.candidates.map((c) => `${c.node}:${c.health}`), ['berlin-gw-a:unreachable', 'berlin-gw-b:no-heartbeat']);
  assert.equal(by.get('factory-lyon')!.tunnelsUp, 2);
  assert.equal(by.get('factory-lyon')!.relay, 'cloud');
  assert.deepEqual(by.get('factory-lyon')!.conditions, []);
});

test('status table and wide table (golden), no colour off a TTY', () => {
  const report = statusReport(liveState(), topologies, NOW);
  const table = formatTable(report, false, false);
  assert.match(table, /^POOL {2,}ACTIVE {2,}CANDIDATES {2,}TUNNELS {2,}REVISION {2,}CONDITIONS\n/);
  assert.doesNotMatch(table, /\x1b/);
  golden('status-table.txt', table);
  golden('status-wide.txt', formatTable(report, true, false));
  assert.match(formatTable(report, false, true), /\x1b\[31m2\/3\x1b\[0m/);
});

test('status without a cluster says what to do', async () => {
  const r = await corvid(['status']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /set --kubeconfig or KUBECONFIG/);
  const bad = await corvid(['status', '-o', 'yaml']);
  assert.equal(bad.code, 2);
});

test('status judges candidates as the election does: the topology\'s heartbeat timeout, releases, datapath verdicts', () => {
  const state = liveState();
  const at = (s: number) => new Date(Date.parse(NOW) - s * 1000).toISOString().replace('.000Z', 'Z');
  // cloud-gw-2 renewed 50 s ago with a 40 s Lease: stale by the Lease, fresh by a topology that allows 60 s.
  state.leases = state.leases.map((l) => (l.node === 'cloud-gw-2' ? { node: 'cloud-gw-2', renewTime: at(50), leaseDurationSeconds: 40 } : l));
  const word = (topologyTimeout: number | undefined, node: string) => {
    const t = topologyTimeout === undefined ? topologies : [{ ...topologies[0], heartbeatTimeoutSeconds: topologyTimeout }];
    return statusReport(state, t, NOW).pools.flatMap((p) => p.candidates).find((c) => c.node === node)!.health;
  };
  assert.equal(word(undefined, 'cloud-gw-2'), 'stale', 'the default timeout (40 s)');
  assert.equal(word(60, 'cloud-gw-2'), 'ok', 'the topology says 60 s: the sync would elect it');
  state.leases = state.leases.map((l) => (l.node === 'cloud-gw-2' ? { ...l, renewTime: at(1), released: true } : l));
  assert.equal(word(undefined, 'cloud-gw-2'), 'released');
  state.leases = state.leases.map((l) => (l.node === 'cloud-gw-2' ? { node: 'cloud-gw-2', renewTime: at(1), leaseDurationSeconds: 3, datapathDown: 'IPv4 forwarding is off' } : l));
  assert.equal(word(undefined, 'cloud-gw-2'), 'datapath-down');
  // Healthy but yielding: its agent asks to hand over (a restarted charon), or the operator drained it.
  state.leases = state.leases.map((l) => (l.node === 'cloud-gw-2' ? { node: 'cloud-gw-2', renewTime: at(1), leaseDurationSeconds: 3, handoverWanted: 'charon restarted' } : l));
  assert.equal(word(undefined, 'cloud-gw-2'), 'handover-wanted');
  const nodesBefore = state.nodes;
  state.leases = state.leases.map((l) => (l.node === 'cloud-gw-2' ? { node: 'cloud-gw-2', renewTime: at(1), leaseDurationSeconds: 3 } : l));
  state.nodes = state.nodes.map((n) => (n.name === 'cloud-gw-2' ? { ...n, drained: true } : n));
  assert.equal(word(undefined, 'cloud-gw-2'), 'drained');
  state.nodes = nodesBefore;
  // The other candidate of its pool cannot reach it over their LAN: out; the same report from another pool's node
  // counts for nothing.
  const leasesBefore = state.leases;
  const reportBy = (reporter: string) =>
    leasesBefore
      .filter((l) => l.node !== reporter && l.node !== 'cloud-gw-2')
      .concat([{ node: 'cloud-gw-2', renewTime: at(1), leaseDurationSeconds: 40 }, { node: reporter, renewTime: at(1), leaseDurationSeconds: 40, unreachable: ['cloud-gw-2'] }]);
  const poolOf = (node: string) => state.gateways.find((g) => (g.spec.endpoints ?? []).some((e) => e.nodeName === node))?.metadata.name;
  const otherPoolCandidate = state.gateways.flatMap((g) => (g.spec.endpoints ?? []).map((e) => e.nodeName)).find((n) => poolOf(n) !== poolOf('cloud-gw-2'))!;
  state.leases = reportBy('cloud-gw-1');
  assert.equal(word(undefined, 'cloud-gw-2'), 'unreachable-in-pool');
  state.leases = reportBy(otherPoolCandidate);
  assert.equal(word(undefined, 'cloud-gw-2'), 'ok', `${otherPoolCandidate} is not a candidate of its pool`);
  // And the words agree with the election on these very inputs: no candidate it elects is reported out.
  const r = loadTopology(readFileSync(EXAMPLE, 'utf8'), 'example.yaml');
  assert.ok(r.ok);
  const planned = planDesired({ topology: r.topology, revision: 'main@sha1:0123456789abcdef0123456789abcdef01234567', nodes: state.nodes, leases: state.leases, previous: [], now: NOW });
  const report = statusReport({ ...state, gateways: planned.gateways }, topologies, NOW);
  for (const p of report.pools) {
    for (const c of p.candidates) {
      const out = !['ok', 'no-heartbeat'].includes(c.health);
      assert.ok(!(out && p.active.includes(c.node)), `${p.pool}: ${c.node} is active and reported ${c.health}`);
    }
  }
});

test('status, graph --live and the election agree on the same inputs (one verdict: plan/verdict.ts)', () => {
  const state = liveState();
  const at = (s: number) => new Date(Date.parse(NOW) - s * 1000).toISOString().replace('.000Z', 'Z');
  // lyon-edge-1 reports its tunnels all up, yet lyon-edge-2 cannot reach it over their LAN, and cloud-gw-1's charon
  // is dead: the election leaves both out, so status and the graph must too, whatever the tunnels say.
  state.leases = state.leases
    .filter((l) => l.node !== 'lyon-edge-2')
    .map((l) => (l.node === 'cloud-gw-1' ? { ...l, datapathDown: 'charon does not answer on its VICI socket' } : l))
    // Healthy but yielding (its charon restarted): both show it so, neither as out.
    .map((l) => (l.node === 'cloud-gw-2' ? { ...l, renewTime: at(1), handoverWanted: 'charon restarted' } : l))
    .concat([{ node: 'lyon-edge-2', renewTime: at(1), leaseDurationSeconds: 40, unreachable: ['lyon-edge-1'] }]);
  const report = statusReport(state, topologies, NOW);
  const verdicts = candidateVerdicts({ nodes: state.nodes, leases: state.leases, gateways: state.gateways, now: NOW, heartbeatTimeoutOf: (g) => heartbeatTimeoutOf(g, new Map()) });
  const byNode: Record<string, CandidateVerdict> = {};
  for (const v of verdicts.values()) for (const [n, x] of v) byNode[n] = x;
  const tunnels: Record<string, Record<string, boolean>> = {};
  for (const l of state.leases) if (l.tunnels) tunnels[l.node] = Object.fromEntries(Object.entries(l.tunnels).map(([p, t]) => [p, t.up]));
  const graph = buildGraph({ gateways: state.gateways, health: { ready: state.ready, verdicts: byNode, tunnels } });
  const drawn = new Map(graph.pools.flatMap((p) => p.gateways.map((g) => [g.node, g] as const)));
  const r = loadTopology(readFileSync(EXAMPLE, 'utf8'), 'example.yaml');
  assert.ok(r.ok);
  const elected = new Set(
    planDesired({ topology: r.topology, revision: 'r', nodes: state.nodes, leases: state.leases, previous: state.gateways, now: NOW }).gateways.flatMap((g) => (g.status?.activeEndpoints ?? []).map((e) => e.nodeName)),
  );
  for (const p of report.pools) {
    for (const c of p.candidates) {
      const g = drawn.get(c.node)!;
      const healthyInGraph = g.health === 'healthy' || g.health === 'degraded';
      assert.equal(healthyInGraph, ['ok', 'drained', 'handover-wanted'].includes(c.health), `${c.node}: status says ${c.health}, the graph ${g.health} (${g.healthDetail})`);
      if (elected.has(c.node)) assert.equal(c.health, 'ok', `${c.node} is elected but reported ${c.health}`);
    }
  }
  assert.equal(drawn.get('lyon-edge-1')!.health, 'unhealthy');
  assert.equal(drawn.get('lyon-edge-1')!.healthDetail, 'unreachable in its pool');
  assert.equal(drawn.get('cloud-gw-1')!.healthDetail, 'datapath down');
  assert.deepEqual([drawn.get('cloud-gw-2')!.health, drawn.get('cloud-gw-2')!.healthDetail], ['degraded', 'handover-wanted']);
  assert.equal(report.pools.flatMap((p) => p.candidates).find((c) => c.node === 'cloud-gw-2')!.health, 'handover-wanted');
  assert.ok(!elected.has('lyon-edge-1') && !elected.has('cloud-gw-1'));
});
