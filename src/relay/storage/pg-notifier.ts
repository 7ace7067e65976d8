/**
 * Cross-process long-poll wake-ups (PROTOCOL.md §5 receive `wait`), both sides: DepositNotifier
 * sends (below); DepositListener receives on one dedicated connection per
 * relay process LISTENs on the deposit channel; every committed deposit, on any process, NOTIFYs
 * the receiver DID (pg-migrations.ts `relay_deposit`).
 *
 * LISTEN lives on a session, so this connection is never a pooled one (and never behind a
 * transaction-mode PgBouncer). When it is lost (server restart, network), it reconnects with
 * backoff; notifications sent meanwhile are lost, so after every (re)connection `onResync` runs
 * and the relay wakes all its waiting long-polls to look at the store again.
 */
import pg from 'pg';
import { DEPOSIT_CHANNEL } from './pg-migrations';

export interface DepositListenerOptions {
  readonly connectionString: string;
  /** A deposit for `did` committed (on this process or another). */
  readonly onDeposit: (did: string) => void;
  /** Listening (again) after a gap in which notifications may have been missed. */
  readonly onResync: () => void;
  readonly onError?: (error: Error) => void;
}

const RETRY_MIN_MS = 100;
const RETRY_MAX_MS = 5_000;

export class DepositListener {
  private client: pg.Client | undefined;
  private retryMs = RETRY_MIN_MS;
  private retryTimer: NodeJS.Timeout | undefined;
  private closed = false;
  private connected = false;
  private firstConnection: Promise<void> | undefined;

  constructor(private readonly options: DepositListenerOptions) {}

  /** Resolves once listening for the first time; rejects if that first attempt fails. */
  start(): Promise<void> {
    this.firstConnection ??= this.connect();
    return this.firstConnection;
  }

  /** True while a LISTEN session is up. */
  get listening(): boolean {
    return this.connected;
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.retryTimer);
    const client = this.client;
    this.client = undefined;
    this.connected = false;
    if (client) await client.end().catch(() => undefined);
  }

  private async connect(): Promise<void> {
    const client = new pg.Client({
      connectionString: this.options.connectionString,
      application_name: 'spl-relay listener',
      keepAlive: true,
    });
    let lost = false;
    const onLost = (err?: Error) => {
      if (lost) return;
      lost = true;
      if (err) this.options.onError?.(err);
      if (this.client === client) {
        this.client = undefined;
        this.connected = false;
      }
      client.removeAllListeners('notification');
      client.end().catch(() => undefined);
      this.scheduleReconnect();
    };
    // An error on an idle connection (server restart) is an event, not a throw: without this
    // handler it would crash the process.
    client.on('error', (e) => onLost(e));
    client.on('end', () => onLost());
    client.on('notification', (n) => {
      if (n.channel === DEPOSIT_CHANNEL && n.payload) this.options.onDeposit(n.payload);
    });
    try {
      await client.connect();
      await client.query(`LISTEN ${DEPOSIT_CHANNEL}`);
    } catch (e) {
      onLost(e instanceof Error ? e : new Error(String(e)));
      throw e;
    }
    if (this.closed || lost) {
      await client.end().catch(() => undefined);
      return;
    }
    this.client = client;
    this.connected = true;
    this.retryMs = RETRY_MIN_MS;
    this.options.onResync();
  }

  private scheduleReconnect(): void {
    if (this.closed || this.retryTimer) return;
    const delay = this.retryMs;
    this.retryMs = Math.min(RETRY_MAX_MS, this.retryMs * 2);
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      if (this.closed) return;
      this.connect().catch(() => undefined); // a failed attempt schedules the next one itself
    }, delay);
    this.retryTimer.unref();
  }
}

/** NOTIFY payloads stop at 8000 bytes. */
const MAX_NOTIFY_PAYLOAD = 7_999;

/**
 * The sending side: after a deposit commits, its receiver DID is NOTIFYed to every process, in
 * batches, in their own transaction with synchronous_commit off. NOTIFY inside the deposit
 * transaction holds a cluster-wide lock through the commit's WAL flush and serialised all
 * deposits (pg-store.ts cites the measurement). A notification lost to a crash costs a long-poll
 * its wake, never an envelope: the listener's reconnection wakes every waiter to look again.
 */
export class DepositNotifier {
  /** DIDs deposited to since the last NOTIFY batch went out. */
  private pending = new Set<string>();
  private inFlight: Promise<void> | undefined;

  constructor(
    private readonly pool: pg.Pool,
    private readonly onError: (e: Error) => void,
  ) {}

  /** Resolves once no batch is in flight. */
  async idle(): Promise<void> {
    await this.inFlight;
  }

  /**
   * Queues a wake for `did`'s long-polls on every process. One batch at a time: DIDs deposited to
   * while a batch is in flight go in the next one (deduplicated).
   */
  notifyLater(did: string): void {
    // NOTIFY payloads stop at 8000 bytes and one over it fails its whole batch: a DID that long
    // (only possible with --open-mailboxes) wakes long-polls on this process only.
    if (Buffer.byteLength(did) > MAX_NOTIFY_PAYLOAD) return;
    this.pending.add(did);
    if (!this.inFlight) this.inFlight = new Promise<void>((resolve) => setImmediate(resolve)).then(() => this.sendNotifications());
  }

  private async sendNotifications(): Promise<void> {
    while (this.pending.size > 0) {
      const dids = [...this.pending];
      this.pending = new Set();
      let client: pg.PoolClient | undefined;
      // A checked-out client between statements has no pool listener: a connection lost then is
      // an 'error' event, which unhandled would crash the process (seen under a PostgreSQL restart).
      const onClientError = (e: Error) => this.onError(e);
      try {
        client = await this.pool.connect();
        client.on('error', onClientError);
        await client.query('BEGIN');
        // Nothing durable here: the deposits committed already. Not waiting for this commit's
        // flush keeps the notify lock short.
        await client.query('SET LOCAL synchronous_commit TO off');
        await client.query(`SELECT pg_notify('${DEPOSIT_CHANNEL}', d) FROM unnest($1::text[]) AS d`, [dids]);
        await client.query('COMMIT');
        client.off('error', onClientError);
        client.release();
      } catch (e) {
        client?.off('error', onClientError);
        client?.release(true);
        // Lost wakes: those long-polls answer at their deadline, or at the listener's resync.
        this.onError(e instanceof Error ? e : new Error(String(e)));
      }
    }
    this.inFlight = undefined;
  }
}
