/**
 * The store's types that the page and the service worker see (records, identity, counters),
 * re-exported so src/ui and src/sw import src/sync and never src/store.
 */
export type { CounterName, Counters, DeliveryPath, Identity, OutboxEntry, PeerStore, ReceiveState, StoredRecord } from '../store/types';
