/**
 * Configuration and pairs are records (PROTOCOL.md §8): LEARN records on `th_engine_config`,
 * told apart by `body.topic`; per key the record with the highest clock wins.
 */
import { isHttpUrl, isObject, THREAD_RE } from '../core';
import type { StoredRecord } from '../store/types';
import type { Pair, RelayEntry } from './types';

export const CONFIG_THREAD = 'th_engine_config';
export const PAIRS_THREAD = 'th_federation_pairs';

export interface EffectiveConfig {
  readonly relays: ReadonlyMap<string, RelayEntry>;
  readonly pairs: ReadonlyMap<string, Pair>;
}

/** Folds this peer's own config records into the current config. Malformed entries are skipped. */
export function foldConfig(records: readonly StoredRecord[], ownDid: string): EffectiveConfig {
  const relayClock = new Map<string, number>();
  const pairClock = new Map<string, number>();
  const relays = new Map<string, RelayEntry>();
  const pairs = new Map<string, Pair>();
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
        threads: b.threads as string[],
        enabled: b.enabled,
      });
    }
  }
  return { relays, pairs };
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
    threads: [...p.threads],
    enabled: p.enabled,
  };
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
