/**
 * The app's shared state: the peer engine, the route, the names of paired peers, a revision
 * counter screens re-read on, the flash message (aria-live) screens write to, and this device's
 * local hiding lists (archive, delete).
 */
import type { Identity } from '../../sync/store-types';
import type { Pair, PeerApi } from '../../sync/types';
import type { PageSync } from '../../browser/page-sync';
import type { SchedulerSummary } from '../../sync/scheduler-events';
import type { WorkerConnection } from './sw-client';
import { requestBackgroundFlush } from './sw-client';
import { shortDid } from './format';
import { displayName } from './names';
import { flashAfterNavigation, makeFlash, type Flash, type FlashTone } from './flash';
import { browserKeyValue, LastSeen, LocalLists, type ListName } from './local-lists';
import { parseRoute, routeHref, type Route } from './routes';

export { parseRoute, routeHref, type Route };

/** What `beforeinstallprompt` hands the page (not in TypeScript's DOM lib). */
export interface InstallPromptEvent extends Event {
  prompt(): Promise<void>;
  readonly userChoice: Promise<{ outcome: 'accepted' | 'dismissed' }>;
}

export class AppModel {
  identity = $state<Identity | undefined>(undefined);
  pairs = $state<Pair[]>([]);
  route = $state<Route>({ screen: 'threads' });
  /** Bumped whenever stored data may have changed; screens reload in an $effect on it. */
  revision = $state(0);
  /** The one flash message, owned by the screen it was said on; announced politely. */
  flash = $state<Flash | undefined>(undefined);
  connection = $state<SchedulerSummary>({ kind: 'idle' });
  /** A backlog being fetched after a long absence: envelopes so far and still waiting at the relay. */
  draining = $state<{ received: number; remaining: number } | undefined>(undefined);
  /** Whether any relay is configured (the header says "No relay set" rather than "unreachable"). */
  hasRelay = $state<boolean | undefined>(undefined);
  /** An invite payload from a `#pair=` link, waiting for the person to accept or dismiss it. */
  pendingInvite = $state<string | undefined>(undefined);
  worker = $state<WorkerConnection | undefined>(undefined);
  /** The browser's install offer, kept until used (Chromium: `beforeinstallprompt`). */
  installPrompt = $state<InstallPromptEvent | undefined>(undefined);
  sync: PageSync | undefined;

  readonly lists = new LocalLists(browserKeyValue());
  readonly lastSeen = new LastSeen(browserKeyValue());
  // Each set is replaced whole, never mutated in place: $state tracks the reassignment, no SvelteSet needed.
  /* eslint-disable svelte/prefer-svelte-reactivity */
  archived = $state<ReadonlySet<string>>(new Set());
  deletedThreads = $state<ReadonlySet<string>>(new Set());
  hiddenNotes = $state<ReadonlySet<string>>(new Set());
  /* eslint-enable svelte/prefer-svelte-reactivity */

  constructor(readonly peer: PeerApi) {
    this.identity = peer.identity();
    this.archived = this.lists.get('archived-threads');
    this.deletedThreads = this.lists.get('deleted-threads');
    this.hiddenNotes = this.lists.get('hidden-notes');
  }

  /** The status text, kept for callers that only read it. */
  get status(): string {
    return this.flash?.text ?? '';
  }

  changed(): void {
    this.revision++;
    void this.refreshPairs();
  }

  private flashTimer: ReturnType<typeof setTimeout> | undefined;

  /**
   * Shows and announces a sentence on the current screen. It replaces any earlier one, goes when
   * the person navigates, and fades after a while so stale news does not linger.
   */
  announce(message: string, tone: FlashTone = 'info'): void {
    this.flash = makeFlash(message, tone, this.route);
    clearTimeout(this.flashTimer);
    this.flashTimer = setTimeout(() => (this.flash = undefined), tone === 'error' ? 15_000 : 8000);
  }

  /** A screen showing its own error removes a flash that could contradict it. */
  clearFlash(): void {
    this.flash = undefined;
  }

  /** Called on every navigation. */
  navigated(route: Route): void {
    this.route = route;
    this.flash = flashAfterNavigation(this.flash, route);
  }

  async refreshPairs(): Promise<void> {
    if (!this.identity) return;
    const [pairs, relays] = await Promise.all([this.peer.pairs(), this.peer.relays()]);
    this.pairs = pairs;
    this.hasRelay = relays.some((r) => r.enabled);
  }

  /** Name of a paired peer, "you" for this device, else the short DID; always safe to show. */
  nameOf(did: string): string {
    if (did === this.identity?.did) return `${displayName(this.identity.name)} (you)`;
    const name = this.pairs.find((p) => p.peerDid === did)?.name;
    return name !== undefined ? displayName(name) || shortDid(did) : shortDid(did);
  }

  go(route: Route): void {
    location.hash = routeHref(route);
  }

  setListed(list: ListName, id: string, member: boolean): void {
    const next = this.lists.set(list, id, member);
    if (list === 'archived-threads') this.archived = next;
    else if (list === 'deleted-threads') this.deletedThreads = next;
    else this.hiddenNotes = next;
  }

  /**
   * After a local write: try to deliver now; if that leaves anything pending (offline, relay down),
   * ask the service worker to flush when connectivity returns.
   */
  async deliverSoon(): Promise<void> {
    try {
      // Through the scheduler when it runs: one flush at a time, and its retry timer re-armed.
      const report = this.sync ? await this.sync.flush() : await this.peer.flushOutbox();
      if (!report || report.pending > 0 || !navigator.onLine) await requestBackgroundFlush(this.worker);
    } catch {
      await requestBackgroundFlush(this.worker);
    }
    this.changed();
  }
}
