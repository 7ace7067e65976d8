/**
 * The peer engine's public surface, shared by the browser app (src/ui), the service worker
 * (src/sw) and the headless peer (src/cli). Platform-free: fetch, clock and store are injected.
 */
import type { EnvelopeErrorCode, OpenedEnvelope, Recipient, Result, SignedRecord } from '../core';
import type { Counters, Identity, OutboxEntry, PeerStore, ReceiveState, StoredRecord } from '../store/types';

export interface PeerEngineDeps {
  readonly store: PeerStore;
  readonly fetch: typeof fetch;
  readonly now?: () => number;
  /** Uniform in [0, 1); for retry jitter. */
  readonly random?: () => number;
  /**
   * Runs `fn` exclusively per `name` across every context sharing the store (Web Locks in
   * browsers: page and service worker). Defaults to an in-process mutex.
   */
  readonly withLock?: <T>(name: string, fn: () => Promise<T>) => Promise<T>;
  /** The app URL invite links open (`<appUrl>#pair=…`). */
  readonly appUrl?: string;
  /** This peer's own direct-delivery URL, advertised in invites, if it serves /v1/sync/records. */
  readonly peerUrl?: string;
  /** Called after records from others were committed (notifications, UI refresh). */
  readonly onIngest?: (records: readonly StoredRecord[]) => void;
  /**
   * Awaited after a receive batch is committed and before it is acked. Fault-injection point for
   * crash tests (a test holds it open and kills the page); production leaves it unset.
   */
  readonly beforeAck?: (envelopeIds: readonly string[]) => Promise<void>;
  /**
   * Decrypts and verifies envelopes (core `openEnvelope` on each). Pages inject one that runs on a
   * Web Worker so verification overlaps the IndexedDB writes and leaves the UI thread free;
   * default: inline. Results in input order; must never reject for bad content.
   */
  readonly openEnvelopes?: EnvelopeOpener;
}

export type EnvelopeOpener = (envelopes: readonly unknown[], me: Recipient) => Promise<Result<OpenedEnvelope, EnvelopeErrorCode>[]>;

/** `"all"` (the catch-all) or a peer's DID (PROTOCOL.md §8 `for_pair`). */
export type PairScope = string;

/** A relay config entry (PROTOCOL.md §8, topic "relay"): the latest per `forPair` wins. */
export interface RelayEntry {
  readonly forPair: PairScope;
  readonly url: string;
  readonly enabled: boolean;
  readonly updatedAt: number;
}

/** A pair config entry (PROTOCOL.md §8, topic "pair"). */
export interface Pair {
  readonly peerDid: string;
  readonly name: string;
  readonly peerUrl?: string;
  /** The peer's deposit token for its mailbox (§5.1), sent with every deposit to it. */
  readonly depositToken?: string;
  /** The threads granted to this peer (§8): it receives them, and its envelopes are accepted for them. */
  readonly threads: readonly string[];
  readonly enabled: boolean;
  /** The acceptor's side of §9 until the inviter's pair.confirm arrives. */
  readonly waiting?: boolean;
  /** Why a disabled pair ended: `ended` (here), `ended_by_peer`, or `refused: <reason>` (§9). */
  readonly endReason?: string;
}

/** A pairing reply this peer refused (§9: a used or expired invite), for doctor. */
export interface PairRefusal {
  readonly peerDid: string;
  readonly name: string;
  readonly nonce: string;
  readonly reason: string;
  /** Where the refusal is sent: the first relay the reply named. */
  readonly relay?: string;
}

/** Where one own record stands at one peer (§11). */
export interface RecordDelivery {
  readonly peerDid: string;
  readonly name: string;
  readonly state: 'queued' | 'relay' | 'delivered' | 'rejected';
  /** When it reached the relay or the peer. */
  readonly at?: number;
  readonly nextAttemptAt?: number;
  readonly error?: string;
}

/** A thread a paired peer offered (§8 `thread.share`) that waits for the owner's answer. */
export interface PendingShare {
  readonly thread: string;
  readonly title?: string;
  readonly fromDid: string;
  readonly fromName: string;
}

/**
 * One size limit for a note, in the app, the CLI and the engine: `spl emit --text` receives the
 * note as one command-line argument, and Linux refuses a single argument of 128 KiB or more
 * (MAX_ARG_STRLEN = 131,072 bytes with the NUL; measured: 131,071 bytes pass, 131,072 fail).
 */
export const MAX_NOTE_BYTES = 131_071;

export interface EmitInput {
  readonly thread: string;
  /** A note: becomes body `{kind: "note", text}` unless `body` is given. */
  readonly text?: string;
  readonly body?: Record<string, unknown>;
  readonly act?: SignedRecord['record']['act'];
}

export interface RelayHealth {
  readonly url: string;
  readonly ok: boolean;
  readonly status?: number;
  readonly latencyMs?: number;
  readonly error?: string;
}

export interface FlushReport {
  readonly attempted: number;
  readonly direct: number;
  readonly relay: number;
  readonly pending: number;
  readonly rejected: number;
}

/** A backlog draining: after each page, what came so far and what the relay still holds. */
export interface ReceiveProgress {
  readonly relay: string;
  readonly envelopes: number;
  readonly ingested: number;
  readonly remaining: number;
}

export interface ReceiveOptions {
  readonly waitSeconds?: number;
  readonly limit?: number;
  readonly relays?: readonly string[];
  /** Told after each page of a drain (a progress bar, a progress line). */
  readonly onProgress?: (p: ReceiveProgress) => void;
  /**
   * Ends a waiting long-poll at once (a relay removed, shutting down). What was already received
   * is still ingested and acked; an aborted receive records no error (it is not the relay's fault).
   */
  readonly signal?: AbortSignal;
}

export interface ReceiveReport {
  /** Per relay URL. */
  readonly relays: readonly {
    readonly url: string;
    readonly envelopes: number;
    readonly ingested: number;
    readonly duplicates: number;
    readonly dropped: number;
    readonly acked: number;
    readonly remaining: number;
    readonly error?: string;
  }[];
}

/** §7 answer to a direct delivery: `text` is sent as it is (a receipt in `headers` signs it). */
export interface DirectResponse {
  readonly status: number;
  readonly body: unknown;
  readonly text: string;
  readonly headers: Readonly<Record<string, string>>;
}

export interface PeerSyncStatus {
  readonly did: string;
  readonly name: string;
  /** `paired`, `waiting` (for the inviter's confirmation) or why it ended (§9). */
  readonly state: string;
  /** Outbox entries to this peer, counted by delivery path, with the newest pending error. */
  readonly outbox: Readonly<Record<OutboxEntry['path'], number>>;
  /** Records (not control messages) sent to this peer, by how far each got (§11 receipts). */
  readonly records: Readonly<Record<'queued' | 'relay' | 'delivered' | 'rejected', number>>;
  readonly lastError?: string;
  readonly nextAttemptAt?: number;
  readonly lastPath?: OutboxEntry['path'];
  readonly relay?: string;
  readonly peerUrl?: string;
}

export interface SyncStatus {
  readonly peers: readonly PeerSyncStatus[];
  readonly relays: readonly (ReceiveState & { readonly forPairs: readonly string[] })[];
  readonly counters: Counters;
}

export type CheckStatus = 'pass' | 'warn' | 'fail';

export interface DoctorCheck {
  readonly id: string;
  readonly status: CheckStatus;
  readonly message: string;
}

export interface DoctorReport {
  /** The worst of the checks. */
  readonly status: CheckStatus;
  readonly checks: readonly DoctorCheck[];
}

/** Facts only the platform knows, handed to doctor (browser: periodic sync permission, quota). */
/** A browser `PushSubscription.toJSON()` (PROTOCOL.md §5.2). */
export interface PushSubscriptionJson {
  readonly endpoint: string;
  readonly keys: { readonly p256dh: string; readonly auth: string };
}

/** Whether push wake is set up at one relay (§5.2), as the platform last saw it. */
export interface RelayPushState {
  readonly relayUrl: string;
  /** registered; off (the relay runs without push); other_key (a browser holds one push key, another relay's); failed. */
  readonly state: 'registered' | 'off' | 'other_key' | 'failed';
  readonly detail?: string;
}

export interface PlatformFacts {
  readonly periodicSync?: 'granted' | 'denied' | 'prompt' | 'unsupported';
  readonly storage?: { readonly usage: number; readonly quota: number };
  /** When the background receive task last ran (service worker / daemon loop). */
  readonly receiveTaskLastRunAt?: number;
  /** Push wake per relay (§5.2); undefined where the platform has no push (the headless peer) or it is not turned on. */
  readonly push?: { readonly supported: boolean; readonly wanted: boolean; readonly relays: readonly RelayPushState[] };
}

export interface PeerApi {
  identity(): Identity | undefined;
  createIdentity(name: string): Promise<Identity>;
  /** The identity as a passphrase-encrypted file (the only form in which the key leaves the device). */
  exportIdentity(passphrase: string): Promise<string>;
  /** Restores an exported identity on a device that has none yet. */
  importIdentity(file: string, passphrase: string): Promise<Identity>;

  relays(): Promise<RelayEntry[]>;
  /** The relays this device receives from. */
  receiveRelays(): Promise<string[]>;
  /** Push wake (§5.2): the relay's VAPID key, null when push is off there. */
  pushVapidKey(relayUrl: string): Promise<{ key: string | null } | { error: string }>;
  registerPush(relayUrl: string, subscription: PushSubscriptionJson): Promise<{ ok: true } | { ok: false; error: string }>;
  unregisterPush(relayUrl: string, endpoint: string): Promise<{ ok: true } | { ok: false; error: string }>;
  setRelay(url: string, forPair?: PairScope): Promise<void>;
  clearRelay(forPair: PairScope): Promise<void>;
  /** The relay used for `peerDid`: its own entry, else the catch-all. */
  relayFor(peerDid: string): Promise<string | undefined>;
  /** Every enabled relay URL this peer polls for its own mailbox. */
  receiveRelays(): Promise<string[]>;
  relayHealth(url: string): Promise<RelayHealth>;

  pairs(): Promise<Pair[]>;
  setPair(pair: Pair): Promise<void>;
  /** Ends a pair (§9): disabled here, and a `pair.end` sent to the peer; nothing more goes either way. */
  endPair(peerDid: string): Promise<void>;
  /** Grants `thread` to a pair (§8): it gets the thread's history and a `thread.share` offer. */
  shareThread(thread: string, peerDid: string): Promise<void>;
  /** Takes the grant back: the peer's records on it are dropped as `ungranted` from now on. */
  unshareThread(thread: string, peerDid: string): Promise<void>;
  /** Shares offered by paired peers that wait for the owner (threads not new here). */
  pendingShares(): Promise<PendingShare[]>;
  /** Grants back the thread to every peer that offered it. */
  acceptShare(thread: string): Promise<void>;
  /** Pairing replies refused here (a used or expired invite). */
  pairRefusals(): Promise<PairRefusal[]>;

  emit(input: EmitInput): Promise<StoredRecord>;
  records(thread: string): Promise<StoredRecord[]>;
  /** Per own record on `thread`: queued, at the relay, delivered or refused, per peer granted it (§11). */
  deliveryStates(thread: string): Promise<Map<string, RecordDelivery[]>>;
  threads(): Promise<{ thread: string; count: number; lastReceivedAt: number }[]>;

  /** A signed invite link (§9) valid for `ttlMs` (default 7 days). */
  createInvite(opts: { threads: readonly string[]; ttlMs?: number }): Promise<{ link: string; payload: string }>;
  /** Pairs with the inviter and sends the pair.accept reply (direct, else the inviter's relay; queued if neither works). */
  acceptInvite(linkOrPayload: string): Promise<Pair>;

  /** Delivers due outbox entries; `all` retries every pending entry now (the network came back). */
  flushOutbox(opts?: { all?: boolean }): Promise<FlushReport>;
  /** When the earliest pending outbox entry is due (§10), undefined when none is: the scheduler's retry timer. */
  nextDueAt(): Promise<number | undefined>;
  /** Receives from every receive relay, or only from `relays` (the headless daemon runs one loop per relay). */
  receive(opts?: ReceiveOptions): Promise<ReceiveReport>;
  handleDirectDelivery(body: unknown): Promise<DirectResponse>;

  syncStatus(): Promise<SyncStatus>;
  doctor(facts?: PlatformFacts): Promise<DoctorReport>;
}
