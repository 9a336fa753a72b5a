// Issue 14, "no secret, ever, in any output": hostile inputs with a random key planted where a careless operator might
// paste it, and a scan that finds the key, or any 16-character piece of it, in an output. Seeded, so a failure
// replays from the seed it prints.

import { createHash } from 'node:crypto';

/** A seeded stream of numbers in [0, 1): SHA-256 of the seed and a counter. */
export function prng(seed: number): () => number {
  let n = 0;
  return () => createHash('sha256').update(`${seed}:${n++}`).digest().readUInt32BE(0) / 2 ** 32;
}

/** The seed of this run: CORVID_SEED when set (to replay a failure), else a new one. */
export function runSeed(): number {
  // Fixed unless asked: a CI run must not pass or fail by chance. CORVID_SEED=random explores other keys and quoting.
  if (process.env.CORVID_SEED === 'random') return 1 + Math.floor(Math.random() * 2 ** 31);
  const fixed = Number(process.env.CORVID_SEED);
  return Number.isInteger(fixed) && fixed > 0 ? fixed : 20261206;
}

type Rand = () => number;

function pick<T>(rand: Rand, list: readonly T[]): T {
  return list[Math.floor(rand() * list.length)];
}

function bytes(rand: Rand, n: number): Buffer {
  return Buffer.from(Array.from({ length: n }, () => Math.floor(rand() * 256)));
}

/** What a pasted key looks like: a PSK as base64 (padded or not, url-safe), as hex, or a PEM private key. */
export const KEY_KINDS = ['base64', 'base64-raw', 'base64url', 'hex64', 'hex32', 'pem'] as const;
export type KeyKind = (typeof KEY_KINDS)[number];

export function makeKey(kind: KeyKind, rand: Rand): string {
  switch (kind) {
    case 'base64':
      return bytes(rand, 32).toString('base64');
    case 'base64-raw':
      return bytes(rand, 32).toString('base64').replace(/=+$/, '');
    case 'base64url':
      return bytes(rand, 32).toString('base64url');
    case 'hex64':
      return bytes(rand, 32).toString('hex');
    case 'hex32':
      return bytes(rand, 16).toString('hex');
    case 'pem': {
      const body = bytes(rand, 120).toString('base64').match(/.{1,64}/g)!;
      return `-----BEGIN PRIVATE KEY-----\n${body.join('\n')}\n-----END PRIVATE KEY-----`;
    }
  }
}

// ---------------------------------------------------------------- the scan

const PIECE = 16;
const KEY_CHARS = /[A-Za-z0-9+/=_-]+/g;

/** Every 16-character piece of the key's runs of key characters (a PEM block's lines), lower-cased. */
function pieces(secret: string): Set<string> {
  const out = new Set<string>();
  for (const run of secret.match(KEY_CHARS) ?? []) {
    for (let i = 0; i + PIECE <= run.length; i++) out.add(run.slice(i, i + PIECE).toLowerCase());
  }
  return out;
}

/**
 * Where `output` holds the key or a 16-character piece of it (case-insensitively: a lower-cased or re-cased copy
 * leaks too), with some context; undefined when it holds none. A random 16-character piece turns up by chance
 * about never.
 */
export function findLeak(secret: string, output: string): string | undefined {
  const want = pieces(secret);
  const text = output.toLowerCase();
  for (let i = 0; i + PIECE <= text.length; i++) {
    if (want.has(text.slice(i, i + PIECE))) return output.slice(Math.max(0, i - 80), i + PIECE + 80);
  }
  return undefined;
}

// ---------------------------------------------------------------- the inputs

/** A valid topology: two pools (one behind NAT), a rule and a link, so there is a place for everything. */
export const BASE_TOPOLOGY = `apiVersion: corvid.dev/v1alpha1
kind: Topology
metadata:
  name: hostile
spec:
  encryption:
    pskSecretRef: {name: corvid-psk, key: psk}
  election:
    heartbeatTimeout: 2s
    minHealthy: 0s
  connectivity:
    rules:
      - {action: allow, pools: [cloud, edge]}
  pools:
    - name: cloud
      nodeSelector: {matchLabels: {pool: cloud}}
      gateways:
        - {node: cloud-gw-1, publicIP: 203.0.113.10}
        - {node: cloud-gw-2, publicIP: 203.0.113.11}
    - name: edge
      nodeSelector: {matchLabels: {pool: edge}}
      gateways:
        - {node: edge-gw-1}
      behindNAT: true
  links:
    - pools: [cloud, edge]
      encryption: {espProposals: [aes256-sha384]}
`;

/** The nodes of BASE_TOPOLOGY: name, pool, InternalIP, podCIDR. cloud-n1 is a member, not a candidate. */
export const BASE_NODES: readonly [string, string, string, string][] = [
  ['cloud-gw-1', 'cloud', '10.0.1.1', '10.244.1.0/24'],
  ['cloud-gw-2', 'cloud', '10.0.1.2', '10.244.2.0/24'],
  ['cloud-n1', 'cloud', '10.0.1.3', '10.244.3.0/24'],
  ['edge-gw-1', 'edge', '10.0.2.1', '10.244.4.0/24'],
];

const READY_SINCE = '2026-11-20T09:00:00Z';

function nodeYaml([name, pool, ip, cidr]: readonly string[]): string {
  return `- apiVersion: v1
  kind: Node
  metadata:
    name: ${name}
    labels: {pool: ${pool}, kubernetes.io/os: linux}
    annotations: {node.alpha.kubernetes.io/ttl: "0"}
  spec:
    podCIDRs: [${cidr}]
  status:
    addresses: [{type: InternalIP, address: ${ip}}, {type: Hostname, address: ${name}}]
    conditions: [{type: Ready, status: "True", reason: KubeletReady, message: kubelet is posting ready status, lastTransitionTime: "${READY_SINCE}"}]
`;
}

/** `kubectl get nodes -o yaml` for BASE_NODES. */
export const BASE_SNAPSHOT = `apiVersion: v1\nkind: List\nitems:\n${BASE_NODES.map(nodeYaml).join('')}`;

/** `text` with the one occurrence of `from` replaced; more or fewer is a bug in a place below. */
function swap(text: string, from: string, to: string): string {
  const at = text.indexOf(from);
  if (at < 0 || text.indexOf(from, at + 1) >= 0) throw new Error(`secret-plant: "${from}" must occur once`);
  return text.slice(0, at) + to + text.slice(at + from.length);
}

/** How the key is written: `k` as a YAML scalar (plain, 'single' or "double" quoted), `raw` as is. */
interface Written {
  k: string;
  raw: string;
  /** The key's characters without spaces and line breaks (an anchor or tag cannot hold those). */
  compact: string;
}

interface Place {
  where: string;
  topology?: (w: Written) => string;
  snapshot?: (w: Written) => string;
  /**
   * The key stands where the cluster's own names go, which the topology's author does not choose: a Node's name (a
   * gateway's node, a Node in the snapshot), or a node label in a pool's selector. See secret-channels.test.ts.
   */
  names?: 'node' | 'label';
}

const T = BASE_TOPOLOGY;
const S = BASE_SNAPSHOT;
const PSK_LINE = '    pskSecretRef: {name: corvid-psk, key: psk}\n';
const CLOUD_GW_1 = '{node: cloud-gw-1, publicIP: 203.0.113.10}';
const CLOUD_SELECTOR = '{matchLabels: {pool: cloud}}';
const EDGE_NAT = '      behindNAT: true\n';
const LINK_ENC = '{espProposals: [aes256-sha384]}';

/** BASE_TOPOLOGY with the value of one of its lines (`line`, e.g. `    minHealthy: 0s\n`) written by `value`. */
const field = (where: string, line: string, value: (w: Written) => string): Place => ({
  where,
  topology: (w) => swap(T, line, line.replace(/: .*$/, `: ${value(w)}`)),
});

/** A snapshot item (Node, Lease, BlockAffinity) appended to the node list. */
const item = (where: string, yaml: (w: Written) => string): Place => ({ where, snapshot: (w) => S + yaml(w) });

const MEMBER = nodeYaml(BASE_NODES[2]);

/** The member node cloud-n1 with one piece of its YAML changed. */
const member = (where: string, from: string, to: (w: Written) => string): Place => ({
  where,
  snapshot: (w) => swap(S, MEMBER, swap(MEMBER, from, to(w))),
});

export const PLACES: readonly Place[] = [
  // The PSK pasted next to, or instead of, the reference.
  { where: 'encryption: bare flow-map entry', topology: (w) => swap(T, `  encryption:\n${PSK_LINE}`, `  encryption: {pskSecretRef: {name: corvid-psk, key: psk}, ${w.k}}\n`) },
  { where: 'pskSecretRef: bare flow-map entry', topology: (w) => swap(T, PSK_LINE, `    pskSecretRef: {name: corvid-psk, key: psk, ${w.k}}\n`) },
  { where: 'pskSecretRef.key', topology: (w) => swap(T, 'key: psk}', `key: ${w.k}}`) },
  { where: 'pskSecretRef.name', topology: (w) => swap(T, 'name: corvid-psk,', `name: ${w.k},`) },
  { where: 'pskSecretRef.secret', topology: (w) => swap(T, 'key: psk}', `key: psk, secret: ${w.k}}`) },
  { where: 'encryption.psk', topology: (w) => swap(T, PSK_LINE, `${PSK_LINE}    psk: ${w.k}\n`) },
  { where: 'encryption.preSharedKey (block scalar)', topology: (w) => swap(T, PSK_LINE, `${PSK_LINE}    preSharedKey: |\n${w.raw.replace(/^/gm, '      ')}\n`) },
  { where: 'pool encryption.pskSecretRef.key', topology: (w) => swap(T, EDGE_NAT, `${EDGE_NAT}      encryption: {pskSecretRef: {name: edge-psk, key: ${w.k}}}\n`) },
  { where: 'link encryption.pskSecretRef.name', topology: (w) => swap(T, LINK_ENC, `{pskSecretRef: {name: ${w.k}, key: psk}}`) },
  // The key as a map key, at every level.
  { where: 'top-level key', topology: (w) => `${T}${w.k}: true\n` },
  { where: 'metadata key', topology: (w) => swap(T, '  name: hostile\n', `  name: hostile\n  ${w.k}: true\n`) },
  { where: 'spec key', topology: (w) => swap(T, 'spec:\n', `spec:\n  ${w.k}: true\n`) },
  { where: 'pool key', topology: (w) => swap(T, EDGE_NAT, `${EDGE_NAT}      ${w.k}: true\n`) },
  { where: 'gateway key', topology: (w) => swap(T, CLOUD_GW_1, `{node: cloud-gw-1, publicIP: 203.0.113.10, ${w.k}: true}`) },
  { where: 'encryption key', topology: (w) => swap(T, PSK_LINE, `${PSK_LINE}    ${w.k}: true\n`) },
  { where: 'selector key', topology: (w) => swap(T, CLOUD_SELECTOR, `{matchLabels: {pool: cloud}, ${w.k}: true}`) },
  { where: 'election key', topology: (w) => swap(T, '    minHealthy: 0s\n', `    minHealthy: 0s\n    ${w.k}: true\n`) },
  { where: 'link key', topology: (w) => swap(T, LINK_ENC, `{espProposals: [aes256-sha384], ${w.k}: true}`) },
  { where: 'rule key', topology: (w) => swap(T, '{action: allow, pools: [cloud, edge]}', `{action: allow, pools: [cloud, edge], ${w.k}: true}`) },
  { where: 'duplicate spec key', topology: (w) => swap(T, 'spec:\n', `spec:\n  ${w.k}: 1\n  ${w.k}: 2\n`) },
  { where: 'complex key', topology: (w) => swap(T, 'spec:\n', `spec:\n  ? ${w.k}\n  : x\n`) },
  { where: 'mapping as key', topology: (w) => swap(T, 'spec:\n', `spec:\n  {${w.k}: 1}: x\n`) },
  // Labels.
  { where: 'matchLabels key', topology: (w) => swap(T, CLOUD_SELECTOR, `{matchLabels: {pool: cloud, ${w.k}: x}}`), names: 'label' },
  { where: 'matchLabels value', topology: (w) => swap(T, CLOUD_SELECTOR, `{matchLabels: {pool: ${w.k}}}`), names: 'label' },
  { where: 'matchExpressions key', topology: (w) => swap(T, CLOUD_SELECTOR, `{matchLabels: {pool: cloud}, matchExpressions: [{key: ${w.k}, operator: DoesNotExist}]}`), names: 'label' },
  { where: 'matchExpressions value', topology: (w) => swap(T, CLOUD_SELECTOR, `{matchExpressions: [{key: pool, operator: In, values: [cloud, ${w.k}]}]}`), names: 'label' },
  { where: 'matchExpressions operator', topology: (w) => swap(T, CLOUD_SELECTOR, `{matchExpressions: [{key: pool, operator: ${w.k}, values: [cloud]}]}`) },
  // Names and references.
  { where: 'metadata.name', topology: (w) => swap(T, 'name: hostile', `name: ${w.k}`) },
  { where: 'pool name', topology: (w) => swap(T, '- name: cloud\n', `- name: ${w.k}\n`) },
  { where: 'pool name, nothing refers to it', topology: (w) => swap(swap(T, '- name: edge\n', `- name: ${w.k}\n`), T.slice(T.indexOf('  connectivity:'), T.indexOf('  pools:')), '').split('  links:')[0] },
  { where: 'relay', topology: (w) => swap(T, EDGE_NAT, `${EDGE_NAT}      relay: ${w.k}\n`) },
  { where: 'hub', topology: (w) => swap(T, '  connectivity:\n', `  connectivity:\n    mode: hub\n    hub: ${w.k}\n`) },
  { where: 'rule pools', topology: (w) => swap(T, 'pools: [cloud, edge]}', `pools: [${w.k}, edge]}`) },
  { where: 'link pools', topology: (w) => swap(T, '    - pools: [cloud, edge]\n', `    - pools: [cloud, ${w.k}]\n`) },
  { where: 'gateway node', topology: (w) => swap(T, 'node: cloud-gw-1,', `node: ${w.k},`), names: 'node' },
  { where: 'publicIP with a zone', topology: (w) => swap(T, 'publicIP: 203.0.113.10', `publicIP: ${JSON.stringify(`2001:db8::10%${w.raw}`)}`) },
  { where: 'publicIP', topology: (w) => swap(T, 'publicIP: 203.0.113.10', `publicIP: ${w.k}`) },
  // Proposals.
  { where: 'ikeProposals keyword', topology: (w) => swap(T, PSK_LINE, `${PSK_LINE}    ikeProposals: [${JSON.stringify(`aes256-${w.raw}-modp2048`)}]\n`) },
  { where: 'espProposals', topology: (w) => swap(T, PSK_LINE, `${PSK_LINE}    espProposals: [${w.k}]\n`) },
  { where: 'link espProposals keyword', topology: (w) => swap(T, LINK_ENC, `{espProposals: [${JSON.stringify(`aes256-${w.raw.toLowerCase()}`)}]}`) },
  // Every other value.
  field('apiVersion', 'apiVersion: corvid.dev/v1alpha1\n', (w) => w.k),
  field('kind', 'kind: Topology\n', (w) => w.k),
  field('heartbeatTimeout', '    heartbeatTimeout: 2s\n', (w) => w.k),
  field('minHealthy', '    minHealthy: 0s\n', (w) => w.k),
  { where: 'replicas', topology: (w) => swap(T, '    minHealthy: 0s\n', `    minHealthy: 0s\n    replicas: ${w.k}\n`) },
  { where: 'backend', topology: (w) => swap(T, PSK_LINE, `${PSK_LINE}    backend: ${w.k}\n`) },
  { where: 'allowInsecure', topology: (w) => swap(T, PSK_LINE, `${PSK_LINE}    allowInsecure: ${w.k}\n`) },
  { where: 'connectivity.mode', topology: (w) => swap(T, '  connectivity:\n', `  connectivity:\n    mode: ${w.k}\n`) },
  { where: 'rule action', topology: (w) => swap(T, 'action: allow', `action: ${w.k}`) },
  field('behindNAT', EDGE_NAT, (w) => w.k),
  { where: 'mtu', topology: (w) => swap(T, EDGE_NAT, `${EDGE_NAT}      mtu: ${w.k}\n`) },
  { where: 'publicPort', topology: (w) => swap(T, CLOUD_GW_1, `{node: cloud-gw-1, publicIP: 203.0.113.10, publicPort: ${w.k}}`) },
  { where: 'allowEmpty', topology: (w) => swap(T, 'spec:\n', `spec:\n  allowEmpty: ${w.k}\n`) },
  { where: 'podSubnets.source', topology: (w) => swap(T, 'spec:\n', `spec:\n  podSubnets: {source: ${w.k}}\n`) },
  { where: 'unknown spec field', topology: (w) => swap(T, 'spec:\n', `spec:\n  notes: ${w.k}\n`) },
  { where: 'unknown pool field', topology: (w) => swap(T, EDGE_NAT, `${EDGE_NAT}      secret: ${w.k}\n`) },
  { where: 'unknown field as a list item', topology: (w) => swap(T, 'spec:\n', `spec:\n  keys:\n    - ${w.k}\n`) },
  { where: 'pools item that is the key', topology: (w) => swap(T, '  pools:\n', `  pools:\n    - ${w.k}\n`) },
  // Metadata Kubernetes keeps and Corvid ignores: valid, and never shown.
  { where: 'metadata.annotations value', topology: (w) => swap(T, '  name: hostile\n', `  name: hostile\n  annotations: {note: ${w.k}}\n`) },
  { where: 'metadata.annotations key', topology: (w) => swap(T, '  name: hostile\n', `  name: hostile\n  annotations: {${w.k}: x}\n`) },
  { where: 'metadata.labels value', topology: (w) => swap(T, '  name: hostile\n', `  name: hostile\n  labels: {team: ${w.k}}\n`) },
  // YAML itself: comments, anchors, aliases, tags, directives.
  { where: 'comment', topology: (w) => swap(T, PSK_LINE, `${PSK_LINE}${w.raw.replace(/^/gm, '    # ')}\n`) },
  { where: 'comment after the reference', topology: (w) => swap(T, PSK_LINE, `${PSK_LINE.trimEnd()}  # psk is ${w.compact}\n`) },
  { where: 'anchor and alias', topology: (w) => swap(swap(T, 'heartbeatTimeout: 2s', `heartbeatTimeout: &${w.compact} 2s`), 'minHealthy: 0s', `minHealthy: *${w.compact}`) },
  { where: 'anchor on the reference', topology: (w) => swap(T, 'pskSecretRef: {', `pskSecretRef: &${w.compact} {`) },
  { where: 'alias to no anchor', topology: (w) => swap(T, 'minHealthy: 0s', `minHealthy: *${w.compact}`) },
  { where: 'tag', topology: (w) => swap(T, '- name: cloud\n', `- name: !${w.compact} cloud\n`) },
  { where: 'secondary tag', topology: (w) => swap(T, 'key: psk}', `key: !!${w.compact} psk}`) },
  { where: 'verbatim tag', topology: (w) => swap(T, 'key: psk}', `key: !<tag:corvid.dev,2026:${w.compact}> psk}`) },
  { where: 'tag directive', topology: (w) => `%TAG !k! tag:${w.compact}:\n---\n${swap(T, 'key: psk}', 'key: !k!x psk}')}` },
  { where: 'unknown directive', topology: (w) => `%${w.compact}\n---\n${T}` },
  // Broken YAML around the key: the parser's own messages quote the source.
  { where: 'unclosed double quote', topology: (w) => swap(T, 'key: psk}', `key: "${w.compact}}`) },
  { where: 'unclosed single quote', topology: (w) => swap(T, 'key: psk}', `key: '${w.compact}}`) },
  { where: 'unclosed flow map', topology: (w) => swap(T, CLOUD_GW_1, `{node: cloud-gw-1, publicIP: ${w.compact}`) },
  { where: 'bad escape', topology: (w) => swap(T, 'key: psk}', `key: "\\q${w.compact}"}`) },
  { where: 'tab indentation', topology: (w) => swap(T, PSK_LINE, `${PSK_LINE}\t${w.compact}: x\n`) },
  { where: 'bad indentation', topology: (w) => swap(T, PSK_LINE, `${PSK_LINE}      ${w.compact}: x\n     y: z\n`) },
  { where: 'plain scalar with ": "', topology: (w) => swap(T, 'key: psk}', `key: psk: ${w.compact}}`) },
  { where: 'the whole file', topology: (w) => `${w.raw}\n` },
  { where: 'a second document', topology: (w) => `${T}---\n${w.k}\n` },
  { where: 'the key then the topology', topology: (w) => `${w.compact}\n${T}` },
  // The node snapshot (render/graph/diff --nodes).
  { where: 'snapshot: member node name', snapshot: (w) => S.replaceAll('cloud-n1', w.compact), names: 'node' },
  { where: 'snapshot: candidate node name', snapshot: (w) => S.replaceAll('cloud-gw-2', w.compact), names: 'node' },
  member('snapshot: label key', 'labels: {pool: cloud,', (w) => `labels: {${w.k}: x, pool: cloud,`),
  member('snapshot: label value', 'kubernetes.io/os: linux}', (w) => `kubernetes.io/os: ${w.k}}`),
  member('snapshot: selector label value', 'labels: {pool: cloud,', (w) => `labels: {pool: ${w.k},`),
  member('snapshot: annotation value', 'ttl: "0"}', (w) => `ttl: "0", note: ${w.k}}`),
  member('snapshot: public-ip annotation', 'ttl: "0"}', (w) => `ttl: "0", corvid.dev/public-ip: ${w.k}}`),
  member('snapshot: drain annotation', 'ttl: "0"}', (w) => `ttl: "0", corvid.dev/drain: ${w.k}}`),
  member('snapshot: podCIDRs', 'podCIDRs: [10.244.3.0/24]', (w) => `podCIDRs: [${w.k}]`),
  member('snapshot: podCIDR', 'podCIDRs: [10.244.3.0/24]', (w) => `podCIDR: ${w.k}`),
  member('snapshot: InternalIP', 'address: 10.0.1.3}', (w) => `address: ${w.k}}`),
  member('snapshot: Hostname address', 'address: cloud-n1}', (w) => `address: ${w.k}}`),
  member('snapshot: ExternalIP', '{type: Hostname,', (w) => `{type: ExternalIP, address: ${w.k}}, {type: Hostname,`),
  member('snapshot: address type', '{type: Hostname,', (w) => `{type: ${w.k},`),
  member('snapshot: Ready message', 'message: kubelet is posting ready status', (w) => `message: ${w.k}`),
  member('snapshot: Ready status', 'status: "True"', (w) => `status: ${w.k}`),
  member('snapshot: Ready since', `lastTransitionTime: "${READY_SINCE}"`, (w) => `lastTransitionTime: ${w.k}`),
  member('snapshot: unschedulable', 'podCIDRs: [10.244.3.0/24]', (w) => `podCIDRs: [10.244.3.0/24]\n    unschedulable: ${w.k}`),
  member('snapshot: item kind', '  kind: Node\n', (w) => `  kind: ${w.k}\n`),
  { where: 'snapshot: list kind', snapshot: (w) => swap(S, 'kind: List\n', `kind: ${w.k}\n`) },
  { where: 'snapshot: broken YAML', snapshot: (w) => swap(S, 'address: 10.0.1.3}', `address: "${w.compact}}`) },
  { where: 'snapshot: a second document', snapshot: (w) => `${S}---\n${w.k}\n` },
  item('snapshot: Lease name', (w) => `- {apiVersion: coordination.k8s.io/v1, kind: Lease, metadata: {name: ${w.k}}, spec: {renewTime: "2026-11-20T09:59:59.000000Z", leaseDurationSeconds: 3}}\n`),
  item('snapshot: Lease renewTime', (w) => `- {apiVersion: coordination.k8s.io/v1, kind: Lease, metadata: {name: cloud-gw-1}, spec: {renewTime: ${w.k}, leaseDurationSeconds: 3}}\n`),
  item('snapshot: Lease tunnels peer', (w) => `- {apiVersion: coordination.k8s.io/v1, kind: Lease, metadata: {name: cloud-gw-1, annotations: {corvid.dev/tunnels: ${JSON.stringify(JSON.stringify({ [w.raw]: { up: false, since: '2026-11-20T09:00:00Z' } }))}}}, spec: {renewTime: "2026-11-20T09:59:59.000000Z", leaseDurationSeconds: 3}}\n`),
  item('snapshot: Lease tunnels annotation', (w) => `- {apiVersion: coordination.k8s.io/v1, kind: Lease, metadata: {name: cloud-gw-1, annotations: {corvid.dev/tunnels: ${w.k}}}, spec: {renewTime: "2026-11-20T09:59:59.000000Z"}}\n`),
  item('snapshot: BlockAffinity cidr', (w) => `- {apiVersion: crd.projectcalico.org/v1, kind: BlockAffinity, metadata: {name: cloud-n1-b}, spec: {cidr: ${w.k}, node: cloud-n1, state: confirmed, deleted: "false"}}\n`),
  { ...item('snapshot: BlockAffinity node', (w) => `- {apiVersion: crd.projectcalico.org/v1, kind: BlockAffinity, metadata: {name: cloud-n1-b}, spec: {cidr: 10.245.0.0/26, node: ${w.k}, state: confirmed, deleted: "false"}}\n`), names: 'node' },
  item('snapshot: BlockAffinity apiVersion', (w) => `- {apiVersion: ${w.k}, kind: BlockAffinity, metadata: {name: cloud-n1-b}, spec: {cidr: 10.245.0.0/26, node: cloud-n1, state: confirmed, deleted: "false"}}\n`),
  item('snapshot: BlockAffinity deleted', (w) => `- {apiVersion: crd.projectcalico.org/v1, kind: BlockAffinity, metadata: {name: cloud-n1-b}, spec: {cidr: 10.245.0.0/26, node: cloud-n1, state: confirmed, deleted: ${w.k}}}\n`),
  item('snapshot: BlockAffinity name', (w) => `- {apiVersion: crd.projectcalico.org/v1, kind: BlockAffinity, metadata: {name: ${w.k}}, spec: {cidr: 10.245.0.0/26, node: nobody, state: confirmed, deleted: "false"}}\n`),
  item('snapshot: BlockAffinity state', (w) => `- {apiVersion: crd.projectcalico.org/v1, kind: BlockAffinity, metadata: {name: cloud-n1-b}, spec: {cidr: 10.245.0.0/26, node: cloud-n1, state: ${w.k}, deleted: "false"}}\n`),
];

/**
 * Leaks known and reported but not fixed yet: src/topology/semantic.ts (being rewritten) lists and quotes pool names
 * that are well-formed DNS labels, one that looks like key material included (the schema refuses such a name since
 * issue 14, but the meaning checks run too): its wellFormed() should also refuse looksLikeKeyMaterial(). Leaks from
 * these places that say this are reported apart (a todo test); the sync's test leaves the places out.
 */
export const KNOWN_LEAKS: readonly { where: string; says: RegExp }[] = [];

/** One hostile input: a topology file and a node snapshot, one of them holding `secret`. */
export interface Plant {
  /** For messages: the place, the kind of key and the seed that replays it. */
  label: string;
  where: string;
  kind: KeyKind;
  secret: string;
  topology: string;
  snapshot: string;
  /** See Place.names. */
  names?: 'node' | 'label';
}

/** Plain when YAML reads it back as the same string, else quoted; a random choice among what works. */
function scalar(secret: string, rand: Rand): string {
  const styles = [JSON.stringify(secret)];
  if (!secret.includes('\n')) {
    styles.push(`'${secret}'`);
    if (/^[A-Za-z0-9+/_][A-Za-z0-9+/=_-]*$/.test(secret) && !/^[0-9]+$/.test(secret) && !/^[0-9]+e[0-9]+$/i.test(secret)) styles.push(secret, secret);
  }
  return pick(rand, styles);
}

/** The case of place `i` (modulo the list) with a random key of a random kind. */
export function plant(seed: number, i: number, rand: Rand, only?: { kinds?: readonly KeyKind[] }): Plant {
  const place = PLACES[i % PLACES.length];
  // Round r of a place plants the r-th kind (offset per place), so KEY_KINDS.length rounds put every kind everywhere.
  const kinds = only?.kinds ?? KEY_KINDS;
  const kind = kinds[(Math.floor(i / PLACES.length) + (i % PLACES.length)) % kinds.length];
  const secret = makeKey(kind, rand);
  const w: Written = { k: scalar(secret, rand), raw: secret, compact: secret.replace(/[\s]/g, '') };
  return {
    label: `${place.where} (${kind}, seed ${seed}, case ${i})`,
    where: place.where,
    kind,
    secret,
    topology: place.topology ? place.topology(w) : BASE_TOPOLOGY,
    snapshot: place.snapshot ? place.snapshot(w) : BASE_SNAPSHOT,
    ...(place.names ? { names: place.names } : {}),
  };
}

/** `rounds` cases per place, each with its own key; the same seed gives the same cases. */
export function plants(seed: number, rounds: number, only?: { kinds?: readonly KeyKind[] }): Plant[] {
  const rand = prng(seed);
  return Array.from({ length: PLACES.length * rounds }, (_, i) => plant(seed, i, rand, only));
}

/** A Node name as the API server allows it (a DNS-1123 subdomain). */
export function isNodeName(s: string): boolean {
  return s.length <= 253 && /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/.test(s);
}
