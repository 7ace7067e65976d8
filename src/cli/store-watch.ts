/**
 * Notices writes to the home's SQLite store by other `spl` processes (`spl config relay set`,
 * `spl emit` while `spl serve` runs), so the daemon's scheduler refreshes without a restart.
 *
 * SQLite's `PRAGMA data_version` changes exactly when another connection committed: one integer
 * read per interval on a connection of our own, instead of re-reading the config and the outbox.
 * Our engine's connection counts as "another" too, so the daemon's own commits also trigger a
 * refresh; a refresh only reads (it never writes), so that cannot feed itself.
 */
import Database from 'better-sqlite3';

export const STORE_WATCH_INTERVAL_MS = 1_000;

export interface StoreWatch {
  close(): void;
}

export function watchStore(
  dbPath: string,
  onChange: () => void,
  onError: (msg: string) => void,
  intervalMs = STORE_WATCH_INTERVAL_MS,
): StoreWatch {
  const db = new Database(dbPath, { fileMustExist: true });
  db.pragma('busy_timeout = 5000');
  const read = (): number => db.pragma('data_version', { simple: true }) as number;
  let last = read();
  const timer = setInterval(() => {
    try {
      const now = read();
      if (now !== last) {
        last = now;
        onChange();
      }
    } catch (e) {
      onError(`watching the store failed: ${e instanceof Error ? e.message : String(e)}`);
    }
  }, intervalMs);
  return {
    close() {
      clearInterval(timer);
      db.close();
    },
  };
}
