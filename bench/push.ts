/**
 * Push wake benchmark (`npm run bench:push`, PROTOCOL.md §5.2): prints ONE JSON object.
 *
 * - relay: deposit sent → push received (decrypted, VAPID checked) by a Web Push stand-in on
 *   loopback, p50/p90 over fresh mailboxes (no interval or collapse in the way); same-run
 *   baseline: deposit sent → 202 received, and deposit → long-poll wake of a waiting receiver;
 * - browser: push handed to a closed app's service worker (CDP) → the waiting envelope acked at
 *   the relay (acks follow the store commit), p50 over rounds of one note each; polled every 5 ms.
 */
import type { Browser } from 'playwright-core';
import { newPeer } from '../support/fixtures';
import { startPushServiceStandIn } from '../support/push-service';
import { deposit, hostOf, junkSealed, mailboxPath, signedReceive, startRelayProcess } from '../support/relay-process';
import { buildApp, Device, launchBrowser, onboard, relayQueueSize, serveStatic, waitFor, writeNote } from '../support/browser-harness';
import { signMailboxRequest } from '../src/core';

const RELAY_SAMPLES = Number(process.env.BENCH_PUSH_SAMPLES ?? 60);
const BROWSER_ROUNDS = Number(process.env.BENCH_PUSH_ROUNDS ?? 8);

const pct = (xs: number[], p: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return Math.round(s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]! * 100) / 100;
};
const summary = (xs: number[]): { p50: number; p90: number; n: number } => ({ p50: pct(xs, 50), p90: pct(xs, 90), n: xs.length });

const standIn = await startPushServiceStandIn();
const relay = await startRelayProcess(['--no-rate-limit', '--log-level', 'warn', '--push-allow-endpoint', standIn.origin]);

async function register(
  did: string,
  signer: ReturnType<typeof newPeer>['signer'],
  sub: { endpoint: string; keys: unknown },
): Promise<void> {
  const pathAndQuery = `${mailboxPath(did)}/push`;
  const body = JSON.stringify(sub);
  const auth = await signMailboxRequest({ method: 'PUT', host: hostOf(relay.url), pathAndQuery, body }, signer);
  const res = await fetch(relay.url + pathAndQuery, {
    method: 'PUT',
    headers: { authorization: auth, 'content-type': 'application/json' },
    body,
  });
  if (res.status !== 200) throw new Error(`registration failed: ${res.status}`);
}

const toPush: number[] = [];
const to202: number[] = [];
const toWake: number[] = [];
for (let i = 0; i < RELAY_SAMPLES; i++) {
  const peer = newPeer();
  const sub = standIn.subscribe();
  await register(peer.did, peer.signer, { endpoint: sub.endpoint, keys: sub.keys });
  const before = standIn.pushes.length;
  const t0 = performance.now();
  const res = await deposit(relay.url, peer.did, junkSealed(peer.did));
  to202.push(performance.now() - t0);
  if (res.status !== 202) throw new Error(`deposit ${res.status}`);
  await standIn.waitForPushes(before + 1);
  toPush.push(performance.now() - t0);
  // Baseline: the same deposit path waking a receiver that is already waiting (no push).
  const other = newPeer();
  const poll = signedReceive(relay.url, other.did, other.signer, { wait: 5 });
  await waitFor(
    async () => (await (await fetch(`${relay.url}/metrics`)).text()).includes('\nrelay_long_polls_waiting 1'),
    5000,
    'the receiver waiting',
  );
  const t1 = performance.now();
  await deposit(relay.url, other.did, junkSealed(other.did));
  const answered = await poll;
  await answered.arrayBuffer();
  toWake.push(performance.now() - t1);
}

// Browser: a paired phone whose app is closed, woken by a push over CDP.
const app = await buildApp(relay.url);
const server = await serveStatic(app.dir);
const browser: Browser = await launchBrowser();
const pushToStored: number[] = [];
try {
  const laptop = await Device.create(browser, 'laptop', server.url, { width: 1024, height: 800 });
  const phone = await Device.create(browser, 'phone', server.url, { width: 412, height: 860 });
  await phone.context.grantPermissions(['notifications'], { origin: new URL(phone.appUrl).origin });
  const a = await laptop.open();
  await onboard(laptop, 'Laptop', relay.url);
  await a.goto(`${laptop.appUrl}#/threads`);
  await a.getByLabel('Title').fill('Bench');
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
  await b.goto(`${phone.appUrl}?e2e=1#/threads`);
  await b.waitForFunction(() => window.__splProbe !== undefined);
  await waitFor(async () => (await b.evaluate(() => window.__splProbe!.pairs())).some((p) => !p.waiting), 20_000, 'phone confirmed');
  const sub = standIn.subscribe();
  await b.evaluate((s) => window.__splProbe!.setUpPush(s), { endpoint: sub.endpoint, keys: sub.keys });
  await phone.close();
  await a.goto(`${laptop.appUrl}#/thread/${thread}`);
  for (let round = 0; round < BROWSER_ROUNDS; round++) {
    await writeNote(laptop, `Bench note ${round}`);
    await waitFor(async () => (await relayQueueSize(relay.url, phoneDid)) === 1, 15_000, 'note queued');
    const sentAt = await phone.deliverPushWithNoWindow(JSON.stringify({ v: 1, mailbox: phoneDid, queued: 1 }));
    for (;;) {
      if ((await relayQueueSize(relay.url, phoneDid)) === 0) break;
      if (performance.now() - sentAt > 20_000) throw new Error('the worker did not ack within 20 s');
      await new Promise((r) => setTimeout(r, 5));
    }
    pushToStored.push(performance.now() - sentAt);
  }
} finally {
  await browser.close();
  await server.close();
  await app.cleanup();
  await relay.stop();
  await standIn.close();
}

console.log(
  JSON.stringify(
    {
      relay: {
        deposit_to_push_ms: summary(toPush),
        baseline_deposit_to_202_ms: summary(to202),
        baseline_deposit_to_longpoll_wake_ms: summary(toWake),
      },
      browser: { push_to_records_stored_and_acked_ms: summary(pushToStored) },
    },
    null,
    2,
  ),
);
