/**
 * PostgreSQL PushSubscriptionStore (PROTOCOL.md §5.2) for relays sharing one database
 * (`--db postgres://…`): subscriptions, the collapse state and the VAPID key pair live in tables
 * of their own (`push_*`), created here under an advisory lock of their own, so the mailbox
 * schema and its migrations (pg-migrations.ts) stay untouched. Every relay process must sign with
 * the same VAPID key (a browser subscription is bound to one), hence the key in the database.
 */
import pg from 'pg';
import type { PushSubscriptionData, PushSubscriptionStore, StoredPushSubscription } from './subscriptions';
import type { VapidKeys } from './vapid-key';

/** pg_advisory_lock key of the push schema ("SPL" 0x10), apart from the mailbox store's keys. */
const PUSH_SCHEMA_LOCK_KEY = 0x5350_4c10;

const SCHEMA = `
CREATE TABLE IF NOT EXISTS push_subscriptions (
  did           text   NOT NULL,
  endpoint      text   NOT NULL,
  p256dh        text   NOT NULL,
  auth          text   NOT NULL,
  registered_at bigint NOT NULL,
  PRIMARY KEY (did, endpoint)
);
CREATE TABLE IF NOT EXISTS push_woken (did text PRIMARY KEY);
CREATE TABLE IF NOT EXISTS push_vapid (
  singleton   boolean PRIMARY KEY DEFAULT true CHECK (singleton),
  public_key  text NOT NULL,
  private_key text NOT NULL
);`;

interface Row {
  did: string;
  endpoint: string;
  p256dh: string;
  auth: string;
  registered_at: string;
}

export class PgPushSubscriptionStore implements PushSubscriptionStore {
  private closing: Promise<void> | undefined;

  private constructor(private readonly pool: pg.Pool) {}

  /** Connects (a small pool: registrations are rare, lookups one indexed read) and creates the tables. */
  static async open(connectionString: string): Promise<PgPushSubscriptionStore> {
    const pool = new pg.Pool({ connectionString, max: 4 });
    // An idle client's error (server restart) must not crash the relay; the next query reconnects.
    pool.on('error', () => undefined);
    const client = await pool.connect();
    try {
      await client.query('SELECT pg_advisory_lock($1)', [PUSH_SCHEMA_LOCK_KEY]);
      try {
        await client.query(SCHEMA);
      } finally {
        await client.query('SELECT pg_advisory_unlock($1)', [PUSH_SCHEMA_LOCK_KEY]);
      }
    } finally {
      client.release();
    }
    return new PgPushSubscriptionStore(pool);
  }

  /** The relay's VAPID pair: `generated` is stored unless another process stored one first, whose pair wins. */
  async vapidKeys(generated: VapidKeys): Promise<VapidKeys> {
    await this.pool.query('INSERT INTO push_vapid (public_key, private_key) VALUES ($1, $2) ON CONFLICT (singleton) DO NOTHING', [
      generated.publicKey,
      generated.privateKey,
    ]);
    const { rows } = await this.pool.query<{ public_key: string; private_key: string }>('SELECT public_key, private_key FROM push_vapid');
    return { publicKey: rows[0]!.public_key, privateKey: rows[0]!.private_key };
  }

  async put(did: string, sub: PushSubscriptionData, now: number, max: number): Promise<number> {
    const client = await this.pool.connect();
    try {
      await client.query('BEGIN');
      // Serialises registrations of one mailbox, so two at once cannot both keep a sixth.
      await client.query('SELECT pg_advisory_xact_lock($1, hashtext($2))', [PUSH_SCHEMA_LOCK_KEY, did]);
      await client.query(
        `INSERT INTO push_subscriptions (did, endpoint, p256dh, auth, registered_at) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (did, endpoint) DO UPDATE SET p256dh = excluded.p256dh, auth = excluded.auth, registered_at = excluded.registered_at`,
        [did, sub.endpoint, sub.p256dh, sub.auth, now],
      );
      const removed = await client.query(
        `DELETE FROM push_subscriptions WHERE did = $1 AND endpoint IN (
           SELECT endpoint FROM push_subscriptions WHERE did = $1 ORDER BY registered_at DESC, endpoint OFFSET $2)`,
        [did, max],
      );
      await client.query('COMMIT');
      return removed.rowCount ?? 0;
    } catch (e) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw e;
    } finally {
      client.release();
    }
  }

  async remove(did: string, endpoint: string): Promise<boolean> {
    const r = await this.pool.query('DELETE FROM push_subscriptions WHERE did = $1 AND endpoint = $2', [did, endpoint]);
    return (r.rowCount ?? 0) > 0;
  }

  async list(did: string): Promise<readonly StoredPushSubscription[]> {
    const { rows } = await this.pool.query<Row>(
      'SELECT did, endpoint, p256dh, auth, registered_at FROM push_subscriptions WHERE did = $1 ORDER BY registered_at, endpoint',
      [did],
    );
    return rows.map((r) => ({ did: r.did, endpoint: r.endpoint, p256dh: r.p256dh, auth: r.auth, registeredAt: Number(r.registered_at) }));
  }

  async markWoken(did: string): Promise<boolean> {
    const r = await this.pool.query('INSERT INTO push_woken (did) VALUES ($1) ON CONFLICT DO NOTHING', [did]);
    return (r.rowCount ?? 0) === 1;
  }

  async clearWoken(did: string): Promise<void> {
    await this.pool.query('DELETE FROM push_woken WHERE did = $1', [did]);
  }

  async isWoken(did: string): Promise<boolean> {
    const r = await this.pool.query('SELECT 1 FROM push_woken WHERE did = $1', [did]);
    return (r.rowCount ?? 0) > 0;
  }

  /** Idempotent: overlapping shutdown paths may both close (pg's pool.end() throws when called twice). */
  close(): Promise<void> {
    this.closing ??= this.pool.end();
    return this.closing;
  }
}
