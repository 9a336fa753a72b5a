// The committed CRD is generated from the JSON Schema, is structural, and accepts what the validator accepts.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Ajv } from 'ajv';
import { parse } from 'yaml';
import { CRD_PATH, renderTopologyCrd, topologyCrd } from '../../scripts/gen-topology-crd.ts';
import { TOPOLOGY_SCHEMA } from '../../src/topology/schema.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
type Json = Record<string, unknown>;

function openAPI(): Json {
  const crd = topologyCrd() as { spec: { versions: { schema: { openAPIV3Schema: Json } }[] } };
  return crd.spec.versions[0].schema.openAPIV3Schema;
}

/** Every schema node reachable through properties, items and additionalProperties. */
function* nodes(n: Json, path = ''): Generator<[string, Json]> {
  yield [path, n];
  for (const [k, v] of Object.entries((n.properties as Json) ?? {})) yield* nodes(v as Json, `${path}.${k}`);
  if (n.items) yield* nodes(n.items as Json, `${path}[]`);
  if (n.additionalProperties && typeof n.additionalProperties === 'object') yield* nodes(n.additionalProperties as Json, `${path}{}`);
}

describe('topology CRD', () => {
  it('matches the committed deploy/crds/topology.yaml (regenerate with npx node scripts/gen-topology-crd.ts)', () => {
    assert.equal(readFileSync(CRD_PATH, 'utf8'), renderTopologyCrd());
  });

  it('is cluster-scoped, v1alpha1, short name topo, with a status subresource and printer columns', () => {
    const crd = parse(readFileSync(CRD_PATH, 'utf8'));
    assert.equal(crd.metadata.name, 'topologies.corvid.dev');
    assert.equal(crd.spec.scope, 'Cluster');
    assert.deepEqual(crd.spec.names.shortNames, ['topo']);
    const v = crd.spec.versions[0];
    assert.equal(v.name, 'v1alpha1');
    assert.deepEqual(v.subresources, { status: {} });
    assert.deepEqual(v.additionalPrinterColumns.slice(0, 3).map((c: Json) => c.name), ['Ready', 'Revision', 'Age']);
    const status = v.schema.openAPIV3Schema.properties.status.properties;
    assert.deepEqual(Object.keys(status).sort(), ['conditions', 'lastAppliedRevision', 'lastAttemptedRevision', 'observedGeneration', 'podSubnets']);
  });

  it('is structural: every node has a type, no $ref, no CEL, no additionalProperties: false', () => {
    const text = readFileSync(CRD_PATH, 'utf8');
    assert.ok(!text.includes('$ref') && !text.includes('x-kubernetes-validations') && !text.includes('x-message'));
    for (const [path, n] of nodes(openAPI())) {
      assert.equal(typeof n.type, 'string', `no type at ${path}`);
      assert.notEqual(n.additionalProperties, false, path);
      if (path.startsWith('.spec')) assert.equal(typeof n.description, 'string', `no description at ${path}`);
    }
  });

  it('accepts every example, and rejects a wrong enum', () => {
    const ajv = new Ajv({ strict: false, allErrors: true });
    const validate = ajv.compile(openAPI());
    const files = ['topology/example.yaml', ...readdirSync(join(ROOT, 'topology/examples')).map((f) => `topology/examples/${f}`)];
    for (const f of files) {
      const obj = parse(readFileSync(join(ROOT, f), 'utf8'));
      assert.ok(validate(obj), `${f}: ${JSON.stringify(validate.errors)}`);
    }
    const bad = parse(readFileSync(join(ROOT, 'topology/example.yaml'), 'utf8'));
    bad.spec.encryption.backend = 'rot13';
    assert.equal(validate(bad), false);
  });
});

describe('topology JSON schema', () => {
  it('describes every field and closes every object', () => {
    const defs = TOPOLOGY_SCHEMA.$defs as Json;
    const walk = (n: Json, path: string): void => {
      if (n.type === 'object' && n.properties) assert.equal(n.additionalProperties, false, `open object at ${path}`);
      for (const [k, v] of Object.entries((n.properties as Json) ?? {})) {
        assert.equal(typeof (v as Json).description, 'string', `no description at ${path}.${k}`);
        walk(v as Json, `${path}.${k}`);
      }
    };
    walk(TOPOLOGY_SCHEMA, '');
    for (const [name, d] of Object.entries(defs)) {
      assert.equal(typeof (d as Json).description, 'string', `no description for $defs.${name}`);
      walk(d as Json, `$defs.${name}`);
    }
  });
});
