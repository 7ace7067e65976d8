/**
 * Browser-safe store exports: the contract and the IndexedDB adapter. The SQLite adapter is Node
 * only; import it directly from './sqlite' (never from here, or browser bundles pull it in).
 */
export * from './types';
export { IDB_SCHEMA_VERSION, IdbPeerStore, openIdbPeerStore } from './idb';
