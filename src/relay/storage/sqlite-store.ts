/**
 * SQLite MailboxStore (better-sqlite3): WAL, `synchronous=FULL`, group commit off the event loop.
 *
 * Durability (PROTOCOL.md §5: 202 "only after the envelope is durable"): every write goes through
 * one queue (group-commit.ts), sent as batches to a writer thread (sqlite-threads.ts) that owns its
 * own connection and runs each batch as one `BEGIN IMMEDIATE … COMMIT`.
 *
 * Integrity: a damaged WAL is refused before the database is opened (SQLite's recovery would drop
 * committed transactions silently, sqlite-integrity.ts). `PRAGMA quick_check` of the whole file
 * runs in the checkpointer thread once the relay serves (it took 1.1 s of a 1.7–2.8 s start at
 * 1,000,000 envelopes): until it answers, requests are served; if it fails, the store refuses every
 * further operation (DatabaseRefusedError: the relay answers 503 and `spl-relay` exits 3). Deposits
 * answered 202 meanwhile were committed like any other; a damaged file needs an operator either way.
 *
 * Reads run on a main-thread connection: in WAL mode it sees every committed transaction.
 * `:memory:` cannot be shared between connections, so there the batch runs inline on the main
 * connection instead (same code, same semantics).
 */
import type Database from 'better-sqlite3';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { GroupCommit, toError } from './group-commit';
import type { DepositLimits, DepositOutcome, MailboxStore, ReceiveResult, StoreHealth, StoreStats, StoredEnvelope } from './store';
import { DatabaseRefusedError } from './store-errors';
import { checkWal } from './sqlite-integrity';
import { unpackBody } from './sqlite-body';
import { openSqlite, prepareSchema } from './sqlite-schema';
import { EnvelopeTail } from './sqlite-tail';
import { inlineBackend, workerBackend } from './sqlite-threads';
import { DEFAULT_STAGING, NO_STORAGE_LIMITS, type AckHint, type StagingOptions, type StorageLimits, type WriteOp } from './sqlite-writer';
import type { IntegrityReport } from './sqlite-writer-worker';

interface EnvelopeRow {
  seq: number;
  id: string;
  from_did: string | null;
  /** Text, or a packed BLOB (sqlite-body.ts). */
  body: string | Buffer;
  size: number;
  deposited_at: number;
  expires_at: number;
  unsolicited: number;
}

interface MailboxRow {
  id: number;
  did: string;
  queued: number;
}

/** Two ascending lists of distinct numbers, as one. */
function mergeSorted(a: readonly number[], b: readonly number[]): number[] {
  const out: number[] = [];
  let i = 0;
  let j = 0;
  while (i < a.length || j < b.length) {
    if (j >= b.length || (i < a.length && a[i]! < b[j]!)) out.push(a[i++]!);
    else out.push(b[j++]!);
  }
  return out;
}

/**
 * Where the envelopes this process's receives returned live (`<did> <id>` → AckHint), so their ack
 * goes straight to the rows: measured at 1,000,000 envelopes, acking 5,000 merged rows took ~90 ms
 * found through their ID hashes (HMAC per ID, then the key table) and ~55 ms found by seq; deleted
 * by seq without reading them first, ~15 ms less. At most this many (~250 bytes each, measured); an
 * ack without a hint (the oldest dropped, or received through another process) is looked up by hash.
 */
const DELIVERED_HINTS = 32_768;

/** How often the reader catches its tail up when no read does (sqlite-tail.ts). */
const TAIL_CATCH_UP_MS = 50;

/** A commit this recent answers /health without a probe write; probe answers are kept this long too. */
const HEALTH_FRESH_MS = 1000;

export interface SqliteStoreOptions {
  /** `--max-db-bytes`, `--min-free-disk-bytes`: deposits get `storage_full` before the disk is. */
  readonly storage?: StorageLimits;
  /** The staged index's merge sizes (sqlite-tail.ts); tests make them tiny so merges run all the time. */
  readonly staging?: StagingOptions;
  /**
   * Check the WAL at open and run `PRAGMA quick_check` in the background (default true): a damaged
   * database is refused with DatabaseRefusedError (at open, or by `refused` later).
   */
  readonly integrityCheck?: boolean;
}
const closedError = () => new Error('mailbox store is closed');

export class SqliteMailboxStore implements MailboxStore {
  private readonly db: Database.Database;
  private readonly writes: GroupCommit<WriteOp>;
  private closed = false;
  /** openRun was called: close() marks the run closed (replay-guard.ts). */
  private runOpen = false;
  private closing: Promise<void> | undefined;
  /** Set when the background quick_check failed: every operation is refused from then on. */
  private refusal: DatabaseRefusedError | undefined;
  private readonly refusedListeners: Array<(e: Error) => void> = [];
  private integrityResult: IntegrityReport | undefined;
  private readonly quickCheck: boolean;
  private probe: { readonly at: number; readonly result: Promise<StoreHealth> } | undefined;

  private readonly stmt;
  /** This connection's copy of the unmerged rows (sqlite-tail.ts), caught up in every snapshot. */
  private readonly tail: EnvelopeTail;
  private readonly snapshot: <T>(run: () => T) => T;
  private readonly catchUpTimer: NodeJS.Timeout;
  /** See DELIVERED_HINTS; insertion order is delivery order. */
  private readonly delivered = new Map<string, readonly [seq: number, size: number, unsolicited: number]>();

  /**
   * Opens (creating parent directories and schema) the database at `path`, or `:memory:`.
   * Throws DatabaseRefusedError for a damaged WAL (frames SQLite would drop), a file SQLite cannot
   * read, or a newer schema; `PRAGMA quick_check` runs in the background (see the module comment).
   */
  constructor(path: string, options: SqliteStoreOptions = {}) {
    const check = options.integrityCheck ?? true;
    if (path !== ':memory:') {
      mkdirSync(dirname(path), { recursive: true });
      if (check) {
        const wal = checkWal(path);
        if (!wal.ok) throw new DatabaseRefusedError(`damaged write-ahead log: ${wal.message}`);
      }
    }
    try {
      this.db = openSqlite(path);
    } catch (e) {
      // e.g. a read-only directory without the WAL's -shm file: say where to look.
      throw new Error(
        `cannot open the database ${path}: ${toError(e).message} (the relay needs to read and write the file and create its -wal and -shm beside it)`,
        { cause: e },
      );
    }
    const db = this.db;
    try {
      prepareSchema(db);
    } catch (e) {
      db.close();
      if (e instanceof DatabaseRefusedError) throw e;
      const code = (e as { code?: unknown }).code;
      if (code === 'SQLITE_CORRUPT' || code === 'SQLITE_NOTADB')
        throw new DatabaseRefusedError(`${path} is damaged: ${toError(e).message}`);
      throw e;
    }
    // Plans (EXPLAIN QUERY PLAN; test/relay/sqlite.test.ts checks them): mailbox "SEARCH mailboxes
    // USING INDEX sqlite_autoindex_mailboxes_1 (did=?)"; mergedSeqs and oldestMerged "SEARCH
    // envelope_keys USING PRIMARY KEY (mailbox=?)" (a covering range of the receiver's merged keys,
    // at most the cap, sorted for the LIMIT); row "SEARCH envelopes USING INTEGER PRIMARY KEY
    // (rowid=?)"; expiredIn "SEARCH envelopes USING INDEX envelopes_by_expiry (expires_at<?)": only
    // the unswept expired rows, few between sweeps; largest and atLeast "SEARCH mailboxes USING
    // INDEX mailboxes_by_queued (queued>?)" read backwards; totals one row by primary key.
    this.stmt = {
      mailbox: db.prepare<[string], { id: number; queued: number }>('SELECT id, queued FROM mailboxes WHERE did = ?'),
      mergedSeqs: db.prepare<[number, number], { seq: number }>('SELECT seq FROM envelope_keys WHERE mailbox = ? ORDER BY seq LIMIT ?'),
      // "SEARCH envelopes USING INTEGER PRIMARY KEY (rowid=?)" for each seq json_each gives.
      rows: db.prepare<[string, number, number], EnvelopeRow>(
        'SELECT seq, id, from_did, body, size, deposited_at, expires_at, unsolicited FROM envelopes ' +
          'WHERE seq IN (SELECT value FROM json_each(?)) AND expires_at > ? ORDER BY seq LIMIT ?',
      ),
      expiredIn: db.prepare<[number, number], { n: number }>(
        'SELECT count(*) AS n FROM envelopes INDEXED BY envelopes_by_expiry WHERE expires_at <= ? AND mailbox = ?',
      ),
      // Counters of merged envelopes (sqlite-tail.ts): a scrape reads N index entries, never the table.
      largest: db.prepare<[number], MailboxRow>(
        'SELECT id, did, queued FROM mailboxes INDEXED BY mailboxes_by_queued WHERE queued > 0 ORDER BY queued DESC LIMIT ?',
      ),
      // Covering: ids and counts only (measured at 1M, 10,000 rows with their DIDs took 6–11 ms).
      atLeast: db.prepare<[number], { id: number; queued: number }>(
        'SELECT id, queued FROM mailboxes INDEXED BY mailboxes_by_queued WHERE queued >= ?',
      ),
      countAtLeast: db.prepare<[number], { n: number }>(
        'SELECT count(*) AS n FROM mailboxes INDEXED BY mailboxes_by_queued WHERE queued >= ?',
      ),
      byId: db.prepare<[number], MailboxRow>('SELECT id, did, queued FROM mailboxes WHERE id = ?'),
      oldestMerged: db.prepare<[number], { seq: number | null }>('SELECT min(seq) AS seq FROM envelope_keys WHERE mailbox = ?'),
      depositedAt: db.prepare<[number], { deposited_at: number }>('SELECT deposited_at FROM envelopes WHERE seq = ?'),
      // "SEARCH mailboxes USING COVERING INDEX mailboxes_by_queued (queued<?)": mailboxes with
      // nothing merged, new receivers and emptied ones the sweep has not dropped yet.
      nothingMerged: db.prepare<[], { id: number }>('SELECT id FROM mailboxes INDEXED BY mailboxes_by_queued WHERE queued <= 0'),
      totals: db.prepare<[], { receivers: number; senders: number }>('SELECT receivers, senders FROM totals WHERE k = 0'),
      // "SEARCH used_signatures USING PRIMARY KEY (sig=?)"
      claimed: db.prepare<[string], { n: number }>('SELECT 1 AS n FROM used_signatures WHERE sig = ?'),
    };
    this.tail = new EnvelopeTail(db);
    // Each read sees one snapshot (the writer thread commits in between otherwise).
    const inSnapshot = db.transaction((run: () => unknown) => {
      this.tail.catchUp();
      return run();
    });
    this.snapshot = <T>(run: () => T): T => inSnapshot.deferred(run) as T;
    // The tail is caught up in small steps even when nothing reads: a read after a burst of
    // deposits would otherwise catch up all of it at once (~1 µs a row; measured in
    // `bench:relay`, the first /metrics after 98k deposits took 107 ms).
    this.catchUpTimer = setInterval(() => {
      if (this.closed || this.refusal) return;
      try {
        this.snapshot(() => undefined);
      } catch {
        // e.g. busy, or a damaged file: the next read reports it to its caller
      }
    }, TAIL_CATCH_UP_MS);
    this.catchUpTimer.unref();
    const storage = options.storage ?? NO_STORAGE_LIMITS;
    const staging = options.staging ?? DEFAULT_STAGING;
    const quickCheck = check && path !== ':memory:';
    this.quickCheck = quickCheck;
    this.writes = new GroupCommit(
      path === ':memory:'
        ? inlineBackend(db, storage, staging)
        : workerBackend(path, { storage, staging, quickCheck, onIntegrity: (r) => this.onIntegrity(path, r) }),
    );
  }

  /** Calls `listener` once if the background `PRAGMA quick_check` fails (the store then refuses every operation). */
  onRefused(listener: (e: Error) => void): void {
    if (this.refusal) listener(this.refusal);
    else this.refusedListeners.push(listener);
  }

  /** The background quick_check's answer; undefined until it has run (or when it does not run). */
  get integrity(): IntegrityReport | undefined {
    return this.integrityResult;
  }

  integrityCheckRunning(): boolean {
    return this.quickCheck && this.integrityResult === undefined && !this.closed;
  }

  private onIntegrity(path: string, report: IntegrityReport): void {
    this.integrityResult = report;
    if (report.ok || this.closed) return;
    this.refusal = new DatabaseRefusedError(`${path} ${report.message}`);
    for (const l of this.refusedListeners.splice(0)) l(this.refusal);
  }

  deposit(env: StoredEnvelope, tokenHash: string | null, limits: DepositLimits): Promise<DepositOutcome> {
    const { toDid, id, fromDid, body, size, depositedAt, expiresAt } = env;
    return this.write({ k: 'deposit', toDid, id, fromDid, body, size, depositedAt, expiresAt, tokenHash, limits });
  }

  setDepositTokens(did: string, tokenHashes: readonly string[]): Promise<number> {
    return this.write({ k: 'tokens', did, hashes: [...tokenHashes] });
  }

  receive(did: string, limit: number, now: number): Promise<ReceiveResult> {
    return this.read(() =>
      this.snapshot(() => {
        const mailbox = this.stmt.mailbox.get(did);
        if (!mailbox) return { envelopes: [], remaining: 0 };
        // Expired rows wait for the sweep: among the oldest `limit + expired` rows (merged and
        // tail, in seq order) are the oldest `limit` live ones.
        const expired = this.stmt.expiredIn.get(now, mailbox.id)?.n ?? 0;
        const want = limit + expired;
        const merged = this.stmt.mergedSeqs.all(mailbox.id, want).map((r) => r.seq);
        const seqs = mergeSorted(merged, this.tail.oldestOf(mailbox.id, want)).slice(0, want);
        const rows = this.stmt.rows.all(JSON.stringify(seqs), now, limit);
        this.rememberDelivered(did, rows);
        const envelopes = rows.map((r) => fromRow(r, did));
        // The counters include expired envelopes until the sweep deletes them: subtract those.
        const live = mailbox.queued + this.tail.counts(mailbox.id).queued - expired;
        return { envelopes, remaining: Math.max(0, live - envelopes.length) };
      }),
    );
  }

  ack(did: string, ids: readonly string[]): Promise<number> {
    if (ids.length === 0) return Promise.resolve(0);
    const hints: AckHint[] = [];
    for (const id of ids) {
      const key = `${did} ${id}`;
      const row = this.delivered.get(key);
      if (row === undefined) continue;
      hints.push([id, ...row]);
      this.delivered.delete(key);
    }
    return this.write({ k: 'ack', did, ids: [...ids], ...(hints.length > 0 ? { hints } : {}) });
  }

  private rememberDelivered(did: string, rows: readonly EnvelopeRow[]): void {
    for (const r of rows) {
      const key = `${did} ${r.id}`;
      this.delivered.delete(key); // received again: now the newest
      this.delivered.set(key, [r.seq, r.size, r.unsolicited]);
    }
    if (this.delivered.size <= DELIVERED_HINTS) return;
    let over = this.delivered.size - DELIVERED_HINTS;
    for (const key of this.delivered.keys()) {
      if (over-- <= 0) break;
      this.delivered.delete(key);
    }
  }

  sweepExpired(now: number): Promise<number> {
    return this.write({ k: 'sweep', now });
  }

  stats(_now: number, topQueues: number): Promise<StoreStats> {
    return this.read(() =>
      this.snapshot(() => {
        const tail = this.tail;
        const total = (r: { id: number; queued: number }): number => r.queued + tail.counts(r.id).queued;
        // The N largest by merged count, then every mailbox whose merged count plus the largest
        // tail count could still beat the N-th total: exact, and a few index entries unless the
        // tail holds a queue larger than the gap.
        const top = this.stmt.largest.all(topQueues);
        const nth = top.length < topQueues ? 0 : Math.min(...top.map(total));
        let maxTail = 0;
        for (const [, c] of tail.mailboxes()) maxTail = Math.max(maxTail, c.queued);
        const candidates = new Map<number, { id: number; did?: string; queued: number }>(top.map((r) => [r.id, r]));
        if (maxTail > 0) {
          // Outside the top N, a merged count is at most the top's smallest (all of them when the
          // top is short), so only a tail count above nth − that can reach past the N-th total;
          // and only a merged count above nth − maxTail. Whichever set is smaller is read: the
          // tail's mailboxes by primary key, or a covering range of the count index.
          const floor = top.length < topQueues ? 0 : Math.min(...top.map((r) => r.queued));
          const fromTail: number[] = [];
          for (const [id, c] of tail.mailboxes()) if (c.queued > nth - floor && !candidates.has(id)) fromTail.push(id);
          const threshold = Math.max(0, nth - maxTail + 1);
          if (fromTail.length <= (this.stmt.countAtLeast.get(threshold)?.n ?? 0)) {
            for (const id of fromTail) {
              const r = this.stmt.byId.get(id);
              if (r && total(r) > nth) candidates.set(id, r);
            }
          } else {
            for (const r of this.stmt.atLeast.iterate(threshold)) if (total(r) > nth) candidates.set(r.id, r);
          }
        }
        const mailboxes = [...candidates.values()]
          .map((r) => ({ r, queueSize: total(r) }))
          .filter((c) => c.queueSize > 0)
          .sort((a, b) => b.queueSize - a.queueSize || a.r.id - b.r.id)
          .slice(0, topQueues)
          .map(({ r, queueSize }) => ({
            did: r.did ?? this.stmt.byId.get(r.id)?.did ?? '',
            queueSize,
            oldestDepositedAt: this.oldestOf(r.id),
          }));
        const totals = this.stmt.totals.get() ?? { receivers: 0, senders: 0 };
        // Receivers with tail rows and no merged ones are not in totals yet.
        let tailOnly = 0;
        if (tail.size > 0) for (const r of this.stmt.nothingMerged.iterate()) if (tail.counts(r.id).queued > 0) tailOnly++;
        return { mailboxes, uniqueSenders: totals.senders, uniqueReceivers: totals.receivers + tailOnly };
      }),
    );
  }

  /** Deposit time of the mailbox's oldest row (expired or not), merged or in the tail. */
  private oldestOf(mailbox: number): number {
    const merged = this.stmt.oldestMerged.get(mailbox)?.seq ?? Infinity;
    const inTail = this.tail.oldestOf(mailbox, 1)[0] ?? Infinity;
    const seq = Math.min(merged, inTail);
    return seq === Infinity ? 0 : (this.stmt.depositedAt.get(seq)?.deposited_at ?? 0);
  }

  /**
   * The writer's state: healthy after a recent commit; otherwise (idle, or after a failed batch)
   * a probe write through the group commit, at most one per HEALTH_FRESH_MS.
   */
  health(): Promise<StoreHealth> {
    if (this.closed) return Promise.resolve({ ok: false, message: 'the store is closed' });
    if (this.refusal) return Promise.resolve({ ok: false, message: this.refusal.message });
    const now = Date.now();
    if (this.writes.lastFailure === undefined && now - this.writes.lastCommitAt < HEALTH_FRESH_MS)
      return Promise.resolve({ ok: true, message: 'committing' });
    if (this.probe && now - this.probe.at < HEALTH_FRESH_MS) return this.probe.result;
    const result = this.write<boolean>({ k: 'probe', now }).then(
      (): StoreHealth => ({ ok: true, message: 'a probe write committed' }),
      (e: unknown): StoreHealth => ({ ok: false, message: `the database cannot commit: ${toError(e).message}` }),
    );
    this.probe = { at: now, result };
    return result;
  }

  claimSignature(sig: string, expiresAt: number): Promise<boolean> {
    return this.write({ k: 'claim', sig, expiresAt });
  }

  openRun(now: number): Promise<number> {
    this.runOpen = true;
    return this.write({ k: 'run_start', now });
  }

  signatureClaimed(sig: string): Promise<boolean> {
    return this.read(() => this.stmt.claimed.get(sig) !== undefined);
  }

  /** Transactions committed so far: with group commit, far fewer than writes. */
  get commitCount(): number {
    return this.writes.commitCount;
  }

  /** Commits whatever is queued, stops the writer and closes both connections. Idempotent. */
  close(): Promise<void> {
    if (this.closing) return this.closing;
    this.closed = true; // no new reads or writes; queued ones still commit
    clearInterval(this.catchUpTimer);
    this.closing = (async () => {
      // Last in the queue: the run is unmarked in the batch that commits its last claims.
      if (this.runOpen) this.writes.writeLast({ k: 'run_end' });
      try {
        await this.writes.drainAndClose();
      } finally {
        this.db.close();
      }
    })();
    return this.closing;
  }

  /** Queues a write for the next group commit; resolves after that transaction committed. */
  private write<T>(op: WriteOp): Promise<T> {
    if (this.closed) return Promise.reject(closedError());
    if (this.refusal) return Promise.reject(this.refusal);
    return this.writes.write<T>(op);
  }

  private read<T>(run: () => T): Promise<T> {
    if (this.closed) return Promise.reject(closedError());
    if (this.refusal) return Promise.reject(this.refusal);
    try {
      return Promise.resolve(run());
    } catch (e) {
      return Promise.reject(toError(e));
    }
  }
}

function fromRow(r: EnvelopeRow, toDid: string): StoredEnvelope {
  return {
    id: r.id,
    toDid,
    fromDid: r.from_did,
    body: unpackBody(r.body),
    size: r.size,
    depositedAt: r.deposited_at,
    expiresAt: r.expires_at,
  };
}
