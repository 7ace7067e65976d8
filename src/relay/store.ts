/**
 * Mailbox storage behind one async interface (PROTOCOL.md §5), so SQLite, memory and a later
 * PostgreSQL adapter are interchangeable and all run the same contract suite
 * (test/relay/store-contract.ts).
 */

/** One queued envelope as the relay keeps it: the body text exactly as deposited. */
export interface StoredEnvelope {
  /** Envelope ID (64 hex). Unique per receiver: a re-deposit of a queued ID is a duplicate. */
  readonly id: string;
  readonly toDid: string;
  /** Sender of a plain envelope; null for sealed ones (the sender is hidden). */
  readonly fromDid: string | null;
  /** The deposited JSON text, served back verbatim (never re-serialised). */
  readonly body: string;
  /** Body size in bytes. */
  readonly size: number;
  /** Unix ms. */
  readonly depositedAt: number;
  /** Unix ms; the envelope is never served at or after this instant. */
  readonly expiresAt: number;
}

export type DepositOutcome =
  | { readonly kind: 'stored'; readonly expiresAt: number }
  /** The ID was already queued (and unexpired) for this receiver: nothing was written. */
  | { readonly kind: 'duplicate'; readonly expiresAt: number }
  /** The receiver already holds `cap` unexpired envelopes. */
  | { readonly kind: 'queue_full' };

export interface ReceiveResult {
  /** Oldest first, unexpired only. */
  readonly envelopes: readonly StoredEnvelope[];
  /** Unexpired envelopes still queued after these. */
  readonly remaining: number;
}

export interface MailboxStats {
  readonly did: string;
  readonly queueSize: number;
  /** Unix ms of the oldest unexpired envelope. */
  readonly oldestDepositedAt: number;
}

export interface StoreStats {
  readonly mailboxes: readonly MailboxStats[];
  /** Distinct `from_did` of queued plain envelopes (sealed ones hide their sender). */
  readonly uniqueSenders: number;
  /** Distinct receivers with at least one queued envelope. */
  readonly uniqueReceivers: number;
}

export interface MailboxStore {
  /**
   * Queues `env` unless its ID is already queued for that receiver (duplicate, checked before the
   * cap) or the receiver holds `cap` envelopes. Atomic; resolves only once the write is durable.
   */
  deposit(env: StoredEnvelope, cap: number): Promise<DepositOutcome>;
  /** Up to `limit` unexpired envelopes of `did`, oldest first. */
  receive(did: string, limit: number, now: number): Promise<ReceiveResult>;
  /** Removes those of `ids` queued for `did` (never another receiver's); resolves the count removed. */
  ack(did: string, ids: readonly string[]): Promise<number>;
  /** Deletes envelopes with expiresAt ≤ now and stale replay-cache entries; resolves envelopes deleted. */
  sweepExpired(now: number): Promise<number>;
  stats(now: number): Promise<StoreStats>;
  /**
   * Records a mailbox-auth signature as used until `expiresAt` (PROTOCOL.md §6 replay rule).
   * False when it was already claimed. Persistent where the store is, so a restart does not
   * reopen the replay window.
   */
  claimSignature(sig: string, expiresAt: number): Promise<boolean>;
  close(): Promise<void>;
}
