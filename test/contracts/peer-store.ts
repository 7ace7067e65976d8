/**
 * The PeerStore contract (src/store/types.ts): every adapter runs this one suite, in Node under
 * vitest and, for IndexedDB, also in real Chromium (./peer-store.browser-entry.ts). Shape and
 * registrar: ./registrar.ts.
 */
import {
  COUNTER_NAMES,
  type Counters,
  type OutboxEntry,
  type PeerStore,
  type ReceiveState,
  type StoredRecord,
} from '../../src/store/types';
import { assert } from './assert';
import { DAY, T0, identityOf, invite, newActor, outboxEntry, storedNote, storedNotes, toStored, type TestActor } from '../store/fixtures';
import {
  collectTestNames,
  storeTest,
  type ContractRegistrar,
  type StoreUnderTest,
  type StoreCapabilities,
  type StoreFactory,
} from './registrar';

export type { StoreCapabilities } from './registrar';

/** Opens a fresh, empty PeerStore. */
export type PeerStoreFactory = StoreFactory<PeerStore>;

export const BATCH_SIZE = 2_000;

const ZERO_COUNTERS = Object.fromEntries(COUNTER_NAMES.map((n) => [n, 0])) as Record<keyof Counters, number>;

/** (clock, actor, id): the order recordsByThread promises. */
function byClockActorId(a: StoredRecord, b: StoredRecord): number {
  if (a.clock !== b.clock) return a.clock - b.clock;
  if (a.actor !== b.actor) return a.actor < b.actor ? -1 : 1;
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}

const ids = (records: readonly { id: string }[]) => records.map((r) => r.id);

/** A copy of `r` whose body throws when read: neither IndexedDB (clone) nor SQLite (serialise) can store it. */
function unstorable(r: StoredRecord): StoredRecord {
  const record = { ...r.signed.record };
  Object.defineProperty(record, 'body', {
    enumerable: true,
    get() {
      throw new Error('poisoned body');
    },
  });
  return { ...r, signed: { ...r.signed, record } };
}

export function runPeerStoreContract(t: ContractRegistrar, name: string, factory: PeerStoreFactory, capabilities: StoreCapabilities): void {
  const test: (title: string, fn: (opened: StoreUnderTest<PeerStore>) => Promise<void>) => void = storeTest(
    t,
    `PeerStore contract (${name})`,
    factory,
  );

  // One pair of actors for the whole suite: signing keys are cheap, but there is no need to churn.
  let actors: { a: TestActor; b: TestActor } | undefined;
  const getActors = () => (actors ??= { a: newActor(), b: newActor() });

  // ---- identity ------------------------------------------------------------------------------

  test('identity: absent at first, created once, secret key kept as bytes', async ({ store }) => {
    const { a, b } = getActors();
    assert.equal(await store.getIdentity(), undefined, 'fresh store');
    await store.createIdentity(identityOf(a));
    const got = await store.getIdentity();
    assert.deepEqual(got, identityOf(a));
    assert.ok(got?.secretKey instanceof Uint8Array && got.secretKey.length === 32, 'secretKey is a 32-byte Uint8Array');
    await assert.rejects(store.createIdentity(identityOf(b, 'phone')), /identity/i, 'second createIdentity');
    assert.deepEqual(await store.getIdentity(), identityOf(a), 'the first identity is untouched');
  });

  test('identity: of two concurrent creates exactly one succeeds', async ({ store }) => {
    const { a, b } = getActors();
    const outcomes = await Promise.allSettled([store.createIdentity(identityOf(a)), store.createIdentity(identityOf(b, 'phone'))]);
    const winners = outcomes.map((o) => o.status === 'fulfilled');
    assert.equal(winners.filter(Boolean).length, 1, 'successful creates');
    assert.deepEqual(await store.getIdentity(), winners[0] ? identityOf(a) : identityOf(b, 'phone'));
  });

  // ---- records -------------------------------------------------------------------------------

  test('ingest: stores new records in input order and returns them exactly', async ({ store }) => {
    const { a, b } = getActors();
    const records = [
      await storedNote(a, { clock: 0, path: 'relay', via: 'https://relay.one', receivedAt: T0 + 1 }),
      await storedNote(b, { clock: 0, path: 'direct', receivedAt: T0 + 2 }),
      await storedNote(a, { clock: 1, path: 'local', receivedAt: T0 + 3 }),
    ];
    assert.deepEqual(await store.ingest(records), { inserted: ids(records), duplicates: [], refused: [] });
    for (const r of records) assert.deepEqual(await store.getRecord(r.id), r, `getRecord(${r.path})`);
    assert.equal(await store.getRecord('0'.repeat(64)), undefined, 'unknown ID');
    assert.equal(await store.countRecords(), 3);
  });

  test('ingest: re-delivery is idempotent; counters (given and record counts) are bumped in the same call', async ({ store }) => {
    const { a } = getActors();
    const first = await storedNotes(a, 3);
    const r1 = await store.ingest(first, { envelopes_received: 1 });
    assert.deepEqual(r1, { inserted: ids(first), duplicates: [], refused: [] });
    // Same IDs, different arrival facts: nothing may be overwritten.
    const again = first.map((r) => toStored(r.signed, { receivedAt: T0 + DAY, path: 'direct' }));
    const r2 = await store.ingest(again, { envelopes_redelivered: 1 });
    assert.deepEqual(r2, { inserted: [], duplicates: ids(first), refused: [] });
    assert.equal(await store.countRecords(), 3, 'nothing stored twice');
    for (const r of first) assert.deepEqual(await store.getRecord(r.id), r, 'first arrival kept');
    assert.deepEqual(await store.getCounters(), {
      ...ZERO_COUNTERS,
      records_ingested: 3,
      envelopes_received: 1,
      records_duplicate: 3,
      envelopes_redelivered: 1,
    });
  });

  test('ingest: a mixed batch reports new and duplicate IDs in input order', async ({ store }) => {
    const { a } = getActors();
    const [r0, r1, r2, r3] = (await storedNotes(a, 4)) as [StoredRecord, StoredRecord, StoredRecord, StoredRecord];
    await store.ingest([r1, r3]);
    // r2 appears twice within the batch: its second occurrence is a duplicate of the first.
    const result = await store.ingest([r0, r1, r2, r3, r2]);
    assert.deepEqual(result, { inserted: [r0.id, r2.id], duplicates: [r1.id, r3.id, r2.id], refused: [] });
    assert.equal(await store.countRecords(), 4);
    assert.deepEqual(await store.getCounters(), { ...ZERO_COUNTERS, records_ingested: 4, records_duplicate: 3 }, 'counted by the store');
  });

  test('ingest: outbox entries given with the records commit with them, or not at all', async ({ store }) => {
    const { a, b } = getActors();
    const [r0, r1] = (await storedNotes(a, 2)) as [StoredRecord, StoredRecord];
    const entry = await outboxEntry(a, b, { id: 'env_with_record' });
    assert.deepEqual(await store.ingest([r0], {}, [entry]), { inserted: [r0.id], duplicates: [], refused: [] });
    assert.deepEqual(await store.getOutbox('env_with_record'), entry, 'queued with its record');
    const poisoned = unstorable(r1);
    const other = await outboxEntry(a, b, { id: 'env_never' });
    await assert.rejects(store.ingest([poisoned], {}, [other]), undefined, 'ingest with an unstorable record');
    assert.equal(await store.getOutbox('env_never'), undefined, 'no outbox entry without its record');
  });

  test('ingest: an empty batch still bumps its counters', async ({ store }) => {
    assert.deepEqual(await store.ingest([], { envelopes_rejected: 2, records_dropped_unpaired: 1 }), {
      inserted: [],
      duplicates: [],
      refused: [],
    });
    assert.deepEqual(await store.getCounters(), { ...ZERO_COUNTERS, envelopes_rejected: 2, records_dropped_unpaired: 1 });
  });

  test('ingest: a batch that fails part-way writes nothing, counters included', async ({ store }) => {
    const { a } = getActors();
    const [good0, good1] = (await storedNotes(a, 2)) as [StoredRecord, StoredRecord];
    const bad = await storedNote(a, { clock: 7 });
    const poisoned = unstorable(bad);
    await assert.rejects(store.ingest([good0, poisoned, good1], { envelopes_received: 1 }), undefined, 'ingest with an unstorable record');
    assert.equal(await store.countRecords(), 0, 'no record of the failed batch');
    assert.equal(await store.getRecord(good0.id), undefined, 'the record before the bad one');
    assert.deepEqual(await store.getCounters(), ZERO_COUNTERS, 'no counter of the failed batch');
    // The store is still usable afterwards.
    assert.deepEqual(await store.ingest([good0, good1]), { inserted: [good0.id, good1.id], duplicates: [], refused: [] });
  });

  test('ingest: concurrent overlapping batches store every ID exactly once', async ({ store }) => {
    const { a } = getActors();
    const all = await storedNotes(a, 15);
    const [x, y] = await Promise.all([store.ingest(all.slice(0, 10)), store.ingest(all.slice(5, 15))]);
    const inserted = [...x.inserted, ...y.inserted].sort();
    assert.deepEqual(inserted, ids(all).sort(), 'each ID inserted by exactly one call');
    assert.deepEqual([...x.duplicates, ...y.duplicates].sort(), ids(all.slice(5, 10)).sort(), 'the overlap is duplicate once');
    assert.equal(await store.countRecords(), 15);
  });

  // ---- §3: one record per (actor, thread, clock) ---------------------------------------------

  test('ingest: a record at a clock another ID holds is refused as clock_reused, counted per sender', async ({ store }) => {
    const { a, b } = getActors();
    const first = await storedNote(a, { clock: 3, text: 'first at 3' });
    assert.deepEqual(await store.ingest([first]), { inserted: [first.id], duplicates: [], refused: [] });
    const second = await storedNote(a, { clock: 3, text: 'second at 3', receivedAt: T0 + 1 });
    const unvouched = await storedNote(a, { clock: 3, text: 'third at 3', receivedAt: T0 + 1 });
    const lower = await storedNote(a, { clock: 2, receivedAt: T0 + 1 }); // out of order is normal
    const otherActor = await storedNote(b, { clock: 3, receivedAt: T0 + 1 });
    const otherThread = await storedNote(a, { clock: 3, thread: 'th_other', receivedAt: T0 + 1 });
    const result = await store.ingest(
      [second, lower, first, otherActor, unvouched, otherThread, second],
      { envelopes_received: 1 },
      [],
      [b.did, b.did, b.did, b.did, undefined, b.did, a.did],
    );
    assert.deepEqual(result, {
      inserted: [lower.id, otherActor.id, otherThread.id],
      duplicates: [first.id], // the same record again is idempotent, not equivocation
      refused: [second.id, unvouched.id, second.id],
    });
    assert.equal(await store.getRecord(second.id), undefined, 'nothing stored for a refused record');
    assert.equal(await store.getRecord(unvouched.id), undefined, 'nor for one refused without a sender');
    assert.deepEqual(
      ids((await store.recordsByThread('th_test')).filter((r) => r.actor === a.did)),
      [lower.id, first.id],
      'the first kept',
    );
    assert.deepEqual(await store.getCounters(), {
      ...ZERO_COUNTERS,
      envelopes_received: 1,
      records_ingested: 4,
      records_duplicate: 1,
      records_refused_clock_reused: 3,
    });
    const drops = (await store.dropCounts()).sort((x, y) => (x.sender < y.sender ? -1 : 1));
    const expected = [
      { reason: 'clock_reused', sender: a.did, count: 1 },
      { reason: 'clock_reused', sender: b.did, count: 1 },
    ].sort((x, y) => (x.sender < y.sender ? -1 : 1));
    assert.deepEqual(drops, expected, 'per sender, when the caller names one');
    assert.equal(await store.appendOwn(await storedNote(a, { clock: 3, text: 'own at 3' })), false, 'appendOwn agrees');
  });

  test('ingest: within one batch the earlier record of a clock wins', async ({ store }) => {
    const { a } = getActors();
    const earlier = await storedNote(a, { clock: 5, text: 'earlier' });
    const later = await storedNote(a, { clock: 5, text: 'later' });
    const result = await store.ingest([earlier, later, later, earlier]);
    assert.deepEqual(result, { inserted: [earlier.id], duplicates: [earlier.id], refused: [later.id, later.id] });
    assert.deepEqual(await store.recordsByThread('th_test'), [earlier]);
    // The order decides, not the content: the other way round the other one stays.
    const flipped = [await storedNote(a, { clock: 6, text: 'later' }), await storedNote(a, { clock: 6, text: 'earlier' })];
    assert.deepEqual(await store.ingest(flipped), { inserted: [flipped[0]!.id], duplicates: [], refused: [flipped[1]!.id] });
    assert.equal((await store.getCounters()).records_refused_clock_reused, 3);
  });

  test('ingest: duplicates and reused clocks are told apart however far apart their clocks lie', async ({ store }) => {
    const { a, b } = getActors();
    const far = Number.MAX_SAFE_INTEGER;
    const held = [await storedNote(a, { clock: 0 }), await storedNote(a, { clock: far }), await storedNote(b, { clock: 7 })];
    await store.ingest(held);
    const rivals = [
      await storedNote(a, { clock: 0, text: 'rival at 0' }),
      await storedNote(a, { clock: far, text: 'rival at the end' }),
      await storedNote(b, { clock: 7, text: 'rival at 7' }),
    ];
    const result = await store.ingest([rivals[0]!, held[1]!, held[0]!, rivals[1]!, held[2]!, rivals[2]!]);
    assert.deepEqual(result, {
      inserted: [],
      duplicates: [held[1]!.id, held[0]!.id, held[2]!.id],
      refused: [rivals[0]!.id, rivals[1]!.id, rivals[2]!.id],
    });
    assert.equal(await store.countRecords(), 3);
  });

  test('ingest: duplicates and reused clocks told apart in a batch whose clocks are times ms apart', async ({ store }) => {
    const { a } = getActors();
    // As own clocks are now (the time as a floor): 12 notes an hour apart, a stranger's note between.
    const clocks = Array.from({ length: 12 }, (_, i) => T0 + i * 3_600_000);
    const held = await Promise.all(clocks.map((clock) => storedNote(a, { clock })));
    await store.ingest(held);
    const rivals = await Promise.all(clocks.filter((_, i) => i % 3 === 0).map((clock) => storedNote(a, { clock, text: `rival ${clock}` })));
    const result = await store.ingest([...held, ...rivals]);
    assert.deepEqual(result, { inserted: [], duplicates: ids(held), refused: ids(rivals) });
    assert.equal(await store.countRecords(), held.length);
  });

  test('ingest: of concurrent ingests offering one clock exactly one stores it, on one connection or two', async ({ store, reopen }) => {
    const { a } = getActors();
    const second = reopen ? await reopen() : store;
    try {
      for (let clock = 0; clock < 4; clock++) {
        const x = await storedNote(a, { clock, text: `x at ${clock}` });
        const y = await storedNote(a, { clock, text: `y at ${clock}` });
        // Each side also brings a record of its own, so neither transaction is trivially empty.
        const mineX = await storedNote(a, { clock, thread: 'th_x' });
        const mineY = await storedNote(a, { clock, thread: 'th_y' });
        const [rx, ry] = await Promise.all([
          (clock % 2 ? second : store).ingest([mineX, x], {}, [], ['did:key:zSenderX', 'did:key:zSenderX']),
          (clock % 2 ? store : second).ingest([mineY, y], {}, [], ['did:key:zSenderY', 'did:key:zSenderY']),
        ]);
        const winners = [...rx.inserted, ...ry.inserted].filter((id) => id === x.id || id === y.id);
        assert.equal(winners.length, 1, `one record stored at clock ${clock}`);
        const loser = winners[0] === x.id ? y.id : x.id;
        assert.deepEqual([...rx.refused, ...ry.refused], [loser], `the other refused at clock ${clock}`);
        assert.deepEqual([...rx.duplicates, ...ry.duplicates], [], 'no duplicates');
        assert.deepEqual(
          ids((await store.recordsByThread('th_test')).filter((r) => r.clock === clock)),
          winners,
          `only the winner holds clock ${clock}`,
        );
        assert.equal(await store.getRecord(mineX.id).then((r) => r?.id), mineX.id, 'the rest of each batch is stored');
        assert.equal(await second.getRecord(mineY.id).then((r) => r?.id), mineY.id);
      }
      assert.equal((await store.getCounters()).records_refused_clock_reused, 4);
      const perSender = (await store.dropCounts()).reduce((n, d) => n + d.count, 0);
      assert.equal(perSender, 4, 'each refusal counted under its sender');
    } finally {
      if (second !== store) await second.close();
    }
  });

  test('ingest: the same record offered concurrently is stored once, never refused', async ({ store, reopen }) => {
    const { a } = getActors();
    const second = reopen ? await reopen() : store;
    try {
      const batch = await storedNotes(a, 5);
      const [one, two] = await Promise.all([store.ingest(batch), second.ingest([...batch].reverse())]);
      assert.deepEqual([...one.refused, ...two.refused], [], 'no refusals');
      assert.deepEqual([...one.inserted, ...two.inserted].sort(), ids(batch).sort(), 'each inserted once');
      assert.deepEqual([...one.duplicates, ...two.duplicates].sort(), ids(batch).sort(), 'and once a duplicate');
      assert.equal(await store.countRecords(), 5);
      assert.equal((await store.getCounters()).records_refused_clock_reused, 0);
    } finally {
      if (second !== store) await second.close();
    }
  });

  test('appendOwn: a fresh clock is stored with its outbox entries; a taken one writes nothing', async ({ store }) => {
    const { a, b } = getActors();
    const first = await storedNote(a, { clock: 5, text: 'first' });
    const queued = await outboxEntry(a, b, { id: 'env_first' });
    assert.equal(await store.appendOwn(first, [queued]), true, 'clock 5 on an empty thread');
    assert.deepEqual(await store.getRecord(first.id), first);
    assert.deepEqual(await store.getOutbox('env_first'), queued, 'queued with its record');
    assert.equal((await store.getCounters()).records_ingested, 1, 'counted as ingest counts');
    for (const clock of [5, 3]) {
      const late = await storedNote(a, { clock, text: `late ${clock}` });
      assert.equal(await store.appendOwn(late, [await outboxEntry(a, b, { id: `env_late_${clock}` })]), false, `clock ${clock} after 5`);
      assert.equal(await store.getRecord(late.id), undefined, `nothing stored for clock ${clock}`);
      assert.equal(await store.getOutbox(`env_late_${clock}`), undefined, `nothing queued for clock ${clock}`);
    }
    assert.equal((await store.getCounters()).records_ingested, 1, 'refusals are not counted');
    // Strictly increasing per (actor, thread): other actors and other threads have clocks of their own.
    assert.equal(await store.appendOwn(await storedNote(b, { clock: 0 })), true, 'another actor');
    assert.equal(await store.appendOwn(await storedNote(a, { clock: 0, thread: 'th_other' })), true, 'another thread');
    assert.equal(await store.appendOwn(await storedNote(a, { clock: 6, text: 'next' })), true, 'the next clock');
    assert.equal(await store.maxClock(a.did, 'th_test'), 6);
  });

  test('appendOwn: of writers racing for one clock exactly one wins, on one connection or two', async ({ store, reopen }) => {
    const { a } = getActors();
    const second = reopen ? await reopen() : store;
    try {
      for (const clock of [0, 1]) {
        const racers = await Promise.all(Array.from({ length: 6 }, (_, i) => storedNote(a, { clock, text: `racer ${clock}.${i}` })));
        const results = await Promise.all(racers.map((r, i) => (i % 2 ? second : store).appendOwn(r)));
        assert.equal(results.filter(Boolean).length, 1, `one winner for clock ${clock}`);
        const stored = (await store.recordsByThread('th_test')).filter((r) => r.clock === clock);
        assert.deepEqual(ids(stored), [racers[results.indexOf(true)]!.id], `only the winner holds clock ${clock}`);
      }
    } finally {
      if (second !== store) await second.close();
    }
  });

  test('hasRecords: the subset of IDs present', async ({ store }) => {
    const { a } = getActors();
    const [r0, r1, r2] = (await storedNotes(a, 3)) as [StoredRecord, StoredRecord, StoredRecord];
    await store.ingest([r0, r2]);
    assert.deepEqual(await store.hasRecords([r0.id, r1.id, r2.id, 'f'.repeat(64), r0.id]), new Set([r0.id, r2.id]));
    assert.deepEqual(await store.hasRecords([]), new Set<string>());
  });

  test('recordsByThread: ordered by (clock, actor, id), other threads excluded', async ({ store }) => {
    const { a, b } = getActors();
    const mine = await Promise.all([
      storedNote(a, { clock: 10 }),
      storedNote(a, { clock: 9 }), // numeric, not text, order: 9 before 10
      storedNote(b, { clock: 1 }),
      storedNote(a, { clock: 1 }),
      storedNote(b, { clock: 0 }),
      storedNote(a, { clock: 3 }), // same clock: ordered by actor (one record per (actor, thread, clock), §3)
      storedNote(b, { clock: 3 }),
    ]);
    const other = await storedNote(a, { thread: 'th_other', clock: 2 });
    await store.ingest([...mine.slice(4), other, ...mine.slice(0, 4)]);
    const expected = [...mine].sort(byClockActorId);
    assert.deepEqual(ids(await store.recordsByThread('th_test')), ids(expected));
    assert.deepEqual(await store.recordsByThread('th_test'), expected, 'full records');
    assert.deepEqual(await store.recordsByThread('th_other'), [other]);
    assert.deepEqual(await store.recordsByThread('th_none'), []);
  });

  test('maxClock: highest clock per (actor, thread), -1 when none', async ({ store }) => {
    const { a, b } = getActors();
    assert.equal(await store.maxClock(a.did, 'th_test'), -1, 'empty store');
    await store.ingest(await Promise.all([0, 10, 9, 2].map((clock) => storedNote(a, { clock }))));
    await store.ingest([await storedNote(b, { clock: 500, thread: 'th_other' })]);
    assert.equal(await store.maxClock(a.did, 'th_test'), 10, 'numeric maximum');
    assert.equal(await store.maxClock(b.did, 'th_test'), -1, 'other actor on this thread');
    assert.equal(await store.maxClock(a.did, 'th_other'), -1, 'this actor on another thread');
    assert.equal(await store.maxClock(b.did, 'th_other'), 500);
    await store.ingest([await storedNote(a, { clock: Number.MAX_SAFE_INTEGER })]);
    assert.equal(await store.maxClock(a.did, 'th_test'), Number.MAX_SAFE_INTEGER, 'the largest allowed clock survives');
  });

  test('threads: count and newest arrival per thread', async ({ store }) => {
    const { a, b } = getActors();
    assert.deepEqual(await store.threads(), [], 'empty store');
    await store.ingest([
      await storedNote(a, { thread: 'th_a', clock: 0, receivedAt: T0 + 5 }),
      await storedNote(a, { thread: 'th_a', clock: 1, receivedAt: T0 + 50 }),
      await storedNote(b, { thread: 'th_a', clock: 0, receivedAt: T0 + 7 }), // newest is not the last ingested
      await storedNote(b, { thread: 'th_b', clock: 0, receivedAt: T0 + 1 }),
    ]);
    await store.ingest([await storedNote(a, { thread: 'th_c', clock: 0, receivedAt: T0 })]);
    const threads = (await store.threads()).sort((x, y) => (x.thread < y.thread ? -1 : 1));
    assert.deepEqual(threads, [
      { thread: 'th_a', count: 3, lastReceivedAt: T0 + 50 },
      { thread: 'th_b', count: 1, lastReceivedAt: T0 + 1 },
      { thread: 'th_c', count: 1, lastReceivedAt: T0 },
    ]);
  });

  test('recordsArrivedSince: the thread count, and its records from an arrival time on, by arrival then ID', async ({ store }) => {
    const { a, b } = getActors();
    assert.deepEqual(await store.recordsArrivedSince('th_a', T0), { total: 0, records: [] }, 'empty store');
    const early = await storedNote(a, { thread: 'th_a', clock: 0, receivedAt: T0 + 5 });
    const late = await storedNote(a, { thread: 'th_a', clock: 1, receivedAt: T0 + 50 });
    const sameMs = await storedNote(b, { thread: 'th_a', clock: 0, receivedAt: T0 + 50 });
    const middle = await storedNote(b, { thread: 'th_a', clock: 1, receivedAt: T0 + 20 });
    await store.ingest([late, early, sameMs, middle, await storedNote(a, { thread: 'th_b', clock: 0, receivedAt: T0 + 60 })]);
    const since = (at: number) => store.recordsArrivedSince('th_a', at).then((r) => ({ total: r.total, ids: r.records.map((x) => x.id) }));
    const atFifty = [late.id, sameMs.id].sort();
    assert.deepEqual(await since(T0 + 50), { total: 4, ids: atFifty }, 'from the newest arrival: both of that ms, by ID');
    assert.deepEqual(await since(T0 + 6), { total: 4, ids: [middle.id, ...atFifty] }, 'between arrivals');
    assert.deepEqual(await since(Number.MIN_SAFE_INTEGER), { total: 4, ids: [early.id, middle.id, ...atFifty] }, 'from the start');
    assert.deepEqual(await since(T0 + 51), { total: 4, ids: [] }, 'after the newest: only the count');
    assert.deepEqual(await store.recordsArrivedSince('th_none', 0), { total: 0, records: [] }, 'another thread');
  });

  test(`ingest: one batch of ${BATCH_SIZE} signed records, then its re-delivery`, async ({ store }) => {
    const { a, b } = getActors();
    const half = BATCH_SIZE / 2;
    const batch = [...(await storedNotes(a, half, 'th_bulk')), ...(await storedNotes(b, half, 'th_bulk'))];
    let started = performance.now();
    const result = await store.ingest(batch);
    const ingestMs = performance.now() - started;
    assert.equal(result.inserted.length, BATCH_SIZE, 'inserted');
    assert.deepEqual(result.inserted, ids(batch), 'inserted in input order');
    assert.equal(await store.countRecords(), BATCH_SIZE);
    assert.equal(await store.maxClock(b.did, 'th_bulk'), half - 1);
    started = performance.now();
    const again = await store.ingest(batch);
    const redeliveryMs = performance.now() - started;
    assert.equal(again.duplicates.length, BATCH_SIZE, 'all duplicates the second time');
    assert.equal(again.inserted.length, 0);
    const byThread = await store.recordsByThread('th_bulk');
    assert.deepEqual(ids(byThread), ids([...batch].sort(byClockActorId)), 'thread order');
    assert.deepEqual(await store.getCounters(), { ...ZERO_COUNTERS, records_ingested: BATCH_SIZE, records_duplicate: BATCH_SIZE });
    t.note(`${name}: ingest of ${BATCH_SIZE} new records ${ingestMs.toFixed(0)} ms, re-delivery ${redeliveryMs.toFixed(0)} ms`);
  });

  // ---- outbox --------------------------------------------------------------------------------

  test('outbox: put, get, list oldest first, replace by id', async ({ store }) => {
    const { a, b } = getActors();
    const newer = await outboxEntry(a, b, { id: 'env_newer', createdAt: T0 + 2 });
    const older = await outboxEntry(a, b, { id: 'env_older', createdAt: T0 + 1 });
    await store.putOutbox([newer, older]);
    await store.putOutbox([]);
    assert.deepEqual(await store.getOutbox('env_newer'), newer);
    assert.equal(await store.getOutbox('env_unknown'), undefined);
    assert.deepEqual(await store.listOutbox(), [older, newer]);

    const delivered = { ...newer, path: 'relay' as const, attempts: 1, deliveredTo: 'https://relay.one', deliveredAt: T0 + 9 };
    await store.putOutbox([delivered]);
    assert.deepEqual(await store.getOutbox('env_newer'), delivered, 'replaced');
    // Replacing with an entry lacking the optional fields must drop them, not merge.
    const retrying = { ...newer, attempts: 2, nextAttemptAt: T0 + 60_000, lastError: 'HTTP 503' };
    await store.putOutbox([retrying]);
    assert.deepEqual(await store.getOutbox('env_newer'), retrying, 'replaced again');
    assert.deepEqual(await store.listOutbox(), [older, retrying], 'still two entries');
  });

  test('outbox: due = pending with nextAttemptAt <= now, oldest first', async ({ store }) => {
    const { a, b } = getActors();
    const now = T0 + 10;
    const e = (id: string, over: Partial<OutboxEntry>) => outboxEntry(a, b, { ...over, id });
    const dueLate = await e('due_late', { createdAt: T0 + 3, nextAttemptAt: T0 + 9 });
    const dueFirst = await e('due_first', { createdAt: T0 + 1, nextAttemptAt: T0 });
    const dueExactlyNow = await e('due_now', { createdAt: T0 + 2, nextAttemptAt: now });
    await store.putOutbox([
      dueLate,
      await e('not_yet', { createdAt: T0, nextAttemptAt: now + 1 }),
      dueFirst,
      await e('delivered', { createdAt: T0, nextAttemptAt: T0, path: 'relay', deliveredTo: 'https://relay.one', deliveredAt: T0 }),
      await e('rejected', { createdAt: T0, nextAttemptAt: T0, path: 'rejected', rejectedReason: 'HTTP 400' }),
      await e('direct', { createdAt: T0, nextAttemptAt: T0, path: 'direct' }),
      dueExactlyNow,
    ]);
    assert.deepEqual(await store.dueOutbox(now), [dueFirst, dueExactlyNow, dueLate]);
    assert.deepEqual(await store.dueOutbox(T0 - 1), []);
  });

  test('outbox: prune deletes entries whose retention has ended, whatever their state', async ({ store }) => {
    const { a, b } = getActors();
    const now = T0 + 10;
    const kept = await outboxEntry(a, b, { id: 'kept', expiresAt: now + 1 });
    await store.putOutbox([
      await outboxEntry(a, b, { id: 'expired', expiresAt: now - 5 }),
      await outboxEntry(a, b, { id: 'expires_now', expiresAt: now }),
      await outboxEntry(a, b, { id: 'rejected_expired', expiresAt: T0, path: 'rejected', rejectedReason: 'HTTP 400' }),
      kept,
    ]);
    assert.equal(await store.pruneOutbox(now), 3);
    assert.deepEqual(await store.listOutbox(), [kept]);
    assert.equal(await store.pruneOutbox(now), 0, 'nothing left to prune');
  });

  // ---- receive state, counters ---------------------------------------------------------------

  test('receive state: upsert replaces the whole state, list covers every relay', async ({ store }) => {
    const one: ReceiveState = { relayUrl: 'https://one.example', lastReceiveAt: T0, lastSuccessAt: T0, backlog: 40, lastLatencyMs: 120 };
    const two: ReceiveState = { relayUrl: 'https://two.example', backlog: 0, lastError: 'offline' };
    assert.equal(await store.getReceiveState(one.relayUrl), undefined);
    assert.deepEqual(await store.listReceiveStates(), []);
    await store.putReceiveState(one);
    await store.putReceiveState(two);
    assert.deepEqual(await store.getReceiveState(one.relayUrl), one);
    const oneFailed: ReceiveState = { relayUrl: one.relayUrl, lastReceiveAt: T0 + 5, backlog: 40, lastError: 'HTTP 502' };
    await store.putReceiveState(oneFailed);
    assert.deepEqual(await store.getReceiveState(one.relayUrl), oneFailed, 'replaced, absent fields dropped');
    const listed = (await store.listReceiveStates()).sort((x, y) => (x.relayUrl < y.relayUrl ? -1 : 1));
    assert.deepEqual(listed, [oneFailed, two]);
  });

  test('counters: every name starts at 0 and bumps accumulate', async ({ store }) => {
    assert.deepEqual(await store.getCounters(), ZERO_COUNTERS, 'fresh store');
    await store.bumpCounters({ envelopes_received: 2, direct_received: 1 });
    await store.bumpCounters({ envelopes_received: 3, records_rejected_invalid: 4 });
    await store.bumpCounters({});
    await Promise.all([store.bumpCounters({ direct_received: 1 }), store.bumpCounters({ direct_received: 1 })]);
    assert.deepEqual(await store.getCounters(), {
      ...ZERO_COUNTERS,
      envelopes_received: 5,
      direct_received: 3,
      records_rejected_invalid: 4,
    });
  });

  // ---- invites -------------------------------------------------------------------------------

  test('invites: put and get; redeemed once only, by the first DID', async ({ store }) => {
    const { a, b } = getActors();
    const inv = invite('nonce_once');
    await store.putInvite(inv);
    assert.deepEqual(await store.getInvite('nonce_once'), inv);
    assert.equal(await store.getInvite('nonce_unknown'), undefined);
    assert.equal(await store.redeemInvite('nonce_once', a.did, T0 + 1), true, 'first redeem');
    assert.deepEqual(await store.getInvite('nonce_once'), { ...inv, usedBy: a.did });
    assert.equal(await store.redeemInvite('nonce_once', a.did, T0 + 2), false, 'same DID again');
    assert.equal(await store.redeemInvite('nonce_once', b.did, T0 + 2), false, 'another DID');
    assert.deepEqual(await store.getInvite('nonce_once'), { ...inv, usedBy: a.did }, 'still used by the first');
  });

  test('invites: unknown and expired nonces are not redeemable; valid through exp', async ({ store }) => {
    const { a } = getActors();
    assert.equal(await store.redeemInvite('nonce_unknown', a.did, T0), false, 'unknown');
    assert.equal(await store.getInvite('nonce_unknown'), undefined, 'redeeming did not create it');
    const expired = invite('nonce_expired', { exp: T0 });
    await store.putInvite(expired);
    assert.equal(await store.redeemInvite('nonce_expired', a.did, T0 + 1), false, 'one ms after exp');
    assert.deepEqual(await store.getInvite('nonce_expired'), expired, 'an expired invite stays unused');
    await store.putInvite(invite('nonce_edge', { exp: T0 }));
    assert.equal(await store.redeemInvite('nonce_edge', a.did, T0), true, 'at exp exactly');
  });

  test('invites: of concurrent redeems of one nonce exactly one wins', async ({ store, reopen }) => {
    await store.putInvite(invite('nonce_race'));
    const dids = Array.from({ length: 8 }, (_, i) => `did:key:zRacer${i}`);
    const outcomes = await Promise.all(dids.map((did) => store.redeemInvite('nonce_race', did, T0)));
    assert.equal(outcomes.filter(Boolean).length, 1, 'winners on one connection');
    assert.equal((await store.getInvite('nonce_race'))?.usedBy, dids[outcomes.indexOf(true)], 'usedBy is the winner');
    if (!reopen) return;
    // Two connections to the same storage (e.g. page and service worker) racing.
    const second = await reopen();
    try {
      await store.putInvite(invite('nonce_race_2'));
      const racers = dids.map((did, i) => (i % 2 ? second : store).redeemInvite('nonce_race_2', did, T0));
      const results = await Promise.all(racers);
      assert.equal(results.filter(Boolean).length, 1, 'winners across two connections');
      assert.equal((await second.getInvite('nonce_race_2'))?.usedBy, dids[results.indexOf(true)]);
    } finally {
      await second.close();
    }
  });

  // ---- persistence ---------------------------------------------------------------------------

  if (capabilities.persistent) {
    test('persistence: everything survives close and reopen', async ({ store, reopen }) => {
      assert.ok(reopen, `${name} is declared persistent but its factory offers no reopen`);
      await persistenceRoundTrip(store, reopen);
    });
  }

  async function persistenceRoundTrip(store: PeerStore, reopen: () => Promise<PeerStore>): Promise<void> {
    const { a, b } = getActors();
    const records = await storedNotes(a, 3, 'th_kept');
    const entry = await outboxEntry(a, b, { id: 'env_kept', lastError: 'HTTP 503', attempts: 2 });
    const state: ReceiveState = { relayUrl: 'https://one.example', backlog: 3, lastSuccessAt: T0 };
    try {
      await store.createIdentity(identityOf(a));
      await store.ingest(records);
      await store.putOutbox([entry]);
      await store.putReceiveState(state);
      await store.putInvite(invite('nonce_kept'));
      await store.putInvite(invite('nonce_used'));
      assert.equal(await store.redeemInvite('nonce_used', b.did, T0), true);
    } finally {
      await store.close();
    }
    const again = await reopen();
    try {
      assert.deepEqual(await again.getIdentity(), identityOf(a), 'identity');
      assert.deepEqual(await again.recordsByThread('th_kept'), records, 'records');
      assert.equal(await again.maxClock(a.did, 'th_kept'), 2);
      assert.deepEqual(await again.ingest(records), { inserted: [], duplicates: ids(records), refused: [] }, 'still known after reopen');
      assert.deepEqual(await again.listOutbox(), [entry], 'outbox');
      assert.deepEqual(await again.listReceiveStates(), [state], 'receive state');
      assert.deepEqual(await again.getCounters(), { ...ZERO_COUNTERS, records_ingested: 3, records_duplicate: 3 }, 'counters');
      assert.deepEqual(await again.getInvite('nonce_kept'), invite('nonce_kept'), 'unused invite');
      assert.equal(await again.redeemInvite('nonce_used', a.did, T0), false, 'a used invite stays used');
      await assert.rejects(again.createIdentity(identityOf(b)), /identity/i, 'identity still created once');
    } finally {
      await again.close();
    }
  }
}

/** Every test name the contract registers, without running anything (for per-test reporting). */
export function peerStoreContractTestNames(name: string, capabilities: StoreCapabilities): string[] {
  return collectTestNames((t) => runPeerStoreContract(t, name, () => Promise.reject(new Error('only collecting names')), capabilities));
}
