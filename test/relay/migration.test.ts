/**
 * Issue 14 storage and replay changes against real relay processes:
 * - a version 2 database (envelopes keyed by DID text) with queued envelopes is upgraded by the
 *   new relay at start, and every envelope is served, in deposit order, byte for byte;
 * - the replay rule that spares receives an fsync (replay-guard.ts) still refuses a signature
 *   replayed across a kill -9 and across a clean restart.
 */
import Database from 'better-sqlite3';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { signMailboxRequest, type Envelope } from '../../src/core';
import { newPeer, type TestPeer } from '../../support/fixtures';
import { deposit, hostOf, mailboxPath, signedReceive, startRelayProcess } from '../../support/relay-process';
import { uniquePlain, uniqueSealed } from './fixtures';

const dir = mkdtempSync(join(tmpdir(), 'relay-migration-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

interface ReceiveBody {
  envelopes: Envelope[];
  remaining: number;
}

describe('schema version 2 → current', () => {
  it('keeps every queued envelope: served in deposit order, verbatim, with counters rebuilt', async () => {
    const path = join(dir, 'v2.sqlite');
    const receivers = [newPeer(), newPeer(), newPeer()];
    const sender = newPeer();
    const base = Date.now();
    const old = new Database(path);
    old.pragma('journal_mode = WAL');
    old.exec(readFileSync(new URL('./schema-v2.sql', import.meta.url), 'utf8'));
    old.pragma('user_version = 2');
    const insert = old.prepare(
      'INSERT INTO envelopes (to_did, id, from_did, body, size, deposited_at, expires_at, unsolicited) VALUES (?, ?, ?, ?, ?, ?, ?, ?)',
    );
    const expected = new Map<string, Envelope[]>();
    // Interleaved across receivers, plain and sealed, one already expired (never served).
    for (let i = 0; i < 60; i++) {
      const to = receivers[i % receivers.length]!;
      const env: Envelope = i % 4 === 0 ? await uniquePlain(sender, to) : await uniqueSealed(sender, to);
      const body = JSON.stringify(env);
      const expired = i === 7;
      insert.run(
        to.did,
        env.id,
        env.encoding === 'plain' ? sender.did : null,
        body,
        Buffer.byteLength(body),
        base + i,
        expired ? base - 1 : base + 3_600_000,
        i % 5 === 0 ? 1 : 0,
      );
      if (!expired) expected.set(to.did, [...(expected.get(to.did) ?? []), env]);
    }
    old.close();

    const relay = await startRelayProcess(['--db', path, '--no-rate-limit']);
    try {
      for (const r of receivers) {
        const got = (await (await signedReceive(relay.url, r.did, r.signer, { limit: 500 })).json()) as ReceiveBody;
        expect(got.envelopes).toEqual(expected.get(r.did));
        expect(got.remaining).toBe(0);
      }
      const metrics = await (await fetch(`${relay.url}/metrics`)).text();
      expect(metrics).toMatch(/^relay_unique_receivers 3$/m);
      expect(metrics).toMatch(/^relay_unique_senders 1$/m);
      // New deposits land beside the migrated ones, after them.
      const more = await uniqueSealed(sender, receivers[0]!);
      expect((await deposit(relay.url, receivers[0]!.did, more)).status).toBe(202);
      const again = (await (await signedReceive(relay.url, receivers[0]!.did, receivers[0]!.signer, { limit: 500 })).json()) as ReceiveBody;
      expect(again.envelopes.map((e) => e.id)).toEqual([...expected.get(receivers[0]!.did)!.map((e) => e.id), more.id]);
    } finally {
      expect(await relay.stop()).toBe(0);
    }
    const upgraded = new Database(path, { readonly: true });
    try {
      expect(upgraded.pragma('user_version', { simple: true })).toBe(5);
      expect(upgraded.prepare("SELECT count(*) AS n FROM sqlite_master WHERE name = 'envelopes_v2'").get()).toEqual({ n: 0 });
    } finally {
      upgraded.close();
    }
  });
});

describe('replay protection across restarts', () => {
  /** The exact receive request, to send twice: path and Authorization header. */
  async function signedRequest(url: string, peer: TestPeer, ts: number): Promise<string> {
    return signMailboxRequest(
      { method: 'GET', host: hostOf(url), pathAndQuery: `${mailboxPath(peer.did)}/receive`, body: '' },
      peer.signer,
      ts,
    );
  }
  const replay = (url: string, peer: TestPeer, auth: string) => signedReceive(url, peer.did, peer.signer, { auth });

  it('refuses a used signature after kill -9 and after a clean restart, and takes fresh ones', async () => {
    const path = join(dir, 'replay.sqlite');
    const bob = newPeer();
    const first = await startRelayProcess(['--db', path]);
    const port = new URL(first.url).port;
    const args = ['--db', path, '--port', port]; // same Host: the signatures stay valid for it
    expect((await deposit(first.url, bob.did, await uniqueSealed(newPeer(), bob))).status).toBe(202);
    const past = await signedRequest(first.url, bob, Date.now() - 1000); // claimed in memory, recorded lazily
    const future = await signedRequest(first.url, bob, Date.now() + 60_000); // client clock ahead: claimed durably
    expect((await replay(first.url, bob, past)).status).toBe(200);
    expect((await replay(first.url, bob, future)).status).toBe(200);
    expect((await replay(first.url, bob, past)).status).toBe(401); // same run
    await first.kill9();

    const second = await startRelayProcess(args);
    expect(second.url).toBe(first.url);
    expect((await replay(second.url, bob, past)).status).toBe(401);
    expect((await replay(second.url, bob, future)).status).toBe(401);
    // The floor: after a crash, nothing signed before this run started is taken, used or not
    // (its lazy record could have been lost with the crashed run).
    const unusedButOld = await signedRequest(second.url, bob, Date.now() - 5_000);
    const refused = await replay(second.url, bob, unusedButOld);
    expect(refused.status).toBe(401);
    expect(((await refused.json()) as { error: { message: string } }).error.message).toMatch(/signed before the relay restarted/);
    const fresh = await signedRequest(second.url, bob, Date.now() + 1); // after this run's start
    expect((await replay(second.url, bob, fresh)).status).toBe(200);
    expect(await second.stop()).toBe(0); // clean: its lazy records committed

    const third = await startRelayProcess(args);
    try {
      for (const auth of [past, future, fresh]) {
        const res = await replay(third.url, bob, auth);
        expect(res.status).toBe(401);
        expect(((await res.json()) as { error: { code: string } }).error.code).toBe('unauthorized');
      }
      expect((await signedReceive(third.url, bob.did, bob.signer)).status).toBe(200);
    } finally {
      expect(await third.stop()).toBe(0);
    }
  });

  it('after a clean stop, a new run does not refuse signatures made before it started', async () => {
    const path = join(dir, 'clean.sqlite');
    const bob = newPeer();
    const first = await startRelayProcess(['--db', path]);
    const port = new URL(first.url).port;
    expect((await signedReceive(first.url, bob.did, bob.signer)).status).toBe(200);
    const signedBefore = await signedRequest(first.url, bob, Date.now() - 500);
    expect(await first.stop()).toBe(0);
    const second = await startRelayProcess(['--db', path, '--port', port]);
    try {
      // A client whose clock is behind the relay's (inside the skew window) is not refused.
      expect((await replay(second.url, bob, signedBefore)).status).toBe(200);
      expect((await replay(second.url, bob, signedBefore)).status).toBe(401);
    } finally {
      expect(await second.stop()).toBe(0);
    }
  });
});
