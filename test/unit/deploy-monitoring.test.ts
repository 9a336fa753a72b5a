// deploy/components/monitoring: the monitors scrape the ports and paths that serve /metrics, and every metric the
// dashboard and the alerts read is one the code registers, for the job that serves it (the registries are built here
// from the real metrics classes).
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { createMetrics } from '../../src/sync/metrics.ts';
import { AgentMetrics, serveHttp } from '../../src/agent/metrics.ts';
import { DEPLOY, REPO_ROOT, findObject, loadYamlFile, manifestsOf, which } from './deploy-support.ts';
import { matcherValue, selectorProblems, selectors, seriesNames } from './promql-names.ts';

const COMPONENT = join(DEPLOY, 'components', 'monitoring');
const kustomization = loadYamlFile(join(COMPONENT, 'kustomization.yaml'))[0].obj;
const monitors = manifestsOf('components/monitoring/monitors.yaml');
const rule = findObject(manifestsOf('components/monitoring/alerts.yaml'), 'PrometheusRule', 'corvid');
const dashboardFile = kustomization.configMapGenerator[0].files[0].replace(/^[^=]+=/, '');
const dashboard = JSON.parse(readFileSync(join(COMPONENT, dashboardFile), 'utf8'));

/** The series each scrape job serves, from the registries the sync (as the CLI builds it) and the agent create. */
const SERVED: Record<string, Set<string>> = {
  'corvid-sync': seriesNames(createMetrics({ defaultMetrics: true }).registry),
  'corvid-agent': seriesNames(new AgentMetrics({ defaultMetrics: true }).registry),
};

/** Every PromQL expression of the dashboard: panel targets and the templating queries. */
function dashboardExpressions(): string[] {
  const out: string[] = [];
  const walk = (v: unknown): void => {
    if (Array.isArray(v)) v.forEach(walk);
    else if (v !== null && typeof v === 'object') {
      for (const [k, x] of Object.entries(v)) {
        if (k === 'expr' && typeof x === 'string') out.push(x);
        else walk(x);
      }
    }
  };
  walk(dashboard.panels);
  for (const variable of dashboard.templating.list) {
    if (variable.type === 'query') out.push(typeof variable.query === 'string' ? variable.query : variable.query.query);
  }
  return out;
}

const ruleExpressions = (): string[] => rule.spec.groups.flatMap((g: { rules: { expr: string }[] }) => g.rules.map((r) => r.expr));

/** The job label a monitor's relabelings set. */
function jobOf(endpoint: { relabelings?: { targetLabel: string; replacement?: string; action?: string }[] }): string | undefined {
  return endpoint.relabelings?.find((r) => r.targetLabel === 'job' && (r.action ?? 'replace') === 'replace')?.replacement;
}

const containerOf = (file: string, name: string): any =>
  manifestsOf(file)[0].spec.template.spec.containers.find((c: { name: string }) => c.name === name);

describe('deploy/components/monitoring', () => {
  test('a Component with the monitors, the alerts and the dashboard ConfigMap for the Grafana sidecar', () => {
    assert.equal(kustomization.kind, 'Component');
    const [generator] = kustomization.configMapGenerator;
    assert.equal(generator.name, 'corvid-dashboard');
    assert.equal(generator.options.labels.grafana_dashboard, '1', 'the label the Grafana sidecar looks for, as a string');
    assert.equal(generator.options.disableNameSuffixHash, true);
    assert.equal(dashboard.uid, 'corvid');
    for (const o of [...monitors, rule]) {
      assert.equal(o.apiVersion, 'monitoring.coreos.com/v1');
      assert.equal(o.metadata.namespace, 'corvid-system');
    }
  });

  test('ServiceMonitor corvid-sync: the sync Service, its metrics port, /metrics, job corvid-sync', () => {
    const sm = findObject(monitors, 'ServiceMonitor', 'corvid-sync');
    const service = findObject(manifestsOf('base/sync-service.yaml'), 'Service', 'corvid-sync-metrics');
    for (const [k, v] of Object.entries(sm.spec.selector.matchLabels)) assert.equal(service.metadata.labels[k], v, `the Service has ${k}=${v}`);
    const [endpoint] = sm.spec.endpoints;
    assert.equal(endpoint.path, '/metrics');
    const port = service.spec.ports.find((p: { name: string }) => p.name === endpoint.port);
    assert.ok(port, `the Service has a port named ${endpoint.port}`);
    const sync = containerOf('base/sync-deployment.yaml', 'sync');
    const containerPort = sync.ports.find((p: { name: string }) => p.name === port.targetPort);
    assert.ok(containerPort, `the sync container has a port named ${port.targetPort}`);
    assert.ok(sync.args.includes(`--metrics-bind-address=:${containerPort.containerPort}`), 'the sync serves metrics on that port');
    assert.match(readFileSync(join(REPO_ROOT, 'src', 'sync', 'index.ts'), 'utf8'), /'GET \/metrics'/, 'the sync routes GET /metrics');
    assert.equal(jobOf(endpoint), 'corvid-sync');
  });

  test('PodMonitor corvid-agent: the agent pods, their metrics port, /metrics, job corvid-agent and the node', async () => {
    const pm = findObject(monitors, 'PodMonitor', 'corvid-agent');
    const ds = manifestsOf('base/agent-daemonset.yaml')[0];
    for (const [k, v] of Object.entries(pm.spec.selector.matchLabels)) assert.equal(ds.spec.template.metadata.labels[k], v, `the agent pods have ${k}=${v}`);
    const [endpoint] = pm.spec.podMetricsEndpoints;
    const agent = containerOf('base/agent-daemonset.yaml', 'agent');
    const containerPort = agent.ports.find((p: { name: string }) => p.name === endpoint.port);
    assert.ok(containerPort, `the agent container has a port named ${endpoint.port}`);
    assert.ok(agent.args.some((a: string) => a.startsWith('--metrics-addr=') && a.endsWith(`:${containerPort.containerPort}`)), 'the agent listens on that port');
    assert.equal(jobOf(endpoint), 'corvid-agent');
    assert.ok(endpoint.relabelings.some((r: { sourceLabels?: string[]; targetLabel: string }) => r.targetLabel === 'node' && r.sourceLabels?.[0] === '__meta_kubernetes_pod_node_name'));
    // The agent's own HTTP server answers the monitor's path.
    const http = await serveHttp('127.0.0.1:0', new AgentMetrics(), { healthy: () => true, ready: () => ({ ready: true }) });
    try {
      const res = await fetch(`http://127.0.0.1:${http.port}${endpoint.path}`);
      assert.equal(res.status, 200);
      assert.match(await res.text(), /^corvid_agent_apply_errors_total 0$/m);
    } finally {
      await http.close();
    }
  });

  test('the jobs the monitors set are the jobs the queries select', () => {
    const jobs = [jobOf(findObject(monitors, 'ServiceMonitor', 'corvid-sync').spec.endpoints[0]), jobOf(findObject(monitors, 'PodMonitor', 'corvid-agent').spec.podMetricsEndpoints[0])];
    assert.deepEqual(jobs.sort(), Object.keys(SERVED).sort());
  });

  test('every metric of every dashboard query is registered by the job it selects', () => {
    const exprs = dashboardExpressions();
    assert.ok(exprs.length >= 20, `only ${exprs.length} queries found`);
    const problems = exprs.flatMap((e) => selectorProblems(e, SERVED).map((p) => `${p}\n    in ${e}`));
    assert.deepEqual(problems, []);
  });

  test('every metric of every alert is registered by the job it selects', () => {
    const exprs = ruleExpressions();
    assert.ok(exprs.length >= 5);
    const problems = exprs.flatMap((e) => selectorProblems(e, SERVED).map((p) => `${p}\n    in ${e}`));
    assert.deepEqual(problems, []);
  });

  test('the dashboard shows the metrics an operator of the sync starts from', () => {
    const used = new Set(dashboardExpressions().flatMap((e) => selectors(e).map((s) => s.name)));
    for (const name of ['controller_runtime_reconcile_total', 'controller_runtime_reconcile_errors_total', 'controller_runtime_reconcile_time_seconds_bucket', 'workqueue_queue_duration_seconds_bucket', 'rest_client_requests_total', 'leader_election_master_status', 'corvid_tunnel_up']) {
      assert.ok(used.has(name), name);
    }
  });

  test('kustomize renders the component: the ConfigMap carries the dashboard and the sidecar label', { skip: which('kubectl') ? undefined : 'kubectl not on PATH' }, () => {
    const dir = mkdtempSync(join(tmpdir(), 'corvid-monitoring-'));
    try {
      writeFileSync(join(dir, 'kustomization.yaml'), `components: [${JSON.stringify(relative(dir, COMPONENT))}]\n`);
      const r = spawnSync(which('kubectl')!, ['kustomize', dir], { encoding: 'utf8', timeout: 60_000 });
      assert.equal(r.status, 0, r.stderr);
      const objs = parseAllDocuments(r.stdout).map((d) => d.toJS());
      assert.deepEqual(objs.map((o) => `${o.kind}/${o.metadata.name}`).sort(), ['ConfigMap/corvid-dashboard', 'PodMonitor/corvid-agent', 'PrometheusRule/corvid', 'ServiceMonitor/corvid-sync']);
      const cm = findObject(objs, 'ConfigMap', 'corvid-dashboard');
      assert.equal(cm.metadata.namespace, 'corvid-system');
      assert.equal(cm.metadata.labels.grafana_dashboard, '1');
      assert.deepEqual(JSON.parse(cm.data['corvid.json']), dashboard);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('the metric-name check can fail', () => {
  const problems = (e: string): string[] => selectorProblems(e, SERVED);

  test('a misspelt name, a histogram by its bare name, a metric of the other job, a selector without a job', () => {
    assert.deepEqual(problems('sum(rate(controller_runtime_reconcile_totl{job="corvid-sync"}[5m]))'), ['controller_runtime_reconcile_totl: not served by job "corvid-sync"']);
    assert.deepEqual(problems('rate(controller_runtime_reconcile_time_seconds{job="corvid-sync"}[5m])'), ['controller_runtime_reconcile_time_seconds: not served by job "corvid-sync"']);
    assert.deepEqual(problems('leader_election_master_status{job="corvid-agent"}'), ['leader_election_master_status: not served by job "corvid-agent"']);
    assert.deepEqual(problems('workqueue_depth'), ['workqueue_depth: no job="..." matcher']);
    assert.deepEqual(problems('vector(1)'), ['no metric in: vector(1)']);
  });

  test('selectors: functions, aggregations, grouping lists, strings, ranges, numbers, offsets and variables are not names', () => {
    const e =
      'histogram_quantile(0.99, sum by (le, pool) (rate(a_bucket{job="x",node=~"$node"}[$__rate_interval] offset 5m))) ' +
      '* on (pod) group_left () (b{job="x"} == bool 1e3) or label_replace(c, "dst", "$1", "src", "(.*)") unless {__name__="d",job="x"} ' +
      '/ ignoring (code) topk(5, e[1h:5m]) and count_values("version", f) > inf';
    assert.deepEqual(selectors(e).map((s) => s.name), ['a_bucket', 'b', 'c', 'd', 'e', 'f']);
    assert.equal(matcherValue(selectors(e)[0].matchers, 'job'), 'x');
    assert.deepEqual(selectors('label_values(corvid_routes{job="corvid-agent"}, node)').map((s) => s.name), ['corvid_routes']);
  });
});
