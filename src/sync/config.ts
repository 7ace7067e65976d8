/**
 * Configuration and pairs are records (PROTOCOL.md §8): LEARN records on `th_engine_config`,
 * told apart by `body.topic`; per key the record with the highest clock wins.
 */
import { isDepositToken, isHttpUrl, isObject, THREAD_RE } from '../core';
import type { StoredRecord } from '../store/types';
import type { Pair, PairRefusal, RelayEntry } from './types';

export const CONFIG_THREAD = 'th_engine_config';
export const PAIRS_THREAD = 'th_federation_pairs';

export interface EffectiveConfig {
  readonly relays: ReadonlyMap<string, RelayEntry>;
  readonly pairs: ReadonlyMap<string, Pair>;
  /** Refused pairing replies, by `<did> <nonce>`. */
  readonly refusals: ReadonlyMap<string, PairRefusal>;
  /** This peer's deposit token for its own mailbox (§5.1), once made. */
  readonly depositToken?: string;
}

/** Folds this peer's own config records into the current config. Malformed entries are skipped. */
export function foldConfig(records: readonly StoredRecord[], ownDid: string): EffectiveConfig {
  const relayClock = new Map<string, number>();
  const pairClock = new Map<string, number>();
  const relays = new Map<string, RelayEntry>();
  const pairs = new Map<string, Pair>();
  const refusals = new Map<string, PairRefusal>();
  let depositToken: string | undefined;
  let tokenClock = -1;
  for (const r of records) {
    const rec = r.signed.record;
    if (rec.actor !== ownDid || rec.act !== 'LEARN' || rec.thread !== CONFIG_THREAD) continue;
    const b = rec.body;
    if (b.topic === 'relay') {
      const forPair = b.for_pair;
      if (typeof forPair !== 'string' || typeof b.enabled !== 'boolean' || !isHttpUrl(b.url)) continue;
      if ((relayClock.get(forPair) ?? -1) >= rec.clock) continue;
      relayClock.set(forPair, rec.clock);
      relays.set(forPair, { forPair, url: b.url, enabled: b.enabled, updatedAt: r.receivedAt });
    } else if (b.topic === 'pair') {
      const peerDid = b.peer_did;
      if (typeof peerDid !== 'string' || typeof b.name !== 'string' || typeof b.enabled !== 'boolean') continue;
      if (!Array.isArray(b.threads) || !b.threads.every((t) => typeof t === 'string' && THREAD_RE.test(t))) continue;
      if (b.peer_url !== undefined && !isHttpUrl(b.peer_url)) continue;
      if ((pairClock.get(peerDid) ?? -1) >= rec.clock) continue;
      pairClock.set(peerDid, rec.clock);
      pairs.set(peerDid, {
        peerDid,
        name: b.name,
        ...(typeof b.peer_url === 'string' ? { peerUrl: b.peer_url } : {}),
        ...(isDepositToken(b.deposit_token) ? { depositToken: b.deposit_token } : {}),
        threads: b.threads as string[],
        enabled: b.enabled,
        ...(b.waiting === true ? { waiting: true } : {}),
        ...(typeof b.end_reason === 'string' ? { endReason: b.end_reason } : {}),
      });
    } else if (b.topic === 'deposit_token') {
      if (!isDepositToken(b.token) || rec.clock <= tokenClock) continue;
      tokenClock = rec.clock;
      depositToken = b.token;
    } else if (b.topic === 'pair.refused') {
      const { peer_did: peerDid, nonce, reason, name } = b;
      if (typeof peerDid !== 'string' || typeof nonce !== 'string' || typeof reason !== 'string' || typeof name !== 'string') continue;
      refusals.set(`${peerDid} ${nonce}`, { peerDid, nonce, reason, name, ...(isHttpUrl(b.relay) ? { relay: b.relay } : {}) });
    }
  }
  return { relays, pairs, refusals, ...(depositToken ? { depositToken } : {}) };
}

export function relayBody(url: string, forPair: string, enabled: boolean): Record<string, unknown> {
  return { topic: 'relay', for_pair: forPair, url, enabled };
}

export function pairBody(p: Pair): Record<string, unknown> {
  return {
    topic: 'pair',
    peer_did: p.peerDid,
    name: p.name,
    ...(p.peerUrl ? { peer_url: p.peerUrl } : {}),
    ...(p.depositToken ? { deposit_token: p.depositToken } : {}),
    threads: [...p.threads],
    enabled: p.enabled,
    ...(p.waiting ? { waiting: true } : {}),
    ...(p.endReason && !p.enabled ? { end_reason: p.endReason } : {}),
  };
}

export function refusalBody(r: PairRefusal): Record<string, unknown> {
  return {
    topic: 'pair.refused',
    peer_did: r.peerDid,
    name: r.name,
    nonce: r.nonce,
    reason: r.reason,
    ...(r.relay ? { relay: r.relay } : {}),
  };
}

/** A control record on th_federation_pairs (§9–11) with this topic. */
export const isControl = (r: StoredRecord['signed']['record'], topic: string): boolean =>
  r.thread === PAIRS_THREAD && r.act === 'LEARN' && r.body.topic === topic;

// A title record without parents is the thread's root; among several, the lowest clock, then ID.
const rootOrder = (r: StoredRecord): string => `${r.signed.record.parents.length ? 1 : 0}${String(r.clock).padStart(16, '0')}${r.id}`;

/** A thread's title (§11): the root's `{"kind":"thread"}` record, renamed only by the root's author, highest clock wins. */
export function threadTitle(records: readonly StoredRecord[]): string | undefined {
  let root: StoredRecord | undefined;
  let best: StoredRecord | undefined;
  for (const r of records) {
    const b = r.signed.record.body;
    if (b.kind !== 'thread' || typeof b.text !== 'string') continue;
    if (!root || rootOrder(r) < rootOrder(root)) root = r;
  }
  if (!root) return undefined;
  for (const r of records) {
    const b = r.signed.record.body;
    if (b.kind !== 'thread' || typeof b.text !== 'string' || r.actor !== root.actor) continue;
    if (!best || r.clock > best.clock) best = r;
  }
  return (best ?? root).signed.record.body.text as string;
}

/** A per-DID entry overrides the catch-all `all` (§8). */
export function relayForPeer(cfg: EffectiveConfig, peerDid: string): string | undefined {
  const own = cfg.relays.get(peerDid);
  if (own) return own.enabled ? own.url : cfg.relays.get('all')?.enabled ? cfg.relays.get('all')?.url : undefined;
  const all = cfg.relays.get('all');
  return all?.enabled ? all.url : undefined;
}

export const normalizeRelayUrl = (url: string): string => url.trim().replace(/\/+$/, '');

export const isPairAccept = (r: StoredRecord['signed']['record']): boolean =>
  r.thread === PAIRS_THREAD && r.act === 'LEARN' && r.body.topic === 'pair.accept' && isObject(r.body);
