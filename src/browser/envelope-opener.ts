/**
 * An EnvelopeOpener backed by a small pool of dedicated workers (pages only: service workers
 * cannot start workers, and there the engine verifies inline).
 */
import type { EnvelopeOpener } from '../sync/types';

interface Reply {
  readonly id: number;
  readonly results?: Awaited<ReturnType<EnvelopeOpener>>;
  readonly error?: string;
}

/**
 * One worker per core but one, at most four: the page's own thread and the browser's IndexedDB
 * writer need a core too, since verification and writing run at the same time (see the engine's
 * ingestEnvelopes).
 */
export function defaultWorkerCount(cores = globalThis.navigator?.hardwareConcurrency ?? 2): number {
  return Math.min(4, Math.max(1, cores - 1));
}

export function workerEnvelopeOpener(size = defaultWorkerCount()): EnvelopeOpener | undefined {
  if (typeof Worker === 'undefined') return undefined;
  const pending = new Map<number, { resolve: (r: Reply) => void; reject: (e: Error) => void }>();
  const failAll = (why: string) => {
    // Not silent: the engine then verifies inline (slower, on the UI thread), and says why here.
    console.warn(`syncropel: ${why}; verifying on the page thread instead`);
    for (const p of pending.values()) p.reject(new Error(why));
    pending.clear();
  };
  let workers: Worker[];
  try {
    workers = Array.from({ length: size }, () => {
      const w = new Worker(new URL('./envelope-worker.ts', import.meta.url), { type: 'module' });
      w.onmessage = (e: MessageEvent<Reply>) => {
        const p = pending.get(e.data.id);
        pending.delete(e.data.id);
        p?.resolve(e.data);
      };
      w.onerror = () => failAll('envelope worker failed');
      return w;
    });
  } catch {
    return undefined;
  }
  let next = 0;
  const openOn = async (worker: Worker, envelopes: readonly unknown[], me: Parameters<EnvelopeOpener>[1]) => {
    const id = ++next;
    const reply = await new Promise<Reply>((resolve, reject) => {
      pending.set(id, { resolve, reject });
      worker.postMessage({ id, envelopes, me });
    });
    if (!reply.results) throw new Error(reply.error ?? 'envelope worker gave no results');
    return reply.results;
  };
  // Each call is split across every worker, so one batch uses all cores and comes back sooner.
  return async (envelopes, me) => {
    const per = Math.ceil(envelopes.length / workers.length);
    const parts = await Promise.all(workers.map((w, i) => openOn(w, envelopes.slice(i * per, (i + 1) * per), me)));
    return parts.flat();
  };
}
