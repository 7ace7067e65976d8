/**
 * Pairing (§9): invites, the acceptor's reply, the inviter's confirmation or refusal, ending a
 * pair, and the control records that move a pair between those states.
 */
import { createInvite as signInvite, inviteLink, isDepositToken, isHttpUrl, parseInvite, THREAD_RE, type SignedRecord } from '../core';
import type { StoredRecord } from '../store/types';
import { normalizeRelayUrl, pairBody, PAIRS_THREAD, refusalBody, relayBody } from './config';
import type { PeerContext } from './context';
import { sendHistory } from './convergence';
import { depositToken, rotateDepositToken } from './deposit-tokens';
import { sendControl, writeConfig } from './emit';
import { PeerError } from './errors';
import { flushOutbox } from './outbox';
import { receiveRelays, requirePair, setPair } from './settings';
import type { Pair, PairRefusal } from './types';

const DEFAULT_INVITE_TTL_MS = 7 * 24 * 3600 * 1000;

export async function createInvite(
  ctx: PeerContext,
  opts: { threads: readonly string[]; ttlMs?: number },
): Promise<{ link: string; payload: string }> {
  const { me, signer } = ctx.requireIdentity();
  const relays = await receiveRelays(ctx);
  const { peerUrl, appUrl } = ctx.deps;
  if (relays.length === 0 && !peerUrl)
    throw new PeerError('no_route', 'set a relay first: the other device replies through it when you are offline');
  for (const t of opts.threads) if (!THREAD_RE.test(t)) throw new PeerError('invalid_input', `"${t}" is not a thread ID`);
  const invite = await signInvite(
    {
      did: me.did,
      name: me.name,
      relays,
      ...(peerUrl ? { peer_url: peerUrl } : {}),
      deposit_token: await depositToken(ctx),
      threads: opts.threads,
      exp: ctx.now() + (opts.ttlMs ?? DEFAULT_INVITE_TTL_MS),
    },
    signer,
  );
  await ctx.store.putInvite({ nonce: invite.nonce, exp: invite.exp, threads: invite.threads, createdAt: ctx.now() });
  const link = inviteLink(appUrl ?? 'syncropel:', invite);
  return { link, payload: link.slice(link.indexOf('#pair=') + 6) };
}

/** The acceptor's side: pair (waiting for confirmation), and reply through the inviter's relay. */
export async function acceptInvite(ctx: PeerContext, linkOrPayload: string): Promise<Pair> {
  const { me } = ctx.requireIdentity();
  const parsed = await parseInvite(linkOrPayload, ctx.now());
  if (!parsed.ok) throw new PeerError('invalid_invite', parsed.error.message);
  const inv = parsed.value;
  if (inv.did === me.did) throw new PeerError('invalid_invite', 'this invite is your own: open it on the other device');
  const cfg = await ctx.config();
  const [inviterRelay] = inv.relays;
  if (inviterRelay) {
    await writeConfig(ctx, relayBody(normalizeRelayUrl(inviterRelay), inv.did, true));
    // With no relay of our own yet, receive through the inviter's: pairing then just works.
    if (!cfg.relays.get('all')?.enabled) await writeConfig(ctx, relayBody(normalizeRelayUrl(inviterRelay), 'all', true));
  }
  const known = cfg.pairs.get(inv.did);
  const pair: Pair = {
    peerDid: inv.did,
    name: inv.name.trim() || inv.did.slice(0, 24),
    ...(inv.peer_url ? { peerUrl: inv.peer_url } : {}),
    ...(inv.deposit_token ? { depositToken: inv.deposit_token } : {}),
    threads: [...new Set([...(known?.threads ?? []), ...inv.threads])],
    enabled: true,
    // §9: until the inviter confirms, the pair shares nothing beyond the invite's threads.
    ...(known?.enabled && !known.waiting ? {} : { waiting: true }),
  };
  await setPair(ctx, pair);
  const { peerUrl } = ctx.deps;
  await sendControl(ctx, inv.did, {
    topic: 'pair.accept',
    nonce: inv.nonce,
    name: me.name,
    relays: await receiveRelays(ctx),
    ...(peerUrl ? { peer_url: peerUrl } : {}),
    deposit_token: await depositToken(ctx),
  });
  await flushOutbox(ctx).catch(() => undefined); // best effort now; the outbox retries
  return pair;
}

/**
 * The inviter's side of §9: pair with whoever returns our unexpired nonce, once, and confirm; a
 * used or expired invite is refused (once per replier and nonce) and remembered for doctor.
 */
export async function completePairing(ctx: PeerContext, s: SignedRecord): Promise<'paired' | 'refused' | 'unknown'> {
  const r = s.record;
  const b = r.body;
  if (typeof b.nonce !== 'string') return 'unknown';
  const invite = await ctx.store.getInvite(b.nonce);
  if (!invite) return 'unknown';
  const relays = Array.isArray(b.relays) ? b.relays.filter(isHttpUrl).map(normalizeRelayUrl) : [];
  const name = typeof b.name === 'string' && b.name.trim() ? b.name.slice(0, 200) : r.actor.slice(0, 24);
  const now = ctx.now();
  const redeemed = invite.usedBy === r.actor || (await ctx.store.redeemInvite(b.nonce, r.actor, now));
  if (!redeemed) {
    const reason = invite.usedBy === undefined && invite.exp <= now ? 'invite_expired' : 'invite_used';
    const cfg = await ctx.config();
    if (!cfg.refusals.has(`${r.actor} ${b.nonce}`) && !cfg.pairs.get(r.actor)?.enabled) {
      const refusal: PairRefusal = { peerDid: r.actor, name, nonce: b.nonce, reason, ...(relays[0] ? { relay: relays[0] } : {}) };
      await writeConfig(ctx, refusalBody(refusal));
      await sendControl(ctx, r.actor, { topic: 'pair.refuse', nonce: b.nonce, reason });
    }
    return 'refused';
  }
  const existing = (await ctx.config()).pairs.get(r.actor);
  const [firstRelay] = relays;
  if (firstRelay) await writeConfig(ctx, relayBody(firstRelay, r.actor, true));
  if (!existing?.enabled) {
    await setPair(ctx, {
      peerDid: r.actor,
      name,
      ...(isHttpUrl(b.peer_url) ? { peerUrl: b.peer_url } : {}),
      ...(isDepositToken(b.deposit_token) ? { depositToken: b.deposit_token } : {}),
      threads: [...invite.threads],
      enabled: true,
    });
  }
  // A repeated reply from the same peer is confirmed again: its first confirmation may be lost.
  await sendControl(ctx, r.actor, { topic: 'pair.confirm', nonce: b.nonce });
  return 'paired';
}

export async function endPair(ctx: PeerContext, peerDid: string): Promise<void> {
  const pair = await requirePair(ctx, peerDid);
  if (!pair.enabled) return;
  await writeConfig(ctx, pairBody({ ...pair, enabled: false, endReason: 'ended' }));
  // Whatever still waits for this peer stays unsent (deliver refuses it); only the notice goes.
  await sendControl(ctx, peerDid, { topic: 'pair.end' });
  await rotateDepositToken(ctx);
}

/**
 * A control record a paired peer wrote about itself (§8–9, §11). The pairing state changes are
 * idempotent and are applied to redelivered copies too: a crash (a closed tab) between storing a
 * record and acting on it would otherwise lose the act, the redelivery being a duplicate.
 * Measured: a page that navigated right after a batch landed kept its pair "waiting for
 * confirmation" for good. Token updates and history requests act once, when first stored (an old
 * copy must not undo a newer token; a lost history request is simply asked again).
 */
export async function applyControlRecord(ctx: PeerContext, s: StoredRecord, isFresh: boolean): Promise<void> {
  const r = s.signed.record;
  if (r.thread !== PAIRS_THREAD) return;
  const pair = (await ctx.config()).pairs.get(r.actor);
  if (!pair?.enabled) return;
  const topic = r.body.topic;
  if (topic === 'pair.confirm' && pair.waiting) {
    await writeConfig(ctx, pairBody({ ...pair, waiting: false }));
  } else if (topic === 'pair.refuse' && pair.waiting) {
    const reason = typeof r.body.reason === 'string' ? r.body.reason.slice(0, 80) : 'refused';
    await writeConfig(ctx, pairBody({ ...pair, enabled: false, waiting: false, endReason: `refused: ${reason}` }));
  } else if (topic === 'pair.end') {
    await writeConfig(ctx, pairBody({ ...pair, enabled: false, waiting: false, endReason: 'ended_by_peer' }));
    await rotateDepositToken(ctx);
  } else if (isFresh && topic === 'pair.token' && isDepositToken(r.body.deposit_token)) {
    await writeConfig(ctx, pairBody({ ...pair, depositToken: r.body.deposit_token }));
  } else if (isFresh && topic === 'history.request' && Array.isArray(r.body.threads)) {
    // §11: the threads granted to the requester; its list only narrows them.
    const asked = new Set(r.body.threads.filter((t): t is string => typeof t === 'string'));
    await sendHistory(
      ctx,
      pair.peerDid,
      pair.threads.filter((t) => asked.has(t)),
    );
  }
}
