/**
 * Runs inside Chromium for `npm run bench:ingest`: the real engine and IndexedDB store draining a
 * real relay, and, on the same page, the raw rates ingest cannot beat.
 */
import { openDB } from 'idb';
import {
  ed25519Backend,
  fromB64u,
  publicKeyFromDid,
  recordSigningBytes,
  verify,
  type SignedRecord,
} from '../src/core';
import { openIdbPeerStore } from '../src/store/idb';
import { openPeerEngine, type PeerEngine } from '../src/sync/engine';
import { workerEnvelopeOpener } from '../src/platform/envelope-opener';

/** `page`: verification on workers, as the app's page runs it; `inline`: as the service worker runs it. */
type Mode = 'page' | 'inline';
const engines = new Map<Mode, PeerEngine>();

const api = {
  async setup(relayUrl: string, senderDid: string, thread: string, mode: Mode): Promise<string> {
    const store = await openIdbPeerStore(`bench-${mode}-${Date.now()}`);
    const opener = mode === 'page' ? workerEnvelopeOpener() : undefined;
    const engine = await openPeerEngine({ store, fetch: (input, init) => fetch(input, init), ...(opener ? { openEnvelopes: opener } : {}) });
    engines.set(mode, engine);
    const me = await engine.createIdentity(`bench receiver (${mode})`);
    await engine.setRelay(relayUrl);
    await engine.setPair({ peerDid: senderDid, name: 'sender', threads: [thread], enabled: true });
    return me.did;
  },

  /** Drains the mailbox: fetch, decrypt, verify, ingest, ack, until empty. */
  async drain(mode: Mode): Promise<{ ms: number; ingested: number; envelopes: number; acked: number }> {
    const engine = engines.get(mode);
    if (!engine) throw new Error('setup first');
    const t0 = performance.now();
    const report = await engine.receive({ limit: 100 });
    const ms = performance.now() - t0;
    const r = report.relays[0];
    if (!r || r.error) throw new Error(`receive failed: ${r?.error ?? 'no relay'}`);
    return { ms, ingested: r.ingested, envelopes: r.envelopes, acked: r.acked };
  },

  async storedCount(mode: Mode, thread: string): Promise<number> {
    return (await engines.get(mode)!.records(thread)).length;
  },

  /** Raw signature verification per second with the fastest verifier here (WebCrypto when present). */
  async verifyRate(recordsJson: string): Promise<{ perSecond: number; backend: string }> {
    const records = JSON.parse(recordsJson) as SignedRecord[];
    const jobs = records.map((r) => ({
      sig: fromB64u(r.sig)!,
      msg: recordSigningBytes(r.record),
      key: (publicKeyFromDid(r.record.actor) as { ok: true; value: Uint8Array }).value,
    }));
    await verify(jobs[0]!.sig, jobs[0]!.msg, jobs[0]!.key); // warm the key cache and backend probe
    const t0 = performance.now();
    const results = await Promise.all(jobs.map((j) => verify(j.sig, j.msg, j.key)));
    const ms = performance.now() - t0;
    if (!results.every(Boolean)) throw new Error('a benchmark signature did not verify');
    return { perSecond: (jobs.length / ms) * 1000, backend: await ed25519Backend() };
  },

  /**
   * Raw IndexedDB puts per second: the same record objects into the same schema (a fresh store's
   * database, opened again without the store), one strict-durability readwrite transaction (as
   * ingest uses), no existence checks.
   */
  async idbPutRate(recordsJson: string): Promise<number> {
    const records = JSON.parse(recordsJson) as SignedRecord[];
    const name = `bench-put-${Date.now()}`;
    await (await openIdbPeerStore(name)).close();
    const db = await openDB(name);
    const now = Date.now();
    const rows = records.map((s) => ({ id: s.id, signed: s, thread: s.record.thread, actor: s.record.actor, clock: s.record.clock, receivedAt: now, path: 'relay' }));
    const t0 = performance.now();
    const tx = db.transaction('records', 'readwrite', { durability: 'strict' }); // as the store's ingest
    for (const row of rows) void tx.objectStore('records').put(row);
    await tx.done;
    const ms = performance.now() - t0;
    db.close();
    return (rows.length / ms) * 1000;
  },
};

declare global {
  interface Window {
    ingestBench: typeof api;
  }
}
window.ingestBench = api;
document.getElementById('ready')!.dataset.ready = '1';
