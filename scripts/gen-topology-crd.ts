// Generates deploy/crds/topology.yaml (the topologies.corvid.dev CRD) from schemas/topology.schema.json.
//   npx node scripts/gen-topology-crd.ts          write the file
//   npx node scripts/gen-topology-crd.ts --check  exit 1 when the committed file is out of date
// The spec schema is the JSON Schema made structural for Kubernetes 1.20: $refs inlined, const as a one-value enum,
// every node typed, and what a CRD cannot say left out (additionalProperties: false, since unknown fields are pruned;
// propertyNames; defaults, so the stored object stays as written in Git; our x- annotations). No CEL.

import { readFile, writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import schemaJson from '../schemas/topology.schema.json' with { type: 'json' };

type Json = Record<string, unknown>;

export const CRD_PATH = fileURLToPath(new URL('../deploy/crds/topology.yaml', import.meta.url));

const KEEP = [
  'description',
  'type',
  'enum',
  'pattern',
  'minLength',
  'maxLength',
  'minimum',
  'maximum',
  'minItems',
  'maxItems',
  'required',
] as const;

function resolveRef(node: Json, root: Json): Json {
  let n = node;
  while (typeof n.$ref === 'string') {
    const ref = n.$ref;
    if (!ref.startsWith('#/$defs/')) throw new Error(`unsupported $ref ${ref}`);
    const target = (root.$defs as Json)[ref.slice('#/$defs/'.length)] as Json;
    const { $ref: _drop, ...siblings } = n;
    // Siblings of $ref (a field's own description) win over the definition's.
    n = { ...target, ...siblings };
  }
  return n;
}

function inferType(values: unknown[]): string {
  const types = new Set(values.map((v) => (typeof v === 'number' && Number.isInteger(v) ? 'integer' : typeof v)));
  if (types.size !== 1) throw new Error(`enum with mixed types: ${JSON.stringify(values)}`);
  return [...types][0];
}

/** One JSON Schema node as a structural OpenAPI v3 schema node. */
export function toStructural(node: Json, root: Json): Json {
  const n = resolveRef(node, root);
  const out: Json = {};
  for (const k of KEEP) if (n[k] !== undefined) out[k] = n[k];
  if (n.const !== undefined) out.enum = [n.const];
  if (out.type === undefined && Array.isArray(out.enum)) out.type = inferType(out.enum as unknown[]);
  if (n.properties) {
    const props: Json = {};
    for (const [k, v] of Object.entries(n.properties as Json)) props[k] = toStructural(v as Json, root);
    out.properties = props;
  }
  if (n.items) out.items = toStructural(n.items as Json, root);
  if (n.additionalProperties && typeof n.additionalProperties === 'object') {
    out.additionalProperties = toStructural(n.additionalProperties as Json, root);
  }
  if (out.type === undefined) throw new Error(`schema node without a type: ${JSON.stringify(n).slice(0, 120)}`);
  // Order the keys the same way every time.
  const order = ['description', 'type', 'required', 'enum', 'pattern', 'minLength', 'maxLength', 'minimum', 'maximum', 'minItems', 'maxItems', 'properties', 'items', 'additionalProperties'];
  return Object.fromEntries(order.filter((k) => out[k] !== undefined).map((k) => [k, out[k]]));
}

const CONDITION: Json = {
  description: 'One kstatus condition (metav1.Condition).',
  type: 'object',
  required: ['type', 'status', 'lastTransitionTime', 'reason', 'message'],
  properties: {
    type: { description: 'Ready, Reconciling or Stalled.', type: 'string', maxLength: 316 },
    status: { description: 'True, False or Unknown.', type: 'string', enum: ['True', 'False', 'Unknown'] },
    observedGeneration: { description: 'The metadata.generation the condition was set for.', type: 'integer', format: 'int64', minimum: 0 },
    lastTransitionTime: { description: 'When the status last changed.', type: 'string', format: 'date-time' },
    reason: { description: 'A CamelCase reason, e.g. Succeeded, ValidationFailed, Progressing.', type: 'string', maxLength: 1024, minLength: 1 },
    message: { description: 'Human-readable details, e.g. the first validation errors as file:line:col: path: message.', type: 'string', maxLength: 32768 },
  },
};

const STATUS: Json = {
  description: 'What the sync controller last did with this topology (Flux-style kstatus).',
  type: 'object',
  // As Flux's own CRDs: a Topology the sync has not judged yet is InProgress to kstatus, not Current.
  default: { observedGeneration: -1 },
  properties: {
    observedGeneration: { description: 'The metadata.generation last processed.', type: 'integer', format: 'int64' },
    lastAppliedRevision: {
      description: 'The last revision whose Gateways were applied, e.g. main@sha1:<40 hex>. A broken revision never replaces it.',
      type: 'string',
    },
    lastAttemptedRevision: { description: 'The last revision the controller tried, valid or not.', type: 'string' },
    podSubnets: {
      description: 'Where the pod subnets in the Gateways status.nodes[].subnets come from, as of the last plan.',
      type: 'object',
      properties: {
        source: { description: 'podCIDR (node.spec.podCIDRs) or calico (Calico IPAM BlockAffinities).', type: 'string', enum: ['podCIDR', 'calico'] },
        reason: { description: 'Why: the --pod-subnets flag, the topology, or what auto-detection found.', type: 'string', maxLength: 1024 },
        problems: {
          description: 'Calico IPAM objects left out of every route (malformed, overlapping between nodes, of an unknown node), one line each, at most 20 and then a count.',
          type: 'array',
          maxItems: 21,
          items: { type: 'string', maxLength: 1024 },
        },
      },
    },
    conditions: {
      description: 'Ready, Reconciling and Stalled.',
      type: 'array',
      'x-kubernetes-list-type': 'map',
      'x-kubernetes-list-map-keys': ['type'],
      items: CONDITION,
    },
  },
};

/** The CRD object. */
export function topologyCrd(schema: Json = schemaJson as Json): Json {
  const spec = toStructural((schema.properties as Json).spec as Json, schema);
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: {
      name: 'topologies.corvid.dev',
      labels: { 'app.kubernetes.io/name': 'corvid', 'app.kubernetes.io/component': 'crd' },
    },
    spec: {
      group: 'corvid.dev',
      scope: 'Cluster',
      names: { kind: 'Topology', listKind: 'TopologyList', plural: 'topologies', singular: 'topology', shortNames: ['topo'] },
      versions: [
        {
          name: 'v1alpha1',
          served: true,
          storage: true,
          subresources: { status: {} },
          additionalPrinterColumns: [
            { name: 'Ready', type: 'string', jsonPath: '.status.conditions[?(@.type=="Ready")].status' },
            { name: 'Revision', type: 'string', jsonPath: '.status.lastAppliedRevision' },
            { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' },
            { name: 'Status', type: 'string', priority: 1, jsonPath: '.status.conditions[?(@.type=="Ready")].message' },
          ],
          schema: {
            openAPIV3Schema: {
              description: schema.description,
              type: 'object',
              required: ['spec'],
              properties: {
                apiVersion: { description: 'corvid.dev/v1alpha1', type: 'string' },
                kind: { description: 'Topology', type: 'string' },
                metadata: { type: 'object' },
                spec: spec,
                status: STATUS,
              },
            },
          },
        },
      ],
    },
  };
}

/** The CRD as committed in deploy/crds/topology.yaml. */
export function renderTopologyCrd(schema?: Json): string {
  const header =
    '# Generated by scripts/gen-topology-crd.ts from schemas/topology.schema.json; do not edit.\n' +
    '# Regenerate with: npx node scripts/gen-topology-crd.ts\n';
  return header + stringify(topologyCrd(schema), { lineWidth: 0, aliasDuplicateObjects: false });
}

async function cli(argv: string[]): Promise<number> {
  const text = renderTopologyCrd();
  if (argv.includes('--check')) {
    const current = await readFile(CRD_PATH, 'utf8').catch(() => '');
    if (current !== text) {
      process.stderr.write(`${CRD_PATH} is out of date; run: npx node scripts/gen-topology-crd.ts\n`);
      return 1;
    }
    return 0;
  }
  await writeFile(CRD_PATH, text);
  process.stdout.write(`wrote ${CRD_PATH}\n`);
  return 0;
}

if (import.meta.main) process.exitCode = await cli(process.argv.slice(2));
