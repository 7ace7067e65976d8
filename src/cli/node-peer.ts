/**
 * Engine wiring for the headless peer (Node): the SQLite peer store in the home directory, global
 * fetch, and the URL this peer advertises for direct delivery. Several `spl` processes may open
 * the same store (a daemon and a one-shot command); SQLite serialises their writes, and every
 * engine call re-reads config from the store, so each process sees the others' changes.
 */
import { openSqlitePeerStore } from '../store/sqlite';
import { openPeerEngine, type PeerEngine } from '../sync/engine';
import type { PeerEngineDeps } from '../sync/types';
import type { PeerStore } from '../store/types';

export interface NodePeer {
  readonly peer: PeerEngine;
  readonly store: PeerStore;
  close(): Promise<void>;
}

export interface NodePeerOptions {
  /** The SQLite file. */
  readonly dbPath: string;
  /** The app invite links open; without one they are bare `syncropel:#pair=…` links (never a made-up host). */
  readonly appUrl?: string;
  /** Advertised in invites when this peer serves /v1/sync/records. */
  readonly peerUrl?: string;
  readonly fetch?: typeof fetch;
  readonly onIngest?: PeerEngineDeps['onIngest'];
}

export async function openNodePeer(options: NodePeerOptions): Promise<NodePeer> {
  const store = await openSqlitePeerStore(options.dbPath);
  try {
    const peer = await openPeerEngine({
      store,
      fetch: options.fetch ?? globalThis.fetch,
      ...(options.appUrl ? { appUrl: options.appUrl } : {}),
      ...(options.peerUrl ? { peerUrl: options.peerUrl } : {}),
      ...(options.onIngest ? { onIngest: options.onIngest } : {}),
    });
    return { peer, store, close: () => store.close() };
  } catch (e) {
    await store.close();
    throw e;
  }
}
