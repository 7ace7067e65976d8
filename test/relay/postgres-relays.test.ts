/**
 * Several relay processes on one PostgreSQL database behave as one relay (PROTOCOL.md §5–§6):
 * a long-poll on one process is answered by a deposit on another; the per-receiver cap, the
 * replay cache, deposit tokens and the unsolicited quota hold across processes; kill -9 of one process under deposit load loses no
 * acknowledged envelope and the others serve each exactly once.
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newPeer } from '../../support/fixtures';
import { startPostgres, type PostgresCluster } from '../../support/postgres';
import { drain, getWithHost, longPollsWaiting, signedPutTokens, signReceive, type ReceiveBody } from '../../support/relay-cluster';
import { deposit, signedReceive, startRelayProcess, waitFor, type RelayProcess } from '../../support/relay-process';
import { uniqueSealed } from './fixtures';

let cluster: PostgresCluster;
const started: RelayProcess[] = [];
beforeAll(async () => {
  cluster = await startPostgres();
}, 120_000);
afterAll(async () => {
  await Promise.all(started.map((r) => r.kill9()));
  cluster?.destroy();
});

const metricsOf = async (url: string): Promise<string> => (await fetch(`${url}/metrics`)).text();
const metricValue = (text: string, name: string): number | undefined => {
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  return line === undefined ? undefined : Number(line.slice(name.length + 1));
};

let dbCount = 0;
async function relays(n: number, extra: readonly string[] = []): Promise<RelayProcess[]> {
  const created = await cluster.createDatabase(`relays_${++dbCount}`);
  // Both URL schemes select PostgreSQL.
  const url = dbCount % 2 === 0 ? created.replace(/^postgres:/, 'postgresql:') : created;
  // Started one after the other is not needed: migrations take turns under their advisory lock.
  const procs = await Promise.all(
    Array.from({ length: n }, () => startRelayProcess(['--db', url, '--no-rate-limit', '--log-level', 'warn', ...extra])),
  );
  started.push(...procs);
  return procs;
}

describe('relay processes on one PostgreSQL database', () => {
  it('a long-poll waiting on one process is answered by a deposit on another', async () => {
    const [a, b] = await relays(2);
    const alice = newPeer();
    const bob = newPeer();
    const env = await uniqueSealed(alice, bob);
    const t0 = Date.now();
    const polling = signedReceive(a!.url, bob.did, bob.signer, { wait: 30 });
    await waitFor(async () => (await longPollsWaiting(a!.url)) === 1, 10_000, 'the long-poll to park on A');
    expect((await deposit(b!.url, bob.did, env)).status).toBe(202);
    const res = await polling;
    const body = (await res.json()) as ReceiveBody;
    expect(body.envelopes.map((e) => e.id)).toEqual([env.id]);
    // Answered by the wake, not by the 30 s deadline.
    expect(Date.now() - t0).toBeLessThan(15_000);
    await Promise.all([a!.stop(), b!.stop()]);
  }, 60_000);

  it('a listening connection that is cut comes back, and cross-process wakes work again', async () => {
    const dbName = `relays_${dbCount + 1}`;
    const [a, b] = await relays(2);
    const admin = new pg.Client({ connectionString: cluster.url.replace(/\/relay$/, `/${dbName}`) });
    await admin.connect();
    try {
      const listeners = async () =>
        (
          await admin.query<{ n: number }>(
            "SELECT count(*)::integer AS n FROM pg_stat_activity WHERE application_name = 'spl-relay listener' AND datname = $1",
            [dbName],
          )
        ).rows[0]!.n;
      await waitFor(async () => (await listeners()) === 2, 10_000, 'two listeners');
      const cut = await admin.query(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'spl-relay listener' AND datname = $1",
        [dbName],
      );
      expect(cut.rowCount).toBe(2);
      await waitFor(async () => (await listeners()) === 2, 20_000, 'the listeners to reconnect');
    } finally {
      await admin.end();
    }
    const alice = newPeer();
    const bob = newPeer();
    const env = await uniqueSealed(alice, bob);
    const t0 = Date.now();
    const polling = signedReceive(a!.url, bob.did, bob.signer, { wait: 30 });
    await waitFor(async () => (await longPollsWaiting(a!.url)) === 1, 10_000, 'the long-poll to park on A');
    expect((await deposit(b!.url, bob.did, env)).status).toBe(202);
    expect(((await (await polling).json()) as ReceiveBody).envelopes.map((e) => e.id)).toEqual([env.id]);
    expect(Date.now() - t0).toBeLessThan(15_000);
    await Promise.all([a!.stop(), b!.stop()]);
  }, 60_000);

  it('the per-receiver cap and the replay cache hold across three processes', async () => {
    // One public origin for all three, as behind a load balancer (PROTOCOL.md §5 origins).
    const host = 'relay.test';
    const procs = await relays(3, ['--cap', '5', '--origin', host]);
    const alice = newPeer();
    const bob = newPeer();
    const envs = await Promise.all(Array.from({ length: 24 }, () => uniqueSealed(alice, bob)));
    const statuses = await Promise.all(envs.map(async (e, i) => (await deposit(procs[i % 3]!.url, bob.did, e)).status));
    expect(statuses.filter((s) => s === 202)).toHaveLength(5);
    expect(statuses.filter((s) => s === 507)).toHaveLength(19);

    // One signed request, replayed at the other processes: refused there, while a fresh signature
    // for the same origin is accepted by each (so the refusal is the shared replay cache).
    const signed = await signReceive(host, bob.did, bob.signer);
    expect(await getWithHost(procs[0]!.url, signed.pathAndQuery, host, signed.authorization)).toBe(200);
    for (const p of procs.slice(1)) {
      expect(await getWithHost(p.url, signed.pathAndQuery, host, signed.authorization)).toBe(401);
      const fresh = await signReceive(host, bob.did, bob.signer);
      expect(await getWithHost(p.url, fresh.pathAndQuery, host, fresh.authorization)).toBe(200);
    }
    await Promise.all(procs.map((p) => p.stop()));
  }, 60_000);

  it('deposit tokens registered on one process admit deposits on the others; the unsolicited quota is shared', async () => {
    const procs = await relays(3, ['--cap', '4', '--unsolicited-envelopes', '3']);
    const alice = newPeer();
    const bob = newPeer();
    const token = randomBytes(16).toString('base64url');
    const put = await signedPutTokens(procs[0]!.url, bob.did, bob.signer, [token]);
    expect(put.status).toBe(200);
    expect(await put.json()).toEqual({ count: 1 });
    // Strangers (no token) over all three processes: 3 queued in all, the rest refused.
    const strangers = await Promise.all(Array.from({ length: 15 }, () => uniqueSealed(alice, bob)));
    const unsolicited = await Promise.all(strangers.map(async (e, i) => (await deposit(procs[i % 3]!.url, bob.did, e)).status));
    expect(unsolicited.filter((s) => s === 202)).toHaveLength(3);
    expect(unsolicited.filter((s) => s === 429)).toHaveLength(12);
    // Peers with the token: the cap (4), not the quota, across processes.
    const peers = await Promise.all(Array.from({ length: 10 }, () => uniqueSealed(alice, bob)));
    const admitted = await Promise.all(
      peers.map(async (e, i) => (await deposit(procs[(i + 1) % 3]!.url, bob.did, e, { 'x-syncropel-deposit-token': token })).status),
    );
    expect(admitted.filter((s) => s === 202)).toHaveLength(4);
    expect(admitted.filter((s) => s === 507)).toHaveLength(6);
    await Promise.all(procs.map((p) => p.stop()));
  }, 60_000);

  it('each process reports its own counters and the shared queue gauges', async () => {
    const [a, b] = await relays(2, ['--metrics-did-labels', 'off']);
    const alice = newPeer();
    const receivers = [newPeer(), newPeer(), newPeer()];
    for (const r of receivers) expect((await deposit(a!.url, r.did, await uniqueSealed(alice, r))).status).toBe(202);
    const [onA, onB] = await Promise.all([metricsOf(a!.url), metricsOf(b!.url)]);
    expect(metricValue(onA, 'relay_deposits_total')).toBe(3);
    expect(metricValue(onB, 'relay_deposits_total')).toBe(0); // B accepted none itself
    expect(metricValue(onA, 'relay_unique_receivers')).toBe(3);
    expect(metricValue(onB, 'relay_unique_receivers')).toBe(3); // the queue is shared
    await Promise.all([a!.stop(), b!.stop()]);
  }, 60_000);

  it('kill -9 of one process under deposit load: every 202 is served exactly once by the others', async () => {
    const [a, b, c] = await relays(3);
    const alice = newPeer();
    const bob = newPeer();
    const N = 240;
    const envs = await Promise.all(Array.from({ length: N }, () => uniqueSealed(alice, bob)));
    const acknowledged = new Set<string>();
    let acceptedByA = 0;
    let killed: Promise<void> | undefined;
    // 8 depositors round-robin over the three processes; A dies once it has accepted 30.
    let next = 0;
    const worker = async (w: number) => {
      for (;;) {
        const i = next++;
        if (i >= N) return;
        const target = [a!, b!, c!][(i + w) % 3]!;
        try {
          const res = await deposit(target.url, bob.did, envs[i]!);
          if (res.status === 202) {
            acknowledged.add(envs[i]!.id);
            if (target === a && ++acceptedByA === 30) killed = a.kill9();
          }
        } catch {
          // A's connection died with it: this deposit was never acknowledged.
        }
      }
    };
    await Promise.all(Array.from({ length: 8 }, (_, w) => worker(w)));
    await killed;
    expect(killed).toBeDefined();
    expect(acknowledged.size).toBeGreaterThan(N / 2);

    const served = await drain([b!.url, c!.url], bob.did, bob.signer);
    expect(new Set(served).size).toBe(served.length); // none twice
    for (const id of acknowledged) expect(served).toContain(id);
    await Promise.all([b!.stop(), c!.stop()]);
  }, 120_000);
});
