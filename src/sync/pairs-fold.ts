/**
 * What the app asks of th_federation_pairs on every refresh, folded once per engine context: the
 * records peers' receipts name (§11) and their offers of threads (§8, §11). Receipts pile up there
 * for as long as a pair lives, so reading the whole thread per call grew without bound (measured:
 * 5,000 receipt records, 72 ms to read them, every refresh of a thread); caught up (arrival-fold.ts),
 * a call costs ~0.15 ms when nothing arrived.
 */
import { isControl, PAIRS_THREAD } from './config';
import { arrivalFold } from './arrival-fold';
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
  readonly receipts: Set<string>;
  readonly shareOffers: Map<string, ShareOffer>;
}

const foldPairs = arrivalFold<Fold>(
  () => ({ receipts: new Set(), shareOffers: new Map() }),
  (fold, r) => {
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
  },
);

export const pairsFold = (ctx: PeerContext): Promise<PairsFold> => foldPairs(ctx, PAIRS_THREAD);

export const sortsBefore = (a: SortKey, b: SortKey): boolean => (a[0] !== b[0] ? a[0] < b[0] : a[1] !== b[1] ? a[1] < b[1] : a[2] < b[2]);
