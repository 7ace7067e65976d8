/**
 * Trust boundaries of the peer engine (PROTOCOL.md §3, §7, §8, §9), each an attack that worked
 * before: a direct delivery swallowed by whoever answers at a stale `peer_url`, threads taken by
 * writing on them, equivocating clocks, invites reused, pairs that cannot be ended.
 * Real relay process over HTTP, real direct endpoints on loopback, fake-indexeddb stores.
 */
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import 'fake-indexeddb/auto';
import { IDBFactory } from 'fake-indexeddb';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  buildPlainEnvelope,
  openEnvelope,
  sealEnvelope,
  serializeEnvelope,
  signReceipt,
  signRecord,
  verifyReceipt,
  type SignedRecord,
} from '../../src/core';
import { openIdbPeerStore } from '../../src/store/idb';
import { openPeerEngine, type PeerEngine } from '../../src/sync/engine';
import type { DirectResponse, PeerEngineDeps } from '../../src/sync/types';
import type { PeerStore } from '../../src/store/types';
import { startRelayProcess, type RelayProcess } from '../../support/relay-process';
import { newPeer, note, type TestPeer } from '../../support/fixtures';

let relay: RelayProcess;
const servers: Server[] = [];

beforeAll(async () => {
  relay = await startRelayProcess(['--db', ':memory:', '--no-rate-limit']);
});
afterAll(async () => {
  await relay.stop();
});
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => new Promise((r) => s.close(r))));
});

let seq = 0;
const stores = new Map<PeerEngine, PeerStore>();
const storeOf = (e: PeerEngine): PeerStore => stores.get(e)!;
const didOf = (e: PeerEngine): string => e.identity()!.did;

async function peer(name: string, deps: Partial<PeerEngineDeps> = {}): Promise<PeerEngine> {
  const store = await openIdbPeerStore(`trust-${name}-${seq++}`, new IDBFactory());
  const engine = await openPeerEngine({ store, fetch, ...deps });
  stores.set(engine, store);
  await engine.createIdentity(name);
  return engine;
}

/** A invites B on `threads`; B accepts; A completes and confirms; B takes the confirmation. */
async function paired(a: PeerEngine, b: PeerEngine, threads: string[]): Promise<void> {
  if ((await a.relays()).length === 0) await a.setRelay(relay.url);
  const { link } = await a.createInvite({ threads });
  await b.acceptInvite(link);
  await a.receive();
  await a.flushOutbox();
  await b.receive();
}

const texts = async (e: PeerEngine, thread: string) => (await e.records(thread)).map((r) => r.signed.record.body.text);

interface Captured {
  readonly url: string;
  readonly bodies: string[];
  readonly headers: IncomingHttpHeaders[];
}

/** An HTTP server at some URL answering like `answer` says, keeping what it was sent. */
async function endpoint(
  answer: (body: string) => Promise<{ status: number; text: string; headers?: Record<string, string> }>,
): Promise<Captured> {
  const bodies: string[] = [];
  const headers: IncomingHttpHeaders[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      bodies.push(body);
      headers.push(req.headers);
      void answer(body).then((a) => res.writeHead(a.status, { 'content-type': 'application/json', ...a.headers }).end(a.text));
    });
  });
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, bodies, headers };
}

/** The engine's own §7 endpoint, as `spl serve` runs it. */
const directEndpoint = (e: PeerEngine) =>
  endpoint(async (body) => {
    const out: DirectResponse = await e.handleDirectDelivery(JSON.parse(body));
    return { status: out.status, text: out.text, headers: { ...out.headers } };
  });

async function pointDirectAt(a: PeerEngine, peerDid: string, url: string): Promise<void> {
  const pair = (await a.pairs()).find((p) => p.peerDid === peerDid)!;
  await a.setPair({ ...pair, peerUrl: url });
}

describe('§7 receipted direct delivery', () => {
  it('counts a direct delivery only with a receipt by the addressed DID over the exact answer', async () => {
    const a = await peer('a');
    const b = await peer('b');
    await paired(a, b, ['th_ab']);
    const bEnd = await directEndpoint(b);
    await pointDirectAt(a, didOf(b), bEnd.url);
    const rec = await a.emit({ thread: 'th_ab', text: 'direct with receipt' });
    expect(await a.flushOutbox()).toMatchObject({ direct: 1, relay: 0 });
    expect(await texts(b, 'th_ab')).toContain('direct with receipt');
    // What went over the wire is the sealed envelope: the record's text is not in it.
    const sent = JSON.parse(bEnd.bodies.at(-1)!) as { envelope: { encoding: string; id: string } };
    expect(sent.envelope.encoding).toBe('sealed');
    expect(bEnd.bodies.at(-1)).not.toContain('direct with receipt');
    // The receipt signs the answer's bytes under B's DID, for this envelope ID only.
    const out = await b.handleDirectDelivery(JSON.parse(bEnd.bodies.at(-1)!));
    const receipt = out.headers['Syncropel-Receipt']!;
    expect(await verifyReceipt(receipt, sent.envelope.id, out.text, didOf(b))).toBe(true);
    expect(await verifyReceipt(receipt, sent.envelope.id, out.text.replace('[', '[ '), didOf(b))).toBe(false);
    expect(await verifyReceipt(receipt, '0'.repeat(64), out.text, didOf(b))).toBe(false);
    expect(await verifyReceipt(receipt, sent.envelope.id, out.text, didOf(a))).toBe(false);
    expect((out.body as { duplicates: string[] }).duplicates).toEqual([rec.id]);
  });

  it('a stale peer_url that reaches the sender’s own endpoint is no delivery: 421, then the relay', async () => {
    const a = await peer('a');
    const b = await peer('b');
    await paired(a, b, ['th_ab']);
    const own = await directEndpoint(a);
    await pointDirectAt(a, didOf(b), own.url);
    await a.emit({ thread: 'th_ab', text: 'not swallowed' });
    const report = await a.flushOutbox();
    expect(report).toMatchObject({ direct: 0, relay: 1 });
    expect((await a.syncStatus()).peers[0]!.lastPath).toBe('relay');
    await b.receive();
    expect(await texts(b, 'th_ab')).toEqual(['not swallowed']);
    // A's own endpoint said why: the envelope was for someone else.
    const answer = await a.handleDirectDelivery(JSON.parse(own.bodies[0]!));
    expect(answer.status).toBe(421);
    expect((answer.body as { error: { code: string } }).error.code).toBe('wrong_recipient');
  });

  it('an impostor at the peer_url gets a sealed envelope it cannot open, and its 200 counts for nothing', async () => {
    const a = await peer('a');
    const b = await peer('b');
    await paired(a, b, ['th_ab']);
    const mallory = newPeer();
    // Answers like a peer, with a well-formed receipt signed by the wrong key.
    const impostor = await endpoint(async (body) => {
      const env = (JSON.parse(body) as { envelope: { id: string } }).envelope;
      const text = JSON.stringify({ accepted: [], duplicates: [], rejected: [] });
      return { status: 200, text, headers: { 'Syncropel-Receipt': await signReceipt(env.id, text, mallory.signer, Date.now()) } };
    });
    await pointDirectAt(a, didOf(b), impostor.url);
    await a.emit({ thread: 'th_ab', text: 'for b only' });
    expect(await a.flushOutbox()).toMatchObject({ direct: 0, relay: 1 });
    expect((await a.syncStatus()).peers[0]!.outbox.relay).toBeGreaterThan(0);
    const captured = JSON.parse(impostor.bodies[0]!) as { envelope: unknown };
    const opened = await openEnvelope(captured.envelope, { did: mallory.did, secretKey: mallory.secretKey });
    expect(opened.ok).toBe(false);
    expect(impostor.bodies[0]).not.toContain('for b only');
    await b.receive();
    expect(await texts(b, 'th_ab')).toEqual(['for b only']);
  });

  it('a plain 200 without a receipt (an old peer, a proxy) falls back to the relay too', async () => {
    const a = await peer('a');
    const b = await peer('b');
    await paired(a, b, ['th_ab']);
    const plain = await endpoint(() => Promise.resolve({ status: 200, text: '{"accepted":[],"duplicates":[],"rejected":[]}' }));
    await pointDirectAt(a, didOf(b), plain.url);
    await a.emit({ thread: 'th_ab', text: 'x' });
    expect(await a.flushOutbox()).toMatchObject({ direct: 0, relay: 1 });
    expect((await a.syncStatus()).peers[0]!.lastError ?? '').toBe('');
  });

  it('refuses an unpaired sender with 403 before verifying anything it sent', async () => {
    const b = await peer('b');
    const mallory = newPeer();
    const rec = await signRecord(note(mallory.did, 'hi', 0, 'th_x'), mallory.signer);
    const plain = await buildPlainEnvelope({ fromDid: mallory.did, toDid: didOf(b), records: [rec] }, mallory.signer);
    // A broken envelope signature: an unpaired sender is refused as unpaired all the same.
    const broken = sealEnvelope({ ...plain, sig: plain.sig.replace(/^./, plain.sig[0] === 'A' ? 'B' : 'A') });
    const answer = await b.handleDirectDelivery({ envelope: JSON.parse(serializeEnvelope(broken)) as unknown });
    expect(answer.status).toBe(403);
    expect((answer.body as { error: { code: string } }).error.code).toBe('unpaired');
    expect(answer.headers['Syncropel-Receipt']).toBeUndefined();
    expect(await b.records('th_x')).toEqual([]);
    expect((await b.handleDirectDelivery({ envelope: 'nope' })).status).toBe(400);
  });
});

describe('§8 threads are granted, never taken', () => {
  it('a record on a thread not granted to its sender is dropped as ungranted, counted per sender, and grants nothing', async () => {
    const a = await peer('a');
    const b = await peer('b');
    const c = await peer('c');
    await paired(a, b, ['th_ab']);
    await paired(a, c, ['th_ac']);
    await a.emit({ thread: 'th_ac', text: 'between a and c' });
    // B writes on th_ac (its name is guessable) and sends it to A through the relay.
    const pairAtB = (await b.pairs())[0]!;
    await b.setPair({ ...pairAtB, threads: [...pairAtB.threads, 'th_ac'] });
    await b.emit({ thread: 'th_ac', text: 'let me in' });
    await b.flushOutbox();
    const got = await a.receive();
    expect(got.relays[0]).toMatchObject({ dropped: 1, acked: 1 });
    expect(await texts(a, 'th_ac')).toEqual(['between a and c']);
    expect((await a.pairs()).find((p) => p.peerDid === didOf(b))!.threads).toEqual(['th_ab']);
    expect((await a.syncStatus()).counters.records_dropped_ungranted).toBe(1);
    expect(await a.dropCounts()).toContainEqual({ reason: 'ungranted', sender: didOf(b), count: 1 });
    // Nothing of th_ac went to B.
    expect(
      (await storeOf(a).listOutbox()).filter((e) => e.toDid === didOf(b) && e.records.some((r) => r.record.thread === 'th_ac')),
    ).toEqual([]);
  });

  it('sharing a thread sends its whole history with the title first; new threads are granted back on their own', async () => {
    const a = await peer('a');
    const b = await peer('b');
    const c = await peer('c');
    await paired(a, c, ['th_team']);
    await a.emit({ thread: 'th_team', body: { kind: 'thread', text: 'Team notes' } });
    await a.emit({ thread: 'th_team', text: 'from a' });
    await a.flushOutbox();
    await c.receive();
    await c.emit({ thread: 'th_team', text: 'from c' });
    await c.flushOutbox();
    await a.receive();
    await paired(a, b, ['th_ab']);
    await a.shareThread('th_team', didOf(b));
    await a.flushOutbox();
    await b.receive();
    expect(new Set(await texts(b, 'th_team'))).toEqual(new Set(['Team notes', 'from a', 'from c']));
    // th_team was new to B: granted back, so B's replies are taken by A.
    expect((await b.pairs())[0]!.threads).toContain('th_team');
    await b.emit({ thread: 'th_team', text: 'from b' });
    await b.flushOutbox();
    await a.receive();
    expect(await texts(a, 'th_team')).toContain('from b');
  });

  it('a share of a thread the receiver already holds waits for its owner', async () => {
    const a = await peer('a');
    const b = await peer('b');
    await paired(a, b, ['th_ab']);
    await a.emit({ thread: 'th_both', text: 'a’s own th_both' });
    await b.emit({ thread: 'th_both', text: 'b’s own th_both' });
    await a.shareThread('th_both', didOf(b));
    await a.flushOutbox();
    await b.receive();
    expect(await b.pendingShares()).toEqual([{ thread: 'th_both', fromDid: didOf(a), fromName: 'a' }]);
    expect((await b.pairs())[0]!.threads).not.toContain('th_both');
    expect(await texts(b, 'th_both')).toEqual(['b’s own th_both']); // A's history was dropped as ungranted
    await b.acceptShare('th_both');
    expect(await b.pendingShares()).toEqual([]);
    await b.flushOutbox();
    await a.receive(); // B's history, and B's history.request for A's
    expect(new Set(await texts(a, 'th_both'))).toEqual(new Set(['a’s own th_both', 'b’s own th_both']));
    await a.flushOutbox();
    await b.receive();
    expect(new Set(await texts(b, 'th_both'))).toEqual(new Set(['a’s own th_both', 'b’s own th_both']));
  });
});

describe('§3 equivocation', () => {
  async function equivocated(m: TestPeer, clock: number, text: string): Promise<SignedRecord> {
    return signRecord(note(m.did, text, clock, 'th_ab'), m.signer);
  }

  it('refuses a second record with the same (actor, thread, clock) and another ID; lower clocks still arrive', async () => {
    const a = await peer('a');
    const b = await peer('b');
    await paired(a, b, ['th_ab']);
    // The same author vouched by A: its own records, written with its own key.
    const me = { did: didOf(a), secretKey: (await storeOf(a).getIdentity())!.secretKey };
    const { createSigner } = await import('../../src/core');
    const aKey = { did: me.did, secretKey: me.secretKey, signer: createSigner(me.secretKey) };
    const first = await equivocated(aKey, 7, 'first at 7');
    const second = await equivocated(aKey, 7, 'second at 7');
    const lower = await equivocated(aKey, 3, 'late at 3');
    const bEnd = await b.handleDirectDelivery({
      envelope: JSON.parse(
        serializeEnvelope(
          sealEnvelope(await buildPlainEnvelope({ fromDid: aKey.did, toDid: didOf(b), records: [first, second] }, aKey.signer)),
        ),
      ) as unknown,
    });
    expect(bEnd.status).toBe(200);
    const body = bEnd.body as { accepted: string[]; rejected: { id: string; reason: string }[] };
    expect(body.accepted).toEqual([first.id]);
    expect(body.rejected).toHaveLength(1);
    expect(body.rejected[0]!.id).toBe(second.id);
    expect(body.rejected[0]!.reason).toMatch(/^clock_reused: /);
    // Later, in another envelope: still refused, the first one kept; a lower clock is normal.
    const again = await b.handleDirectDelivery({
      envelope: JSON.parse(
        serializeEnvelope(
          sealEnvelope(await buildPlainEnvelope({ fromDid: aKey.did, toDid: didOf(b), records: [second, lower] }, aKey.signer)),
        ),
      ) as unknown,
    });
    expect((again.body as { accepted: string[] }).accepted).toEqual([lower.id]);
    expect(await texts(b, 'th_ab')).toEqual(['late at 3', 'first at 7']);
    expect((await b.syncStatus()).counters.records_refused_clock_reused).toBe(2);
    expect(await b.dropCounts()).toContainEqual({ reason: 'clock_reused', sender: didOf(a), count: 2 });
  });

  it('two engines on one database (page and service worker) taking deliveries at once store only one record per clock', async () => {
    const a = await peer('a');
    const factory = new IDBFactory();
    const name = `trust-shared-${seq++}`;
    const pageStore = await openIdbPeerStore(name, factory);
    const page = await openPeerEngine({ store: pageStore, fetch });
    stores.set(page, pageStore);
    await page.createIdentity('b');
    await paired(a, page, ['th_ab']);
    const workerStore = await openIdbPeerStore(name, factory); // a second connection, as the service worker opens it
    // The interleaving to survive: each side has looked at the store before either writes. Each
    // store's ingest waits until both deliveries have reached it (a barrier, not a delay).
    let arrived = 0;
    let bothArrived!: () => void;
    let barrier = Promise.resolve();
    const atBarrier = (store: PeerStore): PeerStore =>
      Object.assign(Object.create(store) as PeerStore, {
        ingest: async (...args: Parameters<PeerStore['ingest']>) => {
          if (++arrived === 2) bothArrived();
          await barrier;
          return store.ingest(...args);
        },
      });
    const pageSide = await openPeerEngine({ store: atBarrier(pageStore), fetch });
    const worker = await openPeerEngine({ store: atBarrier(workerStore), fetch });
    try {
      const me = { did: didOf(a), secretKey: (await storeOf(a).getIdentity())!.secretKey };
      const { createSigner } = await import('../../src/core');
      const aKey = { did: me.did, secretKey: me.secretKey, signer: createSigner(me.secretKey) };
      const deliver = async (engine: PeerEngine, records: SignedRecord[]) => {
        const env = sealEnvelope(await buildPlainEnvelope({ fromDid: aKey.did, toDid: didOf(page), records }, aKey.signer));
        const answer = await engine.handleDirectDelivery({ envelope: JSON.parse(serializeEnvelope(env)) as unknown });
        expect(answer.status).toBe(200);
        return answer.body as { accepted: string[]; rejected: { id: string; reason: string }[] };
      };
      for (const clock of [10, 11, 12]) {
        const [x, y] = [await equivocated(aKey, clock, `x at ${clock}`), await equivocated(aKey, clock, `y at ${clock}`)];
        arrived = 0;
        barrier = new Promise((resolve) => (bothArrived = resolve));
        const [toPage, toWorker] = await Promise.all([deliver(pageSide, [x]), deliver(worker, [y])]);
        const accepted = [...toPage.accepted, ...toWorker.accepted];
        expect(accepted).toHaveLength(1);
        const rejected = [...toPage.rejected, ...toWorker.rejected];
        expect(rejected).toEqual([{ id: accepted[0] === x.id ? y.id : x.id, reason: expect.stringMatching(/^clock_reused: /) as unknown }]);
        const atClock = (await page.records('th_ab')).filter((r) => r.signed.record.clock === clock);
        expect(atClock.map((r) => r.id)).toEqual(accepted);
      }
      expect((await page.syncStatus()).counters.records_refused_clock_reused).toBe(3);
      expect(await page.dropCounts()).toContainEqual({ reason: 'clock_reused', sender: didOf(a), count: 3 });
    } finally {
      await workerStore.close();
    }
  });
});

describe('§9 pairing states', () => {
  it('the acceptor waits for confirmation; a reused invite is refused on both sides', async () => {
    const a = await peer('a');
    const b = await peer('b');
    const c = await peer('c');
    await a.setRelay(relay.url);
    const { link } = await a.createInvite({ threads: ['th_ab'] });
    await b.acceptInvite(link);
    expect((await b.pairs())[0]).toMatchObject({ waiting: true, enabled: true });
    await expect(b.shareThread('th_more', didOf(a))).rejects.toThrow(/not confirmed/);
    await a.receive();
    await a.flushOutbox();
    await b.receive();
    expect((await b.pairs())[0]!.waiting).toBeUndefined();
    // C got hold of the same link.
    await c.acceptInvite(link);
    await a.receive();
    expect(await a.pairRefusals()).toEqual([expect.objectContaining({ peerDid: didOf(c), name: 'c', reason: 'invite_used' })]);
    expect((await a.pairs()).map((p) => p.name)).toEqual(['b']);
    await a.flushOutbox();
    await c.receive();
    expect((await c.pairs())[0]).toMatchObject({ enabled: false, endReason: 'refused: invite_used' });
    // A repeated reply from B (its confirmation was lost) is confirmed again.
    const doctor = await a.doctor();
    expect(doctor.checks.find((ch) => ch.id === 'pair_refusals')?.message).toContain('c');
  });

  it('a confirmation stored just before a crash still confirms when it comes again (a duplicate)', async () => {
    const a = await peer('a');
    const b = await peer('b');
    await a.setRelay(relay.url);
    const { link } = await a.createInvite({ threads: ['th_ab'] });
    await b.acceptInvite(link);
    await a.receive();
    await a.flushOutbox(); // pair.confirm waits at the relay for B
    // B's process dies right after the batch is committed, before it acts on it or acks it.
    const store = storeOf(b);
    const dying = Object.assign(Object.create(store) as PeerStore, {
      ingest: async (...args: Parameters<PeerStore['ingest']>) => {
        await store.ingest(...args);
        throw new Error('killed after commit');
      },
    });
    const crashed = await openPeerEngine({ store: dying, fetch });
    await expect(crashed.receive()).rejects.toThrow('killed after commit');
    expect((await b.pairs())[0]).toMatchObject({ waiting: true });
    const again = await b.receive(); // the same envelope: every record a duplicate
    expect(again.relays[0]).toMatchObject({ ingested: 0, duplicates: 1 });
    expect((await b.pairs())[0]?.waiting).toBeUndefined();
  });

  it('an invite answered after it expired is refused as invite_expired', async () => {
    let now = Date.now();
    const a = await peer('a', { now: () => now });
    const b = await peer('b');
    await a.setRelay(relay.url);
    const { link } = await a.createInvite({ threads: ['th_ab'], ttlMs: 60_000 });
    await b.acceptInvite(link);
    now += 120_000; // the reply waited at the relay past the invite's expiry
    await a.receive();
    expect((await a.pairRefusals())[0]).toMatchObject({ reason: 'invite_expired' });
    await a.flushOutbox();
    await b.receive();
    expect((await b.pairs())[0]).toMatchObject({ enabled: false, endReason: 'refused: invite_expired' });
  });

  it('either side ends a pair: nothing more is sent to it or accepted from it', async () => {
    const a = await peer('a');
    const b = await peer('b');
    await paired(a, b, ['th_ab']);
    await a.endPair(didOf(b));
    await a.emit({ thread: 'th_ab', text: 'after the end' });
    await a.flushOutbox();
    await b.receive();
    expect((await b.pairs())[0]).toMatchObject({ enabled: false, endReason: 'ended_by_peer' });
    expect(await texts(b, 'th_ab')).not.toContain('after the end');
    // B wrote before it learned: A drops it as unpaired.
    const pb = (await b.pairs())[0]!;
    await b.setPair({ ...pb, enabled: true });
    await b.emit({ thread: 'th_ab', text: 'too late' });
    await b.flushOutbox();
    await a.receive();
    expect(await texts(a, 'th_ab')).not.toContain('too late');
    expect((await a.syncStatus()).counters.records_dropped_unpaired).toBeGreaterThan(0);
    // Nothing written after the end waits for B either.
    const toB = (await storeOf(a).listOutbox()).filter((e) => e.toDid === didOf(b));
    expect(toB.flatMap((e) => e.records.map((r) => r.record.body.text))).not.toContain('after the end');
  });
});
