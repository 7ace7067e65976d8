/**
 * The MailboxStore contract: every adapter (memory, SQLite, later PostgreSQL) runs this suite.
 * `factory` opens a fresh, empty store; `reopen` (when the adapter persists) opens the same
 * storage again after close().
 */
import { describe, expect, it } from 'vitest';
import type { DepositLimits, MailboxStore, StoredEnvelope } from '../../src/relay/storage/store';

export interface StoreFactory {
  open(): Promise<{ store: MailboxStore; reopen?: () => Promise<MailboxStore> }>;
}

const A = 'did:key:z6MkAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA';
const B = 'did:key:z6MkBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB';
const T0 = 1_700_000_000_000;
const HOUR = 3_600_000;

let counter = 0;
const hexId = (n: number): string => n.toString(16).padStart(64, '0');
const MiB = 1_048_576;
/** Limits with the given cap and the default unsolicited quota (PROTOCOL.md §5.1). */
const lim = (cap: number, unsolicitedEnvelopes = 100, unsolicitedBytes = MiB): DepositLimits => ({ cap, unsolicitedEnvelopes, unsolicitedBytes });
const tokenHash = (n: number): string => n.toString(16).padStart(64, 'a');

function env(toDid: string, over: Partial<StoredEnvelope> = {}): StoredEnvelope {
  const id = over.id ?? hexId(++counter);
  const body = over.body ?? JSON.stringify({ v: 1, id, to_did: toDid, encoding: 'sealed' });
  return { id, toDid, fromDid: null, body, size: Buffer.byteLength(body), depositedAt: T0, expiresAt: T0 + HOUR, ...over };
}

export function mailboxStoreContract(name: string, factory: StoreFactory): void {
  describe(`MailboxStore contract: ${name}`, () => {
    const withStore = (fn: (s: MailboxStore, reopen?: () => Promise<MailboxStore>) => Promise<void>) => async () => {
      const { store, reopen } = await factory.open();
      try {
        await fn(store, reopen);
      } finally {
        await store.close().catch(() => undefined);
      }
    };

    it('deposits, receives oldest first with remaining, and acks', withStore(async (s) => {
      const envs = [env(A), env(A), env(A)];
      for (const [i, e] of envs.entries()) {
        expect(await s.deposit({ ...e, depositedAt: T0 + i }, null, lim(10))).toEqual({ kind: 'stored', expiresAt: e.expiresAt });
      }
      const r = await s.receive(A, 2, T0 + 10);
      expect(r.envelopes.map((e) => e.id)).toEqual([envs[0]!.id, envs[1]!.id]);
      expect(r.envelopes[0]!.body).toBe(envs[0]!.body);
      expect(r.remaining).toBe(1);
      expect(await s.ack(A, [envs[0]!.id, envs[1]!.id, hexId(999_999)])).toBe(2);
      expect(await s.ack(A, [envs[0]!.id])).toBe(0); // idempotent
      const rest = await s.receive(A, 100, T0 + 10);
      expect(rest.envelopes.map((e) => e.id)).toEqual([envs[2]!.id]);
      expect(rest.remaining).toBe(0);
    }));

    it('keeps one copy of a re-deposited ID and reports the original expiry', withStore(async (s) => {
      const e = env(A);
      await s.deposit(e, null, lim(10));
      expect(await s.deposit({ ...e, depositedAt: T0 + 5, expiresAt: T0 + 2 * HOUR }, null, lim(10))).toEqual({ kind: 'duplicate', expiresAt: e.expiresAt });
      expect((await s.receive(A, 100, T0 + 10)).envelopes).toHaveLength(1);
    }));

    it('the same ID in two mailboxes is two envelopes', withStore(async (s) => {
      const e = env(A);
      await s.deposit(e, null, lim(10));
      expect((await s.deposit({ ...e, toDid: B }, null, lim(10))).kind).toBe('stored');
      expect((await s.receive(B, 10, T0)).envelopes).toHaveLength(1);
    }));

    it('refuses beyond the cap, but a duplicate at the cap is still a duplicate', withStore(async (s) => {
      const first = env(A);
      await s.deposit(first, null, lim(2));
      await s.deposit(env(A), null, lim(2));
      expect(await s.deposit(env(A), null, lim(2))).toEqual({ kind: 'queue_full' });
      expect((await s.deposit(first, null, lim(2))).kind).toBe('duplicate');
      expect((await s.deposit(env(B), null, lim(2))).kind).toBe('stored'); // the cap is per receiver
      await s.ack(A, [first.id]);
      expect((await s.deposit(env(A), null, lim(2))).kind).toBe('stored');
    }));

    it('holds the cap under concurrent deposits', withStore(async (s) => {
      const outcomes = await Promise.all(Array.from({ length: 50 }, () => s.deposit(env(A), null, lim(7))));
      expect(outcomes.filter((o) => o.kind === 'stored')).toHaveLength(7);
      expect(outcomes.filter((o) => o.kind === 'queue_full')).toHaveLength(43);
      expect((await s.receive(A, 500, T0)).envelopes).toHaveLength(7);
    }));

    it('concurrent deposits of one ID store one copy', withStore(async (s) => {
      const e = env(A);
      const outcomes = await Promise.all(Array.from({ length: 20 }, () => s.deposit(e, null, lim(100))));
      expect(outcomes.filter((o) => o.kind === 'stored')).toHaveLength(1);
      expect(outcomes.filter((o) => o.kind === 'duplicate')).toHaveLength(19);
    }));

    it('never serves expired envelopes; the sweep deletes them; expired ones do not count toward the cap', withStore(async (s) => {
      const short = env(A, { expiresAt: T0 + 1000 });
      const long = env(A);
      await s.deposit(short, null, lim(10));
      await s.deposit(long, null, lim(10));
      expect((await s.receive(A, 10, T0 + 1000)).envelopes.map((e) => e.id)).toEqual([long.id]);
      expect((await s.receive(A, 10, T0 + 1000)).remaining).toBe(0);
      // Stats may count expired envelopes until the sweep (counters kept as data changes).
      expect((await s.stats(T0 + 1000, 100)).mailboxes.map((m) => m.did)).toEqual([A]);
      // Cap 2 with one live and one expired-unswept: a new deposit fits.
      expect((await s.deposit(env(A, { depositedAt: T0 + 2000 }), null, lim(2))).kind).toBe('stored');
      // A store may delete a mailbox's expired envelopes to make room; the sweep gets the rest.
      expect(await s.sweepExpired(T0 + 2000)).toBeLessThanOrEqual(1);
      expect(await s.sweepExpired(T0 + 2000)).toBe(0);
      expect((await s.stats(T0 + 2000, 100)).mailboxes).toEqual([{ did: A, queueSize: 2, oldestDepositedAt: T0 }]);
      expect((await s.receive(A, 10, T0 + 2000)).envelopes).toHaveLength(2);
    }));

    it('an expired ID can be deposited again before the sweep', withStore(async (s) => {
      const e = env(A, { expiresAt: T0 + 1000 });
      await s.deposit(e, null, lim(10));
      const again = await s.deposit({ ...e, depositedAt: T0 + 5000, expiresAt: T0 + HOUR }, null, lim(10));
      expect(again).toEqual({ kind: 'stored', expiresAt: T0 + HOUR });
      expect((await s.receive(A, 10, T0 + 5000)).envelopes).toHaveLength(1);
    }));

    it('acks only the calling receiver\'s envelopes', withStore(async (s) => {
      const forA = env(A);
      await s.deposit(forA, null, lim(10));
      expect(await s.ack(B, [forA.id])).toBe(0);
      expect((await s.receive(A, 10, T0)).envelopes).toHaveLength(1);
    }));

    it('reports stats: queue sizes, oldest, unique senders (plain only) and receivers', withStore(async (s) => {
      await s.deposit(env(A, { fromDid: B, depositedAt: T0 + 1 }), null, lim(10));
      await s.deposit(env(A, { fromDid: B, depositedAt: T0 + 2 }), null, lim(10));
      await s.deposit(env(B, { fromDid: null, depositedAt: T0 + 3 }), null, lim(10));
      const st = await s.stats(T0 + 10, 100);
      expect([...st.mailboxes].sort((x, y) => x.did.localeCompare(y.did))).toEqual([
        { did: A, queueSize: 2, oldestDepositedAt: T0 + 1 },
        { did: B, queueSize: 1, oldestDepositedAt: T0 + 3 },
      ]);
      expect(st.uniqueSenders).toBe(1);
      expect(st.uniqueReceivers).toBe(2);
    }));

    it('claims a signature once; the claim lapses only after its expiry sweep', withStore(async (s) => {
      expect(await s.claimSignature('sig-1', T0 + 1000)).toBe(true);
      expect(await s.claimSignature('sig-1', T0 + 1000)).toBe(false);
      const both = await Promise.all([s.claimSignature('sig-2', T0 + 1000), s.claimSignature('sig-2', T0 + 1000)]);
      expect(both.filter(Boolean)).toHaveLength(1);
      await s.sweepExpired(T0 + 999);
      expect(await s.claimSignature('sig-1', T0 + 1000)).toBe(false);
      await s.sweepExpired(T0 + 1000);
      expect(await s.claimSignature('sig-1', T0 + 5000)).toBe(true);
    }));

    it('group commit: many concurrent deposits all land, in order, and survive reopening', withStore(async (s, reopen) => {
      const envs = Array.from({ length: 300 }, (_, i) => env(A, { depositedAt: T0 + i }));
      const outcomes = await Promise.all(envs.map((e) => s.deposit(e, null, lim(10_000))));
      expect(outcomes.every((o) => o.kind === 'stored')).toBe(true);
      expect(await s.claimSignature('sig-durable', T0 + HOUR)).toBe(true);
      let store = s;
      if (reopen) {
        await s.close();
        store = await reopen();
      }
      try {
        const got = await store.receive(A, 500, T0 + 1000);
        expect(got.envelopes.map((e) => e.id)).toEqual(envs.map((e) => e.id));
        expect(await store.claimSignature('sig-durable', T0 + HOUR)).toBe(false);
      } finally {
        if (store !== s) await store.close();
      }
    }));

    it('deposit tokens: with tokens registered, a deposit without a known one is unsolicited and has its own quota', withStore(async (s) => {
      const good = tokenHash(1);
      expect(await s.setDepositTokens(A, [good, tokenHash(2), good])).toBe(2); // deduplicated
      const limits = lim(3, 2, MiB);
      // Unsolicited: no token, or an unknown one; the quota is 2 envelopes.
      expect((await s.deposit(env(A), null, limits)).kind).toBe('stored');
      const second = env(A);
      expect((await s.deposit(second, tokenHash(99), limits)).kind).toBe('stored');
      expect(await s.deposit(env(A), null, limits)).toEqual({ kind: 'unsolicited_quota' });
      expect((await s.deposit(second, null, limits)).kind).toBe('duplicate'); // duplicates count nothing
      // Admitted deposits still fit: the flood did not use the cap.
      for (let i = 0; i < 3; i++) expect((await s.deposit(env(A), good, limits)).kind).toBe('stored');
      expect(await s.deposit(env(A), tokenHash(2), limits)).toEqual({ kind: 'queue_full' });
      expect((await s.receive(A, 100, T0)).envelopes).toHaveLength(5);
      // Draining unsolicited mail makes room for more of it.
      await s.ack(A, [second.id]);
      expect((await s.deposit(env(A), null, limits)).kind).toBe('stored');
    }));

    it('the unsolicited quota counts bytes too, and expired envelopes count for nothing', withStore(async (s) => {
      await s.setDepositTokens(A, [tokenHash(1)]);
      const big = env(A, { size: 600, expiresAt: T0 + 1000 });
      expect((await s.deposit(big, null, lim(10, 100, 1000))).kind).toBe('stored');
      expect(await s.deposit(env(A, { size: 600 }), null, lim(10, 100, 1000))).toEqual({ kind: 'unsolicited_quota' });
      expect((await s.deposit(env(A, { size: 400 }), null, lim(10, 100, 1000))).kind).toBe('stored');
      // Once the first has expired (not yet swept), its bytes no longer count.
      expect((await s.deposit(env(A, { size: 500, depositedAt: T0 + 2000 }), null, lim(10, 100, 1000))).kind).toBe('stored');
    }));

    it('a mailbox without tokens takes every deposit against its cap; the class is fixed at deposit', withStore(async (s) => {
      const before = [env(A), env(A)];
      for (const e of before) expect((await s.deposit(e, null, lim(2, 0, 0))).kind).toBe('stored'); // quota 0 does not apply
      expect(await s.deposit(env(A), null, lim(2, 0, 0))).toEqual({ kind: 'queue_full' });
      await s.setDepositTokens(A, [tokenHash(1)]);
      expect(await s.deposit(env(A), null, lim(3, 1, MiB)).then((o) => o.kind)).toBe('stored'); // unsolicited, quota 1
      expect(await s.deposit(env(A), tokenHash(1), lim(3, 1, MiB)).then((o) => o.kind)).toBe('stored'); // the two from before count as admitted
      expect(await s.deposit(env(A), tokenHash(1), lim(3, 1, MiB))).toEqual({ kind: 'queue_full' });
      // Tokens are per mailbox; an empty list removes them.
      expect((await s.deposit(env(B), null, lim(3, 0, 0))).kind).toBe('stored');
      expect(await s.setDepositTokens(A, [])).toBe(0);
      expect(await s.deposit(env(A), null, lim(4, 0, 0)).then((o) => o.kind)).toBe('stored');
    }));

    it('holds the unsolicited quota under concurrent deposits', withStore(async (s) => {
      await s.setDepositTokens(A, [tokenHash(1)]);
      const outcomes = await Promise.all(Array.from({ length: 40 }, () => s.deposit(env(A), null, lim(100, 5, MiB))));
      expect(outcomes.filter((o) => o.kind === 'stored')).toHaveLength(5);
      expect(outcomes.filter((o) => o.kind === 'unsolicited_quota')).toHaveLength(35);
    }));

    it('stats name only the N largest queues, largest first, and count receivers and senders', withStore(async (s) => {
      const dids = Array.from({ length: 6 }, (_, i) => `did:key:z6Mk${String(i).repeat(44)}`);
      for (const [i, did] of dids.entries()) {
        for (let k = 0; k <= i; k++) await s.deposit(env(did, { fromDid: k % 2 === 0 ? A : B, depositedAt: T0 + i * 10 + k }), null, lim(100));
      }
      const st = await s.stats(T0 + 100, 3);
      expect(st.mailboxes).toEqual([
        { did: dids[5], queueSize: 6, oldestDepositedAt: T0 + 50 },
        { did: dids[4], queueSize: 5, oldestDepositedAt: T0 + 40 },
        { did: dids[3], queueSize: 4, oldestDepositedAt: T0 + 30 },
      ]);
      expect(st.uniqueReceivers).toBe(6);
      expect(st.uniqueSenders).toBe(2);
      const queued = await s.receive(dids[5]!, 100, T0 + 100);
      await s.ack(dids[5]!, queued.envelopes.map((e) => e.id));
      const after = await s.stats(T0 + 100, 1);
      expect(after.mailboxes.map((m) => m.did)).toEqual([dids[4]]);
      expect(after.uniqueReceivers).toBe(5);
    }));

    it('reports itself healthy while it can commit', withStore(async (s) => {
      expect((await s.health()).ok).toBe(true);
      await s.deposit(env(A), null, lim(10));
      expect((await s.health()).ok).toBe(true);
    }));

    it('rejects operations after close', async () => {
      const { store } = await factory.open();
      await store.close();
      await expect(store.deposit(env(A), null, lim(10))).rejects.toThrow();
    });
  });
}
