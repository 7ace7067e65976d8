/**
 * Runs inside Chromium for `npm run bench:ingest`: the real engine and IndexedDB store draining a
 * real relay, and, on the same page, the raw rates ingest cannot beat.
 */
import { openDB, unwrap } from 'idb';
import { ed25519Backend, fromB64u, publicKeyFromDid, recordSigningBytes, verify, type SignedRecord } from '../src/core';
import { openIdbPeerStore } from '../src/store/idb';
import { openPeerEngine, type PeerEngine } from '../src/sync/engine';
import { defaultWorkerCount, workerEnvelopeOpener } from '../src/browser/envelope-opener';

/** `page`: verification on workers, as the app's page runs it; `inline`: as the service worker runs it. */
type Mode = 'page' | 'inline';
const engines = new Map<Mode, PeerEngine>();
/** BENCH_TRACE: start/end times (ms since the drain began) of each fetch, open and store call. */
const trace: { what: string; start: number; end: number }[] = [];
let traceZero = 0;
function traced<A extends unknown[], R>(what: string, fn: (...args: A) => Promise<R>): (...args: A) => Promise<R> {
  return async (...args) => {
    const start = performance.now() - traceZero;
    try {
      return await fn(...args);
    } finally {
      trace.push({ what, start, end: performance.now() - traceZero });
    }
  };
}

/** Web Workers for `page` mode: the app's default unless BENCH_WORKERS says otherwise. */
let workers: number | undefined;

/** Puts `records` as stored rows into a fresh store's records table, as idbPutRate describes; returns ms. */
async function putAll(records: readonly SignedRecord[]): Promise<number> {
  const name = `bench-put-${Date.now()}-${Math.random()}`;
  await (await openIdbPeerStore(name)).close();
  const db = unwrap(await openDB(name));
  const now = Date.now();
  const rows = records.map((s) => ({
    id: s.id,
    signed: s,
    thread: s.record.thread,
    actor: s.record.actor,
    clock: s.record.clock,
    receivedAt: now,
    path: 'relay',
    via: 'http://127.0.0.1:1/',
  }));
  const t0 = performance.now();
  await new Promise<void>((resolve, reject) => {
    const tx = db.transaction('records', 'readwrite', { durability: 'strict' }); // as the store's ingest
    tx.oncomplete = () => resolve();
    tx.onabort = () => reject(tx.error ?? new Error('put transaction aborted'));
    const store = tx.objectStore('records');
    for (const row of rows) store.put(row);
  });
  const ms = performance.now() - t0;
  db.close();
  return ms;
}

const api = {
  async setup(relayUrl: string, senderDid: string, thread: string, mode: Mode, workerCount?: number): Promise<string> {
    workers = workerCount;
    const store = await openIdbPeerStore(`bench-${mode}-${Date.now()}`);
    const ingest = store.ingest.bind(store);
    store.ingest = traced('ingest', ingest);
    const opener = mode === 'page' ? workerEnvelopeOpener(workers) : undefined;
    const fetchFn = traced('fetch', (input: RequestInfo | URL, init?: RequestInit) => fetch(input, init));
    const engine = await openPeerEngine({ store, fetch: fetchFn, ...(opener ? { openEnvelopes: traced('open', opener) } : {}) });
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
    traceZero = t0;
    trace.length = 0;
    const report = await engine.receive({ limit: 100 });
    const ms = performance.now() - t0;
    const r = report.relays[0];
    if (!r || r.error) throw new Error(`receive failed: ${r?.error ?? 'no relay'}`);
    return { ms, ingested: r.ingested, envelopes: r.envelopes, acked: r.acked };
  },

  /**
   * Ceilings for ingest on this machine, in records/s: the same IndexedDB puts run at once with
   * (a) the same envelope opening on the page's workers, and (b) only the signature checks, on as
   * many workers: nothing waits on anything, no relay, no acks. (a) is what a perfect pipeline
   * could reach with this opening code; (b) what any receiver could, since verifying is the least
   * it must do. Where the puts alone keep every core busy, both sit well below the put rate.
   */
  async ceilings(
    recordsJson: string,
    sealedJson: string,
    receiver: { did: string; secretKey: string },
  ): Promise<{ open: number; verify: number }> {
    const records = JSON.parse(recordsJson) as SignedRecord[];
    const envelopes = JSON.parse(sealedJson) as unknown[];
    const me = { did: receiver.did, secretKey: fromB64u(receiver.secretKey)! };
    const count = workers ?? defaultWorkerCount();
    const opener = workerEnvelopeOpener(count);
    if (!opener) throw new Error('no Web Workers here');
    await opener(envelopes.slice(0, 2), me); // start the workers
    let t0 = performance.now();
    const [opened] = await Promise.all([opener(envelopes, me), putAll(records)]);
    const openMs = performance.now() - t0;
    if (!opened.every((o) => o.ok && o.value.records.every((r) => r.ok))) throw new Error('a ceiling envelope did not open');

    const jobs = records.map((r) => ({
      sig: fromB64u(r.sig)!,
      msg: recordSigningBytes(r.record),
      key: (publicKeyFromDid(r.record.actor) as { ok: true; value: Uint8Array }).value,
    }));
    const verifiers = Array.from({ length: count }, () => new Worker(new URL('./verify-worker.ts', import.meta.url), { type: 'module' }));
    const verifyOn = (w: Worker, part: typeof jobs) =>
      new Promise<number>((resolve) => {
        w.onmessage = (e: MessageEvent<number>) => resolve(e.data);
        w.postMessage(part);
      });
    const per = Math.ceil(jobs.length / count);
    const verifyAll = () => Promise.all(verifiers.map((w, i) => verifyOn(w, jobs.slice(i * per, (i + 1) * per))));
    await Promise.all(verifiers.map((w) => verifyOn(w, jobs.slice(0, 2)))); // start the workers
    t0 = performance.now();
    const [valid] = await Promise.all([verifyAll(), putAll(records)]);
    const verifyMs = performance.now() - t0;
    verifiers.forEach((w) => w.terminate());
    if (valid.reduce((a, b) => a + b, 0) !== jobs.length) throw new Error('a ceiling signature did not verify');
    return { open: (records.length / openMs) * 1000, verify: (records.length / verifyMs) * 1000 };
  },

  /** Verification workers in `page` mode, and the cores the browser reports. */
  workers(): { workers: number; cores: number } {
    return { workers: workers ?? defaultWorkerCount(), cores: navigator.hardwareConcurrency };
  },

  takeTrace(): string {
    return trace
      .map(
        (t) =>
          `${t.what.padEnd(7)} ${t.start.toFixed(0).padStart(6)} → ${t.end.toFixed(0).padStart(6)} (${(t.end - t.start).toFixed(0)} ms)`,
      )
      .join('\n');
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
   * ingest uses), no existence checks, and no handler on any request (the fastest way to issue them).
   */
  async idbPutRate(recordsJson: string): Promise<number> {
    const records = JSON.parse(recordsJson) as SignedRecord[];
    return (records.length / (await putAll(records))) * 1000;
  },
};

declare global {
  interface Window {
    ingestBench: typeof api;
  }
}
window.ingestBench = api;
document.getElementById('ready')!.dataset.ready = '1';
