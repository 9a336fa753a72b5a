// Whether a served Gateway CRD (apiextensions.k8s.io/v1) can carry what Corvid reads and writes: the check behind the
// sync's start-up preflight, for clusters whose CRD is OpenYurt's rather than Corvid's. Pure.
//
// What Corvid needs is the shape of its own CRD (deploy/crds/gateway.yaml, mirrored by schemas/gateway.schema.json):
// raven.openyurt.io/v1beta1 served and stored, the status subresource (the sync writes status through it), and every
// field of that schema declared with the same type, so the API server neither prunes nor refuses what Corvid writes.

import gatewaySchema from '../../schemas/gateway.schema.json' with { type: 'json' };
import { GATEWAY_CRD_NAME, GATEWAY_GROUP, GATEWAY_KIND, GATEWAY_PLURAL, GATEWAY_VERSION } from './types.ts';
import { isObj } from '../topology/normalise.ts';

export interface CrdVerdict {
  /** Why Corvid cannot work with this CRD; empty when it can. */
  errors: string[];
  /** What works, but needs care. */
  warnings: string[];
}

/** What to do when the served CRD does not fit, for the error that stops the sync. */
export const CRD_REMEDY =
  `install Corvid's own Gateway CRD (deploy/crds/gateway.yaml; leave out the existing-gateway-crd component), or upgrade OpenYurt so that ${GATEWAY_CRD_NAME} serves ${GATEWAY_GROUP}/${GATEWAY_VERSION} as its storage version with the status subresource and every field of deploy/crds/gateway.yaml (docs/migrate-from-raven.md)`;

type Obj = Record<string, unknown>;

const PRESERVE = 'x-kubernetes-preserve-unknown-fields';

/** Compare the served schema `s` with Corvid's `ref` at `path`, recursively; problems go to `out`. */
function compareSchema(path: string, ref: Obj, s: Obj, out: string[]): void {
  if (typeof ref.type === 'string' && typeof s.type === 'string' && ref.type !== s.type) {
    out.push(`${path} is of type ${s.type}, Corvid writes ${ref.type}`);
    return;
  }
  if (Array.isArray(s.enum) && Array.isArray(ref.enum)) {
    const missing = ref.enum.filter((v) => !(s.enum as unknown[]).includes(v));
    if (missing.length > 0) out.push(`${path} does not allow ${missing.map((v) => JSON.stringify(v)).join(', ')}`);
  }
  if (typeof s.maximum === 'number' && (typeof ref.maximum !== 'number' || s.maximum < ref.maximum)) out.push(`${path} has a maximum of ${s.maximum}`);
  if (typeof s.minimum === 'number' && (typeof ref.minimum !== 'number' || s.minimum > ref.minimum)) out.push(`${path} has a minimum of ${s.minimum}`);
  if (Array.isArray(s.required)) {
    const refRequired = Array.isArray(ref.required) ? ref.required : [];
    const extra = s.required.filter((r) => !refRequired.includes(r));
    if (extra.length > 0) out.push(`${path} requires ${extra.join(', ')}, which Corvid does not always write`);
  }
  // Anything below is stored as sent.
  if (s[PRESERVE] === true) return;
  if (isObj(ref.properties)) {
    const served = isObj(s.properties) ? s.properties : {};
    for (const [name, sub] of Object.entries(ref.properties)) {
      if (!isObj(sub)) continue;
      const at = `${path}.${name}`;
      if (isObj(served[name])) compareSchema(at, sub, served[name] as Obj, out);
      else out.push(`${at} is not declared, so the API server drops it`);
    }
  }
  if (isObj(ref.items)) {
    if (isObj(s.items)) compareSchema(`${path}[]`, ref.items, s.items, out);
    else out.push(`${path}[] is not declared`);
  }
  if (isObj(ref.additionalProperties)) {
    if (isObj(s.additionalProperties)) compareSchema(`${path}.*`, ref.additionalProperties, s.additionalProperties, out);
    else out.push(`${path} declares no map entries, so the API server drops them`);
  }
}

/** The verdict on a CRD as `GET .../customresourcedefinitions/gateways.raven.openyurt.io` returns it. */
export function checkGatewayCrd(crd: unknown): CrdVerdict {
  const errors: string[] = [];
  const warnings: string[] = [];
  const c = isObj(crd) ? crd : {};
  const spec = isObj(c.spec) ? c.spec : {};
  const names = isObj(spec.names) ? spec.names : {};
  const status = isObj(c.status) ? c.status : {};
  if (spec.group !== GATEWAY_GROUP || names.kind !== GATEWAY_KIND || names.plural !== GATEWAY_PLURAL) {
    errors.push(`it defines ${String(names.plural)}.${String(spec.group)} of kind ${String(names.kind)}, not ${GATEWAY_CRD_NAME} of kind ${GATEWAY_KIND}`);
  }
  if (spec.scope !== 'Cluster') errors.push(`its scope is ${String(spec.scope)}; Gateways are cluster-scoped`);
  const conditions = Array.isArray(status.conditions) ? status.conditions.filter(isObj) : [];
  if (!conditions.some((x) => x.type === 'Established' && x.status === 'True')) errors.push('it is not Established');

  const versions = Array.isArray(spec.versions) ? spec.versions.filter(isObj) : [];
  const v = versions.find((x) => x.name === GATEWAY_VERSION);
  if (v === undefined || v.served !== true) {
    errors.push(`it does not serve ${GATEWAY_VERSION} (it serves ${versions.filter((x) => x.served === true).map((x) => String(x.name)).join(', ') || 'nothing'})`);
  } else {
    if (v.storage !== true) {
      errors.push(`${GATEWAY_VERSION} is not its storage version: every Gateway would be converted to and from ${String(versions.find((x) => x.storage === true)?.name)}, which drops fields Corvid writes`);
    }
    const sub = isObj(v.subresources) ? v.subresources : {};
    if (!isObj(sub.status)) errors.push(`${GATEWAY_VERSION} has no status subresource, through which the sync writes status`);
    const schema = isObj(v.schema) && isObj(v.schema.openAPIV3Schema) ? v.schema.openAPIV3Schema : undefined;
    if (schema === undefined) errors.push(`${GATEWAY_VERSION} has no schema`);
    else {
      const ref = gatewaySchema as unknown as Obj;
      const refProps = ref.properties as Obj;
      const served = isObj(schema.properties) ? schema.properties : {};
      const problems: string[] = [];
      if (schema[PRESERVE] !== true) {
        for (const part of ['spec', 'status']) {
          if (isObj(served[part])) compareSchema(part, refProps[part] as Obj, served[part] as Obj, problems);
          else problems.push(`${part} is not declared`);
        }
      }
      for (const p of problems) errors.push(`in its ${GATEWAY_VERSION} schema, ${p}`);
    }
  }

  const stored = Array.isArray(status.storedVersions) ? status.storedVersions.filter((x) => x !== GATEWAY_VERSION).map(String) : [];
  if (stored.length > 0) {
    const conversion = isObj(spec.conversion) ? spec.conversion : {};
    const webhook = isObj(conversion.webhook) && isObj(conversion.webhook.clientConfig) && isObj(conversion.webhook.clientConfig.service) ? conversion.webhook.clientConfig.service : undefined;
    const via = conversion.strategy === 'Webhook' ? ` through its conversion webhook${webhook ? ` (Service ${String(webhook.namespace)}/${String(webhook.name)}, yurt-manager's)` : ''}` : '';
    warnings.push(
      `its status.storedVersions lists ${stored.join(', ')}: Gateways written before ${GATEWAY_VERSION} became the storage version may still be stored so, and are read as ${GATEWAY_VERSION} only${via}; keep that running until every Gateway has been written again (Corvid's sync rewrites the ones it owns)`,
    );
  }
  return { errors, warnings };
}
