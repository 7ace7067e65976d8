/**
 * The MailboxStore contract (src/relay/store.ts): every adapter (memory, SQLite file and
 * :memory:, PostgreSQL) runs this one suite. Shape and registrar: ./registrar.ts; `factory` opens a
 * fresh, empty store, and a persistent one offers `reopen` to open the same storage after close().
 */
import type { DepositLimits, MailboxStore, StoredEnvelope } from '../../src/relay/storage/store';
import { assert } from './assert';
import { storeTest, type ContractRegistrar, type StoreUnderTest, type StoreCapabilities, type StoreFactory } from './registrar';

/** Opens a fresh, empty MailboxStore. */
export type MailboxStoreFactory = StoreFactory<MailboxStore>;

const A = 'did:key:z6MkAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA';
const B = 'did:key:z6MkBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB';
const T0 = 1_700_000_000_000;
const HOUR = 3_600_000;

let counter = 0;
const hexId = (n: number): string => n.toString(16).padStart(64, '0');
const MiB = 1_048_576;
/** Limits with the given cap and the default unsolicited quota (PROTOCOL.md §5.1). */
const lim = (cap: number, unsolicitedEnvelopes = 100, unsolicitedBytes = MiB): DepositLimits => ({
  cap,
  unsolicitedEnvelopes,
  unsolicitedBytes,
});
const tokenHash = (n: number): string => n.toString(16).padStart(64, 'a');

function env(toDid: string, over: Partial<StoredEnvelope> = {}): StoredEnvelope {
  const id = over.id ?? hexId(++counter);
  const body = over.body ?? JSON.stringify({ v: 1, id, to_did: toDid, encoding: 'sealed' });
  return { id, toDid, fromDid: null, body, size: Buffer.byteLength(body), depositedAt: T0, expiresAt: T0 + HOUR, ...over };
}

export function runMailboxStoreContract(
  t: ContractRegistrar,
  name: string,
  factory: MailboxStoreFactory,
  capabilities: StoreCapabilities,
): void {
  const test: (title: string, fn: (opened: StoreUnderTest<MailboxStore>) => Promise<void>) => void = storeTest(
    t,
    `MailboxStore contract (${name})`,
    factory,
  );
  const withStore =
    (fn: (s: MailboxStore, reopen: (() => Promise<MailboxStore>) | undefined, close: () => Promise<void>) => Promise<void>) =>
    ({ store, reopen, close }: StoreUnderTest<MailboxStore>) =>
      fn(store, reopen, close);

  test(
    'deposits, receives oldest first with remaining, and acks',
    withStore(async (s) => {
      const envs = [env(A), env(A), env(A)];
      for (const [i, e] of envs.entries()) {
        assert.deepEqual(await s.deposit({ ...e, depositedAt: T0 + i }, null, lim(10)), { kind: 'stored', expiresAt: e.expiresAt });
      }
      const r = await s.receive(A, 2, T0 + 10);
      assert.deepEqual(
        r.envelopes.map((e) => e.id),
        [envs[0]!.id, envs[1]!.id],
      );
      assert.equal(r.envelopes[0]!.body, envs[0]!.body);
      assert.equal(r.remaining, 1);
      assert.equal(await s.ack(A, [envs[0]!.id, envs[1]!.id, hexId(999_999)]), 2);
      assert.equal(await s.ack(A, [envs[0]!.id]), 0); // idempotent
      const rest = await s.receive(A, 100, T0 + 10);
      assert.deepEqual(
        rest.envelopes.map((e) => e.id),
        [envs[2]!.id],
      );
      assert.equal(rest.remaining, 0);
    }),
  );

  test(
    'keeps one copy of a re-deposited ID and reports the original expiry',
    withStore(async (s) => {
      const e = env(A);
      await s.deposit(e, null, lim(10));
      assert.deepEqual(await s.deposit({ ...e, depositedAt: T0 + 5, expiresAt: T0 + 2 * HOUR }, null, lim(10)), {
        kind: 'duplicate',
        expiresAt: e.expiresAt,
      });
      assert.equal((await s.receive(A, 100, T0 + 10)).envelopes.length, 1);
    }),
  );

  test(
    'the same ID in two mailboxes is two envelopes',
    withStore(async (s) => {
      const e = env(A);
      await s.deposit(e, null, lim(10));
      assert.equal((await s.deposit({ ...e, toDid: B }, null, lim(10))).kind, 'stored');
      assert.equal((await s.receive(B, 10, T0)).envelopes.length, 1);
    }),
  );

  test(
    'refuses beyond the cap, but a duplicate at the cap is still a duplicate',
    withStore(async (s) => {
      const first = env(A);
      await s.deposit(first, null, lim(2));
      await s.deposit(env(A), null, lim(2));
      assert.deepEqual(await s.deposit(env(A), null, lim(2)), { kind: 'queue_full' });
      assert.equal((await s.deposit(first, null, lim(2))).kind, 'duplicate');
      assert.equal((await s.deposit(env(B), null, lim(2))).kind, 'stored'); // the cap is per receiver
      await s.ack(A, [first.id]);
      assert.equal((await s.deposit(env(A), null, lim(2))).kind, 'stored');
    }),
  );

  test(
    'holds the cap under concurrent deposits',
    withStore(async (s) => {
      const outcomes = await Promise.all(Array.from({ length: 50 }, () => s.deposit(env(A), null, lim(7))));
      assert.equal(outcomes.filter((o) => o.kind === 'stored').length, 7);
      assert.equal(outcomes.filter((o) => o.kind === 'queue_full').length, 43);
      assert.equal((await s.receive(A, 500, T0)).envelopes.length, 7);
    }),
  );

  test(
    'concurrent deposits of one ID store one copy',
    withStore(async (s) => {
      const e = env(A);
      const outcomes = await Promise.all(Array.from({ length: 20 }, () => s.deposit(e, null, lim(100))));
      assert.equal(outcomes.filter((o) => o.kind === 'stored').length, 1);
      assert.equal(outcomes.filter((o) => o.kind === 'duplicate').length, 19);
    }),
  );

  test(
    'never serves expired envelopes; the sweep deletes them; expired ones do not count toward the cap',
    withStore(async (s) => {
      const short = env(A, { expiresAt: T0 + 1000 });
      const long = env(A);
      await s.deposit(short, null, lim(10));
      await s.deposit(long, null, lim(10));
      assert.deepEqual(
        (await s.receive(A, 10, T0 + 1000)).envelopes.map((e) => e.id),
        [long.id],
      );
      assert.equal((await s.receive(A, 10, T0 + 1000)).remaining, 0);
      // Stats may count expired envelopes until the sweep (counters kept as data changes).
      assert.deepEqual(
        (await s.stats(T0 + 1000, 100)).mailboxes.map((m) => m.did),
        [A],
      );
      // Cap 2 with one live and one expired-unswept: a new deposit fits.
      assert.equal((await s.deposit(env(A, { depositedAt: T0 + 2000 }), null, lim(2))).kind, 'stored');
      // A store may delete a mailbox's expired envelopes to make room; the sweep gets the rest.
      assert.ok((await s.sweepExpired(T0 + 2000)) <= 1, 'await s.sweepExpired(T0 + 2000) ≤ 1');
      assert.equal(await s.sweepExpired(T0 + 2000), 0);
      assert.deepEqual((await s.stats(T0 + 2000, 100)).mailboxes, [{ did: A, queueSize: 2, oldestDepositedAt: T0 }]);
      assert.equal((await s.receive(A, 10, T0 + 2000)).envelopes.length, 2);
    }),
  );

  test(
    'an expired ID can be deposited again before the sweep',
    withStore(async (s) => {
      const e = env(A, { expiresAt: T0 + 1000 });
      await s.deposit(e, null, lim(10));
      const again = await s.deposit({ ...e, depositedAt: T0 + 5000, expiresAt: T0 + HOUR }, null, lim(10));
      assert.deepEqual(again, { kind: 'stored', expiresAt: T0 + HOUR });
      assert.equal((await s.receive(A, 10, T0 + 5000)).envelopes.length, 1);
    }),
  );

  test(
    "acks only the calling receiver's envelopes",
    withStore(async (s) => {
      const forA = env(A);
      await s.deposit(forA, null, lim(10));
      assert.equal(await s.ack(B, [forA.id]), 0);
      assert.equal((await s.receive(A, 10, T0)).envelopes.length, 1);
    }),
  );

  test(
    'reports stats: queue sizes, oldest, unique senders (plain only) and receivers',
    withStore(async (s) => {
      await s.deposit(env(A, { fromDid: B, depositedAt: T0 + 1 }), null, lim(10));
      await s.deposit(env(A, { fromDid: B, depositedAt: T0 + 2 }), null, lim(10));
      await s.deposit(env(B, { fromDid: null, depositedAt: T0 + 3 }), null, lim(10));
      const st = await s.stats(T0 + 10, 100);
      assert.deepEqual(
        [...st.mailboxes].sort((x, y) => x.did.localeCompare(y.did)),
        [
          { did: A, queueSize: 2, oldestDepositedAt: T0 + 1 },
          { did: B, queueSize: 1, oldestDepositedAt: T0 + 3 },
        ],
      );
      assert.equal(st.uniqueSenders, 1);
      assert.equal(st.uniqueReceivers, 2);
    }),
  );

  test(
    'claims a signature once; the claim lapses only after its expiry sweep',
    withStore(async (s) => {
      assert.equal(await s.claimSignature('sig-1', T0 + 1000), true);
      assert.equal(await s.claimSignature('sig-1', T0 + 1000), false);
      const both = await Promise.all([s.claimSignature('sig-2', T0 + 1000), s.claimSignature('sig-2', T0 + 1000)]);
      assert.equal(both.filter(Boolean).length, 1);
      await s.sweepExpired(T0 + 999);
      assert.equal(await s.claimSignature('sig-1', T0 + 1000), false);
      await s.sweepExpired(T0 + 1000);
      assert.equal(await s.claimSignature('sig-1', T0 + 5000), true);
    }),
  );

  test(
    'group commit: many concurrent deposits all land, in order, and survive reopening',
    withStore(async (s, reopen, close) => {
      const envs = Array.from({ length: 300 }, (_, i) => env(A, { depositedAt: T0 + i }));
      const outcomes = await Promise.all(envs.map((e) => s.deposit(e, null, lim(10_000))));
      assert.equal(
        outcomes.every((o) => o.kind === 'stored'),
        true,
      );
      assert.equal(await s.claimSignature('sig-durable', T0 + HOUR), true);
      let store = s;
      if (capabilities.persistent) {
        assert.ok(reopen, `${name} is declared persistent but its factory offers no reopen`);
        await close();
        store = await reopen();
      }
      try {
        const got = await store.receive(A, 500, T0 + 1000);
        assert.deepEqual(
          got.envelopes.map((e) => e.id),
          envs.map((e) => e.id),
        );
        assert.equal(await store.claimSignature('sig-durable', T0 + HOUR), false);
      } finally {
        if (store !== s) await store.close();
      }
    }),
  );

  test(
    'deposit tokens: with tokens registered, a deposit without a known one is unsolicited and has its own quota',
    withStore(async (s) => {
      const good = tokenHash(1);
      assert.equal(await s.setDepositTokens(A, [good, tokenHash(2), good]), 2); // deduplicated
      const limits = lim(3, 2, MiB);
      // Unsolicited: no token, or an unknown one; the quota is 2 envelopes.
      assert.equal((await s.deposit(env(A), null, limits)).kind, 'stored');
      const second = env(A);
      assert.equal((await s.deposit(second, tokenHash(99), limits)).kind, 'stored');
      assert.deepEqual(await s.deposit(env(A), null, limits), { kind: 'unsolicited_quota' });
      assert.equal((await s.deposit(second, null, limits)).kind, 'duplicate'); // duplicates count nothing
      // Admitted deposits still fit: the flood did not use the cap.
      for (let i = 0; i < 3; i++) assert.equal((await s.deposit(env(A), good, limits)).kind, 'stored');
      assert.deepEqual(await s.deposit(env(A), tokenHash(2), limits), { kind: 'queue_full' });
      assert.equal((await s.receive(A, 100, T0)).envelopes.length, 5);
      // Draining unsolicited mail makes room for more of it.
      await s.ack(A, [second.id]);
      assert.equal((await s.deposit(env(A), null, limits)).kind, 'stored');
    }),
  );

  test(
    'the unsolicited quota counts bytes too, and expired envelopes count for nothing',
    withStore(async (s) => {
      await s.setDepositTokens(A, [tokenHash(1)]);
      const big = env(A, { size: 600, expiresAt: T0 + 1000 });
      assert.equal((await s.deposit(big, null, lim(10, 100, 1000))).kind, 'stored');
      assert.deepEqual(await s.deposit(env(A, { size: 600 }), null, lim(10, 100, 1000)), { kind: 'unsolicited_quota' });
      assert.equal((await s.deposit(env(A, { size: 400 }), null, lim(10, 100, 1000))).kind, 'stored');
      // Once the first has expired (not yet swept), its bytes no longer count.
      assert.equal((await s.deposit(env(A, { size: 500, depositedAt: T0 + 2000 }), null, lim(10, 100, 1000))).kind, 'stored');
    }),
  );

  test(
    'a mailbox without tokens takes every deposit against its cap; the class is fixed at deposit',
    withStore(async (s) => {
      const before = [env(A), env(A)];
      for (const e of before) assert.equal((await s.deposit(e, null, lim(2, 0, 0))).kind, 'stored'); // quota 0 does not apply
      assert.deepEqual(await s.deposit(env(A), null, lim(2, 0, 0)), { kind: 'queue_full' });
      await s.setDepositTokens(A, [tokenHash(1)]);
      assert.equal(await s.deposit(env(A), null, lim(3, 1, MiB)).then((o) => o.kind), 'stored'); // unsolicited, quota 1
      assert.equal(await s.deposit(env(A), tokenHash(1), lim(3, 1, MiB)).then((o) => o.kind), 'stored'); // the two from before count as admitted
      assert.deepEqual(await s.deposit(env(A), tokenHash(1), lim(3, 1, MiB)), { kind: 'queue_full' });
      // Tokens are per mailbox; an empty list removes them.
      assert.equal((await s.deposit(env(B), null, lim(3, 0, 0))).kind, 'stored');
      assert.equal(await s.setDepositTokens(A, []), 0);
      assert.equal(await s.deposit(env(A), null, lim(4, 0, 0)).then((o) => o.kind), 'stored');
    }),
  );

  test(
    'holds the unsolicited quota under concurrent deposits',
    withStore(async (s) => {
      await s.setDepositTokens(A, [tokenHash(1)]);
      const outcomes = await Promise.all(Array.from({ length: 40 }, () => s.deposit(env(A), null, lim(100, 5, MiB))));
      assert.equal(outcomes.filter((o) => o.kind === 'stored').length, 5);
      assert.equal(outcomes.filter((o) => o.kind === 'unsolicited_quota').length, 35);
    }),
  );

  test(
    'stats name only the N largest queues, largest first, and count receivers and senders',
    withStore(async (s) => {
      const dids = Array.from({ length: 6 }, (_, i) => `did:key:z6Mk${String(i).repeat(44)}`);
      for (const [i, did] of dids.entries()) {
        for (let k = 0; k <= i; k++)
          await s.deposit(env(did, { fromDid: k % 2 === 0 ? A : B, depositedAt: T0 + i * 10 + k }), null, lim(100));
      }
      const st = await s.stats(T0 + 100, 3);
      assert.deepEqual(st.mailboxes, [
        { did: dids[5]!, queueSize: 6, oldestDepositedAt: T0 + 50 },
        { did: dids[4]!, queueSize: 5, oldestDepositedAt: T0 + 40 },
        { did: dids[3]!, queueSize: 4, oldestDepositedAt: T0 + 30 },
      ]);
      assert.equal(st.uniqueReceivers, 6);
      assert.equal(st.uniqueSenders, 2);
      const queued = await s.receive(dids[5]!, 100, T0 + 100);
      await s.ack(
        dids[5]!,
        queued.envelopes.map((e) => e.id),
      );
      const after = await s.stats(T0 + 100, 1);
      assert.deepEqual(
        after.mailboxes.map((m) => m.did),
        [dids[4]],
      );
      assert.equal(after.uniqueReceivers, 5);
    }),
  );

  test(
    'reports itself healthy while it can commit',
    withStore(async (s) => {
      assert.equal((await s.health()).ok, true);
      await s.deposit(env(A), null, lim(10));
      assert.equal((await s.health()).ok, true);
    }),
  );

  test('rejects operations after close', async ({ store, close }) => {
    await close();
    await assert.rejects(store.deposit(env(A), null, lim(10)));
  });
}
