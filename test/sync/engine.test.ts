/**
 * The peer engine against a real relay process over HTTP, with real (fake-indexeddb) stores:
 * pairing while apart, relay exchange, crash before ack, direct delivery, retries, hostile content.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import 'fake-indexeddb/auto';
import { IDBFactory } from 'fake-indexeddb';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  buildPlainEnvelope,
  exportIdentity,
  openEnvelope,
  sealEnvelope,
  serializeEnvelope,
  signRecord,
  fromB64u,
  toB64u,
  type JsonValue,
} from '../../src/core';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openIdbPeerStore } from '../../src/store/idb';
import { openSqlitePeerStore } from '../../src/store/sqlite';
import { openPeerEngine, type PeerEngine } from '../../src/sync/engine';
import type { PeerEngineDeps } from '../../src/sync/types';
import type { PeerStore } from '../../src/store/types';
import { startRelayProcess, type RelayProcess } from '../../support/relay-process';
import { newPeer, note } from '../../support/fixtures';

let relay: RelayProcess;
const servers: Server[] = [];

beforeAll(async () => {
  relay = await startRelayProcess(['--db', ':memory:', '--no-rate-limit']);
});
afterAll(async () => {
  await relay.stop();
});
const dirs: string[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => new Promise((r) => s.close(r))));
  await Promise.all(dirs.splice(0).map((d) => rm(d, { recursive: true, force: true })));
});

let seq = 0;
const stores = new Map<PeerEngine, PeerStore>();
const storeOf = (e: PeerEngine): PeerStore => stores.get(e)!;

async function peer(name: string, deps: Partial<PeerEngineDeps> = {}): Promise<PeerEngine> {
  const store = await openIdbPeerStore(`test-${name}-${seq++}`, new IDBFactory());
  const engine = await openPeerEngine({ store, fetch, ...deps });
  stores.set(engine, store);
  await engine.createIdentity(name);
  return engine;
}

async function queueSize(did: string): Promise<number> {
  const text = await (await fetch(`${relay.url}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith('relay_queue_size{') && l.includes(did));
  return line ? Number(line.split(' ').pop()) : 0;
}

/** A and B paired through the relay with thread th_shared, B having accepted A's invite. */
async function pairedThroughRelay(): Promise<{ a: PeerEngine; b: PeerEngine }> {
  const a = await peer('laptop');
  const b = await peer('phone');
  await a.setRelay(relay.url);
  const { link } = await a.createInvite({ threads: ['th_shared'] });
  await b.acceptInvite(link);
  await a.receive();
  await a.flushOutbox(); // pair.confirm (§9)
  await b.receive();
  expect((await b.pairs())[0]).toMatchObject({ enabled: true });
  expect((await b.pairs())[0]?.waiting).toBeUndefined();
  return { a, b };
}

async function serveDirect(engine: PeerEngine, status?: number): Promise<string> {
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      void (async () => {
        if (status) {
          res.writeHead(status).end();
          return;
        }
        const out = await engine.handleDirectDelivery(JSON.parse(Buffer.concat(chunks).toString('utf8')));
        res.writeHead(out.status, { 'content-type': 'application/json', ...out.headers }).end(out.text);
      })();
    });
  });
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

describe('peer engine over a real relay', () => {
  it('pairs while apart: B accepts A’s invite through the relay, A completes it from its mailbox', async () => {
    const a = await peer('laptop');
    const b = await peer('phone');
    await a.setRelay(relay.url);
    const { link } = await a.createInvite({ threads: ['th_shared'] });
    const pair = await b.acceptInvite(link);
    expect(pair.peerDid).toBe(a.identity()!.did);
    expect(await b.relayFor(a.identity()!.did)).toBe(relay.url);
    expect(await queueSize(a.identity()!.did)).toBe(1);
    expect(await a.pairs()).toEqual([]);
    const report = await a.receive();
    expect(report.relays[0]).toMatchObject({ envelopes: 1, ingested: 1, acked: 1 });
    const pairs = await a.pairs();
    expect(pairs).toHaveLength(1);
    expect(pairs[0]).toMatchObject({ peerDid: b.identity()!.did, name: 'phone', threads: ['th_shared'], enabled: true });
    // The nonce is single-use: replaying the same invite from another device pairs nobody.
    const c = await peer('stranger');
    await c.acceptInvite(link);
    await a.receive();
    expect((await a.pairs()).map((p) => p.name)).toEqual(['phone']);
    expect((await a.syncStatus()).counters.records_dropped_unpaired).toBe(1);
  });

  it('delivers records through the relay; the receiver verifies, stores and acks them once', async () => {
    const { a, b } = await pairedThroughRelay();
    const confirmations = (await a.syncStatus()).peers[0]!.outbox.relay; // pair.confirm went this way
    for (const t of ['one', 'two', 'three']) await a.emit({ thread: 'th_shared', text: t });
    const flushed = await a.flushOutbox();
    expect(flushed).toMatchObject({ relay: 3, pending: 0, rejected: 0 });
    expect(await queueSize(b.identity()!.did)).toBe(3);
    const got = await b.receive();
    expect(got.relays[0]).toMatchObject({ envelopes: 3, ingested: 3, acked: 3, remaining: 0 });
    const recs = await b.records('th_shared');
    expect(recs.map((r) => r.signed.record.body.text)).toEqual(['one', 'two', 'three']);
    expect(recs.every((r) => r.path === 'relay' && r.via === relay.url)).toBe(true);
    expect(await queueSize(b.identity()!.did)).toBe(0);
    const status = await a.syncStatus();
    expect(status.peers[0]?.outbox).toMatchObject({ relay: confirmations + 3, pending: 0 });
    // Replies flow back: B shares the thread it received on.
    await b.emit({ thread: 'th_shared', text: 'reply' });
    expect((await b.flushOutbox()).relay).toBe(2); // the reply, and the receipt for the three notes (§11)
    await a.receive();
    expect((await a.records('th_shared')).map((r) => r.signed.record.body.text)).toContain('reply');
  });

  it('an aborted long-poll ends at once, records no relay error, and the next receive gets the mail', async () => {
    const { a, b } = await pairedThroughRelay();
    await b.receive(); // drain pair.confirm
    const before = await storeOf(b).getReceiveState(relay.url);
    const controller = new AbortController();
    const polling = b.receive({ waitSeconds: 25, signal: controller.signal });
    // The long-poll is waiting at the relay once the relay counts it (wait on that, not on time).
    await expect
      .poll(async () => (await (await fetch(`${relay.url}/metrics`)).text()).match(/^relay_long_polls_waiting (\d+)/m)?.[1], {
        timeout: 10_000,
      })
      .toBe('1');
    controller.abort();
    const report = await polling;
    expect(report.relays[0]).toMatchObject({ envelopes: 0, ingested: 0 });
    expect(report.relays[0]?.error).toBeUndefined();
    expect((await storeOf(b).getReceiveState(relay.url))?.lastError).toBe(before?.lastError);
    // A receive started with an already-aborted signal does not reach the relay at all.
    const pre = new AbortController();
    pre.abort();
    await a.emit({ thread: 'th_shared', text: 'after abort' });
    await a.flushOutbox();
    expect((await b.receive({ signal: pre.signal })).relays[0]).toMatchObject({ envelopes: 0 });
    expect((await b.receive()).relays[0]).toMatchObject({ envelopes: 1, ingested: 1 });
  });

  it('re-delivery after a crash between ingest and ack stores nothing twice', async () => {
    const { a, b } = await pairedThroughRelay();
    await a.emit({ thread: 'th_shared', text: 'x' });
    await a.emit({ thread: 'th_shared', text: 'y' });
    await a.flushOutbox();
    const crashing = await openPeerEngine({
      store: storeOf(b),
      fetch,
      beforeAck: () => Promise.reject(new Error('crash before ack')),
    });
    await expect(crashing.receive()).rejects.toThrow('crash before ack');
    expect((await b.records('th_shared')).length).toBe(2);
    expect(await queueSize(b.identity()!.did)).toBe(2);
    const again = await b.receive();
    expect(again.relays[0]).toMatchObject({ envelopes: 2, ingested: 0, duplicates: 2, acked: 2 });
    expect((await b.records('th_shared')).length).toBe(2);
    expect((await b.syncStatus()).counters.envelopes_redelivered).toBe(2);
    expect(await queueSize(b.identity()!.did)).toBe(0);
  });

  it('drops a tampered envelope and records from an unpaired DID, counts them and acks them', async () => {
    const { a, b } = await pairedThroughRelay();
    const bDid = b.identity()!.did;
    const mallory = newPeer();
    const rec = await signRecord(note(mallory.did, 'spam', 0, 'th_shared'), mallory.signer);
    const spam = sealEnvelope(await buildPlainEnvelope({ fromDid: mallory.did, toDid: bDid, records: [rec] }, mallory.signer));
    await a.emit({ thread: 'th_shared', text: 'genuine' });
    const real = (await storeOf(a).listOutbox()).find((e) => e.path === 'pending')!;
    const sealed = JSON.parse(real.envelope) as { ciphertext: string };
    const ct = fromB64u(sealed.ciphertext)!;
    ct[10]! ^= 0xff;
    const tampered = { ...sealed, ciphertext: toB64u(ct) };
    for (const env of [serializeEnvelope(spam), JSON.stringify(tampered)]) {
      const res = await fetch(`${relay.url}/v1/mailbox/${encodeURIComponent(bDid)}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: env,
      });
      expect(res.status).toBe(202);
    }
    const got = await b.receive();
    expect(got.relays[0]).toMatchObject({ envelopes: 2, ingested: 0, acked: 2 });
    expect(await queueSize(bDid)).toBe(0);
    const counters = (await b.syncStatus()).counters;
    expect(counters.records_dropped_unpaired).toBe(1);
    expect(counters.envelopes_rejected).toBe(1);
    const doctor = await b.doctor();
    expect(doctor.checks.find((c) => c.id === 'dropped_unpaired')?.status).toBe('warn');
    expect(doctor.checks.find((c) => c.id === 'rejected_content')?.status).toBe('warn');
    // The genuine envelope still arrives afterwards.
    await a.flushOutbox();
    await b.receive();
    expect((await b.records('th_shared')).map((r) => r.signed.record.body.text)).toEqual(['genuine']);
  });

  it('delivers direct first when the peer is reachable, and the relay sees nothing', async () => {
    const { a, b } = await pairedThroughRelay();
    const url = await serveDirect(b);
    const bDid = b.identity()!.did;
    const pair = (await a.pairs())[0]!;
    await a.setPair({ ...pair, peerUrl: url });
    const before = (await a.syncStatus()).peers[0]!.outbox.relay;
    await a.emit({ thread: 'th_shared', text: 'direct' });
    expect(await a.flushOutbox()).toMatchObject({ direct: 1, relay: 0 });
    expect((await a.syncStatus()).peers[0]!.outbox.relay).toBe(before);
    expect(await queueSize(bDid)).toBe(0);
    const recs = await b.records('th_shared');
    expect(recs.find((r) => r.signed.record.body.text === 'direct')?.path).toBe('direct');
    // The same record arriving again through the relay is stored once.
    const entry = (await storeOf(a).listOutbox()).find((e) => e.path === 'direct')!;
    await fetch(`${relay.url}/v1/mailbox/${encodeURIComponent(bDid)}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: entry.envelope,
    });
    const again = await b.receive();
    expect(again.relays[0]).toMatchObject({ ingested: 0, duplicates: 1 });
    expect((await b.records('th_shared')).filter((r) => r.signed.record.body.text === 'direct')).toHaveLength(1);
  });

  it('falls back to the relay when direct answers 5xx, and keeps the envelope pending when both fail', async () => {
    const { a, b } = await pairedThroughRelay();
    const failing = await serveDirect(b, 503);
    const pair = (await a.pairs())[0]!;
    await a.setPair({ ...pair, peerUrl: failing });
    await a.emit({ thread: 'th_shared', text: 'fallback' });
    expect(await a.flushOutbox()).toMatchObject({ relay: 1, direct: 0 });

    // Neither path: the relay is down too.
    let now = Date.now();
    const c = await peer('offline-sender', { now: () => now });
    await c.setRelay('http://127.0.0.1:9'); // discard port: nothing listens
    await c.setPair({ peerDid: b.identity()!.did, name: 'phone', threads: ['th_x'], enabled: true });
    await c.emit({ thread: 'th_x', text: 'later' });
    const r = await c.flushOutbox();
    expect(r.pending).toBe(1);
    const st = (await c.syncStatus()).peers[0]!;
    expect(st.outbox.pending).toBe(1);
    expect(st.lastError).toContain('relay: network error');
    expect(st.nextAttemptAt! - now).toBeLessThanOrEqual(30_000);
    expect((await c.flushOutbox()).attempted).toBe(0); // not due yet
    expect(await c.nextDueAt()).toBe(st.nextAttemptAt); // what the scheduler's retry timer waits for
    // The relay comes back (now configured): delivered on the forced retry.
    await c.setRelay(relay.url);
    expect(await c.flushOutbox({ all: true })).toMatchObject({ relay: 1 });
    expect(await c.nextDueAt()).toBeUndefined(); // nothing pending
    // Retention: an undelivered envelope is kept 7 days, then pruned.
    await c.emit({ thread: 'th_x', text: 'never' });
    await c.setRelay('http://127.0.0.1:9');
    await c.flushOutbox();
    now += 8 * 24 * 3600_000;
    await c.flushOutbox();
    expect((await c.syncStatus()).peers[0]!.outbox.pending).toBe(0);
  });

  it('marks a 4xx refusal rejected with its reason, never silently dropped', async () => {
    const c = await peer('sender');
    const b = await peer('receiver');
    await c.setRelay(relay.url);
    await c.setPair({ peerDid: b.identity()!.did, name: 'r', threads: ['th_y'], enabled: true });
    // A relay path that answers 404 (wrong base URL) is a refusal, not a retry.
    await c.setRelay(`${relay.url}/not-a-relay`, b.identity()!.did);
    await c.emit({ thread: 'th_y', text: 'x' });
    expect(await c.flushOutbox()).toMatchObject({ rejected: 1 });
    const st = (await c.syncStatus()).peers[0]!;
    expect(st.outbox.rejected).toBe(1);
    expect(st.lastError).toContain('404');
    expect((await c.doctor()).checks.find((ch) => ch.id === 'outbox_rejected')?.status).toBe('warn');
  });

  it('direct endpoint: 422 unsigned, rejects tampered and unpaired records with reasons', async () => {
    const { a, b } = await pairedThroughRelay();
    const rec = await a.emit({ thread: 'th_shared', text: 'ok' });
    const unsigned = await b.handleDirectDelivery({ records: [{ id: rec.id, record: rec.signed.record }] });
    expect(unsigned.status).toBe(422);
    const tampered = { ...rec.signed, record: { ...rec.signed.record, body: { text: 'evil' } } };
    const mallory = newPeer();
    const foreign = await signRecord(note(mallory.did, 'hi', 0, 'th_shared'), mallory.signer);
    const uncanonical = { ...rec.signed, record: { ...rec.signed.record, actor: `${rec.signed.record.actor}\uDC00` } };
    const res = await b.handleDirectDelivery({ records: [rec.signed, tampered, foreign, uncanonical] });
    expect(res.status).toBe(200);
    const body = res.body as { accepted: string[]; duplicates: string[]; rejected: { id: string; reason: string }[] };
    expect(body.accepted).toEqual([rec.id]);
    expect(body.rejected.map((r) => r.reason.split(':')[0]).sort()).toEqual(['id_mismatch', 'invalid_record', 'unpaired']);
    const dup = await b.handleDirectDelivery({ records: [rec.signed] });
    expect((dup.body as { duplicates: string[] }).duplicates).toEqual([rec.id]);
    expect((await b.handleDirectDelivery({ nope: 1 })).status).toBe(400);
  });

  it('verifies with an injected opener, and inline when that opener fails', async () => {
    const { a, b } = await pairedThroughRelay();
    const calls: number[] = [];
    const store = storeOf(b);
    const viaOpener = await openPeerEngine({
      store,
      fetch,
      openEnvelopes: (envs, me) => {
        calls.push(envs.length);
        return Promise.all(envs.map((e) => openEnvelope(e, me)));
      },
    });
    await a.emit({ thread: 'th_shared', text: 'opened elsewhere' });
    await a.flushOutbox();
    expect((await viaOpener.receive()).relays[0]).toMatchObject({ ingested: 1 });
    expect(calls).toEqual([1]);
    const broken = await openPeerEngine({ store, fetch, openEnvelopes: () => Promise.reject(new Error('worker died')) });
    await a.emit({ thread: 'th_shared', text: 'opened inline' });
    await a.flushOutbox();
    expect((await broken.receive()).relays[0]).toMatchObject({ ingested: 1 });
    expect((await b.records('th_shared')).map((r) => r.signed.record.body.text)).toEqual(['opened elsewhere', 'opened inline']);
  });

  it('opens a large batch in pieces and commits whatever is opened by then in one transaction, in order', async () => {
    const { a, b } = await pairedThroughRelay();
    const bDid = b.identity()!.did;
    const before = (await b.syncStatus()).counters;
    const deposit = async (env: string) => {
      const res = await fetch(`${relay.url}/v1/mailbox/${encodeURIComponent(bDid)}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: env,
      });
      expect(res.status).toBe(202);
    };
    const sendNotes = async (texts: string[]) => {
      for (const text of texts) await a.emit({ thread: 'th_shared', text });
      expect((await a.flushOutbox()).relay).toBe(texts.length);
    };
    await sendNotes(['n0', 'n1', 'n2', 'n3', 'n4']);
    const mallory = newPeer();
    const spam = await signRecord(note(mallory.did, 'spam', 0, 'th_shared'), mallory.signer);
    await deposit(
      serializeEnvelope(sealEnvelope(await buildPlainEnvelope({ fromDid: mallory.did, toDid: bDid, records: [spam] }, mallory.signer))),
    );
    const other = sealEnvelope(
      await buildPlainEnvelope(
        { fromDid: mallory.did, toDid: bDid, records: [await signRecord(note(mallory.did, 'other', 1, 'th_shared'), mallory.signer)] },
        mallory.signer,
      ),
    );
    const ct = fromB64u(other.ciphertext)!;
    ct[5]! ^= 0xff;
    await deposit(JSON.stringify({ ...other, ciphertext: toB64u(ct) }));
    await sendNotes(['n5', 'n6', 'n7', 'n8', 'n9']);

    // The first piece is held until every other piece has been opened and handed back (a macrotask
    // later, when every promise waiting on them has run): the writer then takes all of them at once.
    const pieces: number[] = [];
    let othersOpened = 0;
    let releaseFirst!: () => void;
    const lastOpened = new Promise<void>((resolve) => (releaseFirst = () => setImmediate(resolve)));
    const ingestSizes: number[] = [];
    const store = storeOf(b);
    const spy = Object.assign(Object.create(store) as PeerStore, {
      ingest: (...args: Parameters<PeerStore['ingest']>) => {
        ingestSizes.push(args[0].length);
        return store.ingest(...args);
      },
    });
    const engine = await openPeerEngine({
      store: spy,
      fetch,
      openEnvelopes: async (envs, me) => {
        const n = pieces.push(envs.length);
        const opened = await Promise.all(envs.map((e) => openEnvelope(e, me)));
        if (n === 1) await lastOpened;
        else if (++othersOpened === 2) releaseFirst();
        return opened;
      },
    });
    const got = await engine.receive();
    expect(pieces).toEqual([4, 4, 4]);
    expect(ingestSizes).toEqual([10]);
    expect(got.relays[0]).toMatchObject({ envelopes: 12, ingested: 10, dropped: 2, acked: 12, remaining: 0 });
    expect(await queueSize(bDid)).toBe(0);
    expect((await b.records('th_shared')).map((r) => r.signed.record.body.text)).toEqual([
      'n0',
      'n1',
      'n2',
      'n3',
      'n4',
      'n5',
      'n6',
      'n7',
      'n8',
      'n9',
    ]);
    expect((await b.syncStatus()).counters).toMatchObject({
      envelopes_received: before.envelopes_received + 12,
      envelopes_rejected: before.envelopes_rejected + 1,
      records_dropped_unpaired: before.records_dropped_unpaired + 1,
    });
  });

  it.each([
    [
      'IndexedDB (page and service worker without Web Locks)',
      async () => {
        const factory = new IDBFactory();
        const name = `test-shared-${seq++}`;
        return [await openIdbPeerStore(name, factory), await openIdbPeerStore(name, factory)] as const;
      },
    ],
    [
      'SQLite (the daemon and a one-shot spl)',
      async () => {
        const dir = await mkdtemp(join(tmpdir(), 'spl-engine-'));
        dirs.push(dir);
        return [await openSqlitePeerStore(join(dir, 'peer.db')), await openSqlitePeerStore(join(dir, 'peer.db'))] as const;
      },
    ],
  ])('two writers sharing one %s never give two records one clock', async (_, open) => {
    const [first, second] = await open();
    const one = await openPeerEngine({ store: first, fetch });
    await one.createIdentity('shared');
    const two = await openPeerEngine({ store: second, fetch }); // same identity, its own in-process locks
    const texts = Array.from({ length: 12 }, (_, i) => `note ${i}`);
    await Promise.all(texts.map((text, i) => (i % 2 ? two : one).emit({ thread: 'th_race', text })));
    const clocks = (await one.records('th_race')).map((r) => r.clock);
    // Strictly increasing, none shared, none lost (each at least the time it was written at, emit.ts).
    expect(clocks).toHaveLength(texts.length);
    expect(new Set(clocks).size).toBe(texts.length);
    expect(clocks).toEqual([...clocks].sort((x, y) => x - y));
    await Promise.all([first.close(), second.close()]);
  });

  it('restores an exported identity on a new device, which then receives its mail', async () => {
    const { a, b } = await pairedThroughRelay();
    const file = await b.exportIdentity('a long enough passphrase');
    await a.emit({ thread: 'th_shared', text: 'for the restored phone' });
    await a.flushOutbox();
    const fresh = await openPeerEngine({ store: await openIdbPeerStore(`restored-${seq++}`, new IDBFactory()), fetch });
    await expect(fresh.importIdentity(file, 'not the passphrase')).rejects.toThrow(/passphrase/);
    const restored = await fresh.importIdentity(file, 'a long enough passphrase');
    expect(restored.did).toBe(b.identity()!.did);
    await expect(fresh.importIdentity(file, 'a long enough passphrase')).rejects.toThrow(/already has an identity/);
    // Its relays and pairs came with the key: it receives from its peer at once, nothing dropped.
    expect((await fresh.relays()).map((r) => r.url)).toEqual((await b.relays()).map((r) => r.url));
    expect((await fresh.pairs()).map((p) => [p.peerDid, p.threads])).toEqual([[a.identity()!.did, ['th_shared']]]);
    expect((await fresh.receive()).relays[0]).toMatchObject({ ingested: 1, dropped: 0 });
    expect((await fresh.records('th_shared')).map((r) => r.signed.record.body.text)).toEqual(['for the restored phone']);
    // And it goes on writing its configuration after the restored records, not over them.
    await fresh.setRelay('http://127.0.0.1:9', newPeer().did);
    expect((await fresh.relays()).length).toBe((await b.relays()).length + 1);
  });

  it('a device restored from a backup writes above the clocks it used after the backup: its first note is not refused as clock_reused', async () => {
    const { a, b } = await pairedThroughRelay();
    const file = await b.exportIdentity('a long enough passphrase');
    // After the backup the old phone writes twice, and its peer stores both.
    for (const text of ['after the backup', 'and again']) await b.emit({ thread: 'th_shared', text });
    await b.flushOutbox();
    expect((await a.receive()).relays[0]).toMatchObject({ ingested: 2, dropped: 0 });
    // The restored phone writes before any history came back (its store holds none of those two).
    const fresh = await openPeerEngine({ store: await openIdbPeerStore(`restored-${seq++}`, new IDBFactory()), fetch });
    await fresh.importIdentity(file, 'a long enough passphrase');
    expect(await fresh.records('th_shared')).toEqual([]);
    await fresh.emit({ thread: 'th_shared', text: 'from the restored phone' });
    await fresh.flushOutbox();
    // (It also asks for its history, §11: a control record, ingested too.)
    expect((await a.receive()).relays[0]).toMatchObject({ dropped: 0 });
    const texts = (await a.records('th_shared')).filter((r) => r.actor === b.identity()!.did).map((r) => r.signed.record.body.text);
    expect(texts).toEqual(['after the backup', 'and again', 'from the restored phone']);
  });

  it('a restore interrupted before the identity is written can simply be run again', async () => {
    const { b } = await pairedThroughRelay();
    const file = await b.exportIdentity('a long enough passphrase');
    const store = await openIdbPeerStore(`restored-${seq++}`, new IDBFactory());
    const failing = Object.assign(Object.create(store) as PeerStore, { createIdentity: () => Promise.reject(new Error('disk full')) });
    await expect((await openPeerEngine({ store: failing, fetch })).importIdentity(file, 'a long enough passphrase')).rejects.toThrow(
      'disk full',
    );
    expect(await store.getIdentity()).toBeUndefined();
    const again = await openPeerEngine({ store, fetch });
    expect((await again.importIdentity(file, 'a long enough passphrase')).did).toBe(b.identity()!.did);
    expect(await again.pairs()).toEqual(await b.pairs());
    expect((await store.recordsByThread('th_engine_config')).length).toBe((await storeOf(b).recordsByThread('th_engine_config')).length);
  });

  it("refuses a backup whose settings hold another identity's records, and writes nothing", async () => {
    const owner = newPeer();
    const mallory = newPeer();
    const foreign = await signRecord({ ...note(mallory.did, 'relay', 0, 'th_engine_config'), act: 'LEARN' }, mallory.signer);
    const file = await exportIdentity(
      { did: owner.did, name: 'owner', secretKey: owner.secretKey, settings: { config: [foreign as unknown as JsonValue] } },
      'a long enough passphrase',
    );
    if (!file.ok) throw new Error(file.error.message);
    const fresh = await openPeerEngine({ store: await openIdbPeerStore(`restored-${seq++}`, new IDBFactory()), fetch });
    await expect(fresh.importIdentity(file.value, 'a long enough passphrase')).rejects.toThrow(/not this identity's configuration/);
    expect(fresh.identity()).toBeUndefined();
    await expect(
      fresh.importIdentity(file.value.replace(/"settings_nonce": "[^"]+",?\s*/, ''), 'a long enough passphrase'),
    ).rejects.toThrow(/settings nonce/);
  });

  it('doctor flags an unreachable relay', async () => {
    const c = await peer('lonely');
    await c.setRelay('http://127.0.0.1:9');
    const report = await c.doctor();
    expect(report.status).toBe('fail');
    expect(report.checks.find((ch) => ch.id === 'relay_reachable')?.status).toBe('fail');
  });
});
