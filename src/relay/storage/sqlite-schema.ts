/**
 * The relay's SQLite schema and connection settings: tables, indexes and counter triggers, and the
 * upgrade of older versions in one transaction (PROTOCOL.md §5). Shared by the store's main-thread
 * connection, its writer thread and `bench:scale`'s fill.
 */
import Database from 'better-sqlite3';
import { createHmac } from 'node:crypto';
import { DatabaseRefusedError } from './store-errors';

export const SCHEMA_VERSION = 5;

/*
 * Version 3 (issue 14): envelopes are keyed by an integer mailbox id, not the 56-character DID
 * text, and carry only the indexes a query needs. Measured on version 2 with 1,000,000 envelopes:
 * four secondary indexes keyed by DID text made each 1 KiB deposit write 20–31 KB and a row cost
 * ~1.7 KB. Each statement's plan (EXPLAIN QUERY PLAN, SQLite 3.50) is noted where it is prepared
 * (sqlite-store.ts, sqlite-writer.ts, sqlite-tail.ts); test/relay/sqlite.test.ts checks the plans.
 * Version 4: a body may be a packed BLOB (sqlite-body.ts); nothing else changed.
 * Version 5: the staged index (sqlite-tail.ts). Envelopes are appended by a seq that never
 * repeats; only merged rows are in `envelope_keys` and the mailbox counters. Version 4 still wrote
 * 19 KB per 1 KiB deposit at 1,000,000 envelopes: its ID and mailbox indexes and per-row counter
 * triggers dirtied random pages in every commit.
 */
const SCHEMA = `
-- One row per receiver that has (or had, until the sweep) queued envelopes; id is what envelopes
-- and their keys carry. The counters cover merged envelopes only (sqlite-tail.ts: the tail's are
-- counted in memory), so limits and metrics never aggregate the envelope table (expired envelopes
-- count until the sweep deletes them).
CREATE TABLE IF NOT EXISTS mailboxes (
  id                INTEGER PRIMARY KEY,
  did               TEXT    NOT NULL UNIQUE,
  queued            INTEGER NOT NULL DEFAULT 0,
  unsolicited       INTEGER NOT NULL DEFAULT 0,
  unsolicited_bytes INTEGER NOT NULL DEFAULT 0
);
-- The metrics' N largest queues: N index entries per scrape, never the table.
CREATE INDEX IF NOT EXISTS mailboxes_by_queued ON mailboxes (queued);
CREATE TABLE IF NOT EXISTS envelopes (
  seq          INTEGER PRIMARY KEY,   -- rowid: deposit order, never reused (meta next_seq)
  mailbox      INTEGER NOT NULL,      -- mailboxes.id of the receiver
  id           TEXT    NOT NULL,
  from_did     TEXT,
  body         BLOB    NOT NULL,      -- text, or a packed BLOB (version 4, sqlite-body.ts)
  size         INTEGER NOT NULL,
  deposited_at INTEGER NOT NULL,
  expires_at   INTEGER NOT NULL,
  unsolicited  INTEGER NOT NULL DEFAULT 0 -- 1: queued without a registered deposit token (§5.1)
);
-- The sweep, and the unswept expired envelopes a receive must not count as remaining. Expiry
-- mostly grows with seq (one default TTL), so new entries land at the index's right edge.
CREATE INDEX IF NOT EXISTS envelopes_by_expiry ON envelopes (expires_at);
-- Merged envelopes only (sqlite-tail.ts): the duplicate check and ack by (mailbox, ID hash), a
-- receiver's envelopes by mailbox. The ID is hashed with relay_secrets.id_hash (a sender cannot
-- choose IDs that share a prefix) and checked against envelopes.id.
CREATE TABLE IF NOT EXISTS envelope_keys (
  mailbox INTEGER NOT NULL,
  id_hash INTEGER NOT NULL,
  seq     INTEGER NOT NULL,
  PRIMARY KEY (mailbox, id_hash, seq)
) WITHOUT ROWID;
-- Rows that left the tail (deleted, or merged), so every connection's tail learns it; pruned
-- below merged_upto when a merge ends. AUTOINCREMENT: n never repeats, even after the log is
-- pruned empty.
CREATE TABLE IF NOT EXISTS tail_exits (
  n   INTEGER PRIMARY KEY AUTOINCREMENT,
  seq INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS relay_secrets (
  name  TEXT PRIMARY KEY,
  value BLOB NOT NULL
) WITHOUT ROWID;
INSERT OR IGNORE INTO relay_secrets (name, value) VALUES ('id_hash', randomblob(32));
CREATE TABLE IF NOT EXISTS used_signatures (
  sig        TEXT    PRIMARY KEY,
  expires_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS used_signatures_by_expiry ON used_signatures (expires_at);
-- Deposit tokens (§5.1): SHA-256 of each token, never the token.
CREATE TABLE IF NOT EXISTS deposit_tokens (
  did  TEXT NOT NULL,
  hash TEXT NOT NULL,
  PRIMARY KEY (did, hash)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS senders (
  did    TEXT    PRIMARY KEY,
  queued INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS totals (
  k         INTEGER PRIMARY KEY CHECK (k = 0),
  receivers INTEGER NOT NULL, -- mailboxes with merged envelopes (the tail adds its own)
  senders   INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (
  k TEXT PRIMARY KEY,
  v INTEGER NOT NULL
) WITHOUT ROWID;
INSERT OR IGNORE INTO totals (k, receivers, senders) VALUES (0, 0, 0);
-- Plain envelopes name their sender: few senders, so a small table kept per row.
CREATE TRIGGER IF NOT EXISTS envelopes_sender_in AFTER INSERT ON envelopes WHEN NEW.from_did IS NOT NULL BEGIN
  INSERT INTO senders (did, queued) VALUES (NEW.from_did, 1) ON CONFLICT (did) DO UPDATE SET queued = queued + 1;
END;
CREATE TRIGGER IF NOT EXISTS envelopes_sender_out AFTER DELETE ON envelopes WHEN OLD.from_did IS NOT NULL BEGIN
  UPDATE senders SET queued = queued - 1 WHERE did = OLD.from_did;
  DELETE FROM senders WHERE did = OLD.from_did AND queued <= 0;
END;
-- A receiver counts while its queue is not empty; empty mailbox rows are deleted by the sweep.
CREATE TRIGGER IF NOT EXISTS mailboxes_became_busy AFTER UPDATE OF queued ON mailboxes
  WHEN OLD.queued <= 0 AND NEW.queued > 0 BEGIN
  UPDATE totals SET receivers = receivers + 1 WHERE k = 0;
END;
CREATE TRIGGER IF NOT EXISTS mailboxes_became_empty AFTER UPDATE OF queued ON mailboxes
  WHEN OLD.queued > 0 AND NEW.queued <= 0 BEGIN
  UPDATE totals SET receivers = receivers - 1 WHERE k = 0;
END;
CREATE TRIGGER IF NOT EXISTS senders_counted_in AFTER INSERT ON senders BEGIN
  UPDATE totals SET senders = senders + 1 WHERE k = 0;
END;
CREATE TRIGGER IF NOT EXISTS senders_counted_out AFTER DELETE ON senders BEGIN
  UPDATE totals SET senders = senders - 1 WHERE k = 0;
END;
`;

/**
 * The database's ID hash (sqlite-tail.ts): HMAC-SHA256 of the envelope ID under a random key kept
 * in the file, its first 48 bits. Keyed, because a sender who could predict it could give all its
 * IDs one hash and turn every lookup in a mailbox into a walk over them.
 */
export function idHasher(db: Database.Database): (id: string) => number {
  const row = db.prepare<[], { value: Buffer }>("SELECT value FROM relay_secrets WHERE name = 'id_hash'").get();
  if (!row) throw new DatabaseRefusedError('the database has no ID hash key (relay_secrets); it was not prepared by this relay');
  const key = Buffer.from(row.value);
  return (id) => createHmac('sha256', key).update(id).digest().readUIntBE(0, 6);
}

/**
 * Indexes every envelope as merged (sqlite-tail.ts): the key table, the mailbox and sender
 * counters and the merge state, rebuilt from the envelope table. Upgrades use it, and so does
 * `bench:scale`'s direct fill. Runs in the caller's transaction when there is one.
 */
export function indexAllEnvelopes(db: Database.Database): void {
  const hash = idHasher(db);
  db.function('relay_id_hash', { deterministic: true }, (id: unknown) => hash(String(id)));
  db.transaction(() => {
    db.exec(`
      DELETE FROM envelope_keys;
      DELETE FROM tail_exits;
      INSERT INTO envelope_keys (mailbox, id_hash, seq) SELECT mailbox, relay_id_hash(id), seq FROM envelopes ORDER BY 1, 2, 3;
      CREATE TEMP TABLE mailbox_counts AS
        SELECT mailbox, count(*) AS n, sum(unsolicited) AS u, sum(unsolicited * size) AS b FROM envelopes GROUP BY mailbox;
      UPDATE mailboxes SET queued = 0, unsolicited = 0, unsolicited_bytes = 0;
      UPDATE mailboxes SET queued = c.n, unsolicited = c.u, unsolicited_bytes = c.b FROM temp.mailbox_counts c WHERE c.mailbox = mailboxes.id;
      DROP TABLE temp.mailbox_counts;
      DELETE FROM senders;
      INSERT INTO senders (did, queued) SELECT from_did, count(*) FROM envelopes WHERE from_did IS NOT NULL GROUP BY from_did;
      UPDATE totals SET receivers = (SELECT count(*) FROM mailboxes WHERE queued > 0), senders = (SELECT count(*) FROM senders) WHERE k = 0;
      INSERT INTO meta (k, v) SELECT 'merged_upto', coalesce(max(seq), 0) FROM envelopes WHERE true
        ON CONFLICT (k) DO UPDATE SET v = excluded.v;
      INSERT INTO meta (k, v) SELECT 'next_seq', max(coalesce(max(seq), 0) + 1, coalesce((SELECT v FROM meta WHERE k = 'next_seq'), 1)) FROM envelopes WHERE true
        ON CONFLICT (k) DO UPDATE SET v = excluded.v;
      DELETE FROM meta WHERE k = 'merge_end';`);
  })();
}

/** Per-connection settings (WAL, synchronous=FULL, 64 MiB cache). The schema is `prepareSchema`'s. */
export function openSqlite(path: string, opts: { readonly readonly?: boolean } = {}): Database.Database {
  const db = new Database(path, { readonly: opts.readonly ?? false });
  // Only a new file takes it (an existing one keeps its page size; changing it needs VACUUM outside
  // WAL mode). Measured with 1 KiB pages instead (issue 14): bytes written per 1 KiB deposit fell
  // from ~10 to ~6.7 KB on an empty relay but only from ~20 to ~18 KB at 1,000,000 envelopes (a
  // checkpoint writes each random page back as a whole 4 KiB OS page), and deposit p99 in
  // `npm run bench:relay` rose from 16–18 ms to 21–22 ms (deeper trees). So 4 KiB, SQLite's default.
  if (!opts.readonly) db.pragma(`page_size = ${PAGE_SIZE}`);
  if (!opts.readonly) db.pragma('journal_mode = WAL');
  db.pragma('synchronous = FULL');
  db.pragma('busy_timeout = 5000');
  // A 64 MiB page cache (default 2 MiB) keeps the indexes' hot pages in memory under load:
  // measured, deposit p99 fell from ~27-30 ms to ~23-25 ms in `npm run bench:relay`.
  db.pragma('cache_size = -65536');
  db.pragma('temp_store = memory');
  // After a checkpoint lets the WAL restart, the writer truncates the file to this size, so a
  // burst does not leave a large WAL behind (PROTOCOL.md §5 "Storage pressure").
  db.pragma(`journal_size_limit = ${WAL_SIZE_LIMIT}`);
  return db;
}

/** Page size of new database files (see openSqlite). */
export const PAGE_SIZE = 4096;

export const WAL_SIZE_LIMIT = 4 * 1024 * 1024;

/**
 * Creates or upgrades the schema in one IMMEDIATE transaction (so relays starting together on one
 * file do it once, and a crash mid-upgrade leaves the old schema whole). Versions 1 and 2 keyed
 * envelopes by DID text: their envelopes are copied, seq (deposit order), IDs, bodies and expiry
 * unchanged, into the current tables. Versions 3 and 4 keep their envelope table as it is and lose
 * the per-row indexes and counter triggers. Either way every envelope is then indexed as merged
 * (`indexAllEnvelopes`): measured at 1,000,000 envelopes, the upgrade from version 4 took 6.3 s once, before the relay listens.
 */
export function prepareSchema(db: Database.Database): void {
  // Current already: no write (a read-only database still opens, and /health says it cannot commit).
  if ((db.pragma('user_version', { simple: true }) as number) === SCHEMA_VERSION) return;
  db.transaction(() => {
    const version = db.pragma('user_version', { simple: true }) as number;
    if (version > SCHEMA_VERSION)
      throw new DatabaseRefusedError(`the database has schema version ${version}; this relay knows up to ${SCHEMA_VERSION}`);
    if (version === SCHEMA_VERSION) return;
    const hasEnvelopes = db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'envelopes'").get() !== undefined;
    if (hasEnvelopes && version >= 3) {
      // Version 3 rows are text bodies, served as they are (version 4 added packed BLOBs beside them).
      db.exec(`
        DROP INDEX IF EXISTS envelopes_by_id;
        DROP INDEX IF EXISTS envelopes_by_mailbox;
        DROP TRIGGER IF EXISTS envelopes_counted_in;
        DROP TRIGGER IF EXISTS envelopes_counted_out;`);
      db.exec(SCHEMA);
    } else if (hasEnvelopes) {
      const cols = db
        .prepare<[], { name: string }>("SELECT name FROM pragma_table_info('envelopes')")
        .all()
        .map((c) => c.name);
      if (!cols.includes('unsolicited')) db.exec('ALTER TABLE envelopes ADD COLUMN unsolicited INTEGER NOT NULL DEFAULT 0');
      // Version 1/2 objects: triggers and indexes go, the envelope table is kept aside for the copy.
      const old = db
        .prepare<[], { type: string; name: string }>(
          "SELECT type, name FROM sqlite_master WHERE type IN ('trigger', 'index') AND name NOT LIKE 'sqlite_autoindex_%' AND tbl_name IN ('envelopes', 'mailboxes', 'senders')",
        )
        .all();
      for (const o of old) db.exec(`DROP ${o.type === 'trigger' ? 'TRIGGER' : 'INDEX'} IF EXISTS "${o.name}"`);
      db.exec(
        'ALTER TABLE envelopes RENAME TO envelopes_v2; DROP TABLE IF EXISTS mailboxes; DROP TABLE IF EXISTS senders; DROP TABLE IF EXISTS totals;',
      );
      db.exec(SCHEMA);
      db.exec(`
        INSERT INTO mailboxes (did) SELECT DISTINCT to_did FROM envelopes_v2;
        INSERT INTO envelopes (seq, mailbox, id, from_did, body, size, deposited_at, expires_at, unsolicited)
          SELECT e.seq, m.id, e.id, e.from_did, e.body, e.size, e.deposited_at, e.expires_at, e.unsolicited
          FROM envelopes_v2 e JOIN mailboxes m ON m.did = e.to_did ORDER BY e.seq;
        DROP TABLE envelopes_v2;`);
    } else {
      db.exec(SCHEMA);
    }
    indexAllEnvelopes(db);
    db.pragma(`user_version = ${SCHEMA_VERSION}`);
  }).immediate();
}
