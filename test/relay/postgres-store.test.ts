/**
 * The MailboxStore contract on PostgreSQL (one throwaway cluster for this file, one database per
 * store), plus what only PostgreSQL adds: migrations run once under concurrency, stores on one
 * database see each other's writes, deposit notifications reach every listener.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import { SWEEP_LOCK_KEY } from '../../src/relay/storage/pg-migrations';
import { PgMailboxStore } from '../../src/relay/storage/pg-store';
import { startPostgres, type PostgresCluster } from '../../support/postgres';
import { waitFor } from '../../support/relay-process';
import { runMailboxStoreContract } from '../contracts/mailbox-store';
import { vitestRegistrar } from '../contracts/vitest-registrar';

let cluster: PostgresCluster;
beforeAll(async () => {
  cluster = await startPostgres();
}, 120_000);
afterAll(() => cluster?.destroy());

let n = 0;
const freshDatabase = () => cluster.createDatabase(`contract_${++n}`);

runMailboxStoreContract(
  vitestRegistrar,
  'postgres',
  async () => {
    const url = await freshDatabase();
    const open = () => PgMailboxStore.open(url, { statsMaxAgeMs: 0 });
    return { store: await open(), reopen: open };
  },
  { persistent: true },
);

const T0 = 1_700_000_000_000;
const lim = (cap: number) => ({ cap, unsolicitedEnvelopes: 100, unsolicitedBytes: 1_048_576 });
const hexId = (i: number): string => i.toString(16).padStart(64, '0');
const envFor = (to: string, i: number) => {
  const body = JSON.stringify({ v: 1, id: hexId(i), to_did: to });
  return { id: hexId(i), toDid: to, fromDid: null, body, size: body.length, depositedAt: T0, expiresAt: T0 + 3_600_000 };
};

async function withClient<T>(url: string, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

describe('PgMailboxStore specifics', () => {
  it('migrates once when several stores open one database at once; schema_version records it', async () => {
    const url = await freshDatabase();
    const stores = await Promise.all(Array.from({ length: 4 }, () => PgMailboxStore.open(url, { statsMaxAgeMs: 0 })));
    try {
      const client = new pg.Client({ connectionString: url });
      await client.connect();
      try {
        const { rows } = await client.query<{ version: number }>('SELECT version FROM schema_version ORDER BY version');
        expect(rows.map((r) => r.version)).toEqual([1]);
      } finally {
        await client.end();
      }
    } finally {
      await Promise.all(stores.map((s) => s.close()));
    }
  });

  it('refuses a database whose schema is newer than it knows', async () => {
    const url = await freshDatabase();
    await (await PgMailboxStore.open(url, { statsMaxAgeMs: 0 })).close();
    await withClient(url, (c) => c.query("INSERT INTO schema_version (version, description) VALUES (99, 'from the future')"));
    await expect(PgMailboxStore.open(url)).rejects.toThrow(/schema is version 99/);
  });

  it('sweeps on one process at a time: while another holds the sweep lock, a sweep does nothing', async () => {
    const url = await freshDatabase();
    const store = await PgMailboxStore.open(url, { statsMaxAgeMs: 0 });
    const holder = new pg.Client({ connectionString: url });
    await holder.connect();
    try {
      await store.deposit({ ...envFor('did:key:z6MkSweep', 1), expiresAt: T0 + 1000 }, null, lim(10));
      await holder.query('SELECT pg_advisory_lock($1)', [SWEEP_LOCK_KEY]);
      expect(await store.sweepExpired(T0 + 2000)).toBe(0);
      expect((await store.stats(T0 + 2000, 10)).uniqueReceivers).toBe(1); // still there, unswept
      await holder.query('SELECT pg_advisory_unlock($1)', [SWEEP_LOCK_KEY]);
      expect(await store.sweepExpired(T0 + 2000)).toBe(1);
      expect((await store.stats(T0 + 2000, 10)).uniqueReceivers).toBe(0);
    } finally {
      await holder.end();
      await store.close();
    }
  });

  it('over --max-db-bytes a new deposit is storage_full, a duplicate still a duplicate; receive and ack go on', async () => {
    const url = await freshDatabase();
    const roomy = await PgMailboxStore.open(url, { statsMaxAgeMs: 0 });
    const full = await PgMailboxStore.open(url, { statsMaxAgeMs: 0, maxDbBytes: 1_000_000 }); // an empty database is ~7 MB
    try {
      const did = 'did:key:z6MkFull';
      const queued = envFor(did, 1);
      expect((await roomy.deposit(queued, null, lim(10))).kind).toBe('stored');
      expect(await full.deposit(envFor(did, 2), null, lim(10))).toEqual({ kind: 'storage_full' });
      expect((await full.deposit(queued, null, lim(10))).kind).toBe('duplicate');
      expect((await full.receive(did, 10, T0)).envelopes.map((e) => e.id)).toEqual([queued.id]);
      expect(await full.ack(did, [queued.id])).toBe(1);
    } finally {
      await Promise.all([roomy.close(), full.close()]);
    }
  });

  it('two stores on one database share the cap, the queue and the replay cache', async () => {
    const url = await freshDatabase();
    const [a, b] = await Promise.all([PgMailboxStore.open(url, { statsMaxAgeMs: 0 }), PgMailboxStore.open(url, { statsMaxAgeMs: 0 })]);
    try {
      const did = 'did:key:z6MkShared';
      const outcomes = await Promise.all(Array.from({ length: 40 }, (_, i) => (i % 2 ? a : b).deposit(envFor(did, i), null, lim(9))));
      expect(outcomes.filter((o) => o.kind === 'stored')).toHaveLength(9);
      expect((await b.receive(did, 100, T0)).envelopes).toHaveLength(9);
      const claims = await Promise.all([a.claimSignature('s', T0 + 1000), b.claimSignature('s', T0 + 1000)]);
      expect(claims.filter(Boolean)).toHaveLength(1);
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
  });

  it('a deposit through one store notifies the listener of another, after commit', async () => {
    const url = await freshDatabase();
    const [a, b] = await Promise.all([PgMailboxStore.open(url), PgMailboxStore.open(url)]);
    try {
      const heard: string[] = [];
      let resyncs = 0;
      await b.listen(
        (did) => heard.push(did),
        () => resyncs++,
      );
      expect(resyncs).toBe(1);
      await a.deposit(envFor('did:key:z6MkHeard', 1), null, lim(10));
      await waitFor(() => heard.includes('did:key:z6MkHeard'), 5_000, 'the notification');
      // a duplicate writes nothing and notifies nobody
      await a.deposit(envFor('did:key:z6MkHeard', 1), null, lim(10));
      await a.deposit(envFor('did:key:z6MkOther', 2), null, lim(10));
      await waitFor(() => heard.includes('did:key:z6MkOther'), 5_000, 'the second notification');
      expect(heard.filter((d) => d === 'did:key:z6MkHeard')).toHaveLength(1);
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
  });
});
