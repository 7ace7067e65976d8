/**
 * One writer process of the multi-process SQLite test (./sqlite.test.ts): signs one note per clock
 * as the given author, waits at the barrier, then ingests them one transaction each into the
 * shared peer database and prints what the store did as one JSON line.
 *
 * argv: <peer db> <barrier db> <author secret key, hex> <tag> <count> <up|down>
 * The barrier is a second SQLite file whose write lock the parent holds until every writer has
 * printed `ready`: taking that lock (SQLite waits for it, busy_timeout) is the start signal.
 */
import Database from 'better-sqlite3';
import { createSigner, didFromPublicKey, signRecord } from '../../src/core';
import { openSqlitePeerStore } from '../../src/store/sqlite';
import type { StoredRecord } from '../../src/store/types';
import { note } from '../../support/fixtures';

const [peerDb, barrierDb, keyHex, tag, countText, direction] = process.argv.slice(2);
if (!peerDb || !barrierDb || !keyHex || !tag || !countText || (direction !== 'up' && direction !== 'down')) {
  throw new Error('usage: sqlite-writer-child.ts <peer db> <barrier db> <secret key hex> <tag> <count> <up|down>');
}
const count = Number(countText);
const signer = createSigner(new Uint8Array(Buffer.from(keyHex, 'hex')));
const did = didFromPublicKey(signer.publicKey);
const clocks = Array.from({ length: count }, (_, i) => (direction === 'up' ? i : count - 1 - i));
const records: StoredRecord[] = [];
for (const clock of clocks) {
  const signed = await signRecord(note(did, `${tag} at ${clock}`, clock, 'th_race'), signer);
  records.push({ id: signed.id, signed, thread: 'th_race', actor: did, clock, receivedAt: Date.now(), path: 'local' });
}
const store = await openSqlitePeerStore(peerDb);
const barrier = new Database(barrierDb);
barrier.pragma('busy_timeout = 60000');
console.log('ready');
barrier.exec('BEGIN IMMEDIATE; COMMIT'); // returns once the parent lets go
barrier.close();
const inserted: string[] = [];
const refused: string[] = [];
for (const r of records) {
  const result = await store.ingest([r], {}, [], [`did:key:z${tag}`]);
  inserted.push(...result.inserted);
  refused.push(...result.refused);
}
await store.close();
console.log(JSON.stringify({ inserted, refused }));
