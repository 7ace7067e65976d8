/** The daemon's watch for other processes' writes (src/cli/store-watch.ts), on a real SQLite file. */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { watchStore } from '../../src/cli/store-watch';
import { openSqlitePeerStore } from '../../src/store/sqlite';
import { waitFor } from '../../support/relay-process';

const dirs: string[] = [];
afterAll(async () => {
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
});

describe('store watch', () => {
  it('reports commits by another connection, never more often than they happened', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'spl-watch-'));
    dirs.push(dir);
    const path = join(dir, 'peer.db');
    const writer = await openSqlitePeerStore(path); // another `spl` process, as far as the watch can tell
    let changes = 0;
    const errors: string[] = [];
    const watch = watchStore(
      path,
      () => changes++,
      (m) => errors.push(m),
      20,
    );
    try {
      expect(changes).toBe(0);
      await writer.bumpCounters({ records_ingested: 1 });
      await waitFor(() => changes === 1, 5_000, 'the first commit seen');
      await writer.bumpCounters({ records_ingested: 1 });
      await writer.bumpCounters({ records_ingested: 1 });
      await waitFor(() => changes >= 2, 5_000, 'later commits seen');
      expect(changes).toBeLessThanOrEqual(3);
      expect(errors).toEqual([]);
    } finally {
      watch.close();
      await writer.close();
    }
  });
});
