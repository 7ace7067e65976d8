/**
 * Origins, Host headers, duplicated JSON keys and did:key mailboxes (PROTOCOL.md §5, §6) against
 * real relay processes: a receive signed for relay 1 is worthless at relay 3, even replayed with
 * `Host: <relay 1>`.
 */
import { connect } from 'node:net';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signMailboxRequest } from '../../src/core';
import { findDuplicateKey, parseJsonStrict } from '../../src/relay/strict-json';
import { newPeer } from '../../support/fixtures';
import {
  deposit,
  hostOf,
  junkSealed,
  mailboxPath,
  runRelayToExit,
  signedReceive,
  startRelayProcess,
  type RelayProcess,
} from '../../support/relay-process';

interface ErrorBody {
  error: { code: string; message: string };
}

/** Sends raw HTTP/1.1 text and resolves the status code of the answer. */
function rawStatus(url: string, text: string): Promise<number> {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const s = connect({ host: u.hostname, port: Number(u.port) });
    let got = '';
    s.on('data', (c: Buffer) => {
      got += c.toString();
      const m = /^HTTP\/1\.1 (\d{3})/.exec(got);
      if (m) {
        s.destroy();
        resolve(Number(m[1]));
      }
    });
    s.on('error', reject);
    s.write(text);
  });
}

describe('origins (§5, §6)', () => {
  let relay1: RelayProcess;
  let relay3: RelayProcess;
  beforeAll(async () => {
    [relay1, relay3] = await Promise.all([startRelayProcess(['--no-rate-limit']), startRelayProcess(['--no-rate-limit'])]);
  });
  afterAll(async () => {
    expect(await relay1.stop()).toBe(0);
    expect(await relay3.stop()).toBe(0);
  });

  it('a receive signed for relay 1, replayed to relay 3 with Host: relay 1, is 401', async () => {
    const bob = newPeer();
    expect((await deposit(relay3.url, bob.did, junkSealed(bob.did))).status).toBe(202);
    const pathAndQuery = `${mailboxPath(bob.did)}/receive`;
    const auth = await signMailboxRequest({ method: 'GET', host: hostOf(relay1.url), pathAndQuery, body: '' }, bob.signer);
    const replay = `GET ${pathAndQuery} HTTP/1.1\r\nHost: ${hostOf(relay1.url)}\r\nAuthorization: ${auth}\r\nConnection: close\r\n\r\n`;
    expect(await rawStatus(relay3.url, replay)).toBe(401);
    // The same signature is still good at relay 1 (nothing claimed it at relay 3), and relay 3
    // serves its owner when signed for relay 3.
    const at1 = await fetch(relay1.url + pathAndQuery, { headers: { authorization: auth } });
    expect(at1.status).toBe(200);
    expect((await signedReceive(relay3.url, bob.did, bob.signer)).status).toBe(200);
  });

  it('accepts the default loopback origins (localhost and 127.0.0.1 with the port) and no other name', async () => {
    const bob = newPeer();
    const port = new URL(relay1.url).port;
    for (const [host, status] of [
      [`localhost:${port}`, 200],
      [`127.0.0.1:${port}`, 200],
      [`LOCALHOST:${port}`, 200],
      ['evil.example', 401],
      [`localhost:${Number(port) + 1}`, 401],
      ['localhost', 401],
    ] as const) {
      const pathAndQuery = `${mailboxPath(bob.did)}/receive`;
      const auth = await signMailboxRequest({ method: 'GET', host, pathAndQuery, body: '' }, bob.signer);
      const req = `GET ${pathAndQuery} HTTP/1.1\r\nHost: ${host}\r\nAuthorization: ${auth}\r\nConnection: close\r\n\r\n`;
      expect(await rawStatus(relay1.url, req), host).toBe(status);
    }
  });

  it('two Host headers are 400 invalid_request', async () => {
    const h = hostOf(relay1.url);
    expect(await rawStatus(relay1.url, `GET /health HTTP/1.1\r\nHost: ${h}\r\nHost: ${h}\r\nConnection: close\r\n\r\n`)).toBe(400);
    expect(await rawStatus(relay1.url, `GET /health HTTP/1.1\r\nHost: ${h}\r\nConnection: close\r\n\r\n`)).toBe(200);
  });

  it('a duplicated JSON key is 400: invalid_envelope for a deposit, invalid_request for an ack', async () => {
    const bob = newPeer();
    const env = junkSealed(bob.did);
    const text = JSON.stringify(env);
    const twice = `${text.slice(0, -1)},"to_did":${JSON.stringify(bob.did)}}`;
    const escaped = `${text.slice(0, -1)},"\\u0065ncoding":"sealed"}`; // "encoding" again, escaped
    for (const body of [twice, escaped]) {
      const res = await deposit(relay1.url, bob.did, body);
      expect(res.status).toBe(400);
      expect(((await res.json()) as ErrorBody).error.code).toBe('invalid_envelope');
    }
    const pathAndQuery = `${mailboxPath(bob.did)}/ack`;
    const body = '{"ids":[],"ids":["x"]}';
    const auth = await signMailboxRequest({ method: 'POST', host: hostOf(relay1.url), pathAndQuery, body }, bob.signer);
    const ack = await fetch(relay1.url + pathAndQuery, {
      method: 'POST',
      headers: { authorization: auth, 'content-type': 'application/json' },
      body,
    });
    expect(ack.status).toBe(400);
    expect(((await ack.json()) as ErrorBody).error.code).toBe('invalid_request');
    expect((await deposit(relay1.url, bob.did, text)).status).toBe(202);
  });

  it('only valid did:key mailboxes exist (403 unverifiable_did)', async () => {
    const bob = newPeer();
    const notAKey = `did:key:z6Mk${'1'.repeat(44)}`;
    for (const did of ['did:sync:user:alice', 'did:key:zX', notAKey]) {
      const res = await deposit(relay1.url, did, { ...junkSealed(did) });
      expect(res.status, did).toBe(403);
      expect(((await res.json()) as ErrorBody).error.code).toBe('unverifiable_did');
    }
    expect((await deposit(relay1.url, bob.did, junkSealed(bob.did))).status).toBe(202);
  });
});

describe('origin options', () => {
  it('--origin replaces the default list', async () => {
    const relay = await startRelayProcess(['--origin', 'relay.example.org', '--origin', 'relay.example.org:8443']);
    try {
      const bob = newPeer();
      const pathAndQuery = `${mailboxPath(bob.did)}/receive`;
      for (const [host, status] of [
        ['relay.example.org', 200],
        ['relay.example.org:8443', 200],
        [hostOf(relay.url), 401],
      ] as const) {
        const auth = await signMailboxRequest({ method: 'GET', host, pathAndQuery, body: '' }, bob.signer);
        expect(
          await rawStatus(
            relay.url,
            `GET ${pathAndQuery} HTTP/1.1\r\nHost: ${host}\r\nAuthorization: ${auth}\r\nConnection: close\r\n\r\n`,
          ),
          host,
        ).toBe(status);
      }
    } finally {
      expect(await relay.stop()).toBe(0);
    }
  });

  it('refuses to start on an unspecified address without --origin, and bad origins (exit 2, clear message)', async () => {
    // Refused during option checks, before anything listens.
    const wildcard = await runRelayToExit(['--host', '0.0.0.0', '--port', '0', '--db', ':memory:']);
    expect(wildcard.code).toBe(2);
    expect(wildcard.stderr).toMatch(/--origin/);
    const v6 = await runRelayToExit(['--host', '::', '--port', '0', '--db', ':memory:']);
    expect(v6.code).toBe(2);
    const bad = await runRelayToExit(['--host', '127.0.0.1', '--port', '0', '--db', ':memory:', '--origin', 'http://x/']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--origin must be host\[:port\]/);
  });
});

describe('duplicate-key JSON parsing (fast-check)', () => {
  /** An object as a list of entries, so duplicates can be generated on purpose. */
  type Tree = { kind: 'obj'; entries: [string, Tree][] } | { kind: 'arr'; items: Tree[] } | { kind: 'leaf'; value: unknown };
  const key = fc.oneof(fc.constantFrom('a', 'b', 'id', 'é', '"', '\\', 'a\u0000'), fc.string({ maxLength: 4 }));
  const tree: fc.Arbitrary<Tree> = fc.letrec<{ t: Tree }>((tie) => ({
    t: fc.oneof(
      { depthSize: 'small', withCrossShrink: true },
      fc.record({
        kind: fc.constant('leaf' as const),
        value: fc.oneof(fc.string({ maxLength: 6 }), fc.integer(), fc.boolean(), fc.constant(null)),
      }),
      fc.record({ kind: fc.constant('arr' as const), items: fc.array(tie('t'), { maxLength: 4 }) }),
      fc.record({ kind: fc.constant('obj' as const), entries: fc.array(fc.tuple(key, tie('t')), { maxLength: 5 }) }),
    ),
  })).t;
  /** Escapes some characters of a key as \\uXXXX, which must not hide a duplicate. */
  const encodeKey = (k: string, escapeAll: boolean): string =>
    escapeAll ? `"${[...k].map((c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`).join('')}"` : JSON.stringify(k);
  const render = (t: Tree, escapeAll: boolean, ws: string): string => {
    if (t.kind === 'leaf') return JSON.stringify(t.value);
    if (t.kind === 'arr') return `[${ws}${t.items.map((i) => render(i, escapeAll, ws)).join(`,${ws}`)}${ws}]`;
    return `{${ws}${t.entries.map(([k, v]) => `${encodeKey(k, escapeAll)}${ws}:${ws}${render(v, escapeAll, ws)}`).join(`${ws},`)}${ws}}`;
  };
  const hasDuplicate = (t: Tree): boolean => {
    if (t.kind === 'leaf') return false;
    if (t.kind === 'arr') return t.items.some(hasDuplicate);
    const keys = t.entries.map(([k]) => k);
    return new Set(keys).size !== keys.length || t.entries.some(([, v]) => hasDuplicate(v));
  };

  it('finds a duplicate exactly when an object repeats a key (escaped or not, at any depth)', () => {
    fc.assert(
      fc.property(tree, fc.boolean(), fc.constantFrom('', ' ', '\n\t '), (t, escapeAll, ws) => {
        const text = render(t, escapeAll, ws);
        expect(findDuplicateKey(text) !== undefined).toBe(hasDuplicate(t));
        const parsed = parseJsonStrict(text);
        expect(parsed.ok).toBe(!hasDuplicate(t));
        if (parsed.ok) expect(parsed.value).toEqual(JSON.parse(text));
      }),
      { numRuns: 2000 },
    );
  });

  it('never throws on arbitrary text, and refuses what JSON.parse refuses', () => {
    fc.assert(
      fc.property(fc.oneof(fc.string(), fc.json()), (text) => {
        const r = parseJsonStrict(text);
        let valid = true;
        try {
          JSON.parse(text);
        } catch {
          valid = false;
        }
        if (!valid) expect(r.ok ? 'ok' : r.error.code).toBe('invalid_json');
      }),
      { numRuns: 2000 },
    );
  });
});
