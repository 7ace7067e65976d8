/** In-memory MailboxStore: tests, embedding without a disk, and the reference semantics. */
import type { DepositOutcome, MailboxStats, MailboxStore, ReceiveResult, StoreStats, StoredEnvelope } from './store';

export class MemoryMailboxStore implements MailboxStore {
  /** did → (id → envelope); a Map keeps insertion order, which is deposit order. */
  private readonly mailboxes = new Map<string, Map<string, StoredEnvelope>>();
  private readonly signatures = new Map<string, number>();
  private closed = false;

  deposit(env: StoredEnvelope, cap: number): Promise<DepositOutcome> {
    return this.run((): DepositOutcome => {
      let box = this.mailboxes.get(env.toDid);
      if (!box) {
        box = new Map();
        this.mailboxes.set(env.toDid, box);
      }
      const existing = box.get(env.id);
      if (existing && existing.expiresAt > env.depositedAt) return { kind: 'duplicate', expiresAt: existing.expiresAt };
      if (existing) box.delete(env.id); // expired but not yet swept: the new deposit replaces it
      // Counting live envelopes is only needed near the cap (expired ones wait for the sweep).
      if (box.size >= cap && countLive(box, env.depositedAt) >= cap) return { kind: 'queue_full' };
      box.set(env.id, { ...env });
      return { kind: 'stored', expiresAt: env.expiresAt };
    });
  }

  receive(did: string, limit: number, now: number): Promise<ReceiveResult> {
    return this.run(() => {
      const envelopes: StoredEnvelope[] = [];
      let live = 0;
      for (const env of this.mailboxes.get(did)?.values() ?? []) {
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
      for (const id of new Set(ids)) if (box.delete(id)) removed++;
      if (box.size === 0) this.mailboxes.delete(did);
      return removed;
    });
  }

  sweepExpired(now: number): Promise<number> {
    return this.run(() => {
      let swept = 0;
      for (const [did, box] of this.mailboxes) {
        for (const [id, env] of box) {
          if (env.expiresAt <= now) {
            box.delete(id);
            swept++;
          }
        }
        if (box.size === 0) this.mailboxes.delete(did);
      }
      for (const [sig, until] of this.signatures) if (until <= now) this.signatures.delete(sig);
      return swept;
    });
  }

  stats(now: number): Promise<StoreStats> {
    return this.run(() => {
      const senders = new Set<string>();
      const mailboxes: MailboxStats[] = [];
      for (const [did, box] of this.mailboxes) {
        let queueSize = 0;
        let oldest = Infinity;
        for (const env of box.values()) {
          if (env.expiresAt <= now) continue;
          queueSize++;
          oldest = Math.min(oldest, env.depositedAt);
          if (env.fromDid !== null) senders.add(env.fromDid);
        }
        if (queueSize > 0) mailboxes.push({ did, queueSize, oldestDepositedAt: oldest });
      }
      return { mailboxes, uniqueSenders: senders.size, uniqueReceivers: mailboxes.length };
    });
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

function countLive(box: Map<string, StoredEnvelope>, now: number): number {
  let n = 0;
  for (const env of box.values()) if (env.expiresAt > now) n++;
  return n;
}
