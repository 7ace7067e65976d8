/** The contract and IndexedDB specifics on fake-indexeddb (one fresh factory per test). */
import 'fake-indexeddb/auto'; // idb needs the IDB* classes as globals for its instanceof checks
import { IDBFactory } from 'fake-indexeddb';
import { describe, expect, it } from 'vitest';
import { wrap } from 'idb';
import { IDB_SCHEMA_VERSION, openIdbPeerStore } from '../../src/store/idb';
import { upgrade, type PeerDb } from '../../src/store/idb-schema';
import type { StoredRecord } from '../../src/store/types';
import { runPeerStoreContract } from '../contracts/peer-store';
import { T0, newActor, storedNote, storedNotes } from './fixtures';
import { vitestRegistrar } from '../contracts/vitest-registrar';

let seq = 0;
const ids = (records: readonly { id: string }[]) => records.map((r) => r.id);

runPeerStoreContract(
  vitestRegistrar,
  'IndexedDB (fake-indexeddb)',
  async () => {
    const factory = new IDBFactory();
    const name = `peer-${++seq}`;
    return { store: await openIdbPeerStore(name, factory), reopen: () => openIdbPeerStore(name, factory) };
  },
  { persistent: true },
);

/** Opens `name` with the raw API, e.g. to inspect the schema or to play a newer app version. */
function rawOpen(
  factory: IDBFactory,
  name: string,
  version?: number,
  onUpgrade?: (db: IDBDatabase, tx: IDBTransaction, oldVersion: number) => void,
): Promise<IDBDatabase> {
  return new Promise((resolve, reject) => {
    const request = factory.open(name, version);
    request.onupgradeneeded = (event) => onUpgrade?.(request.result, request.transaction!, event.oldVersion);
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error ?? new Error('open failed'));
    request.onblocked = () => reject(new Error(`open of ${name} v${version ?? '?'} is blocked by an open connection`));
  });
}

describe('IdbPeerStore specifics', () => {
  it('creates the current schema version with the documented stores and indexes', async () => {
    const factory = new IDBFactory();
    await (await openIdbPeerStore('schema', factory)).close();
    const db = await rawOpen(factory, 'schema');
    try {
      expect(db.version).toBe(IDB_SCHEMA_VERSION);
      expect(db.version).toBe(2);
      expect([...db.objectStoreNames].sort()).toEqual([
        'counters',
        'identity',
        'invites',
        'outbox',
        'receive_state',
        'records',
        'records_equivocated',
      ]);
      const tx = db.transaction(['records', 'outbox', 'receive_state', 'invites']);
      const records = tx.objectStore('records');
      expect(records.keyPath).toBe('id');
      expect([...records.indexNames].sort()).toEqual(['actor_thread_clock', 'thread_receivedAt']);
      expect(records.index('actor_thread_clock').keyPath).toEqual(['actor', 'thread', 'clock']);
      expect(records.index('actor_thread_clock').unique).toBe(true); // §3: one record per slot
      expect(records.index('thread_receivedAt').unique).toBe(false);
      const outbox = tx.objectStore('outbox');
      expect(outbox.keyPath).toBe('id');
      expect([...outbox.indexNames].sort()).toEqual(['nextAttemptAt', 'path']);
      expect(tx.objectStore('receive_state').keyPath).toBe('relayUrl');
      expect(tx.objectStore('invites').keyPath).toBe('nonce');
    } finally {
      db.close();
    }
  });

  it('uses only the injected factory', async () => {
    const mine = new IDBFactory();
    const store = await openIdbPeerStore('isolated', mine);
    const actor = newActor();
    await store.ingest(await storedNotes(actor, 2));
    await store.close();
    const elsewhere = await openIdbPeerStore('isolated', new IDBFactory());
    const globalOne = await openIdbPeerStore('isolated'); // the global fake-indexeddb/auto factory
    try {
      expect(await elsewhere.countRecords()).toBe(0);
      expect(await globalOne.countRecords()).toBe(0);
    } finally {
      await elsewhere.close();
      await globalOne.close();
    }
    const back = await openIdbPeerStore('isolated', mine);
    expect(await back.countRecords()).toBe(2);
    await back.close();
  });

  it('upgrading from version 1 keeps the first record of each (actor, thread, clock) and sets the rest aside, counted', async () => {
    const factory = new IDBFactory();
    const [a, b] = [newActor(), newActor()];
    // A version-1 store in which two writers raced (before the check moved into the transaction).
    const kept = await storedNote(a, { clock: 4, text: 'kept', receivedAt: T0 + 1 });
    const racedLater = await storedNote(a, { clock: 4, text: 'raced later', receivedAt: T0 + 2 });
    const tieKept = await storedNote(b, { clock: 0, text: 'tie one', receivedAt: T0 });
    const tieOther = await storedNote(b, { clock: 0, text: 'tie two', receivedAt: T0 });
    const [tieFirst, tieSecond] = tieKept.id < tieOther.id ? [tieKept, tieOther] : [tieOther, tieKept];
    const third = await storedNote(a, { clock: 4, text: 'raced third', receivedAt: T0 + 3 });
    const alone = await storedNotes(a, 3, 'th_alone');
    const v1 = await rawOpen(factory, 'from-v1', 1, (db, tx, old) => upgrade(wrap(db) as unknown as PeerDb, old, tx, 1));
    expect(v1.objectStoreNames.contains('records_equivocated')).toBe(false);
    expect(v1.transaction('records').objectStore('records').index('actor_thread_clock').unique).toBe(false);
    await new Promise<void>((resolve, reject) => {
      const tx = v1.transaction(['records', 'counters'], 'readwrite');
      // Puts in an order that is not the arrival order: the upgrade goes by receivedAt.
      for (const r of [third, racedLater, ...alone, tieSecond, kept, tieFirst]) tx.objectStore('records').put(r);
      tx.objectStore('counters').put(2, 'records_refused_clock_reused');
      tx.oncomplete = () => resolve();
      tx.onerror = () => reject(tx.error ?? new Error('v1 fill failed'));
    });
    v1.close();

    const store = await openIdbPeerStore('from-v1', factory);
    try {
      expect(ids(await store.recordsByThread('th_test'))).toEqual(ids([tieFirst, kept]));
      expect(ids(await store.recordsByThread('th_alone'))).toEqual(ids(alone));
      expect((await store.getCounters()).records_refused_clock_reused).toBe(2 + 3);
      // From now on the store refuses them itself; the kept one is a duplicate.
      expect(await store.ingest([racedLater, kept, tieSecond])).toEqual({
        inserted: [],
        duplicates: [kept.id],
        refused: [racedLater.id, tieSecond.id],
      });
    } finally {
      await store.close();
    }
    const db = await rawOpen(factory, 'from-v1');
    try {
      expect(db.version).toBe(IDB_SCHEMA_VERSION);
      const aside = await new Promise<StoredRecord[]>((resolve, reject) => {
        const request = db.transaction('records_equivocated').objectStore('records_equivocated').getAll();
        request.onsuccess = () => resolve(request.result as StoredRecord[]);
        request.onerror = () => reject(request.error ?? new Error('getAll failed'));
      });
      expect(ids(aside).sort()).toEqual(ids([racedLater, third, tieSecond]).sort()); // kept whole, as evidence
      expect(aside.find((r) => r.id === third.id)).toEqual(third);
    } finally {
      db.close();
    }
  });

  it('steps aside when a newer schema version opens, so the upgrade is not blocked', async () => {
    const factory = new IDBFactory();
    const store = await openIdbPeerStore('upgrade', factory);
    await store.ingest(await storedNotes(newActor(), 3));
    // A future version 2 adding a store next to the existing ones, while version 1 is still open.
    const v2 = await rawOpen(factory, 'upgrade', IDB_SCHEMA_VERSION + 1, (db) => db.createObjectStore('added_in_v2'));
    try {
      expect(v2.objectStoreNames.contains('records')).toBe(true);
      expect(v2.objectStoreNames.contains('added_in_v2')).toBe(true);
      const count = await new Promise<number>((resolve, reject) => {
        const request = v2.transaction('records').objectStore('records').count();
        request.onsuccess = () => resolve(request.result);
        request.onerror = () => reject(request.error ?? new Error('count failed'));
      });
      expect(count).toBe(3); // data carried over
      await expect(store.countRecords()).rejects.toThrow(); // the old connection was closed
    } finally {
      v2.close();
    }
  });
});
