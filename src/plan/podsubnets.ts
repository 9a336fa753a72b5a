// Where a node's pod subnets come from, and Calico IPAM's answer. Pure: the shells hand in what they read.
//
// Two sources:
// - podCIDR: node.spec.podCIDRs (kube-controller-manager's allocation; flannel, Calico with host-local IPAM, ...).
// - calico:  Calico IPAM's BlockAffinity objects (crd.projectcalico.org/v1, or the native projectcalico.org/v3 CRDs).
//            calico-ipam ignores podCIDR altogether, so there the blocks are the only truth.
//
// Which one: the sync's --pod-subnets flag (an install-time override) wins over the topology's
// spec.podSubnets.source; `auto` (the default of both) picks calico when the cluster serves the BlockAffinity resource
// in either group and holds at least one BlockAffinity, else podCIDR.
//
// A node's Calico subnets are its blocks with spec.node == the node, state confirmed, not deleted, of type host,
// aggregated where exact (two sibling blocks of the node -> their parent, repeatedly; never wider than the blocks).
// Bad data never reaches a route: a malformed object, a block of an unknown node, and every block that overlaps a
// block of another node are left out, each with a finding. IPs borrowed from another node's block (/32 routes from
// IPAMBlock attributes) are not covered.

import { contains, formatPrefix, parseNetwork, type Prefix } from '../nodeplan/cidr.ts';
import type { PodSubnetMode } from '../topology/types.ts';
import type { Finding } from './types.ts';
import { looksLikeKeyMaterial } from '../topology/keymaterial.ts';
import { isDnsSubdomain } from './selector.ts';

export type { PodSubnetMode };
/** A source in force: a PodSubnetMode other than `auto`. */
export type PodSubnetSource = Exclude<PodSubnetMode, 'auto'>;

export const CALICO_V1 = 'crd.projectcalico.org/v1';
/** The native v3 CRDs (tech preview in Calico 3.32); `deleted` is a boolean there. */
export const CALICO_V3 = 'projectcalico.org/v3';
export type CalicoGroupVersion = typeof CALICO_V1 | typeof CALICO_V3;
/** API group/versions whose BlockAffinity objects are read, v1 (Calico's default) first. */
export const CALICO_BLOCK_AFFINITY_VERSIONS: readonly CalicoGroupVersion[] = [CALICO_V1, CALICO_V3];

/** What the cluster (or an offline snapshot) says about Calico IPAM. */
export interface CalicoIpamState {
  /** The API groups that serve blockaffinities (subset of CALICO_BLOCK_AFFINITY_VERSIONS); empty when none. */
  served: readonly CalicoGroupVersion[];
  /** The BlockAffinity objects, as wire JSON, of every served group. */
  blockAffinities: readonly unknown[];
}

/** The planner's pod-subnet input. Absent: podCIDR, as before there was a choice. */
export interface PodSubnetInput {
  /** Install-time override (`corvid sync --pod-subnets=podCIDR|calico`); wins over the topology. */
  override?: PodSubnetSource;
  calico: CalicoIpamState;
}

/** No Calico IPAM at all. */
export const NO_CALICO: CalicoIpamState = Object.freeze({ served: [], blockAffinities: [] });

/** The planner's pod-subnet input for a `--pod-subnets` mode (the sync's and the CLI's) and what was read. */
export function podSubnetInput(mode: PodSubnetMode | undefined, calico: CalicoIpamState): PodSubnetInput {
  return mode === undefined || mode === 'auto' ? { calico } : { override: mode, calico };
}

export interface PodSubnetDecision {
  source: PodSubnetSource;
  /** Where the choice came from: `flag`, `topology` or `auto`. */
  decidedBy: 'flag' | 'topology' | 'auto' | 'default';
  /** One sentence for status, logs and `corvid status`. */
  reason: string;
}

/** The source in force, and why. */
export function resolvePodSubnetSource(topologyMode: PodSubnetMode, input: PodSubnetInput | undefined): PodSubnetDecision {
  if (input === undefined) return { source: 'podCIDR', decidedBy: 'default', reason: 'node.spec.podCIDRs (no pod-subnet source given)' };
  if (input.override !== undefined) {
    return { source: input.override, decidedBy: 'flag', reason: `--pod-subnets=${input.override} (install-time override)` };
  }
  if (topologyMode !== 'auto') return { source: topologyMode, decidedBy: 'topology', reason: `spec.podSubnets.source: ${topologyMode} in the topology` };
  const { served, blockAffinities } = input.calico;
  if (served.length === 0) return { source: 'podCIDR', decidedBy: 'auto', reason: 'auto: the cluster serves no Calico BlockAffinity resource' };
  if (blockAffinities.length === 0) {
    return { source: 'podCIDR', decidedBy: 'auto', reason: `auto: ${[...served].sort().join(' and ')} BlockAffinity served but there are no BlockAffinities` };
  }
  // No count in the reason: it would change (and be written to status) with every block.
  return { source: 'calico', decidedBy: 'auto', reason: `auto: Calico BlockAffinities found (${[...served].sort().join(', ')})` };
}

// ---------------------------------------------------------------- Calico blocks -> node subnets

/**
 * A value from a cluster object, quoted for a message when it is one short line that does not look like key material;
 * else only its length: the object is not ours to trust, and a pasted key must not reach a status or an Event.
 */
function quoted(text: string): string {
  return text.length <= 64 && !/\s/.test(text) && !looksLikeKeyMaterial(text) ? JSON.stringify(text) : `(${text.length} characters, not shown)`;
}

type Obj = Record<string, unknown>;

function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Go's strconv.ParseBool, which Calico uses on the v1 string (and "" means false there). */
function parseDeleted(v: unknown): boolean | undefined {
  if (v === undefined || v === false || v === '') return false;
  if (v === true) return true;
  if (typeof v !== 'string') return undefined;
  if (['1', 't', 'T', 'TRUE', 'true', 'True'].includes(v)) return true;
  if (['0', 'f', 'F', 'FALSE', 'false', 'False'].includes(v)) return false;
  return undefined;
}

/** Calico's block sizes (IPPool blockSize: IPv4 /20../32, IPv6 /116../128); anything wider is not a block. */
const WIDEST_BLOCK: Record<4 | 6, number> = { 4: 20, 6: 116 };

interface Block {
  node: string;
  prefix: Prefix;
  text: string;
  /** The object's name, for findings. */
  name: string;
}

export interface CalicoSubnets {
  /** Node name -> its aggregated subnets, IPv4 first, by address; canonical text. Nodes without blocks are absent. */
  byNode: Map<string, string[]>;
  findings: Finding[];
}

/** Any value as text for quoted(). */
function text(v: unknown): string {
  return typeof v === 'string' ? v : (JSON.stringify(v) ?? String(v));
}

function objectName(name: string): string {
  if (name === '') return 'a BlockAffinity without a name';
  return isDnsSubdomain(name) && !looksLikeKeyMaterial(name) ? `BlockAffinity ${name}` : 'a BlockAffinity whose name is not a DNS name or looks like key material';
}

/**
 * One BlockAffinity -> a block of a node, `undefined` to skip it quietly (not confirmed, deleted, not a host's), or
 * a problem.
 */
function readBlock(o: unknown): Block | undefined | { problem: string; name: string } {
  if (!isObj(o)) return { problem: 'a BlockAffinity item is not an object', name: '' };
  const meta = isObj(o.metadata) ? o.metadata : {};
  const name = typeof meta.name === 'string' ? meta.name : '';
  const bad = (why: string) => ({ problem: `${objectName(name)}: ${why}; ignored`, name });
  if (o.kind !== undefined && o.kind !== 'BlockAffinity') return bad(`kind is ${quoted(text(o.kind))}, not BlockAffinity`);
  if (o.apiVersion !== undefined && !CALICO_BLOCK_AFFINITY_VERSIONS.includes(o.apiVersion as CalicoGroupVersion)) {
    return bad(`apiVersion ${quoted(text(o.apiVersion))} is not ${CALICO_BLOCK_AFFINITY_VERSIONS.join(' or ')}`);
  }
  if (!isObj(o.spec)) return bad('no spec');
  const spec = o.spec;
  if (spec.state !== 'confirmed') return undefined;
  const deleted = parseDeleted(spec.deleted);
  if (deleted === undefined) return bad(`spec.deleted ${quoted(text(spec.deleted))} is not a boolean`);
  if (deleted) return undefined;
  if (spec.type !== undefined && spec.type !== '' && spec.type !== 'host') return undefined;
  if (typeof spec.node !== 'string' || spec.node === '') return bad('no spec.node');
  if (!isDnsSubdomain(spec.node)) return bad('spec.node is not a node name');
  if (typeof spec.cidr !== 'string') return bad('no spec.cidr');
  const prefix = parseNetwork(spec.cidr);
  // Only what failed to parse is quoted (bounded); a CIDR that parsed is short and safe to repeat as written.
  if (prefix === 'not a CIDR') return bad(`spec.cidr ${quoted(spec.cidr)} is not a CIDR`);
  if (prefix === 'host bits set') return bad(`spec.cidr ${spec.cidr.trim()} has host bits set`);
  if (prefix.length < WIDEST_BLOCK[prefix.family]) return bad(`spec.cidr ${spec.cidr.trim()} is wider than any Calico block (/${WIDEST_BLOCK[prefix.family]})`);
  return { node: spec.node, prefix, text: formatPrefix(prefix), name };
}

/** The widest node.spec.podCIDR taken: anything wider would route most of the address space to one node. */
export const WIDEST_POD_CIDR: Record<4 | 6, number> = { 4: 8, 6: 16 };


/**
 * A node's podCIDRs as pod subnets: canonical CIDRs; what is not a CIDR, has host bits set, or is wider than
 * WIDEST_POD_CIDR is left out with a problem (never a route to the wrong place).
 */
export function nodePodCIDRs(podCIDRs: readonly string[]): { subnets: string[]; problems: string[] } {
  const subnets: string[] = [];
  const problems: string[] = [];
  for (const raw of podCIDRs) {
    const prefix = parseNetwork(raw);
    if (typeof prefix === 'string') problems.push(`podCIDR ${quoted(raw)} ${prefix === 'not a CIDR' ? 'is not a CIDR' : 'has host bits set'}`);
    else if (prefix.length < WIDEST_POD_CIDR[prefix.family]) problems.push(`podCIDR ${quoted(raw)} is wider than /${WIDEST_POD_CIDR[prefix.family]}`);
    else subnets.push(formatPrefix(prefix));
  }
  return { subnets, problems };
}

const BITS: Record<4 | 6, number> = { 4: 32, 6: 128 };

function byAddress(a: Block, b: Block): number {
  if (a.prefix.family !== b.prefix.family) return a.prefix.family - b.prefix.family;
  if (a.prefix.value !== b.prefix.value) return a.prefix.value < b.prefix.value ? -1 : 1;
  if (a.prefix.length !== b.prefix.length) return a.prefix.length - b.prefix.length;
  return a.node < b.node ? -1 : a.node > b.node ? 1 : 0;
}

/** Sorted, disjoint prefixes -> the same addresses with every pair of siblings merged into its parent, repeatedly. */
function aggregate(sorted: Prefix[]): Prefix[] {
  const out: Prefix[] = [];
  for (const p of sorted) {
    if (out.length > 0 && contains(out[out.length - 1], p)) continue;
    let cur = p;
    for (;;) {
      const last = out[out.length - 1];
      if (last === undefined || last.family !== cur.family || last.length !== cur.length || cur.length === 0) break;
      const size = 1n << BigInt(BITS[cur.family] - cur.length);
      // Siblings: `last` is the lower half of a prefix one bit shorter and `cur` is its upper half.
      if ((last.value & size) !== 0n || last.value + size !== cur.value) break;
      out.pop();
      cur = { family: cur.family, value: last.value, length: cur.length - 1 };
    }
    out.push(cur);
  }
  return out;
}

/**
 * Each node's pod subnets from Calico BlockAffinities. `nodes`: the known node names (blocks of others are left out
 * with a finding); undefined when there is no inventory to check against. Never throws; the result does not depend on
 * the order of `affinities`.
 */
export function calicoPodSubnets(affinities: readonly unknown[], nodes?: ReadonlySet<string>): CalicoSubnets {
  const findings = new Map<string, Finding>();
  const add = (f: Finding): void => void findings.set(`${f.code}\u0000${f.node ?? ''}\u0000${f.message}`, f);

  // Valid blocks, one per (node, CIDR): both API groups carry the same affinity while a cluster migrates.
  const unique = new Map<string, Block>();
  for (const o of affinities) {
    const b = readBlock(o);
    if (b === undefined) continue;
    if ('problem' in b) {
      add({ severity: 'warning', code: 'calico-block-invalid', message: b.problem });
      continue;
    }
    const key = `${b.node}\u0000${b.text}`;
    const seen = unique.get(key);
    if (seen === undefined || b.name < seen.name) unique.set(key, b);
  }
  const blocks = [...unique.values()].sort(byAddress);

  // Overlaps between nodes. Prefixes either nest or are disjoint, so in address order every block that contains
  // this one is on the stack of enclosing blocks.
  const conflicted = new Set<Block>();
  const stack: Block[] = [];
  for (const b of blocks) {
    while (stack.length > 0 && !contains(stack[stack.length - 1].prefix, b.prefix)) stack.pop();
    for (const outer of stack) {
      if (outer.node === b.node) continue;
      conflicted.add(outer);
      conflicted.add(b);
      const [x, y] = outer.node < b.node ? [outer, b] : [b, outer];
      add({
        severity: 'error',
        code: 'calico-block-overlap',
        node: x.node,
        message: `Calico blocks ${x.text} of node ${x.node} and ${y.text} of node ${y.node} overlap; both are left out (no route to either)`,
      });
    }
    stack.push(b);
  }

  const perNode = new Map<string, Prefix[]>();
  for (const b of blocks) {
    if (conflicted.has(b)) continue;
    if (nodes !== undefined && !nodes.has(b.node)) {
      add({
        severity: 'warning',
        code: 'calico-block-unknown-node',
        node: b.node,
        message: `${objectName(b.name)}: block ${b.text} belongs to node ${b.node}, which is not in the inventory; ignored`,
      });
      continue;
    }
    let list = perNode.get(b.node);
    if (list === undefined) perNode.set(b.node, (list = []));
    list.push(b.prefix);
  }
  const byNode = new Map<string, string[]>();
  for (const node of [...perNode.keys()].sort()) byNode.set(node, aggregate(perNode.get(node)!).map(formatPrefix));
  const sorted = [...findings.values()].sort((a, b) => {
    const ka = `${a.code}\u0000${a.node ?? ''}\u0000${a.message}`;
    const kb = `${b.code}\u0000${b.node ?? ''}\u0000${b.message}`;
    return ka < kb ? -1 : ka > kb ? 1 : 0;
  });
  return { byNode, findings: sorted };
}
