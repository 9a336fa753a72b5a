// test/support/apiserver-writes.ts: the API server's own count of write requests, read from its /metrics.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CONTENT_TYPE, kubeRequest } from '../../src/adapters/kube/client.ts';
import { ensureNamespace, useControlPlane } from '../support/controlplane.ts';
import { parseSamples, readWrites, readWritesAtLeast, sumWrites, writesBetween } from '../support/apiserver-writes.ts';

const cp = useControlPlane();

const NS = 'apiserver-writes';
const LEASES = '/apis/coordination.k8s.io/v1/namespaces/apiserver-writes/leases';
const KEY = 'leases.coordination.k8s.io';

test('parseSamples reads labels in any order, escaped values and timestamps; sumWrites keeps the write verbs', () => {
  const text = [
    '# HELP apiserver_request_total [ALPHA] Counter of apiserver requests',
    '# TYPE apiserver_request_total counter',
    'apiserver_request_total{verb="PATCH",resource="leases",group="coordination.k8s.io",subresource="",dry_run=""} 3',
    'apiserver_request_total{group="",resource="events",verb="POST",dry_run="All",odd="a \\"quoted\\", {braced} \\\\ value"} 2 1700000000000',
    'apiserver_request_total{group="",resource="events",verb="LIST"} 40',
    'apiserver_request_total{group="raven.openyurt.io",resource="gateways",subresource="status",verb="APPLY"} 1e0',
    'apiserver_request_total{group="",resource="",subresource="/readyz",verb="GET"} 7',
    'apiserver_request_total_other{verb="POST",resource="x"} 100',
  ].join('\n');
  const samples = parseSamples(text, 'apiserver_request_total');
  assert.equal(samples.length, 5);
  assert.equal(samples[1].labels.odd, 'a "quoted", {braced} \\ value');
  assert.equal(samples[1].value, 2);
  assert.deepEqual(sumWrites(samples), {
    total: 6,
    dryRun: 2,
    byResource: { [KEY]: 3, events: 2, 'gateways.raven.openyurt.io/status': 1 },
  });
});

test('counts exactly the Lease writes made (create, 3 merge patches, 1 dry run, delete), not the reads', { skip: cp.skip }, async () => {
  const kc = cp.get().kubeConfig;
  await ensureNamespace(kc, NS);
  const leases = (w: { byResource: Record<string, number> }): number => w.byResource[KEY] ?? 0;
  const before = await readWrites(kc);

  await kubeRequest(kc, { method: 'POST', path: LEASES, body: { apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: { name: 'one' }, spec: { holderIdentity: 'a' } } });
  for (const holder of ['b', 'c', 'd']) {
    await kubeRequest(kc, { method: 'PATCH', path: `${LEASES}/one`, body: { spec: { holderIdentity: holder } }, contentType: CONTENT_TYPE.mergePatch });
  }
  await kubeRequest(kc, { method: 'PATCH', path: `${LEASES}/one`, query: { dryRun: 'All' }, body: { spec: { holderIdentity: 'never' } }, contentType: CONTENT_TYPE.mergePatch });
  // Reads: none of these may count.
  const read = await kubeRequest(kc, { method: 'GET', path: `${LEASES}/one` });
  assert.equal(read.spec.holderIdentity, 'd');
  await kubeRequest(kc, { method: 'GET', path: LEASES });
  await kubeRequest(kc, { method: 'DELETE', path: `${LEASES}/one` });

  const want = 6;
  await readWritesAtLeast(kc, (w) => leases(w) >= leases(before) + want);
  // A moment more, so that a counter bumped late (or a read counted as a write) shows up.
  await new Promise((r) => setTimeout(r, 300));
  const d = writesBetween(before, await readWrites(kc));
  assert.equal(leases(d), want, `Lease writes counted: ${JSON.stringify(d.byResource)}`);
  assert.equal(d.dryRun, 1, 'the one dry run');
  assert.ok(d.total >= want, `total ${d.total} covers the Lease writes`);
});
