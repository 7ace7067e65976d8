/** In-memory MailboxStore: tests, embedding without a disk, and the reference semantics. */
import type {
  DepositLimits,
  DepositOutcome,
  MailboxStats,
  MailboxStore,
  ReceiveResult,
  StoreHealth,
  StoreStats,
  StoredEnvelope,
} from './store';

interface Queued {
  readonly env: StoredEnvelope;
  /** Queued without a registered token (PROTOCOL.md §5.1): counts against the unsolicited quota. */
  readonly unsolicited: boolean;
}

interface Mailbox {
  /** id → envelope; a Map keeps insertion order, which is deposit order. */
  readonly queue: Map<string, Queued>;
  /** Rows per class, expired ones included until the sweep: live counts are taken only near a limit. */
  admitted: number;
  unsolicited: number;
  unsolicitedBytes: number;
}

export class MemoryMailboxStore implements MailboxStore {
  private readonly mailboxes = new Map<string, Mailbox>();
  private readonly tokens = new Map<string, ReadonlySet<string>>();
  /** from_did → queued plain envelopes from it. */
  private readonly senders = new Map<string, number>();
  private readonly signatures = new Map<string, number>();
  private closed = false;

  deposit(env: StoredEnvelope, tokenHash: string | null, limits: DepositLimits): Promise<DepositOutcome> {
    return this.run((): DepositOutcome => {
      let box = this.mailboxes.get(env.toDid);
      if (!box) {
        box = { queue: new Map(), admitted: 0, unsolicited: 0, unsolicitedBytes: 0 };
        this.mailboxes.set(env.toDid, box);
      }
      const existing = box.queue.get(env.id);
      if (existing && existing.env.expiresAt > env.depositedAt) return { kind: 'duplicate', expiresAt: existing.env.expiresAt };
      if (existing) this.remove(box, env.id); // expired but not yet swept: the new deposit replaces it
      const registered = this.tokens.get(env.toDid);
      const unsolicited = registered !== undefined && (tokenHash === null || !registered.has(tokenHash));
      const over = (n: number, bytes: number): boolean =>
        unsolicited ? n >= limits.unsolicitedEnvelopes || bytes + env.size > limits.unsolicitedBytes : n >= limits.cap;
      if (over(unsolicited ? box.unsolicited : box.admitted, box.unsolicitedBytes)) {
        // Over by rows: delete the mailbox's expired ones (they count for nothing; the SQLite store
        // does the same, so both answer a later ack or sweep alike) and count the live ones.
        let live = 0;
        let liveBytes = 0;
        for (const q of [...box.queue.values()]) {
          if (q.env.expiresAt <= env.depositedAt) this.remove(box, q.env.id);
          else if (q.unsolicited === unsolicited) {
            live++;
            liveBytes += q.env.size;
          }
        }
        if (over(live, liveBytes)) return this.dropEmpty(env.toDid, box, { kind: unsolicited ? 'unsolicited_quota' : 'queue_full' });
      }
      box.queue.set(env.id, { env: { ...env }, unsolicited });
      if (unsolicited) {
        box.unsolicited++;
        box.unsolicitedBytes += env.size;
      } else {
        box.admitted++;
      }
      if (env.fromDid !== null) this.senders.set(env.fromDid, (this.senders.get(env.fromDid) ?? 0) + 1);
      return { kind: 'stored', expiresAt: env.expiresAt };
    });
  }

  setDepositTokens(did: string, tokenHashes: readonly string[]): Promise<number> {
    return this.run(() => {
      const set = new Set(tokenHashes);
      if (set.size === 0) this.tokens.delete(did);
      else this.tokens.set(did, set);
      return set.size;
    });
  }

  receive(did: string, limit: number, now: number): Promise<ReceiveResult> {
    return this.run(() => {
      const envelopes: StoredEnvelope[] = [];
      let live = 0;
      for (const { env } of this.mailboxes.get(did)?.queue.values() ?? []) {
        if (env.expiresAt <= now) continue;
        live++;
        if (envelopes.length < limit) envelopes.push(env);
      }
      return { envelopes, remaining: live - envelopes.length };
    });
  }

  ack(did: string, ids: readonly string[]): Promise<number> {
    return this.run(() => {
      const box = this.mailboxes.get(did);
      if (!box) return 0;
      let removed = 0;
      for (const id of new Set(ids)) if (this.remove(box, id)) removed++;
      this.dropEmpty(did, box, undefined);
      return removed;
    });
  }

  sweepExpired(now: number): Promise<number> {
    return this.run(() => {
      let swept = 0;
      for (const [did, box] of this.mailboxes) {
        for (const [id, q] of box.queue) {
          if (q.env.expiresAt <= now) {
            this.remove(box, id);
            swept++;
          }
        }
        this.dropEmpty(did, box, undefined);
      }
      for (const [sig, until] of this.signatures) if (until <= now) this.signatures.delete(sig);
      return swept;
    });
  }

  stats(_now: number, topQueues: number): Promise<StoreStats> {
    return this.run(() => {
      const mailboxes: MailboxStats[] = [];
      for (const [did, box] of this.mailboxes) {
        if (box.queue.size === 0) continue;
        let oldest = Infinity;
        for (const q of box.queue.values()) oldest = Math.min(oldest, q.env.depositedAt);
        mailboxes.push({ did, queueSize: box.queue.size, oldestDepositedAt: oldest });
      }
      const uniqueReceivers = mailboxes.length;
      mailboxes.sort((a, b) => b.queueSize - a.queueSize || a.did.localeCompare(b.did));
      return { mailboxes: mailboxes.slice(0, topQueues), uniqueSenders: this.senders.size, uniqueReceivers };
    });
  }

  health(): Promise<StoreHealth> {
    return this.closed
      ? Promise.resolve({ ok: false, message: 'the store is closed' })
      : Promise.resolve({ ok: true, message: 'in memory' });
  }

  claimSignature(sig: string, expiresAt: number): Promise<boolean> {
    return this.run(() => {
      if (this.signatures.has(sig)) return false;
      this.signatures.set(sig, expiresAt);
      return true;
    });
  }

  close(): Promise<void> {
    this.closed = true;
    return Promise.resolve();
  }

  private remove(box: Mailbox, id: string): boolean {
    const q = box.queue.get(id);
    if (!q) return false;
    box.queue.delete(id);
    if (q.unsolicited) {
      box.unsolicited--;
      box.unsolicitedBytes -= q.env.size;
    } else {
      box.admitted--;
    }
    const from = q.env.fromDid;
    if (from !== null) {
      const n = (this.senders.get(from) ?? 1) - 1;
      if (n > 0) this.senders.set(from, n);
      else this.senders.delete(from);
    }
    return true;
  }

  private dropEmpty<T>(did: string, box: Mailbox, result: T): T {
    if (box.queue.size === 0) this.mailboxes.delete(did);
    return result;
  }

  /** Runs `fn` as a store operation: a closed store or a thrown error becomes a rejection. */
  private run<T>(fn: () => T): Promise<T> {
    if (this.closed) return Promise.reject(new Error('mailbox store is closed'));
    try {
      return Promise.resolve(fn());
    } catch (e) {
      return Promise.reject(e instanceof Error ? e : new Error(String(e)));
    }
  }
}
