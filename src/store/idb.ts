/**
 * PeerStore on IndexedDB (via `idb`), for the page and the service worker of the browser peer.
 *
 * Transactions: every method is one IndexedDB transaction. Inside a transaction we only ever
 * await requests of that same transaction (never unrelated work such as crypto or fetch), because
 * IndexedDB auto-commits a transaction as soon as it has no pending requests at the end of a task.
 * Writes issue all their requests first and then await `tx.done`, so a batch costs one commit.
 */
import { unwrap, wrap, type DBSchema, type IDBPDatabase, type IDBPObjectStore, type StoreNames } from 'idb';
import {
  COUNTER_NAMES,
  parseDropCount,
  type ClockKey,
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

/** Bump on every schema change and add an `if (oldVersion < N)` block to `upgrade`. */
export const IDB_SCHEMA_VERSION = 1;

/** The identity store holds one row under this key. */
const IDENTITY_KEY = 'self';

interface PeerDbSchema extends DBSchema {
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

type PeerDb = IDBPDatabase<PeerDbSchema>;

/** The whole key range of one thread in a [thread, …] compound index. */
const threadRange = (thread: string) => IDBKeyRange.bound([thread], [thread, []]);

/** Record order within a thread: (clock, actor, id), strings by code unit like SQLite's BINARY on ASCII. */
function compareRecords(a: StoredRecord, b: StoredRecord): number {
  if (a.clock !== b.clock) return a.clock - b.clock;
  if (a.actor !== b.actor) return a.actor < b.actor ? -1 : 1;
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}

/** Outbox order: oldest first (createdAt, then id so ties are stable). */
function compareOutbox(a: OutboxEntry, b: OutboxEntry): number {
  if (a.createdAt !== b.createdAt) return a.createdAt - b.createdAt;
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}

/**
 * Issues a write without awaiting it. Its outcome is the transaction's: a failing request aborts
 * the transaction and rejects `tx.done`, which the caller awaits; the request's own promise is
 * silenced so an abort does not also surface as N unhandled rejections.
 */
function issue(request: Promise<unknown>): void {
  request.catch(() => undefined);
}

/** Aborts a transaction that is being abandoned, so none of its issued writes commit. */
function abandon(tx: { abort(): void; done: Promise<void> }): void {
  tx.done.catch(() => undefined); // the abort rejects `done`; that is the point, not an error
  try {
    tx.abort();
  } catch {
    // already finished or aborted: nothing of ours can commit any more
  }
}

/**
 * Adds `delta` to the stored counters within their transaction: reads every touched counter,
 * then issues the puts without awaiting them (the caller awaits the transaction's `done`).
 */
async function addCounters<S extends StoreNames<PeerDbSchema>[]>(
  counters: IDBPObjectStore<PeerDbSchema, S, 'counters', 'readwrite'>,
  delta: CounterDelta,
): Promise<void> {
  const changes = (Object.entries(delta) as [CounterName, number | undefined][]).filter(
    (e): e is [CounterName, number] => e[1] !== undefined && e[1] !== 0,
  );
  const current = await Promise.all(changes.map(([name]) => counters.get(name)));
  changes.forEach(([name, by], i) => issue(counters.put((current[i] ?? 0) + by, name)));
}

/**
 * One ingest transaction on the raw IndexedDB API: on batches of thousands, per-request promises
 * (idb's wrapper) or even per-request handlers cost more than the writes themselves (measured in
 * Chromium: setting `onsuccess`/`onerror` on each request was a third of the main thread's time).
 *
 * So the records are `add`ed with no handler at all: `add` answers "already stored" itself with a
 * ConstraintError, caught by one capture listener on the transaction, which stops the event
 * before it can abort the transaction or reach anyone else and notes the duplicate. Requests run
 * in order, so when the counter reads issued after the adds answer, every add has answered; the
 * counter writes then go out in the same transaction.
 */
function ingestTransaction(
  db: IDBDatabase,
  records: readonly StoredRecord[],
  counters: CounterDelta,
  outbox: readonly OutboxEntry[],
): Promise<IngestResult> {
  return new Promise((resolve, reject) => {
    // Strict: the engine acks at the relay once this resolves, after which the relay forgets the
    // envelope; Chromium's default ("relaxed", no flush) could lose acked records on power loss.
    const tx = db.transaction(['records', 'counters', 'outbox'], 'readwrite', { durability: 'strict' });
    const duplicate = new Set<IDBRequest>();
    let result: IngestResult | undefined;
    let failure: Error | undefined;
    tx.addEventListener(
      'error',
      (event) => {
        const request = event.target;
        if (request instanceof IDBRequest && request.error?.name === 'ConstraintError' && request.source === recordStore) {
          event.preventDefault(); // a duplicate, not a failure of the batch
          event.stopPropagation();
          duplicate.add(request);
        }
      },
      { capture: true },
    );
    tx.oncomplete = () => (result ? resolve(result) : reject(new Error('IndexedDB ingest committed without a result')));
    tx.onabort = () => reject(failure ?? tx.error ?? new Error('IndexedDB ingest transaction aborted'));
    const recordStore = tx.objectStore('records');
    let adds: IDBRequest[];
    try {
      for (const e of outbox) tx.objectStore('outbox').put(e);
      adds = records.map((r) => recordStore.add(r));
    } catch (e) {
      // E.g. a value that cannot be cloned throws synchronously: the writes already issued must
      // not commit without the rest.
      failure = e instanceof Error ? e : new Error(String(e));
      tx.abort();
      return;
    }
    const counterStore = tx.objectStore('counters');
    const names = [...new Set([...(Object.keys(counters) as CounterName[]), 'records_ingested', 'records_duplicate'] as const)];
    const reads = names.map((name) => counterStore.get(name));
    const last = reads[reads.length - 1]!;
    last.onsuccess = () => {
      const inserted: string[] = [];
      const duplicates: string[] = [];
      adds.forEach((request, i) => (duplicate.has(request) ? duplicates : inserted).push(records[i]!.id));
      const delta: CounterDelta = { ...counters, records_ingested: (counters.records_ingested ?? 0) + inserted.length, records_duplicate: (counters.records_duplicate ?? 0) + duplicates.length };
      names.forEach((name, i) => {
        const by = delta[name] ?? 0;
        if (by !== 0) counterStore.put(((reads[i]!.result as number | undefined) ?? 0) + by, name);
      });
      result = { inserted, duplicates };
    };
  });
}

/**
 * appendOwn on the raw API: the newest clock of the record's (actor, thread) is read and the
 * record added in one readwrite transaction, which IndexedDB runs alone against every other
 * writer of the records store (page and service worker included).
 */
function appendOwnTransaction(db: IDBDatabase, record: StoredRecord, outbox: readonly OutboxEntry[]): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const tx = db.transaction(['records', 'counters', 'outbox'], 'readwrite', { durability: 'strict' });
    let appended = false;
    let failure: Error | undefined;
    tx.oncomplete = () => resolve(appended);
    tx.onabort = () => reject(failure ?? tx.error ?? new Error('IndexedDB append transaction aborted'));
    const records = tx.objectStore('records');
    const range = IDBKeyRange.bound([record.actor, record.thread], [record.actor, record.thread, []]);
    const newest = records.index('actor_thread_clock').openKeyCursor(range, 'prev');
    newest.onsuccess = () => {
      const key = newest.result?.key as [string, string, number] | undefined;
      if (key && key[2] >= record.clock) return; // taken: commit nothing (no write was issued)
      try {
        records.add(record);
        for (const e of outbox) tx.objectStore('outbox').put(e);
      } catch (e) {
        failure = e instanceof Error ? e : new Error(String(e)); // e.g. a value that cannot be cloned
        tx.abort();
        return;
      }
      const counters = tx.objectStore('counters');
      const count = counters.get('records_ingested');
      count.onsuccess = () => {
        counters.put(((count.result as number | undefined) ?? 0) + 1, 'records_ingested');
        appended = true;
      };
    };
  });
}

export class IdbPeerStore implements PeerStore {
  constructor(private readonly db: PeerDb) {}

  getIdentity(): Promise<Identity | undefined> {
    return this.db.get('identity', IDENTITY_KEY);
  }

  async createIdentity(identity: Identity): Promise<void> {
    // readwrite transactions on the same store run one after another, so check-then-add is atomic.
    const tx = this.db.transaction('identity', 'readwrite');
    if ((await tx.store.getKey(IDENTITY_KEY)) !== undefined) {
      abandon(tx);
      throw new Error('an identity already exists in this store: an identity is created once per device');
    }
    issue(tx.store.add(identity, IDENTITY_KEY));
    await tx.done;
  }

  ingest(records: readonly StoredRecord[], counters: CounterDelta = {}, outbox: readonly OutboxEntry[] = []): Promise<IngestResult> {
    return ingestTransaction(unwrap(this.db), records, counters, outbox);
  }

  appendOwn(record: StoredRecord, outbox: readonly OutboxEntry[] = []): Promise<boolean> {
    return appendOwnTransaction(unwrap(this.db), record, outbox);
  }

  getRecord(id: string): Promise<StoredRecord | undefined> {
    return this.db.get('records', id);
  }

  async hasRecords(ids: readonly string[]): Promise<ReadonlySet<string>> {
    const tx = this.db.transaction('records', 'readonly');
    const keys = await Promise.all(ids.map((id) => tx.store.getKey(id)));
    return new Set(ids.filter((_, i) => keys[i] !== undefined));
  }

  async recordsByThread(thread: string): Promise<StoredRecord[]> {
    return (await this.db.getAllFromIndex('records', 'thread_receivedAt', threadRange(thread))).sort(compareRecords);
  }

  async maxClock(actor: string, thread: string): Promise<number> {
    const range = IDBKeyRange.bound([actor, thread], [actor, thread, []]);
    const cursor = await this.db.transaction('records').store.index('actor_thread_clock').openKeyCursor(range, 'prev');
    return cursor ? cursor.key[2] : -1;
  }

  async threads(): Promise<{ thread: string; count: number; lastReceivedAt: number }[]> {
    const index = this.db.transaction('records').store.index('thread_receivedAt');
    const out: { thread: string; count: number; lastReceivedAt: number }[] = [];
    // Walking backwards, the first key of each thread carries its newest arrival; then jump past
    // the rest of that thread. Cost: a few requests per thread, independent of record count.
    let cursor = await index.openKeyCursor(null, 'prev');
    while (cursor) {
      const [thread, lastReceivedAt] = cursor.key;
      const count = await index.count(threadRange(thread));
      out.push({ thread, count, lastReceivedAt });
      // [thread] sorts before every [thread, n]: the next key is the previous thread's newest.
      cursor = await cursor.continue([thread] as unknown as [string, number]);
    }
    return out.reverse();
  }

  countRecords(): Promise<number> {
    return this.db.count('records');
  }

  async idsAtClock(keys: readonly ClockKey[]): Promise<(string | undefined)[]> {
    if (keys.length === 0) return [];
    const index = this.db.transaction('records').store.index('actor_thread_clock');
    return Promise.all(keys.map(async (k) => await index.getKey([k.actor, k.thread, k.clock])));
  }

  async putOutbox(entries: readonly OutboxEntry[]): Promise<void> {
    const tx = this.db.transaction('outbox', 'readwrite');
    try {
      for (const e of entries) issue(tx.store.put(e));
    } catch (e) {
      abandon(tx);
      throw e;
    }
    await tx.done;
  }

  getOutbox(id: string): Promise<OutboxEntry | undefined> {
    return this.db.get('outbox', id);
  }

  async listOutbox(): Promise<OutboxEntry[]> {
    return (await this.db.getAll('outbox')).sort(compareOutbox);
  }

  async dueOutbox(now: number): Promise<OutboxEntry[]> {
    const pending = await this.db.getAllFromIndex('outbox', 'path', 'pending');
    return pending.filter((e) => e.nextAttemptAt <= now).sort(compareOutbox);
  }

  async pruneOutbox(now: number): Promise<number> {
    const tx = this.db.transaction('outbox', 'readwrite');
    let removed = 0;
    for (let cursor = await tx.store.openCursor(); cursor; cursor = await cursor.continue()) {
      if (cursor.value.expiresAt <= now) {
        issue(cursor.delete());
        removed++;
      }
    }
    await tx.done;
    return removed;
  }

  getReceiveState(relayUrl: string): Promise<ReceiveState | undefined> {
    return this.db.get('receive_state', relayUrl);
  }

  async putReceiveState(state: ReceiveState): Promise<void> {
    await this.db.put('receive_state', state);
  }

  listReceiveStates(): Promise<ReceiveState[]> {
    return this.db.getAll('receive_state'); // key order: by relayUrl
  }

  async getCounters(): Promise<Counters> {
    const tx = this.db.transaction('counters');
    const values = await Promise.all(COUNTER_NAMES.map((name) => tx.store.get(name)));
    return Object.fromEntries(COUNTER_NAMES.map((name, i) => [name, values[i] ?? 0])) as Record<CounterName, number>;
  }

  async dropCounts(): Promise<DropCount[]> {
    const tx = this.db.transaction('counters');
    const range = IDBKeyRange.bound('drop:', 'drop;', false, true);
    const [names, values] = await Promise.all([tx.store.getAllKeys(range), tx.store.getAll(range)]);
    return names
      .map((name, i) => parseDropCount(name, values[i] ?? 0))
      .filter((d) => d !== undefined)
      .sort((a, b) => b.count - a.count);
  }

  async bumpCounters(delta: CounterDelta): Promise<void> {
    const tx = this.db.transaction('counters', 'readwrite');
    await addCounters(tx.store, delta);
    await tx.done;
  }

  async putInvite(invite: InviteRecord): Promise<void> {
    await this.db.put('invites', invite);
  }

  getInvite(nonce: string): Promise<InviteRecord | undefined> {
    return this.db.get('invites', nonce);
  }

  async redeemInvite(nonce: string, did: string, now: number): Promise<boolean> {
    // One readwrite transaction: concurrent redeemers (page, service worker) are serialised by
    // IndexedDB, so only the first sees the invite unused.
    const tx = this.db.transaction('invites', 'readwrite');
    const invite = await tx.store.get(nonce);
    // Valid through `exp` inclusive, as parseInvite treats it (expired only when exp < now).
    const redeemable = invite !== undefined && invite.usedBy === undefined && invite.exp >= now;
    if (redeemable) issue(tx.store.put({ ...invite, usedBy: did }));
    await tx.done;
    return redeemable;
  }

  close(): Promise<void> {
    this.db.close();
    return Promise.resolve();
  }
}

/** Schema migrations: one `if (oldVersion < N)` block per version, applied in order. */
function upgrade(db: PeerDb, oldVersion: number): void {
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

/**
 * Opens (creating or upgrading) the peer database `name` on `idbFactory`, by default the global
 * `indexedDB`; tests pass fake-indexeddb's.
 *
 * `idb` recognises IndexedDB objects with `instanceof IDBDatabase` etc., so those globals must
 * exist: in Node, `import 'fake-indexeddb/auto'` before opening, even with an injected factory.
 */
export async function openIdbPeerStore(name = 'syncropel', idbFactory?: IDBFactory): Promise<IdbPeerStore> {
  if (typeof IDBDatabase === 'undefined' || typeof IDBKeyRange === 'undefined') {
    throw new Error("IndexedDB globals are missing (in Node, import 'fake-indexeddb/auto' first)");
  }
  const factory = idbFactory ?? indexedDB;
  // idb's openDB() only uses the global `indexedDB`; this is the same thing on a chosen factory.
  const request = factory.open(name, IDB_SCHEMA_VERSION);
  request.addEventListener('upgradeneeded', (event) => {
    upgrade(wrap(request.result) as unknown as PeerDb, event.oldVersion);
  });
  const db = (await wrap(request)) as unknown as PeerDb | undefined;
  if (!db) throw new Error(`could not open IndexedDB database "${name}"`);
  // A newer version (e.g. an updated service worker) wants to upgrade: step aside rather than
  // block it forever. This connection fails from then on; the page reloads onto the new code.
  db.addEventListener('versionchange', () => db.close());
  return new IdbPeerStore(db);
}
