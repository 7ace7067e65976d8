/**
 * The peer's storage contract. The engine (src/sync) depends only on this interface; each
 * adapter sits beside it (IndexedDB for browsers, SQLite for the headless peer) and one contract
 * suite (test/contracts/peer-store.ts) runs against every adapter.
 *
 * Every method that writes more than one thing does so in ONE transaction: a crash leaves either
 * all of it or none of it.
 */
import type { SignedRecord } from '../core';

/** This device's identity. The secret key never leaves the store except in an explicit, encrypted export. */
export interface Identity {
  readonly did: string;
  readonly name: string;
  /** 32-byte Ed25519 seed. */
  readonly secretKey: Uint8Array;
  readonly createdAt: number;
}

/** How a record reached this store. */
export type ArrivalPath = 'local' | 'direct' | 'relay';

export interface StoredRecord {
  readonly id: string;
  readonly signed: SignedRecord;
  /** Denormalised from signed.record for the indexes. */
  readonly thread: string;
  readonly actor: string;
  readonly clock: number;
  readonly receivedAt: number;
  readonly path: ArrivalPath;
  /** The relay URL it came through, when path is 'relay'. */
  readonly via?: string;
}

export interface IngestResult {
  /** IDs newly stored, in input order. */
  readonly inserted: readonly string[];
  /** IDs that were already present (idempotent re-delivery): nothing was written for them. */
  readonly duplicates: readonly string[];
  /**
   * IDs refused as `clock_reused` (PROTOCOL.md §3), in input order: a record with another ID
   * already holds their (actor, thread, clock), stored before or earlier in the same batch.
   * Nothing was written for them but their counters.
   */
  readonly refused: readonly string[];
}

/** Delivery state of one outbox entry (PROTOCOL.md §10; issue: direct | relay | pending | rejected). */
export type DeliveryPath = 'pending' | 'direct' | 'relay' | 'rejected';

export interface OutboxEntry {
  /** The envelope ID (deterministic from sender, receiver and record IDs). */
  readonly id: string;
  readonly toDid: string;
  readonly recordIds: readonly string[];
  /** The signed records, for direct delivery. */
  readonly records: readonly SignedRecord[];
  /** The envelope to deposit at a relay (sealed by default), as JSON text. */
  readonly envelope: string;
  readonly createdAt: number;
  /** Retention end: createdAt + 7 days. */
  readonly expiresAt: number;
  readonly path: DeliveryPath;
  readonly attempts: number;
  readonly nextAttemptAt: number;
  readonly lastError?: string;
  /** Where it went (relay URL or peer URL) once delivered; the reason once rejected. */
  readonly deliveredTo?: string;
  readonly deliveredAt?: number;
  readonly rejectedReason?: string;
}

/** What the receive loop remembers per relay. */
export interface ReceiveState {
  readonly relayUrl: string;
  readonly lastReceiveAt?: number;
  readonly lastSuccessAt?: number;
  /** `remaining` from the relay's last answer. */
  readonly backlog: number;
  readonly lastError?: string;
  readonly lastLatencyMs?: number;
}

/** Counters doctor reads. Bumped in the same transaction as the ingest they describe. */
export const COUNTER_NAMES = [
  'envelopes_received',
  'envelopes_redelivered',
  'envelopes_rejected',
  'records_ingested',
  'records_duplicate',
  'records_dropped_unpaired',
  'records_dropped_ungranted',
  'records_refused_clock_reused',
  'records_rejected_invalid',
  'direct_received',
] as const;
export type CounterName = (typeof COUNTER_NAMES)[number];
export type Counters = Readonly<Record<CounterName, number>>;
/**
 * Per-sender drop counts (§8: dropped records are counted by reason, with their senders), kept
 * beside the named counters as `drop:<reason>:<sender DID>`.
 */
export type DropCounterKey = `drop:${string}`;
export type CounterDelta = Partial<Record<CounterName | DropCounterKey, number>>;
export const dropCounterKey = (reason: string, sender: string): DropCounterKey => `drop:${reason}:${sender}`;

/**
 * Everything one ingest adds to the counters (see PeerStore.ingest): the caller's `counters`, and
 * what the store did: inserted, duplicate, and refused records, these also per sender.
 */
export function ingestCounters(
  counters: CounterDelta,
  inserted: number,
  duplicates: number,
  refusedSenders: readonly (string | undefined)[],
): CounterDelta {
  const delta: CounterDelta = {
    ...counters,
    records_ingested: (counters.records_ingested ?? 0) + inserted,
    records_duplicate: (counters.records_duplicate ?? 0) + duplicates,
    records_refused_clock_reused: (counters.records_refused_clock_reused ?? 0) + refusedSenders.length,
  };
  for (const sender of refusedSenders) {
    if (sender === undefined) continue;
    const key = dropCounterKey('clock_reused', sender);
    delta[key] = (delta[key] ?? 0) + 1;
  }
  return delta;
}

/** A stored `drop:<reason>:<sender>` counter as a DropCount (reasons are snake_case, senders DIDs). */
export function parseDropCount(name: string, count: number): DropCount | undefined {
  const m = /^drop:([a-z_]+):(.+)$/.exec(name);
  return m ? { reason: m[1]!, sender: m[2]!, count } : undefined;
}

export interface DropCount {
  readonly reason: string;
  readonly sender: string;
  readonly count: number;
}

/** A pairing invite this peer issued (PROTOCOL.md §9); used at most once. */
export interface InviteRecord {
  readonly nonce: string;
  readonly exp: number;
  readonly threads: readonly string[];
  readonly createdAt: number;
  /** The DID that redeemed it, once redeemed. */
  readonly usedBy?: string;
}

export interface PeerStore {
  getIdentity(): Promise<Identity | undefined>;
  /** Fails if an identity already exists: an identity is created once per device. */
  createIdentity(identity: Identity): Promise<void>;

  /**
   * Stores new records and bumps counters in one transaction; existing IDs are left untouched.
   * A record whose (actor, thread, clock) another ID holds is refused (§3 `clock_reused`: the first
   * stays, within a batch the earlier one), decided inside that same transaction, so concurrent
   * writers sharing the storage (page and service worker, two `spl` processes) never both store
   * one slot.
   * Besides `counters`, it counts what it did: `records_ingested` += inserted, `records_duplicate`
   * += duplicates, `records_refused_clock_reused` += refused, and per refused record whose
   * `senders[i]` is given, `drop:clock_reused:<sender>` += 1 (§8: drops are counted per sender).
   * `outbox` entries (e.g. a new record queued for its peers) are put in the same transaction, so a
   * crash never leaves a record stored but not queued.
   */
  ingest(
    records: readonly StoredRecord[],
    counters?: CounterDelta,
    outbox?: readonly OutboxEntry[],
    senders?: readonly (string | undefined)[],
  ): Promise<IngestResult>;
  /**
   * Stores one of our own new records and its outbox entries in one transaction, but only if its
   * clock is above every stored clock of its actor on its thread (PROTOCOL.md §3: strictly
   * increasing per (actor, thread)). False, with nothing written, when another writer sharing
   * this store (the service worker, a second `spl` process) took that clock first: sign again.
   * Counts it in `records_ingested`, as `ingest` would.
   */
  appendOwn(record: StoredRecord, outbox?: readonly OutboxEntry[]): Promise<boolean>;
  getRecord(id: string): Promise<StoredRecord | undefined>;
  hasRecords(ids: readonly string[]): Promise<ReadonlySet<string>>;
  /** Records of a thread, ordered by (clock, actor, id). */
  recordsByThread(thread: string): Promise<StoredRecord[]>;
  /**
   * Read together, in one transaction: how many records `thread` holds, and those that arrived at
   * or after `receivedAt` (ordered by arrival, then ID). Records are never deleted, so a reader
   * that folded the earlier ones catches up from here, and knows from `total` if it missed one.
   */
  recordsArrivedSince(thread: string, receivedAt: number): Promise<{ total: number; records: StoredRecord[] }>;
  /** Highest clock of `actor` on `thread`, or -1 when it has none. */
  maxClock(actor: string, thread: string): Promise<number>;
  /** Every thread with its record count and last arrival time. */
  threads(): Promise<{ thread: string; count: number; lastReceivedAt: number }[]>;
  countRecords(): Promise<number>;

  /** Inserts or replaces outbox entries (by id) in one transaction. */
  putOutbox(entries: readonly OutboxEntry[]): Promise<void>;
  getOutbox(id: string): Promise<OutboxEntry | undefined>;
  listOutbox(): Promise<OutboxEntry[]>;
  /** Pending entries whose nextAttemptAt ≤ now, oldest first. */
  dueOutbox(now: number): Promise<OutboxEntry[]>;
  /** Deletes entries past their retention; returns how many. */
  pruneOutbox(now: number): Promise<number>;

  getReceiveState(relayUrl: string): Promise<ReceiveState | undefined>;
  putReceiveState(state: ReceiveState): Promise<void>;
  listReceiveStates(): Promise<ReceiveState[]>;

  getCounters(): Promise<Counters>;
  /** The per-sender drop counts, largest first. */
  dropCounts(): Promise<DropCount[]>;
  bumpCounters(delta: CounterDelta): Promise<void>;

  putInvite(invite: InviteRecord): Promise<void>;
  getInvite(nonce: string): Promise<InviteRecord | undefined>;
  /** Marks the invite used by `did` if it exists, is unexpired and unused; atomic. True if this call redeemed it. */
  redeemInvite(nonce: string, did: string, now: number): Promise<boolean>;

  close(): Promise<void>;
}
