/** Relay options: defaults from PROTOCOL.md §5 (limits are relay options) and their validation. */
import { DEFAULT_PUSH_OPTIONS, validatePushOptions, type PushOptions } from './push/options';

export type DidLabelMode = 'plain' | 'hash' | 'off';
export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';

export interface RateLimit {
  /** Sustained requests per second. */
  readonly rate: number;
  /** Bucket size: requests allowed at once after an idle period. */
  readonly burst: number;
}

export interface RelayOptions {
  readonly host: string;
  /** 0 picks an ephemeral port. */
  readonly port: number;
  /** SQLite file path, `:memory:`, or a `postgres://` / `postgresql://` URL. */
  readonly db: string;
  /** PostgreSQL only: connections in this process's pool (the LISTEN connection is one more). */
  readonly dbPoolSize: number;
  /** Per-receiver queue cap for admitted envelopes (507 queue_full beyond it). */
  readonly cap: number;
  /** Per-mailbox quota of queued unsolicited envelopes (PROTOCOL.md §5.1; 429 unsolicited_quota beyond). */
  readonly unsolicitedEnvelopes: number;
  readonly unsolicitedBytes: number;
  /** TTL bounds and default, seconds. A requested ttl_seconds is clamped into [minTtl, maxTtl]. */
  readonly minTtl: number;
  readonly maxTtl: number;
  readonly defaultTtl: number;
  /** Largest accepted request body, bytes. */
  readonly maxBody: number;
  /** Per socket (or X-Forwarded-For with trustProxy) address; false = unlimited. */
  readonly rateLimitPerClient: RateLimit | false;
  /** Per `from_did` of plain envelopes; false = unlimited. */
  readonly rateLimitPerSender: RateLimit | false;
  /** Seconds between expiry sweeps. */
  readonly sweepInterval: number;
  /** The guide's behaviour: receive/ack trust the path alone (no §6 owner auth). */
  readonly openMailboxes: boolean;
  readonly metricsDidLabels: DidLabelMode;
  /** Only the N largest queues get per-DID series (PROTOCOL.md §5 metrics). */
  readonly metricsTopQueues: number;
  readonly logLevel: LogLevel;
  /** Take the client address from X-Forwarded-For (rightmost entry, the one our proxy saw). */
  readonly trustProxy: boolean;
  /** Seconds a client may take to send its request headers; then 408 and the socket is destroyed (§5 "Connections"). */
  readonly headersTimeout: number;
  /** Seconds a request body may take after its headers. */
  readonly bodyTimeout: number;
  /** Seconds a kept-alive connection may sit idle between requests. */
  readonly idleTimeout: number;
  /** Open connections in total (long-polls included); beyond, new ones are closed at once. */
  readonly maxConnections: number;
  /** Open connections per client address; 0 = no cap (use with --trust-proxy: every connection is the proxy's). */
  readonly maxConnectionsPerClient: number;
  /** `host[:port]` values a signed request's Host may name (§5 "Origins"); empty = the default list. */
  readonly origins: readonly string[];
  /** Deposits get 507 storage_full once the database (WAL included) would pass this many bytes; 0 = no limit. */
  readonly maxDbBytes: number;
  /** ... or once free disk beside the database would fall below this; 0 = no limit. */
  readonly minFreeDiskBytes: number;
  /** `host:port` of a separate listener for /metrics (the public one then has none); undefined = public. */
  readonly metricsListen: string | undefined;
  /** File with the key of hashed DID labels; default `<db>.metrics-secret`, created on first start. */
  readonly metricsSecretFile: string | undefined;
  /** Push wake (PROTOCOL.md §5.2, push/options.ts). */
  readonly push: PushOptions;
}

export const DEFAULT_OPTIONS: RelayOptions = {
  host: '127.0.0.1',
  port: 8787,
  db: './data/relay.sqlite',
  dbPoolSize: 10,
  cap: 10_000,
  unsolicitedEnvelopes: 100,
  unsolicitedBytes: 1_048_576,
  minTtl: 60,
  maxTtl: 2_592_000,
  defaultTtl: 2_592_000,
  maxBody: 1_048_576,
  // Generous: one busy peer depositing hundreds per second is never throttled.
  rateLimitPerClient: { rate: 1000, burst: 2000 },
  rateLimitPerSender: { rate: 1000, burst: 2000 },
  sweepInterval: 60,
  openMailboxes: false,
  metricsDidLabels: 'plain',
  metricsTopQueues: 100,
  logLevel: 'info',
  trustProxy: false,
  headersTimeout: 10,
  bodyTimeout: 30,
  idleTimeout: 10,
  // Node raises its soft fd limit to the hard one at start (commonly 524288 under systemd; check
  // `ulimit -Hn`); keep this well below it, the database, its WAL and logs need fds too.
  maxConnections: 10_000,
  // An office behind one NAT address, or a headless peer depositing in parallel; a browser holds
  // ~6 connections per origin.
  maxConnectionsPerClient: 256,
  origins: [],
  maxDbBytes: 0,
  // Room left for receives, acks and the sweep to commit once deposits stop.
  minFreeDiskBytes: 64 * 1_048_576,
  metricsListen: undefined,
  metricsSecretFile: undefined,
  push: DEFAULT_PUSH_OPTIONS,
};

export const LOG_LEVELS: readonly LogLevel[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];
export const DID_LABEL_MODES: readonly DidLabelMode[] = ['plain', 'hash', 'off'];

/** Thrown for an invalid option; the CLI prints the message and exits 2. */
export class RelayOptionError extends Error {
  override readonly name = 'RelayOptionError';
}

/** Checks cross-field and range rules; returns the options unchanged or throws RelayOptionError. */
export function validateOptions(o: RelayOptions): RelayOptions {
  const need = (cond: boolean, message: string): void => {
    if (!cond) throw new RelayOptionError(message);
  };
  need(o.host.length > 0, '--host must not be empty');
  need(Number.isInteger(o.port) && o.port >= 0 && o.port <= 65535, '--port must be an integer in 0..65535');
  need(o.db.length > 0, '--db must be a file path, :memory: or a postgres:// URL');
  need(Number.isSafeInteger(o.dbPoolSize) && o.dbPoolSize >= 1 && o.dbPoolSize <= 1000, '--db-pool-size must be an integer in 1..1000');
  need(Number.isSafeInteger(o.cap) && o.cap >= 1, '--cap must be a positive integer');
  need(
    Number.isSafeInteger(o.unsolicitedEnvelopes) && o.unsolicitedEnvelopes >= 0,
    '--unsolicited-envelopes must be a non-negative integer',
  );
  need(Number.isSafeInteger(o.unsolicitedBytes) && o.unsolicitedBytes >= 0, '--unsolicited-bytes must be a non-negative integer');
  need(
    Number.isSafeInteger(o.metricsTopQueues) && o.metricsTopQueues >= 0 && o.metricsTopQueues <= 10_000,
    '--metrics-top-queues must be an integer in 0..10000',
  );
  for (const [name, v] of [
    ['--min-ttl', o.minTtl],
    ['--max-ttl', o.maxTtl],
    ['--default-ttl', o.defaultTtl],
  ] as const) {
    need(Number.isSafeInteger(v) && v >= 1, `${name} must be a positive integer number of seconds`);
  }
  need(o.minTtl <= o.maxTtl, '--min-ttl must not exceed --max-ttl');
  need(o.defaultTtl >= o.minTtl && o.defaultTtl <= o.maxTtl, '--default-ttl must lie between --min-ttl and --max-ttl');
  need(Number.isSafeInteger(o.maxBody) && o.maxBody >= 1024, '--max-body must be an integer of at least 1024 bytes');
  for (const [name, r] of [
    ['--rate-limit-per-client', o.rateLimitPerClient],
    ['--rate-limit-per-sender', o.rateLimitPerSender],
  ] as const) {
    if (r)
      need(
        r.rate > 0 && Number.isFinite(r.rate) && r.burst >= 1 && Number.isFinite(r.burst),
        `${name} needs a positive rate and a burst of at least 1`,
      );
  }
  need(
    Number.isFinite(o.sweepInterval) && o.sweepInterval > 0 && o.sweepInterval <= 86_400,
    '--sweep-interval must be in (0, 86400] seconds',
  );
  need(DID_LABEL_MODES.includes(o.metricsDidLabels), `--metrics-did-labels must be one of ${DID_LABEL_MODES.join(', ')}`);
  need(LOG_LEVELS.includes(o.logLevel), `--log-level must be one of ${LOG_LEVELS.join(', ')}`);
  for (const [name, v] of [
    ['--headers-timeout', o.headersTimeout],
    ['--body-timeout', o.bodyTimeout],
    ['--idle-timeout', o.idleTimeout],
  ] as const) {
    need(Number.isFinite(v) && v > 0 && v <= 3600, `${name} must be a number of seconds in (0, 3600]`);
  }
  need(Number.isSafeInteger(o.maxConnections) && o.maxConnections >= 1, '--max-connections must be a positive integer');
  need(
    Number.isSafeInteger(o.maxConnectionsPerClient) && o.maxConnectionsPerClient >= 0,
    '--max-connections-per-client must be a non-negative integer (0: no cap)',
  );
  need(Number.isSafeInteger(o.maxDbBytes) && o.maxDbBytes >= 0, '--max-db-bytes must be a non-negative integer (0: no limit)');
  need(
    Number.isSafeInteger(o.minFreeDiskBytes) && o.minFreeDiskBytes >= 0,
    '--min-free-disk-bytes must be a non-negative integer (0: no limit)',
  );
  if (o.metricsListen !== undefined) parseListenAddress(o.metricsListen, '--metrics-listen');
  validatePushOptions(o.push);
  return o;
}

/** Parses `RATE` or `RATE:BURST` (requests per second; burst defaults to twice the rate). */
export function parseRateLimit(text: string, name: string): RateLimit {
  const m = /^(\d+(?:\.\d+)?)(?::(\d+))?$/.exec(text.trim());
  if (!m) throw new RelayOptionError(`${name} must be RATE or RATE:BURST (requests per second), got "${text}"`);
  const rate = Number(m[1]);
  const burst = m[2] !== undefined ? Number(m[2]) : Math.max(1, Math.ceil(rate * 2));
  if (!(rate > 0) || !(burst >= 1)) throw new RelayOptionError(`${name} needs a positive rate and a burst of at least 1`);
  return { rate, burst };
}

/** TTL rule (PROTOCOL.md §5 retention): missing → default; otherwise clamped into [min, max]. */
export function effectiveTtlSeconds(requested: number | undefined, o: Pick<RelayOptions, 'minTtl' | 'maxTtl' | 'defaultTtl'>): number {
  if (requested === undefined) return o.defaultTtl;
  return Math.min(o.maxTtl, Math.max(o.minTtl, requested));
}

/** Parses `host:port` (IPv6 as `[::1]:port`) for a listener. */
export function parseListenAddress(text: string, name: string): { host: string; port: number } {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(text.trim());
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535) throw new RelayOptionError(`${name} must be host:port (e.g. 127.0.0.1:9464 or [::1]:9464), got "${text}"`);
  return { host: m[1] ?? m[2]!, port };
}

/** Options given in part (undefined = not given) over the defaults, validated. */
export function relayOptions(given: Partial<RelayOptions>): RelayOptions {
  return validateOptions({
    ...DEFAULT_OPTIONS,
    ...dropUndefined(given),
    push: { ...DEFAULT_OPTIONS.push, ...dropUndefined(given.push ?? {}) },
  });
}

function dropUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
