// The metrics of the sync and the agent as Prometheus scrapes them: every series whose labels are known in advance
// is there from the start at 0 (so rate() and alerts work before the first event), and events move them as
// controller-runtime and client-go would.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Registry } from 'prom-client';
import { CONTROLLER, RECONCILE_RESULTS, createMetrics } from '../../src/sync/metrics.ts';
import { WorkqueueMetrics } from '../../src/sync/workqueue-metrics.ts';
import { REJECT } from '../../src/reconcile/artifact.ts';
import { AgentMetrics } from '../../src/agent/metrics.ts';

/** The sample lines of a scrape (no comments). */
async function scrape(registry: Registry): Promise<string[]> {
  return (await registry.metrics()).split('\n').filter((l) => l !== '' && !l.startsWith('#'));
}

/** The value of the sample written exactly as `series` (name and labels in registration order). */
function value(lines: string[], series: string): number | undefined {
  const line = lines.find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

const Q = `name="${CONTROLLER}",controller="${CONTROLLER}"`;

describe('a fresh sync registry', () => {
  test('serves every reconcile result, the error counter and the reconcile time at 0', async () => {
    const lines = await scrape(createMetrics().registry);
    assert.ok(lines.includes('controller_runtime_reconcile_total{controller="gateway",result="error"} 0'), lines.join('\n'));
    for (const result of RECONCILE_RESULTS) {
      assert.equal(value(lines, `controller_runtime_reconcile_total{controller="gateway",result="${result}"}`), 0, result);
    }
    assert.equal(value(lines, 'controller_runtime_reconcile_errors_total{controller="gateway"}'), 0);
    assert.equal(value(lines, 'controller_runtime_reconcile_time_seconds_count{controller="gateway"}'), 0);
  });

  test('serves the work queue, the leader gauge and the corvid counters whose labels are known, at 0', async () => {
    const lines = await scrape(createMetrics({ leaseName: 'my-lease' }).registry);
    for (const name of ['workqueue_depth', 'workqueue_adds_total', 'workqueue_retries_total', 'workqueue_unfinished_work_seconds', 'workqueue_longest_running_processor_seconds']) {
      assert.equal(value(lines, `${name}{${Q}}`), 0, name);
    }
    for (const name of ['workqueue_queue_duration_seconds_count', 'workqueue_work_duration_seconds_count']) assert.equal(value(lines, `${name}{${Q}}`), 0, name);
    assert.equal(value(lines, 'leader_election_master_status{name="my-lease"}'), 0);
    for (const reason of Object.values(REJECT)) assert.equal(value(lines, `corvid_topology_rejected_total{reason="${reason}"}`), 0, reason);
    assert.equal(value(lines, 'corvid_sync_api_writes_total{verb="apply",resource="gateways"}'), 0);
    // Label values only known later: none yet.
    assert.ok(!lines.some((l) => /^(rest_client_requests_total|corvid_failover_total|corvid_gateway_active)\{/.test(l)));
  });

  test('leader_election_master_status names the default Lease', async () => {
    const m = createMetrics();
    m.setLeader(true);
    assert.equal(value(await scrape(m.registry), 'leader_election_master_status{name="corvid-sync-leader"}'), 1);
    m.setLeader(false);
    assert.equal(value(await scrape(m.registry), 'leader_election_master_status{name="corvid-sync-leader"}'), 0);
  });

  test('a pool gets its failover counter at 0 once planned', async () => {
    const m = createMetrics();
    m.notePools(['edge-a']);
    m.failoverTotal.inc({ pool: 'edge-b' });
    m.notePools(['edge-a', 'edge-b']);
    const lines = await scrape(m.registry);
    assert.equal(value(lines, 'corvid_failover_total{pool="edge-a"}'), 0);
    assert.equal(value(lines, 'corvid_failover_total{pool="edge-b"}'), 1, 'noting a pool again keeps its count');
  });
});

describe('recordReconcile labels a result as controller-runtime does', () => {
  test('success, requeue_after (the health timer armed), requeue, error', async () => {
    const m = createMetrics();
    m.recordReconcile({ result: 'success', durationMs: 20 });
    m.recordReconcile({ result: 'success', wakeAt: Date.now() + 40_000, durationMs: 30 });
    m.recordReconcile({ result: 'requeue', wakeAt: Date.now() + 40_000, durationMs: 10 });
    m.recordReconcile({ result: 'error', durationMs: 1500 });
    const lines = await scrape(m.registry);
    const total = (result: string): number | undefined => value(lines, `controller_runtime_reconcile_total{controller="gateway",result="${result}"}`);
    assert.deepEqual(RECONCILE_RESULTS.map(total), [1, 1, 1, 1]);
    assert.equal(value(lines, 'controller_runtime_reconcile_errors_total{controller="gateway"}'), 1);
    assert.equal(value(lines, 'controller_runtime_reconcile_time_seconds_count{controller="gateway"}'), 4);
    assert.equal(value(lines, 'controller_runtime_reconcile_time_seconds_sum{controller="gateway"}'), 1.56);
    assert.equal(value(lines, 'controller_runtime_reconcile_time_seconds_bucket{le="1",controller="gateway"}'), 3);
  });
});

describe('WorkqueueMetrics: the reconcile loop as a queue of one item', () => {
  test('triggers while it waits are one add; the wait and the work are timed; a retry is counted', async () => {
    const registry = new Registry();
    let nowMs = 1000;
    const q = new WorkqueueMetrics(registry, 'gateway', () => nowMs);
    q.add();
    nowMs += 25;
    q.add(); // a second trigger during the debounce: the same item
    let lines = await scrape(registry);
    assert.equal(value(lines, `workqueue_adds_total{${Q}}`), 1);
    assert.equal(value(lines, `workqueue_depth{${Q}}`), 1);

    nowMs += 5;
    q.start();
    nowMs += 2000;
    lines = await scrape(registry);
    assert.equal(value(lines, `workqueue_depth{${Q}}`), 0);
    assert.equal(value(lines, `workqueue_queue_duration_seconds_sum{${Q}}`), 0.03, 'first trigger -> start');
    assert.equal(value(lines, `workqueue_unfinished_work_seconds{${Q}}`), 2, 'read at scrape time');
    assert.equal(value(lines, `workqueue_longest_running_processor_seconds{${Q}}`), 2);

    q.add(); // an event while the reconcile runs queues the item again
    nowMs += 500;
    q.done();
    q.retry();
    lines = await scrape(registry);
    assert.equal(value(lines, `workqueue_work_duration_seconds_sum{${Q}}`), 2.5);
    assert.equal(value(lines, `workqueue_unfinished_work_seconds{${Q}}`), 0);
    assert.equal(value(lines, `workqueue_adds_total{${Q}}`), 2);
    assert.equal(value(lines, `workqueue_depth{${Q}}`), 1);
    assert.equal(value(lines, `workqueue_retries_total{${Q}}`), 1);
  });

  test('a start with nothing queued and a done without a start change nothing', async () => {
    const registry = new Registry();
    const q = new WorkqueueMetrics(registry, 'gateway', () => 0);
    q.start();
    q.done();
    const lines = await scrape(registry);
    assert.equal(value(lines, `workqueue_queue_duration_seconds_count{${Q}}`), 0);
    assert.equal(value(lines, `workqueue_work_duration_seconds_count{${Q}}`), 0);
  });
});

describe('a fresh agent registry', () => {
  test('serves its apply error counter at 0, and no tunnel series before a tunnel exists', async () => {
    const lines = await scrape(new AgentMetrics().registry);
    assert.equal(value(lines, 'corvid_agent_apply_errors_total'), 0);
    assert.ok(!lines.some((l) => l.startsWith('corvid_tunnel_')), lines.join('\n'));
  });
});
