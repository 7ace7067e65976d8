/**
 * SQLite MailboxStore (better-sqlite3): WAL, `synchronous=FULL`, group commit.
 *
 * Durability (PROTOCOL.md §5: 202 "only after the envelope is durable"): every write goes through
 * one queue that is flushed as a single transaction on the next turn of the event loop. Writes
 * that arrive while a commit (and its fsync) is running wait in the socket buffers, are parsed on
 * the following turn and land together in the next transaction: one fsync covers a whole batch.
 * A write's promise resolves only after its transaction has committed.
 */
import Database from 'better-sqlite3';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import type { DepositOutcome, MailboxStore, ReceiveResult, StoreStats, StoredEnvelope } from './store';

const SCHEMA = `
CREATE TABLE IF NOT EXISTS envelopes (
  seq          INTEGER PRIMARY KEY,   -- rowid: deposit order
  to_did       TEXT    NOT NULL,
  id           TEXT    NOT NULL,
  from_did     TEXT,
  body         TEXT    NOT NULL,
  size         INTEGER NOT NULL,
  deposited_at INTEGER NOT NULL,
  expires_at   INTEGER NOT NULL,
  UNIQUE (to_did, id)
);
-- (to_did) + implicit rowid gives deposit order per receiver; (to_did, expires_at) counts live ones.
CREATE INDEX IF NOT EXISTS envelopes_by_receiver ON envelopes (to_did);
CREATE INDEX IF NOT EXISTS envelopes_live ON envelopes (to_did, expires_at);
CREATE INDEX IF NOT EXISTS envelopes_by_expiry ON envelopes (expires_at);
CREATE TABLE IF NOT EXISTS used_signatures (
  sig        TEXT    PRIMARY KEY,
  expires_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS used_signatures_by_expiry ON used_signatures (expires_at);
`;

interface EnvelopeRow {
  id: string;
  to_did: string;
  from_did: string | null;
  body: string;
  size: number;
  deposited_at: number;
  expires_at: number;
}

interface PendingWrite {
  readonly run: () => unknown;
  readonly resolve: (value: unknown) => void;
  readonly reject: (error: Error) => void;
}

const toError = (e: unknown): Error => (e instanceof Error ? e : new Error(String(e)));

export class SqliteMailboxStore implements MailboxStore {
  private readonly db: Database.Database;
  /** Rows per receiver including expired-but-unswept ones: the cap is counted exactly only near it. */
  private readonly rowCounts = new Map<string, number>();
  private pending: PendingWrite[] = [];
  private flushScheduled = false;
  private closed = false;
  private commits = 0;

  private readonly stmt;

  /** Opens (creating parent directories and schema) the database at `path`, or `:memory:`. */
  constructor(path: string) {
    if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true });
    this.db = new Database(path);
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = FULL');
    this.db.pragma('busy_timeout = 5000');
    this.db.exec(SCHEMA);
    const db = this.db;
    this.stmt = {
      existing: db.prepare<[string, string], { expires_at: number }>('SELECT expires_at FROM envelopes WHERE to_did = ? AND id = ?'),
      deleteOne: db.prepare<[string, string]>('DELETE FROM envelopes WHERE to_did = ? AND id = ?'),
      countLive: db.prepare<[string, number], { n: number }>('SELECT count(*) AS n FROM envelopes WHERE to_did = ? AND expires_at > ?'),
      insert: db.prepare<[string, string, string | null, string, number, number, number]>(
        'INSERT INTO envelopes (to_did, id, from_did, body, size, deposited_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)',
      ),
      receive: db.prepare<[string, number, number], EnvelopeRow>(
        'SELECT id, to_did, from_did, body, size, deposited_at, expires_at FROM envelopes INDEXED BY envelopes_by_receiver ' +
          'WHERE to_did = ? AND expires_at > ? ORDER BY seq LIMIT ?',
      ),
      ack: db.prepare<[string, string]>('DELETE FROM envelopes WHERE to_did = ? AND id IN (SELECT value FROM json_each(?))'),
      sweepEnvelopes: db.prepare<[number]>('DELETE FROM envelopes WHERE expires_at <= ?'),
      sweepSignatures: db.prepare<[number]>('DELETE FROM used_signatures WHERE expires_at <= ?'),
      claim: db.prepare<[string, number]>('INSERT OR IGNORE INTO used_signatures (sig, expires_at) VALUES (?, ?)'),
      rowCounts: db.prepare<[], { to_did: string; n: number }>('SELECT to_did, count(*) AS n FROM envelopes GROUP BY to_did'),
      mailboxStats: db.prepare<[number], { to_did: string; n: number; oldest: number }>(
        'SELECT to_did, count(*) AS n, min(deposited_at) AS oldest FROM envelopes WHERE expires_at > ? GROUP BY to_did',
      ),
      uniqueSenders: db.prepare<[number], { n: number }>(
        'SELECT count(DISTINCT from_did) AS n FROM envelopes WHERE from_did IS NOT NULL AND expires_at > ?',
      ),
    };
    this.reloadRowCounts();
  }

  deposit(env: StoredEnvelope, cap: number): Promise<DepositOutcome> {
    return this.write((): DepositOutcome => {
      const existing = this.stmt.existing.get(env.toDid, env.id);
      if (existing && existing.expires_at > env.depositedAt) return { kind: 'duplicate', expiresAt: existing.expires_at };
      if (existing) {
        // Expired but not yet swept: the new deposit replaces it.
        this.stmt.deleteOne.run(env.toDid, env.id);
        this.addRows(env.toDid, -1);
      }
      const rows = this.rowCounts.get(env.toDid) ?? 0;
      if (rows >= cap && (this.stmt.countLive.get(env.toDid, env.depositedAt)?.n ?? 0) >= cap) return { kind: 'queue_full' };
      this.stmt.insert.run(env.toDid, env.id, env.fromDid, env.body, env.size, env.depositedAt, env.expiresAt);
      this.addRows(env.toDid, 1);
      return { kind: 'stored', expiresAt: env.expiresAt };
    });
  }

  receive(did: string, limit: number, now: number): Promise<ReceiveResult> {
    return this.read(() => {
      const envelopes = this.stmt.receive.all(did, now, limit).map(fromRow);
      const live = this.stmt.countLive.get(did, now)?.n ?? 0;
      return { envelopes, remaining: Math.max(0, live - envelopes.length) };
    });
  }

  ack(did: string, ids: readonly string[]): Promise<number> {
    if (ids.length === 0) return Promise.resolve(0);
    return this.write(() => {
      const removed = this.stmt.ack.run(did, JSON.stringify(ids)).changes;
      this.addRows(did, -removed);
      return removed;
    });
  }

  sweepExpired(now: number): Promise<number> {
    return this.write(() => {
      const swept = this.stmt.sweepEnvelopes.run(now).changes;
      this.stmt.sweepSignatures.run(now);
      if (swept > 0) this.reloadRowCounts();
      return swept;
    });
  }

  stats(now: number): Promise<StoreStats> {
    return this.read(() => {
      const mailboxes = this.stmt.mailboxStats.all(now).map((r) => ({ did: r.to_did, queueSize: r.n, oldestDepositedAt: r.oldest }));
      const uniqueSenders = this.stmt.uniqueSenders.get(now)?.n ?? 0;
      return { mailboxes, uniqueSenders, uniqueReceivers: mailboxes.length };
    });
  }

  claimSignature(sig: string, expiresAt: number): Promise<boolean> {
    return this.write(() => this.stmt.claim.run(sig, expiresAt).changes === 1);
  }

  /** Transactions committed so far: with group commit, far fewer than writes. */
  get commitCount(): number {
    return this.commits;
  }

  close(): Promise<void> {
    if (this.closed) return Promise.resolve();
    this.flush(); // commit whatever is queued before closing
    this.closed = true;
    this.db.close();
    return Promise.resolve();
  }

  /** Queues a write for the next group commit; resolves after that transaction committed. */
  private write<T>(run: () => T): Promise<T> {
    if (this.closed) return Promise.reject(new Error('mailbox store is closed'));
    return new Promise<T>((resolve, reject) => {
      this.pending.push({ run, resolve: resolve as (value: unknown) => void, reject });
      if (!this.flushScheduled) {
        this.flushScheduled = true;
        // setImmediate runs after this turn's I/O callbacks: every request parsed in this turn joins the batch.
        setImmediate(() => this.flush());
      }
    });
  }

  private read<T>(run: () => T): Promise<T> {
    if (this.closed) return Promise.reject(new Error('mailbox store is closed'));
    try {
      return Promise.resolve(run());
    } catch (e) {
      return Promise.reject(toError(e));
    }
  }

  /** Runs every queued write in one transaction; settles each promise after COMMIT. */
  private flush(): void {
    this.flushScheduled = false;
    const batch = this.pending;
    this.pending = [];
    if (batch.length === 0 || this.closed) {
      for (const w of batch) w.reject(new Error('mailbox store is closed'));
      return;
    }
    const outcomes: Array<{ ok: true; value: unknown } | { ok: false; error: Error }> = [];
    try {
      this.db
        .transaction(() => {
          for (const w of batch) {
            // A failing statement rolls back only itself in SQLite; the others in the batch still commit.
            try {
              outcomes.push({ ok: true, value: w.run() });
            } catch (e) {
              outcomes.push({ ok: false, error: toError(e) });
            }
          }
        })
        .immediate();
      this.commits++;
    } catch (e) {
      // COMMIT itself failed (disk full, I/O error): nothing in the batch is durable.
      this.reloadRowCounts();
      for (const w of batch) w.reject(toError(e));
      return;
    }
    batch.forEach((w, i) => {
      const o = outcomes[i]!;
      if (o.ok) w.resolve(o.value);
      else w.reject(o.error);
    });
  }

  private addRows(did: string, delta: number): void {
    const n = (this.rowCounts.get(did) ?? 0) + delta;
    if (n > 0) this.rowCounts.set(did, n);
    else this.rowCounts.delete(did);
  }

  private reloadRowCounts(): void {
    this.rowCounts.clear();
    for (const r of this.stmt.rowCounts.all()) this.rowCounts.set(r.to_did, r.n);
  }
}

function fromRow(r: EnvelopeRow): StoredEnvelope {
  return {
    id: r.id,
    toDid: r.to_did,
    fromDid: r.from_did,
    body: r.body,
    size: r.size,
    depositedAt: r.deposited_at,
    expiresAt: r.expires_at,
  };
}
