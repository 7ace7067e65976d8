/**
 * The browser composition root: the page and the service worker open the same IndexedDB peer
 * store and coordinate through Web Locks, so only one of them receives or flushes a relay at a time.
 */
import { openPeerEngine } from '../sync/engine';
import type { PeerApi, PeerEngineDeps } from '../sync/types';
import type { PeerStore, StoredRecord } from '../store/types';
import { openIdbPeerStore } from '../store/idb';
import { offlineAwareFetch } from './offline-fetch';
import { webLock } from './web-lock';

export const PEER_DB_NAME = 'syncropel-peer';

export interface BrowserPeer {
  readonly peer: PeerApi;
  readonly store: PeerStore;
  close(): Promise<void>;
}

export interface BrowserPeerOptions {
  /** The URL invite links open; the page passes origin + pathname, the SW its registration scope. */
  readonly appUrl: string;
  readonly onIngest?: (records: readonly StoredRecord[]) => void;
  readonly beforeAck?: PeerEngineDeps['beforeAck'];
  readonly dbName?: string;
  /**
   * Pages pass a worker-backed opener (the UI thread stays free while a backlog drains); service
   * workers cannot start workers and verify inline.
   */
  readonly openEnvelopes?: PeerEngineDeps['openEnvelopes'];
  /** Give up waiting for a cross-context lock after this long (service worker); default: wait. */
  readonly lockTimeoutMs?: number;
}

export async function openBrowserPeer(options: BrowserPeerOptions): Promise<BrowserPeer> {
  const store = await openIdbPeerStore(options.dbName ?? PEER_DB_NAME);
  const opener = options.openEnvelopes;
  const peer = await openPeerEngine({
    store,
    fetch: offlineAwareFetch(),
    withLock: webLock(options.lockTimeoutMs),
    appUrl: options.appUrl,
    ...(options.onIngest ? { onIngest: options.onIngest } : {}),
    ...(options.beforeAck ? { beforeAck: options.beforeAck } : {}),
    ...(opener ? { openEnvelopes: opener } : {}),
  });
  return { peer, store, close: () => store.close() };
}

/** The app URL of the page: origin + path, without query (test flags) or hash (invites). */
export const pageAppUrl = (loc: Location): string => `${loc.origin}${loc.pathname}`;
