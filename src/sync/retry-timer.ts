/**
 * The scheduler's one timer for outbox retries (§10): set to when the earliest pending entry is
 * due, instead of polling the outbox. Re-armed after every flush and on refresh; an arming that
 * a later one overtook (both wait for the store) is dropped.
 */
import type { SchedulerClock } from './scheduler-clock';

export class RetryTimer {
  private handle: unknown;
  private at: number | undefined;
  private generation = 0;

  constructor(
    private readonly clock: SchedulerClock,
    private readonly nextDueAt: () => Promise<number | undefined>,
    private readonly onDue: () => void,
    /** The longest it sleeps: another context sharing the store may have queued something. */
    private readonly maxWaitMs: number,
  ) {}

  /** When it fires next; undefined when nothing is pending. */
  get firesAt(): number | undefined {
    return this.at;
  }

  /**
   * Reads the next due time and sets the timer, no sooner than `floorMs` from now (entries still
   * due after a failed flush are retried with backoff, not in a tight loop). A failing read
   * counts as "due now", so it is tried again after the floor.
   */
  async arm(floorMs: number, onError: (msg: string) => void): Promise<void> {
    const generation = ++this.generation;
    let due: number | undefined;
    try {
      due = await this.nextDueAt();
    } catch (e) {
      onError(e instanceof Error ? e.message : String(e));
      due = this.clock.now();
    }
    if (generation !== this.generation) return; // a later arming (or a clear) wins
    this.clearTimer();
    if (due === undefined) return;
    const wait = Math.min(this.maxWaitMs, Math.max(floorMs, due - this.clock.now()));
    this.at = this.clock.now() + wait;
    this.handle = this.clock.setTimeout(() => {
      this.handle = undefined;
      this.at = undefined;
      this.onDue();
    }, wait);
  }

  /** Cancels the timer and any arming in progress. */
  clear(): void {
    this.generation++;
    this.clearTimer();
  }

  private clearTimer(): void {
    if (this.handle !== undefined) this.clock.clearTimeout(this.handle);
    this.handle = undefined;
    this.at = undefined;
  }
}
