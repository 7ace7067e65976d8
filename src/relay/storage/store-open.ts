/**
 * Store selection from `--db`: a `postgres://` or `postgresql://` URL opens PgMailboxStore (many
 * relay processes on one database); anything else is a SQLite file path or `:memory:`.
 */
import type { Logger } from 'pino';
import type { RelayOptions } from '../options';
import { PgMailboxStore } from './pg-store';
import { SqliteMailboxStore } from './sqlite-store';
import type { MailboxStore } from './store';

export const isPostgresUrl = (db: string): boolean => /^postgres(ql)?:\/\//i.test(db);

/** What the listening line may say about the store: never the URL (it may hold a password). */
export const storeKind = (db: string): 'postgres' | ':memory:' | 'file' =>
  isPostgresUrl(db) ? 'postgres' : db === ':memory:' ? ':memory:' : 'file';

export async function openStore(options: RelayOptions, logger: Logger): Promise<MailboxStore> {
  const { db } = options;
  if (isPostgresUrl(db)) {
    return PgMailboxStore.open(db, {
      poolSize: options.dbPoolSize,
      maxDbBytes: options.maxDbBytes,
      onBackgroundError: (err) => logger.warn({ err: { message: err.message } }, 'postgres connection error'),
    });
  }
  return new SqliteMailboxStore(db, {
    storage: { maxDbBytes: options.maxDbBytes, minFreeDiskBytes: db === ':memory:' ? 0 : options.minFreeDiskBytes },
  });
}
