/** What the scheduler (./scheduler.ts) tells the UI, the service worker and the daemon's log. */
import type { FlushReport, ReceiveProgress, ReceiveReport } from './types';

/** One receive loop: waiting at its relay, waiting out a failure, or waiting for the network. */
export type RelayLoopState =
  | { readonly kind: 'listening' }
  | { readonly kind: 'backing-off'; readonly error: string; readonly retryAt: number }
  | { readonly kind: 'offline' };

/** Every loop in one state, for a status line; `idle` when no loop runs. */
export type SchedulerSummary = { readonly kind: 'idle' } | RelayLoopState;

export type SchedulerEvent =
  | { readonly type: 'loop-started'; readonly relay: string }
  /** `removed`: the relay left the config; `stopped`: the scheduler stopped. */
  | { readonly type: 'loop-stopped'; readonly relay: string; readonly reason: 'removed' | 'stopped' }
  | { readonly type: 'state'; readonly relay: string; readonly state: RelayLoopState }
  /** A receive ended (not one aborted by the scheduler): what came, or why it failed. */
  | { readonly type: 'received'; readonly relay: string; readonly result: ReceiveReport['relays'][number] }
  /** A relay that failed answers again. */
  | { readonly type: 'recovered'; readonly relay: string }
  /** A backlog draining (§11), after each page. */
  | { readonly type: 'progress'; readonly progress: ReceiveProgress }
  | { readonly type: 'flushed'; readonly report: FlushReport }
  | { readonly type: 'flush-failed'; readonly error: string }
  /** Stored data may have changed (records arrived, outbox entries moved): screens re-read. */
  | { readonly type: 'changed' }
  | { readonly type: 'error'; readonly where: 'reconcile' | 'loop' | 'retry-timer'; readonly relay?: string; readonly error: string };

/**
 * Offline wins (it is the device, not a relay); then any relay backing off (its error, named by
 * relay when there are several, and the earliest retry); else listening.
 */
export function summarizeStates(states: ReadonlyMap<string, RelayLoopState>): SchedulerSummary {
  const all = [...states];
  if (all.length === 0) return { kind: 'idle' };
  if (all.some(([, s]) => s.kind === 'offline')) return { kind: 'offline' };
  const failing = all.flatMap(([url, s]) => (s.kind === 'backing-off' ? [{ url, ...s }] : []));
  if (failing.length === 0) return { kind: 'listening' };
  return {
    kind: 'backing-off',
    error: failing.map((f) => `${f.url}: ${f.error}`).join('; '),
    retryAt: Math.min(...failing.map((f) => f.retryAt)),
  };
}
