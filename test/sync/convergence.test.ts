/**
 * Every peer granted a thread ends up with every record on it (PROTOCOL.md §11): history on grant,
 * groups forwarded along the pairing graph, receipts, restore. Three engines over a real relay.
 */
import 'fake-indexeddb/auto';
import { IDBFactory } from 'fake-indexeddb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openIdbPeerStore } from '../../src/store/idb';
import { openPeerEngine, type PeerEngine } from '../../src/sync/engine';
import { MAX_NOTE_BYTES } from '../../src/sync/types';
import { startRelayProcess, type RelayProcess } from '../../support/relay-process';

let relay: RelayProcess;
beforeAll(async () => {
  relay = await startRelayProcess(['--db', ':memory:', '--no-rate-limit']);
});
afterAll(async () => {
  await relay.stop();
});

let seq = 0;
async function peer(name: string): Promise<PeerEngine> {
  const store = await openIdbPeerStore(`conv-${name}-${seq++}`, new IDBFactory());
  const engine = await openPeerEngine({ store, fetch });
  await engine.createIdentity(name);
  await engine.setRelay(relay.url);
  return engine;
}
const didOf = (e: PeerEngine) => e.identity()!.did;

async function paired(a: PeerEngine, b: PeerEngine, threads: string[]): Promise<void> {
  const { link } = await a.createInvite({ threads });
  await b.acceptInvite(link);
  await a.receive();
  await a.flushOutbox();
  await b.receive();
}

/** Everyone online sends and receives until nothing moves (bounded). */
async function settle(online: readonly PeerEngine[]): Promise<void> {
  for (let round = 0; round < 12; round++) {
    let moved = 0;
    for (const p of online) {
      const f = await p.flushOutbox({ all: true });
      const r = await p.receive();
      moved += f.relay + f.direct + r.relays.reduce((n, x) => n + x.envelopes, 0);
    }
    if (moved === 0) return;
  }
  throw new Error('the peers did not settle in 12 rounds');
}

const ids = async (e: PeerEngine, thread: string) => (await e.records(thread)).map((r) => r.id).sort();
const texts = async (e: PeerEngine, thread: string) => (await e.records(thread)).map((r) => r.signed.record.body.text);

describe('§11 convergence', () => {
  it('refuses a note over the one size limit; history of big notes travels in envelopes the relay takes', async () => {
    const laptop = await peer('laptop');
    const phone = await peer('phone');
    await expect(laptop.emit({ thread: 'th_big', text: 'x'.repeat(MAX_NOTE_BYTES + 1) })).rejects.toThrow(/at most 131071 bytes/);
    for (let i = 0; i < 12; i++) await laptop.emit({ thread: 'th_big', text: `${i}`.padEnd(MAX_NOTE_BYTES, '.') });
    await paired(laptop, phone, ['th_big']); // 12 × 128 KiB of history: more than one relay body
    await settle([laptop, phone]);
    expect(await phone.records('th_big')).toHaveLength(12);
    expect((await laptop.syncStatus()).peers[0]!.outbox.rejected).toBe(0);
  });

  it('a chain laptop–phone–cli converges on one thread while one of them is offline at a time, each record once, with the title', async () => {
    const laptop = await peer('laptop');
    const phone = await peer('phone');
    const cli = await peer('cli');
    await laptop.emit({ thread: 'th_trip', body: { kind: 'thread', text: 'Trip plans' } });
    await laptop.emit({ thread: 'th_trip', text: 'laptop 1' });
    await paired(laptop, phone, ['th_trip']); // history on grant
    await paired(phone, cli, ['th_trip']);
    await settle([laptop, phone, cli]);
    // The phone is offline: the ends write; nothing can pass through the middle yet.
    await laptop.emit({ thread: 'th_trip', text: 'laptop 2' });
    await cli.emit({ thread: 'th_trip', text: 'cli 1' });
    await settle([laptop, cli]);
    // The cli is offline: the phone comes back, drains both and forwards each way.
    await phone.emit({ thread: 'th_trip', text: 'phone 1' });
    await settle([laptop, phone]);
    // The laptop is offline: the cli comes back.
    await cli.emit({ thread: 'th_trip', text: 'cli 2' });
    await settle([phone, cli]);
    await settle([laptop, phone, cli]);
    const want = await ids(laptop, 'th_trip');
    expect(want).toHaveLength(6);
    expect(await ids(phone, 'th_trip')).toEqual(want);
    expect(await ids(cli, 'th_trip')).toEqual(want);
    for (const p of [laptop, phone, cli]) {
      expect(new Set(await texts(p, 'th_trip'))).toEqual(new Set(['Trip plans', 'laptop 1', 'laptop 2', 'cli 1', 'phone 1', 'cli 2']));
    }
  });

  it('a peer granted T cannot make anyone forward its records on a thread it was not granted', async () => {
    const laptop = await peer('laptop');
    const phone = await peer('phone');
    const cli = await peer('cli');
    await paired(laptop, phone, ['th_trip', 'th_private']);
    await paired(phone, cli, ['th_trip']);
    await phone.emit({ thread: 'th_private', text: 'between laptop and phone' });
    await settle([laptop, phone, cli]);
    // The cli sets th_private on its own side and writes there.
    const p = (await cli.pairs())[0]!;
    await cli.setPair({ ...p, threads: [...p.threads, 'th_private'] });
    await cli.emit({ thread: 'th_private', text: 'smuggled' });
    await settle([laptop, phone, cli]);
    expect(await texts(phone, 'th_private')).toEqual(['between laptop and phone']);
    expect(await texts(laptop, 'th_private')).toEqual(['between laptop and phone']);
    expect((await phone.syncStatus()).counters.records_dropped_ungranted).toBe(1);
  });

  it('receipts: an own note goes queued → at the relay → delivered as the receiver comes online', async () => {
    const laptop = await peer('laptop');
    const phone = await peer('phone');
    await paired(laptop, phone, ['th_r']);
    const note = await laptop.emit({ thread: 'th_r', text: 'did it arrive?' });
    const state = async () => (await laptop.deliveryStates('th_r')).get(note.id)!;
    expect(await state()).toEqual([expect.objectContaining({ peerDid: didOf(phone), name: 'phone', state: 'queued' })]);
    await laptop.flushOutbox();
    expect((await state())[0]!.state).toBe('relay');
    await phone.receive(); // stores it, and queues one receipt for the laptop
    await phone.flushOutbox();
    expect((await state())[0]!.state).toBe('relay'); // the laptop has not heard yet
    await laptop.receive();
    expect((await state())[0]!.state).toBe('delivered');
  });

  it('restore on a new device: each pair sends back the threads it granted, titles included', async () => {
    const laptop = await peer('laptop');
    const phone = await peer('phone');
    await laptop.emit({ thread: 'th_home', body: { kind: 'thread', text: 'Home' } });
    await paired(laptop, phone, ['th_home']);
    await phone.emit({ thread: 'th_home', text: 'from the phone' });
    await laptop.emit({ thread: 'th_home', text: 'from the laptop' });
    await settle([laptop, phone]);
    const backup = await phone.exportIdentity('correct horse battery staple');
    const store = await openIdbPeerStore(`conv-restored-${seq++}`, new IDBFactory());
    const restored = await openPeerEngine({ store, fetch });
    await restored.importIdentity(backup, 'correct horse battery staple');
    expect(await restored.records('th_home')).toEqual([]);
    await settle([restored, laptop]);
    expect(new Set(await texts(restored, 'th_home'))).toEqual(new Set(['Home', 'from the phone', 'from the laptop']));
  });
});
