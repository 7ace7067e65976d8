/**
 * Push wake (PROTOCOL.md §5.2): after a deposit is committed (never delaying its 202), one push
 * per subscription of the mailbox, unless one was already sent since the owner last received.
 * `web-push` encrypts (RFC 8291 aes128gcm) and signs (VAPID, RFC 8292); this module owns the
 * transport, so every send connects to the very address the endpoint check approved.
 */
import { createHash, createHmac } from 'node:crypto';
import http from 'node:http';
import https from 'node:https';
import type { LookupFunction } from 'node:net';
import type { Logger } from 'pino';
import type { Counter } from 'prom-client';
import webpush from 'web-push';
import { checkEndpoint, type Resolver } from './address';
import type { PushOptions } from './options';
import type { PushSubscriptionData, PushSubscriptionStore, StoredPushSubscription } from './subscriptions';
import type { VapidKeys } from './vapid-key';

/** §5.2: at most five subscriptions per mailbox; a sixth replaces the oldest. */
export const MAX_SUBSCRIPTIONS_PER_MAILBOX = 5;
/** §5.2 "TTL at most a day": a phone offline for hours still gets its wake. */
export const PUSH_TTL_SECONDS = 86_400;
/** Retries of a failed send (network error, 429, 5xx), with doubling backoff from this delay. */
const RETRIES = 4;
const FIRST_BACKOFF_MS = 1_000;
const MAX_BACKOFF_MS = 60_000;
const SEND_TIMEOUT_MS = 15_000;
/**
 * How long a mailbox's subscription list read for a deposit is reused. Measured in `bench:relay`
 * (push on, nobody subscribed): reading it for every deposit was ~6% of the relay's main thread,
 * most of it SQLite's file locking. This process's own registrations and removals take effect at
 * once; one made through another relay process sharing the store, within this long.
 */
export const SUBSCRIPTIONS_FRESH_MS = 1_000;
/** Mailboxes whose lists are kept at most (a few hundred bytes each); past it the memo starts over. */
const MAX_REMEMBERED_MAILBOXES = 65_536;

export type PushResult = 'sent' | 'gone' | 'retried' | 'failed' | 'refused';
export const PUSH_RESULTS: readonly PushResult[] = ['sent', 'gone', 'retried', 'failed', 'refused'];

export interface PushServiceDeps {
  readonly options: PushOptions;
  readonly keys: VapidKeys;
  /** The VAPID subject; read at each send (the default names the relay's origin, known once it listens). */
  readonly subject: () => string;
  readonly store: PushSubscriptionStore;
  /** Envelopes queued for `did` now (the payload's `queued`). */
  readonly countQueued: (did: string) => Promise<number>;
  readonly counter: Counter<'result'>;
  readonly logger: Logger;
  readonly resolve: Resolver;
}

interface SubscriptionState {
  lastSentAt: number;
  /** A send waiting for the 30 s interval to pass (or a retry backoff). */
  timer: NodeJS.Timeout | undefined;
  sending: boolean;
}

/** A subscription's key in logs and state: never the endpoint itself (§5.2 "never logged"). */
const subKey = (did: string, endpoint: string): string =>
  createHash('sha256').update(did).update('\n').update(endpoint).digest('base64url').slice(0, 16);

export class PushService {
  private readonly subs = new Map<string, SubscriptionState>();
  private readonly inFlight = new Set<http.ClientRequest>();
  private closed = false;
  private readonly topicKey: Buffer;
  /** Subscription lists read for deposits, by DID, and when (see SUBSCRIPTIONS_FRESH_MS). */
  private readonly lists = new Map<string, { readonly at: number; readonly subs: readonly StoredPushSubscription[] }>();
  /** Moves on every change made here: a list read before it is not kept (it may miss that change). */
  private listsEpoch = 0;

  private readonly pruneTimer: NodeJS.Timeout;

  constructor(private readonly deps: PushServiceDeps) {
    this.topicKey = createHash('sha256').update('syncropel-push-topic\n').update(deps.keys.privateKey).digest();
    // Interval state is only needed for an interval after a send: keep the map small.
    const intervalMs = deps.options.minIntervalSeconds * 1000;
    this.pruneTimer = setInterval(
      () => {
        const now = Date.now();
        for (const [key, s] of this.subs) if (!s.timer && !s.sending && s.lastSentAt + intervalMs < now) this.subs.delete(key);
      },
      Math.max(intervalMs, 60_000),
    );
    this.pruneTimer.unref();
  }

  get publicKey(): string {
    return this.deps.keys.publicKey;
  }

  /**
   * `Topic` (RFC 8030 §5.4): fixed per mailbox so unread pushes collapse at the push service;
   * keyed by the relay's secret so the push service cannot match it against known DIDs.
   * 22 b64u characters (132 bits), under the 32 allowed.
   */
  topicFor(did: string): string {
    return createHmac('sha256', this.topicKey).update(did).digest('base64url').slice(0, 22);
  }

  async register(did: string, sub: PushSubscriptionData, now: number): Promise<number> {
    try {
      return await this.deps.store.put(did, sub, now, MAX_SUBSCRIPTIONS_PER_MAILBOX);
    } finally {
      this.dropList(did);
    }
  }

  async unregister(did: string, endpoint: string): Promise<boolean> {
    this.forget(did, endpoint);
    try {
      return await this.deps.store.remove(did, endpoint);
    } finally {
      this.dropList(did); // a list read while it was removed may still name it
    }
  }

  list(did: string): Promise<readonly StoredPushSubscription[]> {
    return this.deps.store.list(did);
  }

  /**
   * An authorized receive started: the owner is awake. Called before the read, so a deposit
   * committed after this call is pushed again and one committed before is in the read.
   */
  onReceive(did: string): Promise<void> {
    return this.deps.store.clearWoken(did).catch((err: unknown) => this.deps.logger.error({ err }, 'push: cannot re-arm a wake'));
  }

  /** After a deposit was committed (its 202 may already be on the wire); never throws. */
  onDeposit(did: string): void {
    if (this.closed) return;
    void this.wake(did).catch((err: unknown) => this.deps.logger.error({ err }, 'push wake failed'));
  }

  private async wake(did: string): Promise<void> {
    // Most mailboxes have no subscription: one read, and no collapse state written for them.
    const subs = await this.subscriptionsOf(did);
    if (subs.length === 0 || !(await this.deps.store.markWoken(did))) return;
    for (const sub of subs) this.schedule(sub, 0);
  }

  /** Sends now, or when the per-subscription interval (or a backoff) allows; one pending send per subscription. */
  private schedule(sub: StoredPushSubscription, attempt: number, delayMs = 0): void {
    const key = subKey(sub.did, sub.endpoint);
    let state = this.subs.get(key);
    if (!state) {
      state = { lastSentAt: -Infinity, timer: undefined, sending: false };
      this.subs.set(key, state);
    }
    if (state.timer || state.sending) return; // the pending send will carry the latest count
    const intervalMs = this.deps.options.minIntervalSeconds * 1000;
    const wait = Math.max(delayMs, state.lastSentAt + intervalMs - Date.now(), 0);
    const s = state;
    const run = (): void => {
      s.timer = undefined;
      void this.send(sub, s, attempt);
    };
    if (wait === 0) run();
    else {
      state.timer = setTimeout(run, wait);
      state.timer.unref();
    }
  }

  private async send(sub: StoredPushSubscription, state: SubscriptionState, attempt: number): Promise<void> {
    if (this.closed) return;
    state.sending = true;
    let outcome: SendOutcome;
    try {
      // Owner received while this send waited: it is awake, no wake needed.
      if (!(await this.deps.store.isWoken(sub.did))) return;
      outcome = await this.deliver(sub);
    } finally {
      state.sending = false;
    }
    const key = subKey(sub.did, sub.endpoint);
    if (outcome.result === 'skipped') return;
    this.deps.counter.inc({ result: outcome.result === 'retry' ? (attempt < RETRIES ? 'retried' : 'failed') : outcome.result });
    switch (outcome.result) {
      case 'sent':
        state.lastSentAt = Date.now();
        this.deps.logger.debug({ sub: key }, 'push sent');
        return;
      case 'gone':
        this.deps.logger.info({ sub: key }, 'push subscription gone (404/410): removed');
        this.forget(sub.did, sub.endpoint);
        await this.deps.store.remove(sub.did, sub.endpoint);
        this.dropList(sub.did); // a list read while it was removed may still name it
        return;
      case 'refused':
        this.deps.logger.warn({ sub: key, reason: outcome.message }, 'push endpoint refused before sending');
        return;
      case 'retry': {
        if (attempt >= RETRIES) {
          this.deps.logger.warn({ sub: key, reason: outcome.message }, 'push failed; giving up');
          return;
        }
        const backoff = Math.min(MAX_BACKOFF_MS, Math.max(outcome.retryAfterMs ?? 0, FIRST_BACKOFF_MS * 2 ** attempt));
        this.schedule(sub, attempt + 1, backoff);
        return;
      }
    }
  }

  private async deliver(sub: StoredPushSubscription): Promise<SendOutcome> {
    // DNS can change between registration and now: check again, then connect to that address.
    const check = await checkEndpoint(sub.endpoint, this.deps.options.allowEndpoint, this.deps.resolve);
    if (!check.ok) return { result: 'refused', message: check.message };
    const queued = await this.deps.countQueued(sub.did);
    if (queued === 0) return { result: 'skipped' }; // drained in between: nothing to wake for
    const payload = JSON.stringify({ v: 1, mailbox: sub.did, queued });
    let details: webpush.RequestDetails;
    try {
      details = webpush.generateRequestDetails({ endpoint: sub.endpoint, keys: { p256dh: sub.p256dh, auth: sub.auth } }, payload, {
        TTL: PUSH_TTL_SECONDS,
        urgency: 'normal',
        topic: this.topicFor(sub.did),
        contentEncoding: 'aes128gcm',
        vapidDetails: { subject: this.deps.subject(), publicKey: this.deps.keys.publicKey, privateKey: this.deps.keys.privateKey },
      });
    } catch (e) {
      // Keys that passed the edge checks but the library refuses: the subscription is unusable.
      return { result: 'gone', message: e instanceof Error ? e.message : String(e) };
    }
    return this.post(check.url, check.address, check.family, details);
  }

  private post(url: URL, address: string | undefined, family: 4 | 6 | undefined, details: webpush.RequestDetails): Promise<SendOutcome> {
    return new Promise((resolve) => {
      const pinned: LookupFunction | undefined =
        address === undefined
          ? undefined
          : (_host, opts, cb) => {
              if ((opts as { all?: boolean }).all)
                (cb as unknown as (e: null, a: { address: string; family: number }[]) => void)(null, [{ address, family: family ?? 4 }]);
              else cb(null, address, family ?? 4);
            };
      const mod = url.protocol === 'https:' ? https : http;
      const headers: Record<string, string> = {};
      for (const [k, v] of Object.entries(details.headers)) headers[k] = String(v);
      const req = mod.request(
        url,
        { method: 'POST', headers, timeout: SEND_TIMEOUT_MS, ...(pinned ? { lookup: pinned } : {}), agent: false },
        (res) => {
          res.resume();
          res.once('end', () => {
            this.inFlight.delete(req);
            const status = res.statusCode ?? 0;
            if (status >= 200 && status < 300) resolve({ result: 'sent' });
            else if (status === 404 || status === 410) resolve({ result: 'gone' });
            else {
              const ra = Number(res.headers['retry-after']);
              resolve({
                result: 'retry',
                message: `push service answered ${status}`,
                ...(Number.isFinite(ra) && ra > 0 ? { retryAfterMs: ra * 1000 } : {}),
              });
            }
          });
        },
      );
      this.inFlight.add(req);
      req.once('timeout', () => req.destroy(new Error('push service timed out')));
      req.once('error', (err) => {
        this.inFlight.delete(req);
        resolve({ result: 'retry', message: err.message });
      });
      req.end(details.body ?? undefined);
    });
  }

  /** The mailbox's subscriptions, as read at most SUBSCRIPTIONS_FRESH_MS ago. */
  private async subscriptionsOf(did: string): Promise<readonly StoredPushSubscription[]> {
    const now = Date.now();
    const known = this.lists.get(did);
    if (known && now - known.at < SUBSCRIPTIONS_FRESH_MS) return known.subs;
    const epoch = this.listsEpoch;
    const subs = await this.deps.store.list(did);
    if (epoch !== this.listsEpoch) return subs;
    if (this.lists.size >= MAX_REMEMBERED_MAILBOXES) this.lists.clear();
    this.lists.set(did, { at: now, subs });
    return subs;
  }

  private dropList(did: string): void {
    this.listsEpoch++;
    this.lists.delete(did);
  }

  private forget(did: string, endpoint: string): void {
    this.dropList(did);
    const key = subKey(did, endpoint);
    const state = this.subs.get(key);
    if (state?.timer) clearTimeout(state.timer);
    this.subs.delete(key);
  }

  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.pruneTimer);
    for (const s of this.subs.values()) if (s.timer) clearTimeout(s.timer);
    this.subs.clear();
    this.lists.clear();
    for (const req of this.inFlight) req.destroy();
    await this.deps.store.close();
  }
}

type SendOutcome =
  | { readonly result: 'sent' | 'gone' | 'skipped'; readonly message?: string }
  | { readonly result: 'refused'; readonly message: string }
  | { readonly result: 'retry'; readonly message: string; readonly retryAfterMs?: number };
