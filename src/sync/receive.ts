/**
 * Receiving (§5, §6): per relay, page through our mailbox (long-polling for the first page),
 * ingest each page, ack it only after its records are committed, and send receipts (§11).
 */
import type { ReceiveState } from '../store/types';
import type { PeerContext } from './context';
import { sendReceipts } from './convergence';
import { registerDepositToken } from './deposit-tokens';
import { ingestEnvelopes } from './ingest';
import { receiveRelays } from './settings';
import type { ReceiveOptions, ReceiveReport } from './types';

/** Pages per receive: a bound on one drain, so a relay that never empties cannot hold us forever. */
const MAX_DRAIN_ROUNDS = 200;
/** §5: receive `wait` is at most 30 s. */
const MAX_WAIT_SECONDS = 30;

type ReceiveRelayReport = ReceiveReport['relays'][number];

export async function receive(ctx: PeerContext, opts: ReceiveOptions = {}): Promise<ReceiveReport> {
  ctx.requireIdentity();
  const urls = opts.relays ?? (await receiveRelays(ctx));
  const relays = await Promise.all(urls.map((url) => ctx.withLock(`spl-receive ${url}`, () => receiveFrom(ctx, url, opts))));
  return { relays };
}

async function receiveFrom(ctx: PeerContext, relayUrl: string, opts: ReceiveOptions): Promise<ReceiveRelayReport> {
  const report = { url: relayUrl, envelopes: 0, ingested: 0, duplicates: 0, dropped: 0, acked: 0, remaining: 0 };
  const relay = ctx.relay(relayUrl);
  const limit = Math.min(500, Math.max(1, opts.limit ?? 100));
  let wait = Math.min(MAX_WAIT_SECONDS, Math.max(0, opts.waitSeconds ?? 0));
  const prior = await ctx.store.getReceiveState(relayUrl);
  await registerDepositToken(ctx, relayUrl);
  let error: string | undefined;
  let latency: number | undefined;
  let aborted = false;
  const receipts = new Map<string, string[]>();
  for (let round = 0; round < MAX_DRAIN_ROUNDS; round++) {
    if (opts.signal?.aborted) {
      aborted = true;
      break;
    }
    const page = await relay.receivePage(limit, wait, opts.signal);
    if (!page.ok) {
      if (page.aborted) aborted = true;
      else error = page.error;
      break;
    }
    if (wait === 0) latency = page.latencyMs; // a long-poll's duration is not latency
    report.remaining = page.remaining;
    if (page.envelopes.length === 0) break;
    const batch = await ingestEnvelopes(ctx, page.envelopes, relayUrl);
    for (const [from, ids] of batch.stored) receipts.set(from, [...(receipts.get(from) ?? []), ...ids]);
    report.envelopes += page.envelopes.length;
    report.ingested += batch.ingested;
    report.duplicates += batch.duplicates;
    report.dropped += batch.dropped;
    await ctx.deps.beforeAck?.(batch.ackIds);
    const acked = await relay.ack(batch.ackIds);
    if (acked.error) {
      error = acked.error;
      break;
    }
    report.acked += acked.removed;
    opts.onProgress?.({ relay: relayUrl, envelopes: report.envelopes, ingested: report.ingested, remaining: page.remaining });
    await ctx.store.putReceiveState(receiveState(relayUrl, ctx.now(), page.remaining, undefined, latency, prior));
    if (page.remaining === 0) break;
    wait = 0; // draining a backlog: no long-poll between pages
  }
  // An abort is ours, not the relay's: the state keeps what the last real answer said.
  if (!aborted || report.envelopes > 0)
    await ctx.store.putReceiveState(receiveState(relayUrl, ctx.now(), report.remaining, error, latency, prior));
  await sendReceipts(ctx, receipts);
  return error ? { ...report, error } : report;
}

function receiveState(
  relayUrl: string,
  now: number,
  backlog: number,
  error: string | undefined,
  latency: number | undefined,
  prior: ReceiveState | undefined,
): ReceiveState {
  const lastSuccessAt = error ? prior?.lastSuccessAt : now;
  const lastLatencyMs = latency ?? prior?.lastLatencyMs;
  return {
    relayUrl,
    lastReceiveAt: now,
    backlog,
    ...(error ? { lastError: error } : {}),
    ...(lastSuccessAt !== undefined ? { lastSuccessAt } : {}),
    ...(lastLatencyMs !== undefined ? { lastLatencyMs } : {}),
  };
}
