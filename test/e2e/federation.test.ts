/**
 * Two devices ("laptop" A, "phone" B) in real Chromium, a real relay process, the built PWA.
 * The steps build on each other (one story: pair while apart, exchange while apart, crash, attack,
 * go offline), so they run in order in one file and share the devices.
 */
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser } from 'playwright-core';
import {
  buildPlainEnvelope,
  createSigner,
  didFromPublicKey,
  fromB64u,
  generateSecretKey,
  sealEnvelope,
  signRecord,
  toB64u,
  type SealedEnvelope,
} from '../../src/core';
import { deposit, startRelayProcess, type RelayProcess } from '../../support/relay-process';
import {
  buildApp,
  Device,
  launchBrowser,
  relayQueueSize,
  serveStatic,
  waitFor,
  writeNote,
  type StaticServer,
} from '../../support/browser-harness';

const LAPTOP = { width: 1024, height: 800 };
const PHONE = { width: 412, height: 860 };

let relay: RelayProcess;
let app: { dir: string; cleanup(): Promise<void> };
let server: StaticServer;
let browser: Browser;
let laptop: Device;
let phone: Device;
let laptopDid: string;
let phoneDid: string;
/** The thread A creates and shares with B in the invite. */
let sharedThread: string;

const queueOf = (did: string): Promise<number> => relayQueueSize(relay.url, did);

async function createIdentity(device: Device, name: string): Promise<string> {
  const page = device.requirePage();
  await page.getByLabel('Your name, as your other devices will see it').fill(name);
  // The relay that served the app is suggested out of the box.
  expect(await page.locator('#onboarding-relay').inputValue()).toBe(relay.url);
  await page.getByRole('button', { name: 'Create my identity' }).click();
  await page.getByRole('navigation', { name: 'Main' }).waitFor();
  await page.goto(`${device.appUrl}#/me`);
  return (await page.getByTestId('my-did').textContent())!.trim();
}

async function recordsShown(device: Device): Promise<{ text: string; path: string }[]> {
  return device
    .requirePage()
    .locator('[data-testid=records] > li')
    .evaluateAll((items) =>
      items.map((li) => ({ text: li.querySelector('.record-text')?.textContent ?? '', path: li.getAttribute('data-path') ?? '' })),
    );
}

async function probeCount(device: Device, thread: string): Promise<number> {
  return device.requirePage().evaluate((t) => window.__splProbe!.recordCount(t), thread);
}

beforeAll(async () => {
  relay = await startRelayProcess(['--no-rate-limit']);
  app = await buildApp(relay.url);
  server = await serveStatic(app.dir);
  browser = await launchBrowser();
  laptop = await Device.create(browser, 'laptop', server.url, LAPTOP);
  phone = await Device.create(browser, 'phone', server.url, PHONE);
}, 120_000);

afterAll(async () => {
  await browser?.close();
  await server?.close();
  await relay?.stop();
  await app?.cleanup();
});

describe.sequential('two devices that are rarely online together', () => {
  it('pairs while the inviter is offline; the inviter completes the pairing from its mailbox', async () => {
    const a = await laptop.open();
    await laptop.screenshot('1-onboarding');
    laptopDid = await createIdentity(laptop, 'Laptop');

    await a.goto(`${laptop.appUrl}#/threads`);
    await a.getByLabel('Title').fill('Shared plans');
    await a.getByRole('button', { name: 'Create thread' }).click();
    await a.waitForURL(/#\/thread\/th_/);
    sharedThread = decodeURIComponent(new URL(a.url()).hash.replace('#/thread/', ''));
    await a.goto(`${laptop.appUrl}#/pair`);
    await a.getByRole('button', { name: 'Create invite' }).click();
    const link = await a.getByTestId('invite-link').inputValue();
    expect(link).toContain(`${server.url}#pair=`);
    await a.locator('.qr-code svg').waitFor();
    await laptop.screenshot('4-pair-invite-qr');

    // A goes offline: its page and its service worker lose the network.
    await laptop.context.setOffline(true);
    await a.locator('.conn-offline').waitFor();

    const b = await phone.open();
    phoneDid = await createIdentity(phone, 'Phone');
    await b.goto(link);
    const offer = b.getByTestId('invite-offer');
    await offer.getByText('Laptop').first().waitFor();
    await offer.getByRole('button', { name: 'Accept and pair' }).click();
    await b.getByText('Paired with Laptop').waitFor();
    await b.locator(`[data-testid=pairs] li[data-peer-did="${laptopDid}"]`).waitFor();
    // B's pair.accept waits at the relay for A.
    await waitFor(async () => (await queueOf(laptopDid)) === 1, 10_000, 'pair.accept queued for A');

    // Prove setOffline also cuts A's service worker: a sweep it runs fails and the queue stays.
    // (Asked by message: Chromium holds sync events back while offline, even when fired by CDP.)
    const offlineRun = await laptop.workerSweepByMessage();
    expect(offlineRun.trigger).toBe('message');
    expect(offlineRun.error).toMatch(/network|offline|fetch/i);
    expect(await queueOf(laptopDid)).toBe(1);

    // A comes back: the foreground loop wakes on `online`, receives the reply and pairs with B.
    await laptop.context.setOffline(false);
    await a.locator(`[data-testid=pairs] li[data-peer-did="${phoneDid}"]`).waitFor({ timeout: 15_000 });
    await waitFor(async () => (await queueOf(laptopDid)) === 0, 10_000, "A's mailbox drained");
    // Pairing shares the invite's thread: B receives it through its own long-poll.
    await b.goto(`${phone.appUrl}#/threads`);
    await b.getByRole('link', { name: /Shared plans/ }).waitFor({ timeout: 15_000 });
    // §9: A's confirmation came the same way; B's mailbox is empty once B is no longer waiting.
    await b.goto(`${phone.appUrl}?e2e=1#/pair`);
    await b.waitForFunction(() => window.__splProbe !== undefined);
    try {
      await waitFor(
        async () => (await b.evaluate(() => window.__splProbe!.pairs())).some((p) => p.peerDid === laptopDid && !p.waiting),
        15_000,
        'B confirmed',
      );
    } catch (e) {
      console.log(
        'DEBUG queueB',
        await queueOf(phoneDid),
        'queueA',
        await queueOf(laptopDid),
        JSON.stringify(await b.evaluate(() => window.__splProbe!.counters())),
        await b.locator('[data-testid=connection]').textContent(),
        await a.locator('[data-testid=connection]').textContent(),
      );
      await a.goto(`${laptop.appUrl}#/sync`);
      console.log('DEBUG A sync', await a.locator('main').innerText());
      throw e;
    }
    // The screen follows the store once the receive that brought the confirmation reports a change.
    await waitFor(async () => (await b.getByTestId('pair-waiting').count()) === 0, 15_000, 'the pair screen shows B confirmed');
    await waitFor(async () => (await queueOf(phoneDid)) === 0, 15_000, "B's mailbox drained");
    await b.goto(`${phone.appUrl}#/threads`);
    await phone.screenshot('2-threads');
  });

  it('delivers records written while the receiver is closed, via a background periodic sync', async () => {
    await phone.close(); // B is closed
    const a = laptop.requirePage();
    await a.goto(`${laptop.appUrl}#/thread/${sharedThread}`);
    for (const n of [1, 2, 3]) await writeNote(laptop, `Note ${n} from the laptop`);
    try {
      await waitFor(async () => (await queueOf(phoneDid)) === 3, 15_000, '3 envelopes queued for B');
    } catch (e) {
      console.log('DEBUG3 queueB', await queueOf(phoneDid), 'queueA', await queueOf(laptopDid));
      await a.goto(`${laptop.appUrl}#/sync`);
      console.log('DEBUG3 A sync', await a.locator('main').innerText());
      throw e;
    }
    await a.goto(`${laptop.appUrl}#/sync`);
    await a
      .locator(`[data-testid=peer-status][data-peer-did="${phoneDid}"] [data-testid=outbox-relay]`)
      .getByText(/^[1-9]/)
      .waitFor();
    await laptop.screenshot('6-sync-status');
    await laptop.close(); // A is closed

    // B opens with its own foreground receive disabled: only the service worker may receive.
    const opened = Date.now();
    const b = await phone.open(`?e2e-no-foreground=1#/thread/${sharedThread}`);
    await phone.dispatchPeriodicSync();
    await waitFor(
      async () => (await recordsShown(phone)).filter((r) => /^Note \d from the laptop$/.test(r.text)).length === 3,
      20_000,
      'B shows 3 notes',
    );
    const notes = (await recordsShown(phone)).filter((r) => r.text.startsWith('Note '));
    expect(notes.map((r) => r.path)).toEqual(['relay', 'relay', 'relay']);
    expect(await queueOf(phoneDid)).toBe(0);
    const swRun = await phone.lastRun('service-worker');
    expect(swRun).toMatchObject({ trigger: 'periodicsync', ingested: 3 });
    expect(swRun!.at).toBeGreaterThanOrEqual(opened);
    // The page itself did not receive since it opened.
    const pageRun = await phone.lastRun('page');
    expect(pageRun === undefined || pageRun.at < opened).toBe(true);
    await b.locator('[data-testid=records]').waitFor();
    await phone.screenshot('3-thread-view');
  });

  it('re-fetches after a crash between ingest and ack, and stores every record once', async () => {
    await phone.close();
    await laptop.open(`#/thread/${sharedThread}`);
    await writeNote(laptop, 'Crash 1');
    await writeNote(laptop, 'Crash 2');
    await waitFor(async () => (await queueOf(phoneDid)) === 2, 15_000, '2 envelopes queued for B');
    await laptop.close();

    // B's engine commits the batch, then waits forever before the ack (test flag).
    const b = await phone.open(`?e2e-hold-ack=1#/thread/${sharedThread}`);
    await b.locator('html[data-e2e-holding-ack]').waitFor({ state: 'attached', timeout: 20_000 });
    const expected = 1 + 3 + 2; // title + 3 notes + 2 notes
    expect(await probeCount(phone, sharedThread)).toBe(expected);
    expect(await queueOf(phoneDid)).toBe(2); // committed but not acked
    const countersBefore = await b.evaluate(() => window.__splProbe!.counters());
    await phone.close(); // the crash

    const b2 = await phone.open(`?e2e=1#/thread/${sharedThread}`);
    await waitFor(async () => (await queueOf(phoneDid)) === 0, 20_000, 'redelivered envelopes acked');
    expect(await probeCount(phone, sharedThread)).toBe(expected);
    const counters = await b2.evaluate(() => window.__splProbe!.counters());
    expect(counters.envelopes_redelivered - countersBefore.envelopes_redelivered).toBe(2);
    // Nothing received was stored again (the phone's own receipt for them is its only new record).
    expect(counters.records_duplicate - countersBefore.records_duplicate).toBe(2);
    await waitFor(async () => (await recordsShown(phone)).length === expected, 10_000, 'B shows each record once');
    expect((await recordsShown(phone)).filter((r) => r.text.startsWith('Crash')).map((r) => r.text)).toEqual(['Crash 1', 'Crash 2']);
  });

  it('drops a tampered envelope and one from an unpaired DID, counts them, and acks both', async () => {
    const b = phone.requirePage();
    const before = await b.evaluate(() => window.__splProbe!.counters());

    const strangerKey = generateSecretKey();
    const stranger = createSigner(strangerKey);
    const strangerDid = didFromPublicKey(stranger.publicKey);
    const note = (text: string) =>
      signRecord(
        {
          parents: [],
          thread: 'th_hostile',
          actor: strangerDid,
          act: 'KNOW',
          body: { kind: 'note', text },
          clock: 0,
          data_type: 'SCALAR',
          judged_by: null,
        },
        stranger,
      );

    const unpaired = sealEnvelope(
      await buildPlainEnvelope({ fromDid: strangerDid, toDid: phoneDid, records: [await note('hello from nobody')] }, stranger),
    );
    const sealed = sealEnvelope(
      await buildPlainEnvelope({ fromDid: strangerDid, toDid: phoneDid, records: [await note('tamper me')] }, stranger),
    );
    const ct = fromB64u(sealed.ciphertext)!;
    ct[5] = ct[5]! ^ 0x01;
    const tampered: SealedEnvelope = { ...sealed, ciphertext: toB64u(ct) };

    expect((await deposit(relay.url, phoneDid, tampered)).status).toBe(202);
    expect((await deposit(relay.url, phoneDid, unpaired)).status).toBe(202);

    // B's foreground long-poll picks both up, drops them, and still acks them.
    await waitFor(async () => (await queueOf(phoneDid)) === 0, 20_000, 'hostile envelopes acked');
    const after = await waitFor(
      async () => {
        const c = await b.evaluate(() => window.__splProbe!.counters());
        return c.envelopes_rejected > before.envelopes_rejected ? c : undefined;
      },
      10_000,
      'counters updated',
    );
    expect(after.envelopes_rejected - before.envelopes_rejected).toBe(1);
    expect(after.records_dropped_unpaired - before.records_dropped_unpaired).toBe(1);
    expect(await probeCount(phone, 'th_hostile')).toBe(0);

    await b.goto(`${phone.appUrl}?e2e=1#/doctor`);
    await b
      .locator('[data-check=dropped_unpaired].check-warn')
      .getByText('1 note from devices you have not paired with was ignored.')
      .waitFor();
    await b
      .locator('[data-check=rejected_content].check-warn')
      .getByText(/^1 message failed/)
      .waitFor();
    await phone.screenshot('7-doctor');
  });

  it('opens from the service-worker cache with the network off and still shows the records', async () => {
    const b = phone.requirePage();
    await b.goto(`${phone.appUrl}?e2e=1#/thread/${sharedThread}`);
    await waitFor(() => b.evaluate(() => navigator.serviceWorker.controller !== null), 10_000, 'SW controls the page');
    await phone.context.setOffline(true);
    try {
      await b.reload();
      await waitFor(async () => (await recordsShown(phone)).length === 6, 15_000, 'records shown offline');
      expect((await recordsShown(phone)).filter((r) => r.text.startsWith('Note ')).length).toBe(3);
    } finally {
      await phone.context.setOffline(false);
    }
    await b.goto(`${phone.appUrl}?e2e=1#/relays`);
    await b.locator('[data-testid=relay-health]').getByText('reachable').first().waitFor({ timeout: 10_000 });
    await phone.screenshot('5-relays');
  });

  it('backs up the phone identity encrypted and restores it on a new device', async () => {
    const b = phone.requirePage();
    await b.goto(`${phone.appUrl}?e2e=1#/me`);
    await b.locator('#backup-passphrase').fill('a long enough passphrase');
    await b.locator('#backup-repeat').fill('a long enough passphrase');
    const [download] = await Promise.all([
      b.waitForEvent('download'),
      b.getByRole('button', { name: 'Download encrypted backup' }).click(),
    ]);
    const path = await download.path();
    const file = readFileSync(path, 'utf8');
    expect(file).toContain(phoneDid);
    expect(JSON.parse(file)).toMatchObject({ kind: 'syncropel-identity', did: phoneDid });

    const tablet = await Device.create(browser, 'tablet', server.url, PHONE);
    try {
      const t = await tablet.open();
      await t.locator('summary', { hasText: 'Restore an identity' }).click();
      await t.locator('#restore-file').setInputFiles(path);
      await t.locator('#restore-passphrase').fill('not the passphrase');
      await t.getByRole('button', { name: 'Restore identity' }).click();
      await t
        .getByRole('alert')
        .getByText(/passphrase/)
        .waitFor();
      await t.locator('#restore-passphrase').fill('a long enough passphrase');
      await t.getByRole('button', { name: 'Restore identity' }).click();
      await t.getByRole('navigation', { name: 'Main' }).waitFor();
      await t.goto(`${tablet.appUrl}#/me`);
      expect((await t.getByTestId('my-did').textContent())?.trim()).toBe(phoneDid);
      // The pair and the relay came with the key: the tablet can receive the laptop's mail at once.
      await t.goto(`${tablet.appUrl}#/pair`);
      await t.getByTestId('pairs').locator(`li[data-peer-did="${laptopDid}"]`).waitFor();
      await t.goto(`${tablet.appUrl}?e2e=1#/relays`);
      await t.locator('[data-testid=relay-health]').getByText('reachable').first().waitFor({ timeout: 10_000 });
      // §11: the restored device asked its pair for history; once the laptop is online it sends
      // the shared thread back, title first, and the tablet shows it.
      const expected = await probeCount(phone, sharedThread);
      await t.goto(`${tablet.appUrl}?e2e=1#/threads`);
      await t
        .getByTestId('restoring')
        .getByText(/Waiting for your threads from Laptop/)
        .waitFor();
      await t.waitForFunction(() => window.__splProbe !== undefined);
      await laptop.open('#/threads');
      await t.getByTestId('thread-list').getByText('Shared plans').waitFor({ timeout: 30_000 });
      await waitFor(
        async () => (await t.evaluate((th) => window.__splProbe!.recordCount(th), sharedThread)) >= expected,
        30_000,
        'the tablet holds the thread again',
      );
      await waitFor(async () => (await queueOf(phoneDid)) === 0, 20_000, 'the tablet drained the history');
      await laptop.close();
    } finally {
      await tablet.context.close();
    }
  });

  it('notifies of notes that arrive in a background sweep while no window is open', async () => {
    await phone.context.grantPermissions(['notifications'], { origin: new URL(phone.appUrl).origin });
    await phone.close();
    const a = await laptop.open(`#/thread/${sharedThread}`);
    await a.locator('[data-testid=records]').waitFor();
    await writeNote(laptop, 'Written while the phone sleeps');
    await waitFor(async () => (await queueOf(phoneDid)) === 1, 15_000, '1 envelope queued for B');
    await laptop.close();

    const swept = Date.now();
    await phone.dispatchPeriodicSyncWithNoWindow();
    await waitFor(async () => (await queueOf(phoneDid)) === 0, 20_000, 'the sweep acked the envelope');
    // Before any window opens (a visible one gets no notification), and without polling for
    // notifications while one is being shown (Chromium would drop it): the run record follows it.
    await phone.waitForWorkerRun('periodicsync', swept);
    await phone.open('?e2e-no-foreground=1');
    expect(await phone.notifications()).toEqual([{ title: 'Syncropel', body: 'A new note arrived.', tag: 'spl-new-records' }]);

    // With the app in view the same sweep only refreshes the page: no notification.
    await phone
      .requirePage()
      .evaluate(async () => (await (await navigator.serviceWorker.ready).getNotifications()).forEach((n) => n.close()));
    const a2 = await laptop.open(`#/thread/${sharedThread}`);
    await a2.locator('[data-testid=records]').waitFor();
    await writeNote(laptop, 'Written while the phone looks');
    await waitFor(async () => (await queueOf(phoneDid)) === 1, 15_000, 'another envelope queued for B');
    await phone.requirePage().goto(`${phone.appUrl}?e2e-no-foreground=1#/thread/${sharedThread}`);
    const dispatched = Date.now();
    await phone.dispatchPeriodicSync();
    await waitFor(
      async () => (await recordsShown(phone)).some((r) => r.text === 'Written while the phone looks'),
      20_000,
      'B shows the note',
    );
    // The sweep's run record is written after its announcement: once it is there, so would be a notification.
    await waitFor(async () => ((await phone.lastRun('service-worker'))?.at ?? 0) >= dispatched, 10_000, 'the sweep finished');
    expect(await phone.notifications()).toEqual([]);

    // Turned off on the Me screen: with permission still granted, the worker stays silent.
    const me = phone.requirePage();
    await me.goto(`${phone.appUrl}?e2e-no-foreground=1#/me`);
    await me.getByTestId('notify-toggle').uncheck();
    await me.getByTestId('status-line').getByText('Notifications are off').waitFor();
    const a3 = await laptop.open(`#/thread/${sharedThread}`);
    await a3.locator('[data-testid=records]').waitFor();
    await writeNote(laptop, 'Written while notifications are off');
    await waitFor(async () => (await queueOf(phoneDid)) === 1, 15_000, 'a third envelope queued for B');
    await laptop.close();
    const silent = Date.now();
    await phone.dispatchPeriodicSyncWithNoWindow();
    await waitFor(async () => (await queueOf(phoneDid)) === 0, 20_000, 'the silent sweep acked the envelope');
    // Finished before a window opens: silent because of the setting, not because someone looked.
    await phone.waitForWorkerRun('periodicsync', silent);
    await phone.open('?e2e-no-foreground=1');
    expect(await phone.notifications()).toEqual([]);
  });
});
