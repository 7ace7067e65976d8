/** The peer database's schema on IndexedDB (./idb.ts): stores, indexes, and the upgrade that creates them. */
import type { DBSchema, IDBPDatabase } from 'idb';
import type { Identity, InviteRecord, OutboxEntry, ReceiveState, StoredRecord } from './types';

/** Bump on every schema change and add an `if (oldVersion < N)` block to `upgrade`. */
export const IDB_SCHEMA_VERSION = 1;

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
      /** maxClock(actor, thread); any per-actor query. */
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
}

export type PeerDb = IDBPDatabase<PeerDbSchema>;

/** The whole key range of one thread in a [thread, …] compound index. */
export const threadRange = (thread: string) => IDBKeyRange.bound([thread], [thread, []]);

/** Schema migrations: one `if (oldVersion < N)` block per version, applied in order. */
export function upgrade(db: PeerDb, oldVersion: number): void {
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
  // if (oldVersion < 2) { … the next migration … }
}
