/**
 * Request-log sampling (issue 14). Measured before: one pino line per request was ~19% of the
 * relay's main thread at 2.6k deposits/s. Under load (more than `threshold` requests in the last
 * second) only one successful request in `rate` is logged, with `sample: rate` on the line so
 * counts can be scaled back; every refused or failed request (status ≥ 400) is always logged,
 * and so is everything while the relay is not under load.
 */
export class RequestLogSampler {
  private windowStart = -Infinity;
  private inWindow = 0;
  private lastWindow = 0;
  private skipped = 0;

  constructor(
    private readonly threshold = 200,
    private readonly rate = 50,
  ) {}

  /** 0: do not log this request; otherwise log it, standing for this many requests. */
  admit(status: number, nowMs: number): number {
    if (nowMs - this.windowStart >= 1000) {
      // A whole idle second (or more) since the window opened: the last second saw `inWindow`.
      this.lastWindow = nowMs - this.windowStart < 2000 ? this.inWindow : 0;
      this.inWindow = 0;
      this.windowStart = nowMs;
    }
    this.inWindow++;
    if (status >= 400 || this.lastWindow < this.threshold) return 1;
    if (++this.skipped < this.rate) return 0;
    this.skipped = 0;
    return this.rate;
  }
}
