/**
 * Durability (PROTOCOL.md §5: 202 "only after the envelope is durable"): concurrent deposits on a
 * SQLite file, `kill -9` right after the last 202, restart on the same file: every envelope is
 * served, none twice. Acks survive a crash the same way.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { Envelope } from '../../src/core';
import { newPeer } from '../../support/fixtures';
import { deposit, signedAck, signedReceive, startRelayProcess } from '../../support/relay-process';
import { uniqueSealed } from './fixtures';

const dir = mkdtempSync(join(tmpdir(), 'relay-durability-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const N = 200;

describe('durability across kill -9', () => {
  it('serves every acknowledged deposit after a crash, once; acks survive too', async () => {
    const db = join(dir, 'nested', 'relay.sqlite');
    const args = ['--db', db, '--no-rate-limit'];
    const senders = [newPeer(), newPeer(), newPeer()];
    const bob = newPeer();
    const envs = await Promise.all(Array.from({ length: N }, (_, i) => uniqueSealed(senders[i % senders.length]!, bob)));

    const first = await startRelayProcess(args);
    const statuses = await Promise.all(envs.map(async (e) => (await deposit(first.url, bob.did, e)).status));
    await first.kill9(); // right after the last 202
    expect(statuses.every((s) => s === 202)).toBe(true);

    const second = await startRelayProcess(args);
    const got = (await (await signedReceive(second.url, bob.did, bob.signer, { limit: 500 })).json()) as {
      envelopes: Envelope[];
      remaining: number;
    };
    const ids = got.envelopes.map((e) => e.id);
    expect(new Set(ids).size).toBe(ids.length); // none twice
    expect([...ids].sort()).toEqual(envs.map((e) => e.id).sort()); // all of them
    expect(got.remaining).toBe(0);
    const byId = new Map(envs.map((e) => [e.id, e]));
    for (const e of got.envelopes) expect(e).toEqual(byId.get(e.id));

    const half = ids.slice(0, N / 2);
    expect(await (await signedAck(second.url, bob.did, bob.signer, half)).json()).toEqual({ removed: N / 2 });
    await second.kill9();

    const third = await startRelayProcess(args);
    try {
      const after = (await (await signedReceive(third.url, bob.did, bob.signer, { limit: 500 })).json()) as { envelopes: Envelope[] };
      expect(after.envelopes.map((e) => e.id).sort()).toEqual(ids.slice(N / 2).sort());
    } finally {
      expect(await third.stop()).toBe(0);
    }
  });
});
