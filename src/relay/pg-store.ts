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
 *   the commit's WAL flush and serialised all deposits (bench:relay, one process: 285 → ~1,850/s). A
 *   notification lost to a crash costs a long-poll its wake, never an envelope: the listener's
 *   reconnection wakes every waiter to look again.
 * - The replay cache (§6) is a primary key: of two processes claiming one signature, one insert
 *   wins.
 * - The expiry sweep runs under pg_try_advisory_xact_lock: one process at a time, the others skip.
 * - Connection loss surfaces as StoreUnavailableError (the relay answers 503); the pool replaces
 *   broken connections by itself, so the relay recovers when the server is back.
 */
import pg from 'pg';
import { DepositListener } from './pg-notifier';
import { DEPOSIT_CHANNEL, migrate, SWEEP_LOCK_KEY } from './pg-migrations';
import { StoreUnavailableError } from './store-errors';
import type { DepositOutcome, MailboxStats, MailboxStore, ReceiveResult, StoreStats, StoredEnvelope } from './store';

export interface PgStoreOptions {
  /** Pool size of this process (connections used by requests; the listener is one more). */
  readonly poolSize?: number;
  /**
   * /metrics gauges older than this are refreshed in the background while the scrape gets the
   * cached ones (0: every stats() call computes). The expensive part — distinct senders — scans
   * queued envelopes, which must stay off the request path at queue scale.
   */
  readonly statsMaxAgeMs?: number;
  /** Per-DID gauges only for this many of the largest queues (PROTOCOL.md §5 metrics). */
  readonly statsTopMailboxes?: number;
  /** Logged, never thrown: errors of idle connections and of the listener. */
  readonly onBackgroundError?: (error: Error) => void;
}

const HEX_ID = /^[0-9a-f]{64}$/;
const CONNECT_TIMEOUT_MS = 5_000;

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
  return true; // ECONNREFUSED, ECONNRESET, "Connection terminated", connect timeout …
}

export class PgMailboxStore implements MailboxStore {
  private closed = false;
  private listener: DepositListener | undefined;
  private statsCache: { at: number; now: number; value: StoreStats } | undefined;
  private statsRefresh: Promise<StoreStats> | undefined;
  private readonly statsMaxAgeMs: number;
  private readonly statsTop: number;
  /** DIDs deposited to since the last NOTIFY batch went out. */
  private notifyPending = new Set<string>();
  private notifyInFlight: Promise<void> | undefined;

  private constructor(
    private readonly pool: pg.Pool,
    private readonly connectionString: string,
    private readonly options: PgStoreOptions,
  ) {
    this.statsMaxAgeMs = options.statsMaxAgeMs ?? 10_000;
    this.statsTop = options.statsTopMailboxes ?? 100;
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
      try {
        await migrate(client);
      } finally {
        client.release();
      }
    } catch (e) {
      await pool.end().catch(() => undefined);
      throw e;
    }
    return new PgMailboxStore(pool, connectionString, options);
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

  deposit(env: StoredEnvelope, cap: number): Promise<DepositOutcome> {
    return this.run(async () => {
      const r = await this.pool.query<{ outcome: string; expires_at: string | null }>({
        name: 'relay_deposit',
        text: 'SELECT outcome, expires_at FROM relay_deposit($1, $2, $3, $4, $5, $6, $7, $8)',
        values: [env.toDid, idBytes(env.id), env.fromDid, env.body, env.size, env.depositedAt, env.expiresAt, cap],
      });
      const row = r.rows[0];
      if (!row) throw new Error('relay_deposit returned no row');
      if (row.outcome === 'queue_full') return { kind: 'queue_full' };
      const expiresAt = Number(row.expires_at);
      if (row.outcome === 'duplicate') return { kind: 'duplicate', expiresAt };
      this.notifyLater(env.toDid);
      return { kind: 'stored', expiresAt };
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
      const r = await this.pool.query<{ n: number }>({ name: 'relay_ack', text: 'SELECT relay_ack($1, $2) AS n', values: [did, keys] });
      return r.rows[0]?.n ?? 0;
    });
  }

  /**
   * One transaction under the sweep lock; another process holding it means that process sweeps:
   * this one returns 0. Mailbox rows are locked first, in id order, like every other writer.
   */
  sweepExpired(now: number): Promise<number> {
    return this.run(async () => {
      const client = await this.pool.connect();
      let broken = false;
      try {
        await client.query('BEGIN');
        const lock = await client.query<{ ok: boolean }>('SELECT pg_try_advisory_xact_lock($1) AS ok', [SWEEP_LOCK_KEY]);
        if (!lock.rows[0]?.ok) {
          await client.query('ROLLBACK');
          return 0;
        }
        const boxes = await client.query<{ id: string }>(
          'SELECT id FROM mailboxes WHERE id IN (SELECT DISTINCT mailbox_id FROM envelopes WHERE expires_at <= $1) ORDER BY id FOR UPDATE',
          [now],
        );
        let swept = 0;
        if (boxes.rows.length > 0) {
          const ids = boxes.rows.map((b) => b.id);
          const r = await client.query<{ n: number }>(
            'WITH gone AS (DELETE FROM envelopes WHERE mailbox_id = ANY ($1::bigint[]) AND expires_at <= $2 RETURNING mailbox_id), ' +
              'per AS (SELECT mailbox_id, count(*)::integer AS n FROM gone GROUP BY mailbox_id), ' +
              'upd AS (UPDATE mailboxes m SET queued = m.queued - per.n FROM per WHERE m.id = per.mailbox_id) ' +
              'SELECT coalesce(sum(n), 0)::integer AS n FROM per',
            [ids, now],
          );
          swept = r.rows[0]?.n ?? 0;
        }
        await client.query('DELETE FROM used_signatures WHERE expires_at <= $1', [now]);
        // Empty mailbox rows go, so DIDs that once received do not accumulate. A deposit racing
        // this holds the row lock; the DELETE then re-checks queued and keeps the row.
        await client.query('DELETE FROM mailboxes WHERE queued = 0');
        await client.query('COMMIT');
        return swept;
      } catch (e) {
        broken = true;
        throw e;
      } finally {
        if (broken) client.release(true);
        else client.release();
      }
    });
  }

  stats(now: number): Promise<StoreStats> {
    if (this.statsMaxAgeMs === 0) return this.run(() => this.computeStats(now));
    const cached = this.statsCache;
    if (cached && !this.closed) {
      if (Date.now() - cached.at > this.statsMaxAgeMs) void this.refreshStats(now).catch(() => undefined);
      return Promise.resolve(cached.value);
    }
    return this.run(() => this.refreshStats(now));
  }

  claimSignature(sig: string, expiresAt: number): Promise<boolean> {
    return this.run(async () => {
      const r = await this.pool.query({
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
    await this.notifyInFlight;
    await this.listener?.close();
    await this.statsRefresh?.catch(() => undefined);
    await this.pool.end();
  }

  /**
   * Queues a wake for `did`'s long-polls on every process. One batch at a time: DIDs deposited to
   * while a batch is in flight go in the next one (deduplicated).
   */
  private notifyLater(did: string): void {
    this.notifyPending.add(did);
    if (!this.notifyInFlight) this.notifyInFlight = new Promise<void>((resolve) => setImmediate(resolve)).then(() => this.sendNotifications());
  }

  private async sendNotifications(): Promise<void> {
    while (this.notifyPending.size > 0) {
      const dids = [...this.notifyPending];
      this.notifyPending = new Set();
      let client: pg.PoolClient | undefined;
      try {
        client = await this.pool.connect();
        await client.query('BEGIN');
        // Nothing durable here: the deposits committed already. Not waiting for this commit's
        // flush keeps the notify lock short.
        await client.query('SET LOCAL synchronous_commit TO off');
        await client.query(`SELECT pg_notify('${DEPOSIT_CHANNEL}', d) FROM unnest($1::text[]) AS d`, [dids]);
        await client.query('COMMIT');
        client.release();
      } catch (e) {
        client?.release(true);
        // Lost wakes: those long-polls answer at their deadline, or at the listener's resync.
        this.options.onBackgroundError?.(e instanceof Error ? e : new Error(String(e)));
      }
    }
    this.notifyInFlight = undefined;
  }

  private refreshStats(now: number): Promise<StoreStats> {
    this.statsRefresh ??= this.computeStats(now).then(
      (value) => {
        this.statsCache = { at: Date.now(), now, value };
        this.statsRefresh = undefined;
        return value;
      },
      (e: unknown) => {
        this.statsRefresh = undefined;
        throw e;
      },
    );
    return this.statsRefresh;
  }

  /**
   * Cost proportional to receivers and to expired-unswept envelopes, not to queued envelopes:
   * live count per mailbox = `queued` − its expired rows (found through the expiry index). Only the
   * distinct-sender count scans envelopes (plain ones), hence the cache in stats().
   */
  private async computeStats(now: number): Promise<StoreStats> {
    const boxes = await this.pool.query<{ did: string; n: number; oldest: string | null; receivers: number }>(
      'WITH expired AS (SELECT mailbox_id, count(*)::integer AS n FROM envelopes WHERE expires_at <= $1 GROUP BY mailbox_id), ' +
        'live AS (SELECT m.id, m.did, m.queued - coalesce(x.n, 0) AS n FROM mailboxes m LEFT JOIN expired x ON x.mailbox_id = m.id WHERE m.queued > 0), ' +
        'top AS (SELECT * FROM live WHERE n > 0 ORDER BY n DESC, id LIMIT $2) ' +
        'SELECT top.did, top.n, o.deposited_at AS oldest, (SELECT count(*)::integer FROM live WHERE n > 0) AS receivers FROM top ' +
        'LEFT JOIN LATERAL (SELECT min(e.deposited_at) AS deposited_at FROM envelopes e WHERE e.mailbox_id = top.id AND e.expires_at > $1) o ON true',
      [now, this.statsTop],
    );
    const senders = await this.pool.query<{ n: number }>(
      'SELECT count(DISTINCT from_did)::integer AS n FROM envelopes WHERE from_did IS NOT NULL AND expires_at > $1',
      [now],
    );
    const mailboxes: MailboxStats[] = boxes.rows.map((r) => ({ did: r.did, queueSize: r.n, oldestDepositedAt: Number(r.oldest) }));
    return { mailboxes, uniqueSenders: senders.rows[0]?.n ?? 0, uniqueReceivers: boxes.rows[0]?.receivers ?? 0 };
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
