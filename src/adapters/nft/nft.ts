// nftables adapter: owns exactly one table, `inet corvid`, and nothing else.
//
// The table does two things for cross-pool traffic (the node plan's PacketPolicy):
// - Keeps pod source addresses. A CNI's masquerade (flannel in iptables mode: `-s C ! -d 224.0.0.0/4 -j MASQUERADE`;
//   Raven issue 184) would rewrite a gateway's forwarded pod traffic to the node's address. An `accept` in a table of
//   our own does not stop that: the kernel runs every nat chain of the hook until one sets up a binding
//   (nf_nat_inet_fn in net/netfilter/nf_nat_core.c). So our chain runs first (priority srcnat - 10) and sets up a
//   binding that changes nothing (`snat to <the packet's own source>`); no later nat chain, nftables or iptables
//   (legacy or nft), is then consulted for that flow. kube-proxy's masquerade mark (0x4000) is left alone.
// - Clamps the TCP MSS of SYNs between local and remote subnets on active gateways, so that TCP fits the tunnel even
//   where a middlebox drops ICMP "fragmentation needed".
// - On a gateway with WireGuard links, drops what is bound for a prefix behind WireGuard and would leave by another
//   device: with corvid.wg gone (or never made), its routes are gone too and the main table would send it in the clear.
//
// Applying replaces the whole table in one nft transaction (`table` + `delete table` + the new table), so there is
// never a moment without it and nothing of anyone else's is touched. Drift (a rule or element removed by hand, the
// table deleted) is seen by comparing `nft list table` with what it printed right after our last apply.
import { inNetns, runCommand } from '../command.ts';
import type { Family, PacketPolicy } from '../../nodeplan/types.ts';

export const NFT_TABLE = 'corvid';
/** kube-proxy's masquerade mark (KUBE-MARK-MASQ): flows it wants masqueraded stay its own. */
export const KUBE_PROXY_MASQ_MARK = '0x00004000';

function familyOf(cidr: string): Family {
  return cidr.includes(':') ? 6 : 4;
}

const SETTINGS: Record<Family, { type: string; match: string; suffix: string }> = {
  4: { type: 'ipv4_addr', match: 'ip', suffix: '4' },
  6: { type: 'ipv6_addr', match: 'ip6', suffix: '6' },
};

function set(name: string, family: Family, elements: string[]): string {
  // auto-merge: overlapping or adjacent prefixes (two nodes' subnets) are merged instead of refused.
  return `  set ${name} { type ${SETTINGS[family].type}; flags interval; auto-merge; elements = { ${elements.join(', ')} } }\n`;
}

/** The ruleset text for `policy` (deterministic), or '' when the table should not exist. Pure. */
export function renderTable(policy: PacketPolicy, table = NFT_TABLE): string {
  let sets = '';
  const nat: string[] = [];
  const forward: string[] = [];
  const output: string[] = [];
  for (const family of [4, 6] as const) {
    const { match, suffix } = SETTINGS[family];
    const local = policy.local.filter((c) => familyOf(c) === family);
    const remote = policy.remote.filter((c) => familyOf(c) === family);
    if (remote.length === 0) continue;
    sets += set(`remote${suffix}`, family, remote);
    if (local.length > 0) {
      sets += set(`local${suffix}`, family, local);
      nat.push(`${match} saddr @local${suffix} ${match} daddr @remote${suffix} snat ${match} to ${match} saddr`);
      nat.push(`${match} saddr @remote${suffix} ${match} daddr @local${suffix} snat ${match} to ${match} saddr`);
    }
    // A relay forwards between two remote pools.
    nat.push(`${match} saddr @remote${suffix} ${match} daddr @remote${suffix} snat ${match} to ${match} saddr`);
  }
  const clamps = [...policy.mss].sort((a, b) => a.family - b.family || a.mss - b.mss);
  for (const c of clamps) {
    if (c.remote.length === 0) continue;
    const { match, suffix } = SETTINGS[c.family];
    const name = `mss${suffix}_${c.mss}`;
    sets += set(name, c.family, c.remote);
    const clamp = `tcp flags & (syn | rst) == syn tcp option maxseg size > ${c.mss} tcp option maxseg size set ${c.mss}`;
    forward.push(`${match} daddr @${name} ${clamp}`, `${match} saddr @${name} ${clamp}`);
    output.push(`${match} daddr @${name} ${clamp}`);
  }
  const sealed: string[] = [];
  for (const family of [4, 6] as const) {
    const list = (policy.tunnelOnly?.remote ?? []).filter((c) => familyOf(c) === family);
    if (list.length === 0) continue;
    const { match, suffix } = SETTINGS[family];
    sets += set(`tunnel${suffix}`, family, list);
    sealed.push(`${match} daddr @tunnel${suffix} oifname != ${JSON.stringify(policy.tunnelOnly!.device)} drop`);
  }
  if (nat.length === 0 && forward.length === 0 && sealed.length === 0) return '';
  const chain = (name: string, hook: string, priority: string, rules: string[]): string =>
    rules.length === 0
      ? ''
      : `  chain ${name} {\n    type ${hook === 'postrouting' ? 'nat' : 'filter'} hook ${hook} priority ${priority}; policy accept;\n${rules.map((r) => `    ${r}\n`).join('')}  }\n`;
  const natRules = nat.length === 0 ? [] : [`meta mark & ${KUBE_PROXY_MASQ_MARK} == ${KUBE_PROXY_MASQ_MARK} return`, ...nat];
  return (
    `table inet ${table} {\n` +
    sets +
    chain('keep-pod-source', 'postrouting', 'srcnat - 10', natRules) +
    chain('clamp-mss-forward', 'forward', 'mangle', forward) +
    chain('clamp-mss-output', 'output', 'mangle', output) +
    chain('tunnel-only-forward', 'forward', 'filter', sealed) +
    chain('tunnel-only-output', 'output', 'filter', sealed) +
    '}\n'
  );
}

export interface NftOptions {
  /** Run nft inside this named network namespace (`ip netns exec`); default: the current one. */
  netns?: string;
  nftPath?: string;
  ipPath?: string;
  table?: string;
}

export interface NftApplyResult {
  /** True when the table was (re)written or deleted. */
  changed: boolean;
  /** nft's own words when it refused. */
  error?: string;
}

export class Nft {
  readonly table: string;
  private readonly o: NftOptions;
  /** What we last wrote and what `nft list table` printed right after. */
  private last: { rules: string; listing: string } | undefined;

  constructor(opts: NftOptions = {}) {
    this.o = opts;
    this.table = opts.table ?? NFT_TABLE;
  }

  private run(args: string[], input?: string) {
    const [cmd, full] = inNetns(this.o.netns, this.o.nftPath ?? 'nft', args, this.o.ipPath);
    return runCommand(cmd, full, input);
  }

  /** `nft list table inet <table>`, or undefined when the table does not exist. */
  async list(): Promise<string | undefined> {
    const r = await this.run(['list', 'table', 'inet', this.table]);
    if (r.code === 0) return r.stdout;
    if (/No such file or directory/.test(r.stderr)) return undefined;
    throw new Error(`nft list table inet ${this.table}: ${r.stderr.trim()}`);
  }

  /** Make the table say `policy` (no table when it asks for nothing). */
  async apply(policy: PacketPolicy): Promise<NftApplyResult> {
    const rules = renderTable(policy, this.table);
    const listing = await this.list();
    if (rules === '') {
      this.last = undefined;
      if (listing === undefined) return { changed: false };
      return this.remove();
    }
    if (this.last !== undefined && this.last.rules === rules && this.last.listing === listing) return { changed: false };
    const r = await this.run(['-f', '-'], `table inet ${this.table}\ndelete table inet ${this.table}\n${rules}`);
    if (r.code !== 0) {
      this.last = undefined;
      return { changed: false, error: r.stderr.trim() || `nft exited with ${r.code}` };
    }
    this.last = { rules, listing: (await this.list()) ?? '' };
    return { changed: true };
  }

  /** Delete our table (and nothing else). */
  async remove(): Promise<NftApplyResult> {
    this.last = undefined;
    const r = await this.run(['delete', 'table', 'inet', this.table]);
    if (r.code === 0) return { changed: true };
    if (/No such file or directory/.test(r.stderr)) return { changed: false };
    return { changed: false, error: r.stderr.trim() };
  }
}
