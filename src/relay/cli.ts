/**
 * `spl-relay`: runs the store-and-forward relay (PROTOCOL.md §5–§6).
 * Prints one JSON line `{"msg":"listening","url":…}` on stdout once bound (always, whatever
 * --log-level), exits 2 on invalid options, 3 when it refuses a damaged database, 1 when it cannot
 * start otherwise, 0 after a graceful SIGTERM/SIGINT shutdown.
 */
import { Command, InvalidArgumentError, Option } from 'commander';
import {
  DEFAULT_OPTIONS,
  DID_LABEL_MODES,
  LOG_LEVELS,
  parseListenAddress,
  parseRateLimit,
  RelayOptionError,
  type DidLabelMode,
  type LogLevel,
  type RateLimit,
  type RelayOptions,
} from './options';
import { parseOrigin } from './origins';
import { DEFAULT_PUSH_OPTIONS, parseAllowedPushOrigin } from './push/options';
// ./server (SQLite, pino, prom-client), ./storage/store-open, ./storage/store-errors and ./static-app are imported in main(): `--help` needs none of them.

const d = DEFAULT_OPTIONS;

const integer =
  (name: string) =>
  (text: string): number => {
    if (!/^\d+$/.test(text.trim())) throw new InvalidArgumentError(`${name} must be a non-negative integer.`);
    return Number(text);
  };
const positiveNumber =
  (name: string) =>
  (text: string): number => {
    const n = Number(text);
    if (text.trim() === '' || !Number.isFinite(n) || n <= 0) throw new InvalidArgumentError(`${name} must be a positive number.`);
    return n;
  };
const rate = (name: string) => (text: string) => {
  try {
    return parseRateLimit(text, name);
  } catch (e) {
    throw new InvalidArgumentError(e instanceof Error ? e.message : String(e));
  }
};
const checked =
  <T>(parse: (text: string) => T) =>
  (text: string): T => {
    try {
      return parse(text);
    } catch (e) {
      throw new InvalidArgumentError(e instanceof Error ? e.message : String(e));
    }
  };
const originList = (text: string, previous: string[] | undefined): string[] => [...(previous ?? []), checked(parseOrigin)(text)];
const fmtRate = (r: RelayOptions['rateLimitPerClient']): string => (r ? `${r.rate}:${r.burst}` : 'off');

interface CliFlags {
  host: string;
  port: number;
  db: string;
  dbPoolSize: number;
  cap: number;
  maxTtl: number;
  defaultTtl: number;
  minTtl: number;
  maxBody: number;
  rateLimitPerClient: RateLimit | undefined;
  rateLimitPerSender: RateLimit | undefined;
  rateLimit: boolean;
  sweepInterval: number;
  openMailboxes: boolean;
  metricsDidLabels: DidLabelMode;
  logLevel: LogLevel;
  trustProxy: boolean;
  unsolicitedEnvelopes: number;
  unsolicitedBytes: number;
  metricsTopQueues: number;
  metricsListen: string | undefined;
  metricsSecretFile: string | undefined;
  headersTimeout: number;
  bodyTimeout: number;
  idleTimeout: number;
  maxConnections: number;
  maxConnectionsPerClient: number;
  origin: string[] | undefined;
  maxDbBytes: number;
  minFreeDiskBytes: number;
  app?: string;
  appPath: string;
  push: boolean;
  vapidKeyFile: string | undefined;
  vapidSubject: string | undefined;
  pushMinInterval: number;
  pushAllowEndpoint: string | undefined;
}

const program = new Command('spl-relay')
  .description('Store-and-forward mailbox relay for Syncropel async federation (PROTOCOL.md §5–§6).')
  .option('--host <host>', 'address to bind', d.host)
  .option('--port <port>', 'port to bind (0 = ephemeral)', integer('--port'), d.port)
  .option('--db <path|url>', 'SQLite file (parent directory is created), :memory:, or postgres://… (many relays on one database)', d.db)
  .option('--db-pool-size <n>', 'PostgreSQL connections per relay process (plus one for LISTEN)', integer('--db-pool-size'), d.dbPoolSize)
  .option(
    '--origin <host[:port]>',
    'a name clients reach this relay at, as in their Host header (repeatable; replaces the default: the listen address, plus localhost and 127.0.0.1 for a loopback listener; required with --host 0.0.0.0 or ::)',
    originList,
  )
  .option('--cap <n>', 'per-receiver queue cap for admitted envelopes (507 queue_full beyond)', integer('--cap'), d.cap)
  .option(
    '--unsolicited-envelopes <n>',
    'per-mailbox quota of queued envelopes without a registered deposit token (429 unsolicited_quota beyond)',
    integer('--unsolicited-envelopes'),
    d.unsolicitedEnvelopes,
  )
  .option(
    '--unsolicited-bytes <bytes>',
    'per-mailbox quota of bytes of those envelopes',
    integer('--unsolicited-bytes'),
    d.unsolicitedBytes,
  )
  .option('--max-ttl <seconds>', 'largest envelope TTL; larger ttl_seconds are clamped down', integer('--max-ttl'), d.maxTtl)
  .option('--default-ttl <seconds>', 'TTL when an envelope has no ttl_seconds', integer('--default-ttl'), d.defaultTtl)
  .option('--min-ttl <seconds>', 'smallest envelope TTL; smaller ttl_seconds are clamped up', integer('--min-ttl'), d.minTtl)
  .option('--max-body <bytes>', 'largest request body (413 payload_too_large beyond)', integer('--max-body'), d.maxBody)
  .option(
    '--rate-limit-per-client <rate[:burst]>',
    `requests/s per client address (burst defaults to 2x rate) [default: ${fmtRate(d.rateLimitPerClient)}]`,
    rate('--rate-limit-per-client'),
  )
  .option(
    '--rate-limit-per-sender <rate[:burst]>',
    `deposits/s per sender DID of plain envelopes [default: ${fmtRate(d.rateLimitPerSender)}]`,
    rate('--rate-limit-per-sender'),
  )
  .option('--no-rate-limit', 'disable both rate limits')
  .option(
    '--headers-timeout <seconds>',
    'time a client may take to send its request headers (then 408, connection closed)',
    positiveNumber('--headers-timeout'),
    d.headersTimeout,
  )
  .option('--body-timeout <seconds>', 'time a request body may take after its headers', positiveNumber('--body-timeout'), d.bodyTimeout)
  .option(
    '--idle-timeout <seconds>',
    'time a kept-alive connection may sit idle between requests',
    positiveNumber('--idle-timeout'),
    d.idleTimeout,
  )
  .option(
    '--max-connections <n>',
    'open connections in total, long-polls included (keep below ulimit -n)',
    integer('--max-connections'),
    d.maxConnections,
  )
  .option(
    '--max-connections-per-client <n>',
    'open connections per client address (0: no cap; ignored with --trust-proxy)',
    integer('--max-connections-per-client'),
    d.maxConnectionsPerClient,
  )
  .option(
    '--max-db-bytes <bytes>',
    'deposits get 507 storage_full once the database, WAL included, would pass this size (0: no limit)',
    integer('--max-db-bytes'),
    d.maxDbBytes,
  )
  .option(
    '--min-free-disk-bytes <bytes>',
    'deposits get 507 storage_full once free disk beside the database would fall below this (0: no limit)',
    integer('--min-free-disk-bytes'),
    d.minFreeDiskBytes,
  )
  .option(
    '--sweep-interval <seconds>',
    'seconds between expiry sweeps (decimals allowed)',
    positiveNumber('--sweep-interval'),
    d.sweepInterval,
  )
  .option('--open-mailboxes', "trust the path alone on receive/ack (no owner auth; the guide's behaviour)", false)
  .addOption(
    new Option(
      '--metrics-did-labels <mode>',
      "per-DID metric labels and log DIDs: plain, hash (HMAC-SHA256 under the relay's secret) or off",
    )
      .choices(DID_LABEL_MODES)
      .default(d.metricsDidLabels),
  )
  .option(
    '--metrics-top-queues <n>',
    'per-DID queue series only for the N largest queues',
    integer('--metrics-top-queues'),
    d.metricsTopQueues,
  )
  .option(
    '--metrics-listen <host:port>',
    'serve /metrics on this separate (private) listener instead of the public one',
    checked((t) => (parseListenAddress(t, '--metrics-listen'), t)),
  )
  .option('--metrics-secret-file <path>', 'key of hashed DID labels (default: <db>.metrics-secret, created with mode 0600 on first start)')
  .addOption(new Option('--log-level <level>', 'request log level').choices(LOG_LEVELS).default(d.logLevel))
  .option('--trust-proxy', 'take the client address from X-Forwarded-For (rightmost entry) for rate limiting', false)
  .option('--no-push', 'turn push wake off (PROTOCOL.md §5.2): no VAPID key, /v1/push/vapid and the push routes answer 404')
  .option('--vapid-key-file <path>', 'the VAPID key pair (default: <db>.vapid.json, created with mode 0600 on first start)')
  .option('--vapid-subject <url>', 'mailto: or https: contact the push services see (default: https:// + the first origin)')
  .option(
    '--push-min-interval <seconds>',
    'least time between two pushes to one subscription (decimals allowed)',
    positiveNumber('--push-min-interval'),
    DEFAULT_PUSH_OPTIONS.minIntervalSeconds,
  )
  .option(
    '--push-allow-endpoint <origin>',
    'one test push service (scheme://host:port, exact) exempt from the https and public-address rules',
    checked(parseAllowedPushOrigin),
  )
  .option('--app <dir>', 'also serve the built app (npm run build → dist/app) from this origin')
  .option('--app-path <path>', 'URL path the app is served under (with --app)', '/')
  .showHelpAfterError('(spl-relay --help lists every option)')
  .configureOutput({ outputError: (str, write) => write(str) })
  .exitOverride((err) => process.exit(err.exitCode === 0 ? 0 : 2));

program.parse();
const flags = program.opts<CliFlags>();

const options: RelayOptions = {
  host: flags.host,
  port: flags.port,
  db: flags.db,
  dbPoolSize: flags.dbPoolSize,
  cap: flags.cap,
  unsolicitedEnvelopes: flags.unsolicitedEnvelopes,
  unsolicitedBytes: flags.unsolicitedBytes,
  metricsTopQueues: flags.metricsTopQueues,
  maxTtl: flags.maxTtl,
  defaultTtl: flags.defaultTtl,
  minTtl: flags.minTtl,
  maxBody: flags.maxBody,
  rateLimitPerClient: flags.rateLimit ? (flags.rateLimitPerClient ?? d.rateLimitPerClient) : false,
  rateLimitPerSender: flags.rateLimit ? (flags.rateLimitPerSender ?? d.rateLimitPerSender) : false,
  sweepInterval: flags.sweepInterval,
  openMailboxes: flags.openMailboxes,
  metricsDidLabels: flags.metricsDidLabels,
  logLevel: flags.logLevel,
  trustProxy: flags.trustProxy,
  headersTimeout: flags.headersTimeout,
  bodyTimeout: flags.bodyTimeout,
  idleTimeout: flags.idleTimeout,
  maxConnections: flags.maxConnections,
  maxConnectionsPerClient: flags.maxConnectionsPerClient,
  origins: flags.origin ?? [],
  maxDbBytes: flags.maxDbBytes,
  minFreeDiskBytes: flags.minFreeDiskBytes,
  metricsListen: flags.metricsListen,
  metricsSecretFile: flags.metricsSecretFile,
  push: {
    enabled: flags.push,
    vapidKeyFile: flags.vapidKeyFile,
    vapidSubject: flags.vapidSubject,
    minIntervalSeconds: flags.pushMinInterval,
    allowEndpoint: flags.pushAllowEndpoint,
  },
};

async function main(): Promise<void> {
  let relay;
  const { storeKind } = await import('./storage/store-open');
  try {
    const { startRelay } = await import('./server');
    const { loadStaticApp } = await import('./static-app');
    const app = flags.app !== undefined ? loadStaticApp(flags.app, flags.appPath) : undefined;
    relay = await startRelay({ ...options, ...(app ? { app } : {}) });
  } catch (e) {
    if (e instanceof RelayOptionError || (e instanceof Error && e.name === 'StaticAppError')) {
      process.stderr.write(`spl-relay: ${e.message}\n`);
      process.exit(2);
    }
    const { DatabaseRefusedError } = await import('./storage/store-errors');
    if (e instanceof DatabaseRefusedError) {
      // Exit 3: the database needs an operator (restore from backup, or move a damaged WAL aside).
      process.stderr.write(`spl-relay: refusing to serve ${options.db}: ${e.message}\n`);
      process.exit(3);
    }
    process.stderr.write(`spl-relay: cannot start: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exit(1);
  }
  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    relay.close().then(
      () => {
        process.stdout.write(`${JSON.stringify({ level: 30, time: Date.now(), msg: 'stopped', signal })}\n`);
        process.exit(0);
      },
      (err: unknown) => {
        process.stderr.write(`spl-relay: shutdown failed: ${err instanceof Error ? err.message : String(err)}\n`);
        process.exit(1);
      },
    );
  };
  // The background integrity check failed (storage/sqlite-store.ts): the same exit as a refusal at start.
  void relay.refused.then((e) => {
    if (stopping) return;
    stopping = true;
    process.stderr.write(`spl-relay: refusing to serve ${options.db}: ${e.message}\n`);
    void relay.close().finally(() => process.exit(3));
  });
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  // Only now: a supervisor may signal as soon as it reads this line, and a signal arriving before
  // the handlers exist would kill the process without a graceful shutdown (seen in tests).
  // Always printed (not subject to --log-level): supervisors and tests read the bound port here.
  process.stdout.write(
    `${JSON.stringify({ level: 30, time: Date.now(), msg: 'listening', url: relay.url, metrics_url: relay.metricsUrl, db: storeKind(options.db) })}\n`,
  );
}

void main();
