// planViciActions: charon's state and the agent's memory against the node plan's tunnels -> the VICI actions, in order.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { describeAction, planViciActions, type ViciActual, type ViciMemory, type WantedConn } from '../../src/agent/vici-actions.ts';
import type { IkeSaInfo } from '../../src/agent/vici/index.ts';
import type { TunnelPlan } from '../../src/nodeplan/index.ts';

const NOW = 1_000_000;

function tunnel(peer: string, role: TunnelPlan['role'] = 'initiator'): TunnelPlan {
  return {
    name: `corvid-${peer}`,
    peerPool: peer,
    peerNode: `${peer}-gw-1`,
    role,
    localId: 'cloud.corvid',
    remoteId: `${peer}.corvid`,
    localAddr: '10.0.0.1',
    remoteAddr: '198.51.100.2',
    localTs: ['10.244.1.0/24'],
    remoteTs: ['10.244.2.0/24', '10.244.3.0/24'],
    ikeProposals: ['aes256-sha256-modp2048'],
    espProposals: ['aes256-sha256'],
    pskSecretRef: { name: 'psk', key: peer },
    relayed: [],
  };
}

function wanted(...ts: TunnelPlan[]): Map<string, WantedConn> {
  return new Map(ts.map((t) => [t.name, { tunnel: t, hash: `h-${t.name}`, fingerprint: `f-${t.name}` }]));
}

function sa(name: string, opts: { state?: string; child?: string; remoteTs?: string[] } = {}): IkeSaInfo {
  return {
    name,
    uniqueId: '1',
    state: opts.state ?? 'ESTABLISHED',
    initiator: true,
    natAny: false,
    children: [
      {
        name,
        uniqueId: '2',
        state: opts.child ?? 'INSTALLED',
        encap: false,
        bytesIn: 0,
        bytesOut: 0,
        packetsIn: 0,
        packetsOut: 0,
        localTs: ['10.244.1.0/24'],
        remoteTs: opts.remoteTs ?? ['10.244.2.0/24', '10.244.3.0/24'],
      },
    ],
  };
}

const NOTHING: ViciActual = { conns: [], keys: [], sas: [] };
const FORGETFUL: ViciMemory = { loaded: new Map(), loadedKeys: new Map(), tsBackoff: new Map() };
const OPTS = { retiring: [], holdInitiate: false, nowMs: NOW };

/** Every action of a result, as the agent reports them, removals first. */
function actions(r: ReturnType<typeof planViciActions>): string[] {
  return [...r.remove, ...r.connections.flatMap((c) => c.steps)].map(describeAction);
}

/** The memory of a process that loaded `want` itself. */
function remembering(want: Map<string, WantedConn>): ViciMemory {
  return {
    loaded: new Map([...want].map(([n, w]) => [n, w.hash])),
    loadedKeys: new Map([...want].map(([n, w]) => [n, w.fingerprint])),
    tsBackoff: new Map(),
  };
}

test('a new tunnel: its key, its config, then the initiation; a responder initiates nothing', () => {
  const want = wanted(tunnel('edge-b'), tunnel('edge-a', 'responder'));
  assert.deepEqual(actions(planViciActions(want, NOTHING, FORGETFUL, OPTS)), [
    'load-shared corvid-edge-a',
    'load-conn corvid-edge-a',
    'load-shared corvid-edge-b',
    'load-conn corvid-edge-b',
    'initiate corvid-edge-b',
  ]);
});

test('what is ours and no longer wanted: terminated before it is unloaded, and its key unloaded; a retiring tunnel stays', () => {
  const actual: ViciActual = { conns: ['corvid-old', 'corvid-retiring'], keys: ['corvid-old', 'corvid-retiring'], sas: [sa('corvid-old'), sa('corvid-retiring'), sa('corvid-orphan')] };
  const r = planViciActions(new Map(), actual, FORGETFUL, { ...OPTS, retiring: ['corvid-retiring'] });
  assert.deepEqual(actions(r), ['terminate corvid-old', 'unload-conn corvid-old', 'terminate corvid-orphan', 'unload-shared corvid-old']);
});

test('steady state: nothing to do, and the traffic-selector backoff is cleared', () => {
  const want = wanted(tunnel('edge-b'));
  const actual: ViciActual = { conns: ['corvid-edge-b'], keys: ['corvid-edge-b'], sas: [sa('corvid-edge-b')] };
  const r = planViciActions(want, actual, remembering(want), OPTS);
  assert.deepEqual(actions(r), []);
  assert.equal(r.connections[0].clearBackoff, true);
});

test('a changed config is loaded and the SA built from the old one is replaced; a changed key is loaded alone', () => {
  const want = wanted(tunnel('edge-b'));
  const actual: ViciActual = { conns: ['corvid-edge-b'], keys: ['corvid-edge-b'], sas: [sa('corvid-edge-b')] };
  const oldConfig: ViciMemory = { ...remembering(want), loaded: new Map([['corvid-edge-b', 'h-before']]) };
  assert.deepEqual(actions(planViciActions(want, actual, oldConfig, OPTS)), ['load-conn corvid-edge-b', 'terminate corvid-edge-b (config changed)', 'initiate corvid-edge-b']);
  const oldKey: ViciMemory = { ...remembering(want), loadedKeys: new Map([['corvid-edge-b', 'f-before']]) };
  assert.deepEqual(actions(planViciActions(want, actual, oldKey, OPTS)), ['load-shared corvid-edge-b']);
});

test('after an agent restart (nothing remembered) an SA with the planned traffic selectors is kept, one without them replaced', () => {
  const want = wanted(tunnel('edge-b'));
  const good: ViciActual = { conns: ['corvid-edge-b'], keys: ['corvid-edge-b'], sas: [sa('corvid-edge-b')] };
  assert.deepEqual(actions(planViciActions(want, good, FORGETFUL, OPTS)), ['load-shared corvid-edge-b', 'load-conn corvid-edge-b']);
  const narrow: ViciActual = { ...good, sas: [sa('corvid-edge-b', { remoteTs: ['10.244.2.0/24'] })] };
  assert.deepEqual(actions(planViciActions(want, narrow, FORGETFUL, OPTS)), [
    'load-shared corvid-edge-b',
    'load-conn corvid-edge-b',
    'terminate corvid-edge-b (config changed)',
    'initiate corvid-edge-b',
  ]);
});

test('an SA narrower than the plan: the initiator replaces it at once, then backs off 10 s doubling; the responder waits', () => {
  const want = wanted(tunnel('edge-b'));
  const narrow: ViciActual = { conns: ['corvid-edge-b'], keys: ['corvid-edge-b'], sas: [sa('corvid-edge-b', { remoteTs: ['10.244.2.0/24'] })] };
  const first = planViciActions(want, narrow, remembering(want), OPTS);
  assert.deepEqual(actions(first), ['terminate corvid-edge-b (traffic selectors differ from the plan)', 'initiate corvid-edge-b']);
  const step = first.connections[0].steps[0];
  assert.ok(step.op === 'terminate' && step.why === 'traffic selectors differ from the plan');
  assert.deepEqual(step.backoff, { count: 1, notBefore: NOW + 10_000 });
  assert.equal(first.connections[0].clearBackoff, false);

  const backedOff: ViciMemory = { ...remembering(want), tsBackoff: new Map([['corvid-edge-b', step.backoff]]) };
  assert.deepEqual(actions(planViciActions(want, narrow, backedOff, { ...OPTS, nowMs: NOW + 9_999 })), []);
  const second = planViciActions(want, narrow, backedOff, { ...OPTS, nowMs: NOW + 10_000 });
  const again = second.connections[0].steps[0];
  assert.ok(again.op === 'terminate' && again.why === 'traffic selectors differ from the plan');
  assert.deepEqual(again.backoff, { count: 2, notBefore: NOW + 10_000 + 20_000 });
  const capped: ViciMemory = { ...backedOff, tsBackoff: new Map([['corvid-edge-b', { count: 9, notBefore: 0 }]]) };
  const late = planViciActions(want, narrow, capped, OPTS).connections[0].steps[0];
  assert.ok(late.op === 'terminate' && late.why === 'traffic selectors differ from the plan');
  assert.equal(late.backoff.notBefore, NOW + 300_000);

  const responder = wanted(tunnel('edge-b', 'responder'));
  assert.deepEqual(actions(planViciActions(responder, narrow, remembering(responder), OPTS)), []);
});

test('a handshake in progress is not initiated again; holdInitiate loads but starts nothing', () => {
  const want = wanted(tunnel('edge-b'));
  const connecting: ViciActual = { conns: ['corvid-edge-b'], keys: ['corvid-edge-b'], sas: [sa('corvid-edge-b', { state: 'CONNECTING', child: 'CREATED' })] };
  assert.deepEqual(actions(planViciActions(want, connecting, remembering(want), OPTS)), []);
  assert.deepEqual(actions(planViciActions(want, NOTHING, FORGETFUL, { ...OPTS, holdInitiate: true })), ['load-shared corvid-edge-b', 'load-conn corvid-edge-b']);
});

test('the same inputs in another order give the same actions', () => {
  const a = wanted(tunnel('x'), tunnel('b'), tunnel('m'));
  const b = wanted(tunnel('m'), tunnel('x'), tunnel('b'));
  const actual: ViciActual = { conns: ['corvid-z', 'corvid-c'], keys: ['corvid-z', 'corvid-c'], sas: [sa('corvid-z'), sa('corvid-c')] };
  const reversed: ViciActual = { conns: ['corvid-c', 'corvid-z'], keys: ['corvid-c', 'corvid-z'], sas: [sa('corvid-c'), sa('corvid-z')] };
  assert.deepEqual(planViciActions(a, actual, FORGETFUL, OPTS), planViciActions(b, reversed, FORGETFUL, OPTS));
});

test('the peer pool has a new gateway: our SAs to the previous one carry traffic until ours to the new one is up (make before break)', () => {
  const t = tunnel('cloud');
  const want = wanted(t);
  const loadedBefore: ViciMemory = { ...remembering(want), loaded: new Map([[t.name, 'h-old']]) };
  const toPrevious = (uniqueId: string): IkeSaInfo => ({ ...sa(t.name), uniqueId, remoteHost: '198.51.100.9' });
  const toNew: IkeSaInfo = { ...sa(t.name), uniqueId: '7', remoteHost: t.remoteAddr };
  // The hand-over's first reconcile: the conn now names the new gateway; nothing is terminated before ours is up.
  const first = planViciActions(want, { conns: [t.name], keys: [t.name], sas: [toPrevious('3')] }, loadedBefore, OPTS);
  assert.deepEqual(actions(first), ['load-conn corvid-cloud', 'initiate corvid-cloud (then terminate IKE_SA 3 to the previous gateway)']);
  const initiate = first.connections[0].steps.at(-1)!;
  assert.ok(initiate.op === 'initiate' && initiate.replacing?.join() === '3');
  // That initiate failed (the new gateway had not loaded its side yet): the next reconcile tries again, the old SA still up.
  assert.deepEqual(actions(planViciActions(want, { conns: [t.name], keys: [t.name], sas: [toPrevious('3')] }, remembering(want), OPTS)), [
    'initiate corvid-cloud (then terminate IKE_SA 3 to the previous gateway)',
  ]);
  // Ours is up but the old ones are still there (their terminate failed): they go now, by id, ours stays.
  const both = planViciActions(want, { conns: [t.name], keys: [t.name], sas: [toPrevious('3'), toPrevious('5'), toNew] }, remembering(want), OPTS);
  assert.deepEqual(actions(both), ['terminate corvid-cloud (replaced: the peer pool has a new gateway)']);
  const step = both.connections[0].steps[0];
  assert.ok(step.op === 'terminate' && step.why === 'replaced: the peer pool has a new gateway' && step.ikeIds.join() === '3,5');
  // A responder never dials: SAs from another address are simply its peer's.
  const resp = tunnel('edge-a', 'responder');
  const wantR = wanted(resp);
  assert.deepEqual(actions(planViciActions(wantR, { conns: [resp.name], keys: [resp.name], sas: [{ ...sa(resp.name), remoteHost: '203.0.113.5' }] }, remembering(wantR), OPTS)), []);
  // The same address with another config (proposals, selectors): replaced as before, terminate first.
  assert.deepEqual(actions(planViciActions(want, { conns: [t.name], keys: [t.name], sas: [toNew] }, loadedBefore, OPTS)), [
    'load-conn corvid-cloud',
    'terminate corvid-cloud (config changed)',
    'initiate corvid-cloud',
  ]);
});
