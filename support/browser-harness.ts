/**
 * Browser e2e harness: builds the PWA once, serves it on 127.0.0.1, drives real Chromium with
 * isolated contexts (one per device), and talks CDP to fire service-worker sync events.
 * Everything waits on conditions with deadlines; nothing sleeps.
 */
import { mkdtemp, mkdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { build } from 'vite';
import { chromium, type Browser, type BrowserContext, type CDPSession, type Page, type Worker } from 'playwright-core';
import { ROOT } from './paths';
import { waitFor } from './relay-process';
import { serveStatic, type StaticServer } from './static-server';

export const SCREENSHOT_DIR = join(ROOT, 'test-results', 'screens');
export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

/** Builds the app into a temp dir with `defaultRelay` as the suggested catch-all relay. */
export async function buildApp(defaultRelay: string): Promise<{ dir: string; cleanup(): Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), 'spl-e2e-app-'));
  const previous = { relay: process.env.SPL_DEFAULT_RELAY, nodeEnv: process.env.NODE_ENV };
  process.env.SPL_DEFAULT_RELAY = defaultRelay; // read by vite.config.ts
  process.env.NODE_ENV = 'production'; // vitest sets "test", which would keep workbox's dev logging
  try {
    await build({
      root: ROOT,
      mode: 'production',
      configFile: join(ROOT, 'vite.config.ts'),
      logLevel: 'warn',
      build: { outDir: dir, emptyOutDir: true, sourcemap: false },
    });
  } finally {
    restoreEnv('SPL_DEFAULT_RELAY', previous.relay);
    restoreEnv('NODE_ENV', previous.nodeEnv);
  }
  return { dir, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

function restoreEnv(name: string, value: string | undefined): void {
  if (value === undefined) delete process.env[name];
  else process.env[name] = value;
}

export async function launchBrowser(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
    ],
  });
}

export { serveStatic, type StaticServer, waitFor };

interface SwVersion {
  readonly registrationId: string;
  readonly status: string;
  readonly runningStatus: string;
  readonly controlledClients?: readonly string[];
}

/** A receive-task run as src/browser/platform-meta.ts records it. */
export interface TaskRun {
  readonly at: number;
  readonly trigger: string;
  readonly ingested: number;
  readonly error?: string;
}

/**
 * Runs in the page or the service worker (passed to `evaluate`): the record under `key` in the
 * app's "spl-platform" database. Never creates that database: an upgrade is aborted, so the app's
 * own first open still creates its store.
 */
function readTaskRun(key: string): Promise<TaskRun | undefined> {
  return new Promise((resolve, reject) => {
    const req = indexedDB.open('spl-platform');
    req.onupgradeneeded = () => req.transaction?.abort();
    req.onerror = () => (req.error?.name === 'AbortError' ? resolve(undefined) : reject(new Error(String(req.error))));
    req.onsuccess = () => {
      const db = req.result;
      if (!db.objectStoreNames.contains('meta')) {
        db.close();
        resolve(undefined);
        return;
      }
      const get = db.transaction('meta').objectStore('meta').get(key);
      get.onsuccess = () => {
        db.close();
        resolve(get.result as TaskRun | undefined);
      };
      get.onerror = () => reject(new Error(String(get.error)));
    };
  });
}

/** One device = one browser context (its own IndexedDB, caches, service worker). */
export class Device {
  page: Page | undefined;
  private cdp: CDPSession | undefined;
  private readonly versions = new Map<string, SwVersion>();
  readonly consoleErrors: string[] = [];

  private constructor(
    readonly name: string,
    readonly context: BrowserContext,
    readonly appUrl: string,
  ) {}

  static async create(browser: Browser, name: string, appUrl: string, viewport: { width: number; height: number }): Promise<Device> {
    const context = await browser.newContext({ viewport });
    const device = new Device(name, context, appUrl);
    context.on('console', (m) => {
      if (process.env.E2E_DEBUG) console.log(`[${name}] ${m.type()}: ${m.text()}`);
    });
    await device.grantSyncPermissions(browser);
    return device;
  }

  /** Periodic Background Sync is not in Playwright's permission list: grant it over CDP. */
  private async grantSyncPermissions(browser: Browser): Promise<void> {
    const page = await this.context.newPage();
    const session = await this.context.newCDPSession(page);
    const { targetInfo } = (await session.send('Target.getTargetInfo')) as { targetInfo: { browserContextId?: string } };
    await session.detach();
    await page.close();
    const browserSession = await browser.newBrowserCDPSession();
    await browserSession.send('Browser.grantPermissions', {
      origin: new URL(this.appUrl).origin,
      ...(targetInfo.browserContextId ? { browserContextId: targetInfo.browserContextId } : {}),
      permissions: ['periodicBackgroundSync', 'backgroundSync'],
    });
    await browserSession.detach();
  }

  /** Opens the app (`suffix` = query and/or hash) in a fresh tab and waits for it to render. */
  async open(suffix = ''): Promise<Page> {
    if (this.page && !this.page.isClosed()) await this.close();
    const page = await this.context.newPage();
    page.on('console', (m) => {
      if (m.type() === 'error') this.consoleErrors.push(m.text());
    });
    this.page = page;
    this.versions.clear();
    this.cdp = await this.context.newCDPSession(page);
    this.cdp.on('ServiceWorker.workerVersionUpdated', (e: { versions: (SwVersion & { versionId: string })[] }) => {
      for (const v of e.versions) this.versions.set(v.versionId, v);
    });
    await this.cdp.send('ServiceWorker.enable');
    await page.goto(this.appUrl + suffix);
    await page.locator('.shell').waitFor();
    return page;
  }

  async close(): Promise<void> {
    await this.page?.close();
    this.page = undefined;
    this.cdp = undefined;
  }

  requirePage(): Page {
    if (!this.page || this.page.isClosed()) throw new Error(`${this.name} has no open page`);
    return this.page;
  }

  /** The activated service worker's registration, once there is one. */
  async activeRegistrationId(): Promise<string> {
    return waitFor(
      () => [...this.versions.values()].find((v) => v.status === 'activated')?.registrationId,
      20_000,
      `${this.name}: an activated service worker`,
    );
  }

  /** What the browser does on its own schedule, fired now: a `periodicsync` event in the SW. */
  async dispatchPeriodicSync(tag = 'spl-receive'): Promise<void> {
    const registrationId = await this.activeRegistrationId();
    await this.cdp!.send('ServiceWorker.dispatchPeriodicSyncEvent', { origin: new URL(this.appUrl).origin, registrationId, tag });
  }

  /**
   * Runs `fn` with a CDP session from a blank tab once the app's tab is closed and the activated
   * worker (matching `ready`) is seen, as when the browser wakes the worker in the background.
   */
  private async withNoWindow<T>(
    what: string,
    ready: (v: SwVersion) => boolean,
    fn: (cdp: CDPSession, registrationId: string) => Promise<T>,
  ): Promise<T> {
    await this.close();
    const blank = await this.context.newPage();
    try {
      const cdp = await this.context.newCDPSession(blank);
      const versions = new Map<string, SwVersion>();
      cdp.on('ServiceWorker.workerVersionUpdated', (e: { versions: (SwVersion & { versionId: string })[] }) => {
        for (const v of e.versions) versions.set(v.versionId, v);
      });
      await cdp.send('ServiceWorker.enable');
      const registrationId = await waitFor(
        () => [...versions.values()].find((v) => v.status === 'activated' && ready(v))?.registrationId,
        20_000,
        `${this.name}: ${what}`,
      );
      return await fn(cdp, registrationId);
    } finally {
      await blank.close();
    }
  }

  /** A `periodicsync` fired while no window of the app is open. */
  async dispatchPeriodicSyncWithNoWindow(tag = 'spl-receive'): Promise<void> {
    await this.withNoWindow(
      'an activated service worker, seen from a blank tab',
      () => true,
      async (cdp, registrationId) => {
        await cdp.send('ServiceWorker.dispatchPeriodicSyncEvent', { origin: new URL(this.appUrl).origin, registrationId, tag });
      },
    );
  }

  /**
   * A Web Push message (PROTOCOL.md §5.2) delivered to the service worker while no window of the
   * app is open, as a push service would: `data` is the decrypted payload. Resolves
   * `performance.now()` just before the push was handed over (benchmarks time from there).
   */
  async deliverPushWithNoWindow(data: string): Promise<number> {
    // The closed tab must be gone from the worker's clients too: a window it still sees as
    // visible would (rightly) get no notification.
    return this.withNoWindow(
      'an activated service worker with no window, seen from a blank tab',
      (v) => (v.controlledClients ?? []).length === 0,
      async (cdp, registrationId) => {
        const sentAt = performance.now();
        await cdp.send('ServiceWorker.deliverPushMessage', { origin: new URL(this.appUrl).origin, registrationId, data });
        return sentAt;
      },
    );
  }

  /** The app's running service worker (a push or sync event starts it). */
  private async worker(): Promise<Worker> {
    return this.context.serviceWorkers()[0] ?? (await this.context.waitForEvent('serviceworker'));
  }

  /**
   * The notifications the app's service worker shows now, asked inside the worker itself: no
   * window is opened (a visible window would change what the worker shows).
   *
   * Ask only once the worker has finished showing (`waitForWorkerRun`), never in a polling loop
   * while it may be showing one: Chromium's `getNotifications()` deletes from its notification
   * database every notification created before the call that was not yet on display when the call
   * listed the displayed ones, so a poll landing between `showNotification`'s write and its display
   * loses that notification for good (it stays on screen, but no later call lists it). Measured
   * with Chromium 156 on the 2-core machine under CPU load: 87 of 200 notifications lost with
   * polls running during the show, 0 of 200 with polls started once `showNotification` resolved.
   */
  async workerNotifications(): Promise<{ title: string; body: string; tag: string; data: unknown }[]> {
    const worker = await this.worker();
    return worker.evaluate(async () => {
      const scope = self as unknown as { registration: ServiceWorkerRegistration };
      return (await scope.registration.getNotifications()).map((n) => ({
        title: n.title,
        body: n.body,
        tag: n.tag,
        data: n.data as unknown,
      }));
    });
  }

  /** The notifications the app's service worker shows now (asked from an open app page). */
  async notifications(): Promise<{ title: string; body: string; tag: string }[]> {
    return this.requirePage().evaluate(async () => {
      const registration = await navigator.serviceWorker.ready;
      return (await registration.getNotifications()).map((n) => ({ title: n.title, body: n.body, tag: n.tag }));
    });
  }

  async dispatchSync(tag = 'spl-flush', lastChance = false): Promise<void> {
    const registrationId = await this.activeRegistrationId();
    await this.cdp!.send('ServiceWorker.dispatchSyncEvent', { origin: new URL(this.appUrl).origin, registrationId, tag, lastChance });
  }

  /**
   * Asks the page's service worker for a sweep by message (what the app's sw-client does) and
   * resolves its run record. Messages reach the worker while offline; sync events do not
   * (Chromium defers them until it is back online, even when fired over CDP).
   */
  async workerSweepByMessage(): Promise<{ at: number; trigger: string; ingested: number; error?: string }> {
    return this.requirePage().evaluate(
      () =>
        new Promise<{ at: number; trigger: string; ingested: number; error?: string }>((resolve, reject) => {
          const worker = navigator.serviceWorker.controller;
          if (!worker) {
            reject(new Error('no controlling service worker'));
            return;
          }
          const channel = new MessageChannel();
          channel.port1.onmessage = (
            e: MessageEvent<{ type: string; run?: { at: number; trigger: string; ingested: number; error?: string } }>,
          ) => {
            if (e.data.type === 'sweep-done' && e.data.run) resolve(e.data.run);
          };
          worker.postMessage({ type: 'sync-now' }, [channel.port2]);
        }),
    );
  }

  /** Reads the receive-task run the SW or the page recorded (src/browser/platform-meta.ts), from the open page. */
  async lastRun(by: 'service-worker' | 'page'): Promise<TaskRun | undefined> {
    return this.requirePage().evaluate(readTaskRun, `receive-task:${by}`);
  }

  /**
   * Waits, asking inside the running service worker (no window: a visible one changes what the
   * worker shows), until the worker has recorded a run of `trigger` at or after `since` (epoch
   * ms). The worker records a run after its notification (src/sw/sw.ts), so once the record is
   * there the notification is shown and `workerNotifications()` may be asked.
   */
  async waitForWorkerRun(trigger: string, since: number, timeoutMs = 20_000): Promise<TaskRun> {
    return waitFor(
      async () => {
        const run = await (await this.worker()).evaluate(readTaskRun, 'receive-task:service-worker');
        return run && run.trigger === trigger && run.at >= since ? run : undefined;
      },
      timeoutMs,
      `${this.name}: the service worker's ${trigger} run`,
    );
  }

  async screenshot(name: string): Promise<void> {
    await mkdir(SCREENSHOT_DIR, { recursive: true });
    await this.requirePage().screenshot({ path: join(SCREENSHOT_DIR, `${name}.png`), fullPage: true });
  }
}

/** `relay_queue_size{did="…"}` from the relay's Prometheus text (0 when the series is absent). */
export async function relayQueueSize(relayUrl: string, did: string): Promise<number> {
  const text = await (await fetch(`${relayUrl}/metrics`)).text();
  for (const line of text.split('\n')) {
    if (!line.startsWith('relay_queue_size{')) continue;
    const labels = line.slice(line.indexOf('{') + 1, line.lastIndexOf('}'));
    if (labels.includes(`did="${did}"`)) return Number(line.slice(line.lastIndexOf('}') + 1).trim());
  }
  return 0;
}

// ---- app steps shared by the browser stories ----

/** Onboarding: waits for the suggested relay to be `expectedRelay`, then creates the identity; resolves its DID. */
export async function onboard(device: Device, name: string, expectedRelay: string): Promise<string> {
  const page = device.requirePage();
  await page.getByLabel('Your name, as your other devices will see it').fill(name);
  await waitFor(
    async () => (await page.locator('#onboarding-relay').inputValue()) === expectedRelay,
    10_000,
    `${device.name}: relay ${expectedRelay} suggested`,
  );
  await page.getByRole('button', { name: 'Create my identity' }).click();
  await page.getByRole('navigation', { name: 'Main' }).waitFor();
  await page.goto(`${device.appUrl}#/me`);
  return (await page.getByTestId('my-did').textContent())!.trim();
}

/** Adds a note on the open thread screen and waits for it to be listed. */
export async function writeNote(device: Device, text: string): Promise<void> {
  await addNote(device.requirePage(), text, device.name);
}

/** The same on a page: types until the Add button takes the text, adds it, waits for it to be listed. */
export async function addNote(page: Page, text: string, who = 'page'): Promise<void> {
  const before = await page.locator('[data-testid=records] > li').count();
  const add = page.getByRole('button', { name: 'Add note' });
  // Right after a navigation the screen may still re-render and drop what was typed: type until the button takes it.
  await waitFor(
    async () => {
      await page.getByLabel('Write a note').fill(text);
      return add.isEnabled();
    },
    20_000,
    `${who}: the note editor takes the text`,
  );
  await add.click();
  await page.locator('[data-testid=records] > li').nth(before).waitFor();
}

/** The records the open thread screen lists: text and arrival path. */
export async function recordsShown(device: Device): Promise<{ text: string; path: string }[]> {
  return device
    .requirePage()
    .locator('[data-testid=records] > li')
    .evaluateAll((items) =>
      items.map((li) => ({ text: li.querySelector('.record-text')?.textContent ?? '', path: li.getAttribute('data-path') ?? '' })),
    );
}
