/** Small HTTP helpers over an injected fetch: timeouts and the relay's error shape. */
import { isObject } from '../core';

export interface HttpOutcome {
  readonly status: number; // 0 for a network error or timeout
  readonly body: unknown;
  /** The body exactly as received (a receipt signs these bytes, §7). */
  readonly text?: string;
  readonly headers?: Headers;
  readonly error?: string;
  readonly retryAfterMs?: number;
  readonly latencyMs: number;
  /** The caller's signal ended the request (not a failure of the other side). */
  readonly aborted?: true;
}

export async function requestJson(
  fetchFn: typeof fetch,
  url: string,
  init: RequestInit,
  timeoutMs: number,
  now: () => number,
  signal?: AbortSignal,
): Promise<HttpOutcome> {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), timeoutMs);
  const onAbort = (): void => controller.abort();
  signal?.addEventListener('abort', onAbort, { once: true });
  if (signal?.aborted) controller.abort();
  const started = now();
  try {
    const res = await fetchFn(url, { ...init, signal: controller.signal });
    const text = await res.text();
    let body: unknown = undefined;
    try {
      body = text ? JSON.parse(text) : undefined;
    } catch {
      body = text;
    }
    const retryAfter = res.headers.get('retry-after');
    const retryAfterMs = retryAfter && /^\d+$/.test(retryAfter) ? Number(retryAfter) * 1000 : undefined;
    const error = res.ok ? undefined : `HTTP ${res.status}${errorMessage(body) ? `: ${errorMessage(body)}` : ''}`;
    return {
      status: res.status,
      body,
      text,
      headers: res.headers,
      latencyMs: now() - started,
      ...(error ? { error } : {}),
      ...(retryAfterMs ? { retryAfterMs } : {}),
    };
  } catch (e) {
    if (signal?.aborted) return { status: 0, body: undefined, error: 'aborted', aborted: true, latencyMs: now() - started };
    const aborted = controller.signal.aborted;
    return {
      status: 0,
      body: undefined,
      error: aborted ? `timed out after ${timeoutMs} ms` : `network error: ${describe(e)}`,
      latencyMs: now() - started,
    };
  } finally {
    clearTimeout(timer);
    signal?.removeEventListener('abort', onAbort);
  }
}

/** An error and its causes ("fetch failed: connect ECONNREFUSED 127.0.0.1:9"): the cause is the useful part. */
function describe(e: unknown): string {
  const parts: string[] = [];
  for (let cur: unknown = e, depth = 0; cur !== undefined && depth < 4; depth++) {
    if (cur instanceof Error) {
      parts.push(cur.message);
      cur = cur.cause;
    } else {
      parts.push(typeof cur === 'string' ? cur : (JSON.stringify(cur) ?? typeof cur));
      break;
    }
  }
  return parts.join(': ');
}

/** `{"error": {"code", "message"}}` (PROTOCOL.md §5) → "code: message". */
export function errorMessage(body: unknown): string | undefined {
  if (isObject(body) && isObject(body.error)) {
    const { code, message } = body.error;
    return [code, message].filter((x) => typeof x === 'string').join(': ') || undefined;
  }
  return undefined;
}

/** §10: 507, 429, 5xx and network errors are retried; other 4xx are final. */
export const isRetryable = (status: number): boolean => status === 0 || status === 429 || status === 507 || status >= 500;
