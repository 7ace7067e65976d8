/**
 * The app's shared state: the peer engine, the route, the names of paired peers, a revision
 * counter screens re-read on, and the polite status line (aria-live) everyone writes to.
 */
import type { Identity } from '../../store/types';
import type { Pair, PeerApi } from '../../sync/types';
import type { ForegroundState, ForegroundSync } from './foreground-sync';
import type { WorkerConnection } from './sw-client';
import { requestBackgroundFlush } from './sw-client';
import { shortDid } from './format';

export type Route =
  | { readonly screen: 'threads' }
  | { readonly screen: 'thread'; readonly thread: string }
  | { readonly screen: 'pair' }
  | { readonly screen: 'relays' }
  | { readonly screen: 'sync' }
  | { readonly screen: 'doctor' }
  | { readonly screen: 'me' };

export function parseRoute(hash: string): Route {
  const h = hash.replace(/^#\/?/, '');
  const [screen, arg] = h.split('/');
  switch (screen) {
    case 'thread':
      return arg ? { screen: 'thread', thread: decodeURIComponent(arg) } : { screen: 'threads' };
    case 'pair':
    case 'relays':
    case 'sync':
    case 'doctor':
    case 'me':
      return { screen };
    default:
      return { screen: 'threads' };
  }
}

export const routeHref = (r: Route): string => (r.screen === 'thread' ? `#/thread/${encodeURIComponent(r.thread)}` : `#/${r.screen}`);

export class AppModel {
  identity = $state<Identity | undefined>(undefined);
  pairs = $state<Pair[]>([]);
  route = $state<Route>({ screen: 'threads' });
  /** Bumped whenever stored data may have changed; screens reload in an $effect on it. */
  revision = $state(0);
  /** The latest status sentence, announced politely to screen readers. */
  status = $state('');
  connection = $state<ForegroundState>({ kind: 'idle' });
  /** An invite payload from a `#pair=` link, waiting for the person to accept or dismiss it. */
  pendingInvite = $state<string | undefined>(undefined);
  worker = $state<WorkerConnection | undefined>(undefined);
  sync: ForegroundSync | undefined;

  constructor(readonly peer: PeerApi) {
    this.identity = peer.identity();
  }

  changed(): void {
    this.revision++;
    void this.refreshPairs();
  }

  private statusTimer: ReturnType<typeof setTimeout> | undefined;

  /** Shows and announces a status sentence; it fades after a while so stale news does not linger. */
  announce(message: string): void {
    this.status = message;
    clearTimeout(this.statusTimer);
    this.statusTimer = setTimeout(() => (this.status = ''), 8000);
  }

  async refreshPairs(): Promise<void> {
    if (!this.identity) return;
    this.pairs = await this.peer.pairs();
  }

  /** Name of a paired peer, "you" for this device, else the short DID. */
  nameOf(did: string): string {
    if (did === this.identity?.did) return `${this.identity.name} (you)`;
    return this.pairs.find((p) => p.peerDid === did)?.name ?? shortDid(did);
  }

  go(route: Route): void {
    location.hash = routeHref(route);
  }

  /**
   * After a local write: try to deliver now; if that leaves anything pending (offline, relay down),
   * ask the service worker to flush when connectivity returns.
   */
  async deliverSoon(): Promise<void> {
    try {
      const report = await this.peer.flushOutbox();
      if (report.pending > 0 || !navigator.onLine) await requestBackgroundFlush(this.worker);
    } catch {
      await requestBackgroundFlush(this.worker);
    }
    this.changed();
  }
}
