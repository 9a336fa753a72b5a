// What the agent says to charon over VICI and what charon answers: errors, typed connection and SA shapes, their
// conversion to and from VICI messages, and the typed commands that ViciClient and ViciSession share.
import type { ViciMessage, ViciValue } from './codec.ts';

export const DEFAULT_TIMEOUT_MS = 10_000;
// charon answers initiate/terminate after its own timeout; give the reply time to arrive.
const CHARON_TIMEOUT_MARGIN_MS = 2_000;

/** charon answered `success = no`. */
export class ViciError extends Error {
  override name = 'ViciError';
  readonly command: string;
  readonly errmsg: string;
  constructor(command: string, errmsg: string) {
    super(`VICI ${command} failed: ${errmsg}`);
    this.command = command;
    this.errmsg = errmsg;
  }
}

/** The connection is gone or could not be made; `code` is the socket error code when known. */
export class ViciConnectionError extends Error {
  override name = 'ViciConnectionError';
  readonly code: string | undefined;
  constructor(message: string, code?: string) {
    super(message);
    this.code = code;
  }
}

/** No answer in time; the connection was destroyed so a late answer cannot be mismatched. */
export class ViciTimeoutError extends Error {
  override name = 'ViciTimeoutError';
  readonly command: string;
  constructor(command: string, timeoutMs: number) {
    super(`VICI ${command} got no answer within ${timeoutMs} ms; connection closed`);
    this.command = command;
  }
}

export interface RequestOptions {
  timeoutMs?: number;
}

export type EventHandler = (name: string, msg: ViciMessage) => void;

export interface Subscription {
  /** Resolves once the events are registered on a live connection. */
  ready(): Promise<void>;
  close(): Promise<void>;
}

// ---------------------------------------------------------------- typed shapes

export interface VersionInfo {
  daemon: string;
  version: string;
  sysname: string;
  release: string;
  machine: string;
}

export type ChildAction = 'none' | 'clear' | 'trap' | 'start' | 'restart';

export interface AuthConfig {
  auth: 'psk';
  id?: string;
}

export interface ChildConfig {
  local_ts?: string[];
  remote_ts?: string[];
  esp_proposals?: string[];
  start_action?: ChildAction;
  dpd_action?: ChildAction;
  close_action?: ChildAction;
  mode?: 'tunnel' | 'transport' | 'pass' | 'drop';
}

/** The subset of swanctl.conf connection settings the agent uses; names as in swanctl.conf. */
export interface ConnConfig {
  version?: 0 | 1 | 2;
  local_addrs?: string[];
  remote_addrs?: string[];
  local_port?: number;
  remote_port?: number;
  proposals?: string[];
  encap?: boolean;
  /** Seconds, or a swanctl duration such as "30s". */
  dpd_delay?: number | string;
  /** Uniqueness policy for IKE_SAs with the same identities (swanctl's `unique`). */
  unique?: 'no' | 'never' | 'keep' | 'replace';
  /** Childless IKE_SAs (RFC 6023, swanctl's `childless`): `allow` accepts them, and creates one on an initiate without a child. */
  childless?: 'allow' | 'force' | 'never';
  local: AuthConfig;
  remote: AuthConfig;
  children: Record<string, ChildConfig>;
}

export interface SharedKey {
  id: string;
  type: 'IKE';
  /** Never echoed in errors or logs. */
  data: string | Buffer;
  owners: string[];
}

export interface ChildSaInfo {
  name: string;
  uniqueId: string;
  reqid?: string;
  state: string;
  mode?: string;
  protocol?: string;
  encap: boolean;
  spiIn?: string;
  spiOut?: string;
  bytesIn: number;
  bytesOut: number;
  packetsIn: number;
  packetsOut: number;
  /** Seconds since installation. */
  installTime?: number;
  rekeyTime?: number;
  lifeTime?: number;
  localTs: string[];
  remoteTs: string[];
}

export interface IkeSaInfo {
  name: string;
  uniqueId: string;
  version?: string;
  state: string;
  localHost?: string;
  localPort?: number;
  localId?: string;
  remoteHost?: string;
  remotePort?: number;
  remoteId?: string;
  initiator: boolean;
  natAny: boolean;
  /** Seconds since establishment. */
  established?: number;
  children: ChildSaInfo[];
}

export interface SaFilter {
  ike?: string;
  ikeId?: string | number;
  noblock?: boolean;
}

export interface InitiateOptions {
  /** Without it, the IKE_SA of `ike` alone (childless with `childless: allow`). */
  child?: string;
  ike?: string;
  timeoutMs?: number;
}

export interface TerminateOptions {
  ike?: string;
  child?: string;
  ikeId?: string | number;
  force?: boolean;
  /** How long charon waits for the peer's answer to its DELETE; -1: not at all (with force: destroyed at once). */
  timeoutMs?: number;
}

// ---------------------------------------------------------------- message conversion

function yesNo(value: boolean): string {
  return value ? 'yes' : 'no';
}

function withoutUndefined(msg: Record<string, ViciValue | undefined>): ViciMessage {
  const out: ViciMessage = {};
  for (const [key, value] of Object.entries(msg)) if (value !== undefined) out[key] = value;
  return out;
}

/** ConnConfig to the load-conn section; list-typed keys become VICI lists (charon refuses plain values). */
export function connToMessage(conn: ConnConfig): ViciMessage {
  const children: ViciMessage = {};
  for (const [name, child] of Object.entries(conn.children)) {
    children[name] = withoutUndefined({
      local_ts: child.local_ts,
      remote_ts: child.remote_ts,
      esp_proposals: child.esp_proposals,
      start_action: child.start_action,
      dpd_action: child.dpd_action,
      close_action: child.close_action,
      mode: child.mode,
    });
  }
  const auth = (a: AuthConfig): ViciMessage => withoutUndefined({ auth: a.auth, id: a.id });
  return withoutUndefined({
    version: conn.version === undefined ? undefined : String(conn.version),
    local_addrs: conn.local_addrs,
    remote_addrs: conn.remote_addrs,
    local_port: conn.local_port === undefined ? undefined : String(conn.local_port),
    remote_port: conn.remote_port === undefined ? undefined : String(conn.remote_port),
    proposals: conn.proposals,
    encap: conn.encap === undefined ? undefined : yesNo(conn.encap),
    dpd_delay: conn.dpd_delay === undefined ? undefined : String(conn.dpd_delay),
    unique: conn.unique,
    childless: conn.childless,
    local: auth(conn.local),
    remote: auth(conn.remote),
    children,
  });
}

function str(section: ViciMessage, key: string): string | undefined {
  const v = section[key];
  return typeof v === 'string' ? v : undefined;
}

function num(section: ViciMessage, key: string): number | undefined {
  const v = str(section, key);
  if (v === undefined || v === '') return undefined;
  const n = Number(v);
  return Number.isFinite(n) ? n : undefined;
}

function list(section: ViciMessage, key: string): string[] {
  const v = section[key];
  return Array.isArray(v) ? v : [];
}

function isSection(v: ViciValue | undefined): v is ViciMessage {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !Buffer.isBuffer(v);
}

export function parseChildSa(key: string, sa: ViciMessage): ChildSaInfo {
  return {
    // list-sa keys children as "<name>-<uniqueid>" and carries the config name inside.
    name: str(sa, 'name') ?? key,
    uniqueId: str(sa, 'uniqueid') ?? '',
    reqid: str(sa, 'reqid'),
    state: str(sa, 'state') ?? '',
    mode: str(sa, 'mode'),
    protocol: str(sa, 'protocol'),
    encap: str(sa, 'encap') === 'yes',
    spiIn: str(sa, 'spi-in'),
    spiOut: str(sa, 'spi-out'),
    bytesIn: num(sa, 'bytes-in') ?? 0,
    bytesOut: num(sa, 'bytes-out') ?? 0,
    packetsIn: num(sa, 'packets-in') ?? 0,
    packetsOut: num(sa, 'packets-out') ?? 0,
    installTime: num(sa, 'install-time'),
    rekeyTime: num(sa, 'rekey-time'),
    lifeTime: num(sa, 'life-time'),
    localTs: list(sa, 'local-ts'),
    remoteTs: list(sa, 'remote-ts'),
  };
}

export function parseIkeSa(name: string, sa: ViciMessage): IkeSaInfo {
  const childSection = sa['child-sas'];
  const children = isSection(childSection)
    ? Object.entries(childSection).flatMap(([key, child]) => (isSection(child) ? [parseChildSa(key, child)] : []))
    : [];
  return {
    name,
    uniqueId: str(sa, 'uniqueid') ?? '',
    version: str(sa, 'version'),
    state: str(sa, 'state') ?? '',
    localHost: str(sa, 'local-host'),
    localPort: num(sa, 'local-port'),
    localId: str(sa, 'local-id'),
    remoteHost: str(sa, 'remote-host'),
    remotePort: num(sa, 'remote-port'),
    remoteId: str(sa, 'remote-id'),
    initiator: str(sa, 'initiator') === 'yes',
    natAny: str(sa, 'nat-any') === 'yes',
    established: num(sa, 'established'),
    children,
  };
}

/** The IKE_SAs in a list-sa, ike-updown or child-updown message (every section at the root). */
export function parseSaMessage(msg: ViciMessage): IkeSaInfo[] {
  return Object.entries(msg).flatMap(([name, sa]) => (isSection(sa) ? [parseIkeSa(name, sa)] : []));
}

/** ike-updown / child-updown: a down event simply lacks `up`. */
export function parseUpdownEvent(msg: ViciMessage): { up: boolean; sas: IkeSaInfo[] } {
  return { up: msg.up === 'yes', sas: parseSaMessage(msg) };
}

// ---------------------------------------------------------------- typed commands

/** Typed helpers shared by ViciClient and ViciSession. */
export abstract class ViciCommands {
  abstract request(cmd: string, msg?: ViciMessage, opts?: RequestOptions): Promise<ViciMessage>;
  abstract streamed(cmd: string, eventName: string, msg?: ViciMessage, opts?: RequestOptions): Promise<ViciMessage[]>;

  async version(): Promise<VersionInfo> {
    const res = await this.request('version');
    return {
      daemon: str(res, 'daemon') ?? '',
      version: str(res, 'version') ?? '',
      sysname: str(res, 'sysname') ?? '',
      release: str(res, 'release') ?? '',
      machine: str(res, 'machine') ?? '',
    };
  }

  stats(): Promise<ViciMessage> {
    return this.request('stats');
  }

  async loadConn(name: string, conn: ConnConfig): Promise<void> {
    await this.request('load-conn', { [name]: connToMessage(conn) });
  }

  async unloadConn(name: string): Promise<void> {
    await this.request('unload-conn', { name });
  }

  async getConns(): Promise<string[]> {
    return list(await this.request('get-conns'), 'conns');
  }

  async loadShared(key: SharedKey): Promise<void> {
    await this.request('load-shared', { id: key.id, type: key.type, data: key.data, owners: key.owners });
  }

  async unloadShared(id: string): Promise<void> {
    await this.request('unload-shared', { id });
  }

  /** IDs of shared keys loaded with an id. */
  async getShared(): Promise<string[]> {
    return list(await this.request('get-shared'), 'keys');
  }

  async initiate(opts: InitiateOptions): Promise<void> {
    const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    await this.request(
      'initiate',
      withoutUndefined({ child: opts.child, ike: opts.ike, timeout: String(timeoutMs) }),
      { timeoutMs: timeoutMs + CHARON_TIMEOUT_MARGIN_MS },
    );
  }

  async terminate(opts: TerminateOptions): Promise<void> {
    const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    await this.request(
      'terminate',
      withoutUndefined({
        ike: opts.ike,
        child: opts.child,
        'ike-id': opts.ikeId === undefined ? undefined : String(opts.ikeId),
        force: opts.force === undefined ? undefined : yesNo(opts.force),
        timeout: String(timeoutMs),
      }),
      { timeoutMs: Math.max(0, timeoutMs) + CHARON_TIMEOUT_MARGIN_MS },
    );
  }

  async listSas(filter: SaFilter = {}): Promise<IkeSaInfo[]> {
    const events = await this.streamed(
      'list-sas',
      'list-sa',
      withoutUndefined({
        ike: filter.ike,
        'ike-id': filter.ikeId === undefined ? undefined : String(filter.ikeId),
        noblock: filter.noblock ? 'yes' : undefined,
      }),
    );
    return events.flatMap(parseSaMessage);
  }
}
