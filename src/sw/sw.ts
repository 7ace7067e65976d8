/**
 * The service worker: offline app shell (workbox precache + navigation fallback) and background
 * federation: `periodicsync` runs a receive sweep, `sync` flushes the outbox, and the page can
 * ask for either by message. Every handler runs inside `event.waitUntil`, so the browser keeps the
 * worker alive until the store has committed.
 */
import { cleanupOutdatedCaches, createHandlerBoundToURL, precacheAndRoute } from 'workbox-precaching';
import { NavigationRoute, registerRoute } from 'workbox-routing';
import { openBrowserPeer } from '../browser/peer';
import { lastReceiveTaskRun, notificationsWanted, recordReceiveTaskRun, type ReceiveTaskRun } from '../browser/platform-meta';
import { setUpPush } from '../browser/push';
import { FLUSH_SYNC_TAG, isPageToWorker, PERIODIC_RECEIVE_TAG, type WorkerToPage } from '../browser/sw-messages';
import { SyncScheduler } from '../sync/scheduler';
import type { StoredRecord } from '../sync/store-types';
import type { ServiceWorkerScope } from './worker-scope';

declare const self: ServiceWorkerScope;

/** A page holding the receive lock is already syncing: don't spend the event's lifetime queued. */
const LOCK_TIMEOUT_MS = 20_000;

precacheAndRoute(self.__WB_MANIFEST);
cleanupOutdatedCaches();
// Any navigation inside the scope (including `#pair=` links and test query flags) gets the shell.
registerRoute(new NavigationRoute(createHandlerBoundToURL('index.html')));

self.addEventListener('install', (event) => {
  event.waitUntil(self.skipWaiting());
});
self.addEventListener('activate', (event) => {
  event.waitUntil(self.clients.claim());
});

self.addEventListener('periodicsync', (event) => {
  if (event.tag === PERIODIC_RECEIVE_TAG) event.waitUntil(sweep('periodicsync'));
});

self.addEventListener('sync', (event) => {
  if (event.tag === FLUSH_SYNC_TAG) event.waitUntil(flushForSync(event.lastChance === true));
});

self.addEventListener('message', (event) => {
  const msg = event.data;
  if (!isPageToWorker(msg)) return;
  const reply = (answer: WorkerToPage): void => {
    const port = event.ports[0];
    if (port) port.postMessage(answer);
    else event.source?.postMessage(answer);
  };
  if (msg.type === 'sync-now') {
    event.waitUntil(sweep('message').then((run) => reply({ type: 'sweep-done', run })));
  } else {
    event.waitUntil(lastReceiveTaskRun('service-worker').then((lastRun) => reply({ type: 'status', ...(lastRun ? { lastRun } : {}) })));
  }
});

self.addEventListener('notificationclick', (event) => {
  event.notification.close();
  const data = event.notification.data as { thread?: unknown } | null;
  event.waitUntil(focusOrOpenApp(typeof data?.thread === 'string' ? data.thread : undefined));
});

/**
 * A relay's push wake (PROTOCOL.md §5.2): receive now, then show exactly one notification —
 * Chrome requires a visible one per push (`userVisibleOnly`), so a push that found nothing new
 * still shows a quiet one. The payload only says that mail waits; the sweep reads it.
 */
self.addEventListener('push', (event) => {
  event.waitUntil(sweep('push', { notifyAlways: true }));
});

/** The browser rotated the subscription: register the new one at the relays (and forget the old). */
self.addEventListener('pushsubscriptionchange', (event) => {
  event.waitUntil(
    (async () => {
      if (!(await notificationsWanted().catch(() => false))) return;
      const opened = await openBrowserPeer({ appUrl: self.registration.scope, lockTimeoutMs: LOCK_TIMEOUT_MS });
      try {
        if (!opened.peer.identity()) return;
        const json = event.newSubscription?.toJSON();
        const given =
          json?.endpoint && json.keys?.p256dh && json.keys.auth
            ? { endpoint: json.endpoint, keys: { p256dh: json.keys.p256dh, auth: json.keys.auth } }
            : undefined;
        await setUpPush(opened.peer, self.registration, given ? { subscription: given } : {});
      } finally {
        await opened.close();
      }
    })(),
  );
});

/**
 * One background receive sweep: the scheduler's bounded pass, a plain poll of every relay (no
 * long-poll: the browser gives us seconds, not minutes), then a flush. The engine is opened per sweep so it always sees the page's latest
 * identity, pairs and relays; Web Locks keep it from overlapping the page's own loop.
 * `notifyAlways` (a push wake): one notification even when nothing new arrived (see `announce`).
 */
async function sweep(trigger: string, opts: { notifyAlways?: boolean } = {}): Promise<ReceiveTaskRun> {
  const ingested: StoredRecord[] = [];
  const seen = new Set<string>();
  let run: ReceiveTaskRun;
  const opened = await openBrowserPeer({
    appUrl: self.registration.scope,
    lockTimeoutMs: LOCK_TIMEOUT_MS,
    // The engine reports a batch once per commit; keep each record once.
    onIngest: (records) => {
      for (const r of records) {
        if (seen.has(r.id)) continue;
        seen.add(r.id);
        ingested.push(r);
      }
    },
  });
  try {
    if (!opened.peer.identity()) {
      run = { at: Date.now(), by: 'service-worker', trigger, ingested: 0, error: 'no identity on this device yet' };
    } else {
      const { received } = await new SyncScheduler({ peer: opened.peer }).runOnce();
      const errors = received.flatMap((r) => (r.error !== undefined ? [`${r.url}: ${r.error}`] : []));
      run = {
        at: Date.now(),
        by: 'service-worker',
        trigger,
        ingested: ingested.length,
        ...(errors.length ? { error: errors.join('; ') } : {}),
      };
    }
  } catch (e) {
    run = { at: Date.now(), by: 'service-worker', trigger, ingested: ingested.length, error: e instanceof Error ? e.message : String(e) };
  } finally {
    await opened.close();
  }
  // Announce first, so the run record marks the end of everything the sweep does (a push wake's
  // notification included: tests wait for the record before asking for notifications); a failed
  // notification must not lose the record of the receive.
  const notifyAlways = opts.notifyAlways === true;
  if (notifyAlways || ingested.length > 0)
    await announce(ingested, { always: notifyAlways }).catch((e: unknown) => console.warn('syncropel: could not announce new records', e));
  await recordReceiveTaskRun(run);
  return run;
}

/** A one-off `sync`: rejecting asks the browser to retry later, so do that while entries are pending. */
async function flushForSync(lastChance: boolean): Promise<void> {
  const opened = await openBrowserPeer({ appUrl: self.registration.scope, lockTimeoutMs: LOCK_TIMEOUT_MS });
  try {
    if (!opened.peer.identity()) return;
    // The browser fires `sync` when connectivity returns: retry every pending envelope now (§10).
    const scheduler = new SyncScheduler({ peer: opened.peer });
    let failure: string | undefined;
    scheduler.on((e) => {
      if (e.type === 'flush-failed') failure = e.error;
    });
    const report = await scheduler.flush({ all: true });
    if (lastChance) return;
    if (!report) throw new Error(`the flush failed: ${failure ?? 'unknown error'}`);
    if (report.pending > 0) throw new Error(`${report.pending} envelope(s) still pending`);
  } finally {
    await opened.close();
  }
}

/**
 * Tells open windows to refresh; notifies only when nobody is looking, permission exists and the
 * setting is on. With `always` (a push wake) exactly one notification is shown whenever the
 * browser allows one: the summary, or a quiet one when nothing new arrived.
 */
async function announce(records: readonly StoredRecord[], opts: { always?: boolean } = {}): Promise<void> {
  const windows = await self.clients.matchAll({ type: 'window', includeUncontrolled: true });
  const threads = [...new Set(records.map((r) => r.thread))];
  if (records.length > 0)
    for (const w of windows) w.postMessage({ type: 'ingested', count: records.length, threads } satisfies WorkerToPage);
  const someoneLooking = windows.some((w) => w.visibilityState === 'visible');
  // Never prompt from the worker: only show when the page obtained permission earlier.
  if (someoneLooking || typeof Notification === 'undefined' || Notification.permission !== 'granted') return;
  const notes = records.filter((r) => r.signed.record.act !== 'LEARN');
  // The person's setting on the Me screen: permission granted but notifications turned off.
  const wanted = await notificationsWanted().catch(() => true);
  if (!opts.always && (notes.length === 0 || !wanted)) return;
  const noteThreads = [...new Set(notes.map((r) => r.thread))];
  if (notes.length === 0) {
    // Chrome shows its own "updated in the background" line otherwise; this one says what happened.
    await self.registration.showNotification('Syncropel', {
      body: 'Checked for new notes: nothing new.',
      tag: 'spl-new-records',
      silent: true,
      icon: 'icons/icon-192.png',
    });
    return;
  }
  await self.registration.showNotification('Syncropel', {
    body: notes.length === 1 ? 'A new note arrived.' : `${notes.length} new notes arrived.`,
    tag: 'spl-new-records',
    icon: 'icons/icon-192.png',
    // One thread: tapping opens it; several: the thread list.
    data: noteThreads.length === 1 ? { thread: noteThreads[0] } : {},
  });
}

async function focusOrOpenApp(thread?: string): Promise<void> {
  const hash = thread !== undefined ? `#/thread/${encodeURIComponent(thread)}` : '';
  const windows = await self.clients.matchAll({ type: 'window', includeUncontrolled: true });
  const first = windows[0];
  if (first?.focus) {
    if (hash && first.navigate) await first.navigate(self.registration.scope + hash).catch(() => undefined);
    await first.focus();
  } else await self.clients.openWindow(self.registration.scope + hash);
}
