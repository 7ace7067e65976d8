/**
 * SQLite MailboxStore (better-sqlite3): WAL, `synchronous=FULL`, group commit off the event loop.
 *
 * Durability (PROTOCOL.md §5: 202 "only after the envelope is durable"): every write goes through
 * one queue. The queue is sent as a single batch to a writer thread (sqlite-writer-worker.ts) that
 * owns its own connection and runs the batch as one `BEGIN IMMEDIATE … COMMIT`; a write's promise
 * resolves only after that transaction has committed. One batch is in flight at a time: writes that
 * arrive while it commits (the event loop keeps parsing requests meanwhile) queue here and go
 * together as the next batch, so one fsync covers a whole batch.
 *
 * Reads run on a main-thread connection: in WAL mode it sees every committed transaction.
 * `:memory:` cannot be shared between connections, so there the batch runs inline on the main
 * connection instead (same code, same semantics).
 */
import type Database from 'better-sqlite3';
import { mkdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { DepositLimits, DepositOutcome, MailboxStore, ReceiveResult, StoreHealth, StoreStats, StoredEnvelope } from './store';
import { checkWal } from './sqlite-integrity';
import {
  createWriter,
  DatabaseRefusedError,
  deserializeError,
  NO_STORAGE_LIMITS,
  openSqlite,
  prepareSchema,
  type BatchResult,
  type StorageLimits,
  type WriteOp,
} from './sqlite-writer';
import type { WorkerRole, WriterMessage } from './sqlite-writer-worker';

interface EnvelopeRow {
  id: string;
  from_did: string | null;
  body: string;
  size: number;
  deposited_at: number;
  expires_at: number;
}

interface PendingWrite {
  readonly op: WriteOp;
  readonly resolve: (value: unknown) => void;
  readonly reject: (error: Error) => void;
}

/** Runs batches somewhere and answers them in order. */
interface WriteBackend {
  run(ops: readonly WriteOp[]): Promise<BatchResult>;
  /** Keeps the process alive while a batch is in flight, not while idle. */
  busy(busy: boolean): void;
  close(): Promise<void>;
}

const toError = (e: unknown): Error => (e instanceof Error ? e : new Error(String(e)));

/** A commit this recent answers /health without a probe write; probe answers are kept this long too. */
const HEALTH_FRESH_MS = 1000;

export interface SqliteStoreOptions {
  /** `--max-db-bytes`, `--min-free-disk-bytes`: deposits get `storage_full` before the disk is. */
  readonly storage?: StorageLimits;
  /**
   * Run `PRAGMA quick_check` and the WAL check at open (default true): a damaged database is
   * refused with DatabaseRefusedError.
   */
  readonly integrityCheck?: boolean;
}
const closedError = () => new Error('mailbox store is closed');

export class SqliteMailboxStore implements MailboxStore {
  private readonly db: Database.Database;
  private readonly backend: WriteBackend;
  private pending: PendingWrite[] = [];
  private flushScheduled = false;
  private inFlight = false;
  private idleWaiters: Array<() => void> = [];
  private closed = false;
  /** openRun was called: close() marks the run closed (replay-guard.ts). */
  private runOpen = false;
  private closing: Promise<void> | undefined;
  private commits = 0;
  private lastCommitAt = 0;
  /** The error of the last failed batch, until a batch commits again. */
  private lastFailure: string | undefined;
  private probe: { readonly at: number; readonly result: Promise<StoreHealth> } | undefined;

  private readonly stmt;
  private readonly snapshot: <T>(run: () => T) => T;

  /**
   * Opens (creating parent directories and schema) the database at `path`, or `:memory:`.
   * Throws DatabaseRefusedError for a damaged database (quick_check, WAL frames SQLite would drop)
   * or one with a newer schema.
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
      throw new Error(`cannot open the database ${path}: ${toError(e).message} (the relay needs to read and write the file and create its -wal and -shm beside it)`, { cause: e });
    }
    const db = this.db;
    try {
      if (check && path !== ':memory:') {
        const problems = db.pragma('quick_check', { simple: false }) as { quick_check: string }[];
        if (problems.length !== 1 || problems[0]!.quick_check !== 'ok') {
          throw new DatabaseRefusedError(`${path} fails PRAGMA quick_check: ${problems.slice(0, 5).map((p) => p.quick_check).join('; ')}`);
        }
      }
      prepareSchema(db);
    } catch (e) {
      db.close();
      if (e instanceof DatabaseRefusedError) throw e;
      const code = (e as { code?: unknown }).code;
      if (code === 'SQLITE_CORRUPT' || code === 'SQLITE_NOTADB') throw new DatabaseRefusedError(`${path} is damaged: ${toError(e).message}`);
      throw e;
    }
    // Plans (EXPLAIN QUERY PLAN; test/relay/sqlite.test.ts checks them): mailbox "SEARCH mailboxes
    // USING INDEX sqlite_autoindex_mailboxes_1 (did=?)"; receive and oldest "SEARCH
    // envelopes USING INDEX envelopes_by_mailbox (mailbox=?)" (in rowid = deposit order, no sort);
    // expiredIn "SEARCH envelopes USING INDEX envelopes_by_expiry (expires_at<?)": only the
    // unswept expired rows, few between sweeps; largest "SCAN mailboxes USING INDEX
    // mailboxes_by_queued" read backwards for N rows; totals one row by primary key.
    this.stmt = {
      mailbox: db.prepare<[string], { id: number; queued: number }>('SELECT id, queued FROM mailboxes WHERE did = ?'),
      receive: db.prepare<[number, number, number], EnvelopeRow>(
        'SELECT id, from_did, body, size, deposited_at, expires_at FROM envelopes INDEXED BY envelopes_by_mailbox ' +
          'WHERE mailbox = ? AND expires_at > ? ORDER BY seq LIMIT ?',
      ),
      expiredIn: db.prepare<[number, number], { n: number }>(
        'SELECT count(*) AS n FROM envelopes INDEXED BY envelopes_by_expiry WHERE expires_at <= ? AND mailbox = ?',
      ),
      // Counters kept by triggers (sqlite-writer.ts): a scrape reads N index entries, never the table.
      largest: db.prepare<[number], { id: number; did: string; queued: number }>(
        'SELECT id, did, queued FROM mailboxes INDEXED BY mailboxes_by_queued WHERE queued > 0 ORDER BY queued DESC LIMIT ?',
      ),
      oldest: db.prepare<[number], { deposited_at: number }>(
        'SELECT deposited_at FROM envelopes INDEXED BY envelopes_by_mailbox WHERE mailbox = ? ORDER BY seq LIMIT 1',
      ),
      totals: db.prepare<[], { receivers: number; senders: number }>('SELECT receivers, senders FROM totals WHERE k = 0'),
      // "SEARCH used_signatures USING PRIMARY KEY (sig=?)"
      claimed: db.prepare<[string], { n: number }>('SELECT 1 AS n FROM used_signatures WHERE sig = ?'),
    };
    // Each read sees one snapshot (the writer thread commits in between otherwise).
    const inSnapshot = db.transaction((run: () => unknown) => run());
    this.snapshot = <T>(run: () => T): T => inSnapshot.deferred(run) as T;
    const storage = options.storage ?? NO_STORAGE_LIMITS;
    this.backend = path === ':memory:' ? inlineBackend(db, storage) : workerBackend(path, storage);
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
        const envelopes = this.stmt.receive.all(mailbox.id, now, limit).map((r) => fromRow(r, did));
        // queued counts expired envelopes until the sweep deletes them: subtract those.
        const live = mailbox.queued - (this.stmt.expiredIn.get(now, mailbox.id)?.n ?? 0);
        return { envelopes, remaining: Math.max(0, live - envelopes.length) };
      }),
    );
  }

  ack(did: string, ids: readonly string[]): Promise<number> {
    if (ids.length === 0) return Promise.resolve(0);
    return this.write({ k: 'ack', did, ids: [...ids] });
  }

  sweepExpired(now: number): Promise<number> {
    return this.write({ k: 'sweep', now });
  }

  stats(_now: number, topQueues: number): Promise<StoreStats> {
    return this.read(() =>
      this.snapshot(() => {
        const mailboxes = this.stmt.largest.all(topQueues).map((r) => ({
          did: r.did,
          queueSize: r.queued,
          oldestDepositedAt: this.stmt.oldest.get(r.id)?.deposited_at ?? 0,
        }));
        const totals = this.stmt.totals.get() ?? { receivers: 0, senders: 0 };
        return { mailboxes, uniqueSenders: totals.senders, uniqueReceivers: totals.receivers };
      }),
    );
  }

  /**
   * The writer's state: healthy after a recent commit; otherwise (idle, or after a failed batch)
   * a probe write through the group commit, at most one per HEALTH_FRESH_MS.
   */
  health(): Promise<StoreHealth> {
    if (this.closed) return Promise.resolve({ ok: false, message: 'the store is closed' });
    const now = Date.now();
    if (this.lastFailure === undefined && now - this.lastCommitAt < HEALTH_FRESH_MS) return Promise.resolve({ ok: true, message: 'committing' });
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
    return this.commits;
  }

  /** Commits whatever is queued, stops the writer and closes both connections. Idempotent. */
  close(): Promise<void> {
    if (this.closing) return this.closing;
    this.closed = true; // no new reads or writes; queued ones still commit
    this.closing = (async () => {
      // Last in the queue: the run is unmarked in the batch that commits its last claims.
      if (this.runOpen) this.pending.push({ op: { k: 'run_end' }, resolve: () => undefined, reject: () => undefined });
      this.flush();
      if (this.inFlight || this.pending.length > 0) await new Promise<void>((resolve) => this.idleWaiters.push(resolve));
      try {
        await this.backend.close();
      } finally {
        this.db.close();
      }
    })();
    return this.closing;
  }

  /** Queues a write for the next group commit; resolves after that transaction committed. */
  private write<T>(op: WriteOp): Promise<T> {
    if (this.closed) return Promise.reject(closedError());
    return new Promise<T>((resolve, reject) => {
      this.pending.push({ op, resolve: resolve as (value: unknown) => void, reject });
      if (!this.inFlight && !this.flushScheduled) {
        this.flushScheduled = true;
        // setImmediate runs after this turn's I/O callbacks: every request parsed in this turn joins the batch.
        setImmediate(() => this.flush());
      }
    });
  }

  private read<T>(run: () => T): Promise<T> {
    if (this.closed) return Promise.reject(closedError());
    try {
      return Promise.resolve(run());
    } catch (e) {
      return Promise.reject(toError(e));
    }
  }

  /** Sends every queued write as one batch, unless one is already in flight (it flushes again when done). */
  private flush(): void {
    this.flushScheduled = false;
    if (this.inFlight) return;
    const batch = this.pending;
    if (batch.length === 0) {
      this.settleIdle();
      return;
    }
    this.pending = [];
    this.inFlight = true;
    this.backend.busy(true);
    this.backend.run(batch.map((w) => w.op)).then(
      (result) => this.settle(batch, result),
      (e: unknown) => this.settle(batch, { ok: false, error: { message: toError(e).message } }),
    );
  }

  private settle(batch: readonly PendingWrite[], result: BatchResult): void {
    this.inFlight = false;
    if (result.ok) {
      this.commits++;
      // A statement that failed inside a committed batch (e.g. a read-only database refuses every
      // write but commits the empty transaction) means the writer cannot commit either.
      const failed = result.results.find((r) => !r.ok);
      if (failed && !failed.ok) {
        this.lastFailure = failed.error.message;
      } else {
        this.lastCommitAt = Date.now();
        this.lastFailure = undefined;
      }
      batch.forEach((w, i) => {
        const o = result.results[i]!;
        if (o.ok) w.resolve(o.value);
        else w.reject(deserializeError(o.error));
      });
    } else {
      this.lastFailure = result.error.message;
      for (const w of batch) w.reject(deserializeError(result.error));
    }
    // Writes that queued during this commit have waited long enough: send them now.
    if (this.pending.length > 0) this.flush();
    else this.settleIdle();
  }

  private settleIdle(): void {
    this.backend.busy(false);
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const w of waiters) w();
  }
}

function inlineBackend(db: Database.Database, storage: StorageLimits): WriteBackend {
  const writer = createWriter(db, ':memory:', storage);
  return {
    run: (ops) => Promise.resolve(writer.runBatch(ops)),
    busy: () => undefined,
    close: () => Promise.resolve(),
  };
}

/**
 * The writer thread. Compiled (dist/node, scripts/build-node.js) the worker is a JavaScript file
 * beside this chunk. From source, worker threads do not inherit the tsx loader the relay runs
 * under, so the thread registers tsx itself before importing the (TypeScript) worker module.
 */
function startWorker(path: string, role: WorkerRole, storage: StorageLimits): Worker {
  if (import.meta.url.endsWith('.js')) {
    const compiled = new Worker(new URL('./sqlite-writer-worker.js', import.meta.url), { workerData: { path, role, storage } });
    compiled.unref();
    return compiled;
  }
  const tsxApi = pathToFileURL(createRequire(import.meta.url).resolve('tsx/esm/api').replace(/\.cjs$/, '.mjs')).href;
  const entry = new URL('./sqlite-writer-worker.ts', import.meta.url).href;
  const boot = `import(${JSON.stringify(tsxApi)}).then((m) => { m.register(); return import(${JSON.stringify(entry)}); });`;
  const worker = new Worker(boot, { eval: true, workerData: { path, role, storage } });
  worker.unref();
  return worker;
}

/**
 * Two threads: the writer runs the batches; the checkpointer moves the WAL into the database file
 * beside it (measured: checkpoints inside the writer's commits cost ~30% of deposit throughput and
 * pushed p99 past 25 ms). Should the checkpointer die, the writer checkpoints by itself again.
 */
function workerBackend(path: string, storage: StorageLimits): WriteBackend {
  const worker = startWorker(path, 'writer', storage);
  const checkpointer = startWorker(path, 'checkpointer', storage);
  let closing = false;
  const checkpointerExited = new Promise<void>((resolve) => checkpointer.once('exit', () => resolve()));
  const checkpointerGone = (why: string) => {
    if (closing) return;
    console.warn(`spl-relay: the WAL checkpointer stopped (${why}); the writer checkpoints by itself`);
    if (!failure) worker.postMessage({ type: 'autocheckpoint' } satisfies WriterMessage);
  };
  checkpointer.on('error', (e) => checkpointerGone(e.message));
  checkpointer.on('exit', (code) => checkpointerGone(`exit ${code}`));

  let waiting: { resolve: (r: BatchResult) => void; reject: (e: Error) => void } | undefined;
  let failure: Error | undefined;
  const exited = new Promise<void>((resolve) => worker.once('exit', () => resolve()));
  const fail = (e: Error) => {
    failure ??= e;
    waiting?.reject(e);
    waiting = undefined;
  };
  worker.on('message', (r: BatchResult) => {
    const w = waiting;
    waiting = undefined;
    w?.resolve(r);
  });
  worker.on('error', (e) => fail(new Error(`sqlite writer failed: ${e.message}`)));
  worker.on('exit', (code) => fail(new Error(`sqlite writer exited (${code})`)));
  const send = (m: WriterMessage) => worker.postMessage(m);

  return {
    run(ops) {
      if (failure) return Promise.reject(failure);
      return new Promise<BatchResult>((resolve, reject) => {
        waiting = { resolve, reject };
        send({ type: 'batch', ops });
      });
    },
    busy(busy) {
      if (busy) worker.ref();
      else worker.unref();
    },
    async close() {
      closing = true;
      worker.ref();
      if (!failure) send({ type: 'close' });
      checkpointer.postMessage({ type: 'close' } satisfies WriterMessage);
      await Promise.all([exited, checkpointerExited]);
    },
  };
}

function fromRow(r: EnvelopeRow, toDid: string): StoredEnvelope {
  return {
    id: r.id,
    toDid,
    fromDid: r.from_did,
    body: r.body,
    size: r.size,
    depositedAt: r.deposited_at,
    expiresAt: r.expires_at,
  };
}
