/**
 * The IndexedDB peer store's write transactions and their helpers (./idb.ts holds the rule:
 * inside a transaction only requests of that transaction are awaited).
 */
import type { IDBPObjectStore, StoreNames } from 'idb';
import type { PeerDbSchema } from './idb-schema';
import { ingestCounters, type CounterDelta, type CounterName, type IngestResult, type OutboxEntry, type StoredRecord } from './types';

/**
 * Issues a write without awaiting it. Its outcome is the transaction's: a failing request aborts
 * the transaction and rejects `tx.done`, which the caller awaits; the request's own promise is
 * silenced so an abort does not also surface as N unhandled rejections.
 */
export function issue(request: Promise<unknown>): void {
  request.catch(() => undefined);
}

/** Aborts a transaction that is being abandoned, so none of its issued writes commit. */
export function abandon(tx: { abort(): void; done: Promise<void> }): void {
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
export async function addCounters<S extends StoreNames<PeerDbSchema>[]>(
  counters: IDBPObjectStore<PeerDbSchema, S, 'counters', 'readwrite'>,
  delta: CounterDelta,
): Promise<void> {
  const changes = (Object.entries(delta) as [CounterName, number | undefined][]).filter(
    (e): e is [CounterName, number] => e[1] !== undefined && e[1] !== 0,
  );
  const current = await Promise.all(changes.map(([name]) => counters.get(name)));
  changes.forEach(([name, by], i) => issue(counters.put((current[i] ?? 0) + by, name)));
}

/** Calls `then` once the last of `requests` succeeds (requests of a transaction answer in order), or now if there are none. */
function afterAll(requests: readonly IDBRequest[], then: () => void): void {
  const last = requests[requests.length - 1];
  if (last) last.onsuccess = then;
  else then();
}

/**
 * One ingest transaction on the raw IndexedDB API: on batches of thousands, per-request promises
 * (idb's wrapper) or even per-request handlers cost more than the writes themselves (measured in
 * Chromium: setting `onsuccess`/`onerror` on each request was a third of the main thread's time).
 *
 * So the records are `add`ed with no handler at all. `add` refuses with a ConstraintError both an
 * ID already stored and, through the unique actor_thread_clock index, a slot another ID holds
 * (§3 clock_reused; earlier in the batch included): one capture listener on the transaction stops
 * those events before they can abort the transaction or reach anyone else, and notes the request.
 * Requests answer in order, so once a read issued after the adds answers, every add has; the
 * refused adds' IDs are then looked up (present: a duplicate; absent: a reused clock), and the
 * counters read and written, all in this one transaction: no other writer (the page, the service
 * worker) can take a slot between the check and the insert.
 */
export function ingestTransaction(
  db: IDBDatabase,
  records: readonly StoredRecord[],
  counters: CounterDelta,
  outbox: readonly OutboxEntry[],
  senders: readonly (string | undefined)[],
): Promise<IngestResult> {
  return new Promise((resolve, reject) => {
    // Strict: the engine acks at the relay once this resolves, after which the relay forgets the
    // envelope; Chromium's default ("relaxed", no flush) could lose acked records on power loss.
    const tx = db.transaction(['records', 'counters', 'outbox'], 'readwrite', { durability: 'strict' });
    const constrained = new Set<IDBRequest>();
    let result: IngestResult | undefined;
    let failure: Error | undefined;
    tx.addEventListener(
      'error',
      (event) => {
        const request = event.target;
        if (request instanceof IDBRequest && request.error?.name === 'ConstraintError' && request.source === recordStore) {
          event.preventDefault(); // a duplicate or a refusal, not a failure of the batch
          event.stopPropagation();
          constrained.add(request);
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
    afterAll([counterStore.count()], () => {
      const notAdded = adds.flatMap((request, i) => (constrained.has(request) ? [i] : []));
      const lookups = lookUpHeld(recordStore, records, notAdded);
      afterAll(lookups.requests, () => {
        const held = lookups.held();
        const refusedAt = new Set(notAdded.filter((i) => !held.has(records[i]!.id)));
        const inserted: string[] = [];
        const duplicates: string[] = [];
        const refused: string[] = [];
        records.forEach((r, i) => {
          if (refusedAt.has(i)) refused.push(r.id);
          else (constrained.has(adds[i]!) ? duplicates : inserted).push(r.id);
        });
        const refusedSenders = [...refusedAt].map((i) => senders[i]);
        const delta = ingestCounters(counters, inserted.length, duplicates.length, refusedSenders);
        const changes = (Object.entries(delta) as [CounterName, number | undefined][]).filter(
          (e): e is [CounterName, number] => e[1] !== undefined && e[1] !== 0,
        );
        const reads = changes.map(([name]) => counterStore.get(name));
        afterAll(reads, () => {
          changes.forEach(([name, by], i) => counterStore.put(((reads[i]!.result as number | undefined) ?? 0) + by, name));
          result = { inserted, duplicates, refused };
        });
      });
    });
  });
}

/** From this many failed adds of one (actor, thread) on, its slot range is read whole. */
const RANGE_READ_FROM = 8;

/**
 * Which of the records at `indexes` (adds that met a ConstraintError) are stored under their own
 * ID: those are duplicates, the others reused clocks. Per (actor, thread), one read of the slot
 * index's primary keys over the clocks concerned instead of one lookup per record (measured in
 * Chromium, a redelivered batch of 2,000: 240 ms with a lookup each, 100 ms this way, as before
 * the check moved here); a stored record with our ID holds our slot, so it is in that range.
 * Own clocks take the time in ms as a floor (sync/emit.ts), so a batch's clocks lie far apart and
 * the span says nothing of how many records the range holds: at most that author's records on the
 * thread, keys only. A few records are looked up one by one instead.
 */
function lookUpHeld(
  recordStore: IDBObjectStore,
  records: readonly StoredRecord[],
  indexes: readonly number[],
): { requests: IDBRequest[]; held: () => Set<string> } {
  const groups = new Map<string, { actor: string; thread: string; members: StoredRecord[] }>();
  for (const i of indexes) {
    const r = records[i]!;
    const key = `${r.actor}\u0000${r.thread}`;
    let group = groups.get(key);
    if (!group) groups.set(key, (group = { actor: r.actor, thread: r.thread, members: [] }));
    group.members.push(r);
  }
  const ranges: IDBRequest[] = [];
  const single: IDBRequest[] = [];
  const issued: IDBRequest[] = []; // in issue order: the last one answers last
  const slots = recordStore.index('actor_thread_clock');
  for (const { actor, thread, members } of groups.values()) {
    if (members.length >= RANGE_READ_FROM) {
      const clocks = members.map((r) => r.clock);
      const [low, high] = [Math.min(...clocks), Math.max(...clocks)];
      const range = slots.getAllKeys(IDBKeyRange.bound([actor, thread, low], [actor, thread, high]));
      ranges.push(range);
      issued.push(range);
    } else {
      for (const r of members) {
        const probe = recordStore.getKey(r.id);
        single.push(probe);
        issued.push(probe);
      }
    }
  }
  return {
    requests: issued,
    held: () => {
      const ids = new Set<string>();
      for (const request of ranges) for (const id of request.result as string[]) ids.add(id);
      for (const request of single) if (request.result !== undefined) ids.add(request.result as string);
      return ids;
    },
  };
}

/**
 * appendOwn on the raw API: the newest clock of the record's (actor, thread) is read and the
 * record added in one readwrite transaction, which IndexedDB runs alone against every other
 * writer of the records store (page and service worker included).
 */
export function appendOwnTransaction(db: IDBDatabase, record: StoredRecord, outbox: readonly OutboxEntry[]): Promise<boolean> {
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
