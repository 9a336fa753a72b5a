// A Gateway spec as Raven reads it, and where two specs differ in that reading. Pure.
//
// The comparison `corvid import` promises: the spec `corvid render` writes for an imported pool equals the live
// Gateway's, compared canonically (src/gateway/canonical.ts) after both are read the way Raven's Go types and
// webhook read them, and without what Corvid adds:
// - Go's omitempty: a field at its zero value (underNAT false, port 0, "", an empty map) is the same as absent, and
//   Raven's own writers (yurt-manager, raven-agent) drop it on every update;
// - Raven's defaulting webhook fills a tunnel endpoint's port 4500 (a proxy endpoint's 10262) when it is 0;
// - Corvid's additions: `corvid.dev/` keys in an endpoint's config (docs/gateway-annotations.md), and publicPort
//   4500, Corvid's default (IKE NAT traversal), where Raven has none.

import { canonicalize, canonicalJson } from '../gateway/canonical.ts';
import { CORVID_PREFIX } from '../gateway/render.ts';
import { DEFAULT_PUBLIC_PORT, isObj } from '../topology/normalise.ts';

/** Raven's defaulting webhook: the port of an endpoint that has none (SetDefaultsGateway, raven.openyurt.io/v1beta1). */
export const RAVEN_DEFAULT_PORT: Readonly<Record<string, number>> = { tunnel: 4500, proxy: 10262 };

type Obj = Record<string, unknown>;

/** Go's omitempty: the value, or undefined when it is the zero value of its type. */
function nonZero<T>(x: T): T | undefined {
  if (x === undefined || x === null || x === false || x === 0 || x === '') return undefined;
  if (Array.isArray(x) && x.length === 0) return undefined;
  if (isObj(x) && Object.keys(x).length === 0) return undefined;
  return x;
}

function selectorView(sel: unknown): unknown {
  if (!isObj(sel)) return undefined;
  const exprs = Array.isArray(sel.matchExpressions)
    ? sel.matchExpressions.map((e) => (isObj(e) ? { key: e.key, operator: e.operator, values: nonZero(e.values) } : e))
    : undefined;
  // A present but empty selector stays: it selects every node, where an absent one selects none.
  return { matchLabels: nonZero(sel.matchLabels), matchExpressions: nonZero(exprs) };
}

function configView(config: unknown): Obj | undefined {
  if (!isObj(config)) return undefined;
  const out: Obj = {};
  for (const [k, v] of Object.entries(config)) if (!k.startsWith(CORVID_PREFIX)) out[k] = v;
  return nonZero(out);
}

function endpointView(ep: unknown): unknown {
  if (!isObj(ep)) return ep;
  const type = ep.type;
  const port = nonZero(ep.port) ?? (typeof type === 'string' ? RAVEN_DEFAULT_PORT[type] : undefined);
  const publicPort = ep.publicPort === DEFAULT_PUBLIC_PORT ? undefined : nonZero(ep.publicPort);
  return {
    config: configView(ep.config),
    natType: nonZero(ep.natType),
    nodeName: ep.nodeName,
    port,
    publicIP: nonZero(ep.publicIP),
    publicPort,
    type,
    underNAT: nonZero(ep.underNAT),
  };
}

/** The spec as Raven reads it, without Corvid's additions (see the top of this file); keys sorted. */
export function ravenSpecView(spec: unknown): Obj {
  const s = isObj(spec) ? spec : {};
  const proxy = isObj(s.proxyConfig) ? s.proxyConfig : {};
  const tunnel = isObj(s.tunnelConfig) ? s.tunnelConfig : {};
  return canonicalize({
    endpoints: nonZero(Array.isArray(s.endpoints) ? s.endpoints.map(endpointView) : undefined),
    exposeType: nonZero(s.exposeType),
    nodeSelector: s.nodeSelector === undefined || s.nodeSelector === null ? undefined : selectorView(s.nodeSelector),
    proxyConfig: {
      Replicas: proxy.Replicas ?? 0,
      proxyHTTPPort: nonZero(proxy.proxyHTTPPort),
      proxyHTTPSPort: nonZero(proxy.proxyHTTPSPort),
    },
    tunnelConfig: { Replicas: tunnel.Replicas ?? 0 },
  });
}

/** Whether two specs are the same as Raven reads them, Corvid's additions aside. */
export function sameRavenSpec(live: unknown, corvid: unknown): boolean {
  return canonicalJson(ravenSpecView(live)) === canonicalJson(ravenSpecView(corvid));
}

/** One place where the two readings differ: a JSON path under spec, and the value on each side (absent: none). */
export interface SpecDifference {
  path: string;
  live?: unknown;
  corvid?: unknown;
}

/** Every path where the two specs differ as Raven reads them, in path order; empty when sameRavenSpec. */
export function ravenSpecDifferences(live: unknown, corvid: unknown): SpecDifference[] {
  const out: SpecDifference[] = [];
  walk('spec', ravenSpecView(live), ravenSpecView(corvid), out);
  return out;
}

function walk(path: string, a: unknown, b: unknown, out: SpecDifference[]): void {
  if (canonicalJson(a) === canonicalJson(b)) return;
  if (Array.isArray(a) && Array.isArray(b)) {
    for (let i = 0; i < Math.max(a.length, b.length); i++) walk(`${path}[${i}]`, a[i], b[i], out);
    return;
  }
  if (isObj(a) && isObj(b)) {
    for (const k of [...new Set([...Object.keys(a), ...Object.keys(b)])].sort()) walk(`${path}.${k}`, a[k], b[k], out);
    return;
  }
  out.push({ path, ...(a !== undefined ? { live: a } : {}), ...(b !== undefined ? { corvid: b } : {}) });
}

/**
 * `path (live X, Corvid Y)`. Values under an endpoint's `config` are not shown (they are free text of the
 * operator's, and may hold what must not reach a file); nor are whole objects, only that one side has none.
 */
export function formatDifference(d: SpecDifference): string {
  const show = (v: unknown): string =>
    v === undefined ? 'none' : /\.config(\.|$)/.test(d.path) ? 'set' : isObj(v) || Array.isArray(v) ? 'set' : JSON.stringify(v);
  return `${d.path} (live ${show(d.live)}, Corvid ${show(d.corvid)})`;
}
