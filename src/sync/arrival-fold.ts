/**
 * A value folded from a thread's records once per engine context, then caught up from what arrived
 * since (one index range read, PeerStore.recordsArrivedSince). Records are never deleted, so the
 * store's count says whether a catch-up saw everything: another context may write the same store
 * (page and service worker, two `spl` processes), and a clock may step back so that a new arrival
 * sorts before the newest one folded. When it did not, the thread is folded again from the start.
 */
import type { StoredRecord } from '../store/types';
import type { PeerContext } from './context';

interface Entry<S> {
  readonly state: S;
  /** Records folded. */
  total: number;
  /** The latest arrival folded, and the records that arrived at that very ms. */
  upTo: number;
  atUpTo: Set<string>;
}

/**
 * `fold(ctx, thread)` answers `init()` with every record of `thread` passed to `add` once, in
 * arrival order; at most `maxThreads` threads per context are kept (least recently used go).
 */
export function arrivalFold<S>(
  init: () => S,
  add: (state: S, record: StoredRecord) => void,
  maxThreads = 8,
): (ctx: PeerContext, thread: string) => Promise<S> {
  const perContext = new WeakMap<PeerContext, Map<string, Entry<S>>>();
  const addAll = (entry: Entry<S>, records: readonly StoredRecord[]): void => {
    for (const r of records) {
      entry.total++;
      if (r.receivedAt > entry.upTo) {
        entry.upTo = r.receivedAt;
        entry.atUpTo = new Set();
      }
      if (r.receivedAt === entry.upTo) entry.atUpTo.add(r.id);
      add(entry.state, r);
    }
  };
  return async (ctx, thread) => {
    let entries = perContext.get(ctx);
    if (!entries) perContext.set(ctx, (entries = new Map<string, Entry<S>>()));
    const prev = entries.get(thread);
    if (prev) {
      entries.delete(thread); // refresh its place in the eviction order
      entries.set(thread, prev);
      const since = await ctx.store.recordsArrivedSince(thread, prev.upTo);
      const fresh = since.records.filter((r) => !prev.atUpTo.has(r.id));
      if (prev.total + fresh.length === since.total) {
        addAll(prev, fresh);
        return prev.state;
      }
    }
    const all = await ctx.store.recordsArrivedSince(thread, Number.MIN_SAFE_INTEGER);
    const entry: Entry<S> = { state: init(), total: 0, upTo: Number.MIN_SAFE_INTEGER, atUpTo: new Set() };
    addAll(entry, all.records);
    entries.delete(thread);
    entries.set(thread, entry);
    while (entries.size > maxThreads) entries.delete(entries.keys().next().value!);
    return entry.state;
  };
}
