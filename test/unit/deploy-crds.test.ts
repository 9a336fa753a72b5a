// deploy/crds: every CustomResourceDefinition is a valid apiextensions.k8s.io/v1 CRD with a structural schema
// that kube-apiserver 1.20 accepts, the two CRDs have the shape the domain brief describes, and the example
// topologies are valid Topology objects that the API server would store without pruning anything.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { Ajv } from 'ajv';
import { DEPLOY, REPO_ROOT, loadYamlFile, yamlFiles } from './deploy-support.ts';

const CRD_DIR = join(DEPLOY, 'crds');

function crds(): { file: string; crd: any }[] {
  return yamlFiles(CRD_DIR)
    .flatMap((p) => loadYamlFile(p))
    .filter((m) => m.obj?.kind === 'CustomResourceDefinition')
    .map((m) => ({ file: m.file, crd: m.obj }));
}

// ---------------------------------------------------------------- structural schema rules

const TYPES = new Set(['object', 'array', 'string', 'integer', 'number', 'boolean']);
const JUNCTORS = ['allOf', 'anyOf', 'oneOf', 'not'] as const;
/** Keywords apiextensions.k8s.io/v1 refuses anywhere in a schema. */
const FORBIDDEN = ['$ref', '$schema', 'id', 'definitions', 'dependencies', 'additionalItems', 'patternProperties'];
/** Not allowed inside allOf/anyOf/oneOf/not (structural rule 3). */
const NOT_IN_JUNCTOR = ['description', 'type', 'default', 'additionalProperties', 'nullable'];
const SCALARS = new Set(['string', 'integer', 'number', 'boolean']);

/**
 * The problems of one openAPIV3Schema, per the Kubernetes rules for structural schemas
 * (https://kubernetes.io/docs/tasks/extend-kubernetes/custom-resources/custom-resource-definitions/#specifying-a-structural-schema)
 * plus the apiextensions v1 validation that goes with them, and 1.20's limits (no CEL).
 */
export function structuralProblems(root: any): string[] {
  const problems: string[] = [];
  const bad = (path: string, msg: string): void => {
    problems.push(`${path || '<root>'}: ${msg}`);
  };

  /** Property and item paths a junctor mentions, relative to the node that holds the junctor. */
  const junctorSpecified = (s: any, rel: string, out: Set<string>): void => {
    if (s === null || typeof s !== 'object') return;
    for (const [k, v] of Object.entries(s.properties ?? {})) {
      out.add(`${rel}.properties.${k}`);
      junctorSpecified(v, `${rel}.properties.${k}`, out);
    }
    if (s.items && typeof s.items === 'object' && !Array.isArray(s.items)) {
      out.add(`${rel}.items`);
      junctorSpecified(s.items, `${rel}.items`, out);
    }
    if (s.additionalProperties && typeof s.additionalProperties === 'object') {
      out.add(`${rel}.additionalProperties`);
      junctorSpecified(s.additionalProperties, `${rel}.additionalProperties`, out);
    }
    for (const j of JUNCTORS) for (const sub of j === 'not' ? [s.not].filter(Boolean) : (s[j] ?? [])) junctorSpecified(sub, rel, out);
  };
  const specifiedOutside = (s: any, rel: string): boolean => {
    const parts = rel.split('.').filter(Boolean);
    let cur = s;
    for (let i = 0; i < parts.length; i++) {
      if (parts[i] === 'properties') cur = cur?.properties?.[parts[++i]];
      else if (parts[i] === 'items') cur = cur?.items;
      else if (parts[i] === 'additionalProperties') cur = cur?.additionalProperties;
      if (cur === undefined || cur === null || typeof cur !== 'object') return false;
    }
    return true;
  };
  const isIntOrStringPattern = (s: any): boolean =>
    Array.isArray(s) &&
    s.length === 2 &&
    s.some((x: any) => x?.type === 'integer') &&
    s.some((x: any) => x?.type === 'string') &&
    s.every((x: any) => Object.keys(x).length === 1 || (Object.keys(x).every((k) => k === 'type' || k === 'format' || k === 'pattern')));

  const walk = (s: any, path: string, ctx: { inJunctor: boolean; atRoot: boolean; metadata: boolean }): void => {
    if (s === null || typeof s !== 'object' || Array.isArray(s)) {
      bad(path, 'a schema must be an object');
      return;
    }
    for (const k of FORBIDDEN) if (k in s) bad(path, `${k} is not allowed in a CRD schema`);
    if (s.uniqueItems === true) bad(path, 'uniqueItems: true is not allowed (quadratic validation)');
    if ('x-kubernetes-validations' in s) bad(path, 'x-kubernetes-validations (CEL) needs Kubernetes 1.25+; Corvid supports 1.20');
    const intOrString = s['x-kubernetes-int-or-string'];
    const preserve = s['x-kubernetes-preserve-unknown-fields'];
    if (intOrString !== undefined && intOrString !== true) bad(path, 'x-kubernetes-int-or-string must be true when set');
    if (preserve !== undefined && preserve !== true) bad(path, 'x-kubernetes-preserve-unknown-fields must be true when set');

    if (ctx.inJunctor) {
      for (const k of NOT_IN_JUNCTOR) if (k in s) bad(path, `${k} is not allowed inside allOf/anyOf/oneOf/not`);
    } else {
      // Rule 1: a non-empty type everywhere, except under int-or-string or preserve-unknown-fields.
      if (s.type === undefined || s.type === '') {
        if (intOrString !== true && preserve !== true) bad(path, 'type is missing');
      } else if (!TYPES.has(s.type)) {
        bad(path, `type "${s.type}" is not one of ${[...TYPES].join(', ')}`);
      }
      if (intOrString === true && s.type !== undefined) bad(path, 'x-kubernetes-int-or-string with a type');
      if (ctx.atRoot && s.type !== 'object') bad(path, 'the root must be type: object');
    }

    if (s.properties !== undefined && s.additionalProperties !== undefined) {
      bad(path, 'properties and additionalProperties are mutually exclusive');
    }
    if (s.additionalProperties === false) bad(path, 'additionalProperties: false is not allowed (unknown fields are pruned)');
    if (s.items !== undefined && (Array.isArray(s.items) || typeof s.items !== 'object')) bad(path, 'items must be a single schema');
    if (s.type === 'array' && s.items === undefined && !ctx.inJunctor) bad(path, 'an array needs items');
    if (s.type !== undefined && s.type !== 'array' && s.items !== undefined) bad(path, `items on a ${s.type}`);
    if (s.type !== undefined && s.type !== 'object' && (s.properties !== undefined || s.additionalProperties !== undefined)) {
      bad(path, `properties on a ${s.type}`);
    }
    if (s.required !== undefined && !(Array.isArray(s.required) && s.required.every((r: unknown) => typeof r === 'string'))) {
      bad(path, 'required must be a list of names');
    }
    if (s.enum !== undefined && !Array.isArray(s.enum)) bad(path, 'enum must be a list');
    if (Array.isArray(s.enum) && s.type !== undefined && SCALARS.has(s.type)) {
      for (const v of s.enum) if (!matchesType(v, s.type)) bad(path, `enum value ${JSON.stringify(v)} is not a ${s.type}`);
    }
    if (s.default !== undefined) {
      if (ctx.atRoot || ctx.metadata) bad(path, 'default is not allowed at the root or in metadata');
      if (s.type !== undefined && !matchesType(s.default, s.type)) bad(path, `default ${JSON.stringify(s.default)} is not a ${s.type}`);
    }
    if (s.nullable !== undefined && typeof s.nullable !== 'boolean') bad(path, 'nullable must be a boolean');

    // Kubernetes extensions.
    const listType = s['x-kubernetes-list-type'];
    if (listType !== undefined) {
      if (s.type !== 'array') bad(path, 'x-kubernetes-list-type on a non-array');
      if (!['atomic', 'set', 'map'].includes(listType)) bad(path, `x-kubernetes-list-type "${listType}"`);
      if (listType === 'map') {
        const keys = s['x-kubernetes-list-map-keys'];
        if (!Array.isArray(keys) || keys.length === 0) bad(path, 'x-kubernetes-list-type: map needs x-kubernetes-list-map-keys');
        else if (s.items?.type !== 'object') bad(path, 'x-kubernetes-list-type: map needs object items');
        else {
          for (const k of keys) {
            const p = s.items.properties?.[k];
            if (p === undefined) bad(path, `list map key "${k}" is not a property of the items`);
            else if (!SCALARS.has(p.type)) bad(path, `list map key "${k}" must be a scalar`);
            else if (!(s.items.required ?? []).includes(k) && p.default === undefined) {
              bad(path, `list map key "${k}" must be required or have a default`);
            }
          }
        }
      }
      if (listType === 'set' && s.items && s.items.type !== undefined && !SCALARS.has(s.items.type) && s.items['x-kubernetes-map-type'] !== 'atomic') {
        bad(path, 'x-kubernetes-list-type: set needs scalar (or atomic) items');
      }
    }
    if (s['x-kubernetes-list-map-keys'] !== undefined && listType !== 'map') bad(path, 'x-kubernetes-list-map-keys without list-type map');
    const mapType = s['x-kubernetes-map-type'];
    if (mapType !== undefined) {
      if (s.type !== 'object') bad(path, 'x-kubernetes-map-type on a non-object');
      if (!['atomic', 'granular'].includes(mapType)) bad(path, `x-kubernetes-map-type "${mapType}"`);
    }
    if (s['x-kubernetes-embedded-resource'] === true && (s.type !== 'object' || (s.properties === undefined && preserve !== true))) {
      bad(path, 'x-kubernetes-embedded-resource needs type object and properties or preserve-unknown-fields');
    }

    // Rule 2 and 3: logical junctors.
    for (const j of JUNCTORS) {
      if (s[j] === undefined) continue;
      const subs = j === 'not' ? [s.not] : s[j];
      if (j !== 'not' && !Array.isArray(subs)) {
        bad(path, `${j} must be a list`);
        continue;
      }
      const intOrStringJunctor = intOrString === true && j !== 'not' && isIntOrStringPattern(subs);
      subs.forEach((sub: any, i: number) => {
        if (intOrStringJunctor) return;
        walk(sub, `${path}.${j}[${i}]`, { inJunctor: true, atRoot: false, metadata: ctx.metadata });
      });
      const mentioned = new Set<string>();
      for (const sub of subs) junctorSpecified(sub, '', mentioned);
      for (const rel of mentioned) {
        if (!specifiedOutside(s, rel)) bad(path, `${j} specifies ${rel.slice(1)}, which is not specified outside the ${j}`);
      }
    }

    // Rule 4: metadata at the root may only restrict name and generateName.
    if (ctx.atRoot && s.properties?.metadata !== undefined) {
      const m = s.properties.metadata;
      for (const k of Object.keys(m)) {
        if (!['type', 'properties', 'description'].includes(k)) bad(`${path}.metadata`, `${k} is not allowed on metadata`);
      }
      for (const [k, v] of Object.entries<any>(m.properties ?? {})) {
        if (!['name', 'generateName'].includes(k)) bad(`${path}.metadata`, `only name and generateName may be specified, not ${k}`);
        else if (v.type !== 'string') bad(`${path}.metadata.${k}`, 'must be type: string');
      }
    }

    for (const [k, v] of Object.entries(s.properties ?? {})) {
      walk(v, `${path}.${k}`, { inJunctor: ctx.inJunctor, atRoot: false, metadata: ctx.metadata || (ctx.atRoot && k === 'metadata') });
    }
    if (s.items && typeof s.items === 'object' && !Array.isArray(s.items)) walk(s.items, `${path}[]`, { ...ctx, atRoot: false });
    if (s.additionalProperties && typeof s.additionalProperties === 'object') {
      walk(s.additionalProperties, `${path}.*`, { ...ctx, atRoot: false });
    }
  };
  walk(root, '', { inJunctor: false, atRoot: true, metadata: false });
  return problems;
}

function matchesType(v: unknown, type: string): boolean {
  switch (type) {
    case 'string':
      return typeof v === 'string';
    case 'integer':
      return Number.isInteger(v);
    case 'number':
      return typeof v === 'number';
    case 'boolean':
      return typeof v === 'boolean';
    case 'array':
      return Array.isArray(v);
    case 'object':
      return v !== null && typeof v === 'object' && !Array.isArray(v);
    default:
      return false;
  }
}

describe('the structural-schema checker', () => {
  // The checker is only worth something if it rejects what kube-apiserver rejects.
  const cases: [string, any, RegExp][] = [
    ['missing type', { type: 'object', properties: { a: {} } }, /\.a: type is missing/],
    ['root not an object', { type: 'string' }, /root must be type: object/],
    ['properties with additionalProperties', { type: 'object', properties: { a: { type: 'object', properties: { x: { type: 'string' } }, additionalProperties: { type: 'string' } } } }, /mutually exclusive/],
    ['items as a list', { type: 'object', properties: { a: { type: 'array', items: [{ type: 'string' }] } } }, /items must be a single schema/],
    ['array without items', { type: 'object', properties: { a: { type: 'array' } } }, /needs items/],
    ['type inside anyOf', { type: 'object', properties: { a: { type: 'string', anyOf: [{ type: 'string' }] } } }, /type is not allowed inside/],
    ['junctor field not outside', { type: 'object', properties: { a: { type: 'object', anyOf: [{ properties: { b: { minLength: 1 } } }] } } }, /specifies properties\.b/],
    ['metadata restriction', { type: 'object', properties: { metadata: { type: 'object', properties: { labels: { type: 'object' } } } } }, /only name and generateName/],
    ['uniqueItems', { type: 'object', properties: { a: { type: 'array', items: { type: 'string' }, uniqueItems: true } } }, /uniqueItems/],
    ['$ref', { type: 'object', properties: { a: { $ref: '#/x' } } }, /\$ref/],
    ['CEL', { type: 'object', 'x-kubernetes-validations': [{ rule: 'true' }] }, /CEL/],
    ['list map key not required', { type: 'object', properties: { a: { type: 'array', 'x-kubernetes-list-type': 'map', 'x-kubernetes-list-map-keys': ['k'], items: { type: 'object', properties: { k: { type: 'string' } } } } } }, /required or have a default/],
    ['default of the wrong type', { type: 'object', properties: { a: { type: 'integer', default: 'x' } } }, /default "x" is not a integer/],
  ];
  for (const [name, schema, expected] of cases) {
    test(`rejects: ${name}`, () => {
      const problems = structuralProblems(schema);
      assert.ok(problems.some((p) => expected.test(p)), `expected ${expected} in ${JSON.stringify(problems)}`);
    });
  }
  test('accepts int-or-string, preserve-unknown-fields and a well-formed junctor', () => {
    assert.deepEqual(
      structuralProblems({
        type: 'object',
        properties: {
          port: { 'x-kubernetes-int-or-string': true, anyOf: [{ type: 'integer' }, { type: 'string' }] },
          free: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true },
          any: { 'x-kubernetes-preserve-unknown-fields': true },
          choice: { type: 'object', properties: { a: { type: 'string' }, b: { type: 'string' } }, oneOf: [{ required: ['a'] }, { required: ['b'] }] },
          list: { type: 'array', 'x-kubernetes-list-type': 'map', 'x-kubernetes-list-map-keys': ['name'], items: { type: 'object', required: ['name'], properties: { name: { type: 'string' } } } },
          metadata: { type: 'object', properties: { name: { type: 'string', maxLength: 63 } } },
        },
      }),
      [],
    );
  });
});

// ---------------------------------------------------------------- the CRDs in deploy/crds

const present = crds();
const NO_CRDS = present.length === 0 ? 'no CustomResourceDefinition in deploy/crds yet' : undefined;

describe('deploy/crds', { skip: NO_CRDS }, () => {
  for (const { file, crd } of present) {
    test(`${file}: a valid apiextensions.k8s.io/v1 CRD with structural schemas`, () => {
      assert.equal(crd.apiVersion, 'apiextensions.k8s.io/v1');
      const { group, names, scope, versions } = crd.spec;
      assert.equal(crd.metadata.name, `${names.plural}.${group}`, 'metadata.name is <plural>.<group>');
      assert.ok(['Cluster', 'Namespaced'].includes(scope));
      assert.match(names.kind, /^[A-Z][A-Za-z0-9]*$/);
      for (const n of [names.plural, names.singular, ...(names.shortNames ?? [])].filter(Boolean)) assert.match(n, /^[a-z][a-z0-9]*$/);
      assert.ok(Array.isArray(versions) && versions.length > 0);
      assert.equal(versions.filter((v: any) => v.storage === true).length, 1, 'exactly one storage version');
      assert.equal(new Set(versions.map((v: any) => v.name)).size, versions.length, 'version names are unique');
      for (const v of versions) {
        assert.match(v.name, /^v\d+((alpha|beta)\d+)?$/);
        assert.equal(typeof v.served, 'boolean');
        assert.ok(v.schema?.openAPIV3Schema, `${v.name}: a schema`);
        assert.deepEqual(structuralProblems(v.schema.openAPIV3Schema), [], `${v.name}: structural schema`);
        if (v.subresources?.status !== undefined) assert.deepEqual(v.subresources.status, {});
        for (const c of v.additionalPrinterColumns ?? []) {
          assert.ok(['integer', 'number', 'string', 'boolean', 'date'].includes(c.type), `column ${c.name}: type ${c.type}`);
          assert.match(c.jsonPath, /^\./, `column ${c.name}: jsonPath starts with "."`);
        }
      }
    });
  }

  test('deploy/crds has the two CRDs the kustomization lists', { skip: missing() }, () => {
    const names = present.map((p) => p.crd.metadata.name).sort();
    assert.deepEqual(names, ['gateways.raven.openyurt.io', 'topologies.corvid.dev']);
  });

  const gateway = present.find((p) => p.crd.metadata.name === 'gateways.raven.openyurt.io')?.crd;
  test('Gateway: the raven.openyurt.io/v1beta1 shape upstream tools expect', { skip: gateway ? undefined : 'deploy/crds/gateway.yaml not written yet' }, () => {
    assert.equal(gateway.spec.scope, 'Cluster');
    assert.equal(gateway.spec.names.kind, 'Gateway');
    assert.ok(gateway.spec.names.shortNames.includes('gw'));
    const v = gateway.spec.versions.find((x: any) => x.storage);
    assert.equal(v.name, 'v1beta1');
    assert.deepEqual(v.subresources.status, {});
    const s = v.schema.openAPIV3Schema.properties;
    const ep = s.spec.properties.endpoints.items.properties;
    for (const f of ['nodeName', 'type', 'port', 'underNAT', 'natType', 'publicIP', 'publicPort', 'config']) assert.ok(ep[f], `spec.endpoints[].${f}`);
    assert.ok(s.spec.properties.tunnelConfig.properties.Replicas, 'spec.tunnelConfig.Replicas (capital R)');
    assert.ok(s.spec.properties.proxyConfig.properties.Replicas, 'spec.proxyConfig.Replicas (capital R)');
    assert.ok(s.spec.properties.exposeType);
    assert.ok(s.spec.properties.nodeSelector);
    assert.ok(s.status.properties.nodes.items.properties.nodeName);
    assert.ok(s.status.properties.activeEndpoints.items.properties.nodeName);
  });

  const topology = present.find((p) => p.crd.metadata.name === 'topologies.corvid.dev')?.crd;
  test('Topology: cluster-scoped, status subresource with kstatus fields', { skip: topology ? undefined : 'deploy/crds/topology.yaml not written yet' }, () => {
    assert.equal(topology.spec.scope, 'Cluster');
    assert.equal(topology.spec.names.kind, 'Topology');
    const v = topology.spec.versions.find((x: any) => x.storage);
    assert.equal(v.name, 'v1alpha1');
    assert.deepEqual(v.subresources.status, {});
    const status = v.schema.openAPIV3Schema.properties.status;
    assert.ok(status, 'status in the schema (otherwise the API server prunes what the sync writes)');
    const c = status.properties.conditions.items.properties;
    for (const f of ['type', 'status', 'reason', 'message', 'lastTransitionTime']) assert.ok(c[f], `status.conditions[].${f}`);
    for (const f of ['observedGeneration', 'lastAppliedRevision', 'lastAttemptedRevision']) assert.ok(status.properties[f], `status.${f}`);
  });

  test('the example topologies are valid Topology objects, with no field the API server would prune', { skip: topology ? undefined : 'deploy/crds/topology.yaml not written yet' }, () => {
    const v = topology.spec.versions.find((x: any) => x.storage);
    const ajv = new Ajv({ strict: false, allErrors: true, validateFormats: false });
    const schema = toJsonSchema(v.schema.openAPIV3Schema);
    // apiVersion, kind and metadata are always known to the API server, declared or not.
    schema.properties = { apiVersion: { type: 'string' }, kind: { type: 'string' }, metadata: { type: 'object' }, ...schema.properties };
    const validate = ajv.compile(schema);
    const files = [join(REPO_ROOT, 'topology', 'example.yaml')];
    const examples = join(REPO_ROOT, 'topology', 'examples');
    if (existsSync(examples)) files.push(...readdirSync(examples).filter((f) => /\.ya?ml$/.test(f)).map((f) => join(examples, f)));
    for (const f of files) {
      for (const { obj } of loadYamlFile(f)) {
        assert.equal(`${obj.apiVersion}`, `${topology.spec.group}/${v.name}`, f);
        assert.ok(validate(obj), `${f}: ${ajv.errorsText(validate.errors)}`);
      }
    }
  });
});

function missing(): string | undefined {
  const want = ['gateway.yaml', 'topology.yaml'].filter((f) => !existsSync(join(CRD_DIR, f)));
  return want.length > 0 ? `not written yet: ${want.join(', ')}` : undefined;
}

/**
 * An openAPIV3Schema as a JSON Schema for ajv: Kubernetes extensions dropped, `nullable` honoured, and objects with
 * `properties` closed (the API server prunes unknown fields silently; a test should see them).
 */
function toJsonSchema(s: any): any {
  if (s === null || typeof s !== 'object') return s;
  if (Array.isArray(s)) return s.map(toJsonSchema);
  const out: any = {};
  for (const [k, v] of Object.entries(s)) {
    if (k.startsWith('x-kubernetes-') || k === 'nullable' || k === 'format') continue;
    if (k === 'properties') out.properties = Object.fromEntries(Object.entries(v as object).map(([p, ps]) => [p, toJsonSchema(ps)]));
    else if (['items', 'additionalProperties', 'not'].includes(k) || JUNCTORS.includes(k as never)) out[k] = toJsonSchema(v);
    else out[k] = v;
  }
  if (s['x-kubernetes-int-or-string'] === true && out.type === undefined && out.anyOf === undefined) out.type = ['integer', 'string'];
  if (s.nullable === true && typeof out.type === 'string') out.type = [out.type, 'null'];
  if (out.properties !== undefined && out.additionalProperties === undefined && s['x-kubernetes-preserve-unknown-fields'] !== true) {
    out.additionalProperties = false;
  }
  return out;
}
