/** The relay's periodic housekeeping: expired envelopes (§5 retention), limiter state, refusal counts. */
import type { Logger } from 'pino';
import type { MailboxStore } from './storage/store';

export interface SweepTargets {
  readonly intervalSeconds: number;
  /** Connections refused so far over the connection caps (a running total). */
  readonly refusedConnections: () => number;
  /** State that forgets entries older than its window. */
  readonly limiters: readonly ({ prune(now: number): void } | undefined)[];
  readonly store: Pick<MailboxStore, 'sweepExpired'>;
  readonly expired: (count: number) => void;
  readonly logger: Logger;
}

/** Starts the sweep; it never keeps the process alive. Returns the timer to clear on close. */
export function startSweeps(t: SweepTargets): ReturnType<typeof setInterval> {
  let refusedSeen = 0;
  const timer = setInterval(() => {
    const now = Date.now();
    const refused = t.refusedConnections();
    if (refused > refusedSeen) {
      // One line per sweep, not per connection: a flood must not also flood the log.
      t.logger.warn({ refused: refused - refusedSeen }, 'connections refused over --max-connections or --max-connections-per-client');
      refusedSeen = refused;
    }
    for (const l of t.limiters) l?.prune(now);
    t.store.sweepExpired(now).then(t.expired, (err: unknown) => t.logger.error({ err }, 'expiry sweep failed'));
  }, t.intervalSeconds * 1000);
  timer.unref();
  return timer;
}
