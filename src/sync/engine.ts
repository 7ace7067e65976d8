/**
 * The peer engine: one facade over the parts below, the same in a page, a service worker and the
 * headless peer. Platform-free: store, fetch, clock and locks are injected (PeerEngineDeps).
 *
 *   context         deps, identity, the cached configuration view, one client per relay
 *   identity        create, back up, restore                         (§8 settings travel along)
 *   settings        relays and pairs as config records               (§8)
 *   sharing         which threads each pair shares                   (§8, §11)
 *   pairing         invites, replies, confirm / refuse / end         (§9)
 *   emit            own records: clocks, parents, signatures         (§3)
 *   outbox          sealed envelopes out: direct with receipt, relay (§7, §10)
 *   receive         mailbox pages in, acked after commit             (§5, §6)
 *   ingest          open, verify, admit, store, act                  (§6, §8)
 *   admission       who may write where; reused clocks               (§3, §8)
 *   direct          the direct endpoint's handler                    (§7)
 *   convergence     history, forwarding, receipts, delivery states   (§11)
 *   status          sync status and doctor
 */
import type { DropCount, Identity, StoredRecord } from '../store/types';
import { CONFIG_THREAD } from './config';
import { PeerContext } from './context';
import { deliveryStates } from './convergence';
import { handleDirectDelivery } from './direct';
import { emitNote } from './emit';
import { createIdentity, exportIdentity, importIdentity } from './identity';
import { flushOutbox, nextDueAt } from './outbox';
import { acceptInvite, createInvite, endPair } from './pairing';
import { receive } from './receive';
import * as settings from './settings';
import * as sharing from './sharing';
import { doctor, syncStatus } from './status';
import type {
  DirectResponse,
  DoctorReport,
  EmitInput,
  FlushReport,
  Pair,
  PairRefusal,
  PairScope,
  PeerApi,
  PeerEngineDeps,
  PendingShare,
  PlatformFacts,
  PushSubscriptionJson,
  ReceiveOptions,
  ReceiveReport,
  RecordDelivery,
  RelayEntry,
  RelayHealth,
  SyncStatus,
} from './types';

export { DIRECT_TIMEOUT_MS } from './relay-client';

export async function openPeerEngine(deps: PeerEngineDeps): Promise<PeerEngine> {
  const engine = new PeerEngine(deps);
  await engine.load();
  return engine;
}

export class PeerEngine implements PeerApi {
  private readonly ctx: PeerContext;

  constructor(deps: PeerEngineDeps) {
    this.ctx = new PeerContext(deps);
  }

  /** Reads the identity from the store (another context sharing it may have made one). */
  async load(): Promise<void> {
    await this.ctx.load();
  }

  // ---- identity ----
  identity = (): Identity | undefined => this.ctx.identity();
  createIdentity = (name: string): Promise<Identity> => createIdentity(this.ctx, name);
  exportIdentity = (passphrase: string): Promise<string> => exportIdentity(this.ctx, passphrase);
  importIdentity = (file: string, passphrase: string): Promise<Identity> => importIdentity(this.ctx, file, passphrase);

  // ---- settings (§8) ----
  relays = (): Promise<RelayEntry[]> => settings.relays(this.ctx);
  setRelay = (url: string, forPair: PairScope = 'all'): Promise<void> => settings.setRelay(this.ctx, url, forPair);
  clearRelay = (forPair: PairScope): Promise<void> => settings.clearRelay(this.ctx, forPair);
  relayFor = (peerDid: string): Promise<string | undefined> => settings.relayFor(this.ctx, peerDid);
  receiveRelays = (): Promise<string[]> => settings.receiveRelays(this.ctx);
  relayHealth = (url: string): Promise<RelayHealth> => this.ctx.relay(url).health();
  pairs = (): Promise<Pair[]> => settings.pairs(this.ctx);
  setPair = (pair: Pair): Promise<void> => settings.setPair(this.ctx, pair);
  pairRefusals = async (): Promise<PairRefusal[]> => [...(await this.ctx.config()).refusals.values()];
  dropCounts = (): Promise<DropCount[]> => this.ctx.store.dropCounts();

  // ---- pairing (§9) and sharing (§8, §11) ----
  createInvite = (opts: { threads: readonly string[]; ttlMs?: number }): Promise<{ link: string; payload: string }> =>
    createInvite(this.ctx, opts);
  acceptInvite = (linkOrPayload: string): Promise<Pair> => acceptInvite(this.ctx, linkOrPayload);
  endPair = (peerDid: string): Promise<void> => endPair(this.ctx, peerDid);
  shareThread = (thread: string, peerDid: string): Promise<void> => sharing.shareThread(this.ctx, thread, peerDid);
  unshareThread = (thread: string, peerDid: string): Promise<void> => sharing.unshareThread(this.ctx, thread, peerDid);
  pendingShares = (): Promise<PendingShare[]> => sharing.pendingShares(this.ctx);
  acceptShare = (thread: string): Promise<void> => sharing.acceptShare(this.ctx, thread);

  // ---- records ----
  emit = (input: EmitInput): Promise<StoredRecord> => emitNote(this.ctx, input);
  records = (thread: string): Promise<StoredRecord[]> => this.ctx.store.recordsByThread(thread);
  deliveryStates = (thread: string): Promise<Map<string, RecordDelivery[]>> => deliveryStates(this.ctx, thread);
  threads = async (): Promise<{ thread: string; count: number; lastReceivedAt: number }[]> =>
    (await this.ctx.store.threads()).filter((t) => t.thread !== CONFIG_THREAD);

  // ---- delivery (§5, §7, §10) ----
  flushOutbox = (opts: { all?: boolean } = {}): Promise<FlushReport> => flushOutbox(this.ctx, opts);
  nextDueAt = (): Promise<number | undefined> => nextDueAt(this.ctx);
  receive = (opts: ReceiveOptions = {}): Promise<ReceiveReport> => receive(this.ctx, opts);
  handleDirectDelivery = (body: unknown): Promise<DirectResponse> => handleDirectDelivery(this.ctx, body);

  // ---- push wake (§5.2) ----
  pushVapidKey = (relayUrl: string): Promise<{ key: string | null } | { error: string }> => this.ctx.relay(relayUrl).pushVapidKey();
  registerPush = (relayUrl: string, subscription: PushSubscriptionJson): Promise<{ ok: true } | { ok: false; error: string }> =>
    this.ctx.relay(relayUrl).pushSubscription('PUT', subscription);
  unregisterPush = (relayUrl: string, endpoint: string): Promise<{ ok: true } | { ok: false; error: string }> =>
    this.ctx.relay(relayUrl).pushSubscription('DELETE', { endpoint });

  // ---- status ----
  syncStatus = (): Promise<SyncStatus> => syncStatus(this.ctx);
  doctor = (facts: PlatformFacts = {}): Promise<DoctorReport> => doctor(this.ctx, facts);
}
