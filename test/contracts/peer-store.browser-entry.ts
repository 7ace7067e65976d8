/**
 * Bundled by test/store/idb.chromium.test.ts into a page: runs the contract (and the schema upgrades,
 * ./idb-upgrade.ts) against the browser's own IndexedDB and exposes the report as `runStoreContract()`.
 */
import { openIdbPeerStore } from '../../src/store/idb';
import { CHROMIUM_CAPABILITIES, CHROMIUM_SUITE_NAME, type StoreContractPage } from './peer-store.browser-page';
import { runIdbUpgradeChecks } from './idb-upgrade';
import { runPeerStoreContract } from './peer-store';
import { runRegistered } from './mini-runner';

const runId = Date.now().toString(36);
let seq = 0;

(globalThis as StoreContractPage).runStoreContract = () =>
  runRegistered((t) => {
    runPeerStoreContract(
      t,
      CHROMIUM_SUITE_NAME,
      async () => {
        const dbName = `contract-${runId}-${++seq}`; // a fresh database per test
        return { store: await openIdbPeerStore(dbName), reopen: () => openIdbPeerStore(dbName) };
      },
      CHROMIUM_CAPABILITIES,
    );
    runIdbUpgradeChecks(t, CHROMIUM_SUITE_NAME, { factory: indexedDB, freshName: () => `upgrade-${runId}-${++seq}` });
  });
