/**
 * Schema version 4 → 5 (the staged index, src/relay/storage/sqlite-tail.ts): a version 4 file, its
 * counters kept by its own triggers, upgrades with every queued envelope served in order and
 * verbatim, the counters and sender totals as they were, old IDs still deduplicated and acked.
 */
import Database from 'better-sqlite3';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { packBody } from '../../src/relay/storage/sqlite-body';
import { SqliteMailboxStore } from '../../src/relay/storage/sqlite-store';

const dir = mkdtempSync(join(tmpdir(), 'relay-v5-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const T0 = 1_700_000_000_000;
const RECEIVERS = ['did:key:z6MkV4Alice', 'did:key:z6MkV4Bob'];
const SENDER = 'did:key:z6MkV4Sender';
const hexId = (n: number): string => n.toString(16).padStart(64, '0');

describe('schema version 4 → 5', () => {
  it('keeps every envelope, its order and its counters; old IDs are still duplicates and can be acked', async () => {
    const path = join(dir, 'v4.sqlite');
    const old = new Database(path);
    old.pragma('journal_mode = WAL');
    // Version 4 changed no table or index of version 3 (it only allowed packed bodies).
    old.exec(readFileSync(new URL('./schema-v3.sql', import.meta.url), 'utf8'));
    old.pragma('user_version = 4');
    const mailboxes = RECEIVERS.map((did) => Number(old.prepare('INSERT INTO mailboxes (did) VALUES (?)').run(did).lastInsertRowid));
    const insert = old.prepare(
      'INSERT INTO envelopes (mailbox, id, from_did, body, size, deposited_at, expires_at, unsolicited) VALUES (?, ?, ?, ?, ?, ?, ?, ?)',
    );
    const queued = new Map<string, string[]>(RECEIVERS.map((d) => [d, []]));
    for (let i = 0; i < 40; i++) {
      const r = i % 2;
      const body = JSON.stringify({ v: 1, id: hexId(i), to_did: RECEIVERS[r], n: i });
      const expired = i === 6;
      // Text bodies as version 3 wrote them, packed ones as version 4 did.
      insert.run(
        mailboxes[r]!,
        hexId(i),
        i % 5 === 0 ? SENDER : null,
        i % 3 === 0 ? body : packBody(body),
        body.length,
        T0 + i,
        expired ? T0 - 1 : T0 + 3_600_000,
        i % 4 === 0 ? 1 : 0,
      );
      if (!expired) queued.get(RECEIVERS[r]!)!.push(body);
    }
    const counters = old.prepare('SELECT did, queued, unsolicited, unsolicited_bytes FROM mailboxes ORDER BY id').all();
    const totals = old.prepare('SELECT receivers, senders FROM totals').get();
    old.close();

    const store = new SqliteMailboxStore(path);
    try {
      for (const did of RECEIVERS) {
        const got = await store.receive(did, 100, T0);
        expect(got.envelopes.map((e) => e.body)).toEqual(queued.get(did));
        expect(got.remaining).toBe(0);
      }
      const stats = await store.stats(T0, 10);
      expect(stats.uniqueSenders).toBe(1);
      expect(stats.uniqueReceivers).toBe(2);
      expect(stats.mailboxes.map((m) => [m.did, m.queueSize])).toEqual([
        [RECEIVERS[0], 20],
        [RECEIVERS[1], 20],
      ]);
      const limits = { cap: 100, unsolicitedEnvelopes: 100, unsolicitedBytes: 1_000_000 };
      const again = { id: hexId(2), toDid: RECEIVERS[0]!, fromDid: null, body: '{}', size: 2, depositedAt: T0, expiresAt: T0 + 60_000 };
      expect(await store.deposit(again, null, limits)).toEqual({ kind: 'duplicate', expiresAt: T0 + 3_600_000 });
      expect(await store.ack(RECEIVERS[0]!, [hexId(0), hexId(2), hexId(1)])).toBe(2); // 1 is Bob's
      expect((await store.receive(RECEIVERS[0]!, 100, T0)).envelopes).toHaveLength(queued.get(RECEIVERS[0]!)!.length - 2);
    } finally {
      await store.close();
    }
    const upgraded = new Database(path, { readonly: true });
    try {
      expect(upgraded.pragma('user_version', { simple: true })).toBe(5);
      // The counters the version 4 triggers kept are the ones rebuilt (before the acks above).
      expect(counters).toEqual([
        { did: RECEIVERS[0], queued: 20, unsolicited: 10, unsolicited_bytes: expect.any(Number) as number },
        { did: RECEIVERS[1], queued: 20, unsolicited: 0, unsolicited_bytes: 0 },
      ]);
      expect(totals).toEqual({ receivers: 2, senders: 1 });
      const after = upgraded.prepare('SELECT queued, unsolicited FROM mailboxes ORDER BY id').all();
      expect(after).toEqual([
        { queued: 18, unsolicited: 9 },
        { queued: 20, unsolicited: 0 },
      ]);
      expect(upgraded.prepare('SELECT count(*) AS n FROM envelope_keys').get()).toEqual({ n: 38 });
      expect(upgraded.prepare("SELECT name FROM sqlite_master WHERE name IN ('envelopes_by_id', 'envelopes_by_mailbox')").all()).toEqual(
        [],
      );
    } finally {
      upgraded.close();
    }
  });
});
