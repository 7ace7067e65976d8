/**
 * The SQLite relay's start-up integrity check runs in the background (src/relay/storage/sqlite-store.ts):
 * the relay serves at once, reports the check through `relay_integrity_check_running`, and when the
 * check finds damage it refuses every store request with 503 and resolves `refused` (the CLI then
 * exits 3, test/relay/storage.test.ts).
 */
import { closeSync, mkdtempSync, openSync, rmSync, statSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { startRelay } from '../../src/relay';
import { newPeer } from '../../support/fixtures';
import { deposit, junkSealed, signedReceive, startRelayProcess, waitFor } from '../../support/relay-process';

const dir = mkdtempSync(join(tmpdir(), 'relay-integrity-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const silent = pino({ level: 'silent' });

describe('background integrity check', () => {
  it('serves while the check runs and reports its end', async () => {
    const path = join(dir, 'new.sqlite');
    const bob = newPeer();
    const relay = await startRelayProcess(['--db', path, '--no-rate-limit']);
    try {
      expect((await deposit(relay.url, bob.did, junkSealed(bob.did, 500))).status).toBe(202);
      await waitFor(
        async () => /^relay_integrity_check_running 0$/m.test(await (await fetch(`${relay.url}/metrics`)).text()),
        10_000,
        'the integrity check to finish',
      );
      expect((await fetch(`${relay.url}/health`)).status).toBe(200);
    } finally {
      expect(await relay.stop()).toBe(0);
    }
  });

  it('damage found after start: every store request answers 503, /health 503, and `refused` names the file', async () => {
    const path = join(dir, 'damaged.sqlite');
    const bob = newPeer();
    const first = await startRelay({
      db: path,
      host: '127.0.0.1',
      port: 0,
      logger: silent,
      rateLimitPerClient: false,
      rateLimitPerSender: false,
    });
    for (let i = 0; i < 60; i++) expect((await deposit(first.url, bob.did, junkSealed(bob.did, 2000))).status).toBe(202);
    await first.close(); // checkpointed into the file
    // Scribble over pages in the middle of the file (envelope pages fill most of it).
    const size = statSync(path).size;
    const fd = openSync(path, 'r+');
    writeSync(fd, Buffer.alloc(8192, 0x5a), 0, 8192, Math.floor(size / 2 / 4096) * 4096);
    closeSync(fd);

    const relay = await startRelay({
      db: path,
      host: '127.0.0.1',
      port: 0,
      logger: silent,
      rateLimitPerClient: false,
      rateLimitPerSender: false,
    });
    try {
      const refused = await relay.refused;
      expect(refused.message).toContain(path);
      expect(refused.message).toMatch(/quick_check|damaged|malformed/);
      const res = await deposit(relay.url, bob.did, junkSealed(bob.did, 100));
      expect(res.status).toBe(503);
      const { error } = (await res.json()) as { error: { code: string; message: string } };
      expect(error.code).toBe('unavailable');
      expect(error.message).toMatch(/damaged/);
      expect((await signedReceive(relay.url, bob.did, bob.signer)).status).toBe(503);
      const health = await fetch(`${relay.url}/health`);
      expect(health.status).toBe(503);
    } finally {
      await relay.close();
    }
  });
});
