/**
 * What the app asks of th_federation_pairs on every refresh, folded once per engine context: the
 * records peers' receipts name (§11) and their offers of threads (§8, §11). Receipts pile up there
 * for as long as a pair lives, so reading the whole thread per call grew without bound (measured:
 * 5,000 receipt records, 72 ms to read them, every refresh of a thread). The fold is caught up
 * from what arrived since (one index range read, ~0.15 ms when nothing did); the store's count
 * says whether that saw everything (another context writing the same store, a clock stepped
 * back), and sends it back to a full fold when not.
 */
import type { StoredRecord } from '../store/types';
import { isControl, PAIRS_THREAD } from './config';
import type { PeerContext } from './context';

type SortKey = readonly [clock: number, actor: string, id: string];

/** A peer's latest offer of a thread (§11 `thread.share`). */
export interface ShareOffer {
  readonly thread: string;
  readonly fromDid: string;
  readonly title: string | undefined;
  /** The latest offer's place in (clock, actor, ID) order, and the first one's (offers list in that order). */
  readonly latestAt: SortKey;
  readonly firstAt: SortKey;
}

export interface PairsFold {
  /** `<record id> <peer did>` for every record a receipt names. */
  readonly receipts: ReadonlySet<string>;
  /** By `<thread> <peer did>`. */
  readonly shareOffers: ReadonlyMap<string, ShareOffer>;
}

interface Fold {
  total: number;
  /** The latest arrival folded, and the records that arrived at that very ms. */
  upTo: number;
  atUpTo: Set<string>;
  readonly receipts: Set<string>;
  readonly shareOffers: Map<string, ShareOffer>;
}

const folds = new WeakMap<PeerContext, Fold>();

export async function pairsFold(ctx: PeerContext): Promise<PairsFold> {
  const prev = folds.get(ctx);
  if (prev) {
    const since = await ctx.store.recordsArrivedSince(PAIRS_THREAD, prev.upTo);
    const fresh = since.records.filter((r) => !prev.atUpTo.has(r.id));
    if (prev.total + fresh.length === since.total) {
      add(prev, fresh);
      return prev;
    }
  }
  const all = await ctx.store.recordsArrivedSince(PAIRS_THREAD, Number.MIN_SAFE_INTEGER);
  const fold: Fold = { total: 0, upTo: Number.MIN_SAFE_INTEGER, atUpTo: new Set(), receipts: new Set(), shareOffers: new Map() };
  add(fold, all.records);
  folds.set(ctx, fold);
  return fold;
}

/** Adds `records` (in arrival order, none folded before) to `fold`. */
function add(fold: Fold, records: readonly StoredRecord[]): void {
  for (const r of records) {
    fold.total++;
    if (r.receivedAt > fold.upTo) {
      fold.upTo = r.receivedAt;
      fold.atUpTo = new Set();
    }
    if (r.receivedAt === fold.upTo) fold.atUpTo.add(r.id);
    const rec = r.signed.record;
    if (rec.body.topic === 'receipt' && Array.isArray(rec.body.ids)) {
      for (const id of rec.body.ids) if (typeof id === 'string') fold.receipts.add(`${id} ${r.actor}`);
    } else if (isControl(rec, 'thread.share') && typeof rec.body.thread === 'string') {
      const key = `${rec.body.thread} ${rec.actor}`;
      const known = fold.shareOffers.get(key);
      const at: SortKey = [rec.clock, rec.actor, r.id];
      const firstAt = known && sortsBefore(known.firstAt, at) ? known.firstAt : at;
      if (known && sortsBefore(at, known.latestAt)) fold.shareOffers.set(key, { ...known, firstAt });
      else {
        const title = typeof rec.body.title === 'string' ? rec.body.title : undefined;
        fold.shareOffers.set(key, { thread: rec.body.thread, fromDid: rec.actor, title, latestAt: at, firstAt });
      }
    }
  }
}

export const sortsBefore = (a: SortKey, b: SortKey): boolean => (a[0] !== b[0] ? a[0] < b[0] : a[1] !== b[1] ? a[1] < b[1] : a[2] < b[2]);
