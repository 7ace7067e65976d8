import { MemoryMailboxStore } from '../../src/relay/storage/memory-store';
import { runMailboxStoreContract } from '../contracts/mailbox-store';
import { vitestRegistrar } from '../contracts/vitest-registrar';

runMailboxStoreContract(vitestRegistrar, 'memory', () => Promise.resolve({ store: new MemoryMailboxStore() }), { persistent: false });
