/**
 * One long-poll loop per receive relay: receive (which ingests and acks), then again at once; on an
 * error, back off (jittered, capped) before the next try. Stopping aborts the in-flight long-poll
 * through the daemon's fetch wrapper, so removing a relay or shutting down takes effect at once.
 */
import type { PeerEngine } from '../sync/engine';
import type { PeerStore, ReceiveState } from '../store/types';

export const DEFAULT_LONG_POLL_SECONDS = 25;
const BACKOFF_FIRST_MS = 1_000;
const BACKOFF_CAP_MS = 30_000;

export interface ReceiveLoopHooks {
  readonly log: (msg: string) => void;
  /** Called after records arrived or the relay became reachable again: the network is back. */
  readonly onProgress: () => void;
}

export function backoffMs(failures: number, random: () => number = Math.random): number {
  const base = Math.min(BACKOFF_CAP_MS, BACKOFF_FIRST_MS * 2 ** Math.max(0, failures - 1));
  return Math.round(base * (0.5 + random() / 2));
}

function delay(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
    function done() {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
  });
}

export class ReceiveLoop {
  readonly controller = new AbortController();
  private readonly done: Promise<void>;

  constructor(
    readonly relayUrl: string,
    private readonly engine: PeerEngine,
    private readonly store: PeerStore,
    private readonly hooks: ReceiveLoopHooks,
    private readonly waitSeconds: number = DEFAULT_LONG_POLL_SECONDS,
  ) {
    this.done = this.run().catch((e: unknown) => hooks.log(`receive loop for ${relayUrl} crashed: ${e instanceof Error ? e.message : String(e)}`));
  }

  get signal(): AbortSignal {
    return this.controller.signal;
  }

  async stop(): Promise<void> {
    this.controller.abort();
    await this.done;
  }

  private async run(): Promise<void> {
    const { signal } = this.controller;
    let failures = 0;
    let lastLoggedError: string | undefined;
    while (!signal.aborted) {
      const before = await this.store.getReceiveState(this.relayUrl);
      let error: string | undefined;
      let ingested = 0;
      try {
        const report = await this.engine.receive({
          waitSeconds: this.waitSeconds,
          relays: [this.relayUrl],
          // A backlog after a long absence: one progress line per page while the relay holds more.
          onProgress: (p) => {
            if (p.remaining > 0) this.hooks.log(`catching up from ${this.relayUrl}: ${p.envelopes} envelope(s) so far, ${p.remaining} still queued`);
          },
        });
        const r = report.relays[0];
        error = r?.error;
        ingested = r?.ingested ?? 0;
        if (r && r.envelopes > 0) this.hooks.log(`received ${r.envelopes} envelope(s) from ${this.relayUrl}: ${r.ingested} new record(s), ${r.duplicates} duplicate(s), ${r.dropped} dropped, ${r.acked} acked`);
      } catch (e) {
        error = e instanceof Error ? e.message : String(e);
      }
      if (signal.aborted) {
        await this.forgetAbort(before);
        return;
      }
      if (error) {
        failures++;
        if (error !== lastLoggedError) this.hooks.log(`receive from ${this.relayUrl} failed: ${error} (retrying with backoff)`);
        lastLoggedError = error;
        await delay(backoffMs(failures), signal);
        continue;
      }
      if (failures > 0) this.hooks.log(`receive from ${this.relayUrl} works again`);
      if (failures > 0 || ingested > 0) this.hooks.onProgress();
      failures = 0;
      lastLoggedError = undefined;
    }
  }

  /** Our own abort is not a relay failure: drop the error the engine recorded for it. */
  private async forgetAbort(before: ReceiveState | undefined): Promise<void> {
    const after = await this.store.getReceiveState(this.relayUrl);
    if (!after?.lastError) return;
    const { lastError: _aborted, ...rest } = after;
    await this.store.putReceiveState({ ...rest, backlog: before?.backlog ?? rest.backlog, ...(before?.lastError ? { lastError: before.lastError } : {}) });
  }
}
