/** Relay options: defaults from PROTOCOL.md §5 (limits are relay options) and their validation. */

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
  /** Per-receiver queue cap (507 queue_full beyond it). */
  readonly cap: number;
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
  readonly logLevel: LogLevel;
  /** Take the client address from X-Forwarded-For (rightmost entry, the one our proxy saw). */
  readonly trustProxy: boolean;
}

export const DEFAULT_OPTIONS: RelayOptions = {
  host: '127.0.0.1',
  port: 8787,
  db: './data/relay.sqlite',
  dbPoolSize: 10,
  cap: 10_000,
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
  logLevel: 'info',
  trustProxy: false,
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
  for (const [name, v] of [['--min-ttl', o.minTtl], ['--max-ttl', o.maxTtl], ['--default-ttl', o.defaultTtl]] as const) {
    need(Number.isSafeInteger(v) && v >= 1, `${name} must be a positive integer number of seconds`);
  }
  need(o.minTtl <= o.maxTtl, '--min-ttl must not exceed --max-ttl');
  need(o.defaultTtl >= o.minTtl && o.defaultTtl <= o.maxTtl, '--default-ttl must lie between --min-ttl and --max-ttl');
  need(Number.isSafeInteger(o.maxBody) && o.maxBody >= 1024, '--max-body must be an integer of at least 1024 bytes');
  for (const [name, r] of [['--rate-limit-per-client', o.rateLimitPerClient], ['--rate-limit-per-sender', o.rateLimitPerSender]] as const) {
    if (r) need(r.rate > 0 && Number.isFinite(r.rate) && r.burst >= 1 && Number.isFinite(r.burst), `${name} needs a positive rate and a burst of at least 1`);
  }
  need(Number.isFinite(o.sweepInterval) && o.sweepInterval > 0 && o.sweepInterval <= 86_400, '--sweep-interval must be in (0, 86400] seconds');
  need(DID_LABEL_MODES.includes(o.metricsDidLabels), `--metrics-did-labels must be one of ${DID_LABEL_MODES.join(', ')}`);
  need(LOG_LEVELS.includes(o.logLevel), `--log-level must be one of ${LOG_LEVELS.join(', ')}`);
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
