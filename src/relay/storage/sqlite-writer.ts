/**
 * The write side of SqliteMailboxStore: runs one batch of write ops as a single
 * `BEGIN IMMEDIATE … COMMIT` on a connection it owns. Used inside the writer worker
 * (sqlite-writer-worker.ts) for database files, and inline on the main thread for `:memory:`
 * (an in-memory database cannot be shared between connections).
 *
 * Every limit (cap, unsolicited quota, deposit tokens, storage) is checked inside that transaction
 * against tables, never a per-process cache: `BEGIN IMMEDIATE` serialises writers across
 * processes, so the limits hold for any number of relays sharing one file (PROTOCOL.md §5).
 *
 * Ops and results are plain objects, so they cross `postMessage` unchanged.
 */
import { statfsSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import type Database from 'better-sqlite3';
import { serializeError as serialize, type BatchResult, type OpResult } from './group-commit';
import { packBody } from './sqlite-body';
import type { DepositLimits, DepositOutcome } from './store';

/** Storage limits (PROTOCOL.md §5 "Storage pressure"); 0 = no limit. */
export interface StorageLimits {
  /** Largest database size, its write-ahead log included, bytes. */
  readonly maxDbBytes: number;
  /** Free disk the relay leaves for receives, acks and the sweep, bytes. */
  readonly minFreeDiskBytes: number;
}

export const NO_STORAGE_LIMITS: StorageLimits = { maxDbBytes: 0, minFreeDiskBytes: 0 };

export type WriteOp =
  | {
      readonly k: 'deposit';
      readonly toDid: string;
      readonly id: string;
      readonly fromDid: string | null;
      readonly body: string;
      readonly size: number;
      readonly depositedAt: number;
      readonly expiresAt: number;
      readonly tokenHash: string | null;
      readonly limits: DepositLimits;
    }
  | { readonly k: 'tokens'; readonly did: string; readonly hashes: readonly string[] }
  | { readonly k: 'ack'; readonly did: string; readonly ids: readonly string[] }
  | { readonly k: 'sweep'; readonly now: number }
  | { readonly k: 'claim'; readonly sig: string; readonly expiresAt: number }
  /** A real write that commits nothing of substance: tells /health whether the writer can commit. */
  | { readonly k: 'probe'; readonly now: number }
  /** A relay run starts (replay-guard.ts): resolves its replay floor. */
  | { readonly k: 'run_start'; readonly now: number }
  /** A relay run closes cleanly, after every claim it made committed. */
  | { readonly k: 'run_end' };

export interface Writer {
  runBatch(ops: readonly WriteOp[]): BatchResult;
}

/**
 * Bytes a stored envelope is reckoned to add before its batch commits: the row, its index entries
 * and WAL frame overhead. Only decides how close to a storage limit one batch may go.
 */
const reckonedBytes = (size: number): number => 2 * size + 512;

/** Write statements on `db` (schema already prepared); the caller owns (and closes) `db`. */
export function createWriter(db: Database.Database, path: string, storage: StorageLimits = NO_STORAGE_LIMITS): Writer {
  // Plans (EXPLAIN QUERY PLAN): mailbox/mailboxFor "SEARCH mailboxes USING COVERING INDEX
  // sqlite_autoindex_mailboxes_1 (did=?)"; existing/deleteOne/ack "SEARCH envelopes USING INDEX
  // envelopes_by_id (mailbox=? AND id=?)"; counts "SEARCH mailboxes USING INTEGER PRIMARY KEY";
  // sweepMailbox and sweepEnvelopes "SEARCH envelopes USING INDEX envelopes_by_expiry (expires_at<?)"
  // (only unswept expired rows, few between sweeps); dropEmpty "SEARCH mailboxes USING COVERING
  // INDEX mailboxes_by_queued (queued<?)".
  const stmt = {
    mailbox: db.prepare<[string], { id: number }>('SELECT id FROM mailboxes WHERE did = ?'),
    newMailbox: db.prepare<[string]>('INSERT INTO mailboxes (did) VALUES (?)'),
    insert: db.prepare<[number, string, string | null, string | Buffer, number, number, number, number]>(
      'INSERT INTO envelopes (mailbox, id, from_did, body, size, deposited_at, expires_at, unsolicited) VALUES (?, ?, ?, ?, ?, ?, ?, ?)',
    ),
    existing: db.prepare<[number, string], { expires_at: number }>('SELECT expires_at FROM envelopes WHERE mailbox = ? AND id = ?'),
    deleteOne: db.prepare<[number, string]>('DELETE FROM envelopes WHERE mailbox = ? AND id = ?'),
    counts: db.prepare<[number], { queued: number; unsolicited: number; unsolicited_bytes: number }>(
      'SELECT queued, unsolicited, unsolicited_bytes FROM mailboxes WHERE id = ?',
    ),
    hasTokens: db.prepare<[string], { n: number }>('SELECT 1 AS n FROM deposit_tokens WHERE did = ? LIMIT 1'),
    tokenKnown: db.prepare<[string, string], { n: number }>('SELECT 1 AS n FROM deposit_tokens WHERE did = ? AND hash = ?'),
    clearTokens: db.prepare<[string]>('DELETE FROM deposit_tokens WHERE did = ?'),
    addToken: db.prepare<[string, string]>('INSERT OR IGNORE INTO deposit_tokens (did, hash) VALUES (?, ?)'),
    sweepMailbox: db.prepare<[number, number]>(
      'DELETE FROM envelopes INDEXED BY envelopes_by_expiry WHERE expires_at <= ? AND mailbox = ?',
    ),
    ack: db.prepare<[number, string]>('DELETE FROM envelopes WHERE mailbox = ? AND id IN (SELECT value FROM json_each(?))'),
    sweepEnvelopes: db.prepare<[number]>('DELETE FROM envelopes WHERE expires_at <= ?'),
    dropEmpty: db.prepare('DELETE FROM mailboxes WHERE queued <= 0'),
    sweepSignatures: db.prepare<[number]>('DELETE FROM used_signatures WHERE expires_at <= ?'),
    claim: db.prepare<[string, number]>('INSERT OR IGNORE INTO used_signatures (sig, expires_at) VALUES (?, ?)'),
    probe: db.prepare<[number]>("INSERT INTO meta (k, v) VALUES ('writer_probe', ?) ON CONFLICT (k) DO UPDATE SET v = excluded.v"),
    getMeta: db.prepare<[string], { v: number }>('SELECT v FROM meta WHERE k = ?'),
    setMeta: db.prepare<[string, number]>('INSERT INTO meta (k, v) VALUES (?, ?) ON CONFLICT (k) DO UPDATE SET v = excluded.v'),
  };
  const meta = (k: string, otherwise: number): number => stmt.getMeta.get(k)?.v ?? otherwise;
  const mailboxFor = (did: string): number => stmt.mailbox.get(did)?.id ?? Number(stmt.newMailbox.run(did).lastInsertRowid);
  const pageSize = db.pragma('page_size', { simple: true }) as number;
  const limited = storage.maxDbBytes > 0 || storage.minFreeDiskBytes > 0;
  const onDisk = path !== ':memory:' && path !== '';

  /** Bytes the database holds (pages in use, WAL file included) and free disk beside it. */
  const measure = (): { used: number; free: number } => {
    const pages = (db.pragma('page_count', { simple: true }) as number) - (db.pragma('freelist_count', { simple: true }) as number);
    let wal = 0;
    let free = Infinity;
    if (onDisk) {
      try {
        wal = statSync(`${path}-wal`).size;
      } catch {
        wal = 0; // no WAL file (just truncated)
      }
      if (storage.minFreeDiskBytes > 0) {
        const s = statfsSync(dirname(path));
        free = s.bavail * s.bsize;
      }
    }
    return { used: pages * pageSize + wal, free };
  };
  /** Per batch: what was measured at its start plus what its deposits are reckoned to add. */
  let batchStorage: { used: number; free: number } | undefined;
  const storageFull = (size: number): boolean => {
    if (!limited) return false;
    batchStorage ??= measure();
    const adds = reckonedBytes(size);
    if (storage.maxDbBytes > 0 && batchStorage.used + adds > storage.maxDbBytes) return true;
    if (storage.minFreeDiskBytes > 0 && batchStorage.free - adds < storage.minFreeDiskBytes) return true;
    batchStorage.used += adds;
    batchStorage.free -= adds;
    return false;
  };

  const deposit = (op: Extract<WriteOp, { k: 'deposit' }>): DepositOutcome => {
    const mailbox = mailboxFor(op.toDid);
    const existing = stmt.existing.get(mailbox, op.id);
    if (existing && existing.expires_at > op.depositedAt) return { kind: 'duplicate', expiresAt: existing.expires_at };
    if (existing) stmt.deleteOne.run(mailbox, op.id); // expired but not yet swept: the new deposit replaces it
    const unsolicited =
      stmt.hasTokens.get(op.toDid) !== undefined && (op.tokenHash === null || stmt.tokenKnown.get(op.toDid, op.tokenHash) === undefined);
    const over = (): boolean => {
      const c = stmt.counts.get(mailbox);
      if (!c) return false;
      if (unsolicited) return c.unsolicited >= op.limits.unsolicitedEnvelopes || c.unsolicited_bytes + op.size > op.limits.unsolicitedBytes;
      return c.queued - c.unsolicited >= op.limits.cap;
    };
    // Over by rows: delete this mailbox's expired rows (an index range, cheap when there are none)
    // and look again; expired envelopes count for nothing.
    if (over() && (stmt.sweepMailbox.run(op.depositedAt, mailbox).changes === 0 || over())) {
      return { kind: unsolicited ? 'unsolicited_quota' : 'queue_full' };
    }
    if (storageFull(op.size)) return { kind: 'storage_full' };
    stmt.insert.run(mailbox, op.id, op.fromDid, packBody(op.body), op.size, op.depositedAt, op.expiresAt, unsolicited ? 1 : 0);
    return { kind: 'stored', expiresAt: op.expiresAt };
  };

  const runOp = (op: WriteOp): unknown => {
    switch (op.k) {
      case 'deposit':
        return deposit(op);
      case 'tokens': {
        stmt.clearTokens.run(op.did);
        for (const h of op.hashes) stmt.addToken.run(op.did, h);
        return new Set(op.hashes).size;
      }
      case 'ack': {
        const mailbox = stmt.mailbox.get(op.did);
        return mailbox ? stmt.ack.run(mailbox.id, JSON.stringify(op.ids)).changes : 0;
      }
      case 'sweep': {
        const swept = stmt.sweepEnvelopes.run(op.now).changes;
        stmt.dropEmpty.run();
        stmt.sweepSignatures.run(op.now);
        return swept;
      }
      case 'claim':
        return stmt.claim.run(op.sig, op.expiresAt).changes === 1;
      case 'probe':
        stmt.probe.run(op.now);
        return true;
      case 'run_start': {
        // Another run still marked open crashed (or shares the file): its uncommitted claims
        // had ts below now, so the floor rises to now (replay-guard.ts).
        const open = meta('runs_open', 0);
        const floor = open > 0 ? Math.max(meta('replay_floor', 0), op.now) : meta('replay_floor', 0);
        stmt.setMeta.run('replay_floor', floor);
        stmt.setMeta.run('runs_open', open + 1);
        return floor;
      }
      case 'run_end':
        stmt.setMeta.run('runs_open', Math.max(0, meta('runs_open', 0) - 1));
        return true;
    }
  };

  // Prepared once: BEGIN IMMEDIATE, every op, COMMIT.
  const transaction = db.transaction((ops: readonly WriteOp[]): OpResult[] =>
    ops.map((op): OpResult => {
      // A failing statement rolls back only itself in SQLite; the others in the batch still commit.
      try {
        return { ok: true, value: runOp(op) };
      } catch (e) {
        return { ok: false, error: serialize(e) };
      }
    }),
  );

  return {
    runBatch(ops) {
      batchStorage = undefined;
      try {
        return { ok: true, results: transaction.immediate(ops) };
      } catch (e) {
        // BEGIN or COMMIT failed (disk full, I/O error, busy): nothing in the batch is durable.
        return { ok: false, error: serialize(e) };
      }
    },
  };
}
