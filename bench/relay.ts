/**
 * Relay benchmark (`npm run bench:relay`): prints ONE JSON object.
 *
 * - deposits/s and p50/p99 at 50 concurrent keep-alive connections, 1 KiB sealed envelopes with
 *   distinct IDs, relay on a temp SQLite file (WAL, synchronous=FULL, group commit), rate limits off;
 * - the same load against a bare node:http server that reads the body and answers 202 (baseline),
 *   and `ratio` = relay ÷ bare; each with the CPU its median round used (load generator, server,
 *   server main thread; % of one core), which says what bound the rate;
 * - receive+ack envelopes/s (signed §6 requests) with p50/p99 per request;
 * - long-poll wake-up latency: deposit sent → waiting receiver answered;
 * - /metrics scrape latency with the queues the deposit phase left.
 *
 * Servers run as child processes with stdout to a file (not a pipe this process must drain); the
 * load generator runs here. Phases are time-bounded.
 */
import { createServer, Agent } from 'node:http';
import { httpCall } from './http-call';
import { processCpu, relayArgs, spawnServer, type Server } from './server-process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createSigner, didFromPublicKey, generateSecretKey, randomBytes, signMailboxRequest, toB64u, type Signer } from '../src/core';

export { httpCall, spawnServer, type Server };

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const CONNECTIONS = 50;
const DEPOSIT_SECONDS = Number(process.env.BENCH_SECONDS ?? 9);
const WARMUP_SECONDS = 3;
const ROUNDS = 3;
const RECEIVE_SECONDS = 5;
const WAKE_SAMPLES = 100;
const SCRAPES = 30;
const ENVELOPE_BYTES = 1024;

// ---------------------------------------------------------------------------------------------

export interface Peer {
  did: string;
  signer: Signer;
}
export const newPeer = (): Peer => {
  const signer = createSigner(generateSecretKey());
  return { did: didFromPublicKey(signer.publicKey), signer };
};

/**
 * A sealed envelope of exactly ENVELOPE_BYTES as a text template whose ID and to_did we vary. The
 * relay never opens sealed envelopes (§4–§5), so random ciphertext of the right shape is
 * indistinguishable from a real one to it.
 */
export function sealedTemplate(to: Peer): { text: string; id: string; toDid: string } {
  const id = 'f'.repeat(64);
  const make = (n: number) =>
    JSON.stringify({
      v: 1,
      id,
      to_did: to.did,
      encoding: 'sealed',
      ttl_seconds: 2_592_000,
      epk: toB64u(randomBytes(32)),
      nonce: toB64u(randomBytes(24)),
      ciphertext: toB64u(randomBytes(n)),
    });
  let n = 16;
  while (Buffer.byteLength(make(n + 1)) <= ENVELOPE_BYTES) n++;
  // Same-length IDs and DIDs keep every variant at this size.
  return { text: make(n), id, toDid: to.did };
}

export const percentile = (sorted: number[], p: number): number => {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
};
export const round = (n: number, d = 2): number => Math.round(n * 10 ** d) / 10 ** d;
const summary = (latencies: number[], count: number, seconds: number) => {
  const s = [...latencies].sort((a, b) => a - b);
  return {
    per_second: Math.round(count / seconds),
    p50_ms: round(percentile(s, 50)),
    p99_ms: round(percentile(s, 99)),
    requests: latencies.length,
  };
};

let idCounter = 0;
export const nextId = (): string => (++idCounter).toString(16).padStart(64, '0');

/**
 * 50 connections each depositing back to back for `seconds`; connection i deposits into receiver i
 * (at relay i mod n when given several relay URLs, e.g. processes sharing one database).
 */
export async function depositLoad(
  urls: string | readonly string[],
  template: { text: string; id: string; toDid: string },
  receivers: Peer[],
  seconds: number,
) {
  const agent = new Agent({ keepAlive: true, maxSockets: CONNECTIONS });
  const latencies: number[] = [];
  let errors = 0;
  const deadline = performance.now() + seconds * 1000;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: CONNECTIONS }, async (_, c) => {
      const to = receivers[c % receivers.length]!;
      const url = typeof urls === 'string' ? urls : urls[c % urls.length]!;
      const base = template.text.replace(template.toDid, to.did);
      const path = `/v1/mailbox/${encodeURIComponent(to.did)}`;
      while (performance.now() < deadline) {
        const body = base.replace(template.id, nextId());
        const t0 = performance.now();
        const res = await httpCall(agent, url, 'POST', path, { 'content-type': 'application/json' }, body);
        latencies.push(performance.now() - t0);
        if (res.status !== 202) {
          if (errors++ === 0) process.stderr.write(`first deposit error: ${res.status} ${res.body.slice(0, 200)}\n`);
        }
      }
    }),
  );
  const elapsed = (performance.now() - started) / 1000;
  agent.destroy();
  return { ...summary(latencies, latencies.length - errors, elapsed), errors, bytes_per_envelope: Buffer.byteLength(template.text) };
}

export async function signedHeaders(
  url: string,
  signer: Signer,
  method: string,
  path: string,
  body: string,
): Promise<Record<string, string>> {
  return { authorization: await signMailboxRequest({ method, host: new URL(url).host, pathAndQuery: path, body }, signer) };
}

/** Each receiver drains its own mailbox: receive (limit 100) then ack, until empty or time is up (receiver i at relay i mod n). */
export async function receiveAckLoad(urls: string | readonly string[], receivers: Peer[], seconds: number) {
  const agent = new Agent({ keepAlive: true, maxSockets: CONNECTIONS });
  const receiveLatencies: number[] = [];
  const ackLatencies: number[] = [];
  let envelopes = 0;
  let errors = 0;
  const deadline = performance.now() + seconds * 1000;
  const started = performance.now();
  await Promise.all(
    receivers.map(async (r, i) => {
      const url = typeof urls === 'string' ? urls : urls[i % urls.length]!;
      const base = `/v1/mailbox/${encodeURIComponent(r.did)}`;
      while (performance.now() < deadline) {
        const rpath = `${base}/receive?limit=100`;
        let t0 = performance.now();
        const got = await httpCall(agent, url, 'GET', rpath, await signedHeaders(url, r.signer, 'GET', rpath, ''));
        receiveLatencies.push(performance.now() - t0);
        if (got.status !== 200) {
          errors++;
          break;
        }
        const ids = (JSON.parse(got.body) as { envelopes: { id: string }[] }).envelopes.map((e) => e.id);
        if (ids.length === 0) break;
        const apath = `${base}/ack`;
        const body = JSON.stringify({ ids });
        const headers = { ...(await signedHeaders(url, r.signer, 'POST', apath, body)), 'content-type': 'application/json' };
        t0 = performance.now();
        const acked = await httpCall(agent, url, 'POST', apath, headers, body);
        ackLatencies.push(performance.now() - t0);
        if (acked.status !== 200) errors++;
        else envelopes += (JSON.parse(acked.body) as { removed: number }).removed;
      }
    }),
  );
  const elapsed = (performance.now() - started) / 1000;
  agent.destroy();
  const rs = [...receiveLatencies].sort((a, b) => a - b);
  const as = [...ackLatencies].sort((a, b) => a - b);
  return {
    envelopes_per_second: Math.round(envelopes / elapsed),
    envelopes,
    seconds: round(elapsed),
    receive_p50_ms: round(percentile(rs, 50)),
    receive_p99_ms: round(percentile(rs, 99)),
    ack_p50_ms: round(percentile(as, 50)),
    ack_p99_ms: round(percentile(as, 99)),
    errors,
  };
}

/**
 * /metrics scrape latency with the queues the deposit phase left (tens of thousands of envelopes):
 * queue figures come from counters, so a scrape must not grow with the table.
 */
export async function scrapeLatency(url: string) {
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  const samples: number[] = [];
  let queued = 0;
  for (let i = 0; i < SCRAPES; i++) {
    const t0 = performance.now();
    const res = await httpCall(agent, url, 'GET', '/metrics', {});
    samples.push(performance.now() - t0);
    queued = [...res.body.matchAll(/^relay_queue_size\{[^}]*\} (\d+)$/gm)].reduce((n, m) => n + Number(m[1]), 0);
  }
  agent.destroy();
  const s = samples.sort((a, b) => a - b);
  return { scrapes: s.length, queued_envelopes: queued, p50_ms: round(percentile(s, 50)), p99_ms: round(percentile(s, 99)) };
}

/**
 * Long-poll wake-up: a receiver waits (wait=10) at `url`; we deposit at `depositUrl` (another
 * process on the same database, or the same relay); latency = deposit sent → receiver answered.
 */
export async function wakeLatency(url: string, depositUrl = url) {
  const agent = new Agent({ keepAlive: true, maxSockets: 4 });
  const receiver = newPeer();
  const template = sealedTemplate(receiver);
  const base = `/v1/mailbox/${encodeURIComponent(receiver.did)}`;
  const samples: number[] = [];
  for (let i = 0; i < WAKE_SAMPLES; i++) {
    const rpath = `${base}/receive?wait=10&limit=10`;
    let answeredAt = 0;
    const polling = httpCall(agent, url, 'GET', rpath, await signedHeaders(url, receiver.signer, 'GET', rpath, '')).then((r) => {
      answeredAt = performance.now();
      return r;
    });
    // Deposit once the relay holds the request (its own gauge says so).
    for (;;) {
      const m = await httpCall(agent, url, 'GET', '/metrics', {});
      if (/^relay_long_polls_waiting 1$/m.test(m.body)) break;
    }
    const id = nextId();
    const sentAt = performance.now();
    await httpCall(agent, depositUrl, 'POST', base, { 'content-type': 'application/json' }, template.text.replace(template.id, id));
    const got = await polling;
    if (!got.body.includes(id)) throw new Error('long-poll answered without the deposited envelope');
    samples.push(answeredAt - sentAt);
    const apath = `${base}/ack`;
    const body = JSON.stringify({ ids: [id] });
    await httpCall(
      agent,
      url,
      'POST',
      apath,
      { ...(await signedHeaders(url, receiver.signer, 'POST', apath, body)), 'content-type': 'application/json' },
      body,
    );
  }
  agent.destroy();
  const s = samples.sort((a, b) => a - b);
  return { samples: s.length, p50_ms: round(percentile(s, 50)), p99_ms: round(percentile(s, 99)) };
}

async function main(): Promise<void> {
  const receivers = Array.from({ length: CONNECTIONS }, newPeer);
  const template = sealedTemplate(receivers[0]!);

  // Both servers run side by side (an idle one costs nothing) and the load alternates between
  // them in rounds, so machine noise (a busy neighbour, frequency changes) hits both alike.
  const bare = await spawnServer([join(ROOT, 'bin', 'run-ts.js'), join(ROOT, 'bench', 'relay.ts'), '--bare-server']);
  const dir = mkdtempSync(join(tmpdir(), 'relay-bench-'));
  const relay = await spawnServer([
    ...relayArgs(join(dir, 'relay.sqlite')),
    ...(process.env.BENCH_RELAY_ARGS ?? '').split(' ').filter(Boolean),
  ]);
  try {
    await depositLoad(bare.url, template, receivers, WARMUP_SECONDS);
    await depositLoad(relay.url, template, receivers, WARMUP_SECONDS);
    const bareRounds: Awaited<ReturnType<typeof depositLoad>>[] = [];
    const relayRounds: Awaited<ReturnType<typeof depositLoad>>[] = [];
    for (let r = 0; r < ROUNDS; r++) {
      bareRounds.push(await withCpu(bare, () => depositLoad(bare.url, template, receivers, DEPOSIT_SECONDS / ROUNDS)));
      relayRounds.push(await withCpu(relay, () => depositLoad(relay.url, template, receivers, DEPOSIT_SECONDS / ROUNDS)));
    }
    await bare.stop();
    const bareResult = medianRound(bareRounds);
    const deposits = medianRound(relayRounds);
    const scrape = await scrapeLatency(relay.url);
    const receiveAck = await receiveAckLoad(relay.url, receivers, RECEIVE_SECONDS);
    const wake = await wakeLatency(relay.url);
    const result = {
      bench: 'relay',
      node: process.version,
      connections: CONNECTIONS,
      envelope_bytes: deposits.bytes_per_envelope,
      storage: 'sqlite file, WAL, synchronous=FULL, group commit',
      deposit: deposits,
      bare_http: bareResult,
      ratio: round(deposits.per_second / bareResult.per_second),
      receive_ack: receiveAck,
      long_poll_wake: wake,
      metrics_scrape: scrape,
      goals: { ratio_at_least_0_5: deposits.per_second / bareResult.per_second >= 0.5, deposit_p99_under_25ms: deposits.p99_ms < 25 },
    };
    process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
  } finally {
    await bare.stop();
    await relay.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * Runs one load round against `server` and adds the CPU it used, in % of one core: this process
 * (the load generator, one thread), the server process, and the server's main thread. At 100%, a
 * thread bounds the rate; with neither at 100%, the round waited on latency (e.g. commits).
 */
async function withCpu<T>(server: Server, run: () => Promise<T>) {
  const pid = server.proc.pid;
  const before = pid === undefined ? undefined : processCpu(pid);
  const load = process.cpuUsage();
  const started = performance.now();
  const result = await run();
  const seconds = (performance.now() - started) / 1000;
  const after = pid === undefined ? undefined : processCpu(pid);
  const used = process.cpuUsage(load);
  const pct = (cpuSeconds: number) => Math.round((cpuSeconds / seconds) * 100);
  const cpu =
    before && after
      ? {
          load_generator_pct: pct((used.user + used.system) / 1e6),
          server_pct: pct(after.total - before.total),
          server_main_thread_pct: pct(after.main - before.main),
        }
      : undefined;
  return { ...result, cpu };
}

/** The round with the median rate, plus every round's rate and p99 for the record. */
export function medianRound<T extends { per_second: number; p99_ms: number }>(
  rounds: T[],
): T & { rounds: { per_second: number; p99_ms: number }[] } {
  const sorted = [...rounds].sort((a, b) => a.per_second - b.per_second);
  return { ...sorted[Math.floor(sorted.length / 2)]!, rounds: rounds.map((r) => ({ per_second: r.per_second, p99_ms: r.p99_ms })) };
}

// ---------------------------------------------------------------------------------------------
// Bare baseline server (child mode): read the body, answer 202 with a deposit-shaped JSON.
function runBareServer(): void {
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const text = JSON.stringify({
        id: 'x'.repeat(64),
        duplicate: false,
        expires_at: Date.now() + 2_592_000_000,
        n: Buffer.concat(chunks).length,
      });
      res.writeHead(202, { 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': Buffer.byteLength(text) });
      res.end(text);
    });
  });
  server.keepAliveTimeout = 10_000;
  server.listen(0, '127.0.0.1', () => {
    const addr = server.address();
    if (addr && typeof addr === 'object')
      process.stdout.write(`${JSON.stringify({ msg: 'listening', url: `http://127.0.0.1:${addr.port}` })}\n`);
  });
  process.on('SIGTERM', () => server.close(() => process.exit(0)));
}

if (process.argv.includes('--bare-server')) runBareServer();
// `--store postgres`: SQLite, one and two PostgreSQL relay processes and bare node:http in one run,
// plus queue scale (bench/relay-postgres.ts). Not awaited here: that module imports this one.
else if (process.argv.includes('--store')) void import('./relay-postgres').then((m) => m.main(process.argv));
else await main();
