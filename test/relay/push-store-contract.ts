/** The contract every PushSubscriptionStore meets (PROTOCOL.md §5.2), run on memory, SQLite and PostgreSQL. */
import { expect, it } from 'vitest';
import type { PushSubscriptionStore } from '../../src/relay/push/subscriptions';

export function pushStoreContract(make: () => Promise<PushSubscriptionStore>): void {
  it('marks a mailbox woken once until cleared', async () => {
    const store = await make();
    expect(await store.isWoken('did:w')).toBe(false);
    expect(await store.markWoken('did:w')).toBe(true);
    expect(await store.markWoken('did:w')).toBe(false);
    expect(await store.isWoken('did:w')).toBe(true);
    expect(await store.isWoken('did:other')).toBe(false);
    await store.clearWoken('did:w');
    expect(await store.isWoken('did:w')).toBe(false);
    expect(await store.markWoken('did:w')).toBe(true);
    await store.close();
  });

  it('keeps the 5 most recently registered per mailbox; re-registration refreshes; remove is per mailbox', async () => {
    const store = await make();
    const sub = (i: number): { endpoint: string; p256dh: string; auth: string } => ({ endpoint: `https://p/${i}`, p256dh: `k${i}`, auth: `a${i}` });
    for (let i = 0; i < 5; i++) expect(await store.put('did:a', sub(i), 1000 + i, 5)).toBe(0);
    expect(await store.put('did:a', { ...sub(0), auth: 'new' }, 2000, 5)).toBe(0); // refresh: 0 becomes newest
    expect(await store.put('did:a', sub(5), 2001, 5)).toBe(1); // replaces 1, now the oldest
    const list = await store.list('did:a');
    expect(list.map((s) => s.endpoint)).toEqual(['https://p/2', 'https://p/3', 'https://p/4', 'https://p/0', 'https://p/5']);
    expect(list.find((s) => s.endpoint === 'https://p/0')?.auth).toBe('new');
    expect(await store.remove('did:b', 'https://p/2')).toBe(false);
    expect(await store.remove('did:a', 'https://p/2')).toBe(true);
    expect(await store.list('did:b')).toEqual([]);
    await store.close();
  });
}

