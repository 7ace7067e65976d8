/**
 * /metrics figures of the PostgreSQL store (PROTOCOL.md §5 "Metrics"), cached per process: the
 * top-N query reads the mailboxes table (one row per receiver), which should not run once per
 * scrape per process. Figures older than `maxAgeMs` are refreshed in the background while the
 * scrape gets the cached ones (0: every read queries the database).
 */
import type pg from 'pg';
import type { MailboxStats, StoreStats } from './store';

export class PgStatsCache {
  private cache: { at: number; top: number; value: StoreStats } | undefined;
  private refresh: Promise<StoreStats> | undefined;

  constructor(
    private readonly pool: pg.Pool,
    private readonly maxAgeMs: number,
  ) {}

  /** The cached figures for `topQueues` (refreshed in the background when stale), or undefined. */
  cached(topQueues: number): StoreStats | undefined {
    if (this.maxAgeMs === 0) return undefined;
    const c = this.cache;
    if (!c || c.top !== topQueues) return undefined;
    if (Date.now() - c.at > this.maxAgeMs) void this.refreshStats(topQueues).catch(() => undefined);
    return c.value;
  }

  /** Fresh figures from the database (shared with a refresh already in flight). */
  read(topQueues: number): Promise<StoreStats> {
    return this.maxAgeMs === 0 ? this.computeStats(topQueues) : this.refreshStats(topQueues);
  }

  /** Resolves once no refresh is in flight. */
  async idle(): Promise<void> {
    await this.refresh?.catch(() => undefined);
  }

  private refreshStats(topQueues: number): Promise<StoreStats> {
    this.refresh ??= this.computeStats(topQueues).then(
      (value) => {
        this.cache = { at: Date.now(), top: topQueues, value };
        this.refresh = undefined;
        return value;
      },
      (e: unknown) => {
        this.refresh = undefined;
        throw e;
      },
    );
    return this.refresh;
  }

  /**
   * From the counters (expired-unswept envelopes included, as the interface allows): cost
   * proportional to receivers, not to queued envelopes. The oldest of each named queue is the
   * first entry of its primary-key range.
   */
  private async computeStats(topQueues: number): Promise<StoreStats> {
    const top = await this.pool.query<{ did: string; n: number; oldest: string | null }>({
      name: 'relay_stats_top',
      text:
        'SELECT t.did, t.n, (SELECT e.deposited_at FROM envelopes e WHERE e.mailbox_id = t.id ORDER BY e.deposited_at LIMIT 1) AS oldest ' +
        'FROM (SELECT id, did, admitted + unsolicited AS n FROM mailboxes WHERE admitted + unsolicited > 0 ORDER BY admitted + unsolicited DESC, did LIMIT $1) t ' +
        'ORDER BY t.n DESC, t.did',
      values: [topQueues],
    });
    const totals = await this.pool.query<{ receivers: number; senders: number }>({
      name: 'relay_stats_totals',
      text: 'SELECT (SELECT count(*)::integer FROM mailboxes WHERE admitted + unsolicited > 0) AS receivers, (SELECT count(*)::integer FROM senders WHERE queued > 0) AS senders',
      values: [],
    });
    const mailboxes: MailboxStats[] = top.rows.map((r) => ({ did: r.did, queueSize: r.n, oldestDepositedAt: Number(r.oldest ?? 0) }));
    return { mailboxes, uniqueSenders: totals.rows[0]?.senders ?? 0, uniqueReceivers: totals.rows[0]?.receivers ?? 0 };
  }
}
