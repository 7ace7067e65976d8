/**
 * Facts only the platform knows, in a tiny IndexedDB database ("spl-platform") beside the peer
 * store: when the background receive task last ran (doctor shows it), push state, and whether
 * the person wants notifications (set on the page, read by the service worker).
 */
import { openDB, type IDBPDatabase } from 'idb';

const PLATFORM_DB_NAME = 'spl-platform';
const META_STORE = 'meta';

export interface ReceiveTaskRun {
  readonly at: number;
  readonly by: 'service-worker' | 'page';
  readonly trigger: string;
  readonly ingested: number;
  readonly error?: string;
}

let metaDb: Promise<IDBPDatabase> | undefined;
function meta(): Promise<IDBPDatabase> {
  metaDb ??= openDB(PLATFORM_DB_NAME, 1, {
    upgrade(db) {
      db.createObjectStore(META_STORE);
    },
  });
  return metaDb;
}

const runKey = (by: ReceiveTaskRun['by']): string => `receive-task:${by}`;

export async function recordReceiveTaskRun(run: ReceiveTaskRun): Promise<void> {
  const db = await meta();
  await db.put(META_STORE, run, runKey(run.by));
}

export async function lastReceiveTaskRun(by: ReceiveTaskRun['by']): Promise<ReceiveTaskRun | undefined> {
  const db = await meta();
  const value: unknown = await db.get(META_STORE, runKey(by));
  return isReceiveTaskRun(value) ? value : undefined;
}

function isReceiveTaskRun(v: unknown): v is ReceiveTaskRun {
  return typeof v === 'object' && v !== null && typeof (v as { at?: unknown }).at === 'number';
}

/** Reads one platform fact (e.g. push state, src/browser/push.ts). */
export async function platformMeta<T>(key: string): Promise<T | undefined> {
  const db = await meta();
  return (await db.get(META_STORE, key)) as T | undefined;
}

/** Writes (or with `undefined`, deletes) one platform fact. */
export async function setPlatformMeta(key: string, value: unknown): Promise<void> {
  const db = await meta();
  if (value === undefined) await db.delete(META_STORE, key);
  else await db.put(META_STORE, value, key);
}

// ---- notification preference (set on the page, read by the service worker) -------------------

const NOTIFY_KEY = 'notifications';

/** Whether the person wants notifications (default on; the browser permission is asked separately). */
export async function notificationsWanted(): Promise<boolean> {
  const db = await meta();
  return (await db.get(META_STORE, NOTIFY_KEY)) !== false;
}

export async function setNotificationsWanted(on: boolean): Promise<void> {
  const db = await meta();
  await db.put(META_STORE, on, NOTIFY_KEY);
}
