/**
 * Push wake from the page (PROTOCOL.md §5.2): set up only with the owner's consent (permission
 * granted and notifications on), at start and when they are turned on; torn down when turned off.
 */
import { notificationsWanted } from '../../browser/platform-meta';
import { pushRecord, pushSupported, setUpPush, tearDownPush, type PushRecord, type SetUpPushOptions } from '../../browser/push';
import type { PeerApi, RelayPushState } from '../../sync/types';

const registration = async (): Promise<ServiceWorkerRegistration | undefined> =>
  'serviceWorker' in navigator ? navigator.serviceWorker.ready : undefined;

const consented = async (): Promise<boolean> =>
  typeof Notification !== 'undefined' && Notification.permission === 'granted' && (await notificationsWanted().catch(() => false));

/** Registers this device for push at its relays when the owner consented; resolves the state or undefined. */
export async function ensurePush(peer: PeerApi, opts: SetUpPushOptions = {}): Promise<PushRecord | undefined> {
  if (!pushSupported() || !peer.identity() || !(await consented())) return undefined;
  const reg = await registration();
  if (!reg) return undefined;
  return setUpPush(peer, reg, opts);
}

export async function stopPush(peer: PeerApi): Promise<void> {
  if (!pushSupported() || !peer.identity()) return;
  await tearDownPush(peer, await registration());
}

/** Push state per relay URL, for the Relays screen. */
export async function pushStates(): Promise<Record<string, RelayPushState>> {
  const rec = await pushRecord().catch(() => undefined);
  return Object.fromEntries((rec?.relays ?? []).map((r) => [r.relayUrl, r]));
}
