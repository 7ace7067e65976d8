/** What the in-page contract runner (./browser-entry.ts) and its Node driver agree on. */
import type { StoreCapabilities } from './contract';
import type { ContractRunReport } from './mini-runner';

export const CHROMIUM_SUITE_NAME = 'IndexedDB in Chromium';
export const CHROMIUM_CAPABILITIES: StoreCapabilities = { persistent: true };

/** The page's global once the bundle has loaded. */
export interface StoreContractPage {
  runStoreContract?: () => Promise<ContractRunReport>;
}
