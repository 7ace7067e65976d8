/**
 * Every delay formula of the peer, in one place: sender retries (PROTOCOL.md §10) and the receive
 * loops' backoff (src/sync/scheduler.ts) are the same jittered, capped exponential backoff with
 * different first steps and caps.
 */
export const RETENTION_MS = 7 * 24 * 3600 * 1000;

export interface BackoffPolicy {
  /** The delay before the first retry, before jitter. */
  readonly firstMs: number;
  /** No delay is ever longer than this. */
  readonly capMs: number;
}

/** §10: first retry ≤ 30 s, cap 15 min. */
export const SENDER_RETRY: BackoffPolicy = { firstMs: 30_000, capMs: 15 * 60_000 };
/**
 * A receive loop whose relay fails: retry soon (a relay restart takes seconds), but a dead relay
 * is asked at most once a minute by each open tab or daemon.
 */
export const RECEIVE_BACKOFF: BackoffPolicy = { firstMs: 1_000, capMs: 60_000 };

/**
 * Delay after `failures` consecutive failures (≥ 1): `firstMs · 2^(failures-1)`, capped, then
 * "equal jitter" (uniform in [base/2, base]), so many clients that failed together spread out
 * but none waits longer than the cap.
 */
export function backoffDelayMs(failures: number, policy: BackoffPolicy, random: () => number): number {
  const base = Math.min(policy.capMs, policy.firstMs * 2 ** Math.min(40, Math.max(0, failures - 1)));
  return Math.round(base * (0.5 + random() / 2));
}

/** Delay before attempt number `attempts + 1`, given `attempts` failures so far (≥ 1); a relay's Retry-After is honoured up to the cap. */
export function retryDelayMs(attempts: number, random: () => number, retryAfterMs?: number): number {
  return Math.max(backoffDelayMs(attempts, SENDER_RETRY, random), Math.min(retryAfterMs ?? 0, SENDER_RETRY.capMs));
}
