/**
 * The slice of the service-worker global scope this app uses. The project compiles against the
 * DOM lib (pages), and the WebWorker lib cannot be loaded beside it, so the worker types we need
 * are declared here instead of pulling `lib.webworker` into every file.
 */
import type { PrecacheEntry } from 'workbox-precaching';

export interface ExtendableEvt extends Event {
  waitUntil(promise: Promise<unknown>): void;
}

/** `sync` and `periodicsync` events. */
export interface TaggedSyncEvt extends ExtendableEvt {
  readonly tag: string;
  /** One-off sync only: true when the browser will not retry after this attempt. */
  readonly lastChance?: boolean;
}

export interface WindowClientLike {
  readonly id: string;
  readonly url: string;
  readonly type: string;
  readonly visibilityState?: DocumentVisibilityState;
  postMessage(message: unknown): void;
  focus?(): Promise<unknown>;
  navigate?(url: string): Promise<unknown>;
}

export interface ExtendableMessageEvt extends ExtendableEvt {
  readonly data: unknown;
  readonly ports: readonly MessagePort[];
  readonly source: WindowClientLike | null;
}

export interface NotificationEvt extends ExtendableEvt {
  readonly notification: Notification;
}

/** `push` (PROTOCOL.md §5.2): `data` is the relay's decrypted `{"v":1,"mailbox","queued"}`. */
export interface PushEvt extends ExtendableEvt {
  readonly data: { text(): string } | null;
}

/** The browser replaced (or dropped) the push subscription; `newSubscription` is absent in some browsers. */
export interface PushSubscriptionChangeEvt extends ExtendableEvt {
  readonly oldSubscription?: PushSubscription | null;
  readonly newSubscription?: PushSubscription | null;
}

export interface ServiceWorkerScope {
  readonly registration: ServiceWorkerRegistration;
  readonly clients: {
    matchAll(options?: { type?: 'window' | 'all'; includeUncontrolled?: boolean }): Promise<WindowClientLike[]>;
    claim(): Promise<void>;
    openWindow(url: string): Promise<unknown>;
  };
  readonly __WB_MANIFEST: (PrecacheEntry | string)[];
  skipWaiting(): Promise<void>;
  addEventListener(type: 'install' | 'activate', listener: (event: ExtendableEvt) => void): void;
  addEventListener(type: 'sync' | 'periodicsync', listener: (event: TaggedSyncEvt) => void): void;
  addEventListener(type: 'message', listener: (event: ExtendableMessageEvt) => void): void;
  addEventListener(type: 'notificationclick', listener: (event: NotificationEvt) => void): void;
  addEventListener(type: 'push', listener: (event: PushEvt) => void): void;
  addEventListener(type: 'pushsubscriptionchange', listener: (event: PushSubscriptionChangeEvt) => void): void;
}
