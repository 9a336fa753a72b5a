// deploy/crds/gateway.yaml (what the API server enforces) and schemas/gateway.schema.json (its JSON Schema 2020-12
// mirror) must agree, and every Gateway the planner makes must validate.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { plan } from '../../src/plan/planner.ts';
import { GATEWAY_GROUP, GATEWAY_KIND, GATEWAY_PLURAL, GATEWAY_VERSION } from '../../src/gateway/types.ts';
import type { Gateway } from '../../src/gateway/types.ts';
import { input, node, pool, topology } from './plan-fixtures.ts';

const root = new URL('../../', import.meta.url);
const crd = parse(readFileSync(new URL('deploy/crds/gateway.yaml', root), 'utf8'));
const jsonSchema = JSON.parse(readFileSync(new URL('schemas/gateway.schema.json', root), 'utf8'));
type Schema = Record<string, unknown>;

function walk(s: unknown, visit: (node: Schema, path: string) => void, path = ''): void {
  if (Array.isArray(s)) s.forEach((x, i) => walk(x, visit, `${path}[${i}]`));
  else if (s && typeof s === 'object') {
    visit(s as Schema, path);
    for (const [k, v] of Object.entries(s)) walk(v, visit, `${path}/${k}`);
  }
}

test('CRD: gateways.raven.openyurt.io, cluster-scoped, short name gw, v1beta1 served and stored, status subresource', () => {
  assert.equal(crd.apiVersion, 'apiextensions.k8s.io/v1');
  assert.equal(crd.kind, 'CustomResourceDefinition');
  assert.equal(crd.metadata.name, `${GATEWAY_PLURAL}.${GATEWAY_GROUP}`);
  assert.equal(crd.spec.group, GATEWAY_GROUP);
  assert.equal(crd.spec.scope, 'Cluster');
  assert.deepEqual(crd.spec.names, { kind: GATEWAY_KIND, listKind: 'GatewayList', plural: GATEWAY_PLURAL, singular: 'gateway', shortNames: ['gw'] });
  assert.equal(crd.spec.versions.length, 1);
  const v = crd.spec.versions[0];
  assert.equal(v.name, GATEWAY_VERSION);
  assert.equal(v.served, true);
  assert.equal(v.storage, true);
  assert.deepEqual(v.subresources, { status: {} });
});

test('CRD: printer columns like upstream ActiveEndpoint, simple JSON paths', () => {
  const cols = crd.spec.versions[0].additionalPrinterColumns as { name: string; type: string; jsonPath: string }[];
  assert.equal(cols[0].name, 'ActiveEndpoint');
  assert.equal(cols[0].jsonPath, '.status.activeEndpoints[0].nodeName');
  for (const c of cols) {
    assert.ok(c.jsonPath.startsWith('.'), c.name);
    assert.ok(['string', 'integer', 'number', 'boolean', 'date'].includes(c.type), c.name);
  }
});

test('CRD schema is structural and Kubernetes 1.20-safe: types everywhere, no CEL, no JSON-Schema-only keywords', () => {
  const schema = crd.spec.versions[0].schema.openAPIV3Schema;
  const allowed = new Set(['description', 'type', 'properties', 'items', 'required', 'additionalProperties', 'enum', 'maximum', 'minimum', 'x-kubernetes-map-type']);
  walk(schema, (n, path) => {
    if (path.endsWith('/properties')) return;
    for (const k of Object.keys(n)) assert.ok(allowed.has(k), `${path}: keyword ${k}`);
    assert.equal(typeof n.type, 'string', `${path}: structural schemas need a type`);
    if (n.additionalProperties !== undefined) {
      assert.equal(typeof n.additionalProperties, 'object', `${path}: additionalProperties must be a schema in a CRD`);
      assert.equal(n.properties, undefined, `${path}: properties and additionalProperties are exclusive`);
    }
  });
});

test('CRD schema has upstream v1beta1 fields exactly', () => {
  const s = crd.spec.versions[0].schema.openAPIV3Schema.properties;
  const keys = (o: Schema) => Object.keys(o.properties as Schema).sort();
  assert.deepEqual(keys(s.spec), ['endpoints', 'exposeType', 'nodeSelector', 'proxyConfig', 'tunnelConfig']);
  assert.deepEqual(keys(s.spec.properties.endpoints.items), ['config', 'natType', 'nodeName', 'port', 'publicIP', 'publicPort', 'type', 'underNAT']);
  assert.deepEqual(s.spec.properties.endpoints.items.required, ['nodeName', 'type']);
  assert.deepEqual(keys(s.spec.properties.tunnelConfig), ['Replicas']);
  assert.deepEqual(keys(s.spec.properties.proxyConfig), ['Replicas', 'proxyHTTPPort', 'proxyHTTPSPort']);
  assert.deepEqual(keys(s.status), ['activeEndpoints', 'nodes']);
  assert.deepEqual({ ...s.status.properties.activeEndpoints.items, description: '' }, { ...s.spec.properties.endpoints.items, description: '' });
  assert.deepEqual(s.status.properties.nodes.items.required, ['nodeName', 'privateIP', 'subnets']);
  assert.equal(s.spec.properties.nodeSelector['x-kubernetes-map-type'], 'atomic');
});

test('schemas/gateway.schema.json mirrors the CRD schema (plus $schema/$id/title and strict additionalProperties)', () => {
  assert.equal(jsonSchema.$schema, 'https://json-schema.org/draft/2020-12/schema');
  const strip = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.map(strip);
    if (v && typeof v === 'object') {
      const out: Schema = {};
      for (const [k, x] of Object.entries(v)) {
        if (k === '$schema' || k === '$id' || k === 'title') continue;
        if (k === 'additionalProperties' && x === false) continue;
        out[k] = strip(x);
      }
      return out;
    }
    return v;
  };
  assert.deepEqual(strip(jsonSchema), crd.spec.versions[0].schema.openAPIV3Schema);
});

const ajv = new Ajv2020({ allErrors: true, strict: true, strictTypes: false });
ajv.addKeyword('x-kubernetes-map-type');
const validate = ajv.compile(jsonSchema);

function richPlan(): Gateway[] {
  const t = topology(
    [
      pool('cloud', ['c1', 'c2'], { publicIPs: { c1: '203.0.113.10', c2: '2001:db8::1' } }),
      pool('lyon', ['l1'], { behindNAT: true, encryption: { espProposals: ['aes256gcm16'] } }),
      pool('berlin', ['b1'], { behindNAT: true, nodeSelector: { matchExpressions: [{ key: 'topology.corvid.dev/pool', operator: 'In', values: ['berlin'] }, { key: 'x', operator: 'DoesNotExist' }] } }),
      pool('empty', ['ghost']),
    ],
    { election: { replicas: 2 }, connectivity: { mode: 'mesh', rules: [{ action: 'deny', pools: ['lyon', 'berlin'] }] } },
  );
  const nodes = [node('c1', 'cloud'), node('c2', 'cloud', { podCIDRs: ['10.1.0.0/24', 'fd00:1::/64'] }), node('l1', 'lyon'), node('b1', 'berlin', { internalIP: undefined })];
  return plan(input(t, nodes)).gateways;
}

test('every planned Gateway validates against the JSON Schema mirror', () => {
  const gws = richPlan();
  assert.equal(gws.length, 4);
  for (const g of gws) assert.ok(validate(g), `${g.metadata.name}: ${ajv.errorsText(validate.errors)}`);
});

test('the mirror refuses what upstream refuses, and unknown fields (which the API server would prune)', () => {
  const g = richPlan().find((x) => x.metadata.name === 'cloud')!;
  const bad: [string, (x: Gateway & Record<string, unknown>) => void][] = [
    ['type', (x) => { (x.spec.endpoints![0] as { type: string }).type = 'vpn'; }],
    ['Replicas > 1', (x) => { x.spec.tunnelConfig = { Replicas: 2 }; }],
    ['exposeType', (x) => { (x.spec as { exposeType: string }).exposeType = 'NodePort'; }],
    ['nodeName missing', (x) => { delete (x.spec.endpoints![0] as Partial<{ nodeName: string }>).nodeName; }],
    ['privateIP missing', (x) => { delete (x.status!.nodes![0] as Partial<{ privateIP: string }>).privateIP; }],
    ['unknown spec field', (x) => { (x.spec as Record<string, unknown>).priority = 1; }],
    ['config value not a string', (x) => { (x.spec.endpoints![0].config as Record<string, unknown>)['corvid.dev/priority'] = 0; }],
  ];
  for (const [what, change] of bad) {
    const x = structuredClone(g) as Gateway & Record<string, unknown>;
    change(x);
    assert.equal(validate(x), false, what);
  }
});
