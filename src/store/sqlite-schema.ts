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
];

export const SQLITE_SCHEMA_VERSION = MIGRATIONS.length;

/** Brings the schema to SQLITE_SCHEMA_VERSION, one transaction per migration step. */
export function migrate(db: Database.Database): void {
  const current = db.pragma('user_version', { simple: true }) as number;
  if (current > MIGRATIONS.length) {
    throw new Error(`peer database schema version ${current} is newer than this program understands (${MIGRATIONS.length})`);
  }
  for (let version = current; version < MIGRATIONS.length; version++) {
    db.transaction(() => {
      db.exec(MIGRATIONS[version]!);
      db.pragma(`user_version = ${version + 1}`);
    })();
  }
}
