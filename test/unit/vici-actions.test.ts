// planViciActions: charon's state and the agent's memory against the node plan's tunnels -> the VICI actions, in order.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { describeAction, planViciActions, PEER_CHILD_WAIT_S, PREDECESSOR_GRACE_S, type ViciActual, type ViciMemory, type WantedTunnel } from '../../src/agent/vici-actions.ts';
import type { IkeSaInfo } from '../../src/agent/vici/index.ts';
import type { TunnelPlan } from '../../src/nodeplan/index.ts';

const NOW = 1_000_000;

/** The tunnel to pool `peer`, whose candidates are `<peer>-gw-1` (active unless told) and `<peer>-gw-2`. */
function tunnel(peer: string, role: TunnelPlan['role'] = 'initiator', active = `${peer}-gw-1`): TunnelPlan {
  const name = `corvid-${peer}`;
  return {
    name,
    peerPool: peer,
    peerNode: active,
    role,
    localId: 'cloud-gw-1.cloud.node.corvid',
    remoteId: `${active}.${peer}.node.corvid`,
    localAddr: '10.0.0.1',
    remoteAddr: '198.51.100.2',
    localTs: ['10.244.1.0/24'],
    remoteTs: ['10.244.2.0/24', '10.244.3.0/24'],
    ikeProposals: ['aes256-sha256-modp2048'],
    espProposals: ['aes256-sha256'],
    pskSecretRef: { name: 'psk', key: peer },
    relayed: [],
    peers: [1, 2].map((i) => ({ node: `${peer}-gw-${i}`, conn: `${name}@${peer}-gw-${i}`, id: `${peer}-gw-${i}.${peer}.node.corvid`, addr: `198.51.100.${i + 1}` })),
  };
}

function wanted(...ts: TunnelPlan[]): Map<string, WantedTunnel> {
  return new Map(ts.map((t) => [t.name, { tunnel: t, conns: t.peers.map((peer) => ({ peer, hash: `h-${peer.conn}` })), fingerprint: `f-${t.name}` }]));
}

/** An IKE_SA of connection `ike` (`corvid-<pool>@<node>`) with the tunnel's CHILD_SA, unless `childless`. */
function sa(ike: string, o: { state?: string; child?: string; remoteTs?: string[]; id?: string; childless?: boolean; installTime?: number; established?: number } = {}): IkeSaInfo {
  const child = ike.slice(0, ike.indexOf('@'));
  return {
    name: ike,
    uniqueId: o.id ?? '1',
    state: o.state ?? 'ESTABLISHED',
    initiator: true,
    natAny: false,
    established: o.established ?? 100,
    children: o.childless
      ? []
      : [
          {
            name: child,
            uniqueId: '2',
            state: o.child ?? 'INSTALLED',
            encap: false,
            bytesIn: 0,
            bytesOut: 0,
            packetsIn: 0,
            packetsOut: 0,
            installTime: o.installTime ?? 100,
            localTs: ['10.244.1.0/24'],
            remoteTs: o.remoteTs ?? ['10.244.2.0/24', '10.244.3.0/24'],
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
function remembering(want: Map<string, WantedTunnel>): ViciMemory {
  return {
    loaded: new Map([...want.values()].flatMap((w) => w.conns.map((c) => [c.peer.conn, c.hash] as const))),
    loadedKeys: new Map([...want].map(([n, w]) => [n, w.fingerprint])),
    tsBackoff: new Map(),
  };
}

/** charon holding what `want` loaded, and these SAs. */
function holding(want: Map<string, WantedTunnel>, ...sas: IkeSaInfo[]): ViciActual {
  return { conns: [...want.values()].flatMap((w) => w.conns.map((c) => c.peer.conn)), keys: [...want.keys()], sas };
}

test('a new tunnel: its key, a connection per candidate of the peer pool, then the active one initiated; a responder initiates nothing', () => {
  const want = wanted(tunnel('edge-b'), tunnel('edge-a', 'responder'));
  const r = planViciActions(want, NOTHING, FORGETFUL, OPTS);
  assert.deepEqual(actions(r), [
    'load-shared corvid-edge-a',
    'load-conn corvid-edge-a@edge-a-gw-1',
    'load-conn corvid-edge-a@edge-a-gw-2',
    'load-shared corvid-edge-b',
    'load-conn corvid-edge-b@edge-b-gw-1',
    'load-conn corvid-edge-b@edge-b-gw-2',
    'initiate corvid-edge-b@edge-b-gw-1 child corvid-edge-b',
  ]);
  assert.equal(r.recheckMs, undefined);
});

test('what is ours and no longer wanted: terminated before it is unloaded, and its key unloaded; a retiring tunnel stays', () => {
  const actual: ViciActual = {
    conns: ['corvid-old@o-1', 'corvid-retiring@r-1'],
    keys: ['corvid-old', 'corvid-retiring'],
    sas: [sa('corvid-old@o-1'), sa('corvid-retiring@r-1'), sa('corvid-orphan@x-1')],
  };
  const r = planViciActions(new Map(), actual, FORGETFUL, { ...OPTS, retiring: ['corvid-retiring'] });
  assert.deepEqual(actions(r), ['terminate corvid-old@o-1', 'unload-conn corvid-old@o-1', 'terminate corvid-orphan@x-1', 'unload-shared corvid-old']);
});

test('steady state: nothing to do, and the traffic-selector backoff is cleared', () => {
  const want = wanted(tunnel('edge-b'));
  const r = planViciActions(want, holding(want, sa('corvid-edge-b@edge-b-gw-1')), remembering(want), OPTS);
  assert.deepEqual(actions(r), []);
  assert.equal(r.connections[0].clearBackoff, true);
});

test('a changed config is loaded and the SA built from the old one is replaced; a changed key is loaded alone', () => {
  const want = wanted(tunnel('edge-b'));
  const actual = holding(want, sa('corvid-edge-b@edge-b-gw-1'));
  const oldConfig: ViciMemory = { ...remembering(want), loaded: new Map([['corvid-edge-b@edge-b-gw-1', 'h-before'], ['corvid-edge-b@edge-b-gw-2', 'h-before']]) };
  assert.deepEqual(actions(planViciActions(want, actual, oldConfig, OPTS)), [
    'load-conn corvid-edge-b@edge-b-gw-1',
    'terminate corvid-edge-b@edge-b-gw-1 (config changed)',
    'load-conn corvid-edge-b@edge-b-gw-2',
    'initiate corvid-edge-b@edge-b-gw-1 child corvid-edge-b',
  ]);
  const oldKey: ViciMemory = { ...remembering(want), loadedKeys: new Map([['corvid-edge-b', 'f-before']]) };
  assert.deepEqual(actions(planViciActions(want, actual, oldKey, OPTS)), ['load-shared corvid-edge-b']);
});

test('after an agent restart (nothing remembered) an SA with the planned traffic selectors is kept, one without them replaced', () => {
  const want = wanted(tunnel('edge-b'));
  const loads = ['load-shared corvid-edge-b', 'load-conn corvid-edge-b@edge-b-gw-1', 'load-conn corvid-edge-b@edge-b-gw-2'];
  assert.deepEqual(actions(planViciActions(want, holding(want, sa('corvid-edge-b@edge-b-gw-1')), FORGETFUL, OPTS)), loads);
  const narrow = holding(want, sa('corvid-edge-b@edge-b-gw-1', { remoteTs: ['10.244.2.0/24'] }));
  assert.deepEqual(actions(planViciActions(want, narrow, FORGETFUL, OPTS)), [
    'load-shared corvid-edge-b',
    'load-conn corvid-edge-b@edge-b-gw-1',
    'terminate corvid-edge-b@edge-b-gw-1 (config changed)',
    'load-conn corvid-edge-b@edge-b-gw-2',
    'initiate corvid-edge-b@edge-b-gw-1 child corvid-edge-b',
  ]);
});

test('an SA narrower than the plan: the initiator replaces it at once, then backs off 10 s doubling; the responder waits', () => {
  const want = wanted(tunnel('edge-b'));
  const narrow = holding(want, sa('corvid-edge-b@edge-b-gw-1', { remoteTs: ['10.244.2.0/24'] }));
  const first = planViciActions(want, narrow, remembering(want), OPTS);
  assert.deepEqual(actions(first), ['terminate corvid-edge-b@edge-b-gw-1 (traffic selectors differ from the plan)', 'initiate corvid-edge-b@edge-b-gw-1 child corvid-edge-b']);
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
  const connecting = holding(want, sa('corvid-edge-b@edge-b-gw-1', { state: 'CONNECTING', child: 'CREATED' }));
  assert.deepEqual(actions(planViciActions(want, connecting, remembering(want), OPTS)), []);
  assert.deepEqual(actions(planViciActions(want, NOTHING, FORGETFUL, { ...OPTS, holdInitiate: true })), [
    'load-shared corvid-edge-b',
    'load-conn corvid-edge-b@edge-b-gw-1',
    'load-conn corvid-edge-b@edge-b-gw-2',
  ]);
});

test('the same inputs in another order give the same actions', () => {
  const a = wanted(tunnel('x'), tunnel('b'), tunnel('m'));
  const b = wanted(tunnel('m'), tunnel('x'), tunnel('b'));
  const actual: ViciActual = { conns: ['corvid-z@z-1', 'corvid-c@c-1'], keys: ['corvid-z', 'corvid-c'], sas: [sa('corvid-z@z-1'), sa('corvid-c@c-1')] };
  const reversed: ViciActual = { conns: ['corvid-c@c-1', 'corvid-z@z-1'], keys: ['corvid-c', 'corvid-z'], sas: [sa('corvid-c@c-1'), sa('corvid-z@z-1')] };
  assert.deepEqual(planViciActions(a, actual, FORGETFUL, OPTS), planViciActions(b, reversed, FORGETFUL, OPTS));
});

test("a hand-over in the peer pool, seen by its responder: the CHILD_SA is created on the successor's IKE_SA, the predecessor's kept for the grace", () => {
  // edge-a hands over from edge-a-gw-1 to edge-a-gw-2; we answer edge-a (it is behind NAT).
  const t = tunnel('edge-a', 'responder', 'edge-a-gw-2');
  const want = wanted(t);
  const mem = remembering(want);
  const predecessor = sa('corvid-edge-a@edge-a-gw-1', { id: '3' });
  // Its connection was loaded all along: the Gateway moving changes no config here, so nothing is reloaded or torn down.
  assert.deepEqual(actions(planViciActions(want, holding(want, predecessor), mem, OPTS)), []);
  // The successor's IKE_SA, alone: we keep sending, so we create the CHILD_SA (we install last).
  const bare = sa('corvid-edge-a@edge-a-gw-2', { id: '4', childless: true, established: 0 });
  const create = planViciActions(want, holding(want, predecessor, bare), mem, OPTS);
  assert.deepEqual(actions(create), ['initiate corvid-edge-a@edge-a-gw-2 child corvid-edge-a']);
  assert.ok(create.recheckMs !== undefined, 'back after the grace to retire the predecessor');
  // Up: the predecessor's SAs carry what its successor still sends through it; they go after the grace, by id.
  const young = planViciActions(want, holding(want, predecessor, sa('corvid-edge-a@edge-a-gw-2', { id: '4', installTime: PREDECESSOR_GRACE_S - 1 })), mem, OPTS);
  assert.deepEqual(actions(young), []);
  assert.ok(young.recheckMs !== undefined && young.recheckMs <= 500);
  const settled = planViciActions(want, holding(want, predecessor, sa('corvid-edge-a@edge-a-gw-2', { id: '4', installTime: PREDECESSOR_GRACE_S })), mem, OPTS);
  assert.deepEqual(actions(settled), ['terminate corvid-edge-a@edge-a-gw-2 IKE_SA 3 (replaced: the peer pool has a new gateway)']);
  assert.equal(settled.recheckMs, undefined);
  // A childless IKE_SA of a candidate we do not think active (the successor was faster than our view of its Gateway) stays.
  const before = wanted(tunnel('edge-a', 'responder', 'edge-a-gw-1'));
  assert.deepEqual(actions(planViciActions(before, holding(before, predecessor, bare), remembering(before), OPTS)), []);
});

test("a hand-over's successor brings its IKE_SA up alone and waits for the peer's CHILD_SA, then creates it itself", () => {
  const want = wanted(tunnel('cloud'));
  const mem = remembering(want);
  const opts = { ...OPTS, awaitPeerChild: true };
  assert.deepEqual(actions(planViciActions(want, holding(want), mem, opts)), ['initiate corvid-cloud@cloud-gw-1 (IKE_SA only: the peer creates the CHILD_SA)']);
  const waiting = planViciActions(want, holding(want, sa('corvid-cloud@cloud-gw-1', { childless: true, established: PEER_CHILD_WAIT_S - 1 })), mem, opts);
  assert.deepEqual(actions(waiting), []);
  assert.ok(waiting.recheckMs !== undefined);
  // A peer that does not (its agent is stopped, or older): after the wait, on the same IKE_SA.
  const late = holding(want, sa('corvid-cloud@cloud-gw-1', { childless: true, established: PEER_CHILD_WAIT_S }));
  assert.deepEqual(actions(planViciActions(want, late, mem, opts)), ['initiate corvid-cloud@cloud-gw-1 child corvid-cloud']);
  // Outside a hand-over, an IKE_SA without the CHILD_SA gets it at once.
  assert.deepEqual(actions(planViciActions(want, late, mem, OPTS)), ['initiate corvid-cloud@cloud-gw-1 child corvid-cloud']);
  // The peer created it: nothing more.
  assert.deepEqual(actions(planViciActions(want, holding(want, sa('corvid-cloud@cloud-gw-1')), mem, opts)), []);
});

test('a hand-over in the peer pool, seen by its initiator: the CHILD_SA to the successor first, the one to the predecessor after the grace', () => {
  const t = tunnel('cloud', 'initiator', 'cloud-gw-2');
  const want = wanted(t);
  const mem = remembering(want);
  const predecessor = sa('corvid-cloud@cloud-gw-1', { id: '3' });
  const first = planViciActions(want, holding(want, predecessor), mem, OPTS);
  assert.deepEqual(actions(first), ['initiate corvid-cloud@cloud-gw-2 child corvid-cloud']);
  assert.ok(first.recheckMs !== undefined);
  const young = holding(want, predecessor, sa('corvid-cloud@cloud-gw-2', { id: '7', installTime: 0 }));
  assert.deepEqual(actions(planViciActions(want, young, mem, OPTS)), []);
  const settled = holding(want, predecessor, sa('corvid-cloud@cloud-gw-2', { id: '7', installTime: PREDECESSOR_GRACE_S + 5 }));
  const r = planViciActions(want, settled, mem, OPTS);
  assert.deepEqual(actions(r), ['terminate corvid-cloud@cloud-gw-2 IKE_SA 3 (replaced: the peer pool has a new gateway)']);
  const step = r.connections[0].steps[0];
  assert.ok(step.op === 'terminate' && step.why === 'replaced: the peer pool has a new gateway' && step.ikeIds.join() === '3');
});
