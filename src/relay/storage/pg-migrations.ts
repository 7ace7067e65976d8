/**
 * PostgreSQL schema for PgMailboxStore, as numbered migrations. Every relay process runs
 * `migrate` at start; a session advisory lock makes them take turns, so N processes starting at
 * once apply each migration exactly once, and `schema_version` records what was applied.
 *
 * Layout (measured choices in pg-store.ts):
 * - `mailboxes`: one row per receiver DID with a bigint key. Its row is the per-receiver lock —
 *   every deposit, ack and sweep of a receiver takes `FOR UPDATE` on it first (by id, then sender
 *   rows by did, so transactions do not wait on each other in a cycle) — and it carries the
 *   receiver's envelope counts per class (admitted / unsolicited, PROTOCOL.md §5.1, expired-unswept
 *   included) and its deposit token hashes, kept in the same transactions. The cap and quota
 *   checks read them instead of counting rows, and /metrics reads them instead of aggregating the
 *   envelopes table; `senders` does the same for relay_unique_senders.
 * - `envelopes`: keyed by (mailbox_id, deposited_at, seq): oldest first is deposit time, with seq
 *   breaking ties (concurrent deposits take the mailbox lock in no particular order, so seq alone
 *   is not deposit order). `id` is the 32-byte envelope ID (not 64 hex chars).
 *   Exactly three indexes, one per query shape:
 *     pkey (mailbox_id, deposited_at, seq) INCLUDE (expires_at) — receive (oldest first), the live
 *       count and the oldest age, as index scans that skip expired entries before the heap;
 *     (mailbox_id, id) unique — duplicate check on deposit, ack by ID;
 *     (expires_at) — the expiry sweep and the expired-per-mailbox correction in stats.
 * - `used_signatures`: the §6 replay cache. No expiry index: it holds at most the signatures of
 *   the last ~125 s, which the sweep scans once per interval.
 */
import type { ClientBase } from 'pg';

/** Arbitrary, fixed: pg_advisory_lock keys of this relay (migrations; the expiry sweep). */
export const MIGRATION_LOCK_KEY = 0x5350_4c01; // "SPL" 1
export const SWEEP_LOCK_KEY = 0x5350_4c02;

/** The NOTIFY channel of deposits; the payload is the receiver DID (PROTOCOL.md §5 long-poll). */
export const DEPOSIT_CHANNEL = 'relay_deposit';

interface Migration {
  readonly version: number;
  readonly description: string;
  readonly sql: string;
}

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    description: 'mailboxes, envelopes, senders, used signatures, settings; deposit, ack, purge and sweep functions',
    sql: `
CREATE TABLE mailboxes (
  id                bigint  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  did               text    NOT NULL UNIQUE,
  -- Envelope rows per class (PROTOCOL.md §5.1), expired-unswept included: an exact count is taken
  -- (by purging the mailbox's expired rows) only when these say a limit is reached.
  admitted          integer NOT NULL DEFAULT 0 CHECK (admitted >= 0),
  unsolicited       integer NOT NULL DEFAULT 0 CHECK (unsolicited >= 0),
  unsolicited_bytes bigint  NOT NULL DEFAULT 0 CHECK (unsolicited_bytes >= 0),
  -- SHA-256 of each registered deposit token; NULL: none registered (every deposit is admitted).
  -- In the row the deposit locks anyway: no second lookup, no second lock.
  token_hashes      bytea[]
);

CREATE TABLE envelopes (
  mailbox_id   bigint  NOT NULL,
  seq          bigint  GENERATED ALWAYS AS IDENTITY,
  id           bytea   NOT NULL,
  from_did     text,
  body         text    NOT NULL,
  size         integer NOT NULL,
  deposited_at bigint  NOT NULL,
  expires_at   bigint  NOT NULL,
  unsolicited  boolean NOT NULL,
  CONSTRAINT envelopes_pkey PRIMARY KEY (mailbox_id, deposited_at, seq) INCLUDE (expires_at),
  CONSTRAINT envelopes_mailbox_id_key UNIQUE (mailbox_id, id)
);
CREATE INDEX envelopes_by_expiry ON envelopes (expires_at);
-- Sealed bodies are base64url ciphertext: compressing them costs CPU and saves nothing.
ALTER TABLE envelopes ALTER COLUMN body SET STORAGE EXTERNAL;

-- Queued plain envelopes per sender (relay_unique_senders without aggregating envelopes).
CREATE TABLE senders (
  did    text    PRIMARY KEY,
  queued integer NOT NULL CHECK (queued >= 0)
);

CREATE TABLE used_signatures (
  sig        text   PRIMARY KEY,
  expires_at bigint NOT NULL
);

-- Shared by every relay process on this database (e.g. the key of hashed metric labels).
CREATE TABLE relay_settings (
  name  text  PRIMARY KEY,
  value bytea NOT NULL
);

-- Takes back senders' counts for removed plain envelopes. Sender rows are locked in did order,
-- so two transactions never wait on each other's senders in a cycle.
CREATE FUNCTION relay_release_senders(p_dids text[]) RETURNS void LANGUAGE plpgsql AS $fn$
BEGIN
  IF p_dids IS NULL OR cardinality(p_dids) = 0 THEN
    RETURN;
  END IF;
  PERFORM 1 FROM senders s WHERE s.did = ANY (p_dids) ORDER BY s.did FOR UPDATE;
  UPDATE senders s SET queued = s.queued - c.n
    FROM (SELECT d, count(*)::integer AS n FROM unnest(p_dids) AS d GROUP BY d) c WHERE s.did = c.d;
  DELETE FROM senders s WHERE s.did = ANY (p_dids) AND s.queued = 0;
END
$fn$;

-- Deletes the expired envelopes of one mailbox (its row locked by the caller) and fixes its
-- counters: afterwards they are exact.
CREATE FUNCTION relay_purge_expired(p_mailbox bigint, p_now bigint) RETURNS integer LANGUAGE plpgsql AS $fn$
DECLARE
  v_n integer;
  v_admitted integer;
  v_unsolicited integer;
  v_bytes bigint;
  v_senders text[];
BEGIN
  WITH gone AS (
    DELETE FROM envelopes e WHERE e.mailbox_id = p_mailbox AND e.expires_at <= p_now
    RETURNING e.unsolicited, e.size, e.from_did
  )
  SELECT count(*), count(*) FILTER (WHERE NOT unsolicited), count(*) FILTER (WHERE unsolicited),
         coalesce(sum(size) FILTER (WHERE unsolicited), 0), array_agg(from_did ORDER BY from_did) FILTER (WHERE from_did IS NOT NULL)
    INTO v_n, v_admitted, v_unsolicited, v_bytes, v_senders FROM gone;
  IF v_n > 0 THEN
    UPDATE mailboxes m SET admitted = m.admitted - v_admitted, unsolicited = m.unsolicited - v_unsolicited,
                           unsolicited_bytes = m.unsolicited_bytes - v_bytes WHERE m.id = p_mailbox;
    PERFORM relay_release_senders(v_senders);
  END IF;
  RETURN v_n;
END
$fn$;

-- One round trip and one transaction per deposit. The mailbox row lock serialises deposits of one
-- receiver across every relay process, so the cap and the unsolicited quota hold under races
-- (PROTOCOL.md §5, §5.1). Lock order everywhere: mailbox rows (by id), then sender rows (by did).
CREATE FUNCTION relay_deposit(p_did text, p_id bytea, p_from text, p_body text, p_size integer,
                              p_deposited bigint, p_expires bigint, p_token bytea,
                              p_cap integer, p_unsolicited_max integer, p_unsolicited_bytes_max bigint,
                              p_storage_full boolean)
RETURNS TABLE (outcome text, expires_at bigint) LANGUAGE plpgsql AS $fn$
DECLARE
  v_mailbox bigint;
  v_box mailboxes%ROWTYPE;
  v_existing bigint;
  v_unsolicited boolean;
  v_over boolean;
BEGIN
  LOOP
    SELECT * INTO v_box FROM mailboxes m WHERE m.did = p_did FOR UPDATE;
    EXIT WHEN FOUND;
    INSERT INTO mailboxes (did) VALUES (p_did) ON CONFLICT (did) DO NOTHING;
  END LOOP;
  v_mailbox := v_box.id;

  SELECT e.expires_at INTO v_existing FROM envelopes e WHERE e.mailbox_id = v_mailbox AND e.id = p_id;
  IF FOUND AND v_existing > p_deposited THEN
    RETURN QUERY SELECT 'duplicate'::text, v_existing;
    RETURN;
  END IF;
  -- Over the operator's storage limit (measured by the caller): duplicates above still answer.
  IF p_storage_full THEN
    RETURN QUERY SELECT 'storage_full'::text, NULL::bigint;
    RETURN;
  END IF;

  v_unsolicited := v_box.token_hashes IS NOT NULL AND (p_token IS NULL OR NOT (p_token = ANY (v_box.token_hashes)));
  v_over := CASE WHEN v_unsolicited
                 THEN v_box.unsolicited >= p_unsolicited_max OR v_box.unsolicited_bytes + p_size > p_unsolicited_bytes_max
                 ELSE v_box.admitted >= p_cap END;
  IF v_over OR v_existing IS NOT NULL THEN
    -- The counters include expired rows (and an expired copy of this ID may be queued): delete
    -- them, then the counters are exact.
    PERFORM relay_purge_expired(v_mailbox, p_deposited);
    SELECT * INTO v_box FROM mailboxes m WHERE m.id = v_mailbox;
    IF v_unsolicited AND (v_box.unsolicited >= p_unsolicited_max OR v_box.unsolicited_bytes + p_size > p_unsolicited_bytes_max) THEN
      RETURN QUERY SELECT 'unsolicited_quota'::text, NULL::bigint;
      RETURN;
    END IF;
    IF NOT v_unsolicited AND v_box.admitted >= p_cap THEN
      RETURN QUERY SELECT 'queue_full'::text, NULL::bigint;
      RETURN;
    END IF;
  END IF;

  INSERT INTO envelopes (mailbox_id, id, from_did, body, size, deposited_at, expires_at, unsolicited)
    VALUES (v_mailbox, p_id, p_from, p_body, p_size, p_deposited, p_expires, v_unsolicited);
  IF v_unsolicited THEN
    UPDATE mailboxes m SET unsolicited = m.unsolicited + 1, unsolicited_bytes = m.unsolicited_bytes + p_size WHERE m.id = v_mailbox;
  ELSE
    UPDATE mailboxes m SET admitted = m.admitted + 1 WHERE m.id = v_mailbox;
  END IF;
  IF p_from IS NOT NULL THEN
    INSERT INTO senders AS s (did, queued) VALUES (p_from, 1) ON CONFLICT (did) DO UPDATE SET queued = s.queued + 1;
  END IF;
  -- No NOTIFY here: a notifying transaction holds a cluster-wide lock through its commit flush,
  -- which serialised every deposit's fsync (measured: 285 deposits/s, against 1,850–2,400 without). The store notifies after
  -- COMMIT instead, in batches (pg-store.ts).
  RETURN QUERY SELECT 'stored'::text, p_expires;
END
$fn$;

CREATE FUNCTION relay_ack(p_did text, p_ids bytea[]) RETURNS integer LANGUAGE plpgsql AS $fn$
DECLARE
  v_mailbox bigint;
  v_n integer;
  v_admitted integer;
  v_unsolicited integer;
  v_bytes bigint;
  v_senders text[];
BEGIN
  SELECT m.id INTO v_mailbox FROM mailboxes m WHERE m.did = p_did FOR UPDATE;
  IF NOT FOUND THEN
    RETURN 0;
  END IF;
  WITH gone AS (
    DELETE FROM envelopes e WHERE e.mailbox_id = v_mailbox AND e.id = ANY (p_ids)
    RETURNING e.unsolicited, e.size, e.from_did
  )
  SELECT count(*), count(*) FILTER (WHERE NOT unsolicited), count(*) FILTER (WHERE unsolicited),
         coalesce(sum(size) FILTER (WHERE unsolicited), 0), array_agg(from_did ORDER BY from_did) FILTER (WHERE from_did IS NOT NULL)
    INTO v_n, v_admitted, v_unsolicited, v_bytes, v_senders FROM gone;
  IF v_n > 0 THEN
    UPDATE mailboxes m SET admitted = m.admitted - v_admitted, unsolicited = m.unsolicited - v_unsolicited,
                           unsolicited_bytes = m.unsolicited_bytes - v_bytes WHERE m.id = v_mailbox;
    PERFORM relay_release_senders(v_senders);
  END IF;
  RETURN v_n;
END
$fn$;

-- The expiry sweep: one process at a time (transaction advisory lock; the others return 0).
-- Mailboxes with expired rows are locked first, in id order, like every other writer; senders
-- are released once, in did order.
CREATE FUNCTION relay_sweep(p_now bigint, p_lock_key bigint) RETURNS integer LANGUAGE plpgsql AS $fn$
DECLARE
  v_ids bigint[];
  v_n integer := 0;
  v_senders text[];
BEGIN
  IF NOT pg_try_advisory_xact_lock(p_lock_key) THEN
    RETURN 0;
  END IF;
  SELECT array_agg(id) INTO v_ids FROM (
    SELECT m.id FROM mailboxes m WHERE m.id IN (SELECT DISTINCT e.mailbox_id FROM envelopes e WHERE e.expires_at <= p_now)
    ORDER BY m.id FOR UPDATE
  ) locked;
  IF v_ids IS NOT NULL THEN
    WITH gone AS (
      DELETE FROM envelopes e WHERE e.mailbox_id = ANY (v_ids) AND e.expires_at <= p_now
      RETURNING e.mailbox_id, e.unsolicited, e.size, e.from_did
    ), per AS (
      SELECT mailbox_id, count(*) FILTER (WHERE NOT unsolicited) AS admitted, count(*) FILTER (WHERE unsolicited) AS unsolicited,
             coalesce(sum(size) FILTER (WHERE unsolicited), 0) AS bytes
      FROM gone GROUP BY mailbox_id
    ), upd AS (
      UPDATE mailboxes m SET admitted = m.admitted - per.admitted, unsolicited = m.unsolicited - per.unsolicited,
                             unsolicited_bytes = m.unsolicited_bytes - per.bytes
      FROM per WHERE m.id = per.mailbox_id
    )
    SELECT count(*), array_agg(from_did ORDER BY from_did) FILTER (WHERE from_did IS NOT NULL) INTO v_n, v_senders FROM gone;
    PERFORM relay_release_senders(v_senders);
  END IF;
  DELETE FROM used_signatures u WHERE u.expires_at <= p_now;
  -- Empty mailbox rows without tokens go, so DIDs that once received do not accumulate. A deposit
  -- racing this holds the row lock; the DELETE then re-checks the row and keeps it.
  DELETE FROM mailboxes m WHERE m.admitted = 0 AND m.unsolicited = 0 AND m.token_hashes IS NULL;
  RETURN v_n;
END
$fn$;
`,
  },
];

/**
 * Applies every migration newer than the database's version, each in its own transaction, under
 * a session advisory lock (released on return, or by the server if this process dies).
 * Refuses a database whose version is newer than this code knows.
 */
export async function migrate(client: ClientBase): Promise<number> {
  await client.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK_KEY]);
  try {
    await client.query(
      'CREATE TABLE IF NOT EXISTS schema_version (version integer PRIMARY KEY, description text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())',
    );
    const { rows } = await client.query<{ v: number | null }>('SELECT max(version) AS v FROM schema_version');
    const current = rows[0]?.v ?? 0;
    const latest = MIGRATIONS[MIGRATIONS.length - 1]?.version ?? 0;
    if (current > latest) {
      throw new Error(`the database schema is version ${current}, newer than this relay knows (${latest}); upgrade the relay`);
    }
    for (const m of MIGRATIONS) {
      if (m.version <= current) continue;
      await client.query('BEGIN');
      try {
        await client.query(m.sql);
        await client.query('INSERT INTO schema_version (version, description) VALUES ($1, $2)', [m.version, m.description]);
        await client.query('COMMIT');
      } catch (e) {
        await client.query('ROLLBACK').catch(() => undefined);
        throw e;
      }
    }
    return latest;
  } finally {
    await client.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK_KEY]);
  }
}
