/**
 * Push wake (PROTOCOL.md §5.2) against a real relay process and a Web Push service stand-in on
 * loopback that verifies the VAPID JWT and decrypts every push (support/push-service.ts).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signMailboxRequest, type Signer } from '../../src/core';
import { newPeer } from '../../support/fixtures';
import { startPushServiceStandIn, type PushServiceStandIn, type StandInSubscription } from '../../support/push-service';
import {
  deposit,
  hostOf,
  junkSealed,
  mailboxPath,
  signedReceive,
  startRelayProcess,
  waitFor,
  type RelayProcess,
} from '../../support/relay-process';

const INTERVAL_S = 0.5;

let standIn: PushServiceStandIn;
let relay: RelayProcess;

beforeAll(async () => {
  standIn = await startPushServiceStandIn();
  relay = await startRelayProcess([
    '--no-rate-limit',
    '--push-allow-endpoint',
    standIn.origin,
    '--push-min-interval',
    String(INTERVAL_S),
    '--vapid-subject',
    'mailto:ops@example.org',
  ]);
});
afterAll(async () => {
  expect(await relay.stop()).toBe(0);
  await standIn.close();
});

async function signedPush(relayUrl: string, did: string, signer: Signer, method: 'PUT' | 'DELETE', body: unknown): Promise<Response> {
  const pathAndQuery = `${mailboxPath(did)}/push`;
  const text = JSON.stringify(body);
  const auth = await signMailboxRequest({ method, host: hostOf(relayUrl), pathAndQuery, body: text }, signer);
  return fetch(relayUrl + pathAndQuery, { method, headers: { authorization: auth, 'content-type': 'application/json' }, body: text });
}

const subJson = (s: StandInSubscription): unknown => ({ endpoint: s.endpoint, expirationTime: null, keys: s.keys });

async function metric(name: string): Promise<number> {
  const text = await (await fetch(`${relay.url}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(name + ' '));
  return line ? Number(line.split(' ')[1]) : NaN;
}

describe('push wake (§5.2)', () => {
  it('GET /v1/push/vapid gives a 65-byte uncompressed P-256 key; the stand-in sees pushes signed by it', async () => {
    const res = await fetch(`${relay.url}/v1/push/vapid`);
    expect(res.status).toBe(200);
    const { public_key } = (await res.json()) as { public_key: string };
    const bytes = Buffer.from(public_key, 'base64url');
    expect(bytes.length).toBe(65);
    expect(bytes[0]).toBe(4);
  });

  it('a deposit wakes each subscription once with a decryptable {v, mailbox, queued}, Topic, TTL ≤ a day, Urgency normal', async () => {
    const bob = newPeer();
    const sub = standIn.subscribe();
    const put = await signedPush(relay.url, bob.did, bob.signer, 'PUT', subJson(sub));
    expect(put.status).toBe(200);
    const before = standIn.pushes.length;
    expect((await deposit(relay.url, bob.did, junkSealed(bob.did))).status).toBe(202);
    const pushes = (await standIn.waitForPushes(before + 1)).slice(before);
    expect(pushes).toHaveLength(1);
    const push = pushes[0]!;
    expect(push.endpoint).toBe(sub.endpoint);
    expect(JSON.parse(push.payload)).toEqual({ v: 1, mailbox: bob.did, queued: 1 });
    expect(push.headers.topic).toMatch(/^[A-Za-z0-9_-]{1,32}$/);
    expect(push.headers.topic).not.toContain(bob.did.slice(8, 20));
    expect(Number(push.headers.ttl)).toBeGreaterThan(0);
    expect(Number(push.headers.ttl)).toBeLessThanOrEqual(86_400);
    expect(push.headers.urgency).toBe('normal');
    expect(push.jwt.sub).toBe('mailto:ops@example.org');
    const vapid = (await (await fetch(`${relay.url}/v1/push/vapid`)).json()) as { public_key: string };
    expect(push.vapidKey).toBe(vapid.public_key);
  });

  it('a mailbox that subscribes right after a deposit is woken by the next one (the list read for deposits is not kept past a registration)', async () => {
    const carol = newPeer();
    expect((await deposit(relay.url, carol.did, junkSealed(carol.did))).status).toBe(202); // read: no subscriptions
    const sub = standIn.subscribe();
    expect((await signedPush(relay.url, carol.did, carol.signer, 'PUT', subJson(sub))).status).toBe(200);
    const before = standIn.pushes.length;
    expect((await deposit(relay.url, carol.did, junkSealed(carol.did))).status).toBe(202);
    const pushes = (await standIn.waitForPushes(before + 1)).slice(before);
    expect(pushes.map((p) => p.endpoint)).toEqual([sub.endpoint]);
    expect(JSON.parse(pushes[0]!.payload)).toEqual({ v: 1, mailbox: carol.did, queued: 2 });
  });

  it('collapses: no second push until the owner receives, then one more, no sooner than --push-min-interval after the first; Topic is fixed per mailbox', async () => {
    const carol = newPeer();
    const sub = standIn.subscribe();
    expect((await signedPush(relay.url, carol.did, carol.signer, 'PUT', subJson(sub))).status).toBe(200);
    const mine = (): typeof standIn.pushes => standIn.pushes.filter((p) => p.endpoint === sub.endpoint);
    expect((await deposit(relay.url, carol.did, junkSealed(carol.did))).status).toBe(202);
    await waitFor(() => mine().length === 1, 10_000, 'first push');
    for (let i = 0; i < 3; i++) expect((await deposit(relay.url, carol.did, junkSealed(carol.did))).status).toBe(202);
    // Absence over a bounded window (4 intervals): a push sent for these would have arrived in it.
    const quietUntil = Date.now() + 4 * INTERVAL_S * 1000;
    await waitFor(() => mine().length > 1 || Date.now() >= quietUntil, 10_000, 'quiet window');
    expect(mine()).toHaveLength(1);
    // The owner receives (without acking): the next deposit wakes again.
    expect((await signedReceive(relay.url, carol.did, carol.signer, { limit: 1 })).status).toBe(200);
    expect((await deposit(relay.url, carol.did, junkSealed(carol.did))).status).toBe(202);
    await waitFor(() => mine().length === 2, 10_000, 'second push');
    const [first, second] = mine() as [(typeof standIn.pushes)[number], (typeof standIn.pushes)[number]];
    expect(JSON.parse(second.payload)).toEqual({ v: 1, mailbox: carol.did, queued: 5 });
    expect(second.headers.topic).toBe(first.headers.topic);
    // Right after the second push, receive and deposit again: the third waits out the interval.
    expect((await signedReceive(relay.url, carol.did, carol.signer, { limit: 1 })).status).toBe(200);
    expect((await deposit(relay.url, carol.did, junkSealed(carol.did))).status).toBe(202);
    await waitFor(() => mine().length === 3, 10_000, 'third push');
    const third = mine()[2]!;
    expect(third.at - second.at).toBeGreaterThanOrEqual(INTERVAL_S * 1000 - 5);
    expect(JSON.parse(third.payload)).toMatchObject({ queued: 6 });
    // Another mailbox gets another topic.
    expect(standIn.pushes.find((p) => p.endpoint !== sub.endpoint && p.headers.topic === first.headers.topic)).toBeUndefined();
  });

  it('a 410 from the push service removes the subscription', async () => {
    const dave = newPeer();
    const sub = standIn.subscribe();
    sub.status = 410;
    expect((await signedPush(relay.url, dave.did, dave.signer, 'PUT', subJson(sub))).status).toBe(200);
    const goneBefore = await metric('relay_pushes_total{result="gone"}');
    expect((await deposit(relay.url, dave.did, junkSealed(dave.did))).status).toBe(202);
    await waitFor(async () => (await metric('relay_pushes_total{result="gone"}')) === goneBefore + 1, 10_000, 'gone counted');
    const del = await signedPush(relay.url, dave.did, dave.signer, 'DELETE', { endpoint: sub.endpoint });
    expect(del.status).toBe(200);
    expect(await del.json()).toEqual({ removed: false });
  });

  it('at most 5 subscriptions per mailbox: a sixth replaces the oldest; DELETE removes one', async () => {
    const erin = newPeer();
    const subs = Array.from({ length: 6 }, () => standIn.subscribe());
    for (const [i, s] of subs.entries()) {
      const res = await signedPush(relay.url, erin.did, erin.signer, 'PUT', subJson(s));
      expect(res.status).toBe(200);
      expect(await res.json()).toEqual({ registered: true, replaced: i === 5 ? 1 : 0 });
    }
    expect(await (await signedPush(relay.url, erin.did, erin.signer, 'DELETE', { endpoint: subs[0]!.endpoint })).json()).toEqual({
      removed: false,
    });
    expect(await (await signedPush(relay.url, erin.did, erin.signer, 'DELETE', { endpoint: subs[5]!.endpoint })).json()).toEqual({
      removed: true,
    });
  });

  it('refuses endpoints that are not https or resolve to non-public addresses (400 invalid_request), and unsigned or foreign-signed registrations', async () => {
    const frank = newPeer();
    const sub = standIn.subscribe();
    const bad = [
      'http://push.example.org/x',
      'https://127.0.0.1/x',
      'https://10.1.2.3/x',
      'https://192.168.1.1/x',
      'https://169.254.169.254/latest',
      'https://100.64.0.1/x',
      'https://[::1]/x',
      'https://[::ffff:127.0.0.1]/x',
      'https://[fe80::1]/x',
      'https://0.0.0.0/x',
      'https://localhost/x',
      `${standIn.origin.replace('127.0.0.1', 'localhost')}/push/x`, // not the allowed origin exactly
      'not a url',
    ];
    for (const endpoint of bad) {
      const res = await signedPush(relay.url, frank.did, frank.signer, 'PUT', { endpoint, keys: sub.keys });
      expect(res.status, endpoint).toBe(400);
      expect(((await res.json()) as { error: { code: string } }).error.code).toBe('invalid_request');
    }
    const badKeys = await signedPush(relay.url, frank.did, frank.signer, 'PUT', {
      endpoint: sub.endpoint,
      keys: { p256dh: 'AAAA', auth: sub.keys.auth },
    });
    expect(badKeys.status).toBe(400);
    const unsigned = await fetch(`${relay.url}${mailboxPath(frank.did)}/push`, {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(subJson(sub)),
    });
    expect(unsigned.status).toBe(401);
    const mallory = newPeer();
    expect((await signedPush(relay.url, frank.did, mallory.signer, 'PUT', subJson(sub))).status).toBe(401);
  });

  it('a replayed registration is refused (§6 replay cache)', async () => {
    const gina = newPeer();
    const sub = standIn.subscribe();
    const pathAndQuery = `${mailboxPath(gina.did)}/push`;
    const text = JSON.stringify(subJson(sub));
    const auth = await signMailboxRequest({ method: 'PUT', host: hostOf(relay.url), pathAndQuery, body: text }, gina.signer);
    const send = (): Promise<Response> =>
      fetch(relay.url + pathAndQuery, { method: 'PUT', headers: { authorization: auth, 'content-type': 'application/json' }, body: text });
    expect((await send()).status).toBe(200);
    expect((await send()).status).toBe(401);
  });

  it('--no-push: /v1/push/vapid and the push routes answer 404', async () => {
    const off = await startRelayProcess(['--no-push']);
    try {
      expect((await fetch(`${off.url}/v1/push/vapid`)).status).toBe(404);
      const hal = newPeer();
      expect((await signedPush(off.url, hal.did, hal.signer, 'PUT', subJson(standIn.subscribe()))).status).toBe(404);
    } finally {
      expect(await off.stop()).toBe(0);
    }
  });
});
