/** One relay's receive loop as the scheduler keeps it, and how it waits. */
import type { ReceiveReport } from './types';
import type { SchedulerClock } from './scheduler-clock';
import type { RelayLoopState } from './scheduler-events';

export interface Loop {
  readonly relay: string;
  readonly controller: AbortController;
  done: Promise<void>;
  state: RelayLoopState;
  /** True while its long-poll waits at the relay (the freshest it can be). */
  polling: boolean;
  wake?: (() => void) | undefined;
}

/** Resolves after `ms`, on a wake (`loop.wake`), or when the loop is aborted. */
export function pauseLoop(loop: Loop, clock: SchedulerClock, ms: number): Promise<void> {
  const { signal } = loop.controller;
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const handle = Number.isFinite(ms) ? clock.setTimeout(done, Math.max(0, ms)) : undefined;
    signal.addEventListener('abort', done, { once: true });
    loop.wake = done;
    function done(): void {
      if (handle !== undefined) clock.clearTimeout(handle);
      signal.removeEventListener('abort', done);
      if (loop.wake === done) loop.wake = undefined;
      resolve();
    }
  });
}

/** A receive that reached no relay: the error says why. */
export const emptyResult = (url: string, error: string): ReceiveReport['relays'][number] => ({
  url,
  envelopes: 0,
  ingested: 0,
  duplicates: 0,
  dropped: 0,
  acked: 0,
  remaining: 0,
  error,
});
