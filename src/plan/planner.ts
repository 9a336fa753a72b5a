// The pure core of the sync: topology + live nodes + health + live Gateways -> desired Gateways, findings, decisions.
// spec is a function of the topology alone (every declared gateway is an endpoint); status carries what depends on
// live nodes (members, elected endpoints with their effective publicIP). Deterministic: equal inputs give byte-identical output whatever the order of `nodes`; re-planning with the output
// as `previous` and nothing else changed gives equal objects. Problems in the data are findings, never exceptions.

import { decodeElection, encodeGatewayAnnotations, encodePrivateIPs } from '../gateway/annotations.ts';
import {
  ELECTION_ANNOTATION,
  ENDPOINT_PRIORITY_CONFIG,
  ENDPOINT_PRIVATE_IPS_CONFIG,
  MANAGED_BY_LABEL,
  MANAGED_BY_VALUE,
  ownedByTopology,
  POOL_LABEL,
  RELAY_ANNOTATION,
  TOPOLOGY_LABEL,
} from '../gateway/keys.ts';
import { isWireguardKey } from '../gateway/wireguard.ts';
import type { Endpoint, Gateway, NodeInfo } from '../gateway/types.ts';
import { GATEWAY_API_VERSION, GATEWAY_KIND } from '../gateway/types.ts';
import type { Pool } from '../topology/types.ts';
import { DEFAULT_MEMBER_VXLAN } from '../topology/normalise.ts';
import { nodeAddressPools } from './nodeaddresses.ts';
import { candidateState, electPool } from './election.ts';
import type { CandidateState } from './election.ts';
import { encryptionTable } from './encryption.ts';
import { isIPv4, isUsableIP } from '../topology/ip.ts';
import { peerAnnotationLists, peersAllowed, peerTable } from './peers.ts';
import { chooseRelays } from './relay.ts';
import { SelectorIndex } from './selector.ts';
import { poolMembership } from './membership.ts';
import { calicoPodSubnets, nodePodCIDRs, resolvePodSubnetSource } from './podsubnets.ts';
import { parseNow } from './time.ts';
import type { Decision, Finding, InventoryNode, PlanInput, PlanResult } from './types.ts';
import { canonicalize, canonicalJson } from '../gateway/canonical.ts';

/** IKE NAT-T port, the upstream tunnel endpoint port. */
export const TUNNEL_PORT = 4500;
/** Kubernetes' limit on the total size of an object's annotations (TotalAnnotationSizeLimitB). */
export const ANNOTATION_SIZE_LIMIT = 256 * 1024;
/** Upstream's webhook refuses spec.tunnelConfig.Replicas > 1. */
export const UPSTREAM_MAX_TUNNEL_REPLICAS = 1;

const byName = (a: { name: string }, b: { name: string }): number => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);

function findingOrder(a: Finding, b: Finding): number {
  const ka = [a.pool ?? '', a.node ?? '', a.code, a.message];
  const kb = [b.pool ?? '', b.node ?? '', b.code, b.message];
  for (let i = 0; i < ka.length; i++) if (ka[i] !== kb[i]) return ka[i] < kb[i] ? -1 : 1;
  return 0;
}

/** One node per name (duplicates: the canonically smallest wins, with a finding); order not significant. */
function uniqueNodes(nodes: readonly InventoryNode[], findings: Finding[]): Map<string, InventoryNode> {
  const byNodeName = new Map<string, InventoryNode>();
  const duplicated = new Set<string>();
  for (const n of nodes) {
    const seen = byNodeName.get(n.name);
    if (seen === undefined) {
      byNodeName.set(n.name, n);
      continue;
    }
    duplicated.add(n.name);
    if (canonicalJson(n) < canonicalJson(seen)) byNodeName.set(n.name, n);
  }
  for (const dup of duplicated) {
    findings.push({ severity: 'warning', code: 'duplicate-node', node: dup, message: `node ${dup} appears more than once in the inventory; one entry was used` });
  }
  return byNodeName;
}

function annotationBytes(a: Record<string, string>): number {
  let n = 0;
  for (const [k, v] of Object.entries(a)) n += Buffer.byteLength(k) + Buffer.byteLength(v);
  return n;
}

/**
 * The config of an active endpoint: the spec's (the priority), plus, on a dual-stack node, corvid.dev/private-ips with
 * its address of each family. status.nodes carries one privateIP (the first InternalIP); members need the gateway's
 * address of the other family to route that family's prefixes to it, and the agents read only Gateways. In status, as
 * it depends on the live node (spec stays a function of the topology). Keys in sorted order (canonical form).
 */
function activeConfig(ep: Endpoint, node: InventoryNode): Record<string, string> {
  const config: Record<string, string> = { ...ep.config };
  const ip = node.internalIP;
  const other = node.internalIPOtherFamily;
  if (ip !== undefined && other !== undefined) {
    config[ENDPOINT_PRIVATE_IPS_CONFIG] = encodePrivateIPs(isIPv4(ip) ? { ipv4: ip, ipv6: other } : { ipv4: other, ipv6: ip });
  }
  return canonicalize(config);
}

export function plan(input: PlanInput): PlanResult {
  const { topology: t, now } = input;
  const nowMs = parseNow(now);
  const reached = new Set(input.reachedPools ?? []);
  const findings: Finding[] = [];
  const decisions: Decision[] = [];
  const pools: Pool[] = [...t.pools].sort(byName);

  // Membership by selector; a node matched by several pools goes to the first by name.
  const nodeByName = uniqueNodes(input.nodes, findings);
  // Whether there is an inventory to check the declared gateways against (none: `corvid render` without nodes).
  const inventory = nodeByName.size > 0;
  const index = new SelectorIndex(pools.map((p) => p.nodeSelector));
  pools.forEach((p, i) => {
    const err = index.error(i);
    if (err) findings.push({ severity: 'error', code: 'invalid-selector', pool: p.name, message: `pool ${p.name}: invalid nodeSelector (${err}); it selects no node` });
  });
  const { members, poolOf: poolOfNode, shared } = poolMembership(index, pools.length, nodeByName.values());
  for (const { node: n, pools: hits } of shared) {
    const names = hits.map((i) => pools[i].name);
    findings.push({
      severity: 'warning',
      code: 'node-in-two-pools',
      pool: names[0],
      node: n.name,
      message: `node ${n.name} is selected by pools ${names.join(', ')}; it belongs to ${names[0]} (first by name)`,
    });
  }
  for (const m of members) if (m.length > 1) m.sort(byName);

  // Pod subnets: node.spec.podCIDRs, or Calico IPAM's blocks.
  const podSubnets = resolvePodSubnetSource(t.podSubnets.source, input.podSubnets);
  let calicoSubnets: Map<string, string[]> | undefined;
  if (podSubnets.source === 'calico') {
    const calico = input.podSubnets?.calico;
    if (calico === undefined || calico.served.length === 0) {
      findings.push({ severity: 'warning', code: 'calico-not-served', message: `pod subnets from Calico (${podSubnets.reason}), but no BlockAffinity resource is served; no node has pod subnets` });
    }
    const r = calicoPodSubnets(calico?.blockAffinities ?? [], inventory ? new Set(nodeByName.keys()) : undefined);
    for (const f of r.findings) findings.push(f);
    calicoSubnets = r.byNode;
  }
  const subnetsOf = (n: InventoryNode, pool: string): string[] => {
    if (calicoSubnets !== undefined) return calicoSubnets.get(n.name) ?? [];
    const { subnets, problems } = nodePodCIDRs(n.podCIDRs);
    for (const p of problems) findings.push({ severity: 'error', code: 'invalid-pod-cidr', pool, node: n.name, message: `node ${n.name}: ${p}; left out` });
    return subnets;
  };

  // Pool-level relations.
  const peers = peerTable({ ...t, pools });
  const allowed = (a: string, b: string): boolean => peersAllowed(peers, a, b);
  const previous = new Map<string, Gateway>();
  for (const g of input.previous) if (g?.metadata?.name) previous.set(g.metadata.name, g);
  const previousRelay = new Map<string, string>();
  for (const [name, g] of previous) {
    const r = g.metadata.annotations?.[RELAY_ANNOTATION];
    if (r) previousRelay.set(name, r);
  }
  const relays = chooseRelays({ topology: { ...t, pools }, previousRelay, allowed });
  for (const f of relays.findings) findings.push(f);
  const encryption = encryptionTable({ ...t, pools }, allowed);

  const settings = t.election;
  const stateSettings = { heartbeatTimeoutSeconds: settings.heartbeatTimeoutSeconds, requireHeartbeat: input.requireHeartbeat === true };
  const replicas = Math.max(1, Math.floor(settings.replicas));
  const gateways: Gateway[] = [];
  // spec.nodeAddresses: published by every pool whose node subnet overlaps no other pool's.
  const nodeAddressesOn =
    t.nodeAddresses === true
      ? nodeAddressPools(pools.map((p, i) => ({ name: p.name, addresses: members[i].map((n) => n.internalIP ?? '').filter((a) => a !== '') })), findings)
      : new Set<string>();

  // WireGuard keys are published only where some link may use WireGuard: any pool or link that names it, or the defaults.
  const usesWireguard =
    t.encryption.backend === 'wireguard' ||
    pools.some((p) => p.encryption?.backend === 'wireguard') ||
    t.links.some((l) => l.encryption.backend === 'wireguard');
  const wireguardKeys = input.wireguardKeys ?? {};

  pools.forEach((pool, pi) => {
    const poolMembers = members[pi];
    const prev = previous.get(pool.name);
    if (prev && !ownedByTopology(prev, t.name)) {
      findings.push({
        severity: 'warning',
        code: 'gateway-adopted',
        pool: pool.name,
        message: `Gateway ${pool.name} exists but is not labelled as managed by Corvid for topology ${t.name}; Corvid takes it over`,
      });
    }

    // Node warnings and status.nodes.
    const statusNodes: NodeInfo[] = [];
    for (const n of poolMembers) {
      if (!n.internalIP) {
        findings.push({ severity: 'warning', code: 'node-without-internal-ip', pool: pool.name, node: n.name, message: `node ${n.name} has no InternalIP; left out of status.nodes` });
      }
      const subnets = subnetsOf(n, pool.name);
      if (subnets.length === 0) {
        const what = calicoSubnets === undefined ? 'no podCIDR' : 'no confirmed Calico IPAM block';
        findings.push({ severity: 'warning', code: 'node-without-pod-cidr', pool: pool.name, node: n.name, message: `node ${n.name} has ${what}; its pods are not routable from other pools` });
      }
      if (n.internalIP) statusNodes.push({ nodeName: n.name, privateIP: n.internalIP, subnets });
    }

    // spec.endpoints: every declared gateway, in preference order, from the topology alone (so `corvid render`
    // without nodes writes the same spec as the sync). Candidates: the declared gateways that are member nodes; their
    // status endpoint carries the effective publicIP (the topology's, else the node's corvid.dev/public-ip).
    const endpoints: Endpoint[] = [];
    const activeEndpointOf = new Map<string, Endpoint>();
    const candidates: CandidateState[] = [];
    const seenPref = new Set<string>();
    pool.gateways.forEach((pref, rank) => {
      if (seenPref.has(pref.node)) return;
      seenPref.add(pref.node);
      let publicIP: string | undefined;
      if (pref.publicIP !== undefined) {
        if (isUsableIP(pref.publicIP)) publicIP = pref.publicIP;
        else findings.push({ severity: 'error', code: 'invalid-public-ip', pool: pool.name, node: pref.node, message: `gateway ${pref.node}: topology publicIP is not a usable IP address (IPv4, or IPv6 without a zone); left out` });
      }
      const ep: Endpoint = {
        config: { [ENDPOINT_PRIORITY_CONFIG]: String(rank) },
        nodeName: pref.node,
        port: TUNNEL_PORT,
        ...(publicIP !== undefined ? { publicIP } : {}),
        publicPort: pref.publicPort,
        type: 'tunnel',
        underNAT: pool.behindNAT,
      };
      endpoints.push(ep);

      const node = nodeByName.get(pref.node);
      const where = poolOfNode.get(pref.node);
      if (!node || where !== pi) {
        // An empty inventory (`corvid render` without nodes) has nothing to check: no candidate, no finding.
        if (inventory) {
          const why = !node ? 'no such node' : where === undefined ? 'the pool selector does not match it' : `it belongs to pool ${pools[where].name}`;
          findings.push({ severity: 'warning', code: 'gateway-not-in-pool', pool: pool.name, node: pref.node, message: `gateway ${pref.node} of pool ${pool.name} is not a candidate: ${why}` });
        }
        return;
      }
      let effectiveIP = publicIP;
      if (node.publicIP !== undefined) {
        if (!isUsableIP(node.publicIP)) {
          findings.push({ severity: 'warning', code: 'invalid-public-ip', pool: pool.name, node: node.name, message: `node ${node.name}: annotation corvid.dev/public-ip is not a usable IP address (IPv4, or IPv6 without a zone); ignored` });
        } else if (publicIP === undefined && pref.publicIP === undefined) effectiveIP = node.publicIP;
        else if (publicIP !== undefined && publicIP !== node.publicIP) {
          findings.push({ severity: 'warning', code: 'public-ip-conflict', pool: pool.name, node: node.name, message: `node ${node.name}: annotation corvid.dev/public-ip ${node.publicIP} differs from the topology's ${publicIP}; the topology wins` });
        }
      }
      // Keys in canonical (sorted) order: publicIP sits between port and publicPort.
      activeEndpointOf.set(
        node.name,
        effectiveIP === publicIP
          ? ep
          : { config: ep.config, nodeName: ep.nodeName, port: ep.port, publicIP: effectiveIP, publicPort: ep.publicPort, type: ep.type, underNAT: ep.underNAT },
      );
      candidates.push(candidateState(node, rank, input.health[node.name], stateSettings, nowMs));
    });

    // Election.
    let previousReasons: Record<string, string> = {};
    const prevElection = prev?.metadata.annotations?.[ELECTION_ANNOTATION];
    if (prevElection !== undefined) {
      const d = decodeElection(prevElection);
      if (d.ok) previousReasons = d.value;
    }
    const election = electPool({
      pool: pool.name,
      candidates,
      previousActive: (prev?.status?.activeEndpoints ?? []).map((e) => e.nodeName),
      previousReasons,
      settings,
      reachedByPeers: reached.has(pool.name),
    });
    for (const d of election.decisions) decisions.push(d);
    for (const f of election.findings) findings.push(f);

    // Annotations.
    const enc = encryption.get(pool.name)!;
    const lists = peerAnnotationLists(peers.get(pool.name)!);
    const annotations = encodeGatewayAnnotations({
      peers: lists.peers,
      deniedPeers: lists.deniedPeers,
      connectivity: t.connectivity.mode,
      relay: relays.relayOf.get(pool.name),
      relaysFor: relays.relaysFor.get(pool.name),
      encryption: enc.default,
      encryptionDefaults: t.encryption,
      ...(enc.pool ? { encryptionPool: enc.pool } : {}),
      encryptionLinks: enc.links,
      election: election.reasons,
      revision: input.revision,
      ...(replicas > UPSTREAM_MAX_TUNNEL_REPLICAS ? { replicas } : {}),
      ...(pool.mtu !== undefined ? { mtu: pool.mtu } : {}),
      ...(pool.memberRouting !== undefined && pool.memberRouting !== 'direct'
        ? { memberRouting: pool.memberRouting, memberVxlan: t.memberVxlan ?? DEFAULT_MEMBER_VXLAN }
        : {}),
      ...(nodeAddressesOn.has(pool.name) ? { nodeAddresses: true } : {}),
      ...(usesWireguard ? { wireguardKeys: candidateKeys(candidates, wireguardKeys) } : {}),
    });
    const size = annotationBytes(annotations);
    if (size > ANNOTATION_SIZE_LIMIT) {
      findings.push({
        severity: 'error',
        code: 'annotations-too-large',
        pool: pool.name,
        message: `Gateway ${pool.name}: annotations take ${size} bytes, over the Kubernetes limit of ${ANNOTATION_SIZE_LIMIT}; the API server will refuse it`,
      });
    }

    // Built with keys in sorted order (canonical form) so that no deep copy is needed; only the selector, which comes
    // from the topology, is canonicalised.
    const gw: Gateway = {
      apiVersion: GATEWAY_API_VERSION,
      kind: GATEWAY_KIND,
      metadata: {
        annotations,
        labels: { [MANAGED_BY_LABEL]: MANAGED_BY_VALUE, [POOL_LABEL]: pool.name, [TOPOLOGY_LABEL]: t.name },
        name: pool.name,
      },
      spec: {
        endpoints,
        nodeSelector: canonicalize(pool.nodeSelector),
        proxyConfig: { Replicas: 0 },
        tunnelConfig: { Replicas: Math.min(replicas, UPSTREAM_MAX_TUNNEL_REPLICAS) },
      },
      status: {
        activeEndpoints: election.active.map((n) => {
          const ep = activeEndpointOf.get(n)!;
          return { ...ep, config: activeConfig(ep, nodeByName.get(n)!) };
        }),
        nodes: statusNodes,
      },
    };
    gateways.push(gw);
  });

  findings.sort(findingOrder);
  return { gateways, findings, decisions, podSubnets };
}

/** The WireGuard public keys of a pool's gateway candidates that published a valid one (Object.keys order: sorted later). */
function candidateKeys(candidates: readonly CandidateState[], keys: Readonly<Record<string, string>>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const c of candidates) {
    const k = Object.hasOwn(keys, c.node) ? keys[c.node] : undefined;
    if (isWireguardKey(k)) out[c.node] = k;
  }
  return out;
}
