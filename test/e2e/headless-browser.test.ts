/**
 * The guide's four cases between a browser peer (the PWA in real Chromium) and a headless peer
 * (`spl serve` as a real process), paired with each other, and a real relay. The browser cannot
 * serve, so it reaches the daemon directly (CORS) and the daemon reaches it through the relay.
 * Each case builds on the previous one, so they run in order.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser } from 'playwright-core';
import { startRelayProcess, type RelayProcess } from '../../support/relay-process';
import {
  buildApp,
  Device,
  launchBrowser,
  relayQueueSize,
  serveStatic,
  waitFor,
  type StaticServer,
  writeNote as writeNoteOn,
} from '../../support/browser-harness';
import { removeHomes, spl, startAdvertisedServe, tempHome, type ServeProcess } from '../cli/helpers';

const THREAD = 'th_shared';
let relay: RelayProcess;
let app: { dir: string; cleanup(): Promise<void> };
let web: StaticServer;
let browser: Browser;
let phone: Device;
let phoneDid: string;
let home: string;
let headlessDid: string;
let daemon: ServeProcess | undefined;
let daemonPort: string;

async function metric(name: string): Promise<number> {
  const text = await (await fetch(`${relay.url}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name} `) || l.startsWith(`${name}{`));
  return line ? Number(line.slice(line.lastIndexOf(' ') + 1)) : 0;
}

async function headlessRecords(): Promise<{ text: string; path: string }[]> {
  const r = await spl(home, 'records', '--thread', THREAD, '--json');
  return (JSON.parse(r.stdout) as { record: { body: { text?: string } }; path: string }[]).map((x) => ({
    text: x.record.body.text ?? '',
    path: x.path,
  }));
}

async function browserRecords(): Promise<{ text: string; path: string }[]> {
  return phone
    .requirePage()
    .locator('[data-testid=records] > li')
    .evaluateAll((items) =>
      items.map((li) => ({ text: li.querySelector('.record-text')?.textContent ?? '', path: li.getAttribute('data-path') ?? '' })),
    );
}

const writeNote = (text: string): Promise<void> => writeNoteOn(phone, text);

// The daemon advertises its URL (--public-url): only then do peers deliver to it directly (§7).
const startDaemon = async (): Promise<ServeProcess> =>
  (daemon = await startAdvertisedServe(home, daemonPort ? Number(daemonPort) : undefined));
async function stopDaemon(): Promise<void> {
  expect(await daemon!.stop()).toBe(0);
  daemon = undefined;
}

beforeAll(async () => {
  relay = await startRelayProcess(['--no-rate-limit']);
  app = await buildApp(relay.url);
  web = await serveStatic(app.dir);
  browser = await launchBrowser();
  phone = await Device.create(browser, 'phone', web.url, { width: 412, height: 860 });

  home = await tempHome();
  await spl(home, 'init', '--name', 'Server');
  headlessDid = (JSON.parse((await spl(home, 'identity', '--json')).stdout) as { did: string }).did;
  await spl(home, 'config', 'relay', 'set', relay.url, '--for-pair', 'all');
  await startDaemon();
  daemonPort = new URL(daemon!.url).port;
}, 180_000);

afterAll(async () => {
  await browser?.close();
  await web?.close();
  await daemon?.stop();
  await relay?.stop();
  await app?.cleanup();
  await removeHomes();
});

describe.sequential('browser ↔ headless: the four cases', () => {
  it('pairs: the browser opens the headless peer’s invite; its reply goes through the relay, the confirmation comes back', async () => {
    const page = await phone.open();
    await page.getByLabel('Your name, as your other devices will see it').fill('Phone');
    await page.getByRole('button', { name: 'Create my identity' }).click();
    await page.getByRole('navigation', { name: 'Main' }).waitFor();
    await page.goto(`${phone.appUrl}#/me`);
    phoneDid = (await page.getByTestId('my-did').textContent())!.trim();

    const invite = await spl(home, '--app-url', web.url, 'pair', 'invite', '--thread', THREAD, '--json');
    const { link } = JSON.parse(invite.stdout) as { link: string };
    expect(link.startsWith(`${web.url}#pair=`)).toBe(true);
    const deposits = await metric('relay_deposits_total');
    await page.goto(link);
    const offer = page.getByTestId('invite-offer');
    await offer.getByText('Server').first().waitFor();
    await offer.getByRole('button', { name: 'Accept and pair' }).click();
    await page.getByText('Paired with Server').waitFor();
    await waitFor(async () => (await spl(home, 'pair', 'list')).stdout.includes(phoneDid), 15_000, 'the daemon paired with the browser');
    // §7: a direct endpoint takes envelopes from paired peers only, so the reply (deposited with
    // the daemon's deposit token from the invite, §5.1) went through the relay.
    // The browser has no direct URL: the confirmation reaches it through the relay, and its long-poll.
    await page.goto(`${phone.appUrl}?e2e=1#/pair`);
    await page.waitForFunction(() => window.__splProbe !== undefined);
    try {
      await waitFor(
        async () =>
          (await page.evaluate(() => window.__splProbe!.pairs())).some((p) => p.peerDid === headlessDid && p.enabled && !p.waiting),
        20_000,
        'the browser got the confirmation',
      );
    } catch (e) {
      console.log(
        'DEBUG status',
        (await spl(home, 'fleet', 'sync', 'status')).stdout,
        'queue',
        await relayQueueSize(relay.url, phoneDid),
        daemon!.lines.join('\n'),
        JSON.stringify(await page.evaluate(() => window.__splProbe!.pairs())),
        JSON.stringify(await page.evaluate(() => window.__splProbe!.counters())),
      );
      throw e;
    }
    expect(await metric('relay_deposits_total')).toBe(deposits + 2); // the reply, and the confirmation
  });

  it('1. both online: the browser’s records go direct to the daemon; the relay’s deposits do not move', async () => {
    const deposits = await metric('relay_deposits_total');
    await phone.requirePage().goto(`${phone.appUrl}?e2e=1#/thread/${THREAD}`);
    await writeNote('from the browser, direct');
    await waitFor(async () => (await headlessRecords()).some((r) => r.text === 'from the browser, direct'), 15_000, 'daemon has the note');
    expect((await headlessRecords()).find((r) => r.text === 'from the browser, direct')?.path).toBe('direct');
    expect(await metric('relay_deposits_total')).toBe(deposits);

    // The other way the browser has no direct URL: the daemon deposits, the page's long-poll picks it up.
    await spl(home, 'emit', '--thread', THREAD, '--text', 'from the daemon');
    await waitFor(
      async () => (await browserRecords()).some((r) => r.text === 'from the daemon'),
      20_000,
      'browser shows the daemon’s note',
    );
    expect((await browserRecords()).find((r) => r.text === 'from the daemon')?.path).toBe('relay');
    // §11: the browser's receipt comes back (direct, the daemon being reachable): delivered.
    await waitFor(
      async () => {
        const recs = JSON.parse((await spl(home, 'records', '--thread', THREAD, '--json')).stdout) as {
          record: { body: { text?: string } };
          delivery: { state: string }[];
        }[];
        return recs.find((r) => r.record.body.text === 'from the daemon')?.delivery[0]?.state === 'delivered';
      },
      20_000,
      'the daemon shows its note delivered',
    );
  });

  it('2. only the sender online: the browser deposits at the relay; the daemon, started later, drains and acks', async () => {
    await stopDaemon();
    const deposits = await metric('relay_deposits_total');
    await writeNote('while the daemon was stopped');
    await waitFor(async () => (await relayQueueSize(relay.url, headlessDid)) === 1, 15_000, 'deposited for the headless peer');
    expect(await metric('relay_deposits_total')).toBe(deposits + 1);

    await startDaemon();
    await waitFor(
      async () => (await headlessRecords()).some((r) => r.text === 'while the daemon was stopped'),
      15_000,
      'daemon drained its mailbox',
    );
    expect((await headlessRecords()).find((r) => r.text === 'while the daemon was stopped')?.path).toBe('relay');
    await waitFor(async () => (await relayQueueSize(relay.url, headlessDid)) === 0, 10_000, 'acked');
  });

  it('3. only the receiver online: the daemon polls and receives nothing; nothing breaks', async () => {
    await phone.close(); // the browser peer is gone
    const before = (await headlessRecords()).length;
    const receives = await metric('relay_receives_total');
    await waitFor(async () => (await metric('relay_receives_total')) > receives + 1, 15_000, 'the daemon polled again');
    expect((await headlessRecords()).length).toBe(before);
    const doctor = await spl(home, 'doctor', '--json');
    expect(doctor.code, doctor.stdout).toBe(0);
  });

  it('4. neither online: the browser keeps the envelope in its outbox, and delivers when it comes back', async () => {
    await stopDaemon();
    await phone.open(`?e2e=1#/thread/${THREAD}`);
    await phone.context.setOffline(true);
    await writeNote('written while nobody was online');
    await phone.requirePage().goto(`${phone.appUrl}?e2e=1#/sync`);
    const peer = phone.requirePage().locator(`[data-testid=peer-status][data-peer-did="${headlessDid}"]`);
    await peer.getByTestId('outbox-pending').getByText('1', { exact: true }).waitFor({ timeout: 15_000 });
    expect(await relayQueueSize(relay.url, headlessDid)).toBe(0);

    // The browser comes back: the daemon is still down, so the relay path takes it. The page's
    // `online` flush honours the entry's nextAttemptAt (first retry ≤ 30 s, §10), hence the deadline.
    await phone.context.setOffline(false);
    await waitFor(async () => (await relayQueueSize(relay.url, headlessDid)) === 1, 45_000, 'delivered to the relay on reconnect');
    await startDaemon();
    await waitFor(
      async () => (await headlessRecords()).filter((r) => r.text === 'written while nobody was online').length === 1,
      15_000,
      'daemon has it',
    );
    await waitFor(async () => (await relayQueueSize(relay.url, headlessDid)) === 0, 10_000, 'acked');
  }, 90_000);
});
