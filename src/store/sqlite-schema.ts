/** The peer database's schema on SQLite (./sqlite.ts): migrations and the step that applies them. */
import type Database from 'better-sqlite3';

/**
 * Schema migrations; MIGRATIONS[n] takes `user_version` n to n + 1. Append, never edit: a
 * database already at version n never runs entries before n again.
 */
const MIGRATIONS: readonly string[] = [
  `
  CREATE TABLE identity (
    id         INTEGER PRIMARY KEY CHECK (id = 1),  -- one identity per device
    did        TEXT    NOT NULL,
    name       TEXT    NOT NULL,
    secret_key BLOB    NOT NULL,
    created_at INTEGER NOT NULL
  );
  CREATE TABLE records (
    id          TEXT    PRIMARY KEY,
    signed      TEXT    NOT NULL,  -- the SignedRecord as JSON
    thread      TEXT    NOT NULL,
    actor       TEXT    NOT NULL,
    clock       INTEGER NOT NULL,
    received_at INTEGER NOT NULL,
    path        TEXT    NOT NULL,
    via         TEXT
  );
  -- recordsByThread reads this index in order; maxClock reads the last entry of a range.
  CREATE INDEX records_by_thread ON records (thread, clock, actor, id);
  CREATE INDEX records_by_actor ON records (actor, thread, clock);
  -- Covers threads(): count and max(received_at) per thread without touching the table.
  CREATE INDEX records_by_thread_arrival ON records (thread, received_at);
  CREATE TABLE outbox (
    id              TEXT    PRIMARY KEY,
    to_did          TEXT    NOT NULL,
    record_ids      TEXT    NOT NULL,  -- JSON array
    records         TEXT    NOT NULL,  -- JSON array of SignedRecord
    envelope        TEXT    NOT NULL,
    created_at      INTEGER NOT NULL,
    expires_at      INTEGER NOT NULL,
    path            TEXT    NOT NULL,
    attempts        INTEGER NOT NULL,
    next_attempt_at INTEGER NOT NULL,
    last_error      TEXT,
    delivered_to    TEXT,
    delivered_at    INTEGER,
    rejected_reason TEXT
  );
  CREATE INDEX outbox_due ON outbox (path, next_attempt_at);
  CREATE INDEX outbox_by_expiry ON outbox (expires_at);
  CREATE TABLE receive_state (
    relay_url       TEXT    PRIMARY KEY,
    last_receive_at INTEGER,
    last_success_at INTEGER,
    backlog         INTEGER NOT NULL,
    last_error      TEXT,
    last_latency_ms INTEGER
  );
  CREATE TABLE counters (
    name  TEXT    PRIMARY KEY,
    value INTEGER NOT NULL
  ) WITHOUT ROWID;
  CREATE TABLE invites (
    nonce      TEXT    PRIMARY KEY,
    exp        INTEGER NOT NULL,
    threads    TEXT    NOT NULL,  -- JSON array
    created_at INTEGER NOT NULL,
    used_by    TEXT
  );
  `,
  // 2: one record per (actor, thread, clock) (PROTOCOL.md §3), enforced by a UNIQUE index so that
  // the check and the insert are one step inside the write transaction. Version 1 checked outside
  // it, so two writers sharing the file (`spl serve` and a one-shot `spl`) could both store one
  // slot. Of such records the first stored (lowest rowid: rows are only ever appended) stays; the
  // others move to records_equivocated, kept as evidence but no longer served, and are counted as
  // refused, which doctor reports.
  `
  CREATE TABLE records_equivocated (
    id          TEXT    PRIMARY KEY,
    signed      TEXT    NOT NULL,
    thread      TEXT    NOT NULL,
    actor       TEXT    NOT NULL,
    clock       INTEGER NOT NULL,
    received_at INTEGER NOT NULL,
    path        TEXT    NOT NULL,
    via         TEXT
  );
  INSERT INTO records_equivocated (id, signed, thread, actor, clock, received_at, path, via)
    SELECT id, signed, thread, actor, clock, received_at, path, via FROM records AS later
    WHERE EXISTS (
      SELECT 1 FROM records AS first
      WHERE first.actor = later.actor AND first.thread = later.thread AND first.clock = later.clock
        AND first.rowid < later.rowid
    );
  DELETE FROM records WHERE id IN (SELECT id FROM records_equivocated);
  INSERT INTO counters (name, value)
    SELECT 'records_refused_clock_reused', moved FROM (SELECT count(*) AS moved FROM records_equivocated) WHERE moved > 0
    ON CONFLICT (name) DO UPDATE SET value = value + excluded.value;
  DROP INDEX records_by_actor;
  -- Also serves maxClock (the last entry of an (actor, thread) range), as records_by_actor did.
  CREATE UNIQUE INDEX records_by_clock ON records (actor, thread, clock);
  `,
];

export const SQLITE_SCHEMA_VERSION = MIGRATIONS.length;

/**
 * Brings the schema to `target` (SQLITE_SCHEMA_VERSION; tests build older versions with it), one
 * transaction per migration step.
 */
export function migrate(db: Database.Database, target = MIGRATIONS.length): void {
  const current = db.pragma('user_version', { simple: true }) as number;
  if (current > MIGRATIONS.length) {
    throw new Error(`peer database schema version ${current} is newer than this program understands (${MIGRATIONS.length})`);
  }
  for (let version = current; version < Math.min(target, MIGRATIONS.length); version++) {
    db.transaction(() => {
      db.exec(MIGRATIONS[version]!);
      db.pragma(`user_version = ${version + 1}`);
    })();
  }
}
