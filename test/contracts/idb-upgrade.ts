/**
 * The IndexedDB schema upgrades, checked on the engine that will run them: under vitest on
 * fake-indexeddb (test/store/idb.test.ts) and bundled into a page against Chromium's own
 * IndexedDB (./peer-store.browser-entry.ts), another engine with its own index building and
 * transaction scheduling. Registrar and assertions as for the contract suites.
 */
import { wrap } from 'idb';
import { IDB_SCHEMA_VERSION, openIdbPeerStore } from '../../src/store/idb';
import { upgrade, type PeerDb } from '../../src/store/idb-schema';
import type { StoredRecord } from '../../src/store/types';
import { T0, newActor, storedNote, storedNotes } from '../store/fixtures';
import { assert } from './assert';
import { collectTestNames, type ContractRegistrar } from './registrar';

/** Where the checks open databases: a factory and a fresh database name per call. */
export interface UpgradeTarget {
  readonly factory: IDBFactory;
  readonly freshName: () => string;
}

const ids = (records: readonly { id: string }[]) => records.map((r) => r.id);

function answer<T>(request: IDBRequest<T>): Promise<T> {
  return new Promise((resolve, reject) => {
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error ?? new Error('request failed'));
  });
}

/** Opens `name` at schema `version` exactly as that version of the app would have created it. */
function openAtVersion(factory: IDBFactory, name: string, version: number): Promise<IDBDatabase> {
  return new Promise((resolve, reject) => {
    const request = factory.open(name, version);
    request.onupgradeneeded = (event) =>
      upgrade(wrap(request.result) as unknown as PeerDb, event.oldVersion, request.transaction!, version);
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error ?? new Error(`open of ${name} v${version} failed`));
    request.onblocked = () => reject(new Error(`open of ${name} v${version} is blocked by an open connection`));
  });
}

function fill(db: IDBDatabase, records: readonly StoredRecord[], counters: Record<string, number>): Promise<void> {
  return new Promise((resolve, reject) => {
    const tx = db.transaction(['records', 'counters'], 'readwrite');
    for (const r of records) tx.objectStore('records').put(r);
    for (const [name, value] of Object.entries(counters)) tx.objectStore('counters').put(value, name);
    tx.oncomplete = () => resolve();
    tx.onabort = () => reject(tx.error ?? new Error('filling the old database failed'));
  });
}

export function runIdbUpgradeChecks(t: ContractRegistrar, name: string, target: UpgradeTarget): void {
  const suite = `IndexedDB upgrades (${name})`;

  t.test(
    `${suite} › from version 1: the first record of each (actor, thread, clock) stays, the rest are set aside and counted`,
    async () => {
      const dbName = target.freshName();
      const [a, b] = [newActor(), newActor()];
      // A version-1 store in which two writers raced (before the check moved into the transaction).
      const kept = await storedNote(a, { clock: 4, text: 'kept', receivedAt: T0 + 1 });
      const racedLater = await storedNote(a, { clock: 4, text: 'raced later', receivedAt: T0 + 2 });
      const third = await storedNote(a, { clock: 4, text: 'raced third', receivedAt: T0 + 3 });
      const tieOne = await storedNote(b, { clock: 0, text: 'tie one', receivedAt: T0 });
      const tieTwo = await storedNote(b, { clock: 0, text: 'tie two', receivedAt: T0 });
      const [tieFirst, tieSecond] = tieOne.id < tieTwo.id ? [tieOne, tieTwo] : [tieTwo, tieOne]; // same arrival: the smaller ID
      const alone = await storedNotes(a, 3, 'th_alone');
      const v1 = await openAtVersion(target.factory, dbName, 1);
      try {
        assert.equal(v1.objectStoreNames.contains('records_equivocated'), false, 'version 1 has no records_equivocated');
        assert.equal(v1.transaction('records').objectStore('records').index('actor_thread_clock').unique, false, 'version 1 index');
        // Put in an order that is not the arrival order: the upgrade goes by receivedAt.
        await fill(v1, [third, racedLater, ...alone, tieSecond, kept, tieFirst], { records_refused_clock_reused: 2 });
      } finally {
        v1.close();
      }

      const store = await openIdbPeerStore(dbName, target.factory);
      try {
        assert.deepEqual(await store.recordsByThread('th_test'), [tieFirst, kept], 'one record per slot, kept whole');
        assert.deepEqual(await store.recordsByThread('th_alone'), alone, 'records alone in their slot are untouched');
        assert.equal((await store.getCounters()).records_refused_clock_reused, 2 + 3, 'set-aside records counted as refused');
        // From now on the store refuses them itself; the kept one is a duplicate.
        assert.deepEqual(await store.ingest([racedLater, kept, tieSecond]), {
          inserted: [],
          duplicates: [kept.id],
          refused: [racedLater.id, tieSecond.id],
        });
      } finally {
        await store.close();
      }
      const db = await new Promise<IDBDatabase>((resolve, reject) => {
        const request = target.factory.open(dbName);
        request.onsuccess = () => resolve(request.result);
        request.onerror = () => reject(request.error ?? new Error('reopen failed'));
      });
      try {
        assert.equal(db.version, IDB_SCHEMA_VERSION, 'schema version');
        const tx = db.transaction(['records', 'records_equivocated']);
        assert.equal(tx.objectStore('records').index('actor_thread_clock').unique, true, 'the slot index is unique');
        const aside = (await answer(tx.objectStore('records_equivocated').getAll())) as StoredRecord[];
        assert.deepEqual(ids(aside).sort(), ids([racedLater, third, tieSecond]).sort(), 'set aside, as evidence');
        assert.deepEqual(
          aside.find((r) => r.id === third.id),
          third,
          'kept whole',
        );
      } finally {
        db.close();
      }
    },
  );

  t.test(`${suite} › from version 1 with nothing to set aside: records and counters carried over`, async () => {
    const dbName = target.freshName();
    const a = newActor();
    const records = await storedNotes(a, 50, 'th_many');
    const v1 = await openAtVersion(target.factory, dbName, 1);
    try {
      await fill(v1, records, { records_ingested: 50 });
    } finally {
      v1.close();
    }
    const store = await openIdbPeerStore(dbName, target.factory);
    try {
      assert.deepEqual(await store.recordsByThread('th_many'), records, 'every record');
      const counters = await store.getCounters();
      assert.equal(counters.records_ingested, 50, 'counters');
      assert.equal(counters.records_refused_clock_reused, 0, 'nothing refused');
      assert.equal(await store.maxClock(a.did, 'th_many'), 49, 'the slot index serves maxClock');
    } finally {
      await store.close();
    }
  });
}

/** Every test name the upgrade checks register, without running anything. */
export function idbUpgradeTestNames(name: string): string[] {
  return collectTestNames((t) => runIdbUpgradeChecks(t, name, { factory: undefined as unknown as IDBFactory, freshName: () => '' }));
}
