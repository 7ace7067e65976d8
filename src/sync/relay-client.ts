/**
 * One relay, as the engine talks to it (§5): deposit, long-poll receive, ack, deposit tokens
 * (§5.1), push subscriptions (§5.2) and health. The URL is parsed once; mailbox requests are
 * signed with this device's key (§5 owner auth) over the exact path and body sent.
 */
import { isObject, signMailboxRequest } from '../core';
import { requestJson, type HttpOutcome } from './http';
import type { PeerContext } from './context';
import type { PushSubscriptionJson, RelayHealth } from './types';

export const RELAY_TIMEOUT_MS = 15_000;
/** §7 direct delivery and health checks: a peer that takes longer is treated as away. */
export const DIRECT_TIMEOUT_MS = 5_000;
/** §5: at most 1000 IDs per ack. */
const ACK_CHUNK = 1000;

type Method = 'GET' | 'POST' | 'PUT' | 'DELETE';

/** A page of a mailbox (§5 receive), parsed. */
export type ReceivePage =
  | { readonly ok: true; readonly envelopes: readonly unknown[]; readonly remaining: number; readonly latencyMs: number }
  | { readonly ok: false; readonly aborted: boolean; readonly error: string };

export class RelayClient {
  /** `https://host:port`, and the path prefix the relay is mounted under (no trailing slash). */
  private readonly origin: string;
  private readonly prefix: string;
  private readonly host: string;
  /** Deposit tokens this engine registered here (§5.1), once per token for the engine's life. */
  private readonly tokensRegistered = new Set<string>();

  constructor(
    readonly url: string,
    private readonly ctx: PeerContext,
  ) {
    const base = new URL(url);
    this.origin = base.origin;
    this.host = base.host;
    this.prefix = base.pathname.replace(/\/+$/, '');
  }

  /** §5 deposit of a serialized envelope; `token` is the receiver's deposit token (§5.1), if known. */
  deposit(toDid: string, envelope: string, token?: string): Promise<HttpOutcome> {
    const headers: Record<string, string> = { 'content-type': 'application/json' };
    if (token) headers['x-syncropel-deposit-token'] = token;
    return this.request(
      `${this.prefix}/v1/mailbox/${encodeURIComponent(toDid)}`,
      { method: 'POST', headers, body: envelope },
      RELAY_TIMEOUT_MS,
    );
  }

  /** One page of our own mailbox, waiting up to `waitSeconds` for the first envelope (§5 long-poll). */
  async receivePage(limit: number, waitSeconds: number, signal?: AbortSignal): Promise<ReceivePage> {
    const path = `${this.mailbox()}/receive?limit=${limit}&wait=${waitSeconds}`;
    const res = await this.signed('GET', path, '', RELAY_TIMEOUT_MS + waitSeconds * 1000, signal);
    if (res.aborted) return { ok: false, aborted: true, error: 'aborted' };
    if (res.status !== 200 || !isObject(res.body) || !Array.isArray(res.body.envelopes)) {
      return { ok: false, aborted: false, error: res.error ?? `unexpected receive answer (HTTP ${res.status})` };
    }
    const remaining = typeof res.body.remaining === 'number' ? res.body.remaining : 0;
    return { ok: true, envelopes: res.body.envelopes, remaining, latencyMs: res.latencyMs };
  }

  /** Removes envelopes from our mailbox, in chunks of at most 1000 IDs. */
  async ack(ids: readonly string[]): Promise<{ removed: number; error?: string }> {
    let removed = 0;
    for (let i = 0; i < ids.length; i += ACK_CHUNK) {
      const res = await this.signed(
        'POST',
        `${this.mailbox()}/ack`,
        JSON.stringify({ ids: ids.slice(i, i + ACK_CHUNK) }),
        RELAY_TIMEOUT_MS,
      );
      if (res.status !== 200) return { removed, error: `ack failed: ${res.error ?? res.status}` };
      if (isObject(res.body) && typeof res.body.removed === 'number') removed += res.body.removed;
    }
    return { removed };
  }

  /** Registers our deposit token here (§5.1), once per token. */
  async registerToken(token: string): Promise<void> {
    if (this.tokensRegistered.has(token)) return;
    const res = await this.signed('PUT', `${this.mailbox()}/tokens`, JSON.stringify({ tokens: [token] }), RELAY_TIMEOUT_MS);
    // 404/405: a relay without §5.1 takes every deposit against the cap; nothing to register there.
    if (res.status === 200 || res.status === 404 || res.status === 405) this.tokensRegistered.add(token);
  }

  async health(): Promise<RelayHealth> {
    const res = await this.request(`${this.prefix}/health`, { method: 'GET' }, DIRECT_TIMEOUT_MS);
    const healthy = res.status === 200 && isObject(res.body) && res.body.status === 'ok';
    return {
      url: this.url,
      ok: healthy,
      ...(res.status ? { status: res.status } : {}),
      latencyMs: res.latencyMs,
      ...(healthy ? {} : { error: res.error ?? 'unexpected /health answer' }),
    };
  }

  /** The relay's VAPID key (b64u), `null` when push is off there (404), or an error sentence (§5.2). */
  async pushVapidKey(): Promise<{ key: string | null } | { error: string }> {
    const res = await this.request(`${this.prefix}/v1/push/vapid`, { method: 'GET' }, RELAY_TIMEOUT_MS);
    if (res.status === 404) return { key: null };
    if (res.status === 200 && isObject(res.body) && typeof res.body.public_key === 'string') return { key: res.body.public_key };
    return { error: res.error ?? `unexpected answer (HTTP ${res.status})` };
  }

  /** Registers (PUT) or removes (DELETE, idempotent) a push subscription for our mailbox (§5.2). */
  async pushSubscription(
    method: 'PUT' | 'DELETE',
    subscription: PushSubscriptionJson | { endpoint: string },
  ): Promise<{ ok: true } | { ok: false; error: string }> {
    const body =
      'keys' in subscription
        ? JSON.stringify({ endpoint: subscription.endpoint, keys: { p256dh: subscription.keys.p256dh, auth: subscription.keys.auth } })
        : JSON.stringify({ endpoint: subscription.endpoint });
    const res = await this.signed(method, `${this.mailbox()}/push`, body, RELAY_TIMEOUT_MS);
    return res.status === 200 ? { ok: true } : { ok: false, error: res.error ?? `HTTP ${res.status}` };
  }

  private mailbox(): string {
    return `${this.prefix}/v1/mailbox/${encodeURIComponent(this.ctx.requireIdentity().me.did)}`;
  }

  private request(path: string, init: RequestInit, timeoutMs: number, signal?: AbortSignal): Promise<HttpOutcome> {
    return requestJson(this.ctx.fetchFn, `${this.origin}${path}`, init, timeoutMs, this.ctx.now, signal);
  }

  /** A mailbox request signed by its owner (§5): method, host, path and query, body, time. */
  private async signed(method: Method, path: string, body: string, timeoutMs: number, signal?: AbortSignal): Promise<HttpOutcome> {
    const { signer } = this.ctx.requireIdentity();
    const auth = await signMailboxRequest({ method, host: this.host, pathAndQuery: path, body }, signer, this.ctx.now());
    const headers: Record<string, string> = { authorization: auth };
    if (method !== 'GET') headers['content-type'] = 'application/json';
    return this.request(path, { method, headers, ...(method !== 'GET' ? { body } : {}) }, timeoutMs, signal);
  }
}
