/**
 * Dedicated worker for the ingest benchmark's bare-verification ceiling: checks signatures and
 * nothing else. In: `[{sig, msg, key}]`; out: how many verified.
 */
import { verify } from '../src/core';

interface VerifyJob {
  readonly sig: Uint8Array;
  readonly msg: Uint8Array;
  readonly key: Uint8Array;
}

const scope = globalThis as unknown as { onmessage: ((e: MessageEvent<VerifyJob[]>) => void) | null; postMessage(m: unknown): void };

scope.onmessage = (e) => {
  void Promise.all(e.data.map((j) => verify(j.sig, j.msg, j.key))).then((ok) => scope.postMessage(ok.filter(Boolean).length));
};
