/** The peer database's schema on IndexedDB (./idb.ts): stores, indexes, and the upgrade that creates them. */
import type { DBSchema, IDBPDatabase } from 'idb';
import type { Identity, InviteRecord, OutboxEntry, ReceiveState, StoredRecord } from './types';

/** Bump on every schema change and add an `if (oldVersion < N)` block to `upgrade`. */
export const IDB_SCHEMA_VERSION = 2;

/** The identity store holds one row under this key. */
export const IDENTITY_KEY = 'self';

export interface PeerDbSchema extends DBSchema {
  identity: { key: typeof IDENTITY_KEY; value: Identity };
  records: {
    key: string;
    value: StoredRecord;
    // Two indexes only: every index costs each put (measured: 5 indexes ran puts at less than
    // half the rate of none). Prefix ranges serve the rest: by actor on actor_thread_clock, by
    // thread on thread_receivedAt.
    indexes: {
      /**
       * Unique from version 2 (§3: one record per (actor, thread, clock)), so the add itself
       * refuses a reused clock; maxClock(actor, thread); any per-actor query.
       */
      actor_thread_clock: [string, string, number];
      /** recordsByThread, and threads(): per-thread count and newest arrival without reading any record. */
      thread_receivedAt: [string, number];
    };
  };
  outbox: { key: string; value: OutboxEntry; indexes: { path: string; nextAttemptAt: number } };
  receive_state: { key: string; value: ReceiveState };
  /** Named counters, and per-sender drop counts under `drop:<reason>:<did>` keys. */
  counters: { key: string; value: number };
  invites: { key: string; value: InviteRecord };
  /** From version 2: records a version-1 store held in a slot another record held first (see upgrade). */
  records_equivocated: { key: string; value: StoredRecord };
}

export type PeerDb = IDBPDatabase<PeerDbSchema>;

/** The whole key range of one thread in a [thread, …] compound index. */
export const threadRange = (thread: string) => IDBKeyRange.bound([thread], [thread, []]);

/**
 * Schema migrations: one `if (oldVersion < N)` block per version, applied in order up to
 * `newVersion` (tests build older versions with it), all inside `tx`, the versionchange
 * transaction (the raw one: version 2 walks an index with it).
 */
export function upgrade(db: PeerDb, oldVersion: number, tx: IDBTransaction, newVersion = IDB_SCHEMA_VERSION): void {
  if (oldVersion < 1) {
    db.createObjectStore('identity');
    const records = db.createObjectStore('records', { keyPath: 'id' });
    records.createIndex('actor_thread_clock', ['actor', 'thread', 'clock']);
    records.createIndex('thread_receivedAt', ['thread', 'receivedAt']);
    const outbox = db.createObjectStore('outbox', { keyPath: 'id' });
    outbox.createIndex('path', 'path');
    outbox.createIndex('nextAttemptAt', 'nextAttemptAt');
    db.createObjectStore('receive_state', { keyPath: 'relayUrl' });
    db.createObjectStore('counters');
    db.createObjectStore('invites', { keyPath: 'nonce' });
  }
  if (oldVersion < 2 && newVersion >= 2) uniqueClocks(tx);
  // if (oldVersion < 3) { … the next migration … }
}

const sameSlot = (a: IDBValidKey, b: IDBValidKey): boolean =>
  Array.isArray(a) && Array.isArray(b) && a.length === b.length && a.every((part, i) => part === b[i]);

/** Arrival order: earliest receivedAt first, then the smaller ID (a batch shares one receivedAt). */
const byArrival = (a: StoredRecord, b: StoredRecord): number => a.receivedAt - b.receivedAt || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);

/**
 * Version 2: actor_thread_clock becomes unique (§3), so ingest's check and insert are one step of
 * its transaction. Version 1 checked before that transaction, so the page and the service worker
 * could both store one slot. Of such records the first to arrive stays (IndexedDB keeps no
 * insertion order: earliest receivedAt, then smaller ID); the others move to records_equivocated,
 * kept as evidence but no longer served, and are counted as refused, which doctor reports.
 * Walks index keys only: record values are read just for the rare slots held twice.
 */
function uniqueClocks(tx: IDBTransaction): void {
  const equivocated = tx.db.createObjectStore('records_equivocated', { keyPath: 'id' });
  const records = tx.objectStore('records');
  let moved = 0;
  const moveLater = (ids: readonly IDBValidKey[], then?: () => void) => {
    const reads = ids.map((id) => records.get(id));
    reads[reads.length - 1]!.onsuccess = () => {
      const [, ...later] = reads.map((r) => r.result as StoredRecord).sort(byArrival);
      for (const r of later) {
        equivocated.put(r);
        records.delete(r.id);
      }
      moved += later.length;
      then?.();
    };
  };
  const finish = () => {
    // Requests run in order: once this one answers every move has been done. Only then is the
    // unique index built, so no engine can meet a slot held twice while building it, whenever
    // it populates the index.
    const counters = tx.objectStore('counters');
    const read = counters.get('records_refused_clock_reused');
    read.onsuccess = () => {
      if (moved > 0) counters.put(((read.result as number | undefined) ?? 0) + moved, 'records_refused_clock_reused');
      records.deleteIndex('actor_thread_clock');
      records.createIndex('actor_thread_clock', ['actor', 'thread', 'clock'], { unique: true });
    };
  };
  let slot: IDBValidKey | undefined;
  let holders: IDBValidKey[] = [];
  const walk = records.index('actor_thread_clock').openKeyCursor();
  walk.onsuccess = () => {
    const cursor = walk.result;
    if (cursor && slot !== undefined && sameSlot(cursor.key, slot)) {
      holders.push(cursor.primaryKey);
      cursor.continue();
      return;
    }
    // A slot ends. Requests answer in order: its records are read, and their moves issued,
    // before the walk's next step answers.
    const ended = holders;
    if (cursor) {
      if (ended.length > 1) moveLater(ended);
      slot = cursor.key;
      holders = [cursor.primaryKey];
      cursor.continue();
    } else if (ended.length > 1) moveLater(ended, finish);
    else finish();
  };
}
