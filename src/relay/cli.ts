/**
 * `spl-relay`: runs the store-and-forward relay (PROTOCOL.md §5–§6).
 * Prints one JSON line `{"msg":"listening","url":…}` on stdout once bound (always, whatever
 * --log-level), exits 2 on invalid options, 0 after a graceful SIGTERM/SIGINT shutdown.
 */
import { Command, InvalidArgumentError, Option } from 'commander';
import { DEFAULT_OPTIONS, DID_LABEL_MODES, LOG_LEVELS, parseRateLimit, RelayOptionError, type DidLabelMode, type LogLevel, type RateLimit, type RelayOptions } from './options';
import { startRelay } from './server';
import { storeKind } from './store-open';

const d = DEFAULT_OPTIONS;

const integer = (name: string) => (text: string): number => {
  if (!/^\d+$/.test(text.trim())) throw new InvalidArgumentError(`${name} must be a non-negative integer.`);
  return Number(text);
};
const positiveNumber = (name: string) => (text: string): number => {
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
}

const program = new Command('spl-relay')
  .description('Store-and-forward mailbox relay for Syncropel async federation (PROTOCOL.md §5–§6).')
  .option('--host <host>', 'address to bind', d.host)
  .option('--port <port>', 'port to bind (0 = ephemeral)', integer('--port'), d.port)
  .option('--db <path|url>', 'SQLite file (parent directory is created), :memory:, or postgres://… (many relays on one database)', d.db)
  .option('--db-pool-size <n>', 'PostgreSQL connections per relay process (plus one for LISTEN)', integer('--db-pool-size'), d.dbPoolSize)
  .option('--cap <n>', 'per-receiver queue cap (507 queue_full beyond)', integer('--cap'), d.cap)
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
  .option('--sweep-interval <seconds>', 'seconds between expiry sweeps (decimals allowed)', positiveNumber('--sweep-interval'), d.sweepInterval)
  .option('--open-mailboxes', 'trust the path alone on receive/ack (no owner auth; the guide\'s behaviour)', false)
  .addOption(new Option('--metrics-did-labels <mode>', 'per-DID metric labels and log DIDs').choices(DID_LABEL_MODES).default(d.metricsDidLabels))
  .addOption(new Option('--log-level <level>', 'request log level').choices(LOG_LEVELS).default(d.logLevel))
  .option('--trust-proxy', 'take the client address from X-Forwarded-For (rightmost entry) for rate limiting', false)
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
};

async function main(): Promise<void> {
  let relay;
  try {
    relay = await startRelay(options);
  } catch (e) {
    if (e instanceof RelayOptionError) {
      process.stderr.write(`spl-relay: ${e.message}\n`);
      process.exit(2);
    }
    process.stderr.write(`spl-relay: cannot start: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exit(1);
  }
  // Always printed (not subject to --log-level): supervisors and tests read the bound port here.
  process.stdout.write(`${JSON.stringify({ level: 30, time: Date.now(), msg: 'listening', url: relay.url, db: storeKind(options.db) })}\n`);

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
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

void main();
