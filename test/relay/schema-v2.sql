-- The relay's SQLite schema version 2 (before issue 14), verbatim: test/relay/migration.test.ts builds
-- a database with it to check the upgrade to version 3 keeps every queued envelope.
CREATE TABLE IF NOT EXISTS envelopes (
  seq          INTEGER PRIMARY KEY,   -- rowid: deposit order
  to_did       TEXT    NOT NULL,
  id           TEXT    NOT NULL,
  from_did     TEXT,
  body         TEXT    NOT NULL,
  size         INTEGER NOT NULL,
  deposited_at INTEGER NOT NULL,
  expires_at   INTEGER NOT NULL,
  unsolicited  INTEGER NOT NULL DEFAULT 0, -- 1: queued without a registered deposit token (§5.1)
  UNIQUE (to_did, id)
);
-- (to_did) + implicit rowid gives deposit order per receiver; (to_did, expires_at) counts live ones.
CREATE INDEX IF NOT EXISTS envelopes_by_receiver ON envelopes (to_did);
CREATE INDEX IF NOT EXISTS envelopes_live ON envelopes (to_did, expires_at);
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
-- Rows per mailbox and per plain sender, kept by triggers as envelopes come and go (expired ones
-- until the sweep), so limits and metrics never aggregate the envelope table.
CREATE TABLE IF NOT EXISTS mailboxes (
  did               TEXT    PRIMARY KEY,
  queued            INTEGER NOT NULL,
  unsolicited       INTEGER NOT NULL,
  unsolicited_bytes INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS mailboxes_by_queued ON mailboxes (queued);
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
  INSERT INTO mailboxes (did, queued, unsolicited, unsolicited_bytes)
    VALUES (NEW.to_did, 1, NEW.unsolicited, NEW.unsolicited * NEW.size)
    ON CONFLICT (did) DO UPDATE SET queued = queued + 1, unsolicited = unsolicited + NEW.unsolicited,
      unsolicited_bytes = unsolicited_bytes + NEW.unsolicited * NEW.size;
  INSERT INTO senders (did, queued) SELECT NEW.from_did, 1 WHERE NEW.from_did IS NOT NULL
    ON CONFLICT (did) DO UPDATE SET queued = queued + 1;
END;
CREATE TRIGGER IF NOT EXISTS envelopes_counted_out AFTER DELETE ON envelopes BEGIN
  UPDATE mailboxes SET queued = queued - 1, unsolicited = unsolicited - OLD.unsolicited,
    unsolicited_bytes = unsolicited_bytes - OLD.unsolicited * OLD.size WHERE did = OLD.to_did;
  DELETE FROM mailboxes WHERE did = OLD.to_did AND queued <= 0;
  UPDATE senders SET queued = queued - 1 WHERE did = OLD.from_did;
  DELETE FROM senders WHERE did = OLD.from_did AND queued <= 0;
END;
CREATE TRIGGER IF NOT EXISTS mailboxes_counted_in AFTER INSERT ON mailboxes BEGIN
  UPDATE totals SET receivers = receivers + 1 WHERE k = 0;
END;
CREATE TRIGGER IF NOT EXISTS mailboxes_counted_out AFTER DELETE ON mailboxes BEGIN
  UPDATE totals SET receivers = receivers - 1 WHERE k = 0;
END;
CREATE TRIGGER IF NOT EXISTS senders_counted_in AFTER INSERT ON senders BEGIN
  UPDATE totals SET senders = senders + 1 WHERE k = 0;
END;
CREATE TRIGGER IF NOT EXISTS senders_counted_out AFTER DELETE ON senders BEGIN
  UPDATE totals SET senders = senders - 1 WHERE k = 0;
END;
