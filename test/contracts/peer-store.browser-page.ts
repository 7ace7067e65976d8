/** What the in-page PeerStore contract runner (./peer-store.browser-entry.ts) and its Node driver (test/store/idb.chromium.test.ts) agree on. */
import type { ContractRunReport } from './mini-runner';
import type { StoreCapabilities } from './registrar';

export const CHROMIUM_SUITE_NAME = 'IndexedDB in Chromium';
export const CHROMIUM_CAPABILITIES: StoreCapabilities = { persistent: true };

/** The page's global once the bundle has loaded. */
export interface StoreContractPage {
  runStoreContract?: () => Promise<ContractRunReport>;
}
