// rp_filter adapter: makes reverse-path filtering loose (2) on the devices where cross-pool traffic arrives by
// another path than its reply leaves, and puts back exactly the values it changed.
//
// Why: real CNIs make the path asymmetric. A member sends a remote pool's traffic to its gateway over the LAN, while
// the gateway's route back to that member's pods goes through the CNI's overlay (flannel.1, vxlan.calico, tunl0);
// a reply forwarded by the gateway arrives on the overlay while the member's route back to the remote pool is ours,
// via the LAN. Strict filtering (1, as RHEL ships) drops both (Raven issue 30, Submariner PR 217, which also loosen
// the CNI's device). Loose filtering still drops a source with no route at all.
//
// The kernel filters with max(conf/all, conf/<dev>), so a device is strict when that is 1; writing 2 to the device
// makes it loose whatever `all` says. The value found before is kept in a state file (a hostPath under /run in a
// DaemonSet: it survives an agent restart and, like the sysctls themselves, not a reboot) and restored on teardown,
// unless someone changed the value meanwhile.
import { readFile, writeFile, rename, rm, mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import { inNetns, runCommand } from '../command.ts';
import { readSysctls } from './read.ts';

export const LOOSE = 2;
export const STRICT = 1;

/** rp_filter values: `all`, and per device (undefined: the device does not exist). */
export interface RpFilterState {
  all: number;
  devices: Map<string, number | undefined>;
}

export interface RpFilterAction {
  device: string;
  /** The value to write. */
  value: number;
  /** Set when we make a device loose: the value to put back later. */
  original?: number;
}

/**
 * What to write so that every `wanted` device is loose, and every device we loosened earlier (`recorded`, device ->
 * original value) that is no longer wanted gets its value back. A device whose value someone else changed since we
 * wrote it is theirs again (no restore). Pure.
 */
export function rpFilterActions(state: RpFilterState, wanted: readonly string[], recorded: ReadonlyMap<string, number>): RpFilterAction[] {
  const out: RpFilterAction[] = [];
  const want = new Set(wanted);
  for (const device of [...want].sort()) {
    const v = state.devices.get(device);
    if (v === undefined) continue;
    if (Math.max(state.all, v) === STRICT) out.push({ device, value: LOOSE, original: recorded.get(device) ?? v });
  }
  for (const [device, original] of [...recorded].sort(([a], [b]) => (a < b ? -1 : 1))) {
    if (want.has(device)) continue;
    if (state.devices.get(device) === LOOSE) out.push({ device, value: original });
  }
  return out;
}

export interface RpFilterOptions {
  /** Where the original values are kept (JSON). */
  statePath: string;
  /** Read and write the sysctls of this named network namespace (`ip netns exec`); default: our own. */
  netns?: string;
  /**
   * Where /proc/sys is (default `/proc/sys`). A container sees /proc/sys read-only; the DaemonSet mounts the host's
   * /proc/sys/net/ipv4/conf elsewhere (a hostPath) and says so here. The netns of the process that opens the file
   * decides whose values they are: with hostNetwork, the node's.
   */
  procSys?: string;
  ipPath?: string;
}

export interface RpFilterResult {
  /** `<device>=<value>` for every write. */
  changes: string[];
  errors: string[];
}

/** The state file's content for `m` (sorted: equal maps give equal text). */
function stateText(m: ReadonlyMap<string, number>): string {
  return JSON.stringify(Object.fromEntries([...m].sort(([a], [b]) => (a < b ? -1 : 1)))) + '\n';
}

export class RpFilter {
  private readonly o: RpFilterOptions;
  private recorded: Map<string, number> | undefined;

  constructor(opts: RpFilterOptions) {
    this.o = opts;
  }

  private conf(device: string): string {
    return `${this.o.procSys ?? '/proc/sys'}/net/ipv4/conf/${device}/rp_filter`;
  }

  /** The values of these sysctl files in one read (one process in a named netns); a missing file is absent. */
  private async readValues(paths: readonly string[]): Promise<Map<string, number>> {
    const text = await readSysctls(paths, { netns: this.o.netns, ipPath: this.o.ipPath });
    return new Map([...text].map(([path, v]) => [path, Number(v)]));
  }

  private async writeValue(path: string, value: number): Promise<void> {
    if (this.o.netns === undefined) {
      await writeFile(path, `${value}\n`);
      return;
    }
    const [cmd, args] = inNetns(this.o.netns, 'tee', [path], this.o.ipPath);
    const r = await runCommand(cmd, args, `${value}\n`);
    if (r.code !== 0) throw new Error(r.stderr.trim() || `tee exited with ${r.code}`);
  }

  private async load(): Promise<Map<string, number>> {
    if (this.recorded !== undefined) return this.recorded;
    const text = await readFile(this.o.statePath, 'utf8').catch(() => undefined);
    const m = new Map<string, number>();
    if (text !== undefined) {
      try {
        for (const [k, v] of Object.entries(JSON.parse(text) as Record<string, unknown>)) if (typeof v === 'number') m.set(k, v);
      } catch {
        // A torn file: start afresh (the values we wrote are all loose; nothing else is lost).
      }
    }
    this.recorded = m;
    return m;
  }

  private async save(m: Map<string, number>): Promise<void> {
    if (m.size === 0) {
      await rm(this.o.statePath, { force: true });
      return;
    }
    await mkdir(dirname(this.o.statePath), { recursive: true });
    const tmp = `${this.o.statePath}.tmp`;
    await writeFile(tmp, stateText(m), { mode: 0o600 });
    await rename(tmp, this.o.statePath);
  }

  /**
   * Make exactly `devices` loose (those that are strict), and give back what we loosened before and no longer need;
   * `ensure([])` puts back every value we changed.
   */
  async ensure(devices: readonly string[]): Promise<RpFilterResult> {
    const res: RpFilterResult = { changes: [], errors: [] };
    const recorded = await this.load();
    const before = stateText(recorded);
    const names = [...new Set([...devices, ...recorded.keys()])];
    const values = await this.readValues([this.conf('all'), ...names.map((d) => this.conf(d))]);
    const state: RpFilterState = { all: values.get(this.conf('all')) ?? 0, devices: new Map() };
    for (const d of names) state.devices.set(d, values.get(this.conf(d)));
    for (const a of rpFilterActions(state, devices, recorded)) {
      try {
        await this.writeValue(this.conf(a.device), a.value);
        res.changes.push(`${a.device}=${a.value}`);
        if (a.original !== undefined) recorded.set(a.device, a.original);
        else recorded.delete(a.device);
      } catch (e) {
        res.errors.push(`rp_filter ${a.device}: ${(e as Error).message}`);
      }
    }
    // Devices that are gone, or that someone else set since: nothing of ours is left to restore.
    for (const d of [...recorded.keys()]) {
      const v = state.devices.get(d);
      if (!devices.includes(d) && v !== LOOSE) recorded.delete(d);
      else if (v === undefined) recorded.delete(d);
    }
    // Written only when it changed: this runs at every reconcile.
    if (stateText(recorded) !== before) {
      await this.save(recorded).catch((e: Error) => res.errors.push(`rp_filter state ${this.o.statePath}: ${e.message}`));
    }
    return res;
  }
}
