/** When the next outbox retry is due (§10), for the scheduler's retry timer. */
import type { PeerStore } from '../store/types';

/**
 * The earliest `nextAttemptAt` of the pending entries, or undefined when none is pending. Only
 * pending entries are read (delivered ones, kept for 7 days for status, are not).
 */
export async function outboxNextDueAt(store: Pick<PeerStore, 'dueOutbox'>): Promise<number | undefined> {
  const pending = await store.dueOutbox(Number.MAX_SAFE_INTEGER);
  return pending.reduce<number | undefined>((min, e) => (min === undefined || e.nextAttemptAt < min ? e.nextAttemptAt : min), undefined);
}
