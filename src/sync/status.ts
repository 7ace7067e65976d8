/** What the sync screen, `spl status` and doctor show: per peer and per relay, from the store. */
import { PAIRS_THREAD, relayForPeer } from './config';
import type { PeerContext } from './context';
import { receiptedIds } from './convergence';
import { runDoctor } from './doctor';
import { pairs, receiveRelays } from './settings';
import type { DoctorReport, PeerSyncStatus, PlatformFacts, SyncStatus } from './types';
import type { OutboxEntry } from '../store/types';

export async function syncStatus(ctx: PeerContext): Promise<SyncStatus> {
  const cfg = await ctx.config();
  const outbox = await ctx.store.listOutbox();
  const receipted = await receiptedIds(ctx);
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
      state: p.enabled ? (p.waiting ? 'waiting' : 'paired') : (p.endReason ?? 'ended'),
      outbox: counts,
      records: recordStates(mine, p.peerDid, receipted),
      ...(lastFailed?.lastError ? { lastError: lastFailed.lastError } : {}),
      ...(pending.length ? { nextAttemptAt: Math.min(...pending.map((e) => e.nextAttemptAt)) } : {}),
      ...(last ? { lastPath: last.path } : {}),
      ...(relay ? { relay } : {}),
      ...(p.peerUrl ? { peerUrl: p.peerUrl } : {}),
    };
  });
  const states = await ctx.store.listReceiveStates();
  const relays = (await receiveRelays(ctx)).map((url) => {
    const st = states.find((s) => s.relayUrl === url) ?? { relayUrl: url, backlog: 0 };
    const forPairs = [...cfg.relays.values()].filter((r) => r.enabled && r.url === url).map((r) => r.forPair);
    return { ...st, forPairs };
  });
  return { peers, relays, counters: await ctx.store.getCounters() };
}

/** §11: per record sent to a peer (notes, not control records), the furthest it got. */
function recordStates(entries: readonly OutboxEntry[], peerDid: string, receipted: ReadonlySet<string>): PeerSyncStatus['records'] {
  const records = { queued: 0, relay: 0, delivered: 0, rejected: 0 };
  const seen = new Set<string>();
  for (const e of [...entries].reverse()) {
    for (const r of e.records) {
      if (r.record.thread === PAIRS_THREAD || seen.has(r.id)) continue;
      seen.add(r.id);
      if (receipted.has(`${r.id} ${peerDid}`) || e.path === 'direct') records.delivered++;
      else if (e.path === 'relay') records.relay++;
      else if (e.path === 'pending') records.queued++;
      else records.rejected++;
    }
  }
  return records;
}

export async function doctor(ctx: PeerContext, facts: PlatformFacts = {}): Promise<DoctorReport> {
  const me = ctx.identity();
  if (!me) return runDoctor({ identity: undefined, status: undefined, outbox: [], health: [], facts, now: ctx.now() });
  return runDoctor({
    identity: me,
    status: await syncStatus(ctx),
    outbox: await ctx.store.listOutbox(),
    health: await Promise.all((await receiveRelays(ctx)).map((u) => ctx.relay(u).health())),
    facts,
    now: ctx.now(),
    drops: await ctx.store.dropCounts(),
    pairs: await pairs(ctx),
    refusals: [...(await ctx.config()).refusals.values()],
  });
}
