/** The PostgreSQL PushSubscriptionStore (PROTOCOL.md §5.2) on a throwaway cluster: the store contract, and one VAPID pair for every process. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import webpush from 'web-push';
import { PgPushSubscriptionStore } from '../../src/relay/push/pg-subscriptions';
import { startPostgres, type PostgresCluster } from '../../support/postgres';
import { runPushSubscriptionStoreContract } from '../contracts/push-subscription-store';
import { vitestRegistrar } from '../contracts/vitest-registrar';

let cluster: PostgresCluster;
let n = 0;
beforeAll(async () => {
  cluster = await startPostgres();
}, 120_000);
afterAll(() => cluster?.destroy());

runPushSubscriptionStoreContract(
  vitestRegistrar,
  'postgres',
  async () => {
    const url = await cluster.createDatabase(`push_${n++}`);
    return { store: await PgPushSubscriptionStore.open(url), reopen: () => PgPushSubscriptionStore.open(url) };
  },
  { persistent: true },
);

describe('PushSubscriptionStore (postgres)', () => {
  it('two relay processes opening one database at once share one VAPID key pair and one collapse state', async () => {
    const url = await cluster.createDatabase('push_shared');
    const [a, b] = await Promise.all([PgPushSubscriptionStore.open(url), PgPushSubscriptionStore.open(url)]);
    const [ka, kb] = await Promise.all([a.vapidKeys(webpush.generateVAPIDKeys()), b.vapidKeys(webpush.generateVAPIDKeys())]);
    expect(kb).toEqual(ka);
    expect(await a.markWoken('did:s')).toBe(true);
    expect(await b.markWoken('did:s')).toBe(false);
    await b.clearWoken('did:s');
    expect(await a.isWoken('did:s')).toBe(false);
    await Promise.all([a.close(), b.close()]);
  });
});
