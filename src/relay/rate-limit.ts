/** Token buckets keyed by client address or sender DID (PROTOCOL.md §5: 429 rate_limited + Retry-After). */
import type { RateLimit } from './options';

interface Bucket {
  tokens: number;
  updatedAt: number;
}

export type TakeResult = { readonly ok: true } | { readonly ok: false; readonly retryAfterSeconds: number };

/** Bounded so a flood of distinct keys cannot grow memory without limit. */
const MAX_KEYS = 100_000;

export class RateLimiter {
  private readonly buckets = new Map<string, Bucket>();

  constructor(private readonly limit: RateLimit) {}

  /** Takes one token for `key` at `now` (ms), or says how long until one is available. */
  take(key: string, now: number): TakeResult {
    let b = this.buckets.get(key);
    if (!b) {
      if (this.buckets.size >= MAX_KEYS) this.prune(now);
      if (this.buckets.size >= MAX_KEYS) this.buckets.clear(); // degrade to fresh buckets rather than grow
      b = { tokens: this.limit.burst, updatedAt: now };
      this.buckets.set(key, b);
    } else {
      b.tokens = Math.min(this.limit.burst, b.tokens + ((now - b.updatedAt) / 1000) * this.limit.rate);
      b.updatedAt = now;
    }
    if (b.tokens >= 1) {
      b.tokens -= 1;
      return { ok: true };
    }
    return { ok: false, retryAfterSeconds: Math.max(1, Math.ceil((1 - b.tokens) / this.limit.rate)) };
  }

  /** Drops buckets that have refilled completely: they are indistinguishable from new ones. */
  prune(now: number): void {
    for (const [key, b] of this.buckets) {
      if (b.tokens + ((now - b.updatedAt) / 1000) * this.limit.rate >= this.limit.burst) this.buckets.delete(key);
    }
  }
}
