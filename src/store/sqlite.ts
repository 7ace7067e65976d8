/**
 * PeerStore on SQLite (better-sqlite3), for the headless peer. Node only: never import this from
 * src/store/index.ts or anything a browser bundle pulls in.
 *
 * WAL with `synchronous = FULL`: a resolved write is on disk. better-sqlite3 is synchronous, so
 * each write method is one `db.transaction(...)` that runs to completion before any other call
 * can interleave; that is what makes `redeemInvite` and concurrent ingests atomic.
 *
 * Parts: ./sqlite-schema.ts (tables, migrations), ./sqlite-statements.ts (prepared SQL),
 * ./sqlite-rows.ts (rows ↔ values); this module holds the transactions and the PeerStore methods.
 */
import Database from 'better-sqlite3';
import { chmodSync, closeSync, existsSync, mkdirSync, openSync } from 'node:fs';
import { dirname } from 'node:path';
import { toInvite, toOutbox, toReceiveState, toRecord } from './sqlite-rows';
import { migrate } from './sqlite-schema';
import { prepareStatements, type Statements } from './sqlite-statements';
import {
  COUNTER_NAMES,
  ingestCounters,
  parseDropCount,
  type DropCount,
  type CounterDelta,
  type CounterName,
  type Counters,
  type Identity,
  type IngestResult,
  type InviteRecord,
  type OutboxEntry,
  type PeerStore,
  type ReceiveState,
  type StoredRecord,
} from './types';

export { SQLITE_SCHEMA_VERSION } from './sqlite-schema';

/** better-sqlite3 is synchronous: run `fn` now and hand its result or error over as a promise. */
function settle<T>(fn: () => T): Promise<T> {
  try {
    return Promise.resolve(fn());
  } catch (e) {
    return Promise.reject(e instanceof Error ? e : new Error(String(e)));
  }
}

export class SqlitePeerStore implements PeerStore {
  private readonly stmt: Statements;
  // Write transactions run as BEGIN IMMEDIATE (`.immediate`): the daemon and a one-shot `spl`
  // command share the file, and a deferred transaction upgrading to a write can fail with BUSY.
  private readonly ingestTx: Database.Transaction<
    (
      records: readonly StoredRecord[],
      counters: CounterDelta,
      outbox: readonly OutboxEntry[],
      senders: readonly (string | undefined)[],
    ) => IngestResult
  >;
  private readonly appendOwnTx: Database.Transaction<(record: StoredRecord, outbox: readonly OutboxEntry[]) => boolean>;
  private readonly bumpTx: Database.Transaction<(delta: CounterDelta) => void>;
  private readonly putOutboxTx: Database.Transaction<(entries: readonly OutboxEntry[]) => void>;
  /** Reads that must see one snapshot (another process may commit between two statements otherwise). */
  private readonly readTx: Database.Transaction<(run: () => unknown) => unknown>;

  constructor(private readonly db: Database.Database) {
    const stmt = (this.stmt = prepareStatements(db));
    this.readTx = db.transaction((run: () => unknown) => run());
    const bump = (delta: CounterDelta) => {
      for (const [name, by] of Object.entries(delta) as [CounterName, number | undefined][]) {
        if (by) stmt.bumpCounter.run(name, by);
      }
    };
    this.bumpTx = db.transaction(bump);
    this.ingestTx = db.transaction(
      (
        records: readonly StoredRecord[],
        counters: CounterDelta,
        outbox: readonly OutboxEntry[],
        senders: readonly (string | undefined)[],
      ): IngestResult => {
        const inserted: string[] = [];
        const duplicates: string[] = [];
        const refused: string[] = [];
        const refusedSenders: (string | undefined)[] = [];
        records.forEach((r, i) => {
          // ON CONFLICT DO NOTHING: zero changes means the ID, or another ID at its (actor, thread,
          // clock) (§3 clock_reused), was already there or earlier in this batch. Inside this
          // IMMEDIATE transaction no other connection can write in between.
          const { changes } = stmt.insertRecord.run(
            r.id,
            JSON.stringify(r.signed),
            r.thread,
            r.actor,
            r.clock,
            r.receivedAt,
            r.path,
            r.via ?? null,
          );
          if (changes) inserted.push(r.id);
          else if (stmt.hasRecord.get(r.id)) duplicates.push(r.id);
          else {
            refused.push(r.id);
            refusedSenders.push(senders[i]);
          }
        });
        bump(ingestCounters(counters, inserted.length, duplicates.length, refusedSenders));
        if (outbox.length) this.putOutboxTx(outbox); // nested: a savepoint inside this transaction
        return { inserted, duplicates, refused };
      },
    );
    // The clock check and the insert in one IMMEDIATE transaction: no other connection can
    // write in between.
    this.appendOwnTx = db.transaction((record: StoredRecord, outbox: readonly OutboxEntry[]): boolean => {
      const newest = stmt.maxClock.get(record.actor, record.thread)?.clock ?? -1;
      if (record.clock <= newest) return false;
      return this.ingestTx([record], {}, outbox, []).inserted.length === 1; // nested: a savepoint
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

  ingest(
    records: readonly StoredRecord[],
    counters: CounterDelta = {},
    outbox: readonly OutboxEntry[] = [],
    senders: readonly (string | undefined)[] = [],
  ): Promise<IngestResult> {
    return settle(() => this.ingestTx.immediate(records, counters, outbox, senders));
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

  recordsArrivedSince(thread: string, receivedAt: number): Promise<{ total: number; records: StoredRecord[] }> {
    return settle(() =>
      this.readTogether(() => ({
        total: this.stmt.countThread.get(thread)?.n ?? 0,
        records: this.stmt.arrivedSince.all(thread, receivedAt).map(toRecord),
      })),
    );
  }

  private readTogether<T>(run: () => T): T {
    return this.readTx.deferred(run) as T;
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
      this.stmt.putReceiveState.run(
        s.relayUrl,
        s.lastReceiveAt ?? null,
        s.lastSuccessAt ?? null,
        s.backlog,
        s.lastError ?? null,
        s.lastLatencyMs ?? null,
      );
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
    return settle(() =>
      this.stmt.dropCounts
        .all()
        .map(({ name, value }) => parseDropCount(name, value))
        .filter((d) => d !== undefined),
    );
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
