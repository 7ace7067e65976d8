/**
 * Schema version 3 → 4 (packed bodies, src/relay/storage/sqlite-body.ts) against a real relay
 * process: every envelope queued in a version 3 file is served byte for byte, new deposits are
 * stored packed where that round-trips and are served byte for byte too, whatever their formatting.
 */
import Database from 'better-sqlite3';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { newPeer } from '../../support/fixtures';
import { deposit, signedReceive, startRelayProcess } from '../../support/relay-process';
import { uniquePlain, uniqueSealed } from './fixtures';

const dir = mkdtempSync(join(tmpdir(), 'relay-v4-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('schema version 3 → 4', () => {
  it('serves every version 3 envelope verbatim; new deposits are stored packed and served verbatim', async () => {
    const path = join(dir, 'v3.sqlite');
    const bob = newPeer();
    const sender = newPeer();
    const old = new Database(path);
    old.pragma('journal_mode = WAL');
    old.exec(readFileSync(new URL('./schema-v3.sql', import.meta.url), 'utf8'));
    old.pragma('user_version = 3');
    const mailbox = Number(old.prepare('INSERT INTO mailboxes (did) VALUES (?)').run(bob.did).lastInsertRowid);
    const insert = old.prepare(
      'INSERT INTO envelopes (mailbox, id, from_did, body, size, deposited_at, expires_at, unsolicited) VALUES (?, ?, ?, ?, ?, ?, ?, 0)',
    );
    const queued: string[] = [];
    const now = Date.now();
    for (let i = 0; i < 12; i++) {
      const env = i % 3 === 0 ? await uniquePlain(sender, bob) : await uniqueSealed(sender, bob);
      const body = JSON.stringify(env);
      insert.run(mailbox, env.id, env.encoding === 'plain' ? sender.did : null, body, Buffer.byteLength(body), now + i, now + 3_600_000);
      queued.push(body);
    }
    old.close();

    // New deposits with formatting a re-serialisation would not keep: spaces, key order, an escaped
    // character inside the ciphertext (valid, but not packable), and a plain envelope.
    const sealed = await uniqueSealed(sender, bob);
    const spaced = `{ "ciphertext":"${sealed.ciphertext}", "v":1,\n "id":"${sealed.id}", "to_did":"${sealed.to_did}", "encoding":"sealed", "epk":"${sealed.epk}", "nonce":"${sealed.nonce}" }`;
    const junk = {
      v: 1,
      id: randomBytes(32).toString('hex'),
      to_did: bob.did,
      encoding: 'sealed',
      epk: randomBytes(32).toString('base64url'),
      nonce: randomBytes(24).toString('base64url'),
      ciphertext: randomBytes(600).toString('base64url'),
    };
    const compact = JSON.stringify(junk);
    const junk2 = { ...junk, id: randomBytes(32).toString('hex') };
    const escaped = JSON.stringify(junk2).replace(
      `"ciphertext":"${junk2.ciphertext[0]}`,
      `"ciphertext":"\\u00${junk2.ciphertext.charCodeAt(0).toString(16)}`,
    );
    const plain = JSON.stringify(await uniquePlain(sender, bob), null, 1);
    const fresh = [spaced, compact, escaped, plain];

    const relay = await startRelayProcess(['--db', path, '--no-rate-limit']);
    try {
      for (const text of fresh) expect((await deposit(relay.url, bob.did, text)).status).toBe(202);
      const res = await signedReceive(relay.url, bob.did, bob.signer, { limit: 500 });
      expect(res.status).toBe(200);
      // The answer is the stored texts spliced in order: byte for byte, old and new.
      expect(await res.text()).toBe(`{"envelopes":[${[...queued, ...fresh].join(',')}],"remaining":0}`);
    } finally {
      expect(await relay.stop()).toBe(0);
    }
    const upgraded = new Database(path, { readonly: true });
    try {
      expect(upgraded.pragma('user_version', { simple: true })).toBe(5);
      const kinds = upgraded
        .prepare<[], { t: string; size: number; stored: number }>(
          'SELECT typeof(body) AS t, size, length(body) AS stored FROM envelopes ORDER BY seq',
        )
        .all();
      expect(kinds.slice(0, queued.length).every((k) => k.t === 'text')).toBe(true);
      // New ones: the sealed with a clean ciphertext are packed (smaller than their text); the escaped one and the plain one stay text.
      expect(kinds.slice(queued.length).map((k) => k.t)).toEqual(['blob', 'blob', 'text', 'text']);
      for (const k of kinds.slice(queued.length, queued.length + 2)) expect(k.stored).toBeLessThan(k.size * 0.85);
    } finally {
      upgraded.close();
    }
  });
});
