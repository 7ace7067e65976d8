/** Every statement the SQLite peer store runs, prepared once per connection. */
import type Database from 'better-sqlite3';
import type { IdentityRow, InviteRow, OutboxRow, ReceiveStateRow, RecordRow } from './sqlite-rows';

export function prepareStatements(db: Database.Database) {
  return {
    getIdentity: db.prepare<[], IdentityRow>('SELECT did, name, secret_key, created_at FROM identity WHERE id = 1'),
    insertIdentity: db.prepare<[string, string, Uint8Array, number]>(
      'INSERT INTO identity (id, did, name, secret_key, created_at) VALUES (1, ?, ?, ?, ?)',
    ),
    insertRecord: db.prepare<[string, string, string, string, number, number, string, string | null]>(
      // Both uniqueness rules, the ID and (actor, thread, clock) (§3), end in no change: the
      // caller tells a duplicate from a refusal by the ID.
      `INSERT INTO records (id, signed, thread, actor, clock, received_at, path, via) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT DO NOTHING`,
    ),
    getRecord: db.prepare<[string], RecordRow>('SELECT * FROM records WHERE id = ?'),
    hasRecord: db.prepare<[string], { one: number }>('SELECT 1 AS one FROM records WHERE id = ?'),
    recordsByThread: db.prepare<[string], RecordRow>('SELECT * FROM records WHERE thread = ? ORDER BY clock, actor, id'),
    maxClock: db.prepare<[string, string], { clock: number | null }>(
      'SELECT max(clock) AS clock FROM records WHERE actor = ? AND thread = ?',
    ),
    threads: db.prepare<[], { thread: string; count: number; lastReceivedAt: number }>(
      'SELECT thread, count(*) AS count, max(received_at) AS lastReceivedAt FROM records GROUP BY thread ORDER BY thread',
    ),
    countRecords: db.prepare<[], { n: number }>('SELECT count(*) AS n FROM records'),
    // Both on records_by_thread_arrival (thread, received_at).
    countThread: db.prepare<[string], { n: number }>('SELECT count(*) AS n FROM records WHERE thread = ?'),
    arrivedSince: db.prepare<[string, number], RecordRow>(
      'SELECT * FROM records WHERE thread = ? AND received_at >= ? ORDER BY received_at, id',
    ),
    dropCounts: db.prepare<[], { name: string; value: number }>(
      "SELECT name, value FROM counters WHERE name >= 'drop:' AND name < 'drop;' ORDER BY value DESC",
    ),
    putOutbox: db.prepare<
      [
        string,
        string,
        string,
        string,
        string,
        number,
        number,
        string,
        number,
        number,
        string | null,
        string | null,
        number | null,
        string | null,
      ]
    >(
      `INSERT OR REPLACE INTO outbox (id, to_did, record_ids, records, envelope, created_at, expires_at, path, attempts,
         next_attempt_at, last_error, delivered_to, delivered_at, rejected_reason)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    ),
    getOutbox: db.prepare<[string], OutboxRow>('SELECT * FROM outbox WHERE id = ?'),
    listOutbox: db.prepare<[], OutboxRow>('SELECT * FROM outbox ORDER BY created_at, id'),
    dueOutbox: db.prepare<[number], OutboxRow>(
      "SELECT * FROM outbox WHERE path = 'pending' AND next_attempt_at <= ? ORDER BY created_at, id",
    ),
    pruneOutbox: db.prepare<[number]>('DELETE FROM outbox WHERE expires_at <= ?'),
    getReceiveState: db.prepare<[string], ReceiveStateRow>('SELECT * FROM receive_state WHERE relay_url = ?'),
    putReceiveState: db.prepare<[string, number | null, number | null, number, string | null, number | null]>(
      `INSERT OR REPLACE INTO receive_state (relay_url, last_receive_at, last_success_at, backlog, last_error, last_latency_ms)
       VALUES (?, ?, ?, ?, ?, ?)`,
    ),
    listReceiveStates: db.prepare<[], ReceiveStateRow>('SELECT * FROM receive_state ORDER BY relay_url'),
    getCounters: db.prepare<[], { name: string; value: number }>('SELECT name, value FROM counters'),
    bumpCounter: db.prepare<[string, number]>(
      'INSERT INTO counters (name, value) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET value = value + excluded.value',
    ),
    putInvite: db.prepare<[string, number, string, number, string | null]>(
      'INSERT OR REPLACE INTO invites (nonce, exp, threads, created_at, used_by) VALUES (?, ?, ?, ?, ?)',
    ),
    getInvite: db.prepare<[string], InviteRow>('SELECT * FROM invites WHERE nonce = ?'),
    // Valid through `exp` inclusive, as parseInvite treats it (expired only when exp < now).
    redeemInvite: db.prepare<[string, string, number]>('UPDATE invites SET used_by = ? WHERE nonce = ? AND used_by IS NULL AND exp >= ?'),
  };
}

export type Statements = ReturnType<typeof prepareStatements>;
