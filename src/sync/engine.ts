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
  isHttpUrl,
  isObject,
  openEnvelope,
  parseInvite,
  publicKeyFromDid,
  sealEnvelope,
  serializeEnvelope,
  signMailboxRequest,
  signRecord,
  THREAD_RE,
  verifySignedRecord,
  type Invite,
  type Recipient,
  type JsonValue,
  type SignedRecord,
  type Signer,
  type SyncRecord,
} from '../core';
import type { CounterDelta, Identity, OutboxEntry, PeerStore, ReceiveState, StoredRecord } from '../store/types';
import {
  CONFIG_THREAD,
  foldConfig,
  isPairAccept,
  normalizeRelayUrl,
  pairBody,
  PAIRS_THREAD,
  relayBody,
  relayForPeer,
  type EffectiveConfig,
} from './config';
import { runDoctor } from './doctor';
import { isRetryable, requestJson } from './http';
import { RETENTION_MS, retryDelayMs } from './retry';
import type {
  DirectResponse,
  EmitInput,
  FlushReport,
  Pair,
  PeerApi,
  PeerEngineDeps,
  PeerSyncStatus,
  ReceiveReport,
  RelayEntry,
  RelayHealth,
  SyncStatus,
  DoctorReport,
  PlatformFacts,
  PairScope,
} from './types';

export const DIRECT_TIMEOUT_MS = 5_000; // §7
const RELAY_TIMEOUT_MS = 15_000;
const MAX_ENVELOPE_RECORDS = 50;
const ACK_CHUNK = 1000; // §5
const DEFAULT_INVITE_TTL_MS = 7 * 24 * 3600 * 1000;
const MAX_DRAIN_ROUNDS = 200;
/** Emit retries when other writers of the same store keep taking the next clock (see appendOwn). */
const MAX_EMIT_ATTEMPTS = 20;
/** Envelopes per open step of a receive batch (see ingestEnvelopes): small, so writing starts early. */
const OPEN_PIECE = 4;

type ReceiveRelayReport = ReceiveReport['relays'][number];

/** Envelopes of a receive batch, opened: what to ack, the valid records, and counts of the rest. */
interface OpenedChunk {
  readonly ackIds: string[];
  readonly candidates: SignedRecord[];
  readonly delta: { envelopes_received: number; envelopes_rejected: number; records_dropped_unpaired: number; records_rejected_invalid: number };
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
    for (const t of pair.threads) if (!THREAD_RE.test(t)) throw new Error(`"${t}" is not a thread ID`);
    const before = (await this.config()).pairs.get(pair.peerDid);
    await this.writeConfig(pairBody(pair));
    if (pair.enabled) {
      // Threads newly shared with this peer: send it what we already wrote there.
      const added = pair.threads.filter((t) => !before?.enabled || !before.threads.includes(t));
      await this.backfill(pair.peerDid, added);
    }
  }

  // ---- records ----

  async emit(input: EmitInput): Promise<StoredRecord> {
    if (input.thread === CONFIG_THREAD || input.thread === PAIRS_THREAD) throw new Error(`${input.thread} is reserved`);
    const body = input.body ?? { kind: 'note', text: input.text ?? '' };
    if (input.body === undefined && !input.text?.trim()) throw new Error('a note needs text');
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
        const clock = (await this.store.maxClock(me.did, input.thread)) + 1;
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

  async threads(): Promise<{ thread: string; count: number; lastReceivedAt: number }[]> {
    return (await this.store.threads()).filter((t) => t.thread !== CONFIG_THREAD);
  }

  // ---- outbox and delivery (§7, §10) ----

  /** Queues records for one peer (see outboxEntries). */
  private async enqueue(toDid: string, records: readonly SignedRecord[]): Promise<void> {
    const entries = await this.outboxEntries(toDid, records);
    if (entries.length) await this.store.putOutbox(entries);
  }

  /** Outbox entries carrying records to one peer as sealed envelopes of at most 50 records. */
  private async outboxEntries(toDid: string, records: readonly SignedRecord[]): Promise<OutboxEntry[]> {
    const { me, signer } = this.requireIdentity();
    const now = this.now();
    const entries: OutboxEntry[] = [];
    for (let i = 0; i < records.length; i += MAX_ENVELOPE_RECORDS) {
      const chunk = records.slice(i, i + MAX_ENVELOPE_RECORDS);
      const plain = await buildPlainEnvelope({ fromDid: me.did, toDid, records: chunk }, signer);
      if ((await this.store.getOutbox(plain.id))?.path === 'pending') continue;
      entries.push({
        id: plain.id,
        toDid,
        recordIds: chunk.map((r) => r.id),
        records: chunk,
        envelope: serializeEnvelope(sealEnvelope(plain)), // §4: sealed by default
        createdAt: now,
        expiresAt: now + RETENTION_MS,
        path: 'pending',
        attempts: 0,
        nextAttemptAt: now,
      });
    }
    return entries;
  }

  private async backfill(peerDid: string, threads: readonly string[]): Promise<void> {
    const { me } = this.requireIdentity();
    for (const t of threads) {
      const own = (await this.store.recordsByThread(t)).filter((r) => r.actor === me.did).map((r) => r.signed);
      if (own.length) await this.enqueue(peerDid, own);
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
    const errors: string[] = [];
    let retryAfterMs: number | undefined;
    if (pair?.peerUrl) {
      const res = await requestJson(
        this.fetchFn,
        `${normalizeRelayUrl(pair.peerUrl)}/v1/sync/records`,
        {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'x-syncropel-federation': '1' },
          body: JSON.stringify({ records: entry.records }),
        },
        DIRECT_TIMEOUT_MS,
        this.now,
      );
      if (res.status === 200) {
        const rejected = isObject(res.body) && Array.isArray(res.body.rejected) ? res.body.rejected : [];
        if (rejected.length === 0) return this.delivered(entry, 'direct', pair.peerUrl);
        return this.rejected(entry, `peer rejected ${rejected.length} record(s): ${JSON.stringify(rejected).slice(0, 300)}`);
      }
      if (!isRetryable(res.status)) return this.rejected(entry, `direct delivery refused: ${res.error ?? res.status}`);
      errors.push(`direct: ${res.error ?? `HTTP ${res.status}`}`);
    }
    const relay = relayForPeer(cfg, entry.toDid);
    if (relay) {
      const res = await requestJson(
        this.fetchFn,
        `${relay}/v1/mailbox/${encodeURIComponent(entry.toDid)}`,
        { method: 'POST', headers: { 'content-type': 'application/json' }, body: entry.envelope },
        RELAY_TIMEOUT_MS,
        this.now,
      );
      if (res.status === 202) return this.delivered(entry, 'relay', relay);
      if (!isRetryable(res.status)) return this.rejected(entry, `relay ${relay} refused the envelope: ${res.error ?? res.status}`);
      errors.push(`relay: ${res.error ?? `HTTP ${res.status}`}`);
      retryAfterMs = res.retryAfterMs;
    } else if (!pair?.peerUrl) {
      errors.push(`no route: no relay configured for ${entry.toDid} and no direct URL`);
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

  private delivered(entry: OutboxEntry, path: 'direct' | 'relay', to: string): OutboxEntry {
    const { lastError: _e, ...rest } = entry;
    return { ...rest, attempts: entry.attempts + 1, path, deliveredTo: to, deliveredAt: this.now() };
  }

  private rejected(entry: OutboxEntry, reason: string): OutboxEntry {
    // §10: other 4xx mark it rejected: kept and shown, never silently dropped.
    return { ...entry, attempts: entry.attempts + 1, path: 'rejected', rejectedReason: reason, lastError: reason };
  }

  // ---- receive (§5, §6) ----

  async receive(opts: { waitSeconds?: number; limit?: number; relays?: readonly string[] } = {}): Promise<ReceiveReport> {
    this.requireIdentity();
    const urls = opts.relays ?? (await this.receiveRelays());
    const relays = await Promise.all(urls.map((url) => this.withLock(`spl-receive ${url}`, () => this.receiveFrom(url, opts))));
    return { relays };
  }

  private async signedRelayRequest(relay: string, method: 'GET' | 'POST', path: string, body: string): Promise<RequestInit> {
    const { signer } = this.requireIdentity();
    const host = new URL(relay).host;
    const auth = await signMailboxRequest({ method, host, pathAndQuery: path, body }, signer, this.now());
    const headers: Record<string, string> = { authorization: auth };
    if (method === 'POST') headers['content-type'] = 'application/json';
    return { method, headers, ...(method === 'POST' ? { body } : {}) };
  }

  private async receiveFrom(relayUrl: string, opts: { waitSeconds?: number; limit?: number }): Promise<ReceiveRelayReport> {
    const { me } = this.requireIdentity();
    const report = { url: relayUrl, envelopes: 0, ingested: 0, duplicates: 0, dropped: 0, acked: 0, remaining: 0 };
    const base = new URL(relayUrl);
    const prefix = base.pathname.replace(/\/+$/, '');
    const mailbox = `${prefix}/v1/mailbox/${encodeURIComponent(me.did)}`;
    const limit = Math.min(500, Math.max(1, opts.limit ?? 100));
    let wait = Math.min(30, Math.max(0, opts.waitSeconds ?? 0));
    const prior = await this.store.getReceiveState(relayUrl);
    let error: string | undefined;
    let latency: number | undefined;
    for (let round = 0; round < MAX_DRAIN_ROUNDS; round++) {
      const path = `${mailbox}/receive?limit=${limit}&wait=${wait}`;
      const res = await requestJson(
        this.fetchFn,
        `${base.origin}${path}`,
        await this.signedRelayRequest(relayUrl, 'GET', path, ''),
        RELAY_TIMEOUT_MS + wait * 1000,
        this.now,
      );
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
      await this.store.putReceiveState(receiveState(relayUrl, this.now(), remaining, undefined, latency, prior));
      if (remaining === 0) break;
      wait = 0; // draining a backlog: no long-poll between pages
    }
    await this.store.putReceiveState(receiveState(relayUrl, this.now(), report.remaining, error, latency, prior));
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
    const total = { ackIds: [] as string[], ingested: 0, duplicates: 0, dropped: 0 };
    for (let i = 0; i < opening.length; ) {
      const group = [await opening[i++]!];
      while (i < opening.length && settled[i]) group.push(await opening[i++]!);
      const opened = mergeOpened(group);
      const r = await this.commitChunk(opened, via);
      total.ackIds.push(...opened.ackIds);
      total.ingested += r.ingested;
      total.duplicates += r.duplicates;
      total.dropped += r.dropped;
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
    const candidates: SignedRecord[] = [];
    const delta = { envelopes_received: envelopes.length, envelopes_rejected: 0, records_dropped_unpaired: 0, records_rejected_invalid: 0 };
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
          candidates.push(r.value);
          ids.push(r.value.id);
        } else delta.records_rejected_invalid++;
      }
      envelopeRecords.push(ids);
    });
    return { ackIds, candidates, delta, envelopeRecords };
  }

  private async commitChunk(chunk: OpenedChunk, via: string) {
    const { candidates, delta, envelopeRecords } = chunk;
    const accepted = await this.admit(candidates, delta);
    const result = await this.commit(accepted, 'relay', via, delta);
    // An envelope whose records were all here already came before: a crash before its ack, or an
    // ack that failed. Counted after the fact; losing this count in a crash loses nothing else.
    const dup = new Set(result.duplicates);
    const redelivered = envelopeRecords.filter((ids) => ids.length > 0 && ids.every((id) => dup.has(id))).length;
    if (redelivered) await this.store.bumpCounters({ envelopes_redelivered: redelivered });
    return {
      ingested: result.inserted.length,
      duplicates: result.duplicates.length,
      dropped: delta.records_dropped_unpaired + delta.records_rejected_invalid + delta.envelopes_rejected,
    };
  }

  /** Stores admitted records and the counters describing them in one transaction. */
  private async commit(records: readonly SignedRecord[], path: 'direct' | 'relay', via: string | undefined, delta: CounterDelta) {
    const now = this.now();
    const stored = records.map((s) => toStored(s, now, path, via));
    const result = await this.store.ingest(stored, delta);
    await this.afterIngest(stored, result.inserted);
    return result;
  }

  /**
   * §8: only records from paired actors, plus pairing replies to our own invites (§9), which
   * pair us with their author. Everything else is dropped and counted.
   */
  private async admit(records: readonly SignedRecord[], delta: { records_dropped_unpaired: number }): Promise<SignedRecord[]> {
    const { me } = this.requireIdentity();
    let cfg = await this.config();
    const out: SignedRecord[] = [];
    for (const s of records) {
      const actor = s.record.actor;
      if (actor === me.did) {
        out.push(s); // our own records coming back (e.g. restored from a peer)
        continue;
      }
      if (cfg.pairs.get(actor)?.enabled) {
        out.push(s);
        continue;
      }
      if (isPairAccept(s.record) && (await this.completePairing(s.record))) {
        cfg = await this.config();
        out.push(s);
        continue;
      }
      delta.records_dropped_unpaired++;
    }
    return out;
  }

  /** The inviter's side of §9: pair with whoever returns our unexpired nonce, once. */
  private async completePairing(r: SyncRecord): Promise<boolean> {
    const b = r.body;
    if (typeof b.nonce !== 'string') return false;
    const invite = await this.store.getInvite(b.nonce);
    if (!invite) return false;
    const redeemed = invite.usedBy === r.actor || (await this.store.redeemInvite(b.nonce, r.actor, this.now()));
    if (!redeemed) return false;
    const relays = Array.isArray(b.relays) ? b.relays.filter(isHttpUrl) : [];
    const existing = (await this.config()).pairs.get(r.actor);
    if (!existing?.enabled) {
      await this.setPair({
        peerDid: r.actor,
        name: typeof b.name === 'string' && b.name.trim() ? b.name.slice(0, 200) : r.actor.slice(0, 24),
        ...(isHttpUrl(b.peer_url) ? { peerUrl: b.peer_url } : {}),
        threads: [...invite.threads],
        enabled: true,
      });
    }
    const [firstRelay] = relays;
    if (firstRelay) await this.writeConfig(relayBody(normalizeRelayUrl(firstRelay), r.actor, true));
    return true;
  }

  /** Threads a paired peer writes on become shared with it, so replies flow back. */
  private async afterIngest(stored: readonly StoredRecord[], inserted: readonly string[]): Promise<void> {
    const { me } = this.requireIdentity();
    const insertedSet = new Set(inserted);
    const fresh = stored.filter((s) => insertedSet.has(s.id) && s.actor !== me.did);
    if (fresh.length === 0) return;
    const cfg = await this.config();
    const newThreads = new Map<string, Set<string>>();
    for (const s of fresh) {
      const p = cfg.pairs.get(s.actor);
      if (!p?.enabled || s.thread === PAIRS_THREAD || s.thread === CONFIG_THREAD || p.threads.includes(s.thread)) continue;
      let set = newThreads.get(p.peerDid);
      if (!set) newThreads.set(p.peerDid, (set = new Set()));
      set.add(s.thread);
    }
    for (const [did, ts] of newThreads) {
      const p = cfg.pairs.get(did)!;
      await this.setPair({ ...p, threads: [...p.threads, ...ts] });
    }
    this.deps.onIngest?.(fresh);
  }

  /** §7: `POST /v1/sync/records` on a reachable peer; the same admission and ingest as the relay path. */
  async handleDirectDelivery(body: unknown): Promise<DirectResponse> {
    this.requireIdentity();
    const err = (status: number, code: string, message: string): DirectResponse => ({ status, body: { error: { code, message } } });
    if (!isObject(body) || !Array.isArray(body.records)) return err(400, 'invalid_request', 'body must be {"records": [signed records…]}');
    const records: unknown[] = body.records;
    if (records.length > 1000) return err(413, 'payload_too_large', 'at most 1000 records per request');
    const unsigned = records.findIndex((r) => !isObject(r) || r.sig === undefined || r.sig === null || r.sig === '');
    if (unsigned >= 0) return err(422, 'unsigned_record', `records[${unsigned}] carries no signature`);
    const verified = await Promise.all(records.map((r) => verifySignedRecord(r)));
    const rejected: { id: string | null; reason: string }[] = [];
    const valid: SignedRecord[] = [];
    verified.forEach((v, i) => {
      const raw = records[i];
      const id = isObject(raw) && typeof raw.id === 'string' ? raw.id : null;
      if (v.ok) valid.push(v.value);
      else rejected.push({ id, reason: `${v.error.code}: ${v.error.message}` });
    });
    const delta = { records_dropped_unpaired: 0 };
    const admitted = await this.admit(valid, delta);
    const admittedIds = new Set(admitted.map((r) => r.id));
    for (const v of valid) if (!admittedIds.has(v.id)) rejected.push({ id: v.id, reason: 'unpaired_actor: the sender is not paired with this peer' });
    const result = await this.commit(admitted, 'direct', undefined, {
      direct_received: records.length,
      records_dropped_unpaired: delta.records_dropped_unpaired,
      records_rejected_invalid: records.length - valid.length,
    });
    return { status: 200, body: { accepted: result.inserted, duplicates: result.duplicates, rejected } };
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
      threads: [...new Set([...(cfg.pairs.get(inv.did)?.threads ?? []), ...inv.threads])],
      enabled: true,
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
    const peers: PeerSyncStatus[] = [...cfg.pairs.values()].map((p) => {
      const mine = outbox.filter((e) => e.toDid === p.peerDid).sort((a, b) => a.createdAt - b.createdAt);
      const counts = { pending: 0, direct: 0, relay: 0, rejected: 0 };
      for (const e of mine) counts[e.path]++;
      const pending = mine.filter((e) => e.path === 'pending');
      const lastFailed = [...mine].reverse().find((e) => e.lastError && (e.path === 'pending' || e.path === 'rejected'));
      const last = mine.at(-1);
      const relay = relayForPeer(cfg, p.peerDid);
      return {
        did: p.peerDid,
        name: p.name,
        outbox: counts,
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
    });
  }
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

/** Opened pieces of a receive batch, in order, as one. */
function mergeOpened(pieces: readonly OpenedChunk[]): OpenedChunk {
  if (pieces.length === 1) return pieces[0]!;
  const delta = { envelopes_received: 0, envelopes_rejected: 0, records_dropped_unpaired: 0, records_rejected_invalid: 0 };
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

