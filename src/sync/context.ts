/**
 * What every part of the engine shares: the injected dependencies, this device's identity, one
 * client per relay URL, and the configuration view (§8) folded once and reused until the config
 * thread's clock moves. Another context sharing the store (page and service worker) writes config
 * too, so the cache is checked against the store's clock on every read: one indexed lookup instead
 * of reading and folding every config record, which the engine did 2–14 times per operation.
 */
import { createSigner, type Signer } from '../core';
import type { Identity, PeerStore } from '../store/types';
import { CONFIG_THREAD, foldConfig, normalizeRelayUrl, type EffectiveConfig } from './config';
import { PeerError } from './errors';
import { RelayClient } from './relay-client';
import type { PeerEngineDeps } from './types';

export type WithLock = <T>(name: string, fn: () => Promise<T>) => Promise<T>;

export class PeerContext {
  readonly store: PeerStore;
  readonly fetchFn: typeof fetch;
  readonly now: () => number;
  readonly random: () => number;
  readonly withLock: WithLock;
  private me: Identity | undefined;
  private signer: Signer | undefined;
  private cached: { clock: number; did: string; config: EffectiveConfig } | undefined;
  private readonly relays = new Map<string, RelayClient>();

  constructor(readonly deps: PeerEngineDeps) {
    this.store = deps.store;
    this.fetchFn = deps.fetch;
    this.now = deps.now ?? (() => Date.now());
    this.random = deps.random ?? Math.random;
    this.withLock = deps.withLock ?? inProcessLocks();
  }

  /** Reads the identity from the store (another context may have created it meanwhile). */
  async load(): Promise<Identity | undefined> {
    this.me = await this.store.getIdentity();
    this.signer = this.me ? createSigner(this.me.secretKey) : undefined;
    return this.me;
  }

  identity(): Identity | undefined {
    return this.me;
  }

  adopt(identity: Identity): void {
    this.me = identity;
    this.signer = createSigner(identity.secretKey);
  }

  requireIdentity(): { me: Identity; signer: Signer } {
    if (!this.me || !this.signer) throw new PeerError('no_identity', 'no identity yet: create one first');
    return { me: this.me, signer: this.signer };
  }

  /** The current configuration (§8): folded again only when a config record was written since. */
  async config(): Promise<EffectiveConfig> {
    const { me } = this.requireIdentity();
    const clock = await this.store.maxClock(me.did, CONFIG_THREAD);
    if (this.cached?.clock === clock && this.cached.did === me.did) return this.cached.config;
    const config = foldConfig(await this.store.recordsByThread(CONFIG_THREAD), me.did);
    this.cached = { clock, did: me.did, config };
    return config;
  }

  /** One client per relay: its URL parsed once, its token registrations remembered. */
  relay(url: string): RelayClient {
    const key = normalizeRelayUrl(url);
    let client = this.relays.get(key);
    if (!client) {
      client = new RelayClient(key, this);
      this.relays.set(key, client);
    }
    return client;
  }
}

/** A per-process mutex by name, for when no cross-context lock is injected. */
function inProcessLocks(): WithLock {
  const tails = new Map<string, Promise<unknown>>();
  return async <T>(name: string, fn: () => Promise<T>): Promise<T> => {
    const prev = tails.get(name) ?? Promise.resolve();
    const run = prev.then(fn, fn);
    const tail = run.catch(() => undefined);
    tails.set(name, tail);
    try {
      return await run;
    } finally {
      if (tails.get(name) === tail) tails.delete(name);
    }
  };
}
