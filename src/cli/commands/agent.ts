// corvid agent: the node agent. Gateways in, IPsec connections (charon over VICI), routes and rules out.

import type { CliIO } from '../io.ts';
import { EXIT_USAGE } from '../io.ts';
import { commandFlags, intFlag, str } from '../flags.ts';
import { DEFAULT_ROUTE_TABLE, DEFAULT_RULE_PRIORITY } from '../../nodeplan/index.ts';
import { validateTable } from '../../adapters/iproute/iproute.ts';
import { DEFAULT_LEASE_NAMESPACE } from '../../adapters/kube/leases.ts';
import { DEFAULT_LIVENESS_PORT } from '../../adapters/liveness/udp.ts';
import { DEFAULT_LIVENESS } from '../../nodeplan/liveness.ts';
import { parseDuration } from '../../topology/duration.ts';

export const DEFAULT_VICI_SOCKET = '/var/run/charon.vici';
export const DEFAULT_SECRET_DIR = '/etc/corvid/secrets';
export const DEFAULT_METRICS_ADDR = '127.0.0.1:9471';
export const DEFAULT_STATE_DIR = '/run/corvid';
/** Kept across reboots, unlike the state dir: a new key breaks every tunnel until the peers have learnt it. */
export const DEFAULT_WIREGUARD_KEY_FILE = '/var/lib/corvid-wireguard/private.key';

export const HELP = `Usage: corvid agent [flags]

Run the node agent on one node. It watches the Gateways, works out this node's role in its pool and keeps the node
in line with it, repairing drift every --repair-interval:
  - active gateway: one IKE connection (one CHILD_SA with all subnets) per reachable peer pool, loaded into the
    local charon over VICI, with its PSK read from <secret-dir>/<secret>/<key>;
  - ordinary node: a route per remote pool prefix via the local gateway in table --route-table, and one rule
    per address family (pref --rule-priority) that looks that table up;
  - gateway candidates renew the Lease <lease-namespace>/<node-name>; the active gateway reports its tunnels
    in the Lease annotation corvid.dev/tunnels.
  - every node with cross-pool traffic: the nftables table inet corvid keeps pod source addresses of cross-pool
    flows whatever the CNI's masquerade rules say, and on active gateways clamps TCP MSS to the tunnel's MTU
    (the pool's corvid.dev/mtu, else this node's uplink, less the IPsec overhead); member routes carry that MTU;
  - reverse-path filtering becomes loose (rp_filter 2) on the devices that carry this pool's own traffic (the
    CNI's overlay, the LAN) where it was strict, since cross-pool replies arrive there; the values found are
    kept in <state-dir>/rp_filter.json and put back on exit.
  - every node of a pool whose memberRouting is vxlan or auto (corvid.dev/member-routing): the VXLAN link
    corvid.vx, bound to the uplink; a member that routes through it has its gateway as its FDB and neighbour
    entry and its routes go via the gateway onlink on the device.
  - an active gateway with WireGuard links: the interface corvid.wg (the kernel's WireGuard, else wireguard-go),
    one peer per peer pool with its key from the peer's Gateway (corvid.dev/wireguard-keys), a preshared key
    derived from the link's PSK, and routes of the remote prefixes into it. The node's private key lives in
    --wireguard-key-file, made once; gateway candidates publish the public key on their Lease.
On SIGTERM or SIGINT it removes exactly what it created (corvid-* connections, SAs and keys, its table and rules,
its nftables table, the rp_filter values it changed, corvid.vx, corvid.wg; never the key file) and exits. Logs are JSON lines on stderr.

Flags:
      --node-name NAME        this node (default: $NODE_NAME)
      --kubeconfig FILE       kubeconfig (default: $KUBECONFIG, ~/.kube/config, then in-cluster)
      --context NAME          kubeconfig context
      --vici-socket PATH      charon's VICI socket (default ${DEFAULT_VICI_SOCKET})
      --route-table N         our routing table (default ${DEFAULT_ROUTE_TABLE}; never 220, charon's)
      --rule-priority N       priority of our rules (default ${DEFAULT_RULE_PRIORITY})
      --secret-dir DIR        where Secrets are mounted, one directory per Secret (default ${DEFAULT_SECRET_DIR})
      --lease-namespace NS    namespace of the heartbeat Leases (default ${DEFAULT_LEASE_NAMESPACE})
      --lease-renew DUR       heartbeat renew interval (default 10s); a changed verdict (tunnels, datapath,
                              liveness) is written at once, whatever the interval
      --lease-duration DUR    Lease duration (default 40s)
      --repair-interval DUR   how often drift is repaired (default 10s)
      --datapath-probe-interval DUR
                              how often a gateway candidate checks that its node can forward (charon answers,
                              forwarding on); a change goes to its heartbeat Lease at once (default 500ms)
      --liveness-port N       UDP port on which gateway candidates answer and send liveness probes to the other
                              candidates of their pool over the LAN (default ${DEFAULT_LIVENESS_PORT}; 0: off, the heartbeat's
                              expiry alone then tells a dead gateway)
      --liveness-probe-interval DUR
                              how often each other candidate of the pool is probed (default ${DEFAULT_LIVENESS.probeIntervalMs}ms)
      --liveness-down-after DUR
                              silence after which a candidate is reported unreachable on this node's Lease, and
                              the sync takes it out of the election (default ${DEFAULT_LIVENESS.downAfterMs}ms)
      --metrics-addr ADDR     /healthz, /readyz, /metrics listen address, [host]:port (":port": every
                              interface; default ${DEFAULT_METRICS_ADDR}; "" disables)
      --packet-filter on|off  manage the nftables table inet corvid (default on)
      --rp-filter loose|keep  loosen strict reverse-path filtering where cross-pool traffic needs it (default loose)
      --state-dir DIR         where the agent keeps what it must put back after a restart (default ${DEFAULT_STATE_DIR})
      --proc-sys DIR          where the node's /proc/sys is mounted (default /proc/sys; a container's is read-only)
      --wireguard MODE        auto (the kernel's WireGuard when it has it, else wireguard-go), kernel, userspace
                              or off (no key, no interface: WireGuard links fail) (default auto)
      --wireguard-key-file F  the node's WireGuard private key, created 0600 when missing
                              (default ${DEFAULT_WIREGUARD_KEY_FILE})
      --netns NAME            apply routes and rules in the named network namespace (ip -n NAME) while the
                              agent stays in its own (testing; in a DaemonSet use hostNetwork instead)
      --wireguard-socket-dir D  with --netns: a directory that stands in for /var/run/wireguard, where
                              wireguard-go keeps its control socket (testing: several nodes on one host)
      --log-level LEVEL       debug, info, warn or error (default info)
  -h, --help                  show this help

Durations as in the topology: 500ms, 10s, 2m, 1m30s (units h, m, s, ms, largest first).

Examples:
  # In a DaemonSet (NODE_NAME from the downward API, PSKs mounted under /etc/corvid/secrets):
  corvid agent --vici-socket /var/run/charon.vici --metrics-addr 0.0.0.0:9471

  # By hand on a test machine: node gw-a is network namespace gw-a with its own charon; the API server is
  # on the host's loopback, so the agent stays on the host and drives the namespace's routes with ip -n:
  corvid agent --node-name gw-a --netns gw-a --kubeconfig ./kubeconfig \\
    --vici-socket /tmp/gw-a/charon.vici --secret-dir ./secrets --repair-interval 2s --metrics-addr 127.0.0.1:0
`;

export async function run(argv: string[], io: CliIO): Promise<number> {
  const parsed = commandFlags(
    'agent',
    argv,
    {
      'node-name': { type: 'string' },
      kubeconfig: { type: 'string' },
      context: { type: 'string' },
      'vici-socket': { type: 'string' },
      'route-table': { type: 'string' },
      'rule-priority': { type: 'string' },
      'secret-dir': { type: 'string' },
      'lease-namespace': { type: 'string' },
      'lease-renew': { type: 'string' },
      'lease-duration': { type: 'string' },
      'repair-interval': { type: 'string' },
      'datapath-probe-interval': { type: 'string' },
      'liveness-port': { type: 'string' },
      'liveness-probe-interval': { type: 'string' },
      'liveness-down-after': { type: 'string' },
      'metrics-addr': { type: 'string' },
      netns: { type: 'string' },
      'packet-filter': { type: 'string', choices: ['on', 'off'] },
      'rp-filter': { type: 'string', choices: ['loose', 'keep'] },
      'state-dir': { type: 'string' },
      'proc-sys': { type: 'string' },
      wireguard: { type: 'string', choices: ['auto', 'kernel', 'userspace', 'off'] },
      'wireguard-key-file': { type: 'string' },
      'wireguard-socket-dir': { type: 'string' },
      'log-level': { type: 'string', choices: ['debug', 'info', 'warn', 'error'] },
    },
    HELP,
    io,
  );
  if (typeof parsed === 'number') return parsed;
  const v = parsed.values;
  const usage = (msg: string): number => {
    io.stderr.write(`corvid agent: ${msg}\nRun "corvid agent --help" for the flags and examples.\n`);
    return EXIT_USAGE;
  };

  const nodeName = str(v, 'node-name') ?? io.env.NODE_NAME ?? '';
  if (nodeName === '') return usage('--node-name is required (or set NODE_NAME)');
  const routeTable = intFlag(v, 'route-table') ?? DEFAULT_ROUTE_TABLE;
  if (typeof routeTable === 'string') return usage(routeTable);
  const badTable = validateTable(routeTable);
  if (badTable) return usage(`--route-table: ${badTable}`);
  const rulePriority = intFlag(v, 'rule-priority') ?? DEFAULT_RULE_PRIORITY;
  if (typeof rulePriority === 'string') return usage(rulePriority);
  if (rulePriority < 1 || rulePriority >= 32766) return usage('--rule-priority must be in 1..32765 (before the main table)');
  const dur = (name: string, def: string): number | string => {
    const text = str(v, name) ?? def;
    // The topology's duration grammar: one way to write a duration, in a flag as in a file.
    const seconds = parseDuration(text);
    if (seconds === undefined || seconds <= 0) return `--${name} must be a positive duration like 500ms, 1s or 2m, got "${text}"`;
    return seconds * 1000;
  };
  const leaseRenewMs = dur('lease-renew', '10s');
  if (typeof leaseRenewMs === 'string') return usage(leaseRenewMs);
  const leaseDurationMs = dur('lease-duration', '40s');
  if (typeof leaseDurationMs === 'string') return usage(leaseDurationMs);
  if (leaseDurationMs < 1000 || leaseDurationMs % 1000 !== 0) return usage('--lease-duration must be whole seconds (Lease spec.leaseDurationSeconds)');
  if (leaseRenewMs >= leaseDurationMs) return usage('--lease-renew must be shorter than --lease-duration');
  const repairMs = dur('repair-interval', '10s');
  if (typeof repairMs === 'string') return usage(repairMs);
  const datapathProbeMs = dur('datapath-probe-interval', '500ms');
  if (typeof datapathProbeMs === 'string') return usage(datapathProbeMs);
  const livenessPort = intFlag(v, 'liveness-port') ?? DEFAULT_LIVENESS_PORT;
  if (typeof livenessPort === 'string') return usage(livenessPort);
  if (livenessPort < 0 || livenessPort > 65535) return usage('--liveness-port must be a UDP port (0 turns liveness off)');
  const livenessProbeMs = dur('liveness-probe-interval', `${DEFAULT_LIVENESS.probeIntervalMs}ms`);
  if (typeof livenessProbeMs === 'string') return usage(livenessProbeMs);
  const livenessDownAfterMs = dur('liveness-down-after', `${DEFAULT_LIVENESS.downAfterMs}ms`);
  if (typeof livenessDownAfterMs === 'string') return usage(livenessDownAfterMs);
  if (livenessDownAfterMs < 2 * livenessProbeMs) return usage('--liveness-down-after must be at least two probe intervals');
  const metricsAddr = str(v, 'metrics-addr') ?? DEFAULT_METRICS_ADDR;
  const wireguard = (str(v, 'wireguard') ?? 'auto') as 'auto' | 'kernel' | 'userspace' | 'off';
  const netns = str(v, 'netns') || undefined;
  const wireguardSocketDir = str(v, 'wireguard-socket-dir') || undefined;
  if (wireguardSocketDir !== undefined && netns === undefined) return usage('--wireguard-socket-dir needs --netns (it is for test nodes sharing one host)');

  // Loaded only now, so --help and flag errors never pay for the Kubernetes client.
  const { loadKubeConfig } = await import('../../adapters/kube/kubeconfig.ts');
  const { jsonLogger } = await import('../../shell/log.ts');
  const { Agent } = await import('../../agent/agent.ts');
  const { parseAddress } = await import('../../adapters/http/server.ts');
  if (metricsAddr !== '') {
    try {
      parseAddress(metricsAddr);
    } catch (e) {
      return usage(`--metrics-addr: ${(e as Error).message}`);
    }
  }
  const log = jsonLogger({ level: (str(v, 'log-level') ?? 'info') as 'info', write: (line) => io.stderr.write(line), base: { node: nodeName } });

  let kubeConfig;
  try {
    kubeConfig = await loadKubeConfig({ kubeconfig: str(v, 'kubeconfig'), context: str(v, 'context'), env: io.env });
  } catch (e) {
    return usage(`cannot load kubeconfig: ${(e as Error).message}`);
  }

  const agent = new Agent({
    nodeName,
    kubeConfig,
    viciSocket: str(v, 'vici-socket') ?? DEFAULT_VICI_SOCKET,
    routeTable,
    rulePriority,
    secretDir: str(v, 'secret-dir') ?? DEFAULT_SECRET_DIR,
    leaseNamespace: str(v, 'lease-namespace') ?? DEFAULT_LEASE_NAMESPACE,
    leaseRenewMs,
    leaseDurationSeconds: leaseDurationMs / 1000,
    repairIntervalMs: repairMs,
    datapathProbeMs,
    livenessPort,
    livenessProbeMs,
    livenessDownAfterMs,
    metricsAddr,
    log,
    netns,
    ...(wireguard === 'off'
      ? {}
      : {
          wireguardKeyFile: str(v, 'wireguard-key-file') || DEFAULT_WIREGUARD_KEY_FILE,
          wireguardImplementation: wireguard,
          ...(wireguardSocketDir !== undefined ? { wireguardSocketDir } : {}),
        }),
    packetFilter: (str(v, 'packet-filter') ?? 'on') === 'on',
    looseRpFilter: (str(v, 'rp-filter') ?? 'loose') === 'loose',
    stateDir: str(v, 'state-dir') || DEFAULT_STATE_DIR,
    procSys: str(v, 'proc-sys') || undefined,
    processMetrics: true,
  });

  let stopRequested: (sig: string) => void = () => {};
  const stopped = new Promise<string>((resolve) => (stopRequested = resolve));
  const onSignal = (sig: NodeJS.Signals): void => stopRequested(sig);
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  try {
    log.info('starting', { routeTable, rulePriority, repairIntervalMs: repairMs });
    const started = agent.start().then(
      () => undefined,
      (e: Error) => e,
    );
    const first = await Promise.race([started, stopped.then((sig) => ({ sig }))]);
    if (first instanceof Error) {
      log.error('start failed', { error: first.message });
      await agent.stop();
      return 1;
    }
    const sig = typeof first === 'object' && first !== null && 'sig' in first ? first.sig : await stopped;
    log.info('stopping', { signal: sig });
    const res = await agent.stop();
    return res.ok ? 0 : 1;
  } finally {
    process.removeListener('SIGTERM', onSignal);
    process.removeListener('SIGINT', onSignal);
  }
}
