/**
 * Experiment behind the relay's next storage change (issue 14; `npm run bench:staged-index`):
 * what one deposit writes at 1,000,000 queued envelopes, today's layout against a staged index.
 * Prints ONE JSON object. Not part of `npm test` or `npm run bench`; a run takes ~2 minutes.
 *
 * - `current`: the relay's writer (storage/sqlite-writer.ts) on the relay's schema: every deposit
 *   inserts at a random place in B-trees ordered by receiver (ID index, mailbox index, counters).
 * - `staged`: envelopes appended only; a narrow WITHOUT ROWID key table `(mailbox, id_hash, seq)`
 *   holds merged rows; the newer rows (the tail) are indexed in memory. Once MERGE_EVERY deposits
 *   have piled up, their keys are sorted and go into the key table MERGE_CHUNK at a time, one chunk
 *   (with its per-mailbox counts) in its own transaction between two deposit batches: chunks in key
 *   order touch each page of the key table about once in all, and deposits never wait for more
 *   than one. Not a store: one process, no catch-up of other connections, no deletions.
 *
 * Both take the same deposits: batches of 25 (one commit each, synchronous=FULL, as the relay's
 * group commit under 50 connections) to receivers drawn at random from 10,000. Reported per
 * deposit: WAL bytes appended (exact: the WAL is not checkpointed during the phase), bytes the
 * block device wrote for the checkpoint that follows (`sync` before and after; run it alone), the
 * merges' WAL bytes, and the time.
 *
 * Measured on the 2-core VM (idle): current 20.5 KB of WAL and 5.2 KB at checkpoint per deposit,
 * 81–131 µs each; staged 2.3 KB of WAL, 1.2 KB of merges and 2.5 KB at checkpoint (6.0 KB in
 * all), 39 µs each with the merges, a chunk of 1,024 keys 5.8 ms (p50) and 11 ms at most (one
 * merge of 16,384 in a single transaction took 95 ms).
 */
import Database from 'better-sqlite3';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes, toB64u } from '../../src/core';
import { packBody } from '../../src/relay/storage/sqlite-body';
import { openSqlite, PAGE_SIZE, prepareSchema } from '../../src/relay/storage/sqlite-schema';
import { createWriter, type WriteOp } from '../../src/relay/storage/sqlite-writer';
import { deviceWrittenBytes, fileSize, syncDisks } from '../disk';
import { fillRelaySqlite } from '../sqlite-fill';

const ENVELOPES = Number(process.env.BENCH_SCALE_ENVELOPES ?? 1_000_000);
const RECEIVERS = Number(process.env.BENCH_SCALE_RECEIVERS ?? 10_000);
const DEPOSITS = 20_000;
const BATCH = 25;
const MERGE_EVERY = 16_384;
const MERGE_CHUNK = 1_024;
const NO_LIMITS = { cap: 1e9, unsolicitedEnvelopes: 1e9, unsolicitedBytes: 1e12 };

const did = (i: number): string => 'did:key:z' + i.toString().padStart(47, '0'); // the writer checks no key
const envelope = (id: string, toDid: string): string =>
  JSON.stringify({
    v: 1,
    id,
    to_did: toDid,
    encoding: 'sealed',
    ttl_seconds: 2_592_000,
    epk: toB64u(randomBytes(32)),
    nonce: toB64u(randomBytes(24)),
    ciphertext: toB64u(randomBytes(700)),
  });
/** Envelope IDs are content hashes: random hex. */
const nextId = (): string => Buffer.from(randomBytes(32)).toString('hex');
// Its first 64 bits. A store would hash the ID with a per-database key instead: a sender can
// choose IDs that share a prefix, and make every lookup in a mailbox walk all of them.
const idHash = (id: string): bigint => BigInt.asIntN(64, BigInt('0x' + id.slice(0, 16)));
const round = (n: number, d = 2): number => Math.round(n * 10 ** d) / 10 ** d;
/** Device bytes written while `run` runs, all dirty pages flushed before and after. */
function deviceBytesOf(path: string, run: () => void): number {
  syncDisks();
  const before = deviceWrittenBytes(path);
  run();
  syncDisks();
  return deviceWrittenBytes(path) - before;
}

/** The relay's schema, or (`staged`) the staged layout: its key table is built after the fill. */
function fill(path: string, staged: boolean): void {
  if (staged) {
    // Dropped before the fill, not after: ~25,000 freed pages would make every later page
    // allocation search the freelist.
    const db = new Database(path);
    db.pragma(`page_size = ${PAGE_SIZE}`);
    db.pragma('journal_mode = WAL');
    prepareSchema(db);
    db.exec(`DROP INDEX envelopes_by_id; DROP INDEX envelopes_by_mailbox;
      DROP TRIGGER envelopes_counted_in; DROP TRIGGER envelopes_counted_out;`);
    db.close();
  }
  const receivers = Array.from({ length: RECEIVERS }, (_, r) => did(r));
  fillRelaySqlite(path, receivers, ENVELOPES, (_, toDid) => {
    const id = nextId();
    return { id, body: envelope(id, toDid) };
  });
  if (staged) {
    const db = new Database(path);
    db.function('id_hash', { deterministic: true, safeIntegers: true }, (id: unknown) => idHash(String(id)));
    db.exec(`
      CREATE TABLE envelope_keys (mailbox INTEGER NOT NULL, id_hash INTEGER NOT NULL, seq INTEGER NOT NULL,
        PRIMARY KEY (mailbox, id_hash, seq)) WITHOUT ROWID;
      INSERT INTO envelope_keys SELECT mailbox, id_hash(id), seq FROM envelopes ORDER BY 1, 2, 3;
      UPDATE mailboxes SET queued = (SELECT count(*) FROM envelope_keys k WHERE k.mailbox = mailboxes.id);`);
    db.pragma('wal_checkpoint(TRUNCATE)');
    db.close();
  }
  syncDisks(); // the fill's writes are not the phase's
}

interface Deposit {
  readonly toDid: string;
  readonly id: string;
  readonly body: string;
}
const batches = (): Deposit[][] =>
  Array.from({ length: DEPOSITS / BATCH }, () =>
    Array.from({ length: BATCH }, () => {
      const id = nextId();
      const toDid = did(Math.floor(Math.random() * RECEIVERS));
      return { toDid, id, body: envelope(id, toDid) };
    }),
  );

function measureCurrent(path: string): Record<string, number> {
  const db = openSqlite(path);
  db.pragma('wal_autocheckpoint = 0');
  const writer = createWriter(db, path);
  const now = Date.now();
  const work = batches();
  const started = performance.now();
  for (const batch of work) {
    const ops: WriteOp[] = batch.map((d) => ({
      k: 'deposit',
      toDid: d.toDid,
      id: d.id,
      fromDid: null,
      body: d.body,
      size: d.body.length,
      depositedAt: now,
      expiresAt: now + 2_592_000_000,
      tokenHash: null,
      limits: NO_LIMITS,
    }));
    const result = writer.runBatch(ops);
    if (!result.ok) throw new Error(result.error.message);
  }
  const ms = performance.now() - started;
  const wal = fileSize(`${path}-wal`);
  const checkpoint = deviceBytesOf(path, () => db.pragma('wal_checkpoint(TRUNCATE)'));
  db.close();
  return {
    wal_bytes_per_deposit: Math.round(wal / DEPOSITS),
    checkpoint_device_bytes_per_deposit: Math.round(checkpoint / DEPOSITS),
    us_per_deposit: round((ms * 1000) / DEPOSITS, 1),
  };
}

function measureStaged(path: string): Record<string, number | number[]> {
  const db = openSqlite(path);
  db.pragma('wal_autocheckpoint = 0');
  db.function('id_hash', { deterministic: true, safeIntegers: true }, (id: unknown) => idHash(String(id)));
  const mailboxOf = db.prepare<[string], { id: number; queued: number }>('SELECT id, queued FROM mailboxes WHERE did = ?');
  const merged = db.prepare<[number, bigint, string], { n: number }>(
    'SELECT 1 AS n FROM envelope_keys k CROSS JOIN envelopes e ON e.seq = k.seq WHERE k.mailbox = ? AND k.id_hash = ? AND e.id = ?',
  );
  const insert = db.prepare<[number, number, string, Buffer | string, number, number, number]>(
    'INSERT INTO envelopes (seq, mailbox, id, from_did, body, size, deposited_at, expires_at, unsolicited) VALUES (?, ?, ?, NULL, ?, ?, ?, ?, 0)',
  );
  const insertKey = db.prepare<[number, bigint, number]>('INSERT INTO envelope_keys (mailbox, id_hash, seq) VALUES (?, ?, ?)');
  const addCount = db.prepare<[number, number]>('UPDATE mailboxes SET queued = queued + ? WHERE id = ?');
  const setProgress = db.prepare<[number]>(
    "INSERT INTO meta (k, v) VALUES ('merge_progress', ?) ON CONFLICT (k) DO UPDATE SET v = excluded.v",
  );
  let nextSeq = (db.prepare('SELECT max(seq) AS m FROM envelopes').get() as { m: number }).m + 1;
  type Key = readonly [mailbox: number, idHash: bigint, seq: number];
  /** The tail: per mailbox, the IDs deposited since the last merge began, and their keys. */
  let tail = new Map<number, Set<string>>();
  let tailKeys: Key[] = [];
  /** A merge in progress: the tail it took, still read for duplicates, and its keys in key order. */
  let merging: { tail: Map<number, Set<string>>; keys: Key[]; next: number } | undefined;
  const now = Date.now();
  const depositBatch = db.transaction((batch: readonly Deposit[]) => {
    for (const d of batch) {
      const mailbox = mailboxOf.get(d.toDid)!;
      const pending = tail.get(mailbox.id);
      const beingMerged = merging?.tail.get(mailbox.id);
      if (pending?.has(d.id) || beingMerged?.has(d.id) || merged.get(mailbox.id, idHash(d.id), d.id)) continue; // a duplicate
      if (mailbox.queued + (pending?.size ?? 0) + (beingMerged?.size ?? 0) >= NO_LIMITS.cap) continue;
      const seq = nextSeq++;
      insert.run(seq, mailbox.id, d.id, packBody(d.body), d.body.length, now, now + 2_592_000_000);
      if (pending) pending.add(d.id);
      else tail.set(mailbox.id, new Set([d.id]));
      tailKeys.push([mailbox.id, idHash(d.id), seq]);
    }
  });
  /** One chunk of a merge: a run of keys in key order, so the chunks of one merge touch each page about once. */
  const mergeChunk = db.transaction((keys: readonly Key[], progress: number) => {
    const counts = new Map<number, number>();
    for (const [mailbox, hash, seq] of keys) {
      insertKey.run(mailbox, hash, seq);
      counts.set(mailbox, (counts.get(mailbox) ?? 0) + 1);
    }
    for (const [mailbox, n] of counts) addCount.run(n, mailbox);
    setProgress.run(progress);
  });
  const chunkMs: number[] = [];
  let mergeWal = 0;
  const work = batches();
  const started = performance.now();
  for (const batch of work) {
    depositBatch.immediate(batch);
    if (!merging && tailKeys.length >= MERGE_EVERY) {
      const keys = tailKeys.sort((a, b) => a[0] - b[0] || (a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : a[2] - b[2]));
      merging = { tail, keys, next: 0 };
      tail = new Map();
      tailKeys = [];
    }
    // Between two deposit batches, one chunk: deposits never wait for more than one.
    if (merging) {
      const walBefore = fileSize(`${path}-wal`);
      const t0 = performance.now();
      const end = Math.min(merging.keys.length, merging.next + MERGE_CHUNK);
      mergeChunk.immediate(merging.keys.slice(merging.next, end), end);
      chunkMs.push(performance.now() - t0);
      mergeWal += fileSize(`${path}-wal`) - walBefore;
      merging.next = end;
      if (end === merging.keys.length) merging = undefined;
    }
  }
  const ms = performance.now() - started;
  const wal = fileSize(`${path}-wal`);
  const checkpoint = deviceBytesOf(path, () => db.pragma('wal_checkpoint(TRUNCATE)'));
  db.close();
  return {
    wal_bytes_per_deposit: Math.round((wal - mergeWal) / DEPOSITS),
    merge_wal_bytes_per_deposit: Math.round(mergeWal / DEPOSITS),
    checkpoint_device_bytes_per_deposit: Math.round(checkpoint / DEPOSITS),
    us_per_deposit_with_merges: round((ms * 1000) / DEPOSITS, 1),
    merge_chunks: chunkMs.length,
    merge_chunk_ms_p50: round([...chunkMs].sort((a, b) => a - b)[Math.floor(chunkMs.length / 2)] ?? NaN),
    merge_chunk_ms_max: round(Math.max(...chunkMs)),
  };
}

const dir = mkdtempSync(join(tmpdir(), 'relay-staged-'));
try {
  const fillStarted = performance.now();
  const currentPath = join(dir, 'current.sqlite');
  fill(currentPath, false);
  const stagedPath = join(dir, 'staged.sqlite');
  fill(stagedPath, true);
  const fillSeconds = round((performance.now() - fillStarted) / 1000, 1);
  const current = measureCurrent(currentPath);
  const staged = measureStaged(stagedPath);
  const result = {
    bench: 'staged-index',
    envelopes: ENVELOPES,
    receivers: RECEIVERS,
    deposits: DEPOSITS,
    batch: BATCH,
    merge_every: MERGE_EVERY,
    merge_chunk: MERGE_CHUNK,
    fill_seconds: fillSeconds,
    current,
    staged,
  };
  process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
