/** The contract on SQLite (file in a temp dir and :memory:), and SQLite specifics. */
import Database from 'better-sqlite3';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { SQLITE_SCHEMA_VERSION, openSqlitePeerStore } from '../../src/store/sqlite';
import { runPeerStoreContract } from '../contracts/peer-store';
import { T0, newActor, storedNote, storedNotes } from './fixtures';
import { migrate } from '../../src/store/sqlite-schema';
import { ROOT } from '../../support/paths';
import { spawnProcess } from '../../support/process';
import { vitestRegistrar } from '../contracts/vitest-registrar';

const dir = mkdtempSync(join(tmpdir(), 'peer-sqlite-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let seq = 0;

runPeerStoreContract(
  vitestRegistrar,
  'SQLite file',
  async () => {
    const path = join(dir, `store-${++seq}`, 'peer.sqlite'); // the parent directory is created
    return { store: await openSqlitePeerStore(path), reopen: () => openSqlitePeerStore(path) };
  },
  { persistent: true },
);

runPeerStoreContract(vitestRegistrar, 'SQLite :memory:', async () => ({ store: await openSqlitePeerStore(':memory:') }), {
  persistent: false,
});

describe('SqlitePeerStore specifics', () => {
  it('runs in WAL with synchronous=FULL and records its schema version', async () => {
    const path = join(dir, 'pragmas.sqlite');
    const store = await openSqlitePeerStore(path);
    await store.ingest(await storedNotes(newActor(), 1));
    await store.close();
    const db = new Database(path, { readonly: true });
    try {
      expect(db.pragma('journal_mode', { simple: true })).toBe('wal'); // persistent: stored in the file
      expect(db.pragma('user_version', { simple: true })).toBe(SQLITE_SCHEMA_VERSION);
    } finally {
      db.close();
    }
    // synchronous is per connection: check on the store's own connection.
    const again = await openSqlitePeerStore(path);
    const conn = (again as unknown as { db: Database.Database }).db;
    try {
      expect(conn.pragma('synchronous', { simple: true })).toBe(2); // 2 = FULL
      expect(await again.countRecords()).toBe(1);
    } finally {
      await again.close();
    }
  });

  it('upgrading from version 1 keeps the first stored record of each (actor, thread, clock) and sets the rest aside, counted', async () => {
    const path = join(dir, 'from-v1.sqlite');
    const [a, b] = [newActor(), newActor()];
    const kept = await storedNote(a, { clock: 4, text: 'kept', receivedAt: T0 + 9 });
    const racedLater = await storedNote(a, { clock: 4, text: 'raced later', receivedAt: T0 + 1 }); // earlier clock time, later row
    const third = await storedNote(a, { clock: 4, text: 'raced third', receivedAt: T0 });
    const other = await storedNote(b, { clock: 4, text: 'another actor' });
    const alone = await storedNotes(a, 3, 'th_alone');
    // A version-1 file in which two writers raced (before the check moved into the transaction).
    const v1 = new Database(path);
    try {
      migrate(v1, 1);
      const insert = v1.prepare(
        'INSERT INTO records (id, signed, thread, actor, clock, received_at, path, via) VALUES (?, ?, ?, ?, ?, ?, ?, ?)',
      );
      for (const r of [kept, ...alone, racedLater, other, third]) {
        insert.run(r.id, JSON.stringify(r.signed), r.thread, r.actor, r.clock, r.receivedAt, r.path, r.via ?? null);
      }
      v1.prepare("INSERT INTO counters (name, value) VALUES ('records_refused_clock_reused', 2)").run();
    } finally {
      v1.close();
    }
    const store = await openSqlitePeerStore(path);
    try {
      const byActor = [kept, other].sort((x, y) => (x.actor < y.actor ? -1 : 1)); // same clock: by actor
      expect(await store.recordsByThread('th_test')).toEqual(byActor);
      expect(await store.recordsByThread('th_alone')).toEqual(alone);
      expect(await store.getRecord(kept.id)).toEqual(kept);
      expect((await store.getCounters()).records_refused_clock_reused).toBe(2 + 2);
      expect(await store.ingest([racedLater, kept, third])).toEqual({
        inserted: [],
        duplicates: [kept.id],
        refused: [racedLater.id, third.id],
      });
    } finally {
      await store.close();
    }
    const check = new Database(path, { readonly: true });
    try {
      expect(check.pragma('user_version', { simple: true })).toBe(SQLITE_SCHEMA_VERSION);
      const aside = check.prepare<[], { id: string; signed: string }>('SELECT id, signed FROM records_equivocated ORDER BY id').all();
      expect(aside.map((r) => r.id)).toEqual([racedLater.id, third.id].sort()); // kept whole, as evidence
      expect(aside.map((r) => JSON.parse(r.signed) as unknown)).toContainEqual(third.signed);
      const index = check
        .prepare<[], { unique: number }>("SELECT \"unique\" FROM pragma_index_list('records') WHERE name = 'records_by_clock'")
        .get();
      expect(index?.unique).toBe(1);
    } finally {
      check.close();
    }
  });

  it('writer processes racing for the same clocks on one file: each slot stored once, every other offer refused', async () => {
    const path = join(dir, 'race', 'peer.sqlite');
    await (await openSqlitePeerStore(path)).close(); // schema in place before the writers start
    const barrierPath = join(dir, 'race', 'barrier.sqlite');
    const barrier = new Database(barrierPath);
    barrier.exec('BEGIN IMMEDIATE'); // held until both writers are ready
    const author = newActor();
    const COUNT = 600;
    // One writer goes up the clocks, the other down: they meet wherever their transactions interleave.
    const writers = (['up', 'down'] as const).map((direction) =>
      spawnProcess({
        name: `writer-${direction}`,
        args: [
          '--import',
          'tsx',
          join(ROOT, 'test/store/sqlite-writer-child.ts'),
          path,
          barrierPath,
          Buffer.from(author.secretKey).toString('hex'),
          direction,
          String(COUNT),
          direction,
        ],
      }),
    );
    try {
      await Promise.all(writers.map((w) => w.waitForLine(/^ready$/, 60_000)));
      barrier.exec('COMMIT');
      const results = await Promise.all(
        writers.map(async (w) => {
          const line = await w.waitForLine(/^\{/, 60_000);
          expect(await w.exited, w.output()).toBe(0);
          return JSON.parse(line) as { inserted: string[]; refused: string[] };
        }),
      );
      for (const r of results) expect(r.inserted.length + r.refused.length).toBe(COUNT);
      const inserted = results.flatMap((r) => r.inserted);
      expect(inserted).toHaveLength(COUNT);
      expect(results.flatMap((r) => r.refused)).toHaveLength(COUNT);
      const store = await openSqlitePeerStore(path);
      try {
        const stored = await store.recordsByThread('th_race');
        expect(stored.map((r) => r.clock)).toEqual(Array.from({ length: COUNT }, (_, i) => i)); // each clock exactly once
        expect(new Set(stored.map((r) => r.id))).toEqual(new Set(inserted));
        const counters = await store.getCounters();
        expect(counters.records_ingested).toBe(COUNT);
        expect(counters.records_refused_clock_reused).toBe(COUNT);
        const perSender = (await store.dropCounts()).filter((d) => d.reason === 'clock_reused');
        expect(perSender.reduce((n, d) => n + d.count, 0)).toBe(COUNT);
      } finally {
        await store.close();
      }
      console.info(
        `SQLite writer race: up stored ${results[0]!.inserted.length}, down stored ${results[1]!.inserted.length} of ${COUNT} clocks`,
      );
    } finally {
      if (barrier.inTransaction) barrier.exec('ROLLBACK');
      barrier.close();
      await Promise.all(writers.map((w) => w.stop()));
    }
  }, 120_000);

  it('refuses a database written by a newer schema version, and leaves it untouched', async () => {
    const path = join(dir, 'newer.sqlite');
    await (await openSqlitePeerStore(path)).close();
    const db = new Database(path);
    db.pragma(`user_version = ${SQLITE_SCHEMA_VERSION + 1}`);
    db.close();
    await expect(openSqlitePeerStore(path)).rejects.toThrow(/newer/);
    const check = new Database(path, { readonly: true });
    try {
      expect(check.pragma('user_version', { simple: true })).toBe(SQLITE_SCHEMA_VERSION + 1);
    } finally {
      check.close();
    }
  });
});
