/**
 * Fills a relay's SQLite file directly (benchmarks of a full relay): through the relay's own schema,
 * body packing and index build, as its writer stores envelopes, far faster than depositing them.
 */
import Database from 'better-sqlite3';
import { packBody } from '../src/relay/storage/sqlite-body';
import { indexAllEnvelopes, PAGE_SIZE, prepareSchema } from '../src/relay/storage/sqlite-schema';

/**
 * Adds `total` envelopes for `receiverDids` to the file at `path` (created, or a relay's), in the
 * order real traffic leaves them: envelope k of every receiver, then k+1. `envelope(i, did)` makes
 * the i-th; each expires in 30 days.
 */
export function fillRelaySqlite(
  path: string,
  receiverDids: readonly string[],
  total: number,
  envelope: (i: number, did: string) => { id: string; body: string },
): void {
  const db = new Database(path);
  try {
    db.pragma(`page_size = ${PAGE_SIZE}`); // as the relay creates its files
    db.pragma('journal_mode = WAL');
    prepareSchema(db);
    db.pragma('synchronous = OFF'); // the fill only; the relay opens with synchronous=FULL
    db.pragma('cache_size = -262144');
    const existing = db.prepare<[string], { id: number }>('SELECT id FROM mailboxes WHERE did = ?');
    const newMailbox = db.prepare<[string]>('INSERT INTO mailboxes (did) VALUES (?)');
    const ids = receiverDids.map((did) => existing.get(did)?.id ?? Number(newMailbox.run(did).lastInsertRowid));
    const insert = db.prepare<[number, string, string | Buffer, number, number, number]>(
      'INSERT INTO envelopes (mailbox, id, from_did, body, size, deposited_at, expires_at, unsolicited) VALUES (?, ?, NULL, ?, ?, ?, ?, 0)',
    );
    const now = Date.now();
    const chunk = db.transaction((from: number, to: number) => {
      for (let i = from; i < to; i++) {
        const r = i % receiverDids.length;
        const { id, body } = envelope(i, receiverDids[r]!);
        insert.run(ids[r]!, id, packBody(body), Buffer.byteLength(body), now, now + 2_592_000_000);
      }
    });
    for (let i = 0; i < total; i += 50_000) chunk(i, Math.min(total, i + 50_000));
    // As an upgrade leaves them: every envelope merged into the key table and counters (sqlite-tail.ts).
    indexAllEnvelopes(db);
    db.pragma('wal_checkpoint(TRUNCATE)');
  } finally {
    db.close();
  }
}
