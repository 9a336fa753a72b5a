// `corvid import`'s conversion: the live Gateways Raven wrote, and the nodes' labels, in; a topology file and the
// list of what it could not carry over out. Pure.
//
// One pool per Raven Gateway (same name, so Corvid adopts the Gateway in place): its nodeSelector as it is, its
// tunnel endpoints in their order as the gateway candidates, their publicIP and publicPort, underNAT as behindNAT.
// Everything else Raven configured is listed, never silently dropped. The result is checked with Corvid's own rules
// before it is returned: the validator (a pool it refuses is left out, with its reasons), and the planner's spec,
// compared with the live one as Raven reads both (raven-spec.ts).

import { Document, type Node as YamlNode, type YAMLSeq } from 'yaml';
import type { Gateway } from '../gateway/types.ts';
import { managedByCorvid, TOPOLOGY_LABEL } from '../gateway/keys.ts';
import { CORVID_PREFIX, YAML_OPTIONS } from '../gateway/render.ts';
import { loadTopology, TOPOLOGY_API_VERSION, TOPOLOGY_KIND } from '../topology/index.ts';
import type { LabelSelector, LabelSelectorRequirement } from '../topology/types.ts';
import { usableIPVersion } from '../topology/ip.ts';
import { DEFAULT_PUBLIC_PORT, isObj } from '../topology/normalise.ts';
import { plan, SelectorIndex, TUNNEL_PORT } from '../plan/index.ts';
import { poolMembership } from '../plan/membership.ts';
import { formatDifference, ravenSpecDifferences, RAVEN_DEFAULT_PORT } from './raven-spec.ts';

/** The node label yurt-manager's gateway controllers pick a Gateway's nodes by, whatever its nodeSelector says. */
export const RAVEN_GATEWAY_LABEL = 'raven.openyurt.io/gateway';
const RAVEN_PREFIX = 'raven.openyurt.io/';
/** The name the validator reports the generated file under. */
const FILE = 'imported.yaml';
/** Notes on several nodes name this many, then a count. */
const NAMED_NODES = 5;
const COMMENT_WIDTH = 112;

export interface LabelledNode {
  name: string;
  labels: Readonly<Record<string, string>>;
}

export interface ImportOptions {
  /** metadata.name of the topology. */
  name: string;
  /** The Secret key spec.encryption.pskSecretRef names; the key itself is never read or written. */
  pskSecretRef: { name: string; key: string };
}

/**
 * not-imported: a whole Gateway left out; dropped: a setting of an imported one not carried over; changed: carried
 * over, but Corvid will write or do something else than Raven did.
 */
export type NoteKind = 'not-imported' | 'dropped' | 'changed';

export interface ImportNote {
  /** The Gateway (= pool) the note is about; absent for the topology as a whole. */
  gateway?: string;
  kind: NoteKind;
  message: string;
}

export type ImportResult =
  | { ok: true; text: string; document: TopologyDocument; pools: string[]; notes: ImportNote[]; warnings: string[] }
  | { ok: false; errors: string[]; notes: ImportNote[] };

interface GatewayDoc {
  node: string;
  publicIP?: string;
  publicPort?: number;
}

interface PoolDoc {
  name: string;
  nodeSelector: LabelSelector;
  behindNAT?: true;
  gateways: GatewayDoc[];
}

export interface TopologyDocument {
  apiVersion: typeof TOPOLOGY_API_VERSION;
  kind: typeof TOPOLOGY_KIND;
  metadata: { name: string };
  spec: {
    encryption: { pskSecretRef: { name: string; key: string } };
    connectivity?: { rules: { action: 'deny'; pools: [string, string] }[] };
    pools: PoolDoc[];
  };
}

const KIND_WORDS: Record<NoteKind, string> = { 'not-imported': 'not imported', dropped: 'not carried over', changed: 'changed' };

/** One line: `Gateway <name>: <kind>: <message>`. */
export function formatNote(n: ImportNote): string {
  return `${n.gateway !== undefined ? `Gateway ${n.gateway}` : 'topology'}: ${KIND_WORDS[n.kind]}: ${n.message}`;
}

/** What the operator must do about the pre-shared key: the file names a Secret, nobody has created it. */
export function pskInstructions(ref: { name: string; key: string }): string[] {
  return [
    `spec.encryption.pskSecretRef names Secret ${ref.name}, key ${ref.key}, in Corvid's namespace (corvid-system unless you changed it). The key is not in this file and was not read from the cluster: Raven's is not reused. Create it before the agents start:`,
    `  kubectl -n corvid-system create secret generic ${ref.name} --from-literal=${ref.key}="$(openssl rand -base64 48)"`,
  ];
}

type Obj = Record<string, unknown>;

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** `a, b, c and 4 more`. */
function someNames(names: readonly string[]): string {
  const shown = names.slice(0, NAMED_NODES).join(', ');
  return names.length > NAMED_NODES ? `${shown} and ${names.length - NAMED_NODES} more` : shown;
}

/** The selector as the topology writes it: matchLabels and matchExpressions, empty parts left out. */
function selectorOf(sel: Obj): LabelSelector {
  const out: LabelSelector = {};
  if (isObj(sel.matchLabels) && Object.keys(sel.matchLabels).length > 0) out.matchLabels = sel.matchLabels as Record<string, string>;
  if (Array.isArray(sel.matchExpressions) && sel.matchExpressions.length > 0) {
    out.matchExpressions = sel.matchExpressions.map((e) => {
      const r = isObj(e) ? e : {};
      const values = Array.isArray(r.values) && r.values.length > 0 ? { values: r.values as string[] } : {};
      return { key: r.key as string, operator: r.operator as LabelSelectorRequirement['operator'], ...values };
    });
  }
  return out;
}

/** One Gateway -> its pool, or undefined (with the reason in notes) when it cannot become one. */
function draftPool(gw: Gateway, gatewayOf: Map<string, string>, notes: ImportNote[]): PoolDoc | undefined {
  const name = gw.metadata.name;
  const note = (kind: NoteKind, message: string): void => void notes.push({ gateway: name, kind, message });
  const labels = gw.metadata.labels ?? {};
  if (managedByCorvid(gw)) {
    note('not-imported', `already managed by Corvid (topology ${labels[TOPOLOGY_LABEL] ?? 'unknown'}); that topology keeps it`);
    return undefined;
  }
  if ((gw.metadata as { deletionTimestamp?: string }).deletionTimestamp !== undefined) {
    note('not-imported', 'it is being deleted');
    return undefined;
  }
  const spec: Obj = isObj(gw.spec) ? (gw.spec as unknown as Obj) : {};
  const suggestion = `a pool needs one; yurt-manager picks this Gateway's nodes by the label ${RAVEN_GATEWAY_LABEL}=${name}, so add the pool with nodeSelector {matchLabels: {${RAVEN_GATEWAY_LABEL}: ${name}}} if that is what it should select`;
  if (!isObj(spec.nodeSelector)) {
    note('not-imported', `it has no spec.nodeSelector: ${suggestion}`);
    return undefined;
  }
  const nodeSelector = selectorOf(spec.nodeSelector);
  if (nodeSelector.matchLabels === undefined && nodeSelector.matchExpressions === undefined) {
    note('not-imported', `its spec.nodeSelector is empty (it would select every node, which Corvid refuses): ${suggestion}`);
    return undefined;
  }

  const gateways: GatewayDoc[] = [];
  const underNAT: boolean[] = [];
  const proxies: string[] = [];
  const endpoints = Array.isArray(spec.endpoints) ? spec.endpoints : [];
  endpoints.forEach((raw, i) => {
    const ep: Obj = isObj(raw) ? raw : {};
    const node = typeof ep.nodeName === 'string' ? ep.nodeName : '';
    const at = node === '' ? `endpoints[${i}]` : `the endpoint on node ${node}`;
    if (ep.type === 'proxy') {
      proxies.push(node);
      return;
    }
    if (ep.type !== 'tunnel') {
      note('dropped', `${at}: type ${JSON.stringify(ep.type)} is neither tunnel nor proxy`);
      return;
    }
    if (node === '') {
      note('dropped', `${at}: no nodeName`);
      return;
    }
    const owner = gatewayOf.get(node);
    if (owner !== undefined) {
      note('dropped', owner === name ? `${at}: listed twice; the first one is kept` : `${at}: the node is a gateway of ${owner} already, and a node is a candidate of one pool only`);
      return;
    }
    gatewayOf.set(node, name);
    const g: GatewayDoc = { node };
    if (typeof ep.publicIP === 'string' && ep.publicIP !== '') {
      if (usableIPVersion(ep.publicIP) !== 0) g.publicIP = ep.publicIP;
      else note('dropped', `${at}: publicIP ${JSON.stringify(ep.publicIP)} is not an IPv4 or IPv6 address peers could use`);
    }
    if (ep.publicPort !== undefined && ep.publicPort !== 0) {
      const p = ep.publicPort;
      if (typeof p !== 'number' || !Number.isInteger(p) || p < 1 || p > 65535) note('dropped', `${at}: publicPort ${JSON.stringify(p)} is not a port number`);
      else if (p !== DEFAULT_PUBLIC_PORT) g.publicPort = p;
    }
    const port = typeof ep.port === 'number' && ep.port !== 0 ? ep.port : RAVEN_DEFAULT_PORT.tunnel;
    if (port !== TUNNEL_PORT) note('changed', `${at}: Raven's tunnel listens on port ${port}; Corvid's gateways use ${TUNNEL_PORT}`);
    if (typeof ep.natType === 'string' && ep.natType !== '') {
      note('dropped', `${at}: natType ${JSON.stringify(ep.natType)} (raven-agent's STUN NAT traversal): Corvid does not punch holes between pools behind NAT, it relays them`);
    }
    const config = isObj(ep.config) ? Object.keys(ep.config).filter((k) => !k.startsWith(CORVID_PREFIX)).sort() : [];
    if (config.length > 0) note('dropped', `${at}: config keys ${config.join(', ')} (Corvid's agent reads none of them; values not shown)`);
    underNAT.push(ep.underNAT === true);
    gateways.push(g);
  });
  if (proxies.length > 0) {
    note('dropped', `proxy endpoints on ${someNames(proxies.map((p) => p || '(no node)'))}: Raven's layer 7 proxy; Corvid has none`);
  }
  if (gateways.length === 0) {
    note('not-imported', 'it has no tunnel endpoint, and Corvid elects only declared gateway candidates');
    return undefined;
  }

  const behindNAT = underNAT.includes(true);
  if (behindNAT && underNAT.includes(false)) {
    note('changed', 'its tunnel endpoints disagree on underNAT (upstream\'s webhook refuses that); the pool is behind NAT, so its gateways only initiate');
  }
  if (typeof spec.exposeType === 'string' && spec.exposeType !== '') {
    const lb = spec.exposeType === 'LoadBalancer' ? "; yurt-manager's LoadBalancer Services for it are not Corvid's, and its address reaches Corvid only as the publicIP raven-agent wrote into the endpoint" : '';
    note('dropped', `exposeType ${spec.exposeType}: Corvid leaves it empty${lb}`);
  }
  const replicas = isObj(spec.tunnelConfig) ? spec.tunnelConfig.Replicas : undefined;
  if (replicas !== 1) {
    const raven = replicas === 0 || replicas === undefined ? 'Raven elects no tunnel endpoint for this Gateway' : `tunnelConfig.Replicas is ${JSON.stringify(replicas)}`;
    note('changed', `${raven}; Corvid elects one active gateway per pool and writes tunnelConfig.Replicas 1`);
  }
  const proxy: Obj = isObj(spec.proxyConfig) ? spec.proxyConfig : {};
  const proxySettings = Object.keys(proxy).filter((k) => proxy[k] !== undefined && proxy[k] !== 0 && proxy[k] !== '').sort();
  if (proxySettings.length > 0) note('dropped', `proxyConfig ${proxySettings.join(', ')} (Raven's layer 7 proxy): Corvid writes proxyConfig {Replicas: 0}`);
  const ravenAnnotations = Object.keys(gw.metadata.annotations ?? {}).filter((k) => k.startsWith(RAVEN_PREFIX)).sort();
  if (ravenAnnotations.length > 0) note('dropped', `annotations ${ravenAnnotations.join(', ')}: Corvid does not read them`);

  return { name, nodeSelector, ...(behindNAT ? { behindNAT: true as const } : {}), gateways };
}

function documentOf(o: ImportOptions, pools: readonly PoolDoc[]): TopologyDocument {
  // With every pool behind NAT none can relay, and Corvid refuses two such pools that may talk.
  const allBehindNAT = pools.length > 1 && pools.every((p) => p.behindNAT === true);
  return {
    apiVersion: TOPOLOGY_API_VERSION,
    kind: TOPOLOGY_KIND,
    metadata: { name: o.name },
    spec: {
      encryption: { pskSecretRef: { name: o.pskSecretRef.name, key: o.pskSecretRef.key } },
      ...(allBehindNAT ? { connectivity: { rules: [{ action: 'deny' as const, pools: ['*', '*'] as [string, string] }] } } : {}),
      pools: [...pools],
    },
  };
}

/**
 * Comment lines, each at most COMMENT_WIDTH wide where words allow, continuation lines indented like the first. An
 * indented line is a command to copy: kept whole.
 */
function wrap(line: string): string[] {
  if (/^ {2}[^\s-]/.test(line)) return [line];
  const indent = /^ */.exec(line)![0] + (/^ *- /.test(line) ? '  ' : '');
  const out: string[] = [];
  let cur = '';
  for (const word of line.trimStart().split(' ')) {
    const head = out.length === 0 ? /^ */.exec(line)![0] : indent;
    if (cur !== '' && head.length + cur.length + 1 + word.length > COMMENT_WIDTH) {
      out.push(head + cur);
      cur = word;
    } else cur = cur === '' ? word : `${cur} ${word}`;
  }
  out.push((out.length === 0 ? /^ */.exec(line)![0] : indent) + cur);
  return out;
}

function comment(lines: readonly string[]): string {
  return lines
    .flatMap((l) => (l === '' ? [''] : wrap(l)))
    .map((l) => (l === '' ? '' : ` ${l}`))
    .join('\n');
}

function headerLines(o: ImportOptions, gatewayCount: number, pools: readonly PoolDoc[], notes: readonly ImportNote[]): string[] {
  const lines = [
    `Written by \`corvid import\` from the ${gatewayCount} Raven Gateway${gatewayCount === 1 ? '' : 's'} of a live cluster: ${pools.length} pool${pools.length === 1 ? '' : 's'}, one per Gateway, named after it. Review it before you apply it (docs/migrate-from-raven.md).`,
    '',
    ...pskInstructions(o.pskSecretRef),
    '',
    "`corvid render` of this file gives each pool's Gateway the spec it has now, as Raven reads it, plus what Corvid adds: corvid.dev/priority in each endpoint's config, and publicPort 4500 where none was set. Where it cannot, or leaves something out, the note above the pool says so.",
  ];
  const whole = notes.filter((n) => n.gateway === undefined);
  const left = notes.filter((n) => n.kind === 'not-imported');
  if (whole.length > 0) lines.push('', 'For the whole topology:', ...whole.map((n) => `- ${KIND_WORDS[n.kind]}: ${n.message}`));
  if (left.length > 0) {
    lines.push('', 'Gateways not imported:');
    for (const n of left) {
      lines.push(`- ${n.gateway}: ${n.message}`);
      for (const also of notes.filter((o) => o.gateway === n.gateway && o !== n)) lines.push(`  - also ${KIND_WORDS[also.kind]}: ${also.message}`);
    }
  }
  return lines;
}

function textOf(doc: TopologyDocument, header: readonly string[], notes: readonly ImportNote[]): string {
  const d = new Document(doc, YAML_OPTIONS);
  d.commentBefore = comment(header);
  const seq = d.getIn(['spec', 'pools'], true) as YAMLSeq<YamlNode>;
  doc.spec.pools.forEach((p, i) => {
    const mine = notes.filter((n) => n.gateway === p.name);
    if (mine.length > 0) seq.items[i].commentBefore = comment(mine.map((n) => `- ${KIND_WORDS[n.kind]}: ${n.message}`));
  });
  return d.toString(YAML_OPTIONS);
}

/** Notes from the nodes' labels: where Corvid's pools will hold other nodes than Raven's Gateways did. */
function membershipNotes(pools: readonly PoolDoc[], nodes: readonly LabelledNode[], notes: ImportNote[]): void {
  const imported = new Set(pools.map((p) => p.name));
  // The planner's own rule (pools are in name order here, as there).
  const index = new SelectorIndex(pools.map((p) => p.nodeSelector));
  const { poolOf, shared } = poolMembership(index, pools.length, nodes);
  // Every pool that selects a node, from the membership already worked out: its own, or all of them when shared.
  const selectedBy = new Map<string, readonly number[]>([...poolOf].map(([name, i]) => [name, [i]]));
  for (const s of shared) selectedBy.set(s.node.name, s.pools);
  pools.forEach((p, i) => {
    const corvid: string[] = [];
    const raven: string[] = [];
    for (const n of nodes) {
      const inCorvid = selectedBy.get(n.name)?.includes(i) ?? false;
      const inRaven = n.labels[RAVEN_GATEWAY_LABEL] === p.name;
      if (inCorvid && !inRaven) corvid.push(n.name);
      else if (inRaven && !inCorvid) raven.push(n.name);
    }
    for (const { node, pools: hit } of shared) {
      if (hit[0] !== i && hit.includes(i)) {
        const first = pools[hit[0]].name;
        notes.push({ gateway: p.name, kind: 'changed', message: `node ${node.name} is selected by pool ${first} too; Corvid puts it in ${first}, the first by name` });
      }
    }
    if (corvid.length > 0 || raven.length > 0) {
      const parts = [
        ...(corvid.length > 0 ? [`only Corvid's has ${someNames(corvid)}`] : []),
        ...(raven.length > 0 ? [`only Raven's has ${someNames(raven)}`] : []),
      ];
      notes.push({
        gateway: p.name,
        kind: 'changed',
        message: `Corvid's pool is the nodes its nodeSelector selects, yurt-manager's the nodes labelled ${RAVEN_GATEWAY_LABEL}=${p.name}: ${parts.join('; ')}`,
      });
    }
  });
  const orphans = new Map<string, string[]>();
  for (const n of nodes) {
    const g = n.labels[RAVEN_GATEWAY_LABEL];
    if (g === undefined || imported.has(g) || poolOf.has(n.name)) continue;
    orphans.set(g, [...(orphans.get(g) ?? []), n.name]);
  }
  for (const [g, names] of [...orphans].sort(([a], [b]) => cmp(a, b))) {
    notes.push({ kind: 'changed', message: `nodes labelled ${RAVEN_GATEWAY_LABEL}=${g} (${someNames(names)}) are in no imported pool, so in no pool at all` });
  }
}

/**
 * Raven relays between gateways behind NAT through the one not behind NAT whose active node sorts last by name
 * (the agents' findCentralGwFn); Corvid chooses its own automatic relay. Say which one Raven uses now.
 */
function relayNote(pools: readonly PoolDoc[], live: ReadonlyMap<string, Gateway>, notes: ImportNote[]): void {
  const natPools = pools.filter((p) => p.behindNAT === true).map((p) => p.name);
  if (natPools.length < 2 || natPools.length === pools.length) return;
  let central: { node: string; pool: string } | undefined;
  for (const p of pools) {
    if (p.behindNAT === true) continue;
    for (const ep of live.get(p.name)?.status?.activeEndpoints ?? []) {
      if (ep.type === 'tunnel' && ep.underNAT !== true && (central === undefined || ep.nodeName > central.node)) central = { node: ep.nodeName, pool: p.name };
    }
  }
  const now = central === undefined ? 'none is active now' : `now ${central.pool}`;
  notes.push({
    kind: 'changed',
    message: `Raven relays between pools behind NAT through the Gateway not behind NAT whose active node sorts last by name (${now}); Corvid chooses its own automatic relay (docs/topology.md, "NAT and relays"). To keep Raven's path, add relay: ${central?.pool ?? '<pool>'} to ${natPools.join(', ')}`,
  });
}

/** The conversion; see the top of this file. Deterministic: equal inputs give equal text. */
export function importRavenGateways(gateways: readonly Gateway[], nodes: readonly LabelledNode[], o: ImportOptions): ImportResult {
  const notes: ImportNote[] = [];
  const sorted = [...gateways].sort((a, b) => cmp(a.metadata.name, b.metadata.name));
  const live = new Map(sorted.map((g) => [g.metadata.name, g]));
  const gatewayOf = new Map<string, string>();
  let pools: PoolDoc[] = [];
  for (const gw of sorted) {
    const p = draftPool(gw, gatewayOf, notes);
    if (p !== undefined) pools.push(p);
  }

  // Corvid's validator has the last word: a pool it refuses is left out, with its reasons.
  let loaded: ReturnType<typeof loadTopology>;
  for (;;) {
    if (pools.length === 0) return { ok: false, errors: ['no Gateway can be imported (see the notes)'], notes };
    loaded = loadTopology(textOf(documentOf(o, pools), [], []), FILE);
    if (loaded.ok) break;
    const refused = new Map<number, string[]>();
    const other: string[] = [];
    for (const e of loaded.errors) {
      const m = /^spec\.pools\[(\d+)\]\.?(.*)$/.exec(e.path);
      if (m === null) other.push(e.path === '' ? e.message : `${e.path}: ${e.message}`);
      else refused.set(Number(m[1]), [...(refused.get(Number(m[1])) ?? []), m[2] === '' ? e.message : `${m[2]}: ${e.message}`]);
    }
    if (other.length > 0) return { ok: false, errors: other, notes };
    for (const [i, why] of refused) notes.push({ gateway: pools[i].name, kind: 'not-imported', message: `corvid validate refuses it: ${why.join('; ')}` });
    pools = pools.filter((_, i) => !refused.has(i));
  }
  if (documentOf(o, pools).spec.connectivity !== undefined) {
    notes.push({ kind: 'changed', message: 'every pool is behind NAT, so none can relay between them, and a rule denies every pair; Raven connected them only with NAT traversal. Add a pool not behind NAT and remove the rule' });
  }

  // What `corvid render` will write, compared with what Raven has now.
  const rendered = plan({ topology: loaded.topology, revision: 'import', nodes: [], health: {}, previous: [], now: '1970-01-01T00:00:00Z' });
  for (const g of rendered.gateways) {
    const differences = ravenSpecDifferences(live.get(g.metadata.name)?.spec, g.spec);
    if (differences.length > 0) {
      notes.push({ gateway: g.metadata.name, kind: 'changed', message: `corvid render's spec differs from the live one, as Raven reads them, at ${differences.map(formatDifference).join(', ')}` });
    }
  }
  membershipNotes(pools, nodes, notes);
  relayNote(pools, live, notes);

  const ordered = orderNotes(notes);
  const document = documentOf(o, pools);
  const text = textOf(document, headerLines(o, sorted.length, pools, ordered), ordered);
  const final = loadTopology(text, FILE);
  if (!final.ok) throw new Error(`corvid import wrote a topology its own validator refuses: ${final.errors.map((e) => `${e.path}: ${e.message}`).join('; ')}`);
  return { ok: true, text, document, pools: pools.map((p) => p.name), notes: ordered, warnings: final.warnings.map((w) => `${w.path}: ${w.message}`) };
}

/** The topology's notes first, then by Gateway name; each Gateway's in the order they were found. */
function orderNotes(notes: readonly ImportNote[]): ImportNote[] {
  return notes
    .map((n, i) => ({ n, i }))
    .sort((a, b) => cmp(a.n.gateway ?? '', b.n.gateway ?? '') || a.i - b.i)
    .map(({ n }) => n);
}
