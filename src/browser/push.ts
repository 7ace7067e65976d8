/**
 * Push wake in browsers (PROTOCOL.md §5.2): with the owner's consent (notifications on), the
 * page or the service worker subscribes with a relay's VAPID key and registers the subscription,
 * owner-signed, at every relay this device receives from. A browser holds one subscription per
 * service worker, bound to one VAPID key: relays with another key cannot wake it (doctor says so).
 * The state per relay is kept beside the peer store for doctor and the Relays screen.
 */
import { fromB64u } from '../core';
import type { PeerApi, PushSubscriptionJson, RelayPushState } from '../sync/types';
import { platformMeta, setPlatformMeta } from './platform-meta';

const PUSH_KEY = 'push';

export interface PushRecord {
  readonly endpoint: string;
  /** The VAPID key the subscription is bound to (b64u). */
  readonly key: string;
  readonly relays: readonly RelayPushState[];
  readonly at: number;
}

export const pushRecord = (): Promise<PushRecord | undefined> => platformMeta<PushRecord>(PUSH_KEY);

export function pushSupported(): boolean {
  return typeof self !== 'undefined' && 'PushManager' in self;
}

const sameBytes = (a: ArrayBuffer | null | undefined, b: Uint8Array): boolean => {
  if (!a || a.byteLength !== b.length) return false;
  const x = new Uint8Array(a);
  return x.every((v, i) => v === b[i]);
};

function subscriptionJson(sub: PushSubscription): PushSubscriptionJson | undefined {
  const j = sub.toJSON();
  const p256dh = j.keys?.p256dh;
  const auth = j.keys?.auth;
  return j.endpoint && p256dh && auth ? { endpoint: j.endpoint, keys: { p256dh, auth } } : undefined;
}

export interface SetUpPushOptions {
  /**
   * A subscription made elsewhere (`pushsubscriptionchange`'s new one; in end-to-end tests a
   * stand-in push service's, since headless Chromium reaches no push service).
   */
  readonly subscription?: PushSubscriptionJson;
}

/** Subscribes if needed and registers at every relay this device receives from; resolves the state per relay. */
export async function setUpPush(
  peer: PeerApi,
  registration: ServiceWorkerRegistration,
  opts: SetUpPushOptions = {},
): Promise<PushRecord | undefined> {
  const relays = await peer.receiveRelays();
  const keys = await Promise.all(relays.map(async (url) => ({ url, answer: await peer.pushVapidKey(url) })));
  const primary = keys.find((k) => 'key' in k.answer && k.answer.key !== null);
  const previous = await pushRecord();
  if (!primary || !('key' in primary.answer) || primary.answer.key === null) {
    const states: RelayPushState[] = keys.map((k) =>
      'key' in k.answer ? { relayUrl: k.url, state: 'off' } : { relayUrl: k.url, state: 'failed', detail: k.answer.error },
    );
    await setPlatformMeta(PUSH_KEY, { endpoint: previous?.endpoint ?? '', key: '', relays: states, at: Date.now() } satisfies PushRecord);
    return pushRecord();
  }
  const key = primary.answer.key;
  let sub = opts.subscription;
  if (!sub) {
    const keyBytes = fromB64u(key);
    if (!keyBytes) throw new Error(`${primary.url} sent a malformed VAPID key`);
    let existing = await registration.pushManager.getSubscription();
    if (existing && !sameBytes(existing.options.applicationServerKey, keyBytes)) {
      await existing.unsubscribe();
      existing = null;
    }
    const browserSub =
      existing ?? (await registration.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: new Uint8Array(keyBytes) }));
    sub = subscriptionJson(browserSub);
    if (!sub) throw new Error('the browser gave a push subscription without keys');
  }
  const states: RelayPushState[] = [];
  for (const k of keys) {
    if (!('key' in k.answer)) states.push({ relayUrl: k.url, state: 'failed', detail: k.answer.error });
    else if (k.answer.key === null) states.push({ relayUrl: k.url, state: 'off' });
    else if (k.answer.key !== key) states.push({ relayUrl: k.url, state: 'other_key' });
    else {
      const r = await peer.registerPush(k.url, sub);
      states.push(r.ok ? { relayUrl: k.url, state: 'registered' } : { relayUrl: k.url, state: 'failed', detail: r.error });
    }
  }
  // A replaced subscription (new key, or the browser rotated it): the relays forget the old endpoint.
  if (previous && previous.endpoint && previous.endpoint !== sub.endpoint) {
    for (const r of previous.relays)
      if (r.state === 'registered') await peer.unregisterPush(r.relayUrl, previous.endpoint).catch(() => undefined);
  }
  const record: PushRecord = { endpoint: sub.endpoint, key, relays: states, at: Date.now() };
  await setPlatformMeta(PUSH_KEY, record);
  return record;
}

/** Notifications turned off: the relays forget the subscription, then the browser drops it. */
export async function tearDownPush(peer: PeerApi, registration: ServiceWorkerRegistration | undefined): Promise<void> {
  const previous = await pushRecord();
  if (previous?.endpoint) {
    for (const r of previous.relays)
      if (r.state === 'registered') await peer.unregisterPush(r.relayUrl, previous.endpoint).catch(() => undefined);
  }
  const sub = await registration?.pushManager.getSubscription();
  await sub?.unsubscribe();
  await setPlatformMeta(PUSH_KEY, undefined);
}
