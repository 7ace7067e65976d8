/**
 * Storing what arrives (§6): envelopes opened and verified, admitted (§8), stored with their
 * counters in one transaction, then acted on (control records, forwarding to groups).
 */
import { isObject, openEnvelope, type Recipient } from '../core';
import type { CounterDelta, StoredRecord } from '../store/types';
import { admit, dropCounters, reusedClockDrops, type Candidate, type Dropped } from './admission';
import { PAIRS_THREAD } from './config';
import type { PeerContext } from './context';
import { forward } from './convergence';
import { toStored } from './emit';
import { applyControlRecord } from './pairing';

/** Envelopes per open step of a receive batch (see ingestEnvelopes): small, so writing starts early. */
const OPEN_PIECE = 4;

/** Envelopes of a receive batch, opened: what to ack, the valid records, and counts of the rest. */
interface OpenedChunk {
  readonly ackIds: string[];
  readonly candidates: Candidate[];
  readonly delta: { envelopes_received: number; envelopes_rejected: number; records_rejected_invalid: number };
  /** Per valid envelope, the IDs of its valid records (to spot redeliveries). */
  readonly envelopeRecords: string[][];
}

export interface IngestedBatch {
  readonly ackIds: string[];
  ingested: number;
  duplicates: number;
  dropped: number;
  /** Per envelope sender, the granted records stored or already held (what a receipt names). */
  readonly stored: Map<string, string[]>;
}

/**
 * Opens, verifies and ingests one receive batch, as a pipeline with group commit: envelopes are
 * opened in small pieces, and each time the store is free, every piece opened by then is written
 * in one transaction. The first commit starts as soon as the first piece is verified, later
 * commits grow to whatever verification got ahead by, and writing overlaps opening throughout.
 * Every envelope is acked afterwards, the bad ones too (they would only come back): they are
 * counted instead.
 */
export async function ingestEnvelopes(ctx: PeerContext, envelopes: readonly unknown[], via: string): Promise<IngestedBatch> {
  const pieces: (readonly unknown[])[] = [];
  for (let i = 0; i < envelopes.length; i += OPEN_PIECE) pieces.push(envelopes.slice(i, i + OPEN_PIECE));
  // An injected opener (a worker pool) takes every piece at once and finishes them in order;
  // inline, pieces are opened one after another so the first is ready early.
  let previous: Promise<unknown> = Promise.resolve();
  const opening = pieces.map((piece) => {
    const p = ctx.deps.openEnvelopes ? openChunk(ctx, piece) : previous.then(() => openChunk(ctx, piece));
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
  const total: IngestedBatch = { ackIds: [], ingested: 0, duplicates: 0, dropped: 0, stored: new Map() };
  for (let i = 0; i < opening.length;) {
    const group = [await opening[i++]!];
    while (i < opening.length && settled[i]) group.push(await opening[i++]!);
    const opened = mergeOpened(group);
    const r = await commitChunk(ctx, opened, via);
    total.ackIds.push(...opened.ackIds);
    total.ingested += r.ingested;
    total.duplicates += r.duplicates;
    total.dropped += r.dropped;
    for (const [from, ids] of r.stored) total.stored.set(from, [...(total.stored.get(from) ?? []), ...ids]);
  }
  return total;
}

/** The injected opener, falling back to inline verification if it fails (e.g. a worker died). */
function openEnvelopes(ctx: PeerContext, envelopes: readonly unknown[], me: Recipient) {
  const inline = () => Promise.all(envelopes.map((e) => openEnvelope(e, me)));
  return ctx.deps.openEnvelopes ? ctx.deps.openEnvelopes(envelopes, me).catch(inline) : inline();
}

/** Decrypts and verifies envelopes; never rejects (openEnvelope returns failures as results). */
async function openChunk(ctx: PeerContext, envelopes: readonly unknown[]): Promise<OpenedChunk> {
  const { me } = ctx.requireIdentity();
  const opened = await openEnvelopes(ctx, envelopes, { did: me.did, secretKey: me.secretKey });
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

async function commitChunk(ctx: PeerContext, chunk: OpenedChunk, via: string) {
  const { candidates, delta, envelopeRecords } = chunk;
  const { accepted, dropped } = await admit(ctx, candidates);
  const result = await commit(ctx, accepted, dropped, 'relay', via, delta);
  // An envelope whose records were all here already came before: a crash before its ack, or an
  // ack that failed. Counted after the fact; losing this count in a crash loses nothing else.
  const dup = new Set(result.duplicates);
  const redelivered = envelopeRecords.filter((ids) => ids.length > 0 && ids.every((id) => dup.has(id))).length;
  if (redelivered) await ctx.store.bumpCounters({ envelopes_redelivered: redelivered });
  return {
    ingested: result.inserted.length,
    duplicates: result.duplicates.length,
    dropped: result.dropped.length + delta.records_rejected_invalid + delta.envelopes_rejected,
    stored: storedBySender(accepted, result),
  };
}

/**
 * Stores admitted records and the counters describing them in one transaction, then acts on what
 * was stored. The store refuses reused clocks (§3) in that same transaction and counts them, per
 * sender too: a check before it would let two concurrent ingests (page and service worker, a
 * direct delivery and a relay receive) both take one slot.
 */
export async function commit(
  ctx: PeerContext,
  admitted: readonly Candidate[],
  dropped: readonly Dropped[],
  path: 'direct' | 'relay',
  via: string | undefined,
  delta: CounterDelta,
): Promise<{ inserted: string[]; duplicates: string[]; dropped: Dropped[] }> {
  const now = ctx.now();
  const offered = admitted.map((c) => toStored(c.signed, now, path, via));
  const senders = admitted.map((c) => c.from);
  const result = await ctx.store.ingest(offered, dropCounters(dropped, delta), [], senders);
  const refusedIds = new Set(result.refused);
  const stored = offered.filter((s) => !refusedIds.has(s.id));
  await afterIngest(ctx, stored, result.inserted, admitted);
  const refused = reusedClockDrops(admitted, result.refused);
  return { inserted: [...result.inserted], duplicates: [...result.duplicates], dropped: [...dropped, ...refused] };
}

/** Forwarding (§11 groups) for records new here, and control records acted on (see applyControlRecord). */
async function afterIngest(
  ctx: PeerContext,
  stored: readonly StoredRecord[],
  inserted: readonly string[],
  admitted: readonly Candidate[],
): Promise<void> {
  const { me } = ctx.requireIdentity();
  const insertedSet = new Set(inserted);
  const fresh = stored.filter((s) => insertedSet.has(s.id) && s.actor !== me.did);
  const from = new Map(admitted.map((c) => [c.signed.id, c.from]));
  if (fresh.length) await forward(ctx, fresh, from);
  for (const s of stored) {
    const r = s.signed.record;
    if (r.actor === me.did || r.thread !== PAIRS_THREAD || from.get(s.id) !== r.actor) continue;
    await applyControlRecord(ctx, s, insertedSet.has(s.id));
  }
  if (fresh.length) ctx.deps.onIngest?.(fresh);
}

/** Per envelope sender, the IDs of the granted records stored or already held from it (what a receipt names). */
function storedBySender(
  accepted: readonly Candidate[],
  result: { inserted: readonly string[]; duplicates: readonly string[] },
): Map<string, string[]> {
  const held = new Set([...result.inserted, ...result.duplicates]);
  const out = new Map<string, string[]>();
  for (const c of accepted) {
    if (c.signed.record.thread === PAIRS_THREAD || !held.has(c.signed.id)) continue;
    out.set(c.from, [...(out.get(c.from) ?? []), c.signed.id]);
  }
  return out;
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
