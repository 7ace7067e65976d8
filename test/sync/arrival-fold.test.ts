/**
 * Folds caught up from what arrived since (arrival-fold.ts): th_federation_pairs (receipts, share
 * offers, §11) and each thread's heads (a new record's parents, §3), once per engine context; the
 * store's count sends a fold back to the start when a catch-up cannot have seen everything.
 */
import 'fake-indexeddb/auto';
import { IDBFactory } from 'fake-indexeddb';
import { describe, expect, it } from 'vitest';
import { signRecord, type JsonObject, type SyncRecord } from '../../src/core';
import { openIdbPeerStore } from '../../src/store/idb';
import type { PeerStore, StoredRecord } from '../../src/store/types';
import { PAIRS_THREAD } from '../../src/sync/config';
import { PeerContext } from '../../src/sync/context';
import { receiptedIds } from '../../src/sync/convergence';
import { pairsFold } from '../../src/sync/pairs-fold';
import { openPeerEngine } from '../../src/sync/engine';
import { T0, toStored } from '../store/fixtures';
import { newPeer, type TestPeer } from '../../support/fixtures';

let seq = 0;

async function control(from: TestPeer, clock: number, body: JsonObject, receivedAt: number): Promise<StoredRecord> {
  const record: SyncRecord = {
    parents: [],
    thread: PAIRS_THREAD,
    actor: from.did,
    act: 'LEARN',
    body,
    clock,
    data_type: 'SCALAR',
    judged_by: null,
  };
  return toStored(await signRecord(record, from.signer), { receivedAt });
}
const receipt = (from: TestPeer, clock: number, ids: string[], receivedAt: number) =>
  control(from, clock, { topic: 'receipt', ids }, receivedAt);
const offer = (from: TestPeer, clock: number, thread: string, title: string, receivedAt: number) =>
  control(from, clock, { topic: 'thread.share', thread, title }, receivedAt);

/** The store, counting the full folds (reads from the very start of th_federation_pairs). */
function countingFullReads(store: PeerStore): { store: PeerStore; fullReads: () => number } {
  let full = 0;
  const wrapped = new Proxy(store, {
    get(target, prop, receiver) {
      if (prop === 'recordsArrivedSince')
        return (thread: string, at: number) => {
          if (at === Number.MIN_SAFE_INTEGER) full++;
          return target.recordsArrivedSince(thread, at);
        };
      const v = Reflect.get(target, prop, receiver) as unknown;
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
  return { store: wrapped, fullReads: () => full };
}

describe('th_federation_pairs folded', () => {
  it('folds once, catches up with later receipts (another context writing the same store included), refolds when an arrival went back in time', async () => {
    const base = await openIdbPeerStore(`receipts-${seq++}`, new IDBFactory());
    const { store, fullReads } = countingFullReads(base);
    const ctx = new PeerContext({ store, fetch });
    const phone = newPeer();
    const tablet = newPeer();
    await base.ingest([await receipt(phone, 1, ['r1', 'r2'], T0 + 10)]);
    expect([...(await receiptedIds(ctx))].sort()).toEqual([`r1 ${phone.did}`, `r2 ${phone.did}`]);
    expect(fullReads()).toBe(1);

    // Later arrivals, one in the same ms as the newest folded: caught up, no second full fold.
    await base.ingest([await receipt(tablet, 1, ['r1'], T0 + 10), await receipt(phone, 2, ['r3'], T0 + 20)]);
    expect((await receiptedIds(ctx)).has(`r1 ${tablet.did}`)).toBe(true);
    expect((await receiptedIds(ctx)).has(`r3 ${phone.did}`)).toBe(true);
    expect(fullReads()).toBe(1);

    // Written through another context on the same store (the service worker): seen too.
    const other = new PeerContext({ store: base, fetch });
    await other.store.ingest([await receipt(tablet, 2, ['r4'], T0 + 30)]);
    expect((await receiptedIds(ctx)).has(`r4 ${tablet.did}`)).toBe(true);
    expect(fullReads()).toBe(1);

    // An arrival stamped before the newest folded one (the clock stepped back): the count tells.
    await base.ingest([await receipt(phone, 3, ['r5'], T0 + 15)]);
    expect((await receiptedIds(ctx)).has(`r5 ${phone.did}`)).toBe(true);
    expect(fullReads()).toBe(2);
    expect((await receiptedIds(ctx)).size).toBe(6);
    await base.close();
  });

  it('share offers: the latest offer per (thread, peer) by clock, whatever the arrival order; listed in the order first made', async () => {
    const store = await openIdbPeerStore(`offers-${seq++}`, new IDBFactory());
    const ctx = new PeerContext({ store, fetch });
    const phone = newPeer();
    const tablet = newPeer();
    await store.ingest([await offer(tablet, 5, 'th_b', 'Plans', T0 + 1), await offer(phone, 7, 'th_a', 'Renamed', T0 + 2)]);
    const titles = async () => [...(await pairsFold(ctx)).shareOffers.values()].map((o) => [o.thread, o.fromDid, o.title]);
    expect(await titles()).toEqual([
      ['th_b', tablet.did, 'Plans'],
      ['th_a', phone.did, 'Renamed'],
    ]);
    // An older offer of th_a arrives late: the title stays the later one's, its place the older one's.
    await store.ingest([await offer(phone, 3, 'th_a', 'First title', T0 + 3)]);
    const offers = [...(await pairsFold(ctx)).shareOffers.values()];
    expect(offers.map((o) => [o.thread, o.title, o.firstAt[0], o.latestAt[0]])).toEqual([
      ['th_b', 'Plans', 5, 5],
      ['th_a', 'Renamed', 3, 7],
    ]);
    await store.close();
  });

  it('heads: a note names the newest records of its thread as parents, those written through another engine on the store included', async () => {
    const store = await openIdbPeerStore(`heads-${seq++}`, new IDBFactory());
    const page = await openPeerEngine({ store, fetch });
    await page.createIdentity('laptop');
    const worker = await openPeerEngine({ store, fetch });
    const first = await page.emit({ thread: 'th_h', text: 'one' });
    const second = await worker.emit({ thread: 'th_h', text: 'two' });
    const third = await page.emit({ thread: 'th_h', text: 'three' });
    expect(first.signed.record.parents).toEqual([]);
    expect(second.signed.record.parents).toEqual([first.id]);
    expect(third.signed.record.parents).toEqual([second.id]);
    // A peer's record whose parent has not arrived yet: both ends of the fork stay heads until it does.
    const peer = newPeer();
    const theirs = await signRecord(
      {
        parents: [third.id],
        thread: 'th_h',
        actor: peer.did,
        act: 'KNOW',
        body: { kind: 'note', text: 'x' },
        clock: 1,
        data_type: 'SCALAR',
        judged_by: null,
      },
      peer.signer,
    );
    await store.ingest([toStored(theirs, { receivedAt: Date.now() })]);
    const fourth = await page.emit({ thread: 'th_h', text: 'four' });
    expect(fourth.signed.record.parents).toEqual([theirs.id]);
    await store.close();
  });
});
