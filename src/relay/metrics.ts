/**
 * Prometheus metrics (PROTOCOL.md §5, names from the guide) on a private prom-client Registry.
 * Queue gauges are computed from the store at scrape time. Per-DID labels reveal who uses the
 * relay, so `--metrics-did-labels` can hash them or drop those series.
 */
import { Counter, Gauge, Registry } from 'prom-client';
import { createHash } from 'node:crypto';
import type { DidLabelMode } from './options';
import type { MailboxStore } from './store';

export type LimitKind = 'queue_full' | 'payload_too_large' | 'rate_limited' | 'unsolicited_quota' | 'storage_full';

/** A short stable pseudonym for a DID: the first 16 hex characters of its SHA-256. */
export const hashDid = (did: string): string => createHash('sha256').update(did).digest('hex').slice(0, 16);

/** How a DID appears in labels and logs under `mode` (undefined: not at all). */
export function didLabel(did: string, mode: DidLabelMode): string | undefined {
  if (mode === 'off') return undefined;
  return mode === 'hash' ? hashDid(did) : did;
}

export class RelayMetrics {
  readonly registry = new Registry();
  readonly deposits: Counter;
  readonly receives: Counter;
  readonly acks: Counter;
  readonly limitHits: Counter<'kind'>;
  readonly expired: Counter;
  private readonly queueSize: Gauge<'did'> | undefined;
  private readonly oldestSeconds: Gauge<'did'> | undefined;
  private readonly uniqueSenders: Gauge;
  private readonly uniqueReceivers: Gauge;

  constructor(
    private readonly store: MailboxStore,
    private readonly didMode: DidLabelMode,
    private readonly topQueues: number,
    waitingLongPolls: () => number = () => 0,
  ) {
    const registers = [this.registry];
    this.deposits = new Counter({ name: 'relay_deposits_total', help: 'Envelopes accepted (202), duplicates included.', registers });
    this.receives = new Counter({ name: 'relay_receives_total', help: 'Successful receive requests.', registers });
    this.acks = new Counter({ name: 'relay_acks_total', help: 'Successful ack requests.', registers });
    this.limitHits = new Counter({
      name: 'relay_rate_limit_hits_total',
      help: 'Requests refused by a relay limit, by kind.',
      labelNames: ['kind'],
      registers,
    });
    for (const kind of ['queue_full', 'payload_too_large', 'rate_limited', 'unsolicited_quota', 'storage_full'] as const) this.limitHits.inc({ kind }, 0);
    this.expired = new Counter({ name: 'relay_envelopes_expired_total', help: 'Envelopes deleted by the expiry sweep.', registers });
    if (didMode !== 'off') {
      this.queueSize = new Gauge({ name: 'relay_queue_size', help: 'Envelopes queued per receiver.', labelNames: ['did'], registers });
      this.oldestSeconds = new Gauge({
        name: 'relay_oldest_envelope_seconds',
        help: 'Age of the oldest queued envelope per receiver, seconds.',
        labelNames: ['did'],
        registers,
      });
    }
    this.uniqueSenders = new Gauge({ name: 'relay_unique_senders', help: 'Distinct senders of queued plain envelopes.', registers });
    this.uniqueReceivers = new Gauge({ name: 'relay_unique_receivers', help: 'Distinct receivers with queued envelopes.', registers });
    // Not in the guide's list; operators (and tests) see how many receivers are parked in a long-poll.
    new Gauge({
      name: 'relay_long_polls_waiting',
      help: 'Receive requests currently held open waiting for a deposit.',
      registers,
      collect() {
        this.set(waitingLongPolls());
      },
    });
  }

  /** The scrape body: gauges refreshed from the store, then every metric in text format. */
  async render(now: number): Promise<string> {
    const stats = await this.store.stats(now, this.topQueues);
    this.queueSize?.reset();
    this.oldestSeconds?.reset();
    for (const m of stats.mailboxes) {
      const did = didLabel(m.did, this.didMode);
      if (did === undefined) continue;
      this.queueSize?.set({ did }, m.queueSize);
      this.oldestSeconds?.set({ did }, Math.max(0, (now - m.oldestDepositedAt) / 1000));
    }
    this.uniqueSenders.set(stats.uniqueSenders);
    this.uniqueReceivers.set(stats.uniqueReceivers);
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}
