/**
 * PeerStore on SQLite (better-sqlite3), for the headless peer. Node only: never import this from
 * src/store/index.ts or anything a browser bundle pulls in.
 *
 * WAL with `synchronous = FULL`: a resolved write is on disk. better-sqlite3 is synchronous, so
 * each write method is one `db.transaction(...)` that runs to completion before any other call
 * can interleave; that is what makes `redeemInvite` and concurrent ingests atomic.
 */
import Database from 'better-sqlite3';
import { chmodSync, closeSync, existsSync, mkdirSync, openSync } from 'node:fs';
import { dirname } from 'node:path';
import type { SignedRecord } from '../core';
import {
  COUNTER_NAMES,
  parseDropCount,
  type ClockKey,
  type DropCount,
  type ArrivalPath,
  type CounterDelta,
  type CounterName,
  type Counters,
  type DeliveryPath,
  type Identity,
  type IngestResult,
  type InviteRecord,
  type OutboxEntry,
  type PeerStore,
  type ReceiveState,
  type StoredRecord,
} from './types';

/**
 * Schema migrations; MIGRATIONS[n] takes `user_version` n to n + 1. Append, never edit: a
 * database already at version n never runs entries before n again.
 */
const MIGRATIONS: readonly string[] = [
  `
  CREATE TABLE identity (
    id         INTEGER PRIMARY KEY CHECK (id = 1),  -- one identity per device
    did        TEXT    NOT NULL,
    name       TEXT    NOT NULL,
    secret_key BLOB    NOT NULL,
    created_at INTEGER NOT NULL
  );
  CREATE TABLE records (
    id          TEXT    PRIMARY KEY,
    signed      TEXT    NOT NULL,  -- the SignedRecord as JSON
    thread      TEXT    NOT NULL,
    actor       TEXT    NOT NULL,
    clock       INTEGER NOT NULL,
    received_at INTEGER NOT NULL,
    path        TEXT    NOT NULL,
    via         TEXT
  );
  -- recordsByThread reads this index in order; maxClock reads the last entry of a range.
  CREATE INDEX records_by_thread ON records (thread, clock, actor, id);
  CREATE INDEX records_by_actor ON records (actor, thread, clock);
  -- Covers threads(): count and max(received_at) per thread without touching the table.
  CREATE INDEX records_by_thread_arrival ON records (thread, received_at);
  CREATE TABLE outbox (
    id              TEXT    PRIMARY KEY,
    to_did          TEXT    NOT NULL,
    record_ids      TEXT    NOT NULL,  -- JSON array
    records         TEXT    NOT NULL,  -- JSON array of SignedRecord
    envelope        TEXT    NOT NULL,
    created_at      INTEGER NOT NULL,
    expires_at      INTEGER NOT NULL,
    path            TEXT    NOT NULL,
    attempts        INTEGER NOT NULL,
    next_attempt_at INTEGER NOT NULL,
    last_error      TEXT,
    delivered_to    TEXT,
    delivered_at    INTEGER,
    rejected_reason TEXT
  );
  CREATE INDEX outbox_due ON outbox (path, next_attempt_at);
  CREATE INDEX outbox_by_expiry ON outbox (expires_at);
  CREATE TABLE receive_state (
    relay_url       TEXT    PRIMARY KEY,
    last_receive_at INTEGER,
    last_success_at INTEGER,
    backlog         INTEGER NOT NULL,
    last_error      TEXT,
    last_latency_ms INTEGER
  );
  CREATE TABLE counters (
    name  TEXT    PRIMARY KEY,
    value INTEGER NOT NULL
  ) WITHOUT ROWID;
  CREATE TABLE invites (
    nonce      TEXT    PRIMARY KEY,
    exp        INTEGER NOT NULL,
    threads    TEXT    NOT NULL,  -- JSON array
    created_at INTEGER NOT NULL,
    used_by    TEXT
  );
  `,
];

export const SQLITE_SCHEMA_VERSION = MIGRATIONS.length;

interface IdentityRow {
  did: string;
  name: string;
  secret_key: Buffer;
  created_at: number;
}
interface RecordRow {
  id: string;
  signed: string;
  thread: string;
  actor: string;
  clock: number;
  received_at: number;
  path: string;
  via: string | null;
}
interface OutboxRow {
  id: string;
  to_did: string;
  record_ids: string;
  records: string;
  envelope: string;
  created_at: number;
  expires_at: number;
  path: string;
  attempts: number;
  next_attempt_at: number;
  last_error: string | null;
  delivered_to: string | null;
  delivered_at: number | null;
  rejected_reason: string | null;
}
interface ReceiveStateRow {
  relay_url: string;
  last_receive_at: number | null;
  last_success_at: number | null;
  backlog: number;
  last_error: string | null;
  last_latency_ms: number | null;
}
interface InviteRow {
  nonce: string;
  exp: number;
  threads: string;
  created_at: number;
  used_by: string | null;
}

// Rows come only from this module's own writes, so their JSON columns are trusted.
const parseJson = <T>(text: string): T => JSON.parse(text) as T;

/** Spreads `{ [key]: value }` only when the column is not NULL, so optional fields stay absent. */
const opt = <K extends string, V>(key: K, value: V | null): { [P in K]?: V } =>
  (value === null ? {} : { [key]: value }) as { [P in K]?: V };

const toRecord = (r: RecordRow): StoredRecord => ({
  id: r.id,
  signed: parseJson<SignedRecord>(r.signed),
  thread: r.thread,
  actor: r.actor,
  clock: r.clock,
  receivedAt: r.received_at,
  path: r.path as ArrivalPath,
  ...opt('via', r.via),
});

const toOutbox = (r: OutboxRow): OutboxEntry => ({
  id: r.id,
  toDid: r.to_did,
  recordIds: parseJson<string[]>(r.record_ids),
  records: parseJson<SignedRecord[]>(r.records),
  envelope: r.envelope,
  createdAt: r.created_at,
  expiresAt: r.expires_at,
  path: r.path as DeliveryPath,
  attempts: r.attempts,
  nextAttemptAt: r.next_attempt_at,
  ...opt('lastError', r.last_error),
  ...opt('deliveredTo', r.delivered_to),
  ...opt('deliveredAt', r.delivered_at),
  ...opt('rejectedReason', r.rejected_reason),
});

const toReceiveState = (r: ReceiveStateRow): ReceiveState => ({
  relayUrl: r.relay_url,
  ...opt('lastReceiveAt', r.last_receive_at),
  ...opt('lastSuccessAt', r.last_success_at),
  backlog: r.backlog,
  ...opt('lastError', r.last_error),
  ...opt('lastLatencyMs', r.last_latency_ms),
});

const toInvite = (r: InviteRow): InviteRecord => ({
  nonce: r.nonce,
  exp: r.exp,
  threads: parseJson<string[]>(r.threads),
  createdAt: r.created_at,
  ...opt('usedBy', r.used_by),
});

/** better-sqlite3 is synchronous: run `fn` now and hand its result or error over as a promise. */
function settle<T>(fn: () => T): Promise<T> {
  try {
    return Promise.resolve(fn());
  } catch (e) {
    return Promise.reject(e instanceof Error ? e : new Error(String(e)));
  }
}

/** Brings the schema to SQLITE_SCHEMA_VERSION, one transaction per migration step. */
function migrate(db: Database.Database): void {
  const current = db.pragma('user_version', { simple: true }) as number;
  if (current > MIGRATIONS.length) {
    throw new Error(`peer database schema version ${current} is newer than this program understands (${MIGRATIONS.length})`);
  }
  for (let version = current; version < MIGRATIONS.length; version++) {
    db.transaction(() => {
      db.exec(MIGRATIONS[version]!);
      db.pragma(`user_version = ${version + 1}`);
    })();
  }
}

function prepareStatements(db: Database.Database) {
  return {
    getIdentity: db.prepare<[], IdentityRow>('SELECT did, name, secret_key, created_at FROM identity WHERE id = 1'),
    insertIdentity: db.prepare<[string, string, Uint8Array, number]>(
      'INSERT INTO identity (id, did, name, secret_key, created_at) VALUES (1, ?, ?, ?, ?)',
    ),
    insertRecord: db.prepare<[string, string, string, string, number, number, string, string | null]>(
      `INSERT INTO records (id, signed, thread, actor, clock, received_at, path, via) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (id) DO NOTHING`,
    ),
    getRecord: db.prepare<[string], RecordRow>('SELECT * FROM records WHERE id = ?'),
    hasRecord: db.prepare<[string], { one: number }>('SELECT 1 AS one FROM records WHERE id = ?'),
    recordsByThread: db.prepare<[string], RecordRow>('SELECT * FROM records WHERE thread = ? ORDER BY clock, actor, id'),
    maxClock: db.prepare<[string, string], { clock: number | null }>('SELECT max(clock) AS clock FROM records WHERE actor = ? AND thread = ?'),
    threads: db.prepare<[], { thread: string; count: number; lastReceivedAt: number }>(
      'SELECT thread, count(*) AS count, max(received_at) AS lastReceivedAt FROM records GROUP BY thread ORDER BY thread',
    ),
    countRecords: db.prepare<[], { n: number }>('SELECT count(*) AS n FROM records'),
    idAtClock: db.prepare<[string, string, number], { id: string }>('SELECT id FROM records WHERE actor = ? AND thread = ? AND clock = ? ORDER BY id LIMIT 1'),
    dropCounts: db.prepare<[], { name: string; value: number }>("SELECT name, value FROM counters WHERE name >= 'drop:' AND name < 'drop;' ORDER BY value DESC"),
    putOutbox: db.prepare<
      [string, string, string, string, string, number, number, string, number, number, string | null, string | null, number | null, string | null]
    >(
      `INSERT OR REPLACE INTO outbox (id, to_did, record_ids, records, envelope, created_at, expires_at, path, attempts,
         next_attempt_at, last_error, delivered_to, delivered_at, rejected_reason)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    ),
    getOutbox: db.prepare<[string], OutboxRow>('SELECT * FROM outbox WHERE id = ?'),
    listOutbox: db.prepare<[], OutboxRow>('SELECT * FROM outbox ORDER BY created_at, id'),
    dueOutbox: db.prepare<[number], OutboxRow>(
      "SELECT * FROM outbox WHERE path = 'pending' AND next_attempt_at <= ? ORDER BY created_at, id",
    ),
    pruneOutbox: db.prepare<[number]>('DELETE FROM outbox WHERE expires_at <= ?'),
    getReceiveState: db.prepare<[string], ReceiveStateRow>('SELECT * FROM receive_state WHERE relay_url = ?'),
    putReceiveState: db.prepare<[string, number | null, number | null, number, string | null, number | null]>(
      `INSERT OR REPLACE INTO receive_state (relay_url, last_receive_at, last_success_at, backlog, last_error, last_latency_ms)
       VALUES (?, ?, ?, ?, ?, ?)`,
    ),
    listReceiveStates: db.prepare<[], ReceiveStateRow>('SELECT * FROM receive_state ORDER BY relay_url'),
    getCounters: db.prepare<[], { name: string; value: number }>('SELECT name, value FROM counters'),
    bumpCounter: db.prepare<[string, number]>(
      'INSERT INTO counters (name, value) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET value = value + excluded.value',
    ),
    putInvite: db.prepare<[string, number, string, number, string | null]>(
      'INSERT OR REPLACE INTO invites (nonce, exp, threads, created_at, used_by) VALUES (?, ?, ?, ?, ?)',
    ),
    getInvite: db.prepare<[string], InviteRow>('SELECT * FROM invites WHERE nonce = ?'),
    // Valid through `exp` inclusive, as parseInvite treats it (expired only when exp < now).
    redeemInvite: db.prepare<[string, string, number]>('UPDATE invites SET used_by = ? WHERE nonce = ? AND used_by IS NULL AND exp >= ?'),
  };
}

export class SqlitePeerStore implements PeerStore {
  private readonly stmt: ReturnType<typeof prepareStatements>;
  // Write transactions run as BEGIN IMMEDIATE (`.immediate`): the daemon and a one-shot `spl`
  // command share the file, and a deferred transaction upgrading to a write can fail with BUSY.
  private readonly ingestTx: Database.Transaction<(records: readonly StoredRecord[], counters: CounterDelta, outbox: readonly OutboxEntry[]) => IngestResult>;
  private readonly appendOwnTx: Database.Transaction<(record: StoredRecord, outbox: readonly OutboxEntry[]) => boolean>;
  private readonly bumpTx: Database.Transaction<(delta: CounterDelta) => void>;
  private readonly putOutboxTx: Database.Transaction<(entries: readonly OutboxEntry[]) => void>;

  constructor(private readonly db: Database.Database) {
    const stmt = (this.stmt = prepareStatements(db));
    const bump = (delta: CounterDelta) => {
      for (const [name, by] of Object.entries(delta) as [CounterName, number | undefined][]) {
        if (by) stmt.bumpCounter.run(name, by);
      }
    };
    this.bumpTx = db.transaction(bump);
    this.ingestTx = db.transaction((records: readonly StoredRecord[], counters: CounterDelta, outbox: readonly OutboxEntry[]): IngestResult => {
      const inserted: string[] = [];
      const duplicates: string[] = [];
      for (const r of records) {
        // ON CONFLICT DO NOTHING: zero changes means the ID was already there (or earlier in this batch).
        const { changes } = stmt.insertRecord.run(r.id, JSON.stringify(r.signed), r.thread, r.actor, r.clock, r.receivedAt, r.path, r.via ?? null);
        (changes ? inserted : duplicates).push(r.id);
      }
      bump({ ...counters, records_ingested: (counters.records_ingested ?? 0) + inserted.length, records_duplicate: (counters.records_duplicate ?? 0) + duplicates.length });
      if (outbox.length) this.putOutboxTx(outbox); // nested: a savepoint inside this transaction
      return { inserted, duplicates };
    });
    // The clock check and the insert in one IMMEDIATE transaction: no other connection can
    // write in between.
    this.appendOwnTx = db.transaction((record: StoredRecord, outbox: readonly OutboxEntry[]): boolean => {
      const newest = stmt.maxClock.get(record.actor, record.thread)?.clock ?? -1;
      if (record.clock <= newest) return false;
      return this.ingestTx([record], {}, outbox).inserted.length === 1; // nested: a savepoint
    });
    this.putOutboxTx = db.transaction((entries: readonly OutboxEntry[]) => {
      for (const e of entries) {
        stmt.putOutbox.run(
          e.id,
          e.toDid,
          JSON.stringify(e.recordIds),
          JSON.stringify(e.records),
          e.envelope,
          e.createdAt,
          e.expiresAt,
          e.path,
          e.attempts,
          e.nextAttemptAt,
          e.lastError ?? null,
          e.deliveredTo ?? null,
          e.deliveredAt ?? null,
          e.rejectedReason ?? null,
        );
      }
    });
  }

  appendOwn(record: StoredRecord, outbox: readonly OutboxEntry[] = []): Promise<boolean> {
    return settle(() => this.appendOwnTx.immediate(record, outbox));
  }

  getIdentity(): Promise<Identity | undefined> {
    return settle(() => {
      const row = this.stmt.getIdentity.get();
      // Buffer → plain Uint8Array, the type every other adapter returns.
      return row && { did: row.did, name: row.name, secretKey: new Uint8Array(row.secret_key), createdAt: row.created_at };
    });
  }

  createIdentity(identity: Identity): Promise<void> {
    return settle(() => {
      try {
        this.stmt.insertIdentity.run(identity.did, identity.name, identity.secretKey, identity.createdAt);
      } catch (e) {
        if ((e as { code?: unknown }).code === 'SQLITE_CONSTRAINT_PRIMARYKEY') {
          throw new Error('an identity already exists in this store: an identity is created once per device', { cause: e });
        }
        throw e;
      }
    });
  }

  ingest(records: readonly StoredRecord[], counters: CounterDelta = {}, outbox: readonly OutboxEntry[] = []): Promise<IngestResult> {
    return settle(() => this.ingestTx.immediate(records, counters, outbox));
  }

  getRecord(id: string): Promise<StoredRecord | undefined> {
    return settle(() => {
      const row = this.stmt.getRecord.get(id);
      return row && toRecord(row);
    });
  }

  hasRecords(ids: readonly string[]): Promise<ReadonlySet<string>> {
    return settle(() => new Set(ids.filter((id) => this.stmt.hasRecord.get(id) !== undefined)));
  }

  recordsByThread(thread: string): Promise<StoredRecord[]> {
    return settle(() => this.stmt.recordsByThread.all(thread).map(toRecord));
  }

  maxClock(actor: string, thread: string): Promise<number> {
    return settle(() => this.stmt.maxClock.get(actor, thread)?.clock ?? -1);
  }

  threads(): Promise<{ thread: string; count: number; lastReceivedAt: number }[]> {
    return settle(() => this.stmt.threads.all());
  }

  countRecords(): Promise<number> {
    return settle(() => this.stmt.countRecords.get()?.n ?? 0);
  }

  idsAtClock(keys: readonly ClockKey[]): Promise<(string | undefined)[]> {
    return settle(() => keys.map((k) => this.stmt.idAtClock.get(k.actor, k.thread, k.clock)?.id));
  }

  putOutbox(entries: readonly OutboxEntry[]): Promise<void> {
    return settle(() => this.putOutboxTx.immediate(entries));
  }

  getOutbox(id: string): Promise<OutboxEntry | undefined> {
    return settle(() => {
      const row = this.stmt.getOutbox.get(id);
      return row && toOutbox(row);
    });
  }

  listOutbox(): Promise<OutboxEntry[]> {
    return settle(() => this.stmt.listOutbox.all().map(toOutbox));
  }

  dueOutbox(now: number): Promise<OutboxEntry[]> {
    return settle(() => this.stmt.dueOutbox.all(now).map(toOutbox));
  }

  pruneOutbox(now: number): Promise<number> {
    return settle(() => this.stmt.pruneOutbox.run(now).changes);
  }

  getReceiveState(relayUrl: string): Promise<ReceiveState | undefined> {
    return settle(() => {
      const row = this.stmt.getReceiveState.get(relayUrl);
      return row && toReceiveState(row);
    });
  }

  putReceiveState(s: ReceiveState): Promise<void> {
    return settle(() => {
      this.stmt.putReceiveState.run(s.relayUrl, s.lastReceiveAt ?? null, s.lastSuccessAt ?? null, s.backlog, s.lastError ?? null, s.lastLatencyMs ?? null);
    });
  }

  listReceiveStates(): Promise<ReceiveState[]> {
    return settle(() => this.stmt.listReceiveStates.all().map(toReceiveState));
  }

  getCounters(): Promise<Counters> {
    return settle(() => {
      const counters = Object.fromEntries(COUNTER_NAMES.map((name) => [name, 0])) as Record<CounterName, number>;
      for (const { name, value } of this.stmt.getCounters.all()) {
        if ((COUNTER_NAMES as readonly string[]).includes(name)) counters[name as CounterName] = value;
      }
      return counters;
    });
  }

  dropCounts(): Promise<DropCount[]> {
    return settle(() => this.stmt.dropCounts.all().map(({ name, value }) => parseDropCount(name, value)).filter((d) => d !== undefined));
  }

  bumpCounters(delta: CounterDelta): Promise<void> {
    return settle(() => this.bumpTx.immediate(delta));
  }

  putInvite(invite: InviteRecord): Promise<void> {
    return settle(() => {
      this.stmt.putInvite.run(invite.nonce, invite.exp, JSON.stringify(invite.threads), invite.createdAt, invite.usedBy ?? null);
    });
  }

  getInvite(nonce: string): Promise<InviteRecord | undefined> {
    return settle(() => {
      const row = this.stmt.getInvite.get(nonce);
      return row && toInvite(row);
    });
  }

  redeemInvite(nonce: string, did: string, now: number): Promise<boolean> {
    // One conditional UPDATE: test-and-set in a single statement, so at most one caller wins.
    return settle(() => this.stmt.redeemInvite.run(did, nonce, now).changes === 1);
  }

  close(): Promise<void> {
    return settle(() => {
      if (this.db.open) this.db.close();
    });
  }
}

/** Opens (creating parent directories, schema and migrations) the peer database at `path`, or ':memory:'. */
export function openSqlitePeerStore(path: string): Promise<SqlitePeerStore> {
  return settle(() => {
    if (path !== ':memory:') {
      mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
      // The file holds the identity's secret key: owner-only before SQLite ever writes to it.
      // SQLite gives the -wal and -shm files the database file's mode; older files are tightened.
      closeSync(openSync(path, 'a', 0o600));
      for (const f of [path, `${path}-wal`, `${path}-shm`]) if (existsSync(f)) chmodSync(f, 0o600);
    }
    const db = new Database(path);
    try {
      db.pragma('journal_mode = WAL');
      db.pragma('synchronous = FULL');
      db.pragma('busy_timeout = 5000'); // another process (e.g. a CLI) may hold the write lock briefly
      migrate(db);
      return new SqlitePeerStore(db);
    } catch (e) {
      db.close();
      throw e;
    }
  });
}
