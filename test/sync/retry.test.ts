import { describe, expect, it } from 'vitest';
import { retryDelayMs } from '../../src/sync/retry';
import { isRetryable } from '../../src/sync/http';

describe('sender retries (§10)', () => {
  it('first retry within 30 s, doubling, capped at 15 min, jittered', () => {
    const lo = () => 0;
    const hi = () => 0.999999;
    expect(retryDelayMs(1, hi)).toBeLessThanOrEqual(30_000);
    expect(retryDelayMs(1, lo)).toBe(15_000);
    expect(retryDelayMs(2, hi)).toBeLessThanOrEqual(60_000);
    expect(retryDelayMs(2, lo)).toBe(30_000);
    expect(retryDelayMs(30, hi)).toBeLessThanOrEqual(15 * 60_000);
    expect(retryDelayMs(30, lo)).toBe(7.5 * 60_000);
  });

  it('honours Retry-After up to the cap', () => {
    expect(retryDelayMs(1, () => 0, 120_000)).toBe(120_000);
    expect(retryDelayMs(1, () => 0, 10 * 3600_000)).toBe(15 * 60_000);
  });

  it('retries 507, 429, 5xx and network errors; other 4xx are final', () => {
    for (const s of [0, 429, 500, 502, 503, 507]) expect(isRetryable(s)).toBe(true);
    for (const s of [400, 401, 403, 404, 413, 415, 422]) expect(isRetryable(s)).toBe(false);
  });
});
