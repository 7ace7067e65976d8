/**
 * Engine wiring for browser contexts: the page and the service worker open the same IndexedDB
 * peer store and coordinate through Web Locks, so only one of them receives or flushes at a time.
 *
 * Beside the peer store, a tiny IDB database ("spl-platform") keeps facts only the platform knows,
 * such as when the service worker's background receive task last ran (doctor shows it).
 */
import { openDB, type IDBPDatabase } from 'idb';
import { openPeerEngine } from '../sync/engine';
import type { PeerApi, PeerEngineDeps, PlatformFacts, RelayPushState } from '../sync/types';
import type { PeerStore, StoredRecord } from '../store/types';
import { openIdbPeerStore } from '../store/idb';

export const PEER_DB_NAME = 'syncropel-peer';
const PLATFORM_DB_NAME = 'spl-platform';
const META_STORE = 'meta';

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

/**
 * Web Locks are shared by every page and worker of the origin; without them, run unlocked.
 * `acquireTimeoutMs` bounds the wait (the service worker must not spend its short event lifetime
 * queued behind a page that is already receiving).
 */
export function webLock(acquireTimeoutMs?: number): <T>(name: string, fn: () => Promise<T>) => Promise<T> {
  return <T>(name: string, fn: () => Promise<T>): Promise<T> => {
    const locks = (globalThis.navigator as Navigator | undefined)?.locks;
    if (!locks) return fn();
    const options: LockOptions = acquireTimeoutMs === undefined ? {} : { signal: AbortSignal.timeout(acquireTimeoutMs) };
    // request() resolves with the callback's result; the DOM typings wrap it once more.
    return locks.request(`spl:${name}`, options, () => fn()) as Promise<T>;
  };
}

/**
 * `fetch` whose in-flight requests are aborted when the browser reports going offline. A
 * long-poll otherwise outlives the network change (browsers do not cut open connections), and
 * would still hold the receive lock, or even deliver, after the device said it was offline.
 */
const inFlight = new Set<AbortController>();
let abortsOnOffline = false;

export function offlineAwareFetch(): typeof fetch {
  if (!abortsOnOffline) {
    abortsOnOffline = true;
    globalThis.addEventListener?.('offline', () => {
      for (const c of inFlight) c.abort(new DOMException('the browser went offline', 'NetworkError'));
    });
  }
  return async (input, init) => {
    const controller = new AbortController();
    inFlight.add(controller);
    const signal = init?.signal ? AbortSignal.any([init.signal, controller.signal]) : controller.signal;
    try {
      return await globalThis.fetch(input, { ...init, signal });
    } finally {
      inFlight.delete(controller);
    }
  };
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

// ---- platform facts ---------------------------------------------------------------------------

export interface ReceiveTaskRun {
  readonly at: number;
  readonly by: 'service-worker' | 'page';
  readonly trigger: string;
  readonly ingested: number;
  readonly error?: string;
}

let metaDb: Promise<IDBPDatabase> | undefined;
function meta(): Promise<IDBPDatabase> {
  metaDb ??= openDB(PLATFORM_DB_NAME, 1, {
    upgrade(db) {
      db.createObjectStore(META_STORE);
    },
  });
  return metaDb;
}

const runKey = (by: ReceiveTaskRun['by']): string => `receive-task:${by}`;

export async function recordReceiveTaskRun(run: ReceiveTaskRun): Promise<void> {
  const db = await meta();
  await db.put(META_STORE, run, runKey(run.by));
}

export async function lastReceiveTaskRun(by: ReceiveTaskRun['by']): Promise<ReceiveTaskRun | undefined> {
  const db = await meta();
  const value: unknown = await db.get(META_STORE, runKey(by));
  return isReceiveTaskRun(value) ? value : undefined;
}

function isReceiveTaskRun(v: unknown): v is ReceiveTaskRun {
  return typeof v === 'object' && v !== null && typeof (v as { at?: unknown }).at === 'number';
}

/** Periodic Background Sync permission as the Permissions API reports it. */
export async function periodicSyncPermission(): Promise<NonNullable<PlatformFacts['periodicSync']>> {
  if (typeof ServiceWorkerRegistration === 'undefined' || !('periodicSync' in ServiceWorkerRegistration.prototype)) return 'unsupported';
  try {
    // 'periodic-background-sync' is not in TypeScript's PermissionName union yet.
    const status = await navigator.permissions.query({ name: 'periodic-background-sync' as PermissionName });
    return status.state;
  } catch {
    return 'unsupported';
  }
}

/** Everything doctor needs from the browser. */
export async function browserPlatformFacts(): Promise<PlatformFacts> {
  const [periodicSync, estimate, swRun, pageRun, pushState, wanted] = await Promise.all([
    periodicSyncPermission(),
    navigator.storage?.estimate?.().catch(() => undefined),
    lastReceiveTaskRun('service-worker'),
    lastReceiveTaskRun('page'),
    platformMeta<{ relays: readonly RelayPushState[] }>('push').catch(() => undefined),
    notificationsWanted().catch(() => true),
  ]);
  const permitted = typeof Notification !== 'undefined' && Notification.permission === 'granted';
  const lastRun = Math.max(swRun?.at ?? 0, pageRun?.at ?? 0);
  return {
    periodicSync,
    ...(estimate?.quota !== undefined ? { storage: { usage: estimate.usage ?? 0, quota: estimate.quota } } : {}),
    ...(lastRun > 0 ? { receiveTaskLastRunAt: lastRun } : {}),
    push: { supported: 'PushManager' in globalThis, wanted: wanted && permitted, relays: pushState?.relays ?? [] },
  };
}

/** Reads one platform fact (e.g. push state, src/platform/push.ts). */
export async function platformMeta<T>(key: string): Promise<T | undefined> {
  const db = await meta();
  return (await db.get(META_STORE, key)) as T | undefined;
}

/** Writes (or with `undefined`, deletes) one platform fact. */
export async function setPlatformMeta(key: string, value: unknown): Promise<void> {
  const db = await meta();
  if (value === undefined) await db.delete(META_STORE, key);
  else await db.put(META_STORE, value, key);
}

// ---- notification preference (set on the page, read by the service worker) -------------------

const NOTIFY_KEY = 'notifications';

/** Whether the person wants notifications (default on; the browser permission is asked separately). */
export async function notificationsWanted(): Promise<boolean> {
  const db = await meta();
  return (await db.get(META_STORE, NOTIFY_KEY)) !== false;
}

export async function setNotificationsWanted(on: boolean): Promise<void> {
  const db = await meta();
  await db.put(META_STORE, on, NOTIFY_KEY);
}
