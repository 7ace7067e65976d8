/**
 * The app page's sync: the platform-free scheduler (src/sync/scheduler.ts) fed the browser's
 * online state, running while the page is visible (hidden pages stop long-polling; the service
 * worker's periodic sync and push cover them), and reporting to the screens.
 */
import { SyncScheduler, type OnlineState, type SchedulerEvent, type SchedulerSummary } from '../sync/scheduler';
import type { FlushReport } from '../sync/types';
import type { BrowserPeer } from './peer';
import { recordReceiveTaskRun } from './platform-meta';

export interface PageSyncEvents {
  /** After any receive or flush that may have changed what the screens show. */
  changed(): void;
  /** Connection state for the status line. */
  state(s: SchedulerSummary): void;
  /** A backlog draining (§11): undefined when done. */
  progress?(p: { received: number; remaining: number } | undefined): void;
}

/** `navigator.onLine` and the window's `online`/`offline` events. */
export const browserOnlineState: OnlineState = {
  isOnline: () => navigator.onLine,
  subscribe(listener) {
    const up = (): void => listener(true);
    const down = (): void => listener(false);
    globalThis.addEventListener('online', up);
    globalThis.addEventListener('offline', down);
    return () => {
      globalThis.removeEventListener('online', up);
      globalThis.removeEventListener('offline', down);
    };
  },
};

export class PageSync {
  readonly scheduler: SyncScheduler;
  private readonly onVisibility = (): void => {
    if (document.visibilityState === 'visible') this.start();
    else this.stop();
  };

  constructor(
    opened: Pick<BrowserPeer, 'peer'>,
    private readonly events: PageSyncEvents,
  ) {
    this.scheduler = new SyncScheduler({ peer: opened.peer, online: browserOnlineState });
    this.scheduler.on((e) => this.handle(e));
  }

  /** Another tab may have changed the relays; a focused page re-reads them. */
  private readonly onFocus = (): void => void this.scheduler.refresh();

  /** Begins syncing while the page is visible, and follows visibility from then on. */
  attach(): void {
    document.addEventListener('visibilitychange', this.onVisibility);
    globalThis.addEventListener('focus', this.onFocus);
    if (document.visibilityState === 'visible') this.start();
  }

  /** Starts (once there is an identity; onboarding calls it after creating one). */
  start(): void {
    void this.scheduler.start();
  }

  stop(): void {
    void this.scheduler.stop().then(() => this.events.state(this.scheduler.summary()));
  }

  /** "Sync now": every pending envelope retried, and a receive from each relay not already long-polling. */
  async syncNow(): Promise<void> {
    await this.scheduler.syncNow();
    this.events.changed();
  }

  /** Relay settings changed: follow them, and cut a backoff or offline pause short. */
  kick(): void {
    void this.scheduler.kick();
  }

  /** Delivers due entries now (after a local write) and re-arms the retry timer; undefined if it failed. */
  flush(): Promise<FlushReport | undefined> {
    return this.scheduler.flush();
  }

  private handle(e: SchedulerEvent): void {
    switch (e.type) {
      case 'state':
      case 'loop-started':
      case 'loop-stopped':
        return this.events.state(this.scheduler.summary());
      case 'changed':
        return this.events.changed();
      case 'progress':
        return this.events.progress?.(
          e.progress.remaining > 0 ? { received: e.progress.envelopes, remaining: e.progress.remaining } : undefined,
        );
      case 'received': {
        this.events.progress?.(undefined);
        const { ingested, error } = e.result;
        const run = {
          at: Date.now(),
          by: 'page',
          trigger: 'foreground',
          ingested,
          ...(error !== undefined ? { error: `${e.relay}: ${error}` } : {}),
        } as const;
        void recordReceiveTaskRun(run).catch(() => undefined);
        return;
      }
      default:
        return;
    }
  }
}
