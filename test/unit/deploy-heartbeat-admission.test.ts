// deploy/components/heartbeat-admission: the ValidatingAdmissionPolicy that ties each agent to its own node's
// heartbeat Lease. Its CEL runs here with @bufbuild/cel against admission requests shaped as kube-apiserver shapes
// them, under Kubernetes' evaluation rules (evaluate() below), so a rule that lets a forged request through fails.
// The expressions keep to CEL that both evaluators accept: no optional types (`.?field`, which Kubernetes has since
// 1.29 but @bufbuild/cel does not parse) and no Kubernetes library functions.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { isCelError, run, type CelInput } from '@bufbuild/cel';
import { parseAllDocuments } from 'yaml';
import { DEFAULT_LEASE_NAMESPACE, LEADER_LEASE_NAME } from '../../src/adapters/kube/leases.ts';
import { TUNNEL_HEALTH_ANNOTATION, WIREGUARD_KEY_LEASE_ANNOTATION } from '../../src/gateway/keys.ts';
import { DEPLOY, findObject, loadYamlFile, manifestsOf, which } from './deploy-support.ts';

const COMPONENT = 'components/heartbeat-admission';
const objects = manifestsOf(`${COMPONENT}/policy.yaml`);
const POLICY = findObject(objects, 'ValidatingAdmissionPolicy', 'corvid-agent-heartbeat');
const BINDING = findObject(objects, 'ValidatingAdmissionPolicyBinding', 'corvid-agent-heartbeat');

const NODE_NAME_KEY = 'authentication.kubernetes.io/node-name';
const AGENT = 'system:serviceaccount:corvid-system:corvid-agent';
const SYNC = 'system:serviceaccount:corvid-system:corvid-sync';

// ---------------------------------------------------------------- admission requests, as kube-apiserver builds them

type Operation = 'CREATE' | 'UPDATE' | 'DELETE';

interface Caller {
  username: string;
  groups?: string[];
  /** user.Info extra: what the authenticator attached (for a pod-bound token: pod name/uid, node name/uid). */
  extra?: Record<string, string[]>;
}

/** A Lease as the agent writes it (src/adapters/kube/heartbeat.ts); holder undefined = field not set. */
function lease(name: string, holder: string | undefined, annotations: Record<string, string> = {}): any {
  const spec: Record<string, unknown> = { leaseDurationSeconds: 3, renewTime: '2025-01-01T00:00:00.000000Z', leaseTransitions: 0 };
  // *string with omitempty: a nil holder is absent from the unstructured object, an empty one is "".
  if (holder !== undefined) spec.holderIdentity = holder;
  const metadata: Record<string, unknown> = { name, namespace: DEFAULT_LEASE_NAMESPACE, uid: `uid-${name}`, resourceVersion: '7' };
  if (Object.keys(annotations).length > 0) metadata.annotations = annotations;
  return { apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata, spec };
}

/** An agent's pod-bound token on a 1.30+ cluster: pod name/uid, credential id and the node claim. */
function agentOn(node: string): Caller {
  return {
    username: AGENT,
    groups: ['system:serviceaccounts', 'system:serviceaccounts:corvid-system', 'system:authenticated'],
    extra: {
      'authentication.kubernetes.io/credential-id': ['JTI=8c2f0e36-6f0a-4f4e-9d55-2c1b3e0b9a11'],
      'authentication.kubernetes.io/pod-name': [`corvid-agent-${node}`],
      'authentication.kubernetes.io/pod-uid': ['5d0c7a0e-1111-2222-3333-444455556666'],
      [NODE_NAME_KEY]: [node],
      'authentication.kubernetes.io/node-uid': ['7a1b2c3d-1111-2222-3333-444455556666'],
    },
  };
}

/**
 * The CEL inputs for one request: `request` is admissionv1.AdmissionRequest through the unstructured converter,
 * which drops omitempty fields that are empty (so a user without extra has no `extra` key at all); `object` is
 * null on DELETE and `oldObject` null on CREATE.
 */
function admission(op: Operation, caller: Caller, target: { object?: any; oldObject?: any; namespace?: string }): Record<string, CelInput> {
  const obj = op === 'DELETE' ? null : target.object;
  const old = op === 'CREATE' ? null : target.oldObject;
  const name = (obj ?? old).metadata.name;
  const userInfo: Record<string, CelInput> = { username: caller.username, uid: 'c0ffee00-0000-0000-0000-000000000000' };
  if (caller.groups?.length) userInfo.groups = caller.groups;
  if (caller.extra && Object.keys(caller.extra).length > 0) userInfo.extra = caller.extra;
  const gvk = { group: 'coordination.k8s.io', version: 'v1', kind: 'Lease' };
  const gvr = { group: 'coordination.k8s.io', version: 'v1', resource: 'leases' };
  const request = {
    uid: '0b4a3c2d-aaaa-bbbb-cccc-ddddeeeeffff',
    kind: gvk,
    resource: gvr,
    requestKind: gvk,
    requestResource: gvr,
    name,
    namespace: target.namespace ?? DEFAULT_LEASE_NAMESPACE,
    operation: op,
    userInfo,
    dryRun: false,
    options: { apiVersion: 'meta.k8s.io/v1', kind: op === 'CREATE' ? 'CreateOptions' : op === 'UPDATE' ? 'UpdateOptions' : 'DeleteOptions' },
  };
  return { request, object: obj, oldObject: old };
}

// ---------------------------------------------------------------- Kubernetes' evaluation of one policy and binding

interface Verdict {
  /** matchConstraints and every matchCondition held: the policy looked at the request. */
  matched: boolean;
  allowed: boolean;
  /** The denial as kube-apiserver words it. */
  message?: string;
}

type Value = ReturnType<typeof run>;

function cel(expr: string, bindings: Record<string, CelInput>): Value {
  return run(expr, bindings);
}

/** What the request's resource, operation and namespace do against matchConstraints (the namespace's name label). */
function constraintsMatch(policy: any, inputs: Record<string, CelInput>): boolean {
  const req = inputs.request as any;
  const mc = policy.spec.matchConstraints;
  const any = (list: string[], v: string): boolean => list.includes('*') || list.includes(v);
  const ruleHit = mc.resourceRules.some(
    (r: any) => any(r.apiGroups, req.resource.group) && any(r.apiVersions, req.resource.version) && any(r.resources, req.resource.resource) && any(r.operations, req.operation),
  );
  const labels: Record<string, string> = { 'kubernetes.io/metadata.name': req.namespace };
  const selector = mc.namespaceSelector ?? {};
  assert.equal(selector.matchExpressions, undefined, 'this helper reads matchLabels only');
  const nsHit = Object.entries(selector.matchLabels ?? {}).every(([k, v]) => labels[k] === v);
  return ruleHit && nsHit;
}

/**
 * Kubernetes' rules for a ValidatingAdmissionPolicy with a Deny binding:
 * - matchConditions (which see no `variables`): any false skips the policy; otherwise any error applies the
 *   failurePolicy; otherwise the validations run;
 * - variables are lazy: one that fails to evaluate fails only the expressions that use it;
 * - a validation that is false, or fails to evaluate under failurePolicy Fail, denies. Its message is the
 *   messageExpression's value unless that fails or is empty, blank or multi-line; then `message`; then a default.
 */
function evaluate(policy: any, binding: any, inputs: Record<string, CelInput>): Verdict {
  assert.ok(binding.spec.validationActions.includes('Deny'));
  const failClosed = (policy.spec.failurePolicy ?? 'Fail') === 'Fail';
  const deny = (why: string): Verdict => ({
    matched: true,
    allowed: false,
    message: `ValidatingAdmissionPolicy '${policy.metadata.name}' with binding '${binding.metadata.name}' denied request: ${why}`,
  });
  if (!constraintsMatch(policy, inputs)) return { matched: false, allowed: true };

  let conditionError: string | undefined;
  for (const c of policy.spec.matchConditions ?? []) {
    const v = cel(c.expression, inputs);
    if (isCelError(v)) conditionError ??= `matchCondition ${c.name}: ${v.message}`;
    else if (v === false) return { matched: false, allowed: true };
    else assert.equal(v, true, `matchCondition ${c.name} must be a bool`);
  }
  if (conditionError !== undefined) return failClosed ? deny(conditionError) : { matched: true, allowed: true };

  const variables: Record<string, CelInput> = {};
  const failed = new Map<string, string>();
  const uses = (expr: string): string | undefined => [...failed.keys()].find((n) => new RegExp(`\\bvariables\\.${n}\\b`).test(expr));
  const evalWithVariables = (expr: string): Value | { error: string } => {
    const broken = uses(expr);
    if (broken !== undefined) return { error: `variables.${broken}: ${failed.get(broken)}` };
    const v = cel(expr, { ...inputs, variables });
    return isCelError(v) ? { error: v.message } : v;
  };
  for (const v of policy.spec.variables ?? []) {
    const out = evalWithVariables(v.expression);
    if (out !== null && typeof out === 'object' && 'error' in out) failed.set(v.name, out.error);
    else variables[v.name] = out as CelInput;
  }

  for (const val of policy.spec.validations) {
    const out = evalWithVariables(val.expression);
    if (out === true) continue;
    if (out !== null && typeof out === 'object' && 'error' in out) {
      if (!failClosed) continue;
      return deny(`expression '${val.expression}' resulted in error: ${out.error}`);
    }
    assert.equal(out, false, `validation ${val.expression} must be a bool`);
    let message: string | undefined;
    if (val.messageExpression !== undefined) {
      const m = evalWithVariables(val.messageExpression);
      if (typeof m === 'string' && m.trim() !== '' && !/[\r\n]/.test(m)) message = m;
    }
    return deny(message ?? val.message ?? `failed expression: ${val.expression}`);
  }
  return { matched: true, allowed: true };
}

const admit = (op: Operation, caller: Caller, target: { object?: any; oldObject?: any; namespace?: string }): Verdict =>
  evaluate(POLICY, BINDING, admission(op, caller, target));

function assertDenied(v: Verdict, ...phrases: string[]): void {
  assert.equal(v.matched, true, 'the policy looked at the request');
  assert.equal(v.allowed, false, 'denied');
  for (const p of phrases) assert.ok(v.message!.includes(p), `message ${JSON.stringify(v.message)} mentions ${JSON.stringify(p)}`);
}

function assertAllowed(v: Verdict): void {
  assert.equal(v.allowed, true, v.message);
  assert.equal(v.matched, true, 'the policy looked at the request');
}

// ---------------------------------------------------------------- the tests

const KEY = { [WIREGUARD_KEY_LEASE_ANNOTATION]: 'kXb6Hn0Yt1kqQKQ0eQ2eJmVQ6M0Kq6V1oS6dUuK7a2I=' };

describe('heartbeat-admission: the agent writes only its own node\'s heartbeat', () => {
  test('own node: create, renew, publish tunnel health, take over, release, delete', () => {
    const mine = lease('edge-1', 'edge-1', KEY);
    assertAllowed(admit('CREATE', agentOn('edge-1'), { object: mine }));
    assertAllowed(admit('CREATE', agentOn('edge-1'), { object: lease('edge-1', undefined) }));
    const renewed = { ...mine, spec: { ...mine.spec, renewTime: '2025-01-01T00:00:01.000000Z' } };
    assertAllowed(admit('UPDATE', agentOn('edge-1'), { object: renewed, oldObject: mine }));
    const tunnels = lease('edge-1', 'edge-1', { ...KEY, [TUNNEL_HEALTH_ANNOTATION]: '{"pool-b":{"up":true,"since":"2025-01-01T00:00:00Z"}}' });
    assertAllowed(admit('UPDATE', agentOn('edge-1'), { object: tunnels, oldObject: mine }));
    // An old Lease of this node left with another holder (or none): the agent writes its own name into it.
    assertAllowed(admit('UPDATE', agentOn('edge-1'), { object: mine, oldObject: lease('edge-1', 'someone-else') }));
    assertAllowed(admit('UPDATE', agentOn('edge-1'), { object: mine, oldObject: lease('edge-1', undefined) }));
    // release(): holderIdentity "" on shutdown.
    assertAllowed(admit('UPDATE', agentOn('edge-1'), { object: lease('edge-1', ''), oldObject: mine }));
    assertAllowed(admit('DELETE', agentOn('edge-1'), { oldObject: mine }));
  });

  test('another node\'s Lease: create, update and delete are denied, and the message names both', () => {
    const theirs = lease('edge-2', 'edge-2', KEY);
    const forged = lease('edge-2', 'edge-1');
    for (const [op, target] of [
      ['CREATE', { object: theirs }],
      ['CREATE', { object: forged }],
      ['UPDATE', { object: { ...theirs, spec: { ...theirs.spec, renewTime: '2025-01-01T00:00:09.000000Z' } }, oldObject: theirs }],
      ['UPDATE', { object: forged, oldObject: theirs }],
      ['UPDATE', { object: lease('edge-2', ''), oldObject: theirs }],
      ['DELETE', { oldObject: theirs }],
    ] as const) {
      const v = admit(op, agentOn('edge-1'), target);
      assertDenied(v, 'the agent on node edge-1 may write only heartbeat Lease edge-1, not edge-2');
    }
  });

  test('own Lease held for another node: holderIdentity is denied on create and update', () => {
    const forged = lease('edge-1', 'edge-2', KEY);
    assertDenied(admit('CREATE', agentOn('edge-1'), { object: forged }), 'spec.holderIdentity of Lease edge-1', 'only to edge-1 or empty, not edge-2');
    assertDenied(admit('UPDATE', agentOn('edge-1'), { object: forged, oldObject: lease('edge-1', 'edge-1') }), 'not edge-2');
  });

  test('an agent token without the node claim is denied, and the message says why', () => {
    const mine = lease('edge-1', 'edge-1');
    const withoutNode = agentOn('edge-1');
    delete withoutNode.extra![NODE_NAME_KEY];
    delete withoutNode.extra!['authentication.kubernetes.io/node-uid'];
    // A pod-bound token from before 1.30 (pod claims only), a Secret-based token (no extra at all: the request then
    // has no userInfo.extra key), and an empty claim.
    const callers: Caller[] = [withoutNode, { username: AGENT, groups: ['system:serviceaccounts'] }, { ...agentOn('edge-1'), extra: { [NODE_NAME_KEY]: [] } }];
    for (const caller of callers) {
      for (const [op, target] of [
        ['CREATE', { object: mine }],
        ['UPDATE', { object: mine, oldObject: mine }],
        ['DELETE', { oldObject: mine }],
      ] as const) {
        assertDenied(admit(op, caller, target), 'heartbeat Lease edge-1', 'pod-bound ServiceAccount token', NODE_NAME_KEY, 'this request has none');
      }
    }
  });

  test('everyone else, and the agent outside the heartbeat namespace, is not looked at', () => {
    const theirs = lease('edge-2', 'edge-2');
    const others: Caller[] = [
      { username: SYNC, groups: ['system:serviceaccounts', 'system:serviceaccounts:corvid-system'], extra: agentOn('edge-1').extra },
      { username: 'kubernetes-admin', groups: ['system:masters', 'system:authenticated'] },
      // Same ServiceAccount name, another namespace: not the agent.
      { username: 'system:serviceaccount:other:corvid-agent', extra: { [NODE_NAME_KEY]: ['edge-1'] } },
      { username: 'system:node:edge-1', groups: ['system:nodes'] },
    ];
    for (const caller of others) {
      for (const [op, target] of [
        ['CREATE', { object: theirs }],
        ['UPDATE', { object: lease('edge-2', 'edge-9'), oldObject: theirs }],
        ['DELETE', { oldObject: theirs }],
      ] as const) {
        assert.deepEqual(admit(op, caller, target), { matched: false, allowed: true }, `${caller.username} ${op}`);
      }
    }
    // The leader Lease lives in corvid-system, where RBAC already keeps the agent out; this policy stays away.
    const leader = { ...lease(LEADER_LEASE_NAME, 'corvid-sync-abc'), metadata: { name: LEADER_LEASE_NAME, namespace: 'corvid-system' } };
    assert.deepEqual(admit('UPDATE', agentOn('edge-1'), { object: leader, oldObject: leader, namespace: 'corvid-system' }), { matched: false, allowed: true });
    // The matchCondition alone, without the namespaceSelector in front of it, keeps it away too.
    const inputs = admission('UPDATE', agentOn('edge-1'), { object: leader, oldObject: leader, namespace: 'corvid-system' });
    const nsCondition = POLICY.spec.matchConditions.find((c: any) => /request\.namespace/.test(c.expression));
    assert.equal(cel(nsCondition.expression, inputs), false);
  });

  test('every validation is needed: without it, some forged request gets through', () => {
    const noClaim: Caller = { username: AGENT, groups: ['system:serviceaccounts'] };
    const forgedRequests = [
      admission('UPDATE', agentOn('edge-1'), { object: lease('edge-2', 'edge-2'), oldObject: lease('edge-2', 'edge-2') }),
      admission('DELETE', agentOn('edge-1'), { oldObject: lease('edge-2', 'edge-2') }),
      admission('UPDATE', agentOn('edge-1'), { object: lease('edge-1', 'edge-2'), oldObject: lease('edge-1', 'edge-1') }),
      admission('UPDATE', noClaim, { object: lease('edge-2', 'edge-2'), oldObject: lease('edge-2', 'edge-2') }),
    ];
    for (const inputs of forgedRequests) assert.equal(evaluate(POLICY, BINDING, inputs).allowed, false);
    POLICY.spec.validations.forEach((_: unknown, i: number) => {
      const weakened = structuredClone(POLICY);
      weakened.spec.validations.splice(i, 1);
      assert.ok(
        forgedRequests.some((inputs) => evaluate(weakened, BINDING, inputs).allowed),
        `validation ${i + 1} (${POLICY.spec.validations[i].expression}) is redundant`,
      );
    });
  });

  test('a matchCondition that cannot be evaluated denies (failurePolicy Fail), which is why ours cannot fail', () => {
    const broken = structuredClone(POLICY);
    broken.spec.matchConditions.push({ name: 'broken', expression: 'request.userInfo.extra.nope == 1' });
    const mine = lease('edge-1', 'edge-1');
    assert.equal(evaluate(broken, BINDING, admission('UPDATE', agentOn('edge-1'), { object: mine, oldObject: mine })).allowed, false);
    // A false condition wins over an error: the admin's request is still not looked at.
    const admin = evaluate(broken, BINDING, admission('UPDATE', { username: 'kubernetes-admin' }, { object: mine, oldObject: mine }));
    assert.deepEqual(admin, { matched: false, allowed: true });
    // Ours evaluate on any request shape the API server can send: no extra, no groups.
    for (const c of POLICY.spec.matchConditions) {
      const out = cel(c.expression, admission('DELETE', { username: 'x' }, { oldObject: lease('edge-2', undefined) }));
      assert.equal(typeof out, 'boolean', `${c.name}: ${isCelError(out) ? out.message : String(out)}`);
    }
  });
});

describe('heartbeat-admission: the manifests', () => {
  test('matches Lease writes in the agents\' heartbeat namespace by the agent\'s ServiceAccount, fails closed', () => {
    assert.equal(POLICY.apiVersion, 'admissionregistration.k8s.io/v1');
    assert.equal(BINDING.apiVersion, 'admissionregistration.k8s.io/v1');
    assert.equal(BINDING.spec.policyName, POLICY.metadata.name);
    assert.deepEqual(BINDING.spec.validationActions, ['Deny']);
    assert.equal(POLICY.spec.failurePolicy, 'Fail');
    assert.deepEqual(POLICY.spec.matchConstraints.resourceRules, [
      { apiGroups: ['coordination.k8s.io'], apiVersions: ['*'], operations: ['CREATE', 'UPDATE', 'DELETE'], resources: ['leases'] },
    ]);
    // The namespace the agent writes its heartbeat to (its flag, else the code's default) and the one RBAC lets it
    // write Leases in.
    const daemonset = manifestsOf('base/agent-daemonset.yaml')[0];
    const agent = daemonset.spec.template.spec.containers.find((c: { name: string }) => c.name === 'agent');
    const flag: string | undefined = agent.args.find((a: string) => a.startsWith('--lease-namespace='));
    assert.equal(flag?.slice('--lease-namespace='.length) ?? DEFAULT_LEASE_NAMESPACE, DEFAULT_LEASE_NAMESPACE, 'the agent heartbeats where the policy looks');
    assert.deepEqual(POLICY.spec.matchConstraints.namespaceSelector, { matchLabels: { 'kubernetes.io/metadata.name': DEFAULT_LEASE_NAMESPACE } });
    const role = manifestsOf('base/rbac-agent.yaml').find((o) => o.kind === 'Role' && o.rules.some((r: any) => r.resources.includes('leases') && r.verbs.includes('create')));
    assert.equal(role?.metadata.namespace, DEFAULT_LEASE_NAMESPACE, 'the agent\'s Lease Role is in the namespace the policy guards');
    // The username in the matchCondition is the DaemonSet's ServiceAccount.
    const sa = findObject(manifestsOf('base/serviceaccounts.yaml'), 'ServiceAccount', 'corvid-agent');
    assert.equal(daemonset.spec.template.spec.serviceAccountName, sa.metadata.name);
    assert.ok(POLICY.spec.matchConditions.some((c: any) => c.expression.includes(`'system:serviceaccount:${sa.metadata.namespace}:${sa.metadata.name}'`)));
    for (const o of objects) {
      assert.equal(o.metadata.namespace, undefined, `${o.kind} is cluster-scoped`);
      assert.equal(o.metadata.labels['app.kubernetes.io/name'], 'corvid');
    }
    for (const v of POLICY.spec.validations) assert.ok(v.message && v.messageExpression && v.reason === 'Forbidden', v.expression);
  });

  test('a Component, not part of the base (the API needs Kubernetes 1.30)', () => {
    const k = loadYamlFile(join(DEPLOY, COMPONENT, 'kustomization.yaml'))[0].obj;
    assert.equal(k.kind, 'Component');
    assert.deepEqual(k.resources, ['policy.yaml']);
    const base = loadYamlFile(join(DEPLOY, 'base', 'kustomization.yaml'))[0].obj;
    assert.ok(!JSON.stringify(base).includes('heartbeat-admission'));
  });

  const KUBECTL = which('kubectl');
  test('an overlay with the component renders the policy and its binding', { skip: KUBECTL ? undefined : 'kubectl not on PATH' }, () => {
    // Inside a copy-free scratch overlay: the component only adds objects, so the base's CRD stubs are not needed.
    const dir = mkdtempSync(join(tmpdir(), 'corvid-heartbeat-admission-'));
    try {
      mkdirSync(join(dir, 'overlay'));
      writeFileSync(join(dir, 'overlay', 'kustomization.yaml'), `components: [${JSON.stringify(relative(join(dir, 'overlay'), join(DEPLOY, COMPONENT)))}]\n`);
      const r = spawnSync(KUBECTL!, ['kustomize', join(dir, 'overlay')], { encoding: 'utf8', timeout: 60_000 });
      assert.equal(r.status, 0, r.stderr);
      const rendered = parseAllDocuments(r.stdout).map((d) => d.toJS());
      assert.deepEqual(rendered.map((o) => o.kind).sort(), ['ValidatingAdmissionPolicy', 'ValidatingAdmissionPolicyBinding']);
      assert.deepEqual(findObject(rendered, 'ValidatingAdmissionPolicy', POLICY.metadata.name).spec, POLICY.spec);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
