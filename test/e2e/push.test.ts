/**
 * Push wake end to end (PROTOCOL.md §5.2): a real relay, the built PWA in real Chromium, and a
 * Web Push service stand-in on loopback. Headless Chromium reaches no push service, so the phone
 * registers the stand-in's subscription through the app's own set-up path (engine, owner-signed
 * PUT); the relay's push lands at the stand-in (VAPID checked, payload decrypted) and is handed
 * to the phone's service worker over CDP while the app is closed.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser } from 'playwright-core';
import { startPushServiceStandIn, type PushServiceStandIn } from '../../support/push-service';
import { startRelayProcess, type RelayProcess } from '../../support/relay-process';
import {
  buildApp,
  Device,
  launchBrowser,
  onboard,
  recordsShown,
  relayQueueSize,
  serveStatic,
  waitFor,
  writeNote,
  type StaticServer,
} from '../../support/browser-harness';

let relay: RelayProcess;
let standIn: PushServiceStandIn;
let app: { dir: string; cleanup(): Promise<void> };
let server: StaticServer;
let browser: Browser;
let laptop: Device;
let phone: Device;

beforeAll(async () => {
  standIn = await startPushServiceStandIn();
  relay = await startRelayProcess(['--no-rate-limit', '--push-allow-endpoint', standIn.origin]);
  app = await buildApp(relay.url);
  server = await serveStatic(app.dir);
  browser = await launchBrowser();
  laptop = await Device.create(browser, 'laptop', server.url, { width: 1024, height: 800 });
  phone = await Device.create(browser, 'phone', server.url, { width: 412, height: 860 });
  await phone.context.grantPermissions(['notifications'], { origin: new URL(phone.appUrl).origin });
}, 120_000);

afterAll(async () => {
  await browser?.close();
  await server?.close();
  await relay?.stop();
  await standIn?.close();
  await app?.cleanup();
});

describe.sequential('push wake of a closed app', () => {
  it('a push delivered while the app is closed receives the waiting notes, acks them and shows one notification that opens the thread', async () => {
    const a = await laptop.open();
    await onboard(laptop, 'Laptop', relay.url);
    await a.goto(`${laptop.appUrl}#/threads`);
    await a.getByLabel('Title').fill('Woken');
    await a.getByRole('button', { name: 'Create thread' }).click();
    await a.waitForURL(/#\/thread\/th_/);
    const thread = decodeURIComponent(new URL(a.url()).hash.replace('#/thread/', ''));
    await a.goto(`${laptop.appUrl}#/pair`);
    await a.getByRole('button', { name: 'Create invite' }).click();
    const link = await a.getByTestId('invite-link').inputValue();

    const b = await phone.open();
    const phoneDid = await onboard(phone, 'Phone', relay.url);
    await b.goto(link);
    await b.getByTestId('invite-offer').getByRole('button', { name: 'Accept and pair' }).click();
    await b.getByText('Paired with Laptop').waitFor();
    await b.goto(`${phone.appUrl}?e2e=1#/relays`);
    await b.waitForFunction(() => window.__splProbe !== undefined);
    await waitFor(async () => (await b.evaluate(() => window.__splProbe!.pairs())).some((p) => !p.waiting), 20_000, 'phone confirmed');
    await waitFor(async () => (await relayQueueSize(relay.url, phoneDid)) === 0, 15_000, "phone's mailbox drained");

    // The app's own set-up path, with the stand-in's subscription.
    const sub = standIn.subscribe();
    const states = await b.evaluate((s) => window.__splProbe!.setUpPush(s), { endpoint: sub.endpoint, keys: sub.keys });
    expect(states).toEqual([{ relayUrl: relay.url, state: 'registered' }]);
    await b.reload();
    await b.getByTestId('relay-push').getByText('wakes this device').first().waitFor();
    await b.goto(`${phone.appUrl}#/doctor`);
    await b.getByText(/wakes this device when mail arrives/).waitFor();
    await phone.close();

    // The laptop writes while the phone is closed: the relay wakes the phone once.
    await a.goto(`${laptop.appUrl}#/thread/${thread}`);
    for (const n of [1, 2, 3]) await writeNote(laptop, `Wake note ${n}`);
    await waitFor(async () => (await relayQueueSize(relay.url, phoneDid)) === 3, 15_000, '3 envelopes queued for the phone');
    const pushes = await standIn.waitForPushes(1);
    expect(pushes).toHaveLength(1);
    const payload = JSON.parse(pushes[0]!.payload) as { v: number; mailbox: string; queued: number };
    expect(payload).toMatchObject({ v: 1, mailbox: phoneDid });
    expect(payload.queued).toBeGreaterThanOrEqual(1);

    const delivered = Date.now();
    await phone.deliverPushWithNoWindow(pushes[0]!.payload);
    await waitFor(async () => (await relayQueueSize(relay.url, phoneDid)) === 0, 20_000, "the phone's SW acked the waiting envelopes");
    // The worker records its run after the notification; asking for notifications while one is
    // being shown would make Chromium drop it (support/browser-harness.ts workerNotifications).
    expect(await phone.waitForWorkerRun('push', delivered)).toMatchObject({ trigger: 'push', ingested: 3 });
    // Asked inside the worker, with no window open: exactly one notification, opening the thread.
    expect(await phone.workerNotifications()).toEqual([
      { title: 'Syncropel', body: '3 new notes arrived.', tag: 'spl-new-records', data: { thread } },
    ]);

    // Opened with its own receive off: what it shows was stored by the worker.
    const reopened = await phone.open(`?e2e-no-foreground=1#/thread/${thread}`);
    await waitFor(
      async () => (await recordsShown(phone)).filter((r) => /^Wake note \d$/.test(r.text)).length === 3,
      10_000,
      'the phone shows the 3 notes',
    );
    const run = await phone.lastRun('service-worker');
    expect(run).toMatchObject({ trigger: 'push', ingested: 3 });
    await reopened.locator('[data-testid=records]').waitFor();
  }, 120_000);

  it('a push that finds nothing new still shows one quiet notification (Chrome requires one per push)', async () => {
    const page = phone.requirePage();
    await page.evaluate(async () => {
      for (const n of await (await navigator.serviceWorker.ready).getNotifications()) n.close();
    });
    await waitFor(async () => (await phone.workerNotifications()).length === 0, 10_000, 'no notification left');
    const delivered = Date.now();
    await phone.deliverPushWithNoWindow(JSON.stringify({ v: 1, mailbox: 'x', queued: 1 }));
    expect(await phone.waitForWorkerRun('push', delivered)).toMatchObject({ trigger: 'push', ingested: 0 });
    expect(await phone.workerNotifications()).toEqual([
      { title: 'Syncropel', body: 'Checked for new notes: nothing new.', tag: 'spl-new-records', data: null },
    ]);
  });
});
