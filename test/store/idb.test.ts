/** The contract and IndexedDB specifics on fake-indexeddb (one fresh factory per test). */
import 'fake-indexeddb/auto'; // idb needs the IDB* classes as globals for its instanceof checks
import { IDBFactory } from 'fake-indexeddb';
import { describe, expect, it } from 'vitest';
import { IDB_SCHEMA_VERSION, openIdbPeerStore } from '../../src/store/idb';
import { runIdbUpgradeChecks } from '../contracts/idb-upgrade';
import { runPeerStoreContract } from '../contracts/peer-store';
import { newActor, storedNotes } from './fixtures';
import { vitestRegistrar } from '../contracts/vitest-registrar';

let seq = 0;

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

const upgrades = new IDBFactory();
runIdbUpgradeChecks(vitestRegistrar, 'fake-indexeddb', { factory: upgrades, freshName: () => `upgrade-${++seq}` });

/** Opens `name` with the raw API, e.g. to inspect the schema or to play a newer app version. */
function rawOpen(factory: IDBFactory, name: string, version?: number, onUpgrade?: (db: IDBDatabase) => void): Promise<IDBDatabase> {
  return new Promise((resolve, reject) => {
    const request = factory.open(name, version);
    request.onupgradeneeded = () => onUpgrade?.(request.result);
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
