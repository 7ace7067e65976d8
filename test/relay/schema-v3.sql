-- The relay's SQLite schema version 3 (before packed bodies), verbatim: test/relay/schema-v4.test.ts builds
-- a database with it to check the upgrade to version 4 keeps every queued envelope.
-- One row per receiver that has (or had, until the sweep) queued envelopes; id is what envelopes
-- and their indexes carry. The counters are kept by the triggers below, so limits and metrics
-- never aggregate the envelope table (expired envelopes count until the sweep deletes them).
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
  seq          INTEGER PRIMARY KEY,   -- rowid: deposit order
  mailbox      INTEGER NOT NULL,      -- mailboxes.id of the receiver
  id           TEXT    NOT NULL,
  from_did     TEXT,
  body         TEXT    NOT NULL,
  size         INTEGER NOT NULL,
  deposited_at INTEGER NOT NULL,
  expires_at   INTEGER NOT NULL,
  unsolicited  INTEGER NOT NULL DEFAULT 0 -- 1: queued without a registered deposit token (§5.1)
);
-- Duplicate check on deposit and ack by ID.
CREATE UNIQUE INDEX IF NOT EXISTS envelopes_by_id ON envelopes (mailbox, id);
-- (mailbox) + the implicit rowid: a receiver's envelopes in deposit order (receive, oldest).
CREATE INDEX IF NOT EXISTS envelopes_by_mailbox ON envelopes (mailbox);
-- The sweep, and the unswept expired envelopes a receive must not count as remaining.
CREATE INDEX IF NOT EXISTS envelopes_by_expiry ON envelopes (expires_at);
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
  receivers INTEGER NOT NULL,
  senders   INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (
  k TEXT PRIMARY KEY,
  v INTEGER NOT NULL
) WITHOUT ROWID;
INSERT OR IGNORE INTO totals (k, receivers, senders) VALUES (0, 0, 0);
CREATE TRIGGER IF NOT EXISTS envelopes_counted_in AFTER INSERT ON envelopes BEGIN
  UPDATE mailboxes SET queued = queued + 1, unsolicited = unsolicited + NEW.unsolicited,
    unsolicited_bytes = unsolicited_bytes + NEW.unsolicited * NEW.size WHERE id = NEW.mailbox;
  INSERT INTO senders (did, queued) SELECT NEW.from_did, 1 WHERE NEW.from_did IS NOT NULL
    ON CONFLICT (did) DO UPDATE SET queued = queued + 1;
END;
CREATE TRIGGER IF NOT EXISTS envelopes_counted_out AFTER DELETE ON envelopes BEGIN
  UPDATE mailboxes SET queued = queued - 1, unsolicited = unsolicited - OLD.unsolicited,
    unsolicited_bytes = unsolicited_bytes - OLD.unsolicited * OLD.size WHERE id = OLD.mailbox;
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
