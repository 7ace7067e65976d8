/**
 * The peer engine: records, outbox, delivery (direct first, relay as the backup path), receive,
 * pairing and doctor. Platform-free: store, fetch, clock and locks are injected (PeerEngineDeps),
 * so the same engine runs in a page, a service worker and the headless peer.
 */
import {
  buildPlainEnvelope,
  createInvite,
  createSigner,
  didFromPublicKey,
  exportIdentity,
  importIdentity,
  generateSecretKey,
  inviteLink,
  isDepositToken,
  isHttpUrl,
  isObject,
  openEnvelope,
  parseInvite,
  publicKeyFromDid,
  randomBytes,
  RECEIPT_HEADER,
  sealEnvelope,
  serializeEnvelope,
  signMailboxRequest,
  signReceipt,
  signRecord,
  THREAD_RE,
  toB64u,
  verifyReceipt,
  verifySignedRecord,
  type Invite,
  type Recipient,
  type JsonValue,
  type SignedRecord,
  type Signer,
  type SyncRecord,
} from '../core';
import { dropCounterKey, type CounterDelta, type DropCount, type Identity, type OutboxEntry, type PeerStore, type ReceiveState, type StoredRecord } from '../store/types';
import {
  CONFIG_THREAD,
  foldConfig,
  isControl,
  isPairAccept,
  normalizeRelayUrl,
  pairBody,
  PAIRS_THREAD,
  refusalBody,
  relayBody,
  relayForPeer,
  threadTitle,
  type EffectiveConfig,
} from './config';
import { runDoctor } from './doctor';
import { isRetryable, requestJson } from './http';
import { RETENTION_MS, retryDelayMs } from './retry';
import { MAX_NOTE_BYTES } from './types';
import type {
  DirectResponse,
  EmitInput,
  FlushReport,
  Pair,
  PairRefusal,
  PeerApi,
  PendingShare,
  RecordDelivery,
  PeerEngineDeps,
  PeerSyncStatus,
  ReceiveOptions,
  ReceiveReport,
  RelayEntry,
  RelayHealth,
  SyncStatus,
  DoctorReport,
  PlatformFacts,
  PairScope,
  PushSubscriptionJson,
} from './types';

export const DIRECT_TIMEOUT_MS = 5_000; // §7
const RELAY_TIMEOUT_MS = 15_000;
const MAX_ENVELOPE_RECORDS = 50;
const MAX_ENVELOPE_RECORD_BYTES = 600_000;
const ACK_CHUNK = 1000; // §5
const DEFAULT_INVITE_TTL_MS = 7 * 24 * 3600 * 1000;
const MAX_DRAIN_ROUNDS = 200;
/** Emit retries when other writers of the same store keep taking the next clock (see appendOwn). */
const MAX_EMIT_ATTEMPTS = 20;
/** Record IDs per receipt record (64 hex each: ~66 KB at most, well inside an envelope). */
const RECEIPT_IDS = 1000;
/** §5.1: 16–32 random bytes; 16 is 128 bits, unguessable. */
const TOKEN_BYTES = 16;
/** Envelopes per open step of a receive batch (see ingestEnvelopes): small, so writing starts early. */
const OPEN_PIECE = 4;

type ReceiveRelayReport = ReceiveReport['relays'][number];

/** A verified record and the peer that vouches for it: its envelope's sender (§8 admission). */
interface Candidate {
  readonly from: string;
  readonly signed: SignedRecord;
}

/** Why a verified record was not stored (§3, §8); each is counted, per sender too. */
type DropReason = 'unpaired' | 'ungranted' | 'clock_reused';

interface Dropped {
  readonly id: string;
  readonly from: string;
  readonly reason: DropReason;
}

const DROP_COUNTER: Record<DropReason, 'records_dropped_unpaired' | 'records_dropped_ungranted' | 'records_refused_clock_reused'> = {
  unpaired: 'records_dropped_unpaired',
  ungranted: 'records_dropped_ungranted',
  clock_reused: 'records_refused_clock_reused',
};

const DROP_MESSAGE: Record<DropReason, string> = {
  unpaired: 'the sender is not paired with this peer',
  ungranted: 'the thread is not shared with the sender',
  clock_reused: 'another record already holds this (actor, thread, clock)',
};

/** Envelopes of a receive batch, opened: what to ack, the valid records, and counts of the rest. */
interface OpenedChunk {
  readonly ackIds: string[];
  readonly candidates: Candidate[];
  readonly delta: { envelopes_received: number; envelopes_rejected: number; records_rejected_invalid: number };
  /** Per valid envelope, the IDs of its valid records (to spot redeliveries). */
  readonly envelopeRecords: string[][];
}

export async function openPeerEngine(deps: PeerEngineDeps): Promise<PeerEngine> {
  const engine = new PeerEngine(deps);
  await engine.load();
  return engine;
}

/** A per-process mutex by name, for when no cross-context lock is injected. */
function inProcessLocks(): <T>(name: string, fn: () => Promise<T>) => Promise<T> {
  const tails = new Map<string, Promise<unknown>>();
  return async <T>(name: string, fn: () => Promise<T>): Promise<T> => {
    const prev = tails.get(name) ?? Promise.resolve();
    const run = prev.then(fn, fn);
    const tail = run.catch(() => undefined);
    tails.set(name, tail);
    try {
      return await run;
    } finally {
      if (tails.get(name) === tail) tails.delete(name);
    }
  };
}

export class PeerEngine implements PeerApi {
  private readonly store: PeerStore;
  private readonly fetchFn: typeof fetch;
  private readonly now: () => number;
  private readonly random: () => number;
  private readonly withLock: <T>(name: string, fn: () => Promise<T>) => Promise<T>;
  private me: Identity | undefined;
  private signer: Signer | undefined;
  /** `<relay> <token>` pairs registered at a relay by this engine (§5.1). */
  private readonly tokensRegistered = new Set<string>();

  constructor(private readonly deps: PeerEngineDeps) {
    this.store = deps.store;
    this.fetchFn = deps.fetch;
    this.now = deps.now ?? (() => Date.now());
    this.random = deps.random ?? Math.random;
    this.withLock = deps.withLock ?? inProcessLocks();
  }

  async load(): Promise<void> {
    this.me = await this.store.getIdentity();
    this.signer = this.me ? createSigner(this.me.secretKey) : undefined;
  }

  identity(): Identity | undefined {
    return this.me;
  }

  async createIdentity(name: string): Promise<Identity> {
    const trimmed = name.trim();
    if (!trimmed) throw new Error('a display name is required');
    if (trimmed.length > 200) throw new Error('a display name has at most 200 characters');
    await this.load(); // another context may have created it meanwhile
    if (this.me) throw new Error(`this device already has an identity (${this.me.did})`);
    const secretKey = generateSecretKey();
    const signer = createSigner(secretKey);
    const identity: Identity = { did: didFromPublicKey(signer.publicKey), name: trimmed, secretKey, createdAt: this.now() };
    await this.store.createIdentity(identity);
    this.me = identity;
    this.signer = signer;
    return identity;
  }

  /**
   * The passphrase-encrypted backup: the key, and the signed records of this device's
   * configuration (relays, pairs, §8) so a restored device receives from its peers at once.
   */
  async exportIdentity(passphrase: string): Promise<string> {
    const { me } = this.requireIdentity();
    const config = (await this.store.recordsByThread(CONFIG_THREAD)).filter((r) => r.actor === me.did).map((r) => r.signed);
    const file = await exportIdentity({ ...me, settings: { config: config as unknown as JsonValue[] } }, passphrase);
    if (!file.ok) throw new Error(file.error.message);
    return file.value;
  }

  /** Restores a backup on a device without an identity: the key, then its configuration records. */
  async importIdentity(file: string, passphrase: string): Promise<Identity> {
    await this.load();
    if (this.me) throw new Error(`this device already has an identity (${this.me.did})`);
    const restored = await importIdentity(file, passphrase);
    if (!restored.ok) throw new Error(restored.error.message);
    const config = await restoredConfig(restored.value.settings, restored.value.did);
    // Settings first, identity last: if either write fails the device still has no identity,
    // and importing again simply repeats both (the records are idempotent).
    const now = this.now();
    await this.store.ingest(config.map((s) => toStored(s, now, 'local')));
    const identity: Identity = { did: restored.value.did, name: restored.value.name, secretKey: restored.value.secretKey, createdAt: now };
    await this.store.createIdentity(identity);
    this.me = identity;
    this.signer = createSigner(identity.secretKey);
    // §11: the restored device holds no records yet; each pair sends back the threads it granted us.
    for (const pair of (await this.config()).pairs.values()) {
      if (!pair.enabled || pair.threads.length === 0) continue;
      await this.emitRecord({ thread: PAIRS_THREAD, act: 'LEARN', body: { topic: 'history.request', threads: [...pair.threads] } }, { federate: false, to: pair.peerDid });
    }
    return identity;
  }

  private requireIdentity(): { me: Identity; signer: Signer } {
    if (!this.me || !this.signer) throw new Error('no identity yet: create one first');
    return { me: this.me, signer: this.signer };
  }

  // ---- configuration (§8) ----

  private async config(): Promise<EffectiveConfig> {
    const { me } = this.requireIdentity();
    return foldConfig(await this.store.recordsByThread(CONFIG_THREAD), me.did);
  }

  private async writeConfig(body: Record<string, unknown>): Promise<void> {
    await this.emitRecord({ thread: CONFIG_THREAD, act: 'LEARN', body }, { federate: false });
  }

  async relays(): Promise<RelayEntry[]> {
    return [...(await this.config()).relays.values()].sort((a, b) =>
      a.forPair === 'all' ? -1 : b.forPair === 'all' ? 1 : a.forPair.localeCompare(b.forPair),
    );
  }

  async setRelay(url: string, forPair: PairScope = 'all'): Promise<void> {
    const u = normalizeRelayUrl(url);
    if (!isHttpUrl(u)) throw new Error(`"${url}" is not an http(s) URL`);
    if (forPair !== 'all' && !/^did:[a-z0-9]+:\S+$/.test(forPair)) throw new Error(`--for-pair must be "all" or a DID, not "${forPair}"`);
    await this.writeConfig(relayBody(u, forPair, true));
  }

  async clearRelay(forPair: PairScope): Promise<void> {
    const current = (await this.config()).relays.get(forPair);
    if (!current) throw new Error(`no relay is configured for ${forPair}`);
    await this.writeConfig(relayBody(current.url, forPair, false));
  }

  async relayFor(peerDid: string): Promise<string | undefined> {
    return relayForPeer(await this.config(), peerDid);
  }

  async receiveRelays(): Promise<string[]> {
    const cfg = await this.config();
    const urls = new Set<string>();
    const all = cfg.relays.get('all');
    if (all?.enabled) urls.add(all.url);
    for (const r of cfg.relays.values()) if (r.enabled) urls.add(r.url);
    return [...urls];
  }

  async relayHealth(url: string): Promise<RelayHealth> {
    const base = normalizeRelayUrl(url);
    const res = await requestJson(this.fetchFn, `${base}/health`, { method: 'GET' }, DIRECT_TIMEOUT_MS, this.now);
    const healthy = res.status === 200 && isObject(res.body) && res.body.status === 'ok';
    return {
      url: base,
      ok: healthy,
      ...(res.status ? { status: res.status } : {}),
      latencyMs: res.latencyMs,
      ...(healthy ? {} : { error: res.error ?? 'unexpected /health answer' }),
    };
  }

  async pairs(): Promise<Pair[]> {
    return [...(await this.config()).pairs.values()].sort((a, b) => a.name.localeCompare(b.name));
  }

  async setPair(pair: Pair): Promise<void> {
    if (!publicKeyFromDid(pair.peerDid).ok) throw new Error(`cannot pair with ${pair.peerDid}: not a did:key`);
    if (pair.peerUrl !== undefined && !isHttpUrl(pair.peerUrl)) throw new Error(`peer URL "${String(pair.peerUrl)}" is not an http(s) URL`);
    for (const t of pair.threads) {
      if (!THREAD_RE.test(t)) throw new Error(`"${t}" is not a thread ID`);
      if (t === CONFIG_THREAD || t === PAIRS_THREAD) throw new Error(`${t} is reserved and cannot be shared`);
    }
    const before = (await this.config()).pairs.get(pair.peerDid);
    await this.writeConfig(pairBody(pair));
    if (pair.enabled) {
      // §11 history on grant: a thread newly granted to this peer brings everything held on it.
      const added = pair.threads.filter((t) => !before?.enabled || !before.threads.includes(t));
      await this.sendHistory(pair.peerDid, added);
    }
  }

  /** This peer's deposit token (§5.1), made on first use: one per mailbox, the same at every relay. */
  private async depositToken(): Promise<string> {
    const existing = (await this.config()).depositToken;
    if (existing) return existing;
    const token = toB64u(randomBytes(TOKEN_BYTES));
    await this.writeConfig({ topic: 'deposit_token', token });
    return token;
  }

  /**
   * §5.1: a new token when a pair ends, so the ended peer's deposits count as unsolicited again.
   * The relays get it on the next receive; the remaining pairs in a `pair.token` record (the
   * protocol names no message for this; until theirs arrives they deposit as unsolicited mail).
   */
  private async rotateDepositToken(): Promise<void> {
    const token = toB64u(randomBytes(TOKEN_BYTES));
    await this.writeConfig({ topic: 'deposit_token', token });
    for (const p of (await this.config()).pairs.values()) {
      if (!p.enabled) continue;
      await this.emitRecord({ thread: PAIRS_THREAD, act: 'LEARN', body: { topic: 'pair.token', deposit_token: token } }, { federate: false, to: p.peerDid });
    }
  }

  /** Registers our token at a relay we receive from, once per token and relay in this engine's life. */
  private async registerDepositToken(relayUrl: string, mailbox: string, origin: string): Promise<void> {
    const token = await this.depositToken();
    const key = `${relayUrl} ${token}`;
    if (this.tokensRegistered.has(key)) return;
    const body = JSON.stringify({ tokens: [token] });
    const path = `${mailbox}/tokens`;
    const res = await requestJson(this.fetchFn, `${origin}${path}`, await this.signedRelayRequest(relayUrl, 'PUT', path, body), RELAY_TIMEOUT_MS, this.now);
    // 404/405: a relay without §5.1 takes every deposit against the cap; nothing to register there.
    if (res.status === 200 || res.status === 404 || res.status === 405) this.tokensRegistered.add(key);
  }

  private async requirePair(peerDid: string): Promise<Pair> {
    const pair = (await this.config()).pairs.get(peerDid);
    if (!pair) throw new Error(`not paired with ${peerDid}`);
    return pair;
  }

  async endPair(peerDid: string): Promise<void> {
    const pair = await this.requirePair(peerDid);
    if (!pair.enabled) return;
    await this.writeConfig(pairBody({ ...pair, enabled: false, endReason: 'ended' }));
    // Whatever still waits for this peer stays unsent (deliver refuses it); only the notice goes.
    await this.emitRecord({ thread: PAIRS_THREAD, act: 'LEARN', body: { topic: 'pair.end' } }, { federate: false, to: peerDid });
    await this.rotateDepositToken();
  }

  async shareThread(thread: string, peerDid: string): Promise<void> {
    if (!THREAD_RE.test(thread)) throw new Error(`"${thread}" is not a thread ID`);
    if (thread === CONFIG_THREAD || thread === PAIRS_THREAD) throw new Error(`${thread} is reserved and cannot be shared`);
    const pair = await this.requirePair(peerDid);
    if (!pair.enabled) throw new Error(`the pair with ${pair.name} has ended`);
    if (pair.waiting) throw new Error(`${pair.name} has not confirmed the pairing yet: only the invite's threads are shared until then`);
    if (pair.threads.includes(thread)) return;
    const title = threadTitle(await this.store.recordsByThread(thread));
    const offer = await this.emitRecord(
      { thread: PAIRS_THREAD, act: 'LEARN', body: { topic: 'thread.share', thread, ...(title !== undefined ? { title } : {}) } },
      { federate: false },
    );
    await this.writeConfig(pairBody({ ...pair, threads: [...pair.threads, thread] }));
    // The offer travels first in the history's first envelope: the peer grants the thread back
    // (when it is new there) before it admits the records that follow it.
    await this.sendHistory(peerDid, [thread], [offer.signed]);
  }

  async unshareThread(thread: string, peerDid: string): Promise<void> {
    const pair = await this.requirePair(peerDid);
    if (!pair.threads.includes(thread)) return;
    await this.writeConfig(pairBody({ ...pair, threads: pair.threads.filter((t) => t !== thread) }));
  }

  async pendingShares(): Promise<PendingShare[]> {
    const cfg = await this.config();
    const out = new Map<string, PendingShare>();
    for (const r of await this.store.recordsByThread(PAIRS_THREAD)) {
      const rec = r.signed.record;
      if (!isControl(rec, 'thread.share') || typeof rec.body.thread !== 'string') continue;
      const pair = cfg.pairs.get(rec.actor);
      if (!pair?.enabled || pair.threads.includes(rec.body.thread)) continue;
      const title = typeof rec.body.title === 'string' ? rec.body.title : undefined;
      out.set(`${rec.body.thread} ${rec.actor}`, { thread: rec.body.thread, fromDid: rec.actor, fromName: pair.name, ...(title !== undefined ? { title } : {}) });
    }
    return [...out.values()];
  }

  async acceptShare(thread: string): Promise<void> {
    const offers = (await this.pendingShares()).filter((p) => p.thread === thread);
    if (offers.length === 0) throw new Error(`no pending share of ${thread}`);
    const cfg = await this.config();
    for (const o of offers) {
      const pair = cfg.pairs.get(o.fromDid);
      if (!pair) continue;
      await this.setPair({ ...pair, threads: [...pair.threads, thread] });
      // What the peer sent before the grant was dropped as ungranted: ask for it again (§11).
      await this.emitRecord({ thread: PAIRS_THREAD, act: 'LEARN', body: { topic: 'history.request', threads: [thread] } }, { federate: false, to: o.fromDid });
    }
  }

  async pairRefusals(): Promise<PairRefusal[]> {
    return [...(await this.config()).refusals.values()];
  }

  async dropCounts(): Promise<DropCount[]> {
    return this.store.dropCounts();
  }

  // ---- records ----

  async emit(input: EmitInput): Promise<StoredRecord> {
    if (input.thread === CONFIG_THREAD || input.thread === PAIRS_THREAD) throw new Error(`${input.thread} is reserved`);
    const body = input.body ?? { kind: 'note', text: input.text ?? '' };
    if (input.body === undefined && !input.text?.trim()) throw new Error('a note needs text');
    const size = typeof body.text === 'string' ? new TextEncoder().encode(body.text).length : 0;
    if (size > MAX_NOTE_BYTES) throw new Error(`the note is ${size} bytes; a note is at most ${MAX_NOTE_BYTES} bytes`);
    return this.emitRecord({ thread: input.thread, act: input.act ?? 'KNOW', body }, { federate: true });
  }

  private async emitRecord(
    input: { thread: string; act: SyncRecord['act']; body: Record<string, unknown> },
    opts: { federate: boolean; to?: string },
  ): Promise<StoredRecord> {
    const { me, signer } = this.requireIdentity();
    if (!THREAD_RE.test(input.thread)) throw new Error(`"${input.thread}" is not a thread ID (th_ + 1-128 of [A-Za-z0-9_])`);
    // The lock keeps this engine's own emits in line; appendOwn settles races with any other
    // writer of the same store (another process without our lock) by refusing a taken clock.
    return this.withLock(`spl-emit ${input.thread}`, async () => {
      for (let attempt = 1; ; attempt++) {
        const existing = await this.store.recordsByThread(input.thread);
        // Control records take the time as a floor: a device restored from a backup has lost its
        // clocks on th_federation_pairs, and a reused one would be refused as equivocation (§3).
        const next = (await this.store.maxClock(me.did, input.thread)) + 1;
        const clock = input.thread === PAIRS_THREAD ? Math.max(next, this.now()) : next;
        const record: SyncRecord = {
          parents: heads(existing),
          thread: input.thread,
          actor: me.did,
          act: input.act,
          body: input.body as SyncRecord['body'],
          clock,
          data_type: 'SCALAR',
          judged_by: null,
        };
        const signed = await signRecord(record, signer);
        const stored = toStored(signed, this.now(), 'local');
        const peers = opts.to
          ? [opts.to]
          : opts.federate
            ? [...(await this.config()).pairs.values()].filter((p) => p.enabled && p.threads.includes(input.thread)).map((p) => p.peerDid)
            : [];
        const queued = (await Promise.all(peers.map((did) => this.outboxEntries(did, [signed])))).flat();
        if (await this.store.appendOwn(stored, queued)) return stored; // the record and its outbox entries: one transaction
        if (attempt >= MAX_EMIT_ATTEMPTS) throw new Error(`could not write on ${input.thread}: other writers took clock ${clock} and the next ${MAX_EMIT_ATTEMPTS - 1}`);
      }
    });
  }

  async records(thread: string): Promise<StoredRecord[]> {
    return this.store.recordsByThread(thread);
  }

  /**
   * Per own record on `thread`, its state at each peer granted the thread (§11): queued (with the
   * next try), at the relay, delivered (a receipt, or a direct delivery's signed answer), or refused.
   */
  /** `<record id> <peer did>` for every record a peer's receipt names (§11). */
  private async receiptedIds(): Promise<Set<string>> {
    const out = new Set<string>();
    for (const r of await this.store.recordsByThread(PAIRS_THREAD)) {
      const b = r.signed.record.body;
      if (b.topic !== 'receipt' || !Array.isArray(b.ids)) continue;
      for (const id of b.ids) if (typeof id === 'string') out.add(`${id} ${r.actor}`);
    }
    return out;
  }

  async deliveryStates(thread: string): Promise<Map<string, RecordDelivery[]>> {
    const { me } = this.requireIdentity();
    const cfg = await this.config();
    const peers = [...cfg.pairs.values()].filter((p) => p.threads.includes(thread));
    const own = (await this.store.recordsByThread(thread)).filter((r) => r.actor === me.did);
    const out = new Map<string, RecordDelivery[]>();
    if (own.length === 0 || peers.length === 0) return out;
    const entries = new Map<string, OutboxEntry>();
    for (const e of await this.store.listOutbox()) for (const id of e.recordIds) entries.set(`${id} ${e.toDid}`, e);
    const receipted = await this.receiptedIds();
    for (const r of own) {
      const states: RecordDelivery[] = [];
      for (const p of peers) {
        const key = `${r.id} ${p.peerDid}`;
        const e = entries.get(key);
        const base = { peerDid: p.peerDid, name: p.name };
        if (receipted.has(key) || e?.path === 'direct') states.push({ ...base, state: 'delivered', ...(e?.deliveredAt ? { at: e.deliveredAt } : {}) });
        else if (e?.path === 'relay') states.push({ ...base, state: 'relay', ...(e.deliveredAt ? { at: e.deliveredAt } : {}) });
        else if (e?.path === 'pending') states.push({ ...base, state: 'queued', nextAttemptAt: e.nextAttemptAt, ...(e.lastError ? { error: e.lastError } : {}) });
        else if (e?.path === 'rejected') states.push({ ...base, state: 'rejected', ...(e.rejectedReason ? { error: e.rejectedReason } : {}) });
      }
      out.set(r.id, states);
    }
    return out;
  }

  async threads(): Promise<{ thread: string; count: number; lastReceivedAt: number }[]> {
    return (await this.store.threads()).filter((t) => t.thread !== CONFIG_THREAD);
  }

  // ---- outbox and delivery (§7, §10) ----

  /** Queues records for one peer (see outboxEntries). */
  private async enqueue(toDid: string, records: readonly SignedRecord[]): Promise<void> {
    const entries = await this.outboxEntries(toDid, records);
    if (entries.length) await this.store.putOutbox(entries);
  }

  /**
   * Outbox entries carrying records to one peer as sealed envelopes of at most 50 records and
   * ~600 KB of records: sealed (base64url, +⅓) that stays under a relay's 1 MiB body limit (§5).
   */
  private async outboxEntries(toDid: string, records: readonly SignedRecord[]): Promise<OutboxEntry[]> {
    const { me, signer } = this.requireIdentity();
    const now = this.now();
    const entries: OutboxEntry[] = [];
    for (const [i, chunk] of envelopeChunks(records).entries()) {
      const plain = await buildPlainEnvelope({ fromDid: me.did, toDid, records: chunk }, signer);
      if ((await this.store.getOutbox(plain.id))?.path === 'pending') continue;
      entries.push({
        id: plain.id,
        toDid,
        recordIds: chunk.map((r) => r.id),
        records: chunk,
        envelope: serializeEnvelope(sealEnvelope(plain)), // §4: sealed by default
        // The outbox goes out oldest first (by createdAt, then ID): a millisecond apiece keeps the
        // envelopes of one batch in their order, so a history's title and offer arrive first.
        createdAt: now + i,
        expiresAt: now + RETENTION_MS,
        path: 'pending',
        attempts: 0,
        nextAttemptAt: now,
      });
    }
    return entries;
  }

  /**
   * §11: a thread granted to a peer brings every record held on it, whoever wrote it, the title
   * records in the first envelope.
   */
  private async sendHistory(peerDid: string, threads: readonly string[], first: readonly SignedRecord[] = []): Promise<void> {
    for (const [i, t] of threads.entries()) {
      const held = await this.store.recordsByThread(t);
      const isTitle = (r: StoredRecord) => r.signed.record.body.kind === 'thread';
      const ordered = [...(i === 0 ? first : []), ...[...held.filter(isTitle), ...held.filter((r) => !isTitle(r))].map((r) => r.signed)];
      if (ordered.length) await this.enqueue(peerDid, ordered);
    }
  }

  async flushOutbox(opts: { all?: boolean } = {}): Promise<FlushReport> {
    this.requireIdentity();
    return this.withLock('spl-outbox', async () => {
      const now = this.now();
      await this.store.pruneOutbox(now);
      const due = await this.store.dueOutbox(opts.all ? Number.MAX_SAFE_INTEGER : now);
      const cfg = await this.config();
      const report = { attempted: due.length, direct: 0, relay: 0, pending: 0, rejected: 0 };
      for (const entry of due) {
        const next = await this.deliver(entry, cfg);
        await this.store.putOutbox([next]);
        report[next.path]++;
      }
      return report;
    });
  }

  private async deliver(entry: OutboxEntry, cfg: EffectiveConfig): Promise<OutboxEntry> {
    const pair = cfg.pairs.get(entry.toDid);
    const control = entry.records.every((r) => r.record.thread === PAIRS_THREAD);
    // §9: after a pair ends nothing more is sent to it, but the notice that it ended.
    if (pair && !pair.enabled && !control) return this.rejected(entry, `the pair with ${pair.name} has ended`);
    const errors: string[] = [];
    let retryAfterMs: number | undefined;
    // A pairing reply goes through the relay: a direct endpoint takes envelopes from paired peers only (§7).
    const pairingReply = entry.records.some((r) => isPairAccept(r.record));
    if (pair?.peerUrl && pair.enabled && !pairingReply) {
      const direct = await this.deliverDirect(entry, pair.peerUrl);
      if (direct === 'delivered') return this.delivered(entry, 'direct', pair.peerUrl);
      errors.push(`direct: ${direct}`);
    }
    const relay = relayForPeer(cfg, entry.toDid) ?? [...cfg.refusals.values()].find((r) => r.peerDid === entry.toDid)?.relay;
    if (relay) {
      const headers: Record<string, string> = { 'content-type': 'application/json' };
      if (pair?.depositToken) headers['x-syncropel-deposit-token'] = pair.depositToken; // §5.1
      const res = await requestJson(
        this.fetchFn,
        `${relay}/v1/mailbox/${encodeURIComponent(entry.toDid)}`,
        { method: 'POST', headers, body: entry.envelope },
        RELAY_TIMEOUT_MS,
        this.now,
      );
      if (res.status === 202) return this.delivered(entry, 'relay', relay);
      if (!isRetryable(res.status)) return this.rejected(entry, `relay ${relay} refused the envelope: ${res.error ?? res.status}`);
      errors.push(`relay: ${res.error ?? `HTTP ${res.status}`}`);
      retryAfterMs = res.retryAfterMs;
    } else {
      errors.push(`no route: no relay configured for ${entry.toDid}${pair?.peerUrl && !pairingReply ? '' : pairingReply ? ' (a pairing reply travels through a relay)' : ' and no direct URL'}`);
    }
    const attempts = entry.attempts + 1;
    return {
      ...entry,
      attempts,
      path: 'pending',
      lastError: errors.join('; '),
      nextAttemptAt: this.now() + retryDelayMs(attempts, this.random, retryAfterMs),
    };
  }

  /**
   * §7: the sealed envelope to the peer's direct endpoint. Delivered only when the answer carries a
   * receipt that verifies under the DID we addressed, for this envelope, over the exact body; any
   * other answer (another machine, our own daemon at a stale URL, an impostor) is a failure, and
   * the envelope goes to the relay. Returns 'delivered' or why not.
   */
  private async deliverDirect(entry: OutboxEntry, peerUrl: string): Promise<string> {
    const res = await requestJson(
      this.fetchFn,
      `${normalizeRelayUrl(peerUrl)}/v1/sync/records`,
      {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-syncropel-federation': '1' },
        body: `{"envelope":${entry.envelope}}`,
      },
      DIRECT_TIMEOUT_MS,
      this.now,
    );
    if (res.status !== 200) return res.error ?? `HTTP ${res.status}`;
    const receipt = res.headers?.get(RECEIPT_HEADER) ?? null;
    if (!receipt) return 'HTTP 200 without a receipt (not the peer we addressed)';
    if (!(await verifyReceipt(receipt, entry.id, res.text ?? '', entry.toDid))) return 'the receipt does not verify under the peer’s DID';
    return 'delivered';
  }

  private delivered(entry: OutboxEntry, path: 'direct' | 'relay', to: string): OutboxEntry {
    const { lastError: _e, ...rest } = entry;
    return { ...rest, attempts: entry.attempts + 1, path, deliveredTo: to, deliveredAt: this.now() };
  }

  private rejected(entry: OutboxEntry, reason: string): OutboxEntry {
    // §10: other 4xx mark it rejected: kept and shown, never silently dropped.
    return { ...entry, attempts: entry.attempts + 1, path: 'rejected', rejectedReason: reason, lastError: reason };
  }

  // ---- receive (§5, §6) ----

  async receive(opts: ReceiveOptions = {}): Promise<ReceiveReport> {
    this.requireIdentity();
    const urls = opts.relays ?? (await this.receiveRelays());
    const relays = await Promise.all(urls.map((url) => this.withLock(`spl-receive ${url}`, () => this.receiveFrom(url, opts))));
    return { relays };
  }

  // ---- push wake (§5.2) ----

  /** The relay's VAPID key (b64u), `null` when push is off there (404), or an error sentence. */
  async pushVapidKey(relayUrl: string): Promise<{ key: string | null } | { error: string }> {
    const base = new URL(relayUrl);
    const prefix = base.pathname.replace(/\/+$/, '');
    const res = await requestJson(this.fetchFn, `${base.origin}${prefix}/v1/push/vapid`, { method: 'GET' }, RELAY_TIMEOUT_MS, this.now);
    if (res.status === 404) return { key: null };
    if (res.status === 200 && isObject(res.body) && typeof res.body.public_key === 'string') return { key: res.body.public_key };
    return { error: res.error ?? `unexpected answer (HTTP ${res.status})` };
  }

  /** Registers a browser push subscription (its `toJSON()`) for this device's mailbox at `relayUrl` (owner-signed PUT, §5.2). */
  async registerPush(relayUrl: string, subscription: PushSubscriptionJson): Promise<{ ok: true } | { ok: false; error: string }> {
    const body = JSON.stringify({ endpoint: subscription.endpoint, keys: { p256dh: subscription.keys.p256dh, auth: subscription.keys.auth } });
    return this.pushRequest(relayUrl, 'PUT', body);
  }

  /** Removes a push subscription from `relayUrl` (owner-signed DELETE; idempotent). */
  async unregisterPush(relayUrl: string, endpoint: string): Promise<{ ok: true } | { ok: false; error: string }> {
    return this.pushRequest(relayUrl, 'DELETE', JSON.stringify({ endpoint }));
  }

  private async pushRequest(relayUrl: string, method: 'PUT' | 'DELETE', body: string): Promise<{ ok: true } | { ok: false; error: string }> {
    const { me } = this.requireIdentity();
    const base = new URL(relayUrl);
    const path = `${base.pathname.replace(/\/+$/, '')}/v1/mailbox/${encodeURIComponent(me.did)}/push`;
    const res = await requestJson(this.fetchFn, `${base.origin}${path}`, await this.signedRelayRequest(relayUrl, method, path, body), RELAY_TIMEOUT_MS, this.now);
    return res.status === 200 ? { ok: true } : { ok: false, error: res.error ?? `HTTP ${res.status}` };
  }

  private async signedRelayRequest(relay: string, method: 'GET' | 'POST' | 'PUT' | 'DELETE', path: string, body: string): Promise<RequestInit> {
    const { signer } = this.requireIdentity();
    const host = new URL(relay).host;
    const auth = await signMailboxRequest({ method, host, pathAndQuery: path, body }, signer, this.now());
    const headers: Record<string, string> = { authorization: auth };
    if (method !== 'GET') headers['content-type'] = 'application/json';
    return { method, headers, ...(method !== 'GET' ? { body } : {}) };
  }

  private async receiveFrom(relayUrl: string, opts: ReceiveOptions): Promise<ReceiveRelayReport> {
    const { me } = this.requireIdentity();
    const report = { url: relayUrl, envelopes: 0, ingested: 0, duplicates: 0, dropped: 0, acked: 0, remaining: 0 };
    const base = new URL(relayUrl);
    const prefix = base.pathname.replace(/\/+$/, '');
    const mailbox = `${prefix}/v1/mailbox/${encodeURIComponent(me.did)}`;
    const limit = Math.min(500, Math.max(1, opts.limit ?? 100));
    let wait = Math.min(30, Math.max(0, opts.waitSeconds ?? 0));
    const prior = await this.store.getReceiveState(relayUrl);
    await this.registerDepositToken(relayUrl, mailbox, base.origin);
    let error: string | undefined;
    let latency: number | undefined;
    const receipts = new Map<string, string[]>();
    let aborted = false;
    for (let round = 0; round < MAX_DRAIN_ROUNDS; round++) {
      if (opts.signal?.aborted) {
        aborted = true;
        break;
      }
      const path = `${mailbox}/receive?limit=${limit}&wait=${wait}`;
      const res = await requestJson(
        this.fetchFn,
        `${base.origin}${path}`,
        await this.signedRelayRequest(relayUrl, 'GET', path, ''),
        RELAY_TIMEOUT_MS + wait * 1000,
        this.now,
        opts.signal,
      );
      if (res.aborted) {
        aborted = true;
        break;
      }
      if (wait === 0 && res.status !== 0) latency = res.latencyMs; // a long-poll's duration is not latency
      if (res.status !== 200 || !isObject(res.body) || !Array.isArray(res.body.envelopes)) {
        error = res.error ?? `unexpected receive answer (HTTP ${res.status})`;
        break;
      }
      const envelopes: unknown[] = res.body.envelopes;
      const remaining = typeof res.body.remaining === 'number' ? res.body.remaining : 0;
      report.remaining = remaining;
      if (envelopes.length === 0) break;
      const batch = await this.ingestEnvelopes(envelopes, relayUrl);
      for (const [from, ids] of batch.stored) receipts.set(from, [...(receipts.get(from) ?? []), ...ids]);
      report.envelopes += envelopes.length;
      report.ingested += batch.ingested;
      report.duplicates += batch.duplicates;
      report.dropped += batch.dropped;
      await this.deps.beforeAck?.(batch.ackIds);
      const acked = await this.ack(relayUrl, mailbox, batch.ackIds);
      if (acked.error) {
        error = acked.error;
        break;
      }
      report.acked += acked.removed;
      opts.onProgress?.({ relay: relayUrl, envelopes: report.envelopes, ingested: report.ingested, remaining });
      await this.store.putReceiveState(receiveState(relayUrl, this.now(), remaining, undefined, latency, prior));
      if (remaining === 0) break;
      wait = 0; // draining a backlog: no long-poll between pages
    }
    // An abort is ours, not the relay's: the state keeps what the last real answer said.
    if (!aborted || report.envelopes > 0) await this.store.putReceiveState(receiveState(relayUrl, this.now(), report.remaining, error, latency, prior));
    await this.sendReceipts(receipts);
    return error ? { ...report, error } : report;
  }

  private async ack(relayUrl: string, mailbox: string, ids: readonly string[]): Promise<{ removed: number; error?: string }> {
    const origin = new URL(relayUrl).origin;
    let removed = 0;
    for (let i = 0; i < ids.length; i += ACK_CHUNK) {
      const body = JSON.stringify({ ids: ids.slice(i, i + ACK_CHUNK) });
      const path = `${mailbox}/ack`;
      const res = await requestJson(this.fetchFn, `${origin}${path}`, await this.signedRelayRequest(relayUrl, 'POST', path, body), RELAY_TIMEOUT_MS, this.now);
      if (res.status !== 200) return { removed, error: `ack failed: ${res.error ?? res.status}` };
      if (isObject(res.body) && typeof res.body.removed === 'number') removed += res.body.removed;
    }
    return { removed };
  }

  /**
   * Opens, verifies and ingests one receive batch, as a pipeline with group commit: envelopes are
   * opened in small pieces, and each time the store is free, every piece opened by then is written
   * in one transaction. The first commit starts as soon as the first piece is verified, later
   * commits grow to whatever verification got ahead by, and writing overlaps opening throughout.
   * Every envelope is acked afterwards, the bad ones too (they would only come back): they are
   * counted instead.
   */
  private async ingestEnvelopes(envelopes: readonly unknown[], via: string) {
    const pieces: (readonly unknown[])[] = [];
    for (let i = 0; i < envelopes.length; i += OPEN_PIECE) pieces.push(envelopes.slice(i, i + OPEN_PIECE));
    // An injected opener (a worker pool) takes every piece at once and finishes them in order;
    // inline, pieces are opened one after another so the first is ready early.
    let previous: Promise<unknown> = Promise.resolve();
    const opening = pieces.map((piece) => {
      const p = this.deps.openEnvelopes ? this.openChunk(piece) : previous.then(() => this.openChunk(piece));
      previous = p;
      return p;
    });
    const settled = opening.map(() => false);
    opening.forEach((p, i) => {
      const done = () => {
        settled[i] = true;
      };
      p.then(done, done); // a rejection itself surfaces where the writer awaits that piece
    });
    const total = { ackIds: [] as string[], ingested: 0, duplicates: 0, dropped: 0, stored: new Map<string, string[]>() };
    for (let i = 0; i < opening.length; ) {
      const group = [await opening[i++]!];
      while (i < opening.length && settled[i]) group.push(await opening[i++]!);
      const opened = mergeOpened(group);
      const r = await this.commitChunk(opened, via);
      total.ackIds.push(...opened.ackIds);
      total.ingested += r.ingested;
      total.duplicates += r.duplicates;
      total.dropped += r.dropped;
      for (const [from, ids] of r.stored) total.stored.set(from, [...(total.stored.get(from) ?? []), ...ids]);
    }
    return total;
  }

  /** The injected opener, falling back to inline verification if it fails (e.g. a worker died). */
  private openEnvelopes(envelopes: readonly unknown[], me: Recipient) {
    const inline = () => Promise.all(envelopes.map((e) => openEnvelope(e, me)));
    return this.deps.openEnvelopes ? this.deps.openEnvelopes(envelopes, me).catch(inline) : inline();
  }

  /** Decrypts and verifies envelopes; never rejects (openEnvelope returns failures as results). */
  private async openChunk(envelopes: readonly unknown[]): Promise<OpenedChunk> {
    const { me } = this.requireIdentity();
    const recipient = { did: me.did, secretKey: me.secretKey };
    const opened = await this.openEnvelopes(envelopes, recipient);
    const ackIds: string[] = [];
    const candidates: Candidate[] = [];
    const delta = { envelopes_received: envelopes.length, envelopes_rejected: 0, records_rejected_invalid: 0 };
    const envelopeRecords: string[][] = [];
    opened.forEach((o, i) => {
      const raw = envelopes[i];
      if (isObject(raw) && typeof raw.id === 'string') ackIds.push(raw.id);
      if (!o.ok) {
        delta.envelopes_rejected++;
        return;
      }
      const ids: string[] = [];
      for (const r of o.value.records) {
        if (r.ok) {
          candidates.push({ from: o.value.from_did, signed: r.value });
          ids.push(r.value.id);
        } else delta.records_rejected_invalid++;
      }
      envelopeRecords.push(ids);
    });
    return { ackIds, candidates, delta, envelopeRecords };
  }

  private async commitChunk(chunk: OpenedChunk, via: string) {
    const { candidates, delta, envelopeRecords } = chunk;
    const { accepted, dropped } = await this.admit(candidates);
    const result = await this.commit(accepted, dropped, 'relay', via, delta);
    // An envelope whose records were all here already came before: a crash before its ack, or an
    // ack that failed. Counted after the fact; losing this count in a crash loses nothing else.
    const dup = new Set(result.duplicates);
    const redelivered = envelopeRecords.filter((ids) => ids.length > 0 && ids.every((id) => dup.has(id))).length;
    if (redelivered) await this.store.bumpCounters({ envelopes_redelivered: redelivered });
    return {
      ingested: result.inserted.length,
      duplicates: result.duplicates.length,
      dropped: result.dropped.length + delta.records_rejected_invalid + delta.envelopes_rejected,
      stored: storedBySender(accepted, result),
    };
  }

  /**
   * Stores admitted records and the counters describing them in one transaction. A record that
   * takes a clock another record of its author already holds on its thread is refused as
   * `clock_reused` (§3): the first one stays, within a batch the earlier one.
   */
  private async commit(
    admitted: readonly Candidate[],
    dropped: readonly Dropped[],
    path: 'direct' | 'relay',
    via: string | undefined,
    delta: CounterDelta,
  ) {
    const now = this.now();
    const holders = await this.store.idsAtClock(admitted.map((c) => c.signed.record));
    const taken = new Map<string, string>();
    const kept: StoredRecord[] = [];
    const refused: Dropped[] = [...dropped];
    admitted.forEach((c, i) => {
      const r = c.signed.record;
      const slot = `${r.actor} ${r.thread} ${r.clock}`;
      const holder = holders[i] ?? taken.get(slot);
      if (holder !== undefined && holder !== c.signed.id) {
        refused.push({ id: c.signed.id, from: c.from, reason: 'clock_reused' });
        return;
      }
      taken.set(slot, c.signed.id);
      kept.push(toStored(c.signed, now, path, via));
    });
    const counters: CounterDelta = { ...delta };
    for (const d of refused) {
      counters[DROP_COUNTER[d.reason]] = (counters[DROP_COUNTER[d.reason]] ?? 0) + 1;
      const key = dropCounterKey(d.reason, d.from);
      counters[key] = (counters[key] ?? 0) + 1;
    }
    const result = await this.store.ingest(kept, counters);
    await this.afterIngest(kept, result.inserted, admitted);
    return { ...result, dropped: refused };
  }

  /**
   * §8 admission: a record on thread T is taken when the peer vouching for it (the envelope's
   * sender) is paired and granted T; its author may be anyone whose signature verified. Control
   * records on th_federation_pairs come from paired peers about themselves, and pairing replies to
   * our own invites from anyone. Configuration is never taken from outside.
   */
  private async admit(candidates: readonly Candidate[]): Promise<{ accepted: Candidate[]; dropped: Dropped[] }> {
    let cfg = await this.config();
    const accepted: Candidate[] = [];
    const dropped: Dropped[] = [];
    for (const c of candidates) {
      const r = c.signed.record;
      const pair = cfg.pairs.get(c.from);
      if (r.thread === PAIRS_THREAD) {
        if (isPairAccept(r) && r.actor === c.from) {
          const outcome = await this.completePairing(c.signed);
          if (outcome === 'paired') {
            cfg = await this.config();
            accepted.push(c);
            continue;
          }
        } else if (pair?.enabled && r.actor === c.from) {
          // A share of a thread new here is granted before the history that follows it in this batch.
          if (isControl(r, 'thread.share') && typeof r.body.thread === 'string' && (await this.offeredThread(pair, r.body.thread))) {
            cfg = await this.config();
          }
          accepted.push(c);
          continue;
        } else if (pair && !pair.enabled && r.actor === c.from && isControl(r, 'pair.end')) {
          continue; // already ended: nothing to do, nothing to count
        }
        dropped.push({ id: c.signed.id, from: c.from, reason: 'unpaired' });
      } else if (!pair?.enabled) {
        dropped.push({ id: c.signed.id, from: c.from, reason: 'unpaired' });
      } else if (!pair.threads.includes(r.thread)) {
        dropped.push({ id: c.signed.id, from: c.from, reason: 'ungranted' });
      } else {
        accepted.push(c);
      }
    }
    return { accepted, dropped };
  }

  /**
   * The inviter's side of §9: pair with whoever returns our unexpired nonce, once, and confirm; a
   * used or expired invite is refused (once per replier and nonce) and remembered for doctor.
   */
  private async completePairing(s: SignedRecord): Promise<'paired' | 'refused' | 'unknown'> {
    const r = s.record;
    const b = r.body;
    if (typeof b.nonce !== 'string') return 'unknown';
    const invite = await this.store.getInvite(b.nonce);
    if (!invite) return 'unknown';
    const relays = Array.isArray(b.relays) ? b.relays.filter(isHttpUrl).map(normalizeRelayUrl) : [];
    const name = typeof b.name === 'string' && b.name.trim() ? b.name.slice(0, 200) : r.actor.slice(0, 24);
    const now = this.now();
    const redeemed = invite.usedBy === r.actor || (await this.store.redeemInvite(b.nonce, r.actor, now));
    if (!redeemed) {
      const reason = invite.usedBy === undefined && invite.exp <= now ? 'invite_expired' : 'invite_used';
      const cfg = await this.config();
      if (!cfg.refusals.has(`${r.actor} ${b.nonce}`) && !cfg.pairs.get(r.actor)?.enabled) {
        const refusal: PairRefusal = { peerDid: r.actor, name, nonce: b.nonce, reason, ...(relays[0] ? { relay: relays[0] } : {}) };
        await this.writeConfig(refusalBody(refusal));
        await this.emitRecord({ thread: PAIRS_THREAD, act: 'LEARN', body: { topic: 'pair.refuse', nonce: b.nonce, reason } }, { federate: false, to: r.actor });
      }
      return 'refused';
    }
    const existing = (await this.config()).pairs.get(r.actor);
    const [firstRelay] = relays;
    if (firstRelay) await this.writeConfig(relayBody(firstRelay, r.actor, true));
    if (!existing?.enabled) {
      await this.setPair({
        peerDid: r.actor,
        name,
        ...(isHttpUrl(b.peer_url) ? { peerUrl: b.peer_url } : {}),
        ...(isDepositToken(b.deposit_token) ? { depositToken: b.deposit_token } : {}),
        threads: [...invite.threads],
        enabled: true,
      });
    }
    // A repeated reply from the same peer is confirmed again: its first confirmation may be lost.
    await this.emitRecord({ thread: PAIRS_THREAD, act: 'LEARN', body: { topic: 'pair.confirm', nonce: b.nonce } }, { federate: false, to: r.actor });
    return 'paired';
  }

  /**
   * §11 receipts: one `receipt` record per sender for what a receive stored from it (a direct
   * delivery's signed answer is its own receipt). Batched by the receive: one per drain, not per envelope.
   */
  private async sendReceipts(stored: ReadonlyMap<string, readonly string[]>): Promise<void> {
    const cfg = await this.config();
    for (const [from, ids] of stored) {
      if (!cfg.pairs.get(from)?.enabled || ids.length === 0) continue;
      const unique = [...new Set(ids)];
      for (let i = 0; i < unique.length; i += RECEIPT_IDS) {
        await this.emitRecord({ thread: PAIRS_THREAD, act: 'LEARN', body: { topic: 'receipt', ids: unique.slice(i, i + RECEIPT_IDS) } }, { federate: false, to: from });
      }
    }
  }

  /**
   * §11 groups: a record first stored here on thread T goes on to every other peer granted T, not
   * back to the peer whose envelope brought it nor to its author. Content-addressed IDs stop loops.
   */
  private async forward(fresh: readonly StoredRecord[], from: ReadonlyMap<string, string>): Promise<void> {
    const cfg = await this.config();
    const byPeer = new Map<string, SignedRecord[]>();
    for (const s of fresh) {
      if (s.thread === PAIRS_THREAD || s.thread === CONFIG_THREAD) continue;
      for (const p of cfg.pairs.values()) {
        if (!p.enabled || !p.threads.includes(s.thread) || p.peerDid === from.get(s.id) || p.peerDid === s.actor) continue;
        byPeer.set(p.peerDid, [...(byPeer.get(p.peerDid) ?? []), s.signed]);
      }
    }
    for (const [did, records] of byPeer) await this.enqueue(did, records);
  }

  /**
   * Control records from paired peers (§8–9). The pairing state changes are idempotent and are
   * applied to redelivered copies too: a crash (a closed tab) between storing a record and acting
   * on it would otherwise lose the act, the redelivery being a duplicate. Measured: a page that
   * navigated right after a batch landed kept its pair "waiting for confirmation" for good.
   * Token updates and history requests act once, when first stored (an old copy must not undo a
   * newer token; a lost history request is simply asked again).
   */
  private async afterIngest(stored: readonly StoredRecord[], inserted: readonly string[], admitted: readonly Candidate[]): Promise<void> {
    const { me } = this.requireIdentity();
    const insertedSet = new Set(inserted);
    const fresh = stored.filter((s) => insertedSet.has(s.id) && s.actor !== me.did);
    const from = new Map(admitted.map((c) => [c.signed.id, c.from]));
    if (fresh.length) await this.forward(fresh, from);
    for (const s of stored) {
      const r = s.signed.record;
      if (r.actor === me.did || r.thread !== PAIRS_THREAD || from.get(s.id) !== r.actor) continue;
      const isFresh = insertedSet.has(s.id);
      const pair = (await this.config()).pairs.get(r.actor);
      if (!pair?.enabled) continue;
      const topic = r.body.topic;
      if (topic === 'pair.confirm' && pair.waiting) {
        await this.writeConfig(pairBody({ ...pair, waiting: false }));
      } else if (topic === 'pair.refuse' && pair.waiting) {
        const reason = typeof r.body.reason === 'string' ? r.body.reason.slice(0, 80) : 'refused';
        await this.writeConfig(pairBody({ ...pair, enabled: false, waiting: false, endReason: `refused: ${reason}` }));
      } else if (topic === 'pair.end') {
        await this.writeConfig(pairBody({ ...pair, enabled: false, waiting: false, endReason: 'ended_by_peer' }));
        await this.rotateDepositToken();
      } else if (isFresh && topic === 'pair.token' && isDepositToken(r.body.deposit_token)) {
        await this.writeConfig(pairBody({ ...pair, depositToken: r.body.deposit_token }));
      } else if (isFresh && topic === 'history.request' && Array.isArray(r.body.threads)) {
        // §11: the threads granted to the requester; its list only narrows them.
        const asked = new Set(r.body.threads.filter((t): t is string => typeof t === 'string'));
        await this.sendHistory(pair.peerDid, pair.threads.filter((t) => asked.has(t)));
      }
    }
    if (fresh.length) this.deps.onIngest?.(fresh);
  }

  /**
   * §8: a thread a peer shares is granted back on its own only when it is new here (no record held
   * on it, granted to no one); otherwise it waits for the owner (pendingShares / acceptShare).
   */
  private async offeredThread(pair: Pair, thread: string): Promise<boolean> {
    if (!THREAD_RE.test(thread) || thread === CONFIG_THREAD || thread === PAIRS_THREAD || pair.threads.includes(thread)) return false;
    const cfg = await this.config();
    const grantedElsewhere = [...cfg.pairs.values()].some((p) => p.threads.includes(thread));
    const held = (await this.store.threads()).some((t) => t.thread === thread);
    if (grantedElsewhere || held) return false;
    await this.writeConfig(pairBody({ ...pair, threads: [...pair.threads, thread] }));
    return true;
  }

  /**
   * §7: `POST /v1/sync/records` on a reachable peer. The sealed-envelope form is opened, checked
   * for pairing before any signature is verified, admitted and stored exactly as from a relay, and
   * answered with a receipt over the answer's bytes. The guide's plain `{"records": […]}` form is
   * still taken, from authors who are themselves paired peers granted the thread; no receipt.
   */
  async handleDirectDelivery(body: unknown): Promise<DirectResponse> {
    this.requireIdentity();
    if (isObject(body) && body.envelope !== undefined) return this.directEnvelope(body.envelope);
    if (isObject(body) && Array.isArray(body.records)) return this.directRecords(body.records);
    return directError(400, 'invalid_request', 'body must be {"envelope": <sealed envelope>} or {"records": [signed records…]}');
  }

  private async directEnvelope(raw: unknown): Promise<DirectResponse> {
    const { me, signer } = this.requireIdentity();
    if (!isObject(raw) || typeof raw.id !== 'string' || typeof raw.to_did !== 'string') {
      return directError(400, 'invalid_envelope', 'envelope must be an object with "id" and "to_did"');
    }
    if (raw.to_did !== me.did) return directError(421, 'wrong_recipient', `this endpoint receives for ${me.did}, not ${raw.to_did.slice(0, 80)}`);
    const cfg = await this.config();
    const opened = await openEnvelope(raw, { did: me.did, secretKey: me.secretKey }, { admitSender: (did) => cfg.pairs.get(did)?.enabled === true });
    if (!opened.ok) {
      if (opened.error.code === 'unpaired_sender') return directError(403, 'unpaired', opened.error.message);
      if (opened.error.code === 'wrong_recipient') return directError(421, 'wrong_recipient', opened.error.message);
      await this.store.bumpCounters({ direct_received: 1, envelopes_rejected: 1 });
      return directError(400, opened.error.code, opened.error.message);
    }
    const rejected: { id: string | null; reason: string }[] = [];
    const candidates: Candidate[] = [];
    for (const r of opened.value.records) {
      if (r.ok) candidates.push({ from: opened.value.from_did, signed: r.value });
      else rejected.push({ id: r.id ?? null, reason: `${r.error.code}: ${r.error.message}` });
    }
    const { accepted, dropped } = await this.admit(candidates);
    const result = await this.commit(accepted, dropped, 'direct', undefined, {
      direct_received: 1,
      envelopes_received: 1,
      records_rejected_invalid: rejected.length,
    });
    for (const d of result.dropped) rejected.push({ id: d.id, reason: `${d.reason}: ${DROP_MESSAGE[d.reason]}` });
    const answer = { accepted: result.inserted, duplicates: result.duplicates, rejected };
    const text = JSON.stringify(answer);
    return { status: 200, body: answer, text, headers: { [RECEIPT_HEADER]: await signReceipt(opened.value.id, text, signer, this.now()) } };
  }

  private async directRecords(records: readonly unknown[]): Promise<DirectResponse> {
    if (records.length > 1000) return directError(413, 'payload_too_large', 'at most 1000 records per request');
    const unsigned = records.findIndex((r) => !isObject(r) || r.sig === undefined || r.sig === null || r.sig === '');
    if (unsigned >= 0) return directError(422, 'unsigned_record', `records[${unsigned}] carries no signature`);
    const verified = await Promise.all(records.map((r) => verifySignedRecord(r)));
    const rejected: { id: string | null; reason: string }[] = [];
    const candidates: Candidate[] = [];
    verified.forEach((v, i) => {
      const raw = records[i];
      const id = isObject(raw) && typeof raw.id === 'string' ? raw.id : null;
      // Without an envelope nobody vouches for a record but its author (§8).
      if (v.ok) candidates.push({ from: v.value.record.actor, signed: v.value });
      else rejected.push({ id, reason: `${v.error.code}: ${v.error.message}` });
    });
    const { accepted, dropped } = await this.admit(candidates);
    const result = await this.commit(accepted, dropped, 'direct', undefined, {
      direct_received: records.length,
      records_rejected_invalid: rejected.length,
    });
    for (const d of result.dropped) rejected.push({ id: d.id, reason: `${d.reason}: ${DROP_MESSAGE[d.reason]}` });
    const answer = { accepted: result.inserted, duplicates: result.duplicates, rejected };
    return { status: 200, body: answer, text: JSON.stringify(answer), headers: {} };
  }

  // ---- pairing (§9) ----

  async createInvite(opts: { threads: readonly string[]; ttlMs?: number }): Promise<{ link: string; payload: string }> {
    const { me, signer } = this.requireIdentity();
    const relays = await this.receiveRelays();
    if (relays.length === 0 && !this.deps.peerUrl) {
      throw new Error('set a relay first: the other device replies through it when you are offline');
    }
    for (const t of opts.threads) if (!THREAD_RE.test(t)) throw new Error(`"${t}" is not a thread ID`);
    const invite = await createInvite(
      {
        did: me.did,
        name: me.name,
        relays,
        ...(this.deps.peerUrl ? { peer_url: this.deps.peerUrl } : {}),
        deposit_token: await this.depositToken(),
        threads: opts.threads,
        exp: this.now() + (opts.ttlMs ?? DEFAULT_INVITE_TTL_MS),
      },
      signer,
    );
    await this.store.putInvite({ nonce: invite.nonce, exp: invite.exp, threads: invite.threads, createdAt: this.now() });
    const link = inviteLink(this.deps.appUrl ?? 'syncropel:', invite);
    return { link, payload: link.slice(link.indexOf('#pair=') + 6) };
  }

  async acceptInvite(linkOrPayload: string): Promise<Pair> {
    const { me } = this.requireIdentity();
    const parsed = await parseInvite(linkOrPayload, this.now());
    if (!parsed.ok) throw new Error(parsed.error.message);
    const inv: Invite = parsed.value;
    if (inv.did === me.did) throw new Error('this invite is your own: open it on the other device');
    const cfg = await this.config();
    const [inviterRelay] = inv.relays;
    if (inviterRelay) {
      await this.writeConfig(relayBody(normalizeRelayUrl(inviterRelay), inv.did, true));
      // With no relay of our own yet, receive through the inviter's: pairing then just works.
      if (!cfg.relays.get('all')?.enabled) await this.writeConfig(relayBody(normalizeRelayUrl(inviterRelay), 'all', true));
    }
    const pair: Pair = {
      peerDid: inv.did,
      name: inv.name.trim() || inv.did.slice(0, 24),
      ...(inv.peer_url ? { peerUrl: inv.peer_url } : {}),
      ...(inv.deposit_token ? { depositToken: inv.deposit_token } : {}),
      threads: [...new Set([...(cfg.pairs.get(inv.did)?.threads ?? []), ...inv.threads])],
      enabled: true,
      // §9: until the inviter confirms, the pair shares nothing beyond the invite's threads.
      ...(cfg.pairs.get(inv.did)?.enabled && !cfg.pairs.get(inv.did)?.waiting ? {} : { waiting: true }),
    };
    await this.setPair(pair);
    await this.emitRecord(
      {
        thread: PAIRS_THREAD,
        act: 'LEARN',
        body: {
          topic: 'pair.accept',
          nonce: inv.nonce,
          name: me.name,
          relays: await this.receiveRelays(),
          ...(this.deps.peerUrl ? { peer_url: this.deps.peerUrl } : {}),
          deposit_token: await this.depositToken(),
        },
      },
      { federate: false, to: inv.did },
    );
    await this.flushOutbox().catch(() => undefined); // best effort now; the outbox retries
    return pair;
  }

  // ---- status and doctor ----

  async syncStatus(): Promise<SyncStatus> {
    const cfg = await this.config();
    const outbox = await this.store.listOutbox();
    const receipted = await this.receiptedIds();
    const peers: PeerSyncStatus[] = [...cfg.pairs.values()].map((p) => {
      const mine = outbox.filter((e) => e.toDid === p.peerDid).sort((a, b) => a.createdAt - b.createdAt);
      const counts = { pending: 0, direct: 0, relay: 0, rejected: 0 };
      for (const e of mine) counts[e.path]++;
      // §11: per record (notes, not control records), the furthest it got to this peer.
      const records = { queued: 0, relay: 0, delivered: 0, rejected: 0 };
      const seen = new Set<string>();
      for (const e of [...mine].reverse()) {
        e.records.forEach((r) => {
          if (r.record.thread === PAIRS_THREAD || seen.has(r.id)) return;
          seen.add(r.id);
          if (receipted.has(`${r.id} ${p.peerDid}`) || e.path === 'direct') records.delivered++;
          else if (e.path === 'relay') records.relay++;
          else if (e.path === 'pending') records.queued++;
          else records.rejected++;
        });
      }
      const pending = mine.filter((e) => e.path === 'pending');
      const lastFailed = [...mine].reverse().find((e) => e.lastError && (e.path === 'pending' || e.path === 'rejected'));
      const last = mine.at(-1);
      const relay = relayForPeer(cfg, p.peerDid);
      return {
        did: p.peerDid,
        name: p.name,
        state: p.enabled ? (p.waiting ? 'waiting' : 'paired') : (p.endReason ?? 'ended'),
        outbox: counts,
        records,
        ...(lastFailed?.lastError ? { lastError: lastFailed.lastError } : {}),
        ...(pending.length ? { nextAttemptAt: Math.min(...pending.map((e) => e.nextAttemptAt)) } : {}),
        ...(last ? { lastPath: last.path } : {}),
        ...(relay ? { relay } : {}),
        ...(p.peerUrl ? { peerUrl: p.peerUrl } : {}),
      };
    });
    const states = await this.store.listReceiveStates();
    const relays = (await this.receiveRelays()).map((url) => {
      const st = states.find((s) => s.relayUrl === url) ?? { relayUrl: url, backlog: 0 };
      const forPairs = [...cfg.relays.values()].filter((r) => r.enabled && r.url === url).map((r) => r.forPair);
      return { ...st, forPairs };
    });
    return { peers, relays, counters: await this.store.getCounters() };
  }

  async doctor(facts: PlatformFacts = {}): Promise<DoctorReport> {
    return runDoctor({
      identity: this.me,
      status: this.me ? await this.syncStatus() : undefined,
      outbox: this.me ? await this.store.listOutbox() : [],
      health: this.me ? await Promise.all((await this.receiveRelays()).map((u) => this.relayHealth(u))) : [],
      facts,
      now: this.now(),
      ...(this.me ? { drops: await this.store.dropCounts(), pairs: await this.pairs(), refusals: await this.pairRefusals() } : {}),
    });
  }
}

function directError(status: number, code: string, message: string): DirectResponse {
  const body = { error: { code, message } };
  return { status, body, text: JSON.stringify(body), headers: {} };
}

function receiveState(
  relayUrl: string,
  now: number,
  backlog: number,
  error: string | undefined,
  latency: number | undefined,
  prior: ReceiveState | undefined,
): ReceiveState {
  const lastSuccessAt = error ? prior?.lastSuccessAt : now;
  const lastLatencyMs = latency ?? prior?.lastLatencyMs;
  return {
    relayUrl,
    lastReceiveAt: now,
    backlog,
    ...(error ? { lastError: error } : {}),
    ...(lastSuccessAt !== undefined ? { lastSuccessAt } : {}),
    ...(lastLatencyMs !== undefined ? { lastLatencyMs } : {}),
  };
}

/**
 * The configuration records of a backup's settings: each must verify and be one of the owner's
 * own config records; anything else fails the restore before anything is written.
 */
async function restoredConfig(settings: JsonValue | undefined, did: string): Promise<SignedRecord[]> {
  if (settings === undefined) return []; // a backup written before settings travelled with the key
  const config = isObject(settings) && Array.isArray(settings.config) ? settings.config : undefined;
  if (!config) throw new Error('the backup\'s settings hold no list of configuration records');
  const out: SignedRecord[] = [];
  for (const [i, raw] of config.entries()) {
    const v = await verifySignedRecord(raw);
    if (!v.ok) throw new Error(`the backup's configuration record ${i} does not verify: ${v.error.message}`);
    if (v.value.record.actor !== did || v.value.record.thread !== CONFIG_THREAD) throw new Error(`the backup's configuration record ${i} is not this identity's configuration`);
    out.push(v.value);
  }
  return out;
}

/** Per envelope sender, the IDs of the granted records stored or already held from it (what a receipt names). */
function storedBySender(accepted: readonly Candidate[], result: { inserted: readonly string[]; duplicates: readonly string[] }): Map<string, string[]> {
  const held = new Set([...result.inserted, ...result.duplicates]);
  const out = new Map<string, string[]>();
  for (const c of accepted) {
    if (c.signed.record.thread === PAIRS_THREAD || !held.has(c.signed.id)) continue;
    out.set(c.from, [...(out.get(c.from) ?? []), c.signed.id]);
  }
  return out;
}

/** Records in envelope-sized groups: at most MAX_ENVELOPE_RECORDS and MAX_ENVELOPE_RECORD_BYTES each. */
function envelopeChunks(records: readonly SignedRecord[]): SignedRecord[][] {
  const chunks: SignedRecord[][] = [];
  let current: SignedRecord[] = [];
  let bytes = 0;
  for (const r of records) {
    const size = JSON.stringify(r).length;
    if (current.length > 0 && (current.length >= MAX_ENVELOPE_RECORDS || bytes + size > MAX_ENVELOPE_RECORD_BYTES)) {
      chunks.push(current);
      current = [];
      bytes = 0;
    }
    current.push(r);
    bytes += size;
  }
  if (current.length) chunks.push(current);
  return chunks;
}

/** Opened pieces of a receive batch, in order, as one. */
function mergeOpened(pieces: readonly OpenedChunk[]): OpenedChunk {
  if (pieces.length === 1) return pieces[0]!;
  const delta = { envelopes_received: 0, envelopes_rejected: 0, records_rejected_invalid: 0 };
  for (const p of pieces) for (const k of Object.keys(delta) as (keyof typeof delta)[]) delta[k] += p.delta[k];
  return {
    ackIds: pieces.flatMap((p) => p.ackIds),
    candidates: pieces.flatMap((p) => p.candidates),
    envelopeRecords: pieces.flatMap((p) => p.envelopeRecords),
    delta,
  };
}

function toStored(signed: SignedRecord, now: number, path: StoredRecord['path'], via?: string): StoredRecord {
  const r = signed.record;
  return { id: signed.id, signed, thread: r.thread, actor: r.actor, clock: r.clock, receivedAt: now, path, ...(via ? { via } : {}) };
}

/** The thread's current heads (records no other record names as a parent), as the new record's parents. */
function heads(records: readonly StoredRecord[]): string[] {
  const referenced = new Set<string>();
  for (const r of records) for (const p of r.signed.record.parents) referenced.add(p);
  return records
    .map((r) => r.id)
    .filter((id) => !referenced.has(id))
    .sort()
    .slice(0, 16);
}

