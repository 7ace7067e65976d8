import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { SqliteMailboxStore } from '../../src/relay/storage/sqlite-store';
import { runMailboxStoreContract } from '../contracts/mailbox-store';
import { vitestRegistrar } from '../contracts/vitest-registrar';

const dir = mkdtempSync(join(tmpdir(), 'relay-sqlite-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;

runMailboxStoreContract(
  vitestRegistrar,
  'sqlite file',
  () => {
    const path = join(dir, `store-${++n}`, 'relay.sqlite'); // parent directory is created
    return Promise.resolve({ store: new SqliteMailboxStore(path), reopen: () => Promise.resolve(new SqliteMailboxStore(path)) });
  },
  { persistent: true },
);

runMailboxStoreContract(vitestRegistrar, 'sqlite :memory:', () => Promise.resolve({ store: new SqliteMailboxStore(':memory:') }), {
  persistent: false,
});

// The staged index (sqlite-tail.ts) merging all the time: a merge starts at every second tail row
// and goes in chunks of one or two keys, so every contract case runs across tails, merges in
// progress and merged rows.
const MERGING = { staging: { mergeEvery: 2, mergeChunk: 1 } };
runMailboxStoreContract(
  vitestRegistrar,
  'sqlite file, merging constantly',
  () => {
    const path = join(dir, `merging-${++n}`, 'relay.sqlite');
    return Promise.resolve({
      store: new SqliteMailboxStore(path, MERGING),
      reopen: () => Promise.resolve(new SqliteMailboxStore(path, MERGING)),
    });
  },
  { persistent: true },
);
runMailboxStoreContract(
  vitestRegistrar,
  'sqlite :memory:, merging constantly',
  () => Promise.resolve({ store: new SqliteMailboxStore(':memory:', MERGING) }),
  { persistent: false },
);

describe('SqliteMailboxStore specifics', () => {
  it('batches concurrent writes into one transaction (group commit), durable on reopen', async () => {
    const path = join(dir, 'batch.sqlite');
    const store = new SqliteMailboxStore(path);
    const base = Date.now();
    const deposits = Array.from({ length: 100 }, (_, i) =>
      store.deposit(
        {
          id: i.toString(16).padStart(64, '0'),
          toDid: 'did:key:zX',
          fromDid: null,
          body: '{}',
          size: 2,
          depositedAt: base,
          expiresAt: base + 60_000,
        },
        null,
        { cap: 1000, unsolicitedEnvelopes: 100, unsolicitedBytes: 1_048_576 },
      ),
    );
    const before = store.commitCount;
    expect((await Promise.all(deposits)).every((o) => o.kind === 'stored')).toBe(true);
    expect(store.commitCount - before).toBe(1);
    await store.close();
    const again = new SqliteMailboxStore(path);
    try {
      expect((await again.receive('did:key:zX', 500, base)).envelopes).toHaveLength(100);
    } finally {
      await again.close();
    }
  });

  it('two stores (two writers) on one file hold the cap together: the count lives in the transaction', async () => {
    const path = join(dir, 'shared-cap.sqlite');
    const one = new SqliteMailboxStore(path);
    const two = new SqliteMailboxStore(path);
    try {
      const base = Date.now();
      const limits = { cap: 5, unsolicitedEnvelopes: 100, unsolicitedBytes: 1_048_576 };
      const outcomes = await Promise.all(
        Array.from({ length: 40 }, (_, i) =>
          (i % 2 === 0 ? one : two).deposit(
            {
              id: i.toString(16).padStart(64, '0'),
              toDid: 'did:key:zShared',
              fromDid: null,
              body: '{}',
              size: 2,
              depositedAt: base,
              expiresAt: base + 60_000,
            },
            null,
            limits,
          ),
        ),
      );
      expect(outcomes.filter((o) => o.kind === 'stored')).toHaveLength(5);
      expect((await one.receive('did:key:zShared', 500, base)).envelopes).toHaveLength(5);
    } finally {
      await Promise.all([one.close(), two.close()]);
    }
  });

  it('upgrades a version 1 database: counters are filled from the envelopes it holds', async () => {
    const path = join(dir, 'v1.sqlite');
    const Database = (await import('better-sqlite3')).default;
    const old = new Database(path);
    old.exec(`CREATE TABLE envelopes (seq INTEGER PRIMARY KEY, to_did TEXT NOT NULL, id TEXT NOT NULL, from_did TEXT, body TEXT NOT NULL,
      size INTEGER NOT NULL, deposited_at INTEGER NOT NULL, expires_at INTEGER NOT NULL, UNIQUE (to_did, id));
      CREATE TABLE used_signatures (sig TEXT PRIMARY KEY, expires_at INTEGER NOT NULL) WITHOUT ROWID;`);
    const base = Date.now();
    const insert = old.prepare(
      'INSERT INTO envelopes (to_did, id, from_did, body, size, deposited_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)',
    );
    for (let i = 0; i < 3; i++)
      insert.run('did:key:zOld', String(i).padStart(64, '0'), i === 0 ? 'did:key:zSender' : null, '{}', 2, base + i, base + 60_000);
    old.close();
    const store = new SqliteMailboxStore(path);
    try {
      expect(await store.stats(base, 10)).toEqual({
        mailboxes: [{ did: 'did:key:zOld', queueSize: 3, oldestDepositedAt: base }],
        uniqueSenders: 1,
        uniqueReceivers: 1,
      });
      const limits = { cap: 4, unsolicitedEnvelopes: 0, unsolicitedBytes: 0 };
      const more = (i: number) =>
        store.deposit(
          {
            id: String(i).padStart(64, '0'),
            toDid: 'did:key:zOld',
            fromDid: null,
            body: '{}',
            size: 2,
            depositedAt: base,
            expiresAt: base + 60_000,
          },
          null,
          limits,
        );
      expect((await more(10)).kind).toBe('stored');
      expect((await more(11)).kind).toBe('queue_full');
    } finally {
      await store.close();
    }
  });

  it('every hot query uses an index on the integer mailbox key (EXPLAIN QUERY PLAN), never a table scan', async () => {
    const path = join(dir, 'plans.sqlite');
    await new SqliteMailboxStore(path).close();
    const Database = (await import('better-sqlite3')).default;
    const db = new Database(path, { readonly: true });
    try {
      const plan = (sql: string, ...params: unknown[]): string =>
        (db.prepare(`EXPLAIN QUERY PLAN ${sql}`).all(...params) as { detail: string }[]).map((r) => r.detail).join('; ');
      expect(plan('SELECT id, queued FROM mailboxes WHERE did = ?', 'x')).toMatch(
        /SEARCH mailboxes USING (COVERING )?INDEX sqlite_autoindex_mailboxes_1 \(did=\?\)/,
      );
      // The staged index (sqlite-tail.ts): merged keys by receiver, rows by seq.
      expect(plan('SELECT seq FROM envelope_keys WHERE mailbox = ? ORDER BY seq LIMIT ?', 1, 10)).toMatch(
        /^SEARCH envelope_keys USING PRIMARY KEY \(mailbox=\?\); USE TEMP B-TREE FOR ORDER BY$/,
      );
      expect(plan('SELECT min(seq) AS seq FROM envelope_keys WHERE mailbox = ?', 1)).toMatch(
        /^SEARCH envelope_keys USING PRIMARY KEY \(mailbox=\?\)$/,
      );
      expect(
        plan(
          'SELECT id, from_did, body FROM envelopes WHERE seq IN (SELECT value FROM json_each(?)) AND expires_at > ? ORDER BY seq LIMIT ?',
          '[1]',
          0,
          10,
        ),
      ).toMatch(/^SEARCH envelopes USING INTEGER PRIMARY KEY \(rowid=\?\); LIST SUBQUERY \d+; SCAN json_each VIRTUAL TABLE INDEX \d+:/);
      expect(plan('SELECT mailbox, seq FROM envelopes WHERE seq = ?', 1)).toMatch(
        /^SEARCH envelopes USING INTEGER PRIMARY KEY \(rowid=\?\)$/,
      );
      expect(plan('SELECT id, queued FROM mailboxes INDEXED BY mailboxes_by_queued WHERE queued >= ?', 1)).toMatch(
        /^SEARCH mailboxes USING COVERING INDEX mailboxes_by_queued \(queued>\?\)$/,
      );
      expect(plan('SELECT id FROM mailboxes INDEXED BY mailboxes_by_queued WHERE queued <= 0')).toMatch(
        /^SEARCH mailboxes USING COVERING INDEX mailboxes_by_queued \(queued<\?\)$/,
      );
      expect(
        plan(
          'SELECT e.seq, e.expires_at FROM envelope_keys k CROSS JOIN envelopes e ON e.seq = k.seq WHERE k.mailbox = ? AND k.id_hash = ? AND e.id = ?',
          1,
          2,
          'x',
        ),
      ).toMatch(/^SEARCH k USING PRIMARY KEY \(mailbox=\? AND id_hash=\?\); SEARCH e USING INTEGER PRIMARY KEY \(rowid=\?\)$/);
      expect(
        plan(
          'SELECT e.seq, e.mailbox, e.id, e.size, e.unsolicited, k.id_hash AS hash FROM json_each(?) j CROSS JOIN envelope_keys k CROSS JOIN envelopes e ' +
            "WHERE k.mailbox = ? AND k.id_hash = j.value ->> '$[1]' AND e.seq = k.seq AND e.id = j.value ->> '$[0]'",
          '[]',
          1,
        ),
      ).toMatch(
        /^SCAN j VIRTUAL TABLE INDEX \d+:; SEARCH k USING PRIMARY KEY \(mailbox=\? AND id_hash=\?\); SEARCH e USING INTEGER PRIMARY KEY \(rowid=\?\)$/,
      );
      expect(
        plan(
          'DELETE FROM envelope_keys WHERE (mailbox, id_hash, seq) IN (SELECT value ->> 0, value ->> 1, value ->> 2 FROM json_each(?))',
          '[]',
        ),
      ).toMatch(/^SEARCH envelope_keys USING PRIMARY KEY \(mailbox=\? AND id_hash=\? AND seq=\?\)/);
      expect(plan('DELETE FROM envelopes WHERE seq IN (SELECT value FROM json_each(?))', '[]')).toMatch(
        /^SEARCH envelopes USING INTEGER PRIMARY KEY \(rowid=\?\)/,
      );
      expect(plan('SELECT seq, mailbox, id, size, unsolicited FROM envelopes WHERE seq > ? ORDER BY seq', 1)).toMatch(
        /^SEARCH envelopes USING INTEGER PRIMARY KEY \(rowid>\?\)$/,
      );
      // An ack by receive hints: rows deleted by seq (or, when some are gone, looked up by seq), keys within the mailbox's range.
      expect(
        plan(
          'SELECT e.seq, e.mailbox, e.id, e.size, e.unsolicited FROM json_each(?) j CROSS JOIN envelopes e ' +
            "WHERE e.seq = j.value ->> '$[1]' AND e.id = j.value ->> '$[0]' AND e.mailbox = ?",
          '[]',
          1,
        ),
      ).toMatch(/SCAN j VIRTUAL TABLE.*SEARCH e USING INTEGER PRIMARY KEY \(rowid=\?\)/);
      expect(plan('DELETE FROM envelopes WHERE seq IN (SELECT value FROM json_each(?)) AND mailbox = ?', '[]', 1)).toMatch(
        /^SEARCH envelopes USING INTEGER PRIMARY KEY \(rowid=\?\)/,
      );
      expect(plan('DELETE FROM envelope_keys WHERE mailbox = ? AND seq IN (SELECT value FROM json_each(?))', 1, '[]')).toMatch(
        /SEARCH envelope_keys USING PRIMARY KEY \(mailbox=\?\)/,
      );
      expect(plan('SELECT n, seq FROM tail_exits WHERE n > ? ORDER BY n', 1)).toMatch(
        /^SEARCH tail_exits USING INTEGER PRIMARY KEY \(rowid>\?\)$/,
      );
      expect(plan('SELECT count(*) FROM envelopes INDEXED BY envelopes_by_expiry WHERE expires_at <= ? AND mailbox = ?', 0, 1)).toMatch(
        /SEARCH envelopes USING (COVERING )?INDEX envelopes_by_expiry \(expires_at<\?\)/,
      );
      expect(plan('SELECT seq, mailbox, id, size, unsolicited FROM envelopes WHERE expires_at <= ?', 0)).toMatch(
        /SEARCH envelopes USING (COVERING )?INDEX envelopes_by_expiry \(expires_at<\?\)/,
      );
      expect(
        plan('SELECT id, did, queued FROM mailboxes INDEXED BY mailboxes_by_queued WHERE queued > 0 ORDER BY queued DESC LIMIT ?', 10),
      ).toMatch(/SEARCH mailboxes USING (COVERING )?INDEX mailboxes_by_queued \(queued>\?\)/);
      expect(plan('SELECT id, did, queued FROM mailboxes INDEXED BY mailboxes_by_queued WHERE queued >= ?', 3)).toMatch(
        /SEARCH mailboxes USING (COVERING )?INDEX mailboxes_by_queued \(queued>\?\)/,
      );
      expect(plan('DELETE FROM mailboxes WHERE queued <= 0 AND id NOT IN (SELECT value FROM json_each(?))', '[]')).toMatch(
        /SEARCH mailboxes USING (COVERING )?INDEX mailboxes_by_queued \(queued<\?\)/,
      );
      // Exactly the indexes the queries above need (issue 14: no index on DID text per envelope, and
      // none ordered by receiver that every deposit would write: sqlite-tail.ts).
      const indexes = db.prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'envelopes' ORDER BY name").all();
      expect(indexes).toEqual([{ name: 'envelopes_by_expiry' }]);
    } finally {
      db.close();
    }
  });
});
