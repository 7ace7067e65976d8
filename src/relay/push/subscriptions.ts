/**
 * Push subscriptions per mailbox (PROTOCOL.md §5.2), behind a small interface of their own so the
 * mailbox store's schema (and its PostgreSQL adapter) stay untouched: SQLite keeps them in a
 * separate file beside the database (`<db>.push.sqlite`), tests and `:memory:` relays in memory.
 */
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';

/** What the browser's `PushSubscription.toJSON()` gives, checked at the edge (handlers.ts). */
export interface PushSubscriptionData {
  readonly endpoint: string;
  /** b64u of the browser's 65-byte P-256 key (RFC 8291 ua_public). */
  readonly p256dh: string;
  /** b64u of the 16-byte auth secret. */
  readonly auth: string;
}

export interface StoredPushSubscription extends PushSubscriptionData {
  readonly did: string;
  /** Unix ms of its (last) registration: the oldest is replaced first. */
  readonly registeredAt: number;
}

export interface PushSubscriptionStore {
  /**
   * Registers `sub` for `did` (a re-registration of the same endpoint updates its keys and
   * time), then keeps only the `max` most recently registered. Resolves how many it removed.
   */
  put(did: string, sub: PushSubscriptionData, now: number, max: number): Promise<number>;
  /** Removes `endpoint` from `did`; resolves whether it was there. */
  remove(did: string, endpoint: string): Promise<boolean>;
  list(did: string): Promise<readonly StoredPushSubscription[]>;
  /**
   * The §5.2 collapse rule's state: marks `did` as woken and resolves true, or false when it was
   * already woken since its owner last received. Shared by every relay process on one store, so
   * a receive through one process re-arms the wake for a deposit through another.
   */
  markWoken(did: string): Promise<boolean>;
  /** Its owner receives: the next deposit wakes it again. */
  clearWoken(did: string): Promise<void>;
  /** Whether `did` is woken (a deferred send checks it is still wanted). */
  isWoken(did: string): Promise<boolean>;
  close(): Promise<void>;
}

/** One relay process owns a SQLite or memory store: the collapse state can live in its memory. */
class LocalWokenSet {
  private readonly woken = new Set<string>();
  markWoken(did: string): Promise<boolean> {
    if (this.woken.has(did)) return Promise.resolve(false);
    this.woken.add(did);
    return Promise.resolve(true);
  }
  clearWoken(did: string): Promise<void> {
    this.woken.delete(did);
    return Promise.resolve();
  }
  isWoken(did: string): Promise<boolean> {
    return Promise.resolve(this.woken.has(did));
  }
}

export class MemoryPushSubscriptionStore extends LocalWokenSet implements PushSubscriptionStore {
  private readonly byDid = new Map<string, StoredPushSubscription[]>();

  put(did: string, sub: PushSubscriptionData, now: number, max: number): Promise<number> {
    const list = (this.byDid.get(did) ?? []).filter((s) => s.endpoint !== sub.endpoint);
    list.push({ did, endpoint: sub.endpoint, p256dh: sub.p256dh, auth: sub.auth, registeredAt: now });
    const removed = Math.max(0, list.length - max);
    this.byDid.set(did, list.slice(removed));
    return Promise.resolve(removed);
  }

  remove(did: string, endpoint: string): Promise<boolean> {
    const list = this.byDid.get(did) ?? [];
    const kept = list.filter((s) => s.endpoint !== endpoint);
    if (kept.length === 0) this.byDid.delete(did);
    else this.byDid.set(did, kept);
    return Promise.resolve(kept.length !== list.length);
  }

  list(did: string): Promise<readonly StoredPushSubscription[]> {
    return Promise.resolve([...(this.byDid.get(did) ?? [])]);
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}

interface Row {
  did: string;
  endpoint: string;
  p256dh: string;
  auth: string;
  registered_at: number;
}

/**
 * Registrations are rare (a browser subscribes once) and lookups are one indexed read per
 * deposit that wakes someone, so this runs synchronously on the event loop: microseconds,
 * not worth the mailbox store's writer thread.
 */
export class SqlitePushSubscriptionStore extends LocalWokenSet implements PushSubscriptionStore {
  private readonly db: Database.Database;
  private readonly stmts: {
    upsert: Database.Statement<[string, string, string, string, number]>;
    listOldestFirst: Database.Statement<[string], Row>;
    remove: Database.Statement<[string, string]>;
  };

  constructor(path: string) {
    super();
    mkdirSync(dirname(path), { recursive: true });
    this.db = new Database(path);
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = FULL');
    this.db.pragma('busy_timeout = 5000');
    this.migrate();
    this.stmts = {
      upsert: this.db.prepare(
        `INSERT INTO push_subscriptions (did, endpoint, p256dh, auth, registered_at) VALUES (?, ?, ?, ?, ?)
         ON CONFLICT (did, endpoint) DO UPDATE SET p256dh = excluded.p256dh, auth = excluded.auth, registered_at = excluded.registered_at`,
      ),
      listOldestFirst: this.db.prepare(
        'SELECT did, endpoint, p256dh, auth, registered_at FROM push_subscriptions WHERE did = ? ORDER BY registered_at, rowid',
      ),
      remove: this.db.prepare('DELETE FROM push_subscriptions WHERE did = ? AND endpoint = ?'),
    };
  }

  /** Schema versions in `user_version`, this file's own: version 1 is the table below. */
  private migrate(): void {
    const version = this.db.pragma('user_version', { simple: true }) as number;
    if (version < 1) {
      this.db.exec(`CREATE TABLE IF NOT EXISTS push_subscriptions (
        did TEXT NOT NULL,
        endpoint TEXT NOT NULL,
        p256dh TEXT NOT NULL,
        auth TEXT NOT NULL,
        registered_at INTEGER NOT NULL,
        PRIMARY KEY (did, endpoint)
      )`);
      this.db.pragma('user_version = 1');
    }
  }

  put(did: string, sub: PushSubscriptionData, now: number, max: number): Promise<number> {
    const removed = this.db.transaction(() => {
      this.stmts.upsert.run(did, sub.endpoint, sub.p256dh, sub.auth, now);
      const rows = this.stmts.listOldestFirst.all(did);
      const extra = rows.slice(0, Math.max(0, rows.length - max));
      for (const r of extra) this.stmts.remove.run(did, r.endpoint);
      return extra.length;
    })();
    return Promise.resolve(removed);
  }

  remove(did: string, endpoint: string): Promise<boolean> {
    return Promise.resolve(this.stmts.remove.run(did, endpoint).changes > 0);
  }

  list(did: string): Promise<readonly StoredPushSubscription[]> {
    return Promise.resolve(
      this.stmts.listOldestFirst
        .all(did)
        .map((r) => ({ did: r.did, endpoint: r.endpoint, p256dh: r.p256dh, auth: r.auth, registeredAt: r.registered_at })),
    );
  }

  close(): Promise<void> {
    this.db.close();
    return Promise.resolve();
  }
}

export const defaultPushDbPath = (db: string): string | undefined => (db === ':memory:' ? undefined : `${db}.push.sqlite`);
