/**
 * This device's settings as records (§8): relays and pairs, read through the context's folded
 * view, changed by writing a newer config record.
 */
import { isHttpUrl, publicKeyFromDid, THREAD_RE } from '../core';
import { CONFIG_THREAD, normalizeRelayUrl, pairBody, PAIRS_THREAD, relayBody, relayForPeer } from './config';
import type { PeerContext } from './context';
import { sendHistory } from './convergence';
import { writeConfig } from './emit';
import { PeerError } from './errors';
import type { Pair, PairScope, RelayEntry } from './types';

export async function relays(ctx: PeerContext): Promise<RelayEntry[]> {
  return [...(await ctx.config()).relays.values()].sort((a, b) =>
    a.forPair === 'all' ? -1 : b.forPair === 'all' ? 1 : a.forPair.localeCompare(b.forPair),
  );
}

export async function setRelay(ctx: PeerContext, url: string, forPair: PairScope = 'all'): Promise<void> {
  const u = normalizeRelayUrl(url);
  if (!isHttpUrl(u)) throw new PeerError('invalid_input', `"${url}" is not an http(s) URL`);
  if (forPair !== 'all' && !/^did:[a-z0-9]+:\S+$/.test(forPair))
    throw new PeerError('invalid_input', `a relay is set for "all" or for a peer's DID, not for "${forPair}"`);
  await writeConfig(ctx, relayBody(u, forPair, true));
}

export async function clearRelay(ctx: PeerContext, forPair: PairScope): Promise<void> {
  const current = (await ctx.config()).relays.get(forPair);
  if (!current) throw new PeerError('not_found', `no relay is configured for ${forPair}`);
  await writeConfig(ctx, relayBody(current.url, forPair, false));
}

export async function relayFor(ctx: PeerContext, peerDid: string): Promise<string | undefined> {
  return relayForPeer(await ctx.config(), peerDid);
}

/** Every enabled relay this device receives from: the catch-all first. */
export async function receiveRelays(ctx: PeerContext): Promise<string[]> {
  const cfg = await ctx.config();
  const urls = new Set<string>();
  const all = cfg.relays.get('all');
  if (all?.enabled) urls.add(all.url);
  for (const r of cfg.relays.values()) if (r.enabled) urls.add(r.url);
  return [...urls];
}

export async function pairs(ctx: PeerContext): Promise<Pair[]> {
  return [...(await ctx.config()).pairs.values()].sort((a, b) => a.name.localeCompare(b.name));
}

export async function requirePair(ctx: PeerContext, peerDid: string): Promise<Pair> {
  const pair = (await ctx.config()).pairs.get(peerDid);
  if (!pair) throw new PeerError('not_found', `not paired with ${peerDid}`);
  return pair;
}

/** Why a thread cannot be granted to a peer: not a thread ID, or one the engine keeps for itself (§8). */
export function unshareable(thread: string): PeerError | undefined {
  if (!THREAD_RE.test(thread)) return new PeerError('invalid_input', `"${thread}" is not a thread ID`);
  if (thread === CONFIG_THREAD || thread === PAIRS_THREAD)
    return new PeerError('reserved_thread', `${thread} is reserved and cannot be shared`);
  return undefined;
}

export function checkShareable(thread: string): void {
  const error = unshareable(thread);
  if (error) throw error;
}

export async function setPair(ctx: PeerContext, pair: Pair): Promise<void> {
  if (!publicKeyFromDid(pair.peerDid).ok) throw new PeerError('invalid_input', `cannot pair with ${pair.peerDid}: not a did:key`);
  if (pair.peerUrl !== undefined && !isHttpUrl(pair.peerUrl))
    throw new PeerError('invalid_input', `peer URL "${String(pair.peerUrl)}" is not an http(s) URL`);
  for (const t of pair.threads) checkShareable(t);
  const before = (await ctx.config()).pairs.get(pair.peerDid);
  await writeConfig(ctx, pairBody(pair));
  if (pair.enabled) {
    // §11 history on grant: a thread newly granted to this peer brings everything held on it.
    const added = pair.threads.filter((t) => !before?.enabled || !before.threads.includes(t));
    await sendHistory(ctx, pair.peerDid, added);
  }
}
