/**
 * Prometheus metrics (PROTOCOL.md §5, names from the guide) on a private prom-client Registry.
 * Queue gauges come from counters the store keeps as the data changes (never a table scan per
 * scrape), and only the N largest queues get per-DID series. Per-DID labels reveal who uses the
 * relay, so `--metrics-did-labels` can key-hash them or drop those series.
 */
import { Counter, Gauge, Registry } from 'prom-client';
import { createHmac } from 'node:crypto';
import type { DidLabelMode } from './options';
import type { MailboxStore } from './storage/store';

export type LimitKind = 'queue_full' | 'payload_too_large' | 'rate_limited' | 'unsolicited_quota' | 'storage_full' | 'connections';

/** Hex characters kept of a label's HMAC: 64 bits, unique enough for a relay's mailboxes. */
const LABEL_HEX = 16;

/** How a DID appears in labels and logs: as is, as a truncated HMAC-SHA256 under the relay's secret, or not at all. */
export function didLabeler(mode: DidLabelMode, secret: Buffer): (did: string) => string | undefined {
  if (mode === 'off') return () => undefined;
  if (mode === 'plain') return (did) => did;
  return (did) => createHmac('sha256', secret).update(did).digest('hex').slice(0, LABEL_HEX);
}

export interface MetricsSources {
  readonly waitingLongPolls: () => number;
  readonly openConnections: () => number;
  /** Whether the store's background integrity check (SQLite `PRAGMA quick_check`) is still running. */
  readonly integrityCheckRunning: () => boolean;
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
    private readonly label: (did: string) => string | undefined,
    private readonly topQueues: number,
    sources: MetricsSources,
    perDidSeries: boolean,
  ) {
    const registers = [this.registry];
    this.deposits = new Counter({ name: 'relay_deposits_total', help: 'Envelopes accepted (202), duplicates included.', registers });
    this.receives = new Counter({ name: 'relay_receives_total', help: 'Successful receive requests.', registers });
    this.acks = new Counter({ name: 'relay_acks_total', help: 'Successful ack requests.', registers });
    this.limitHits = new Counter({
      name: 'relay_rate_limit_hits_total',
      help: 'Requests (or connections) refused by a relay limit, by kind.',
      labelNames: ['kind'],
      registers,
    });
    for (const kind of ['queue_full', 'payload_too_large', 'rate_limited', 'unsolicited_quota', 'storage_full', 'connections'] as const)
      this.limitHits.inc({ kind }, 0);
    this.expired = new Counter({ name: 'relay_envelopes_expired_total', help: 'Envelopes deleted by the expiry sweep.', registers });
    if (perDidSeries && topQueues > 0) {
      this.queueSize = new Gauge({
        name: 'relay_queue_size',
        help: 'Envelopes queued per receiver (the largest queues only).',
        labelNames: ['did'],
        registers,
      });
      this.oldestSeconds = new Gauge({
        name: 'relay_oldest_envelope_seconds',
        help: 'Age of the oldest queued envelope per receiver, seconds (the largest queues only).',
        labelNames: ['did'],
        registers,
      });
    }
    this.uniqueSenders = new Gauge({ name: 'relay_unique_senders', help: 'Distinct senders of queued plain envelopes.', registers });
    this.uniqueReceivers = new Gauge({ name: 'relay_unique_receivers', help: 'Distinct receivers with queued envelopes.', registers });
    // Not in the guide's list; operators (and tests) see held long-polls and open connections.
    new Gauge({
      name: 'relay_long_polls_waiting',
      help: 'Receive requests currently held open waiting for a deposit.',
      registers,
      collect() {
        this.set(sources.waitingLongPolls());
      },
    });
    new Gauge({
      name: 'relay_integrity_check_running',
      help: '1 while the database integrity check that follows start-up runs (it reads the whole file), else 0.',
      registers,
      collect() {
        this.set(sources.integrityCheckRunning() ? 1 : 0);
      },
    });
    new Gauge({
      name: 'relay_connections_open',
      help: 'Client connections open on the public listener.',
      registers,
      collect() {
        this.set(sources.openConnections());
      },
    });
  }

  /** The scrape body: gauges refreshed from the store's counters, then every metric in text format. */
  async render(now: number): Promise<string> {
    const stats = await this.store.stats(now, this.topQueues);
    this.queueSize?.reset();
    this.oldestSeconds?.reset();
    if (this.queueSize) {
      for (const m of stats.mailboxes) {
        const did = this.label(m.did);
        if (did === undefined) continue;
        this.queueSize.set({ did }, m.queueSize);
        this.oldestSeconds?.set({ did }, Math.max(0, (now - m.oldestDepositedAt) / 1000));
      }
    }
    this.uniqueSenders.set(stats.uniqueSenders);
    this.uniqueReceivers.set(stats.uniqueReceivers);
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}
