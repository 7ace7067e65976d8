/**
 * When the peer talks to the network, on every platform: the app page, the service worker and
 * `spl serve` all drive the engine through this one scheduler.
 *
 * - One long-poll loop per receive relay (PROTOCOL.md §5 `wait`), backing off with the shared
 *   jittered formula (./retry.ts) when its relay fails, and showing its state.
 * - One flush at a time: requests during a flush coalesce into one more run (`all` wins).
 * - No polling of the outbox: a timer is set to the next due retry (§10) and re-armed after every
 *   flush; the network coming back (a relay answering again, `online`) retries everything at once.
 * - Loops follow the config: `refresh()` starts loops for new relays and aborts (through the
 *   receive's AbortSignal) the long-poll of removed ones.
 *
 * Clock, timers, randomness and online state are injected, so tests need no sleeps.
 */
import type { FlushReport, PeerApi, ReceiveProgress, ReceiveReport } from './types';
import { backoffDelayMs, RECEIVE_BACKOFF, SENDER_RETRY, type BackoffPolicy } from './retry';
import { RetryTimer } from './retry-timer';
import { emptyResult, pauseLoop, type Loop } from './relay-loop';
import { alwaysOnline, realClock, type OnlineState, type SchedulerClock } from './scheduler-clock';
import { summarizeStates, type RelayLoopState, type SchedulerEvent, type SchedulerSummary } from './scheduler-events';

export * from './scheduler-clock';
export * from './scheduler-events';

export type SchedulerPeer = Pick<PeerApi, 'identity' | 'receiveRelays' | 'receive' | 'flushOutbox'> & Partial<Pick<PeerApi, 'nextDueAt'>>;
export type RelayReceiveResult = ReceiveReport['relays'][number];

export interface SchedulerOptions {
  readonly peer: SchedulerPeer;
  /** When the earliest pending outbox entry is due; default: the peer's `nextDueAt`. Without either no retry timer is kept. */
  readonly nextDueAt?: () => Promise<number | undefined>;
  /** Long-poll `wait` per receive (§5: 0–30 s). */
  readonly waitSeconds?: number;
  readonly backoff?: BackoffPolicy;
  readonly clock?: SchedulerClock;
  /** Uniform in [0, 1): backoff jitter. */
  readonly random?: () => number;
  readonly online?: OnlineState;
}

export const DEFAULT_LONG_POLL_SECONDS = 25;
/** A relay that answers an empty long-poll at once is not asked again sooner than this. */
export const MIN_CYCLE_MS = 1_000;
/** The retry timer never sleeps longer: another context sharing the store may have queued something. */
const MAX_DUE_WAIT_MS = SENDER_RETRY.capMs;

const message = (e: unknown): string => (e instanceof Error ? e.message : String(e));

export class SyncScheduler {
  private readonly peer: SchedulerPeer;
  private readonly clock: SchedulerClock;
  private readonly random: () => number;
  private readonly online: OnlineState;
  private readonly backoff: BackoffPolicy;
  private readonly waitSeconds: number;
  private readonly listeners = new Set<(e: SchedulerEvent) => void>();
  private readonly loops = new Map<string, Loop>();
  /** Loops aborted but not yet ended. */
  private readonly ending = new Set<Promise<void>>();
  private running = false;
  private unsubscribeOnline: (() => void) | undefined;
  private flushing: Promise<FlushReport | undefined> | undefined;
  private again: { all: boolean } | undefined;
  private flushFailures = 0;
  private reconciling: Promise<void> = Promise.resolve();
  private reconcileQueued: Promise<void> | undefined;
  private readonly retryTimer: RetryTimer | undefined;

  constructor(opts: SchedulerOptions) {
    this.peer = opts.peer;
    this.clock = opts.clock ?? realClock;
    this.random = opts.random ?? Math.random;
    this.online = opts.online ?? alwaysOnline;
    this.backoff = opts.backoff ?? RECEIVE_BACKOFF;
    this.waitSeconds = opts.waitSeconds ?? DEFAULT_LONG_POLL_SECONDS;
    const peer = opts.peer;
    const nextDueAt = opts.nextDueAt ?? (peer.nextDueAt ? () => peer.nextDueAt!() : undefined);
    this.retryTimer = nextDueAt ? new RetryTimer(this.clock, nextDueAt, () => void this.flush(), MAX_DUE_WAIT_MS) : undefined;
  }

  /** Subscribes to events; returns the unsubscribe. */
  on(listener: (e: SchedulerEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  get isRunning(): boolean {
    return this.running;
  }

  /** Each receive loop's state, by relay URL. */
  states(): ReadonlyMap<string, RelayLoopState> {
    return new Map([...this.loops].map(([url, l]) => [url, l.state]));
  }

  /** All loops in one state, for a status line. */
  summary(): SchedulerSummary {
    return summarizeStates(this.states());
  }

  /** When the retry timer fires next (undefined: nothing pending, or not running). */
  nextFlushAt(): number | undefined {
    return this.retryTimer?.firesAt;
  }

  /** Starts the loops (once there is an identity), flushes what is due and arms the retry timer. */
  async start(): Promise<void> {
    if (this.running || !this.peer.identity()) return;
    this.running = true;
    this.unsubscribeOnline = this.online.subscribe((up) => this.onlineChanged(up));
    await this.reconcile();
    void this.flush();
  }

  /** Aborts every long-poll and timer, and resolves once the loops and any flush have ended. */
  async stop(): Promise<void> {
    this.running = false;
    this.unsubscribeOnline?.();
    this.unsubscribeOnline = undefined;
    this.retryTimer?.clear();
    this.again = undefined;
    await this.reconcile(); // not running: every loop is removed
    await Promise.all([...this.ending]);
    await this.flushing;
  }

  /** Config or outbox may have changed (here or in another context): follow the relays, re-arm the timer. */
  async refresh(): Promise<void> {
    await this.reconcile();
    await this.armDueTimer();
  }

  /** Cuts every backoff or offline pause short (relay settings changed, the owner asked), then refreshes. */
  kick(): Promise<void> {
    for (const l of this.loops.values()) l.wake?.();
    return this.refresh();
  }

  /**
   * "Sync now": retry every pending envelope, and receive from each relay whose long-poll is not
   * already waiting there (one that is returns the moment something arrives). Rejects when the
   * flush failed (a relay's failure is in the loop's state instead).
   */
  async syncNow(): Promise<FlushReport | undefined> {
    if (!this.peer.identity()) return undefined;
    let failure: string | undefined;
    const off = this.on((e) => {
      if (e.type === 'flush-failed') failure = e.error;
    });
    try {
      const flushed = this.flush({ all: true });
      const urls = this.running ? [...this.loops.values()].filter((l) => !l.polling).map((l) => l.relay) : await this.peer.receiveRelays();
      await Promise.all(urls.map((url) => this.receiveOnce(url, 0)));
      for (const l of this.loops.values()) l.wake?.();
      const report = await flushed;
      // The owner asked: a flush that could not run is an answer they should see.
      if (!report && failure !== undefined) throw new Error(failure);
      return report;
    } finally {
      off();
    }
  }

  /** One bounded pass without loops (a service worker's event): receive from every relay without waiting, then flush. */
  async runOnce(opts: { all?: boolean } = {}): Promise<{ received: RelayReceiveResult[]; flush: FlushReport | undefined }> {
    if (!this.peer.identity()) return { received: [], flush: undefined };
    const received = await Promise.all((await this.peer.receiveRelays()).map((url) => this.receiveOnce(url, 0)));
    return { received, flush: await this.flush(opts) };
  }

  /** Delivers due entries (`all`: every pending one, §10 "at once when the network comes back"); one flush at a time. */
  flush(opts: { all?: boolean } = {}): Promise<FlushReport | undefined> {
    const all = opts.all === true;
    if (this.flushing) {
      this.again = { all: all || (this.again?.all ?? false) };
      return this.flushing;
    }
    this.flushing = (async () => {
      let next: { all: boolean } | undefined = { all };
      let last: FlushReport | undefined;
      while (next && this.peer.identity()) {
        this.again = undefined;
        try {
          last = await this.peer.flushOutbox({ all: next.all });
          this.flushFailures = 0;
          this.emit({ type: 'flushed', report: last });
          if (last.attempted > 0) this.emit({ type: 'changed' });
        } catch (e) {
          this.flushFailures++;
          this.emit({ type: 'flush-failed', error: message(e) });
        }
        next = this.again;
      }
      return last;
    })().finally(() => {
      this.flushing = undefined;
      void this.armDueTimer();
    });
    return this.flushing;
  }

  // ---- receive loops ----

  private reconcile(): Promise<void> {
    // Serialised, and requests made while one waits share it.
    if (!this.reconcileQueued) {
      this.reconcileQueued = this.reconciling
        .then(() => {
          this.reconcileQueued = undefined;
          return this.reconcileNow();
        })
        .catch((e: unknown) => this.emit({ type: 'error', where: 'reconcile', error: message(e) }));
      this.reconciling = this.reconcileQueued;
    }
    return this.reconcileQueued;
  }

  private async reconcileNow(): Promise<void> {
    const wanted = new Set(this.running && this.peer.identity() ? await this.peer.receiveRelays() : []);
    const removed = [...this.loops.values()].filter((l) => !wanted.has(l.relay));
    for (const l of removed) {
      this.loops.delete(l.relay);
      l.controller.abort(); // ends its long-poll at once (the engine records no error for it)
      // Not awaited here: a loop queued for another tab's receive lock ends only when it gets it,
      // and that must not hold up starting loops again (stop() awaits them).
      const reason = this.running ? 'removed' : 'stopped';
      const ended = l.done.then(() => this.emit({ type: 'loop-stopped', relay: l.relay, reason }));
      this.ending.add(ended);
      void ended.finally(() => this.ending.delete(ended));
    }
    if (!this.running) return;
    for (const url of wanted) {
      if (this.loops.has(url)) continue;
      const loop: Loop = {
        relay: url,
        controller: new AbortController(),
        done: Promise.resolve(),
        state: { kind: 'listening' },
        polling: false,
      };
      this.loops.set(url, loop);
      this.emit({ type: 'loop-started', relay: url });
      loop.done = this.runLoop(loop).catch((e: unknown) => this.emit({ type: 'error', where: 'loop', relay: url, error: message(e) }));
    }
  }

  private async runLoop(loop: Loop): Promise<void> {
    const { signal } = loop.controller;
    let failures = 0;
    while (!signal.aborted) {
      if (!this.online.isOnline()) {
        this.setState(loop, { kind: 'offline' });
        await this.pause(loop, Number.POSITIVE_INFINITY); // `online` wakes it
        continue;
      }
      this.setState(loop, { kind: 'listening' });
      const started = this.clock.now();
      loop.polling = true;
      const result = await this.receiveOnce(loop.relay, this.waitSeconds, signal);
      loop.polling = false;
      if (signal.aborted) break;
      if (result.error !== undefined) {
        if (!this.online.isOnline()) continue; // the device went offline: not the relay's fault
        failures++;
        const delay = backoffDelayMs(failures, this.backoff, this.random);
        this.setState(loop, { kind: 'backing-off', error: result.error, retryAt: this.clock.now() + delay });
        await this.pause(loop, delay);
        continue;
      }
      // §10: a relay answering again, or a peer's records arriving, means the network is back.
      if (failures > 0) this.emit({ type: 'recovered', relay: loop.relay });
      if (failures > 0 || result.ingested > 0) void this.flush({ all: true });
      failures = 0;
      // Records may carry config (relays set on another of the owner's devices) or queue replies;
      // otherwise the config is still re-read once a cycle (another tab may have changed it).
      if (result.envelopes > 0) void this.refresh();
      else void this.reconcile();
      if (result.envelopes === 0 && this.clock.now() - started < MIN_CYCLE_MS)
        await this.pause(loop, MIN_CYCLE_MS - (this.clock.now() - started));
    }
  }

  /** One receive from one relay; never rejects (an exception becomes the result's error). */
  private async receiveOnce(relay: string, waitSeconds: number, signal?: AbortSignal): Promise<RelayReceiveResult> {
    let result: RelayReceiveResult;
    try {
      const report = await this.peer.receive({
        relays: [relay],
        waitSeconds,
        ...(signal ? { signal } : {}),
        onProgress: (progress: ReceiveProgress) => this.emit({ type: 'progress', progress }),
      });
      result = report.relays[0] ?? emptyResult(relay, 'the engine gave no answer for this relay');
    } catch (e) {
      result = emptyResult(relay, message(e));
    }
    if (signal?.aborted) return result;
    this.emit({ type: 'received', relay, result });
    if (result.envelopes > 0) this.emit({ type: 'changed' });
    return result;
  }

  private setState(loop: Loop, state: RelayLoopState): void {
    loop.state = state;
    this.emit({ type: 'state', relay: loop.relay, state });
  }

  private pause(loop: Loop, ms: number): Promise<void> {
    return pauseLoop(loop, this.clock, ms);
  }

  private onlineChanged(up: boolean): void {
    if (!up) {
      for (const l of this.loops.values()) if (!l.polling) this.setState(l, { kind: 'offline' });
      return;
    }
    void this.flush({ all: true });
    for (const l of this.loops.values()) l.wake?.();
  }

  /** Sets the retry timer (running, and given `nextDueAt`, only). */
  private async armDueTimer(): Promise<void> {
    if (!this.running || !this.retryTimer) return;
    const floor = this.flushFailures > 0 ? backoffDelayMs(this.flushFailures, this.backoff, this.random) : MIN_CYCLE_MS;
    await this.retryTimer.arm(floor, (error) => this.emit({ type: 'error', where: 'retry-timer', error }));
    if (!this.running) this.retryTimer.clear(); // stopped while it read the store
  }

  private emit(e: SchedulerEvent): void {
    for (const l of this.listeners) {
      try {
        l(e);
      } catch {
        // A listener's fault (a log line, a UI update) must not stop the loops.
      }
    }
  }
}
