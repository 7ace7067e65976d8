/**
 * PostgreSQL restarts under load (`pg_ctl stop -m immediate`, then start): while it is down the
 * relays answer 503 (never 202 for something not committed, never a crash); once it is back they
 * recover by themselves — no relay restart — and every envelope acknowledged before, during or
 * after the outage is served exactly once. The LISTEN connection comes back too: a long-poll on
 * one process is woken by a deposit on the other.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newPeer } from '../../support/fixtures';
import { startPostgres, type PostgresCluster } from '../../support/postgres';
import { drain, longPollsWaiting, type ReceiveBody } from '../../support/relay-cluster';
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

describe('PostgreSQL restart under load', () => {
  it('503 while down, recovery without restarting the relays, nothing committed lost', async () => {
    const url = await cluster.createDatabase('restart');
    const [a, b] = await Promise.all([0, 1].map(() => startRelayProcess(['--db', url, '--no-rate-limit', '--log-level', 'warn'])));
    started.push(a!, b!);
    const alice = newPeer();
    const bob = newPeer();
    const N = 400;
    const envs = await Promise.all(Array.from({ length: N }, () => uniqueSealed(alice, bob)));

    const acknowledged = new Set<string>();
    const statuses = new Map<number, number>();
    let phase: 'before' | 'down' | 'after' = 'before';
    let okBefore = 0;
    let unavailable = 0;
    let okAfter = 0;
    let next = 0;
    // Bounded: N deposits in all, 4 at a time, each sent once (a 503 is not retried: it is the point).
    const worker = async (w: number) => {
      for (;;) {
        const i = next;
        if (i >= N) return;
        // While down, hold the load until the test has seen 503s, then let it run out after recovery.
        if (phase === 'down' && unavailable >= 20) {
          await new Promise((r) => setTimeout(r, 5));
          continue;
        }
        next++;
        const target = w % 2 ? a! : b!;
        let status: number;
        try {
          status = (await deposit(target.url, bob.did, envs[i]!)).status;
        } catch {
          status = -1;
        }
        statuses.set(status, (statuses.get(status) ?? 0) + 1);
        if (status === 202) {
          acknowledged.add(envs[i]!.id);
          if (phase === 'before') okBefore++;
          if (phase === 'after') okAfter++;
        }
        if (status === 503) unavailable++;
      }
    };
    const load = Promise.all(Array.from({ length: 4 }, (_, w) => worker(w)));

    await waitFor(() => okBefore >= 50, 20_000, '50 deposits before the outage');
    phase = 'down';
    cluster.stopImmediate();
    await waitFor(() => unavailable >= 20, 20_000, '503s while PostgreSQL is down');
    // A receive is 503 too, /health says the store cannot commit, and both relays are still up.
    expect((await signedReceive(a!.url, bob.did, bob.signer)).status).toBe(503);
    await waitFor(async () => (await fetch(`${b!.url}/health`)).status === 503, 10_000, '/health to report the database down');
    expect(a!.proc.exitCode).toBeNull();
    expect(b!.proc.exitCode).toBeNull();
    cluster.start();
    phase = 'after';
    await load;
    expect(okAfter).toBeGreaterThan(0);
    await waitFor(async () => (await fetch(`${b!.url}/health`)).status === 200, 20_000, '/health to recover');
    // Nothing but 202 and 503: no 500, no dropped connection.
    expect([...statuses.keys()].sort()).toEqual([202, 503]);

    // The listener reconnected: a long-poll on A is woken by a deposit on B.
    const dave = newPeer();
    const forDave = await uniqueSealed(alice, dave);
    await waitFor(async () => (await signedReceive(a!.url, dave.did, dave.signer)).status === 200, 20_000, 'A to answer again');
    const polling = signedReceive(a!.url, dave.did, dave.signer, { wait: 30 });
    await waitFor(async () => (await longPollsWaiting(a!.url)) === 1, 10_000, 'the long-poll to park on A');
    const t0 = Date.now();
    expect((await deposit(b!.url, dave.did, forDave)).status).toBe(202);
    const woke = (await (await polling).json()) as ReceiveBody;
    expect(woke.envelopes.map((e) => e.id)).toEqual([forDave.id]);
    expect(Date.now() - t0).toBeLessThan(15_000);

    const served = await drain([a!.url, b!.url], bob.did, bob.signer);
    expect(new Set(served).size).toBe(served.length);
    for (const id of acknowledged) expect(served).toContain(id);
    await Promise.all([a!.stop(), b!.stop()]);
  }, 180_000);
});
