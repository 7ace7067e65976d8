/** Messages between the page and the service worker (both directions), shared by the page (src/ui) and the service worker (src/sw). */
import type { ReceiveTaskRun } from './platform-meta';

export const PERIODIC_RECEIVE_TAG = 'spl-receive';
export const FLUSH_SYNC_TAG = 'spl-flush';

/** Page → worker. `sync-now` runs a receive sweep and a flush; `status` asks for the last run. */
export type PageToWorker = { readonly type: 'sync-now' } | { readonly type: 'status' };

/** Worker → page. */
export type WorkerToPage =
  | { readonly type: 'ingested'; readonly count: number; readonly threads: readonly string[] }
  | { readonly type: 'sweep-done'; readonly run: ReceiveTaskRun }
  | { readonly type: 'status'; readonly lastRun?: ReceiveTaskRun };

export function isPageToWorker(v: unknown): v is PageToWorker {
  const type = typeof v === 'object' && v !== null ? (v as { type?: unknown }).type : undefined;
  return type === 'sync-now' || type === 'status';
}

export function isWorkerToPage(v: unknown): v is WorkerToPage {
  const type = typeof v === 'object' && v !== null ? (v as { type?: unknown }).type : undefined;
  return type === 'ingested' || type === 'sweep-done' || type === 'status';
}
