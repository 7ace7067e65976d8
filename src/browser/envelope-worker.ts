/**
 * Dedicated worker: opens (decrypts and verifies) envelopes off the page's main thread.
 * Protocol: `{id, envelopes, me}` in, `{id, results}` out (results as core `openEnvelope` gives them).
 */
import { openEnvelope, type Recipient } from '../core';

interface OpenRequest {
  readonly id: number;
  readonly envelopes: readonly unknown[];
  readonly me: Recipient;
}

const scope = globalThis as unknown as { onmessage: ((e: MessageEvent<OpenRequest>) => void) | null; postMessage(m: unknown): void };

scope.onmessage = (e) => {
  const { id, envelopes, me } = e.data;
  void Promise.all(envelopes.map((env) => openEnvelope(env, me))).then(
    (results) => scope.postMessage({ id, results }),
    (err: unknown) => scope.postMessage({ id, error: err instanceof Error ? err.message : String(err) }),
  );
};
