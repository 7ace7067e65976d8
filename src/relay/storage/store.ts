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
  /** An admitted deposit, and the receiver already holds `cap` unexpired admitted envelopes. */
  | { readonly kind: 'queue_full' }
  /** An unsolicited deposit over the mailbox's unsolicited quota (PROTOCOL.md §5.1). */
  | { readonly kind: 'unsolicited_quota' }
  /** The store's own storage limits (adapter options, e.g. database size, free disk) refuse new envelopes (§5 "Storage pressure"). */
  | { readonly kind: 'storage_full' };

/**
 * Admission limits for one deposit (PROTOCOL.md §5, §5.1), checked by the store inside its write
 * transaction so they hold for any number of relay processes sharing it.
 *
 * A deposit is *admitted* when its mailbox has no deposit tokens registered, or when it carries
 * the hash of one of them; otherwise it is *unsolicited*. The class is fixed when the envelope is
 * queued (a later token change does not move it). Admitted envelopes count against `cap`;
 * unsolicited ones against `unsolicitedEnvelopes` and `unsolicitedBytes` (sum of `size`), never
 * against `cap`. Expired envelopes count for neither (the store may delete them to make room).
 * Duplicates are checked first and count nothing.
 */
export interface DepositLimits {
  readonly cap: number;
  readonly unsolicitedEnvelopes: number;
  readonly unsolicitedBytes: number;
}

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
  /**
   * The `topQueues` largest queues, largest first. Counts may include expired envelopes until the
   * next sweep: stores keep them as the data changes, so a scrape never aggregates the table.
   */
  readonly mailboxes: readonly MailboxStats[];
  /** Distinct `from_did` of queued plain envelopes (sealed ones hide their sender). */
  readonly uniqueSenders: number;
  /** Distinct receivers with at least one queued envelope. */
  readonly uniqueReceivers: number;
}

/** Whether the store can commit (PROTOCOL.md §5: `/health` answers 503 when it cannot). */
export interface StoreHealth {
  readonly ok: boolean;
  /** A human sentence: what the writer last saw (e.g. the error that stops commits). */
  readonly message: string;
}

export interface MailboxStore {
  /**
   * Queues `env` unless its ID is already queued for that receiver (duplicate, checked first), a
   * limit refuses it (see DepositLimits), or the store is over its storage limits. `tokenHash` is
   * the lowercase hex SHA-256 of the deposit token the depositor sent (never the token), or null.
   * Atomic with its checks; resolves only once the write is durable.
   */
  deposit(env: StoredEnvelope, tokenHash: string | null, limits: DepositLimits): Promise<DepositOutcome>;
  /**
   * Replaces the deposit tokens of `did` (PROTOCOL.md §5.1) with these hashes (lowercase hex
   * SHA-256, deduplicated by the store); an empty list removes them. Resolves the count kept.
   */
  setDepositTokens(did: string, tokenHashes: readonly string[]): Promise<number>;
  /** Up to `limit` unexpired envelopes of `did`, oldest first. */
  receive(did: string, limit: number, now: number): Promise<ReceiveResult>;
  /** Removes those of `ids` queued for `did` (never another receiver's); resolves the count removed. */
  ack(did: string, ids: readonly string[]): Promise<number>;
  /** Deletes envelopes with expiresAt ≤ now and stale replay-cache entries; resolves envelopes deleted. */
  sweepExpired(now: number): Promise<number>;
  /** Metric figures; `topQueues` bounds `mailboxes`. Cheap whatever the table size. */
  stats(now: number, topQueues: number): Promise<StoreStats>;
  /** Whether a write can commit now; a store may answer from a recent commit rather than write. */
  health(): Promise<StoreHealth>;
  /**
   * Records a mailbox-auth signature as used until `expiresAt` (PROTOCOL.md §6 replay rule).
   * False when it was already claimed. Persistent where the store is, so a restart does not
   * reopen the replay window.
   */
  claimSignature(sig: string, expiresAt: number): Promise<boolean>;
  /**
   * Optional (replay-guard.ts): marks a relay run as started and resolves its replay floor, the
   * instant below which signature timestamps must be refused because a run that did not close
   * cleanly may have lost claims not yet committed. A store with `openRun` must also unmark the
   * run in `close()` after its last commit, and offer `signatureClaimed`; the relay then claims
   * signatures with ts ≤ now in memory and records them without waiting for the commit.
   */
  openRun?(now: number): Promise<number>;
  /** Optional, with `openRun`: whether `sig` is recorded as used (committed claims only). */
  signatureClaimed?(sig: string): Promise<boolean>;
  /**
   * Optional: calls `listener` once if the store finds its database damaged after it opened (the
   * SQLite store's background `PRAGMA quick_check`); the store then refuses every operation.
   */
  onRefused?(listener: (e: Error) => void): void;
  /** Optional, with `onRefused`: whether that background check is still running. */
  integrityCheckRunning?(): boolean;
  close(): Promise<void>;
}
