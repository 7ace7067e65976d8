/**
 * The deployment of the README's "Deploy" section, end to end: the built app (no relay built in)
 * served by the relay itself under a sub-path (`spl-relay --app <dir> --app-path /syncropel/`),
 * two browser profiles in real Chromium. The app suggests its own origin as the relay, the
 * service worker and manifest stay inside /syncropel/, two devices pair and exchange a note each
 * way, and the app reloads offline from the service worker.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser } from 'playwright-core';
import { startRelayProcess, type RelayProcess } from '../../support/relay-process';
import { buildApp, Device, launchBrowser, onboard, recordsShown, waitFor, writeNote } from '../../support/browser-harness';

const APP_PATH = '/syncropel/';
let app: { dir: string; cleanup(): Promise<void> };
let relay: RelayProcess;
let browser: Browser;
let appUrl: string;
let laptop: Device;
let phone: Device;
/** Same-origin requests outside the app's path and the relay's routes (there should be none). */
const strayRequests: string[] = [];

beforeAll(async () => {
  app = await buildApp(''); // no SPL_DEFAULT_RELAY: the onboarding must find the relay by itself
  relay = await startRelayProcess(['--no-rate-limit', '--app', app.dir, '--app-path', APP_PATH]);
  appUrl = `${relay.url}${APP_PATH}`;
  browser = await launchBrowser();
  laptop = await Device.create(browser, 'laptop', appUrl, { width: 1024, height: 800 });
  phone = await Device.create(browser, 'phone', appUrl, { width: 412, height: 860 });
  for (const device of [laptop, phone]) {
    device.context.on('request', (req) => {
      const u = new URL(req.url());
      if (u.origin !== relay.url) return;
      if (!u.pathname.startsWith(APP_PATH) && u.pathname !== '/health' && !u.pathname.startsWith('/v1/mailbox/'))
        strayRequests.push(u.pathname);
    });
  }
}, 180_000);

afterAll(async () => {
  await browser?.close();
  await relay?.stop();
  await app?.cleanup();
});

describe.sequential('the app served by its relay under /syncropel/', () => {
  let thread: string;

  it('onboards with the relay’s own origin suggested; worker and manifest are scoped to the sub-path', async () => {
    const a = await laptop.open();
    await onboard(laptop, 'Laptop', relay.url);
    const scope = await a.evaluate(async () => (await navigator.serviceWorker.ready).scope);
    expect(scope).toBe(appUrl);
    const manifest = await a.evaluate(async () => {
      const link = document.querySelector<HTMLLinkElement>('link[rel=manifest]');
      if (!link) return undefined;
      const m = (await (await fetch(link.href)).json()) as { start_url: string; scope: string };
      return { start: new URL(m.start_url, link.href).href, scope: new URL(m.scope, link.href).href };
    });
    expect(manifest).toEqual({ start: appUrl, scope: appUrl });

    await a.goto(`${appUrl}#/threads`);
    await a.getByLabel('Title').fill('Deployed');
    await a.getByRole('button', { name: 'Create thread' }).click();
    await a.waitForURL(/#\/thread\/th_/);
    thread = decodeURIComponent(new URL(a.url()).hash.replace('#/thread/', ''));
  });

  it('pairs two profiles through an invite link that opens the same app', async () => {
    const a = laptop.requirePage();
    await a.goto(`${appUrl}#/pair`);
    await a.getByRole('button', { name: 'Create invite' }).click();
    const link = await a.getByTestId('invite-link').inputValue();
    expect(link.startsWith(`${appUrl}#pair=`)).toBe(true);

    const b = await phone.open();
    const phoneDid = await onboard(phone, 'Phone', relay.url);
    await b.goto(link);
    await b.getByTestId('invite-offer').getByRole('button', { name: 'Accept and pair' }).click();
    await b.getByText('Paired with Laptop').waitFor();
    await a.goto(`${appUrl}#/pair`);
    await a.locator(`[data-testid=pairs] li[data-peer-did="${phoneDid}"]`).waitFor({ timeout: 20_000 });
  });

  it('carries a note each way through the relay', async () => {
    const a = laptop.requirePage();
    const b = phone.requirePage();
    await a.goto(`${appUrl}#/thread/${thread}`);
    await writeNote(laptop, 'From the laptop');
    await b.goto(`${appUrl}#/thread/${thread}`);
    await waitFor(
      async () => (await recordsShown(phone)).some((r) => r.text === 'From the laptop' && r.path === 'relay'),
      20_000,
      'phone shows the laptop note',
    );
    await writeNote(phone, 'From the phone');
    await waitFor(
      async () => (await recordsShown(laptop)).some((r) => r.text === 'From the phone' && r.path === 'relay'),
      20_000,
      'laptop shows the phone note',
    );
  });

  it('reloads offline from the service worker with its records', async () => {
    const b = phone.requirePage();
    await waitFor(() => b.evaluate(() => navigator.serviceWorker.controller !== null), 10_000, 'the worker controls the page');
    await phone.context.setOffline(true);
    try {
      await b.reload();
      await waitFor(
        async () => {
          const texts = (await recordsShown(phone)).map((r) => r.text);
          return texts.includes('From the laptop') && texts.includes('From the phone');
        },
        15_000,
        'records shown offline',
      );
    } finally {
      await phone.context.setOffline(false);
    }
    expect(strayRequests).toEqual([]);
  });
});
