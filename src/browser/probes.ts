/** Permission and quota probes for doctor (src/sync/doctor.ts gets them as PlatformFacts). */
import type { PlatformFacts, RelayPushState } from '../sync/types';
import { lastReceiveTaskRun, notificationsWanted, platformMeta } from './platform-meta';

/** Periodic Background Sync permission as the Permissions API reports it. */
export async function periodicSyncPermission(): Promise<NonNullable<PlatformFacts['periodicSync']>> {
  if (typeof ServiceWorkerRegistration === 'undefined' || !('periodicSync' in ServiceWorkerRegistration.prototype)) return 'unsupported';
  try {
    // 'periodic-background-sync' is not in TypeScript's PermissionName union yet.
    const status = await navigator.permissions.query({ name: 'periodic-background-sync' as PermissionName });
    return status.state;
  } catch {
    return 'unsupported';
  }
}

/** Everything doctor needs from the browser. */
export async function browserPlatformFacts(): Promise<PlatformFacts> {
  const [periodicSync, estimate, swRun, pageRun, pushState, wanted] = await Promise.all([
    periodicSyncPermission(),
    navigator.storage?.estimate?.().catch(() => undefined),
    lastReceiveTaskRun('service-worker'),
    lastReceiveTaskRun('page'),
    platformMeta<{ relays: readonly RelayPushState[] }>('push').catch(() => undefined),
    notificationsWanted().catch(() => true),
  ]);
  const permitted = typeof Notification !== 'undefined' && Notification.permission === 'granted';
  const lastRun = Math.max(swRun?.at ?? 0, pageRun?.at ?? 0);
  return {
    periodicSync,
    ...(estimate?.quota !== undefined ? { storage: { usage: estimate.usage ?? 0, quota: estimate.quota } } : {}),
    ...(lastRun > 0 ? { receiveTaskLastRunAt: lastRun } : {}),
    push: { supported: 'PushManager' in globalThis, wanted: wanted && permitted, relays: pushState?.relays ?? [] },
  };
}
