/**
 * A read-only window into the store for the browser end-to-end tests, installed only when the page
 * was opened with an `e2e-*` query flag. It reads IndexedDB through the same store the app uses.
 */
import type { Counters, PeerStore } from '../../sync/store-types';
import type { PushSubscriptionJson, RelayPushState } from '../../sync/types';
import type { AppModel } from './app.svelte';
import { ensurePush } from './push';

export interface TestProbe {
  did(): string | undefined;
  /** Records stored in `thread`, counted in IndexedDB. */
  recordCount(thread: string): Promise<number>;
  recordIds(thread: string): Promise<string[]>;
  counters(): Promise<Counters>;
  /** Pairs as stored (names not as shown). */
  pairs(): Promise<{ peerDid: string; name: string; enabled: boolean; waiting: boolean; threads: readonly string[] }[]>;
  /**
   * Push set-up through the app's own path with a given subscription: headless Chromium reaches
   * no push service, so tests hand in a stand-in's (PROTOCOL.md §5.2).
   */
  setUpPush(subscription: PushSubscriptionJson): Promise<readonly RelayPushState[]>;
}

declare global {
  interface Window {
    __splProbe?: TestProbe;
  }
}

export function installTestProbe(model: AppModel, store: PeerStore): void {
  window.__splProbe = {
    did: () => model.identity?.did,
    recordCount: async (thread) => (await store.recordsByThread(thread)).length,
    recordIds: async (thread) => (await store.recordsByThread(thread)).map((r) => r.id),
    counters: () => store.getCounters(),
    setUpPush: async (subscription) => (await ensurePush(model.peer, { subscription }))?.relays ?? [],
    pairs: async () =>
      (await model.peer.pairs()).map((p) => ({
        peerDid: p.peerDid,
        name: p.name,
        enabled: p.enabled,
        waiting: p.waiting === true,
        threads: p.threads,
      })),
  };
}
