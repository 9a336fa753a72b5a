// The sync's preflight verdict on a served Gateway CRD (src/gateway/crd-check.ts): Corvid's own and OpenYurt's pass;
// one that would prune, refuse or convert away what Corvid writes, or has no status subresource, does not.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { checkGatewayCrd, CRD_REMEDY } from '../../src/gateway/crd-check.ts';
import { REPO } from './cli-support.ts';

const ESTABLISHED = { conditions: [{ type: 'NamesAccepted', status: 'True' }, { type: 'Established', status: 'True' }], storedVersions: ['v1beta1'] };
const read = (path: string): any => parse(readFileSync(join(REPO, path), 'utf8'));
/** A CRD as the API server returns it: what was applied, with a status. */
const served = (crd: any, status: object = ESTABLISHED): any => ({ ...structuredClone(crd), status });
const CORVID = read('deploy/crds/gateway.yaml');
const OPENYURT = read('test/fixtures/openyurt/raven.openyurt.io_gateways.yaml');

/** The v1beta1 schema of a copy, for a test to break. */
function beta(crd: any): any {
  return crd.spec.versions.find((v: { name: string }) => v.name === 'v1beta1');
}

test("Corvid's own CRD passes without a word", () => {
  assert.deepEqual(checkGatewayCrd(served(CORVID)), { errors: [], warnings: [] });
});

test("OpenYurt's CRD passes; a v1alpha1 ever stored is a warning naming yurt-manager's conversion webhook", () => {
  assert.deepEqual(checkGatewayCrd(served(OPENYURT)), { errors: [], warnings: [] });
  const v = checkGatewayCrd(served(OPENYURT, { ...ESTABLISHED, storedVersions: ['v1alpha1', 'v1beta1'] }));
  assert.deepEqual(v.errors, []);
  assert.equal(v.warnings.length, 1);
  assert.match(v.warnings[0], /storedVersions lists v1alpha1: .* through its conversion webhook \(Service kube-system\/yurt-manager-webhook-service, yurt-manager's\)/);
});

test('not installed the way Corvid needs: each reason said', () => {
  const cases: [string, (c: any) => void, RegExp][] = [
    ['not Established', (c) => (c.status = { conditions: [{ type: 'Established', status: 'False' }] }), /it is not Established/],
    ['another kind', (c) => (c.spec.names.kind = 'Gw'), /not gateways\.raven\.openyurt\.io of kind Gateway/],
    ['namespaced', (c) => (c.spec.scope = 'Namespaced'), /scope is Namespaced/],
    ['v1beta1 not served', (c) => (beta(c).served = false), /does not serve v1beta1 \(it serves v1alpha1\)/],
    ['v1alpha1 stored', (c) => { beta(c).storage = false; c.spec.versions[0].storage = true; }, /v1beta1 is not its storage version: every Gateway would be converted to and from v1alpha1/],
    ['no status subresource', (c) => delete beta(c).subresources, /v1beta1 has no status subresource/],
    ['no schema', (c) => delete beta(c).schema, /v1beta1 has no schema/],
  ];
  for (const [what, breakIt, expected] of cases) {
    const crd = served(OPENYURT);
    breakIt(crd);
    const v = checkGatewayCrd(crd);
    assert.equal(v.errors.length, 1, `${what}: ${v.errors.join('; ')}`);
    assert.match(v.errors[0], expected, what);
  }
});

test('a schema that would prune, refuse or retype what Corvid writes: the field is named', () => {
  const cases: [string, (s: any) => void, RegExp][] = [
    ['endpoint config pruned', (s) => delete s.spec.properties.endpoints.items.properties.config, /spec\.endpoints\[\]\.config is not declared, so the API server drops it/],
    ['status pruned', (s) => delete s.status.properties.activeEndpoints, /status\.activeEndpoints is not declared/],
    ['a map without entries', (s) => delete s.status.properties.activeEndpoints.items.properties.config.additionalProperties, /status\.activeEndpoints\[\]\.config declares no map entries/],
    ['retyped', (s) => (s.spec.properties.endpoints.items.properties.port.type = 'string'), /spec\.endpoints\[\]\.port is of type string, Corvid writes integer/],
    ['an enum without tunnel', (s) => (s.spec.properties.endpoints.items.properties.type.enum = ['proxy']), /spec\.endpoints\[\]\.type does not allow "tunnel"/],
    ['no replica allowed', (s) => (s.spec.properties.tunnelConfig.properties.Replicas.maximum = 0), /spec\.tunnelConfig\.Replicas has a maximum of 0/],
    ['a required field Corvid leaves out', (s) => (s.spec.required = ['exposeType']), /spec requires exposeType, which Corvid does not always write/],
  ];
  for (const [what, breakIt, expected] of cases) {
    const crd = served(OPENYURT);
    breakIt(beta(crd).schema.openAPIV3Schema.properties);
    const v = checkGatewayCrd(crd);
    assert.equal(v.errors.length, 1, `${what}: ${v.errors.join('; ')}`);
    assert.match(v.errors[0], /^in its v1beta1 schema, /, what);
    assert.match(v.errors[0], expected, what);
  }
});

test('x-kubernetes-preserve-unknown-fields keeps what is not declared', () => {
  const crd = served(OPENYURT);
  const spec = beta(crd).schema.openAPIV3Schema.properties.spec;
  spec['x-kubernetes-preserve-unknown-fields'] = true;
  delete spec.properties.endpoints;
  assert.deepEqual(checkGatewayCrd(crd).errors, []);
});

test('the remedy names both ways out and the migration guide', () => {
  assert.match(CRD_REMEDY, /deploy\/crds\/gateway\.yaml; leave out the existing-gateway-crd component/);
  assert.match(CRD_REMEDY, /upgrade OpenYurt/);
  assert.match(CRD_REMEDY, /docs\/migrate-from-raven\.md/);
});
