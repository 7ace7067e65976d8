/**
 * PeerStore on IndexedDB (via `idb`), for the page and the service worker of the browser peer.
 *
 * Transactions: every method is one IndexedDB transaction. Inside a transaction we only ever
 * await requests of that same transaction (never unrelated work such as crypto or fetch), because
 * IndexedDB auto-commits a transaction as soon as it has no pending requests at the end of a task.
 * Writes issue all their requests first and then await `tx.done`, so a batch costs one commit.
 *
 * Parts: ./idb-schema.ts (stores, indexes, upgrade), ./idb-transactions.ts (the raw-API ingest and
 * appendOwn transactions, write helpers); this module holds the PeerStore methods and the opener.
 */
import { unwrap, wrap } from 'idb';
import { IDB_SCHEMA_VERSION, IDENTITY_KEY, threadRange, upgrade, type PeerDb } from './idb-schema';
import { abandon, addCounters, appendOwnTransaction, ingestTransaction, issue } from './idb-transactions';
import {
  COUNTER_NAMES,
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

export { IDB_SCHEMA_VERSION } from './idb-schema';

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

  ingest(
    records: readonly StoredRecord[],
    counters: CounterDelta = {},
    outbox: readonly OutboxEntry[] = [],
    senders: readonly (string | undefined)[] = [],
  ): Promise<IngestResult> {
    return ingestTransaction(unwrap(this.db), records, counters, outbox, senders);
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

  async recordsArrivedSince(thread: string, receivedAt: number): Promise<{ total: number; records: StoredRecord[] }> {
    const index = this.db.transaction('records').store.index('thread_receivedAt');
    const [total, records] = await Promise.all([
      index.count(threadRange(thread)),
      index.getAll(IDBKeyRange.bound([thread, receivedAt], [thread, Infinity])),
    ]);
    return { total, records };
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
    upgrade(wrap(request.result) as unknown as PeerDb, event.oldVersion, request.transaction!);
  });
  const db = (await wrap(request)) as unknown as PeerDb | undefined;
  if (!db) throw new Error(`could not open IndexedDB database "${name}"`);
  // A newer version (e.g. an updated service worker) wants to upgrade: step aside rather than
  // block it forever. This connection fails from then on; the page reloads onto the new code.
  db.addEventListener('versionchange', () => db.close());
  return new IdbPeerStore(db);
}
