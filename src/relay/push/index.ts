/** Push wake (PROTOCOL.md §5.2): builds the PushService a relay runs from its options. */
import type { Logger } from 'pino';
import { Counter, type Registry } from 'prom-client';
import { systemResolver, type Resolver } from './address';
import type { PushOptions } from './options';
import { PUSH_RESULTS, PushService } from './service';
import { defaultPushDbPath, MemoryPushSubscriptionStore, SqlitePushSubscriptionStore, type PushSubscriptionStore } from './subscriptions';
import { defaultVapidKeyPath, loadVapidKeys, type VapidKeys } from './vapid-key';
import { PgPushSubscriptionStore } from './pg-subscriptions';

export { handlePushDelete, handlePushPut, handlePushVapid } from './handlers';
export { DEFAULT_PUSH_OPTIONS, parseAllowedPushOrigin, validatePushOptions, type PushOptions } from './options';
export { PushService, PUSH_RESULTS } from './service';
export { systemResolver, type Resolver } from './address';

export interface CreatePushInput {
  readonly options: PushOptions;
  /** The relay's database path (`:memory:` keeps keys and subscriptions in memory). */
  readonly db: string;
  /** The relay's first origin (`host[:port]`), for the default VAPID subject; known once it listens. */
  readonly firstOrigin: () => string;
  readonly countQueued: (did: string) => Promise<number>;
  /** Where `relay_pushes_total{result}` is registered. */
  readonly registry: Registry;
  readonly logger: Logger;
  readonly store?: PushSubscriptionStore;
  readonly resolve?: Resolver;
}

const isPostgresUrl = (db: string): boolean => /^postgres(ql)?:\/\//i.test(db);

export async function createPushService(input: CreatePushInput): Promise<PushService | undefined> {
  if (!input.options.enabled) return undefined;
  let store: PushSubscriptionStore;
  let keys: VapidKeys;
  if (input.store) {
    store = input.store;
    keys = loadVapidKeys(input.options.vapidKeyFile ?? defaultVapidKeyPath(input.db));
  } else if (isPostgresUrl(input.db)) {
    // Relays sharing one database share subscriptions, the collapse state and one VAPID pair.
    const pgStore = await PgPushSubscriptionStore.open(input.db);
    store = pgStore;
    try {
      keys =
        input.options.vapidKeyFile !== undefined
          ? loadVapidKeys(input.options.vapidKeyFile)
          : await pgStore.vapidKeys(loadVapidKeys(undefined));
    } catch (e) {
      await pgStore.close();
      throw e;
    }
  } else {
    keys = loadVapidKeys(input.options.vapidKeyFile ?? defaultVapidKeyPath(input.db));
    const path = defaultPushDbPath(input.db);
    store = path === undefined ? new MemoryPushSubscriptionStore() : new SqlitePushSubscriptionStore(path);
  }
  const counter = new Counter({
    name: 'relay_pushes_total',
    help: 'Push wake attempts (PROTOCOL.md §5.2) by result: sent, gone (404/410, subscription removed), retried, failed (retries exhausted), refused (endpoint no longer public).',
    labelNames: ['result'],
    registers: [input.registry],
  });
  for (const result of PUSH_RESULTS) counter.inc({ result }, 0);
  return new PushService({
    options: input.options,
    keys,
    subject: () => input.options.vapidSubject ?? `https://${input.firstOrigin()}`,
    store,
    countQueued: input.countQueued,
    counter,
    logger: input.logger,
    resolve: input.resolve ?? systemResolver,
  });
}
