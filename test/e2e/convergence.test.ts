/**
 * Every peer on a thread ends up with every record (PROTOCOL.md §11), as people use it: two
 * browsers (laptop, phone: real IndexedDB and service workers in Chromium) and one headless
 * `spl serve`, paired as a chain laptop–phone–cli, write on one thread while one of them is
 * offline at a time. Also: sharing an existing thread with a pair brings its history and title;
 * receipts move an own note from "at the relay" to "delivered", and a direct delivery is
 * delivered at once.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser } from 'playwright-core';
import { parseInvite } from '../../src/core';
import { startRelayProcess, type RelayProcess } from '../../support/relay-process';
import { removeHomes, spl, startAdvertisedServe, tempHome, type ServeProcess } from '../cli/helpers';
import {
  buildApp,
  Device,
  launchBrowser,
  onboard,
  serveStatic,
  waitFor,
  writeNote,
  type StaticServer,
} from '../../support/browser-harness';

let relay: RelayProcess;
let app: { dir: string; cleanup(): Promise<void> };
let web: StaticServer;
let browser: Browser;
let laptop: Device;
let phone: Device;
let cliHome: string;
let cli: ServeProcess | undefined;
let cliPort: number; // the URL it advertised when it paired stays its URL across restarts
let trip: string; // the shared thread
const TEXTS = ['laptop 1', 'laptop 2', 'cli 1', 'phone 1', 'cli 2'];

async function browserIds(device: Device, thread: string): Promise<string[]> {
  const page = device.requirePage();
  await page.waitForFunction(() => window.__splProbe !== undefined);
  return (await page.evaluate((t) => window.__splProbe!.recordIds(t), thread)).sort();
}

async function cliIds(thread: string): Promise<string[]> {
  const out = await spl(cliHome, 'records', '--thread', thread, '--json');
  return (JSON.parse(out.stdout) as { id: string }[]).map((r) => r.id).sort();
}

async function cliTexts(thread: string): Promise<string[]> {
  const out = await spl(cliHome, 'records', '--thread', thread, '--json');
  return (JSON.parse(out.stdout) as { record: { body: { text?: string } } }[]).map((r) => r.record.body.text ?? '');
}

/** Creates a thread on the open page; resolves its ID. */
async function createThread(device: Device, title: string, shareWithAll: boolean): Promise<string> {
  const page = device.requirePage();
  await page.goto(`${device.appUrl}#/threads`);
  await page.getByLabel('Title').fill(title);
  if (!shareWithAll) for (const box of await page.locator('fieldset input[type=checkbox]').all()) await box.uncheck();
  await page.getByRole('button', { name: 'Create thread' }).click();
  await page.waitForURL(/#\/thread\/th_/);
  return decodeURIComponent(new URL(page.url()).hash.replace('#/thread/', ''));
}

/** Creates an invite on the Pair screen as a person would (the threads ticked by default); checks it grants `threads`. */
async function invite(device: Device, threads: readonly string[]): Promise<string> {
  const page = device.requirePage();
  await page.goto(`${device.appUrl}#/pair`);
  await page.getByRole('button', { name: 'Create invite' }).click();
  const link = await page.getByTestId('invite-link').inputValue();
  const parsed = await parseInvite(link, Date.now());
  expect(parsed.ok && parsed.value.threads, 'the threads the invite grants').toEqual(threads);
  return link;
}

const openThread = (device: Device, thread: string) => device.open(`?e2e=1#/thread/${thread}`);
const deliveryOf = async (device: Device, text: string): Promise<string | null> =>
  device.requirePage().locator('[data-testid=records] > li', { hasText: text }).getByTestId('delivery').getAttribute('data-state');

beforeAll(async () => {
  relay = await startRelayProcess(['--no-rate-limit']);
  app = await buildApp(relay.url);
  web = await serveStatic(app.dir);
  browser = await launchBrowser();
  laptop = await Device.create(browser, 'laptop', web.url, { width: 1024, height: 800 });
  phone = await Device.create(browser, 'phone', web.url, { width: 412, height: 860 });
  cliHome = await tempHome();
  await spl(cliHome, 'init', '--name', 'cli');
  await spl(cliHome, 'config', 'relay', 'set', relay.url, '--for-pair', 'all');
  cli = await startAdvertisedServe(cliHome);
  cliPort = Number(new URL(cli.url).port);
}, 180_000);

afterAll(async () => {
  await browser?.close();
  await web?.close();
  await cli?.stop();
  await relay?.stop();
  await app?.cleanup();
  await removeHomes();
});

describe.sequential('three peers on one thread (laptop–phone–cli)', () => {
  it('pairs the chain; the phone gets the thread’s history with its title when it is granted', async () => {
    await laptop.open();
    await onboard(laptop, 'Laptop', relay.url);
    trip = await createThread(laptop, 'Trip plans', true);
    await writeNote(laptop, 'laptop 1');
    const link = await invite(laptop, [trip]);

    const p = await phone.open();
    await onboard(phone, 'Phone', relay.url);
    await p.goto(link);
    await p.getByTestId('invite-offer').getByRole('button', { name: 'Accept and pair' }).click();
    await p.getByText('Paired with Laptop').waitFor();
    await p.goto(`${phone.appUrl}#/threads`);
    await p.getByTestId('thread-list').getByText('Trip plans').waitFor({ timeout: 30_000 });

    // The phone invites the headless peer onto the same thread: the chain's second link.
    const link2 = await invite(phone, [trip]);
    expect((await spl(cliHome, 'pair', 'accept', link2)).code).toBe(0);
    await waitFor(async () => (await cliTexts(trip)).includes('laptop 1'), 30_000, 'the cli got the history through the phone');
    expect(await cliTexts(trip)).toContain('Trip plans');
  });

  it('converges while one peer at a time is offline: each record once, everywhere, with the title', async () => {
    // The phone (the middle) is offline: the ends write, nothing passes yet.
    await phone.close();
    await openThread(laptop, trip);
    await writeNote(laptop, 'laptop 2');
    await spl(cliHome, 'emit', '--thread', trip, '--text', 'cli 1');
    // The laptop's note waits at the relay: one tick, not two.
    await waitFor(async () => (await deliveryOf(laptop, 'laptop 2')) === 'relay', 20_000, 'laptop 2 at the relay');

    // The cli is offline now; the phone comes back, drains both ends and forwards each way.
    await cli!.stop();
    cli = undefined;
    await openThread(phone, trip);
    await writeNote(phone, 'phone 1');
    await waitFor(async () => (await deliveryOf(laptop, 'laptop 2')) === 'delivered', 30_000, 'the phone’s receipt reached the laptop');

    // The laptop is offline; the cli comes back.
    await laptop.close();
    cli = await startAdvertisedServe(cliHome, cliPort);
    await spl(cliHome, 'emit', '--thread', trip, '--text', 'cli 2');
    await waitFor(
      async () => (await cliTexts(trip)).includes('phone 1') && (await cliTexts(trip)).includes('laptop 2'),
      30_000,
      'the cli caught up',
    );

    // Everyone online: the same set of record IDs everywhere, each once.
    await openThread(laptop, trip);
    const want = async () => browserIds(phone, trip);
    await waitFor(
      async () => {
        const [a, b, c] = [await browserIds(laptop, trip), await want(), await cliIds(trip)];
        return (
          a.length === b.length && b.length === c.length && a.join() === b.join() && b.join() === c.join() && a.length >= TEXTS.length + 1
        );
      },
      45_000,
      'all three hold the same records',
    );
    const ids = await cliIds(trip);
    expect(new Set(ids).size).toBe(ids.length);
    expect(new Set(await cliTexts(trip))).toEqual(new Set(['Trip plans', ...TEXTS]));
    await laptop.requirePage().getByRole('heading', { name: 'Trip plans' }).waitFor();
  });

  it('a note from the phone to the cli goes direct and shows delivered at once', async () => {
    await openThread(phone, trip);
    await writeNote(phone, 'phone direct');
    await waitFor(async () => (await cliTexts(trip)).includes('phone direct'), 20_000, 'the cli has it');
    const recs = JSON.parse((await spl(cliHome, 'records', '--thread', trip, '--json')).stdout) as {
      record: { body: { text?: string } };
      path: string;
    }[];
    expect(recs.find((r) => r.record.body.text === 'phone direct')?.path).toBe('direct');
    // Toward the cli it is delivered by its signed answer; the laptop may still be behind.
    const mark = phone.requirePage().locator('[data-testid=records] > li', { hasText: 'phone direct' }).getByTestId('delivery');
    await waitFor(
      async () => /delivered to cli/.test((await mark.getAttribute('title')) ?? ''),
      10_000,
      'the phone shows it delivered to the cli',
    );
  });

  it('sharing an existing thread with a pair brings its whole history and title', async () => {
    await laptop.open();
    const recipes = await createThread(laptop, 'Recipes', false);
    await writeNote(laptop, 'soup');
    await writeNote(laptop, 'bread');
    const page = laptop.requirePage();
    await page.getByRole('button', { name: 'Share with Phone' }).click();
    await page.getByText('Shared with Phone.').first().waitFor({ timeout: 10_000 });
    await phone.open(`?e2e=1#/threads`);
    await phone.requirePage().getByTestId('thread-list').getByText('Recipes').waitFor({ timeout: 20_000 });
    await waitFor(async () => (await browserIds(phone, recipes)).length === 3, 20_000, 'the phone holds the title and both notes');
  });
});
