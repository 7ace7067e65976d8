/** Sender retries (PROTOCOL.md §10): jittered exponential backoff, first retry ≤ 30 s, cap 15 min. */
export const RETENTION_MS = 7 * 24 * 3600 * 1000;
const FIRST_MS = 30_000;
const CAP_MS = 15 * 60_000;

/** Delay before attempt number `attempts + 1`, given `attempts` failures so far (≥ 1). */
export function retryDelayMs(attempts: number, random: () => number, retryAfterMs?: number): number {
  const base = Math.min(CAP_MS, FIRST_MS * 2 ** Math.max(0, attempts - 1));
  const jittered = Math.round(base * (0.5 + random() / 2)); // "equal jitter": never more than base
  return Math.max(jittered, Math.min(retryAfterMs ?? 0, CAP_MS));
}
