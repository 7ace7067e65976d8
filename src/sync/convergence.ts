/**
 * How threads converge for every peer (§11): history on grant, forwarding in groups, receipts,
 * and what each own record's state is at each peer.
 */
import type { SignedRecord } from '../core';
import type { OutboxEntry, StoredRecord } from '../store/types';
import { CONFIG_THREAD, PAIRS_THREAD } from './config';
import type { PeerContext } from './context';
import { sendControl } from './emit';
import { enqueue } from './outbox';
import { pairsFold } from './pairs-fold';
import type { RecordDelivery } from './types';

/** Record IDs per receipt record (64 hex each: ~66 KB at most, well inside an envelope). */
const RECEIPT_IDS = 1000;

/**
 * §11: a thread granted to a peer brings every record held on it, whoever wrote it, the title
 * records in the first envelope; `first` (a share offer) goes before them.
 */
export async function sendHistory(
  ctx: PeerContext,
  peerDid: string,
  threads: readonly string[],
  first: readonly SignedRecord[] = [],
): Promise<void> {
  for (const [i, t] of threads.entries()) {
    const held = await ctx.store.recordsByThread(t);
    const isTitle = (r: StoredRecord) => r.signed.record.body.kind === 'thread';
    const ordered = [...(i === 0 ? first : []), ...[...held.filter(isTitle), ...held.filter((r) => !isTitle(r))].map((r) => r.signed)];
    if (ordered.length) await enqueue(ctx, peerDid, ordered);
  }
}

/**
 * §11 groups: a record first stored here on thread T goes on to every other peer granted T, not
 * back to the peer whose envelope brought it nor to its author. Content-addressed IDs stop loops.
 */
export async function forward(ctx: PeerContext, fresh: readonly StoredRecord[], from: ReadonlyMap<string, string>): Promise<void> {
  const cfg = await ctx.config();
  const byPeer = new Map<string, SignedRecord[]>();
  for (const s of fresh) {
    if (s.thread === PAIRS_THREAD || s.thread === CONFIG_THREAD) continue;
    for (const p of cfg.pairs.values()) {
      if (!p.enabled || !p.threads.includes(s.thread) || p.peerDid === from.get(s.id) || p.peerDid === s.actor) continue;
      byPeer.set(p.peerDid, [...(byPeer.get(p.peerDid) ?? []), s.signed]);
    }
  }
  for (const [did, records] of byPeer) await enqueue(ctx, did, records);
}

/**
 * §11 receipts: one `receipt` record per sender for what a receive stored from it (a direct
 * delivery's signed answer is its own receipt). Batched by the receive: one per drain, not per envelope.
 */
export async function sendReceipts(ctx: PeerContext, stored: ReadonlyMap<string, readonly string[]>): Promise<void> {
  const cfg = await ctx.config();
  for (const [from, ids] of stored) {
    if (!cfg.pairs.get(from)?.enabled || ids.length === 0) continue;
    const unique = [...new Set(ids)];
    for (let i = 0; i < unique.length; i += RECEIPT_IDS)
      await sendControl(ctx, from, { topic: 'receipt', ids: unique.slice(i, i + RECEIPT_IDS) });
  }
}

/** `<record id> <peer did>` for every record a peer's receipt names (§11). */
export async function receiptedIds(ctx: PeerContext): Promise<ReadonlySet<string>> {
  return (await pairsFold(ctx)).receipts;
}

/**
 * Per own record on `thread`, its state at each peer granted the thread (§11): queued (with the
 * next try), at the relay, delivered (a receipt, or a direct delivery's signed answer), or refused.
 */
export async function deliveryStates(ctx: PeerContext, thread: string): Promise<Map<string, RecordDelivery[]>> {
  const { me } = ctx.requireIdentity();
  const cfg = await ctx.config();
  const peers = [...cfg.pairs.values()].filter((p) => p.threads.includes(thread));
  const own = (await ctx.store.recordsByThread(thread)).filter((r) => r.actor === me.did);
  const out = new Map<string, RecordDelivery[]>();
  if (own.length === 0 || peers.length === 0) return out;
  const entries = new Map<string, OutboxEntry>();
  for (const e of await ctx.store.listOutbox()) for (const id of e.recordIds) entries.set(`${id} ${e.toDid}`, e);
  const receipted = await receiptedIds(ctx);
  for (const r of own) {
    const states: RecordDelivery[] = [];
    for (const p of peers) {
      const key = `${r.id} ${p.peerDid}`;
      const e = entries.get(key);
      const base = { peerDid: p.peerDid, name: p.name };
      if (receipted.has(key) || e?.path === 'direct')
        states.push({ ...base, state: 'delivered', ...(e?.deliveredAt ? { at: e.deliveredAt } : {}) });
      else if (e?.path === 'relay') states.push({ ...base, state: 'relay', ...(e.deliveredAt ? { at: e.deliveredAt } : {}) });
      else if (e?.path === 'pending')
        states.push({ ...base, state: 'queued', nextAttemptAt: e.nextAttemptAt, ...(e.lastError ? { error: e.lastError } : {}) });
      else if (e?.path === 'rejected')
        states.push({ ...base, state: 'rejected', ...(e.rejectedReason ? { error: e.rejectedReason } : {}) });
    }
    out.set(r.id, states);
  }
  return out;
}
