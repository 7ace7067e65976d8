/**
 * Which threads each pair shares (§8, §11): the owner shares and stops sharing; a peer's offer of
 * a thread new here is granted back on its own, any other waits for the owner to accept it.
 */
import { pairBody, threadTitle } from './config';
import type { PeerContext } from './context';
import { sendHistory } from './convergence';
import { keepControl, sendControl, writeConfig } from './emit';
import { pairsFold, sortsBefore } from './pairs-fold';
import { PeerError } from './errors';
import { checkShareable, requirePair, setPair, unshareable } from './settings';
import type { Pair, PendingShare } from './types';

export async function shareThread(ctx: PeerContext, thread: string, peerDid: string): Promise<void> {
  checkShareable(thread);
  const pair = await requirePair(ctx, peerDid);
  if (!pair.enabled) throw new PeerError('pair_state', `the pair with ${pair.name} has ended`);
  if (pair.waiting)
    throw new PeerError('pair_state', `${pair.name} has not confirmed the pairing yet: only the invite's threads are shared until then`);
  if (pair.threads.includes(thread)) return;
  const title = threadTitle(await ctx.store.recordsByThread(thread));
  const offer = await keepControl(ctx, { topic: 'thread.share', thread, ...(title !== undefined ? { title } : {}) });
  await writeConfig(ctx, pairBody({ ...pair, threads: [...pair.threads, thread] }));
  // The offer travels first in the history's first envelope: the peer grants the thread back
  // (when it is new there) before it admits the records that follow it.
  await sendHistory(ctx, peerDid, [thread], [offer.signed]);
}

export async function unshareThread(ctx: PeerContext, thread: string, peerDid: string): Promise<void> {
  const pair = await requirePair(ctx, peerDid);
  if (!pair.threads.includes(thread)) return;
  await writeConfig(ctx, pairBody({ ...pair, threads: pair.threads.filter((t) => t !== thread) }));
}

/** Offers from paired peers of threads not (yet) granted to them, in the order they were first made. */
export async function pendingShares(ctx: PeerContext): Promise<PendingShare[]> {
  const cfg = await ctx.config();
  const offers = [...(await pairsFold(ctx)).shareOffers.values()].sort((a, b) => (sortsBefore(a.firstAt, b.firstAt) ? -1 : 1));
  const out: PendingShare[] = [];
  for (const o of offers) {
    const pair = cfg.pairs.get(o.fromDid);
    if (!pair?.enabled || pair.threads.includes(o.thread)) continue;
    out.push({ thread: o.thread, fromDid: o.fromDid, fromName: pair.name, ...(o.title !== undefined ? { title: o.title } : {}) });
  }
  return out;
}

export async function acceptShare(ctx: PeerContext, thread: string): Promise<void> {
  const offers = (await pendingShares(ctx)).filter((p) => p.thread === thread);
  if (offers.length === 0) throw new PeerError('not_found', `no pending share of ${thread}`);
  const cfg = await ctx.config();
  for (const o of offers) {
    const pair = cfg.pairs.get(o.fromDid);
    if (!pair) continue;
    await setPair(ctx, { ...pair, threads: [...pair.threads, thread] });
    // What the peer sent before the grant was dropped as ungranted: ask for it again (§11).
    await sendControl(ctx, o.fromDid, { topic: 'history.request', threads: [thread] });
  }
}

/**
 * §8: a thread a peer shares is granted back on its own only when it is new here (no record held
 * on it, granted to no one); otherwise it waits for the owner (pendingShares / acceptShare).
 */
export async function grantOfferedThread(ctx: PeerContext, pair: Pair, thread: string): Promise<boolean> {
  if (unshareable(thread) || pair.threads.includes(thread)) return false;
  const cfg = await ctx.config();
  const grantedElsewhere = [...cfg.pairs.values()].some((p) => p.threads.includes(thread));
  const held = (await ctx.store.threads()).some((t) => t.thread === thread);
  if (grantedElsewhere || held) return false;
  await writeConfig(ctx, pairBody({ ...pair, threads: [...pair.threads, thread] }));
  return true;
}
