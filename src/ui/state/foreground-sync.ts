/**
 * What keeps a visible page in sync: a long-poll receive loop (`receive({waitSeconds: 25})`)
 * that backs off on errors, a flush after every receive, on `online` and on a slow timer (for
 * retries coming due). Hidden pages stop polling; the service worker's periodic sync covers them.
 */
import type { PeerApi, ReceiveReport } from '../../sync/types';
import { recordReceiveTaskRun } from '../../platform/browser';
import { errorText } from './format';

const LONG_POLL_SECONDS = 25;
const FLUSH_EVERY_MS = 15_000;
const BACKOFF_START_MS = 1_000;
const BACKOFF_MAX_MS = 60_000;

export interface ForegroundSyncEvents {
  /** After any receive or flush that may have changed what the screens show. */
  changed(): void;
  /** Connection state for the status line. */
  state(s: ForegroundState): void;
  /** A backlog draining (§11): undefined when done. */
  progress?(p: { received: number; remaining: number } | undefined): void;
}

export type ForegroundState =
  | { readonly kind: 'idle' }
  | { readonly kind: 'listening' }
  | { readonly kind: 'backing-off'; readonly error: string; readonly retryAt: number }
  | { readonly kind: 'offline' };

export class ForegroundSync {
  private running = false;
  private polling = false;
  private wake: (() => void) | undefined;
  private flushTimer: ReturnType<typeof setInterval> | undefined;
  private readonly onOnline = (): void => {
    void this.flush(true);
    this.wake?.();
  };
  private readonly onOffline = (): void => this.events.state({ kind: 'offline' });
  private readonly onVisibility = (): void => {
    if (document.visibilityState === 'visible') this.start();
    else this.stop();
  };

  constructor(
    private readonly peer: PeerApi,
    private readonly events: ForegroundSyncEvents,
  ) {}

  /** Begins syncing while the page is visible, and follows visibility from then on. */
  attach(): void {
    document.addEventListener('visibilitychange', this.onVisibility);
    window.addEventListener('online', this.onOnline);
    window.addEventListener('offline', this.onOffline);
    if (document.visibilityState === 'visible') this.start();
  }

  start(): void {
    if (this.running || !this.peer.identity()) return;
    this.running = true;
    this.flushTimer = setInterval(() => void this.flush(), FLUSH_EVERY_MS);
    void this.flush();
    void this.loop();
  }

  stop(): void {
    this.running = false;
    if (this.flushTimer !== undefined) clearInterval(this.flushTimer);
    this.flushTimer = undefined;
    this.wake?.();
    this.events.state({ kind: 'idle' });
  }

  /**
   * "Sync now": retry every pending envelope at once, and receive unless the long-poll is already
   * waiting at the relay (it returns the moment something arrives, so it is as fresh as it gets).
   */
  async syncNow(): Promise<void> {
    await this.peer.flushOutbox({ all: true });
    if (!this.polling) await this.receiveOnce(0);
    this.wake?.();
    this.events.changed();
  }

  /** Cuts a backoff or offline pause short, e.g. after the relay settings changed. */
  kick(): void {
    this.wake?.();
  }

  /** Delivers due entries; `all` retries every pending one now (§10: at once when the network returns). */
  async flush(all = false): Promise<void> {
    if (!this.peer.identity()) return;
    try {
      const report = await this.peer.flushOutbox({ all });
      if (report.attempted > 0) this.events.changed();
    } catch {
      // Shown on the sync screen from the outbox state; the next timer or `online` retries.
    }
  }

  private async loop(): Promise<void> {
    let backoff = BACKOFF_START_MS;
    while (this.running) {
      if (!navigator.onLine) {
        this.events.state({ kind: 'offline' });
        await this.pause(BACKOFF_MAX_MS); // `online` wakes us early
        continue;
      }
      this.polling = true;
      this.events.state({ kind: 'listening' });
      const error = await this.receiveOnce(LONG_POLL_SECONDS);
      this.polling = false;
      if (!this.running) break;
      if (error === undefined) {
        backoff = BACKOFF_START_MS;
        await this.flush();
        continue;
      }
      // Jittered exponential backoff so a dead relay is not hammered by every open tab.
      const delay = Math.min(BACKOFF_MAX_MS, backoff) * (0.5 + Math.random() / 2);
      backoff = Math.min(BACKOFF_MAX_MS, backoff * 2);
      this.events.state({ kind: 'backing-off', error, retryAt: Date.now() + delay });
      await this.pause(delay);
    }
  }

  /** One receive; returns the error text, if any relay failed. */
  private async receiveOnce(waitSeconds: number): Promise<string | undefined> {
    let report: ReceiveReport;
    try {
      report = await this.peer.receive({
        waitSeconds,
        onProgress: (p) => this.events.progress?.(p.remaining > 0 ? { received: p.envelopes, remaining: p.remaining } : undefined),
      });
    } catch (e) {
      this.events.progress?.(undefined);
      return errorText(e);
    }
    this.events.progress?.(undefined);
    const ingested = report.relays.reduce((n, r) => n + r.ingested, 0);
    const errors = report.relays.flatMap((r) => (r.error ? [`${r.url}: ${r.error}`] : []));
    const error = errors.length ? errors.join('; ') : report.relays.length === 0 ? 'no relay configured' : undefined;
    await recordReceiveTaskRun({ at: Date.now(), by: 'page', trigger: 'foreground', ingested, ...(error ? { error } : {}) }).catch(() => undefined);
    if (report.relays.some((r) => r.envelopes > 0)) this.events.changed();
    return error;
  }

  private pause(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done(): void {
        clearTimeout(timer);
        resolve();
      }
      this.wake = () => {
        this.wake = undefined;
        done();
      };
    });
  }
}
