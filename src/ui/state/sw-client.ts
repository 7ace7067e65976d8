/**
 * The page's side of the service worker: registration (workbox-window), periodic background sync
 * where the browser grants it, one-off background sync for the outbox, and messaging.
 */
import { Workbox } from 'workbox-window';
import { FLUSH_SYNC_TAG, isWorkerToPage, PERIODIC_RECEIVE_TAG, type PageToWorker, type WorkerToPage } from '../../browser/sw-messages';
import { periodicSyncPermission } from '../../browser/probes';

/** Periodic Background Sync and Background Sync are not in TypeScript's DOM lib yet. */
interface SyncCapableRegistration extends ServiceWorkerRegistration {
  readonly periodicSync?: { register(tag: string, options: { minInterval: number }): Promise<void> };
  readonly sync?: { register(tag: string): Promise<void> };
}

/** The browser decides the real cadence (site engagement); this is only a lower bound. */
const PERIODIC_MIN_INTERVAL_MS = 15 * 60 * 1000;

export interface WorkerConnection {
  readonly registration: SyncCapableRegistration;
  /** Whether periodic background sync is registered (else timers while visible are the fallback). */
  readonly periodicSync: boolean;
}

export async function connectServiceWorker(onMessage: (msg: WorkerToPage) => void): Promise<WorkerConnection | undefined> {
  if (!('serviceWorker' in navigator)) return undefined;
  navigator.serviceWorker.addEventListener('message', (event: MessageEvent<unknown>) => {
    if (isWorkerToPage(event.data)) onMessage(event.data);
  });
  const dev = __SPL_SW_DEV__;
  const wb = new Workbox(dev ? '/dev-sw.js?dev-sw' : './sw.js', { scope: './', type: dev ? 'module' : 'classic' });
  await wb.register();
  const registration: SyncCapableRegistration = await navigator.serviceWorker.ready;
  return { registration, periodicSync: await registerPeriodicReceive(registration) };
}

async function registerPeriodicReceive(registration: SyncCapableRegistration): Promise<boolean> {
  if (!registration.periodicSync || (await periodicSyncPermission()) !== 'granted') return false;
  try {
    await registration.periodicSync.register(PERIODIC_RECEIVE_TAG, { minInterval: PERIODIC_MIN_INTERVAL_MS });
    return true;
  } catch {
    return false; // e.g. the app is not installed: the browser refuses, timers cover it
  }
}

/** Asks the worker to flush the outbox when connectivity returns, even if this page is gone by then. */
export async function requestBackgroundFlush(conn: WorkerConnection | undefined): Promise<boolean> {
  if (!conn?.registration.sync) return false;
  try {
    await conn.registration.sync.register(FLUSH_SYNC_TAG);
    return true;
  } catch {
    return false;
  }
}

/** One request/answer with the active worker over a MessageChannel. */
export function askWorker(msg: PageToWorker, timeoutMs = 10_000): Promise<WorkerToPage | undefined> {
  const worker = navigator.serviceWorker?.controller;
  if (!worker) return Promise.resolve(undefined);
  return new Promise((resolve) => {
    const channel = new MessageChannel();
    const timer = setTimeout(() => resolve(undefined), timeoutMs);
    channel.port1.onmessage = (event: MessageEvent<unknown>) => {
      clearTimeout(timer);
      resolve(isWorkerToPage(event.data) ? event.data : undefined);
    };
    worker.postMessage(msg, [channel.port2]);
  });
}
