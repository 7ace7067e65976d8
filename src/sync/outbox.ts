/**
 * The outbox (§7, §10): own and forwarded records to each peer as sealed envelopes, delivered
 * direct first (counted only with a verified receipt), through the peer's relay otherwise, and
 * retried with backoff; refusals are kept and shown, never dropped.
 */
import { buildPlainEnvelope, RECEIPT_HEADER, sealEnvelope, serializeEnvelope, verifyReceipt, type SignedRecord } from '../core';
import type { OutboxEntry } from '../store/types';
import { isPairAccept, normalizeRelayUrl, PAIRS_THREAD, relayForPeer, type EffectiveConfig } from './config';
import type { PeerContext } from './context';
import { isRetryable, requestJson } from './http';
import { DIRECT_TIMEOUT_MS } from './relay-client';
import { RETENTION_MS, retryDelayMs } from './retry';
import type { FlushReport } from './types';

const MAX_ENVELOPE_RECORDS = 50;
/** Sealed (base64url, +⅓) this stays under a relay's 1 MiB body limit (§5). */
const MAX_ENVELOPE_RECORD_BYTES = 600_000;

/** Queues records for one peer (see outboxEntries). */
export async function enqueue(ctx: PeerContext, toDid: string, records: readonly SignedRecord[]): Promise<void> {
  const entries = await outboxEntries(ctx, toDid, records);
  if (entries.length) await ctx.store.putOutbox(entries);
}

/** Outbox entries carrying records to one peer as sealed envelopes of at most 50 records and ~600 KB. */
export async function outboxEntries(ctx: PeerContext, toDid: string, records: readonly SignedRecord[]): Promise<OutboxEntry[]> {
  const { me, signer } = ctx.requireIdentity();
  const now = ctx.now();
  const entries: OutboxEntry[] = [];
  for (const [i, chunk] of envelopeChunks(records).entries()) {
    const plain = await buildPlainEnvelope({ fromDid: me.did, toDid, records: chunk }, signer);
    if ((await ctx.store.getOutbox(plain.id))?.path === 'pending') continue;
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
 * When the earliest pending entry is due (§10), for the scheduler's retry timer; undefined when
 * nothing is pending. Reads pending entries only (delivered ones stay 7 days for status).
 */
export async function nextDueAt(ctx: PeerContext): Promise<number | undefined> {
  const pending = await ctx.store.dueOutbox(Number.MAX_SAFE_INTEGER);
  return pending.reduce<number | undefined>((min, e) => (min === undefined || e.nextAttemptAt < min ? e.nextAttemptAt : min), undefined);
}

/** Delivers every due entry (`all`: every pending one, as when the network returns, §10). */
export async function flushOutbox(ctx: PeerContext, opts: { all?: boolean } = {}): Promise<FlushReport> {
  ctx.requireIdentity();
  return ctx.withLock('spl-outbox', async () => {
    const now = ctx.now();
    await ctx.store.pruneOutbox(now);
    const due = await ctx.store.dueOutbox(opts.all ? Number.MAX_SAFE_INTEGER : now);
    const cfg = await ctx.config();
    const report = { attempted: due.length, direct: 0, relay: 0, pending: 0, rejected: 0 };
    for (const entry of due) {
      const next = await deliver(ctx, entry, cfg);
      await ctx.store.putOutbox([next]);
      report[next.path]++;
    }
    return report;
  });
}

async function deliver(ctx: PeerContext, entry: OutboxEntry, cfg: EffectiveConfig): Promise<OutboxEntry> {
  const pair = cfg.pairs.get(entry.toDid);
  const control = entry.records.every((r) => r.record.thread === PAIRS_THREAD);
  // §9: after a pair ends nothing more is sent to it, but the notice that it ended.
  if (pair && !pair.enabled && !control) return rejected(entry, `the pair with ${pair.name} has ended`);
  const errors: string[] = [];
  let retryAfterMs: number | undefined;
  // A pairing reply goes through the relay: a direct endpoint takes envelopes from paired peers only (§7).
  const pairingReply = entry.records.some((r) => isPairAccept(r.record));
  if (pair?.peerUrl && pair.enabled && !pairingReply) {
    const direct = await deliverDirect(ctx, entry, pair.peerUrl);
    if (direct === 'delivered') return delivered(ctx, entry, 'direct', pair.peerUrl);
    errors.push(`direct: ${direct}`);
  }
  const relay = relayForPeer(cfg, entry.toDid) ?? [...cfg.refusals.values()].find((r) => r.peerDid === entry.toDid)?.relay;
  if (relay) {
    const res = await ctx.relay(relay).deposit(entry.toDid, entry.envelope, pair?.depositToken); // §5.1
    if (res.status === 202) return delivered(ctx, entry, 'relay', relay);
    if (!isRetryable(res.status)) return rejected(entry, `relay ${relay} refused the envelope: ${res.error ?? res.status}`);
    errors.push(`relay: ${res.error ?? `HTTP ${res.status}`}`);
    retryAfterMs = res.retryAfterMs;
  } else {
    const why = pairingReply ? ' (a pairing reply travels through a relay)' : pair?.peerUrl ? '' : ' and no direct URL';
    errors.push(`no route: no relay configured for ${entry.toDid}${why}`);
  }
  const attempts = entry.attempts + 1;
  return {
    ...entry,
    attempts,
    path: 'pending',
    lastError: errors.join('; '),
    nextAttemptAt: ctx.now() + retryDelayMs(attempts, ctx.random, retryAfterMs),
  };
}

/**
 * §7: the sealed envelope to the peer's direct endpoint. Delivered only when the answer carries a
 * receipt that verifies under the DID we addressed, for this envelope, over the exact body; any
 * other answer (another machine, our own daemon at a stale URL, an impostor) is a failure, and
 * the envelope goes to the relay. Returns 'delivered' or why not.
 */
async function deliverDirect(ctx: PeerContext, entry: OutboxEntry, peerUrl: string): Promise<string> {
  const res = await requestJson(
    ctx.fetchFn,
    `${normalizeRelayUrl(peerUrl)}/v1/sync/records`,
    {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-syncropel-federation': '1' },
      body: `{"envelope":${entry.envelope}}`,
    },
    DIRECT_TIMEOUT_MS,
    ctx.now,
  );
  if (res.status !== 200) return res.error ?? `HTTP ${res.status}`;
  const receipt = res.headers?.get(RECEIPT_HEADER) ?? null;
  if (!receipt) return 'HTTP 200 without a receipt (not the peer we addressed)';
  if (!(await verifyReceipt(receipt, entry.id, res.text ?? '', entry.toDid))) return 'the receipt does not verify under the peer’s DID';
  return 'delivered';
}

function delivered(ctx: PeerContext, entry: OutboxEntry, path: 'direct' | 'relay', to: string): OutboxEntry {
  const { lastError: _e, ...rest } = entry;
  return { ...rest, attempts: entry.attempts + 1, path, deliveredTo: to, deliveredAt: ctx.now() };
}

function rejected(entry: OutboxEntry, reason: string): OutboxEntry {
  // §10: other 4xx mark it rejected: kept and shown, never silently dropped.
  return { ...entry, attempts: entry.attempts + 1, path: 'rejected', rejectedReason: reason, lastError: reason };
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
