/** The contract on SQLite (file in a temp dir and :memory:), and SQLite specifics. */
import Database from 'better-sqlite3';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { SQLITE_SCHEMA_VERSION, openSqlitePeerStore } from '../../src/store/sqlite';
import { runPeerStoreContract } from '../contracts/peer-store';
import { newActor, storedNotes } from './fixtures';
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
