/**
 * PostgreSQL MailboxStore (`spl-relay --db postgres://…`): any number of relay processes on one
 * database behave as one relay (PROTOCOL.md §5–§6).
 *
 * - Every write is one statement in autocommit, so its promise resolves only after COMMIT (and,
 *   with the default synchronous_commit=on, after the WAL flush): the 202 follows durability.
 *   Deposit and ack are server-side functions (pg-migrations.ts): one round trip, one transaction,
 *   the receiver's mailbox row locked first — the per-receiver cap holds across processes.
 *   PostgreSQL's own group commit batches concurrent commits, so there is no batching here.
 * - Long-poll wakes: after a deposit commits, its receiver DID is NOTIFYed to every process
 *   (pg-notifier.ts listens). Notifications go in batches, in their own transaction with
 *   synchronous_commit off: NOTIFY inside the deposit transaction holds a cluster-wide lock through
 *   the commit's WAL flush and serialised all deposits (bench:relay --store postgres, one process: 285 → 1,850–2,400 deposits/s). A
 *   notification lost to a crash costs a long-poll its wake, never an envelope: the listener's
 *   reconnection wakes every waiter to look again.
 * - The replay cache (§6) is a primary key: of two processes claiming one signature, one insert
 *   wins.
 * - The expiry sweep runs under pg_try_advisory_xact_lock: one process at a time, the others skip.
 * - Deposit tokens (§5.1) live in the mailbox row the deposit locks; the unsolicited quota is
 *   checked in the same transaction as the cap.
 * - Connection loss surfaces as StoreUnavailableError (the relay answers 503); the pool replaces
 *   broken connections by itself, so the relay recovers when the server is back.
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { migrate, SWEEP_LOCK_KEY } from './pg-migrations';
import { DepositListener, DepositNotifier } from './pg-notifier';
import { PgStatsCache } from './pg-stats';
import { StoreUnavailableError } from './store-errors';
import type { DepositLimits, DepositOutcome, MailboxStore, ReceiveResult, StoreHealth, StoreStats, StoredEnvelope } from './store';

export interface PgStoreOptions {
  /** Pool size of this process (connections used by requests; the listener is one more). */
  readonly poolSize?: number;
  /**
   * /metrics figures older than this are refreshed in the background while the scrape gets the
   * cached ones (0: every stats() call reads the database). The top-N query scans the mailboxes
   * table (one row per receiver), which should not run once per scrape per process.
   */
  readonly statsMaxAgeMs?: number;
  /**
   * `--max-db-bytes`: deposits get `storage_full` once pg_database_size() would pass it (0: no
   * limit). The size is read every STORAGE_CHECK_MS in the background, not per deposit. The WAL
   * and free disk are the database server's to watch: they are not visible to a client.
   */
  readonly maxDbBytes?: number;
  /** Logged, never thrown: errors of idle connections and of the listener. */
  readonly onBackgroundError?: (error: Error) => void;
}

const HEX_ID = /^[0-9a-f]{64}$/;
const CONNECT_TIMEOUT_MS = 5_000;
/** A commit this recent answers /health without a probe. */
const HEALTH_FRESH_MS = 2_000;
const STORAGE_CHECK_MS = 2_000;
/** Deadlock (40P01) and serialization failure (40001): the transaction rolled back; run it again. */
const RETRYABLE = new Set(['40P01', '40001']);
const RETRIES = 3;

interface EnvelopeRow {
  id: string;
  from_did: string | null;
  body: string;
  size: number;
  deposited_at: string;
  expires_at: string;
}

/** True for errors that mean "no usable connection" rather than a bug in a statement. */
function isConnectionError(e: unknown): boolean {
  if (!(e instanceof Error)) return false;
  const code = (e as { code?: unknown }).code;
  if (typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code)) {
    // SQLSTATE classes: 08 connection exception, 57 operator intervention (shutdown, crash
    // recovery), 53 insufficient resources (too many connections).
    return /^(08|57|53)/.test(code);
  }
  // Node socket errors (ECONNREFUSED, ECONNRESET, ETIMEDOUT …) and pg's own connection failures.
  if (typeof code === 'string' && /^E[A-Z]+$/.test(code)) return true;
  return /connection terminated|timeout exceeded when trying to connect|not queryable|connection error/i.test(e.message);
}

export class PgMailboxStore implements MailboxStore {
  private closed = false;
  private listener: DepositListener | undefined;
  private readonly statsCache: PgStatsCache;
  private lastCommitAt = 0;
  private probe: { at: number; result: Promise<StoreHealth> } | undefined;
  private dbBytes = 0;
  private storageTimer: NodeJS.Timeout | undefined;
  private readonly notifier: DepositNotifier;

  private constructor(
    private readonly pool: pg.Pool,
    private readonly connectionString: string,
    private readonly options: PgStoreOptions,
  ) {
    this.statsCache = new PgStatsCache(pool, options.statsMaxAgeMs ?? 10_000);
    this.notifier = new DepositNotifier(pool, (e) => options.onBackgroundError?.(e));
  }

  /** Connects, runs pending migrations (one process at a time) and returns the store. */
  static async open(connectionString: string, options: PgStoreOptions = {}): Promise<PgMailboxStore> {
    const pool = new pg.Pool({
      connectionString,
      max: options.poolSize ?? 10,
      connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
      idleTimeoutMillis: 30_000,
      application_name: 'spl-relay',
      keepAlive: true,
    });
    // An idle client's error (server restart) is emitted here; unhandled it would crash the process.
    pool.on('error', (e) => options.onBackgroundError?.(e));
    try {
      const client = await pool.connect();
      const onClientError = (e: Error) => options.onBackgroundError?.(e); // see sendNotifications
      client.on('error', onClientError);
      try {
        await migrate(client);
      } finally {
        client.off('error', onClientError);
        client.release();
      }
    } catch (e) {
      await pool.end().catch(() => undefined);
      throw e;
    }
    const store = new PgMailboxStore(pool, connectionString, options);
    if ((options.maxDbBytes ?? 0) > 0) await store.watchStorage();
    return store;
  }

  /** The key of hashed metric labels, shared by every relay process on this database (created once). */
  metricsSecret(): Promise<Buffer> {
    return this.run(async () => {
      await this.pool.query("INSERT INTO relay_settings (name, value) VALUES ('metrics_secret', $1) ON CONFLICT (name) DO NOTHING", [
        randomBytes(32),
      ]);
      const r = await this.pool.query<{ value: Buffer }>("SELECT value FROM relay_settings WHERE name = 'metrics_secret'");
      const value = r.rows[0]?.value;
      if (!value) throw new Error('the metrics secret is missing from relay_settings');
      return value;
    });
  }

  /**
   * Starts this process's LISTEN connection: `onDeposit(did)` for every committed deposit on any
   * process; `onResync()` after each (re)connection (notifications may have been missed).
   */
  async listen(onDeposit: (did: string) => void, onResync: () => void): Promise<void> {
    if (this.listener) throw new Error('already listening');
    this.listener = new DepositListener({
      connectionString: this.connectionString,
      onDeposit,
      onResync,
      onError: (e) => this.options.onBackgroundError?.(e),
    });
    await this.listener.start();
  }

  deposit(env: StoredEnvelope, tokenHash: string | null, limits: DepositLimits): Promise<DepositOutcome> {
    return this.run(async () => {
      const max = this.options.maxDbBytes ?? 0;
      // Reckoned like the SQLite store: the row, its index entries and WAL overhead.
      const storageFull = max > 0 && this.dbBytes + 2 * env.size + 512 > max;
      const token = tokenHash !== null && HEX_ID.test(tokenHash) ? Buffer.from(tokenHash, 'hex') : null;
      const r = await this.query<{ outcome: string; expires_at: string | null }>({
        name: 'relay_deposit',
        text: 'SELECT outcome, expires_at FROM relay_deposit($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)',
        values: [
          env.toDid,
          idBytes(env.id),
          env.fromDid,
          env.body,
          env.size,
          env.depositedAt,
          env.expiresAt,
          token,
          limits.cap,
          limits.unsolicitedEnvelopes,
          limits.unsolicitedBytes,
          storageFull,
        ],
      });
      const row = r.rows[0];
      if (!row) throw new Error('relay_deposit returned no row');
      if (row.outcome === 'queue_full') return { kind: 'queue_full' };
      if (row.outcome === 'unsolicited_quota') return { kind: 'unsolicited_quota' };
      if (row.outcome === 'storage_full') return { kind: 'storage_full' };
      const expiresAt = Number(row.expires_at);
      if (row.outcome === 'duplicate') return { kind: 'duplicate', expiresAt };
      this.notifier.notifyLater(env.toDid);
      return { kind: 'stored', expiresAt };
    });
  }

  setDepositTokens(did: string, tokenHashes: readonly string[]): Promise<number> {
    const hashes = [...new Set(tokenHashes)];
    for (const h of hashes)
      if (!HEX_ID.test(h)) return Promise.reject(new Error('a deposit token hash must be 64 lowercase hex characters'));
    return this.run(async () => {
      await this.query({
        name: 'relay_set_tokens',
        text: 'INSERT INTO mailboxes (did, token_hashes) VALUES ($1, $2) ON CONFLICT (did) DO UPDATE SET token_hashes = EXCLUDED.token_hashes',
        values: [did, hashes.length === 0 ? null : hashes.map((h) => Buffer.from(h, 'hex'))],
      });
      return hashes.length;
    });
  }

  receive(did: string, limit: number, now: number): Promise<ReceiveResult> {
    return this.run(async () => {
      const r = await this.pool.query<EnvelopeRow>({
        name: 'relay_receive',
        text:
          "SELECT encode(e.id, 'hex') AS id, e.from_did, e.body, e.size, e.deposited_at, e.expires_at " +
          'FROM mailboxes m JOIN envelopes e ON e.mailbox_id = m.id ' +
          'WHERE m.did = $1 AND e.expires_at > $2 ORDER BY e.deposited_at, e.seq LIMIT $3',
        values: [did, now, limit],
      });
      const envelopes = r.rows.map((row) => fromRow(did, row));
      // A short page is the whole queue: count only when the page is full.
      if (envelopes.length < limit) return { envelopes, remaining: 0 };
      const c = await this.pool.query<{ n: number }>({
        name: 'relay_count_live',
        text: 'SELECT count(*)::integer AS n FROM mailboxes m JOIN envelopes e ON e.mailbox_id = m.id WHERE m.did = $1 AND e.expires_at > $2',
        values: [did, now],
      });
      return { envelopes, remaining: Math.max(0, (c.rows[0]?.n ?? 0) - envelopes.length) };
    });
  }

  ack(did: string, ids: readonly string[]): Promise<number> {
    // An ID that is not 64 lowercase hex was never deposited (PROTOCOL.md §4): nothing to match.
    const keys = [...new Set(ids)].filter((id) => HEX_ID.test(id)).map(idBytes);
    if (keys.length === 0) return this.run(() => Promise.resolve(0));
    return this.run(async () => {
      const r = await this.query<{ n: number }>({ name: 'relay_ack', text: 'SELECT relay_ack($1, $2) AS n', values: [did, keys] });
      return r.rows[0]?.n ?? 0;
    });
  }

  /** relay_sweep: one transaction under the sweep lock; while another process holds it, this one returns 0. */
  sweepExpired(now: number): Promise<number> {
    return this.run(async () => {
      const r = await this.query<{ n: number }>({
        name: 'relay_sweep',
        text: 'SELECT relay_sweep($1, $2) AS n',
        values: [now, SWEEP_LOCK_KEY],
      });
      return r.rows[0]?.n ?? 0;
    });
  }

  stats(_now: number, topQueues: number): Promise<StoreStats> {
    const cached = this.closed ? undefined : this.statsCache.cached(topQueues);
    return cached ? Promise.resolve(cached) : this.run(() => this.statsCache.read(topQueues));
  }

  /** Healthy after a recent commit; otherwise a probe (SELECT 1), at most one per HEALTH_FRESH_MS. */
  health(): Promise<StoreHealth> {
    if (this.closed) return Promise.resolve({ ok: false, message: 'the store is closed' });
    const now = Date.now();
    if (now - this.lastCommitAt < HEALTH_FRESH_MS) return Promise.resolve({ ok: true, message: 'committing' });
    if (this.probe && now - this.probe.at < HEALTH_FRESH_MS) return this.probe.result;
    const result = this.pool.query('SELECT 1').then(
      (): StoreHealth => ({ ok: true, message: 'the database answers' }),
      (e: unknown): StoreHealth => ({
        ok: false,
        message: `the database cannot be reached: ${e instanceof Error ? e.message : String(e)}`,
      }),
    );
    this.probe = { at: now, result };
    return result;
  }

  claimSignature(sig: string, expiresAt: number): Promise<boolean> {
    return this.run(async () => {
      const r = await this.query({
        name: 'relay_claim',
        text: 'INSERT INTO used_signatures (sig, expires_at) VALUES ($1, $2) ON CONFLICT (sig) DO NOTHING',
        values: [sig, expiresAt],
      });
      return r.rowCount === 1;
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.storageTimer);
    await this.notifier.idle();
    await this.listener?.close();
    await this.statsCache.idle();
    await this.pool.end();
  }

  /** Reads the database size now and every STORAGE_CHECK_MS (for `maxDbBytes`). */
  private async watchStorage(): Promise<void> {
    const read = async () => {
      const r = await this.pool.query<{ n: string }>('SELECT pg_database_size(current_database()) AS n');
      this.dbBytes = Number(r.rows[0]?.n ?? 0);
    };
    await read();
    this.storageTimer = setInterval(() => {
      read().catch((e: unknown) => this.options.onBackgroundError?.(e instanceof Error ? e : new Error(String(e))));
    }, STORAGE_CHECK_MS);
    this.storageTimer.unref();
  }

  /** A write statement: retried after a deadlock or serialization failure (rolled back, nothing applied); notes the commit for /health. */
  private async query<R extends pg.QueryResultRow>(config: pg.QueryConfig): Promise<pg.QueryResult<R>> {
    for (let attempt = 1; ; attempt++) {
      try {
        const r = await this.pool.query<R>(config);
        this.lastCommitAt = Date.now();
        return r;
      } catch (e) {
        const code = (e as { code?: unknown }).code;
        if (attempt >= RETRIES || typeof code !== 'string' || !RETRYABLE.has(code)) throw e;
      }
    }
  }

  /** Runs a store operation: closed → rejection; connection trouble → StoreUnavailableError. */
  private async run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.closed) throw new Error('mailbox store is closed');
    try {
      return await fn();
    } catch (e) {
      if (isConnectionError(e)) {
        throw new StoreUnavailableError(`the database is unavailable: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
      }
      throw e;
    }
  }
}

function idBytes(hex: string): Buffer {
  if (!HEX_ID.test(hex)) throw new Error('an envelope ID must be 64 lowercase hex characters');
  return Buffer.from(hex, 'hex');
}

function fromRow(toDid: string, r: EnvelopeRow): StoredEnvelope {
  return {
    id: r.id,
    toDid,
    fromDid: r.from_did,
    body: r.body,
    size: r.size,
    depositedAt: Number(r.deposited_at),
    expiresAt: Number(r.expires_at),
  };
}
