/** The relay as a library: embed with `startRelay`, or bring your own MailboxStore. */
export { startRelay, createRelayLogger, type RelayHandle, type StartRelayOptions } from './server';
export {
  DEFAULT_OPTIONS,
  effectiveTtlSeconds,
  parseRateLimit,
  validateOptions,
  RelayOptionError,
  type RelayOptions,
  type RateLimit,
} from './options';
export type { MailboxStore, StoredEnvelope, DepositLimits, DepositOutcome, ReceiveResult, StoreHealth, StoreStats } from './storage/store';
export { MemoryMailboxStore } from './storage/memory-store';
export { SqliteMailboxStore, type SqliteStoreOptions } from './storage/sqlite-store';
