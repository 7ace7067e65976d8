/**
 * §8 admission and §3 equivocation: which verified records are stored, and why the others are not.
 */
import type { SignedRecord } from '../core';
import { dropCounterKey, type CounterDelta } from '../store/types';
import { isControl, isPairAccept, PAIRS_THREAD } from './config';
import type { PeerContext } from './context';
import { completePairing } from './pairing';
import { grantOfferedThread } from './sharing';

/** A verified record and the peer that vouches for it: its envelope's sender (§8 admission). */
export interface Candidate {
  readonly from: string;
  readonly signed: SignedRecord;
}

/** Why a verified record was not stored (§3, §8); each is counted, per sender too. */
export type DropReason = 'unpaired' | 'ungranted' | 'clock_reused';

export interface Dropped {
  readonly id: string;
  readonly from: string;
  readonly reason: DropReason;
}

const DROP_COUNTER: Record<DropReason, 'records_dropped_unpaired' | 'records_dropped_ungranted' | 'records_refused_clock_reused'> = {
  unpaired: 'records_dropped_unpaired',
  ungranted: 'records_dropped_ungranted',
  clock_reused: 'records_refused_clock_reused',
};

export const DROP_MESSAGE: Record<DropReason, string> = {
  unpaired: 'the sender is not paired with this peer',
  ungranted: 'the thread is not shared with the sender',
  clock_reused: 'another record already holds this (actor, thread, clock)',
};

/**
 * §8 admission: a record on thread T is taken when the peer vouching for it (the envelope's
 * sender) is paired and granted T; its author may be anyone whose signature verified. Control
 * records on th_federation_pairs come from paired peers about themselves, and pairing replies to
 * our own invites from anyone. Configuration is never taken from outside.
 */
export async function admit(ctx: PeerContext, candidates: readonly Candidate[]): Promise<{ accepted: Candidate[]; dropped: Dropped[] }> {
  // Read again only after a pairing reply or a share changed it (one read per record would cost
  // a store round trip per record of a 5,000-record batch).
  let cfg = await ctx.config();
  const accepted: Candidate[] = [];
  const dropped: Dropped[] = [];
  for (const c of candidates) {
    const r = c.signed.record;
    const pair = cfg.pairs.get(c.from);
    if (r.thread === PAIRS_THREAD) {
      if (isPairAccept(r) && r.actor === c.from) {
        if ((await completePairing(ctx, c.signed)) === 'paired') {
          cfg = await ctx.config();
          accepted.push(c);
          continue;
        }
      } else if (pair?.enabled && r.actor === c.from) {
        // A share of a thread new here is granted before the history that follows it in this batch.
        if (isControl(r, 'thread.share') && typeof r.body.thread === 'string' && (await grantOfferedThread(ctx, pair, r.body.thread))) {
          cfg = await ctx.config();
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
 * The store's `clock_reused` refusals (§3) as drops, each with the peer that vouched for it.
 * `refusedIds` lists one ID per refused record in `admitted` order (the store decides inside its
 * write transaction, see PeerStore.ingest), so a record sent twice is matched twice.
 */
export function reusedClockDrops(admitted: readonly Candidate[], refusedIds: readonly string[]): Dropped[] {
  const left = new Map<string, number>();
  for (const id of refusedIds) left.set(id, (left.get(id) ?? 0) + 1);
  const refused: Dropped[] = [];
  for (const c of admitted) {
    const n = left.get(c.signed.id) ?? 0;
    if (n === 0) continue;
    left.set(c.signed.id, n - 1);
    refused.push({ id: c.signed.id, from: c.from, reason: 'clock_reused' });
  }
  return refused;
}

/** The counters a batch's refusals add: per reason, and per reason and sender (doctor names them). */
export function dropCounters(refused: readonly Dropped[], base: CounterDelta): CounterDelta {
  const counters: CounterDelta = { ...base };
  for (const d of refused) {
    counters[DROP_COUNTER[d.reason]] = (counters[DROP_COUNTER[d.reason]] ?? 0) + 1;
    const key = dropCounterKey(d.reason, d.from);
    counters[key] = (counters[key] ?? 0) + 1;
  }
  return counters;
}
