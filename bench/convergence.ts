/**
 * `npm run bench:convergence`: how long a three-peer chain laptop–phone–cli takes to converge
 * (PROTOCOL.md §11) after the middle peer comes back: while the phone was away the laptop and the
 * cli each wrote half of N records (default 1,000) on one shared thread; then the phone comes
 * online, and we time until all three hold all N + 1 records (the title included). Real engines
 * on real SQLite stores (as `spl` runs them) and a real relay process over HTTP; each peer runs a
 * receive-and-flush loop like a daemon. The baseline measured in the same run: the same records
 * handed from one store to another with no relay, network or verification (one `ingest`).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openSqlitePeerStore } from '../src/store/sqlite';
import { openPeerEngine, type PeerEngine } from '../src/sync/engine';
import { startRelayProcess } from '../support/relay-process';

const N = Number(process.env.BENCH_RECORDS ?? 1000);
const THREAD = 'th_bench_convergence';
const dir = mkdtempSync(join(tmpdir(), 'spl-bench-conv-'));

/** The relay (stderr into a pipe, kept for a failure message: at --log-level warn it stays quiet). */
const startRelay = () => startRelayProcess(['--db', join(dir, 'relay.sqlite'), '--no-rate-limit', '--log-level', 'warn']);

async function peer(name: string, relay: string): Promise<PeerEngine> {
  const store = await openSqlitePeerStore(join(dir, `${name}.sqlite`));
  const engine = await openPeerEngine({ store, fetch });
  await engine.createIdentity(name);
  await engine.setRelay(relay);
  return engine;
}

async function pair(a: PeerEngine, b: PeerEngine): Promise<void> {
  const { link } = await a.createInvite({ threads: [THREAD] });
  await b.acceptInvite(link);
  await a.receive();
  await a.flushOutbox();
  await b.receive();
}

/** One daemon-like round: send what is due, receive what waits. */
async function round(p: PeerEngine): Promise<void> {
  await p.flushOutbox({ all: true });
  await p.receive({ limit: 500 });
}

const count = async (p: PeerEngine) => (await p.records(THREAD)).length;

const relay = await startRelay();
try {
  const laptop = await peer('laptop', relay.url);
  const phone = await peer('phone', relay.url);
  const cli = await peer('cli', relay.url);
  await laptop.emit({ thread: THREAD, body: { kind: 'thread', text: 'Benchmark' } });
  await pair(laptop, phone);
  await pair(phone, cli);
  for (const p of [laptop, phone, cli]) await round(p);

  // The phone is away: both ends write half each and send (to the relay, for the phone).
  for (let i = 0; i < N / 2; i++) {
    await laptop.emit({ thread: THREAD, text: `laptop ${i}` });
    await cli.emit({ thread: THREAD, text: `cli ${i}` });
  }
  await laptop.flushOutbox();
  await cli.flushOutbox();

  const want = N + 1;
  const started = performance.now();
  let rounds = 0;
  while ((await count(laptop)) < want || (await count(phone)) < want || (await count(cli)) < want) {
    if (++rounds > 200) throw new Error('did not converge in 200 rounds');
    await round(phone); // drains both ends' envelopes and forwards each way
    await round(laptop);
    await round(cli);
  }
  const convergedMs = performance.now() - started;

  // Baseline: the same N records stored by one ingest into a fresh store (no relay, no crypto).
  const fresh = await openSqlitePeerStore(join(dir, 'baseline.sqlite'));
  const all = await phone.records(THREAD);
  const t0 = performance.now();
  await fresh.ingest(all.map((r) => ({ ...r, receivedAt: Date.now() })));
  const baselineMs = performance.now() - t0;
  await fresh.close();

  console.log(
    JSON.stringify({
      records: N,
      peers: 3,
      converged_ms: Math.round(convergedMs),
      rounds,
      records_per_s: Math.round((2 * N) / (convergedMs / 1000)), // N cross the middle twice (to each end)
      baseline_single_ingest_ms: Math.round(baselineMs),
      ratio_to_baseline: Number((convergedMs / baselineMs).toFixed(1)),
    }),
  );
} finally {
  await relay.stop();
  rmSync(dir, { recursive: true, force: true });
}
