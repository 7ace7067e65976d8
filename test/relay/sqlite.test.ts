import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { SqliteMailboxStore } from '../../src/relay/sqlite-store';
import { mailboxStoreContract } from './store-contract';

const dir = mkdtempSync(join(tmpdir(), 'relay-sqlite-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;

mailboxStoreContract('sqlite file', {
  open: () => {
    const path = join(dir, `store-${++n}`, 'relay.sqlite'); // parent directory is created
    return Promise.resolve({ store: new SqliteMailboxStore(path), reopen: () => Promise.resolve(new SqliteMailboxStore(path)) });
  },
});

mailboxStoreContract('sqlite :memory:', { open: () => Promise.resolve({ store: new SqliteMailboxStore(':memory:') }) });

describe('SqliteMailboxStore specifics', () => {
  it('batches concurrent writes into one transaction (group commit), durable on reopen', async () => {
    const path = join(dir, 'batch.sqlite');
    const store = new SqliteMailboxStore(path);
    const base = Date.now();
    const deposits = Array.from({ length: 100 }, (_, i) =>
      store.deposit(
        { id: i.toString(16).padStart(64, '0'), toDid: 'did:key:zX', fromDid: null, body: '{}', size: 2, depositedAt: base, expiresAt: base + 60_000 },
        1000,
      ),
    );
    const before = store.commitCount;
    expect((await Promise.all(deposits)).every((o) => o.kind === 'stored')).toBe(true);
    expect(store.commitCount - before).toBe(1);
    await store.close();
    const again = new SqliteMailboxStore(path);
    try {
      expect((await again.receive('did:key:zX', 500, base)).envelopes).toHaveLength(100);
    } finally {
      await again.close();
    }
  });
});
