/**
 * `npm run bench:relay -- --store postgres`: prints ONE JSON object comparing, in one run,
 *
 * - deposits/s with p50/p99 (50 keep-alive connections, 1 KiB sealed envelopes) against bare
 *   node:http, a SQLite relay, one PostgreSQL-backed relay process, and two processes on one
 *   database (connections split between them); rounds alternate between the servers so machine
 *   noise hits all alike;
 * - receive+ack envelopes/s with p50/p99 per request on each store;
 * - long-poll wake latency, across processes for the two-process setup (wait on A, deposit on B);
 * - /metrics scrape latency with the queues the deposit phase left;
 * - queue scale for SQLite and PostgreSQL: receive+ack latency of one receiver on an empty relay,
 *   then with 1,000,000 envelopes queued over 10,000 other receivers (bulk-inserted straight into
 *   the database, then checkpointed and analysed), goal ≤ 1.5× the empty figure, measured on an
 *   empty and a full relay side by side in alternating rounds; the relay is checked to serve the
 *   bulk envelopes.
 *
 * PostgreSQL is a throwaway cluster (support/postgres.ts) with default settings (fsync on,
 * synchronous_commit on).
 */
import { Agent } from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { createHash, randomBytes } from 'node:crypto';
import { startPostgres } from '../support/postgres';
import {
  depositLoad,
  httpCall,
  medianRound,
  newPeer,
  nextId,
  percentile,
  receiveAckLoad,
  round,
  scrapeLatency,
  sealedTemplate,
  signedHeaders,
  spawnServer,
  wakeLatency,
  type Peer,
  type Server,
} from './relay';
import { relayArgs as sharedRelayArgs } from './server-process';
import { fillRelaySqlite } from './sqlite-fill';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const CONNECTIONS = 50;
const DEPOSIT_SECONDS = Number(process.env.BENCH_SECONDS ?? 6);
const WARMUP_SECONDS = 2;
const ROUNDS = 3;
const RECEIVE_SECONDS = 4;
const SCALE_ENVELOPES = Number(process.env.BENCH_SCALE_ENVELOPES ?? 1_000_000);
const SCALE_RECEIVERS = 10_000;
const SCALE_SAMPLES = 300;
const SCALE_ROUNDS = 3;
const SCALE_BODY_BYTES = 1024;

const relayArgs = (db: string): string[] => [...sharedRelayArgs(db), '--log-level', 'warn'];

type DepositResult = Awaited<ReturnType<typeof depositLoad>>;

export async function main(argv: readonly string[]): Promise<void> {
  const store = argv[argv.indexOf('--store') + 1];
  if (store !== 'postgres') {
    process.stderr.write('usage: npm run bench:relay -- --store postgres\n');
    process.exit(2);
  }
  const cluster = await startPostgres();
  const dir = mkdtempSync(join(tmpdir(), 'relay-bench-pg-'));
  const servers: Server[] = [];
  const spawn = async (args: string[]) => {
    const s = await spawnServer(args);
    servers.push(s);
    return s;
  };
  try {
    const receivers = Array.from({ length: CONNECTIONS }, newPeer);
    const template = sealedTemplate(receivers[0]!);
    const bare = await spawn([join(ROOT, 'bin', 'run-ts.js'), join(ROOT, 'bench', 'relay.ts'), '--bare-server']);
    const sqlite = await spawn(relayArgs(join(dir, 'relay.sqlite')));
    const pgOne = await spawn(relayArgs(await cluster.createDatabase('bench_one')));
    const twoUrl = await cluster.createDatabase('bench_two');
    const pgTwoA = await spawn(relayArgs(twoUrl));
    const pgTwoB = await spawn(relayArgs(twoUrl));
    const setups: { name: string; urls: string[] }[] = [
      { name: 'bare_http', urls: [bare.url] },
      { name: 'sqlite', urls: [sqlite.url] },
      { name: 'postgres_1_process', urls: [pgOne.url] },
      { name: 'postgres_2_processes', urls: [pgTwoA.url, pgTwoB.url] },
    ];

    for (const s of setups) await depositLoad(s.urls, template, receivers, WARMUP_SECONDS);
    const rounds = new Map<string, DepositResult[]>(setups.map((s) => [s.name, []]));
    for (let r = 0; r < ROUNDS; r++) {
      for (const s of setups) rounds.get(s.name)!.push(await depositLoad(s.urls, template, receivers, DEPOSIT_SECONDS / ROUNDS));
    }
    await bare.stop();
    const deposit = Object.fromEntries(setups.map((s) => [s.name, medianRound(rounds.get(s.name)!)]));
    const bareRate = deposit.bare_http!.per_second;

    const receiveAck: Record<string, unknown> = {};
    const wake: Record<string, unknown> = {};
    const scrape: Record<string, unknown> = {};
    for (const s of setups.slice(1)) {
      scrape[s.name] = await scrapeLatency(s.urls[0]!);
      receiveAck[s.name] = await receiveAckLoad(s.urls, receivers, RECEIVE_SECONDS);
      wake[s.name] = await wakeLatency(s.urls[0]!, s.urls[s.urls.length - 1]);
    }
    for (const s of [sqlite, pgOne, pgTwoA, pgTwoB]) await s.stop();

    const scale = {
      sqlite: await queueScaleSqlite(dir),
      postgres: await queueScalePostgres(
        await cluster.createDatabase('bench_scale_empty'),
        await cluster.createDatabase('bench_scale_full'),
      ),
    };

    const result = {
      bench: 'relay-postgres',
      node: process.version,
      connections: CONNECTIONS,
      envelope_bytes: deposit.sqlite!.bytes_per_envelope,
      storage: {
        sqlite: 'file, WAL, synchronous=FULL, group commit',
        postgres: 'throwaway cluster, default settings (fsync on, synchronous_commit on), pool 10 per process',
      },
      deposit,
      deposit_ratio_to_bare: Object.fromEntries(setups.slice(1).map((s) => [s.name, round(deposit[s.name]!.per_second / bareRate)])),
      receive_ack: receiveAck,
      long_poll_wake: wake,
      metrics_scrape: scrape,
      queue_scale: scale,
      goals: {
        sqlite_queue_scale_within_1_5x: scale.sqlite.ratio_p50 <= 1.5,
        postgres_queue_scale_within_1_5x: scale.postgres.ratio_p50 <= 1.5,
      },
    };
    process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
  } finally {
    for (const s of servers) await s.stop();
    cluster.destroy();
    rmSync(dir, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------------------------------------
// Queue scale

/**
 * One receiver, `samples` times: deposit 10, then receive (limit 10: a full page, so the live
 * count runs too) + ack; the latency of receive+ack. Returns the raw samples.
 */
async function receiverSamples(url: string, receiver: Peer, samples: number): Promise<number[]> {
  const agent = new Agent({ keepAlive: true, maxSockets: 2 });
  const template = sealedTemplate(receiver);
  const base = `/v1/mailbox/${encodeURIComponent(receiver.did)}`;
  const out: number[] = [];
  for (let i = 0; i < samples; i++) {
    for (let k = 0; k < 10; k++) {
      const res = await httpCall(
        agent,
        url,
        'POST',
        base,
        { 'content-type': 'application/json' },
        template.text.replace(template.id, nextId()),
      );
      if (res.status !== 202) throw new Error(`deposit answered ${res.status}`);
    }
    const rpath = `${base}/receive?limit=10`;
    const rh = await signedHeaders(url, receiver.signer, 'GET', rpath, '');
    const t0 = performance.now();
    const got = await httpCall(agent, url, 'GET', rpath, rh);
    const t1 = performance.now();
    const ids = (JSON.parse(got.body) as { envelopes: { id: string }[] }).envelopes.map((e) => e.id);
    if (ids.length !== 10) throw new Error(`receive gave ${ids.length} envelopes`);
    const apath = `${base}/ack`;
    const body = JSON.stringify({ ids });
    const ah = { ...(await signedHeaders(url, receiver.signer, 'POST', apath, body)), 'content-type': 'application/json' };
    const t2 = performance.now();
    const acked = await httpCall(agent, url, 'POST', apath, ah, body);
    const t3 = performance.now();
    if (acked.status !== 200) throw new Error(`ack answered ${acked.status}`);
    out.push(t1 - t0 + (t3 - t2));
  }
  agent.destroy();
  return out;
}

/**
 * Empty and full relays side by side, measured in alternating rounds (machine noise hits both
 * alike), after the bulk load has been checkpointed and analysed: the figure is the steady state
 * of a relay holding that queue, not the aftermath of loading it.
 */
async function compareEmptyFull(emptyUrl: string, fullUrl: string) {
  const receiver = newPeer();
  const empty: number[] = [];
  const full: number[] = [];
  await receiverSamples(emptyUrl, receiver, 20); // warm-up
  await receiverSamples(fullUrl, receiver, 20);
  for (let r = 0; r < SCALE_ROUNDS; r++) {
    empty.push(...(await receiverSamples(emptyUrl, receiver, SCALE_SAMPLES / SCALE_ROUNDS)));
    full.push(...(await receiverSamples(fullUrl, receiver, SCALE_SAMPLES / SCALE_ROUNDS)));
  }
  const stat = (xs: number[]) => {
    const s = [...xs].sort((a, b) => a - b);
    return { samples: s.length, p50_ms: round(percentile(s, 50)), p99_ms: round(percentile(s, 99)) };
  };
  const e = stat(empty);
  const f = stat(full);
  return { empty: e, full: f, ratio_p50: round(f.p50_ms / e.p50_ms), ratio_p99: round(f.p99_ms / e.p99_ms) };
}

/** The relay serves a bulk-inserted mailbox: all its envelopes, remaining 0. */
async function checkServes(url: string, peer: Peer, expected: number): Promise<boolean> {
  const agent = new Agent({ keepAlive: false });
  const rpath = `/v1/mailbox/${encodeURIComponent(peer.did)}/receive?limit=500`;
  const got = await httpCall(agent, url, 'GET', rpath, await signedHeaders(url, peer.signer, 'GET', rpath, ''));
  const body = JSON.parse(got.body) as { envelopes: unknown[]; remaining: number };
  return got.status === 200 && body.envelopes.length === expected && body.remaining === 0;
}

function bulkBody(id: string, to: string): string {
  const pad = randomBytes(SCALE_BODY_BYTES).toString('base64url');
  const head = JSON.stringify({
    v: 1,
    id,
    to_did: to,
    encoding: 'sealed',
    ttl_seconds: 2_592_000,
    epk: randomBytes(32).toString('base64url'),
    nonce: randomBytes(24).toString('base64url'),
    ciphertext: '',
  });
  return head.replace('"ciphertext":""', `"ciphertext":"${pad.slice(0, Math.max(16, SCALE_BODY_BYTES - head.length))}"`);
}

const perReceiver = () => Math.floor(SCALE_ENVELOPES / SCALE_RECEIVERS);

async function queueScaleSqlite(dir: string) {
  const bulkPeers = Array.from({ length: SCALE_RECEIVERS }, newPeer);
  const emptyPath = join(dir, 'scale-empty.sqlite');
  const fullPath = join(dir, 'scale-full.sqlite');
  // Create both schemas through the relay itself, then load the full one with the relay stopped.
  for (const path of [emptyPath, fullPath]) await (await spawnServer(relayArgs(path))).stop();
  const t0 = performance.now();
  const n = perReceiver();
  fillRelaySqlite(
    fullPath,
    bulkPeers.map((p) => p.did),
    n * SCALE_RECEIVERS,
    (i, did) => {
      const id = createHash('sha256')
        .update(`${did}:${Math.floor(i / SCALE_RECEIVERS)}`)
        .digest('hex');
      return { id, body: bulkBody(id, did) };
    },
  );
  const loadSeconds = (performance.now() - t0) / 1000;
  const emptyRelay = await spawnServer(relayArgs(emptyPath));
  const fullRelay = await spawnServer(relayArgs(fullPath));
  try {
    const serves = await checkServes(fullRelay.url, bulkPeers[SCALE_RECEIVERS - 1]!, n);
    return {
      queued: n * SCALE_RECEIVERS,
      receivers: SCALE_RECEIVERS,
      bulk_load_seconds: round(loadSeconds, 1),
      ...(await compareEmptyFull(emptyRelay.url, fullRelay.url)),
      serves_bulk_mailbox: serves,
    };
  } finally {
    await emptyRelay.stop();
    await fullRelay.stop();
  }
}

async function queueScalePostgres(emptyUrl: string, fullUrl: string) {
  const bulkPeers = Array.from({ length: SCALE_RECEIVERS }, newPeer);
  // The relays create the schemas (migrations) and stay up during the load.
  const emptyRelay = await spawnServer(relayArgs(emptyUrl));
  const fullRelay = await spawnServer(relayArgs(fullUrl));
  try {
    const client = new pg.Client({ connectionString: fullUrl });
    await client.connect();
    const t0 = performance.now();
    const n = perReceiver();
    const now = Date.now();
    try {
      await client.query('INSERT INTO mailboxes (did, admitted) SELECT d, $2 FROM unnest($1::text[]) AS d', [
        bulkPeers.map((p) => p.did),
        n,
      ]);
      // Generated server-side: envelope k of every receiver, then k+1 (interleaved like traffic).
      await client.query(
        `INSERT INTO envelopes (mailbox_id, id, from_did, body, size, deposited_at, expires_at, unsolicited)
         SELECT m.id, x.id, NULL, x.body, octet_length(x.body), $2, $2 + 2592000000, false
         FROM generate_series(1, $1) AS k
         CROSS JOIN mailboxes m
         CROSS JOIN LATERAL (SELECT sha256(convert_to(m.did || ':' || k, 'UTF8')) AS id) h
         CROSS JOIN LATERAL (SELECT h.id,
           '{"v":1,"id":"' || encode(h.id, 'hex') || '","to_did":"' || m.did || '","encoding":"sealed","ttl_seconds":2592000,"epk":"' ||
           rpad(encode(h.id, 'base64'), 43, 'A') || '","nonce":"' || rpad('', 32, 'B') || '","ciphertext":"' ||
           rpad(encode(sha512(h.id), 'hex'), $3, 'C') || '"}' AS body) x
         ORDER BY k, m.id`,
        [n, now, SCALE_BODY_BYTES - 300],
      );
      await client.query('VACUUM ANALYZE');
      await client.query('CHECKPOINT');
    } finally {
      await client.end();
    }
    const loadSeconds = (performance.now() - t0) / 1000;
    const serves = await checkServes(fullRelay.url, bulkPeers[SCALE_RECEIVERS - 1]!, n);
    return {
      queued: n * SCALE_RECEIVERS,
      receivers: SCALE_RECEIVERS,
      bulk_load_seconds: round(loadSeconds, 1),
      ...(await compareEmptyFull(emptyRelay.url, fullRelay.url)),
      serves_bulk_mailbox: serves,
    };
  } finally {
    await emptyRelay.stop();
    await fullRelay.stop();
  }
}
