import { MemoryMailboxStore } from '../../src/relay/storage/memory-store';
import { mailboxStoreContract } from './store-contract';

mailboxStoreContract('memory', { open: () => Promise.resolve({ store: new MemoryMailboxStore() }) });
