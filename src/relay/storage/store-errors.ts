/**
 * A store that cannot reach its database right now (PostgreSQL down or restarting, no connection
 * to be had): the relay answers `503 unavailable` instead of `500`, and the client retries later.
 * Nothing was committed by the failed operation.
 */
export class StoreUnavailableError extends Error {
  override readonly name = 'StoreUnavailableError';
}

export const isStoreUnavailable = (e: unknown): e is StoreUnavailableError => e instanceof StoreUnavailableError;

/**
 * The SQLite database on disk is newer than this relay or fails an integrity check (damaged WAL,
 * `PRAGMA quick_check`): an operator must restore it. `spl-relay` exits 3.
 */
export class DatabaseRefusedError extends Error {
  override readonly name = 'DatabaseRefusedError';
}
