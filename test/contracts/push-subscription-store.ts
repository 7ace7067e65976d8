/**
 * The PushSubscriptionStore contract (src/relay/push/subscriptions.ts, PROTOCOL.md §5.2), run on
 * memory, SQLite and PostgreSQL. Shape and registrar: ./registrar.ts.
 */
import type { PushSubscriptionStore } from '../../src/relay/push/subscriptions';
import { assert } from './assert';
import { storeTest, type ContractRegistrar, type StoreUnderTest, type StoreCapabilities, type StoreFactory } from './registrar';

/** Opens a fresh, empty PushSubscriptionStore. */
export type PushSubscriptionStoreFactory = StoreFactory<PushSubscriptionStore>;

export function runPushSubscriptionStoreContract(
  t: ContractRegistrar,
  name: string,
  factory: PushSubscriptionStoreFactory,
  capabilities: StoreCapabilities,
): void {
  const test: (title: string, fn: (opened: StoreUnderTest<PushSubscriptionStore>) => Promise<void>) => void = storeTest(
    t,
    `PushSubscriptionStore contract (${name})`,
    factory,
  );
  const sub = (i: number): { endpoint: string; p256dh: string; auth: string } => ({
    endpoint: `https://p/${i}`,
    p256dh: `k${i}`,
    auth: `a${i}`,
  });

  test('marks a mailbox woken once until cleared', async ({ store }) => {
    assert.equal(await store.isWoken('did:w'), false);
    assert.equal(await store.markWoken('did:w'), true);
    assert.equal(await store.markWoken('did:w'), false);
    assert.equal(await store.isWoken('did:w'), true);
    assert.equal(await store.isWoken('did:other'), false);
    await store.clearWoken('did:w');
    assert.equal(await store.isWoken('did:w'), false);
    assert.equal(await store.markWoken('did:w'), true);
  });

  test('keeps the 5 most recently registered per mailbox; re-registration refreshes; remove is per mailbox', async ({ store }) => {
    for (let i = 0; i < 5; i++) assert.equal(await store.put('did:a', sub(i), 1000 + i, 5), 0);
    assert.equal(await store.put('did:a', { ...sub(0), auth: 'new' }, 2000, 5), 0); // refresh: 0 becomes newest
    assert.equal(await store.put('did:a', sub(5), 2001, 5), 1); // replaces 1, now the oldest
    const list = await store.list('did:a');
    assert.deepEqual(
      list.map((s) => s.endpoint),
      ['https://p/2', 'https://p/3', 'https://p/4', 'https://p/0', 'https://p/5'],
    );
    assert.equal(list.find((s) => s.endpoint === 'https://p/0')?.auth, 'new');
    assert.equal(await store.remove('did:b', 'https://p/2'), false);
    assert.equal(await store.remove('did:a', 'https://p/2'), true);
    assert.deepEqual(await store.list('did:b'), []);
  });

  test('close may be called again (shutdown paths overlap)', async ({ store }) => {
    await Promise.all([store.close(), store.close()]);
    await store.close();
  });

  if (capabilities.persistent) {
    // Only the subscriptions: the woken mark of a single-process store lives in its memory.
    test('subscriptions survive close and reopen', async ({ store, reopen, close }) => {
      assert.ok(reopen, `${name} is declared persistent but its factory offers no reopen`);
      await store.put('did:x', sub(1), 1, 5);
      await close();
      const again = await reopen();
      try {
        assert.deepEqual(
          (await again.list('did:x')).map((s) => s.endpoint),
          ['https://p/1'],
        );
      } finally {
        await again.close();
      }
    });
  }
}
