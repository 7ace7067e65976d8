/**
 * PostgreSQL schema for PgMailboxStore, as numbered migrations. Every relay process runs
 * `migrate` at start; a session advisory lock makes them take turns, so N processes starting at
 * once apply each migration exactly once, and `schema_version` records what was applied.
 *
 * Layout (measured choices in pg-store.ts):
 * - `mailboxes`: one row per receiver DID with a bigint key. Its row is the per-receiver lock —
 *   every deposit, ack and sweep of a receiver takes `FOR UPDATE` on it first (in that order, so
 *   transactions never deadlock) — and it carries `queued`, the number of envelope rows of the
 *   receiver (expired-but-unswept included), kept exact in the same transactions. The cap check
 *   (PROTOCOL.md §5) reads it instead of counting rows, and /metrics reads it instead of
 *   aggregating the envelopes table.
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
    description: 'mailboxes, envelopes, used signatures; deposit and ack functions',
    sql: `
CREATE TABLE mailboxes (
  id     bigint  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  did    text    NOT NULL UNIQUE,
  queued integer NOT NULL DEFAULT 0 CHECK (queued >= 0)
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
  CONSTRAINT envelopes_pkey PRIMARY KEY (mailbox_id, deposited_at, seq) INCLUDE (expires_at),
  CONSTRAINT envelopes_mailbox_id_key UNIQUE (mailbox_id, id)
);
CREATE INDEX envelopes_by_expiry ON envelopes (expires_at);
-- Sealed bodies are base64url ciphertext: compressing them costs CPU and saves nothing.
ALTER TABLE envelopes ALTER COLUMN body SET STORAGE EXTERNAL;

CREATE TABLE used_signatures (
  sig        text   PRIMARY KEY,
  expires_at bigint NOT NULL
);

-- One round trip and one transaction per deposit. The mailbox row lock serialises deposits of one
-- receiver across every relay process, so the cap holds under races (PROTOCOL.md §5).
CREATE FUNCTION relay_deposit(p_did text, p_id bytea, p_from text, p_body text, p_size integer,
                              p_deposited bigint, p_expires bigint, p_cap integer)
RETURNS TABLE (outcome text, expires_at bigint) LANGUAGE plpgsql AS $fn$
DECLARE
  v_mailbox bigint;
  v_queued  integer;
  v_existing bigint;
  v_live    integer;
BEGIN
  LOOP
    SELECT m.id, m.queued INTO v_mailbox, v_queued FROM mailboxes m WHERE m.did = p_did FOR UPDATE;
    EXIT WHEN FOUND;
    INSERT INTO mailboxes (did) VALUES (p_did) ON CONFLICT (did) DO NOTHING;
  END LOOP;

  SELECT e.expires_at INTO v_existing FROM envelopes e WHERE e.mailbox_id = v_mailbox AND e.id = p_id;
  IF FOUND AND v_existing > p_deposited THEN
    RETURN QUERY SELECT 'duplicate'::text, v_existing;
    RETURN;
  END IF;
  -- queued counts expired-unswept rows too, so it can only overstate: count live ones exactly
  -- only when it says the cap is reached.
  IF v_queued >= p_cap THEN
    SELECT count(*) INTO v_live FROM envelopes e WHERE e.mailbox_id = v_mailbox AND e.expires_at > p_deposited;
    IF v_live >= p_cap THEN
      RETURN QUERY SELECT 'queue_full'::text, NULL::bigint;
      RETURN;
    END IF;
  END IF;
  IF v_existing IS NOT NULL THEN
    -- Expired but not yet swept: the new deposit replaces it.
    DELETE FROM envelopes e WHERE e.mailbox_id = v_mailbox AND e.id = p_id;
    v_queued := v_queued - 1;
  END IF;
  INSERT INTO envelopes (mailbox_id, id, from_did, body, size, deposited_at, expires_at)
    VALUES (v_mailbox, p_id, p_from, p_body, p_size, p_deposited, p_expires);
  UPDATE mailboxes SET queued = v_queued + 1 WHERE id = v_mailbox;
  -- No NOTIFY here: a notifying transaction holds a cluster-wide lock through its commit flush,
  -- which serialised every deposit's fsync (measured: 285 deposits/s). The store notifies after
  -- COMMIT instead, in batches (pg-store.ts).
  RETURN QUERY SELECT 'stored'::text, p_expires;
END
$fn$;

CREATE FUNCTION relay_ack(p_did text, p_ids bytea[]) RETURNS integer LANGUAGE plpgsql AS $fn$
DECLARE
  v_mailbox bigint;
  v_removed integer;
BEGIN
  SELECT m.id INTO v_mailbox FROM mailboxes m WHERE m.did = p_did FOR UPDATE;
  IF NOT FOUND THEN
    RETURN 0;
  END IF;
  DELETE FROM envelopes e WHERE e.mailbox_id = v_mailbox AND e.id = ANY (p_ids);
  GET DIAGNOSTICS v_removed = ROW_COUNT;
  IF v_removed > 0 THEN
    UPDATE mailboxes SET queued = queued - v_removed WHERE id = v_mailbox;
  END IF;
  RETURN v_removed;
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
