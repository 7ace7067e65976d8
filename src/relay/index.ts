/** The relay as a library: embed with `startRelay`, or bring your own MailboxStore. */
export { startRelay, createRelayLogger, type RelayHandle, type StartRelayOptions } from './server';
export { DEFAULT_OPTIONS, effectiveTtlSeconds, parseRateLimit, validateOptions, RelayOptionError, type RelayOptions, type RateLimit } from './options';
export type { MailboxStore, StoredEnvelope, DepositLimits, DepositOutcome, ReceiveResult, StoreHealth, StoreStats } from './store';
export { MemoryMailboxStore } from './memory-store';
export { SqliteMailboxStore, type SqliteStoreOptions } from './sqlite-store';
