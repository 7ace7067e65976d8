/**
 * The MailboxStore contract: every adapter (memory, SQLite, later PostgreSQL) runs this suite.
 * `factory` opens a fresh, empty store; `reopen` (when the adapter persists) opens the same
 * storage again after close().
 */
import { describe, expect, it } from 'vitest';
import type { MailboxStore, StoredEnvelope } from '../../src/relay/store';

export interface StoreFactory {
  open(): Promise<{ store: MailboxStore; reopen?: () => Promise<MailboxStore> }>;
}

const A = 'did:key:z6MkAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA';
const B = 'did:key:z6MkBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB';
const T0 = 1_700_000_000_000;
const HOUR = 3_600_000;

let counter = 0;
const hexId = (n: number): string => n.toString(16).padStart(64, '0');

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
        expect(await s.deposit({ ...e, depositedAt: T0 + i }, 10)).toEqual({ kind: 'stored', expiresAt: e.expiresAt });
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
      await s.deposit(e, 10);
      expect(await s.deposit({ ...e, depositedAt: T0 + 5, expiresAt: T0 + 2 * HOUR }, 10)).toEqual({ kind: 'duplicate', expiresAt: e.expiresAt });
      expect((await s.receive(A, 100, T0 + 10)).envelopes).toHaveLength(1);
    }));

    it('the same ID in two mailboxes is two envelopes', withStore(async (s) => {
      const e = env(A);
      await s.deposit(e, 10);
      expect((await s.deposit({ ...e, toDid: B }, 10)).kind).toBe('stored');
      expect((await s.receive(B, 10, T0)).envelopes).toHaveLength(1);
    }));

    it('refuses beyond the cap, but a duplicate at the cap is still a duplicate', withStore(async (s) => {
      const first = env(A);
      await s.deposit(first, 2);
      await s.deposit(env(A), 2);
      expect(await s.deposit(env(A), 2)).toEqual({ kind: 'queue_full' });
      expect((await s.deposit(first, 2)).kind).toBe('duplicate');
      expect((await s.deposit(env(B), 2)).kind).toBe('stored'); // the cap is per receiver
      await s.ack(A, [first.id]);
      expect((await s.deposit(env(A), 2)).kind).toBe('stored');
    }));

    it('holds the cap under concurrent deposits', withStore(async (s) => {
      const outcomes = await Promise.all(Array.from({ length: 50 }, () => s.deposit(env(A), 7)));
      expect(outcomes.filter((o) => o.kind === 'stored')).toHaveLength(7);
      expect(outcomes.filter((o) => o.kind === 'queue_full')).toHaveLength(43);
      expect((await s.receive(A, 500, T0)).envelopes).toHaveLength(7);
    }));

    it('concurrent deposits of one ID store one copy', withStore(async (s) => {
      const e = env(A);
      const outcomes = await Promise.all(Array.from({ length: 20 }, () => s.deposit(e, 100)));
      expect(outcomes.filter((o) => o.kind === 'stored')).toHaveLength(1);
      expect(outcomes.filter((o) => o.kind === 'duplicate')).toHaveLength(19);
    }));

    it('never serves expired envelopes; the sweep deletes them; expired ones do not count toward the cap', withStore(async (s) => {
      const short = env(A, { expiresAt: T0 + 1000 });
      const long = env(A);
      await s.deposit(short, 10);
      await s.deposit(long, 10);
      expect((await s.receive(A, 10, T0 + 1000)).envelopes.map((e) => e.id)).toEqual([long.id]);
      expect((await s.receive(A, 10, T0 + 1000)).remaining).toBe(0);
      expect((await s.stats(T0 + 1000)).mailboxes).toEqual([{ did: A, queueSize: 1, oldestDepositedAt: T0 }]);
      // Cap 2 with one live and one expired-unswept: a new deposit fits.
      expect((await s.deposit(env(A, { depositedAt: T0 + 2000 }), 2)).kind).toBe('stored');
      expect(await s.sweepExpired(T0 + 2000)).toBe(1);
      expect(await s.sweepExpired(T0 + 2000)).toBe(0);
      expect((await s.receive(A, 10, T0 + 2000)).envelopes).toHaveLength(2);
    }));

    it('an expired ID can be deposited again before the sweep', withStore(async (s) => {
      const e = env(A, { expiresAt: T0 + 1000 });
      await s.deposit(e, 10);
      const again = await s.deposit({ ...e, depositedAt: T0 + 5000, expiresAt: T0 + HOUR }, 10);
      expect(again).toEqual({ kind: 'stored', expiresAt: T0 + HOUR });
      expect((await s.receive(A, 10, T0 + 5000)).envelopes).toHaveLength(1);
    }));

    it('acks only the calling receiver\'s envelopes', withStore(async (s) => {
      const forA = env(A);
      await s.deposit(forA, 10);
      expect(await s.ack(B, [forA.id])).toBe(0);
      expect((await s.receive(A, 10, T0)).envelopes).toHaveLength(1);
    }));

    it('reports stats: queue sizes, oldest, unique senders (plain only) and receivers', withStore(async (s) => {
      await s.deposit(env(A, { fromDid: B, depositedAt: T0 + 1 }), 10);
      await s.deposit(env(A, { fromDid: B, depositedAt: T0 + 2 }), 10);
      await s.deposit(env(B, { fromDid: null, depositedAt: T0 + 3 }), 10);
      const st = await s.stats(T0 + 10);
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
      const outcomes = await Promise.all(envs.map((e) => s.deposit(e, 10_000)));
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

    it('rejects operations after close', async () => {
      const { store } = await factory.open();
      await store.close();
      await expect(store.deposit(env(A), 10)).rejects.toThrow();
    });
  });
}
