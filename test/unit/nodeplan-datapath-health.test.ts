// The agent's verdict on its own node (src/nodeplan/datapath-health.ts) and how the sync reads it off the Lease.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CHARON_PROBE_FAILURES_DOWN, datapathDownReason, needsCharon } from '../../src/nodeplan/datapath-health.ts';
import type { NodePlan } from '../../src/nodeplan/index.ts';
import { DATAPATH_REASON_MAX, heartbeatFromLease } from '../../src/adapters/kube/leases.ts';
import { DATAPATH_DOWN_ANNOTATION } from '../../src/gateway/keys.ts';

const V4_ON = [{ family: 4 as const, value: '1' }];

test('charon: one failed probe is a restart in progress, two in a row mean the node cannot forward', () => {
  assert.equal(CHARON_PROBE_FAILURES_DOWN, 2);
  assert.equal(datapathDownReason({ charonFailures: 0, forwarding: V4_ON }), undefined);
  assert.equal(datapathDownReason({ charonFailures: 1, forwarding: V4_ON }), undefined);
  assert.equal(datapathDownReason({ charonFailures: 2, forwarding: V4_ON }), 'charon does not answer on its VICI socket');
  assert.equal(datapathDownReason({ forwarding: V4_ON }), undefined, 'no IPsec: charon is not asked about');
});

test('forwarding: off in either family says so; a sysctl that could not be read is no verdict', () => {
  assert.equal(datapathDownReason({ forwarding: [{ family: 4, value: '0' }] }), 'IPv4 forwarding is off');
  assert.equal(datapathDownReason({ forwarding: [{ family: 4, value: '1' }, { family: 6, value: '0' }] }), 'IPv6 forwarding is off');
  assert.equal(
    datapathDownReason({ charonFailures: 5, forwarding: [{ family: 4, value: '0' }, { family: 6, value: '0' }] }),
    'charon does not answer on its VICI socket; IPv4 and IPv6 forwarding is off',
  );
  assert.equal(datapathDownReason({ forwarding: [{ family: 4, value: undefined }] }), undefined);
});

test('charon is needed when any pool this node reaches is reached over IPsec (first hop), not for WireGuard or none', () => {
  const plan = (...backends: Array<'ipsec' | 'wireguard' | 'none'>) => ({ reach: backends.map((backend, i) => ({ pool: `p${i}`, path: 'direct', backend })) }) as unknown as NodePlan;
  assert.equal(needsCharon(plan('ipsec')), true);
  assert.equal(needsCharon(plan('wireguard', 'ipsec')), true);
  assert.equal(needsCharon(plan('wireguard', 'none')), false);
  assert.equal(needsCharon(plan()), false, 'a node that reaches no pool');
});

test('the sync reads the verdict off the Lease annotation: any value is "down", the text is bounded', () => {
  const lease = (annotations?: Record<string, string>) => ({ metadata: { name: 'gw', ...(annotations ? { annotations } : {}) }, spec: { holderIdentity: 'gw' } });
  assert.equal(heartbeatFromLease(lease())?.datapathDown, undefined);
  assert.equal(heartbeatFromLease(lease({ [DATAPATH_DOWN_ANNOTATION]: 'IPv4 forwarding is off' }))?.datapathDown, 'IPv4 forwarding is off');
  assert.equal(heartbeatFromLease(lease({ [DATAPATH_DOWN_ANNOTATION]: '' }))?.datapathDown, 'datapath down');
  assert.equal(heartbeatFromLease(lease({ [DATAPATH_DOWN_ANNOTATION]: 'x'.repeat(5000) }))?.datapathDown?.length, DATAPATH_REASON_MAX);
});
