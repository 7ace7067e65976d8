/**
 * Malformed-input fuzzing (fast-check) against a real relay process: random and mutated bodies and
 * headers on every route. Every answer is a 4xx in the §5 error shape, or a 2xx for mutations that
 * are still valid; the process never crashes; envelopes queued before are intact afterwards.
 */
import { connect } from 'node:net';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signMailboxRequest, type Envelope } from '../../src/core';
import { newPeer, type TestPeer } from '../../support/fixtures';
import { hostOf, mailboxPath, signedReceive, startRelayProcess, type RelayProcess } from '../../support/relay-process';
import { uniquePlain, uniqueSealed } from './fixtures';

let relay: RelayProcess;
let bob: TestPeer;
let seeded: Envelope[] = [];
let templates: Record<string, unknown>[] = [];

beforeAll(async () => {
  relay = await startRelayProcess(['--no-rate-limit', '--max-body', '65536']);
  const alice = newPeer();
  bob = newPeer();
  seeded = [await uniqueSealed(alice, bob), await uniquePlain(alice, bob, 2), await uniqueSealed(alice, bob, 3)];
  for (const e of seeded) {
    const res = await fetch(relay.url + mailboxPath(bob.did), {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(e),
    });
    expect(res.status).toBe(202);
  }
  // Mutation templates: valid envelopes for the fuzzed mailbox (distinct from the seeded ones).
  templates = [await uniqueSealed(alice, bob), await uniquePlain(alice, bob, 1)] as unknown as Record<string, unknown>[];
});

afterAll(async () => {
  expect(relay.proc.exitCode).toBe(null); // never crashed
  expect(await relay.stop()).toBe(0);
});

const SNAKE = /^[a-z][a-z0-9_]*$/;

async function checkAnswer(res: Response, allowed2xx: readonly number[]): Promise<void> {
  const text = await res.text();
  if (res.status >= 200 && res.status < 300) {
    expect(allowed2xx).toContain(res.status);
    expect(() => JSON.parse(text) as unknown).not.toThrow();
    return;
  }
  expect(res.status, text).toBeGreaterThanOrEqual(400);
  expect(res.status, text).toBeLessThan(500);
  const body = JSON.parse(text) as { error?: { code?: unknown; message?: unknown } };
  expect(typeof body.error?.code).toBe('string');
  expect(body.error!.code as string).toMatch(SNAKE);
  expect(typeof body.error?.message).toBe('string');
}

const headerValue = fc.stringMatching(/^[\x20-\x7e]{0,80}$/);
const contentType = fc.oneof(
  fc.constant('application/json'),
  fc.constant('application/json; charset=utf-8'),
  fc.constant('APPLICATION/JSON;charset=latin1'),
  fc.constantFrom('text/plain', 'application/jsonx', 'application/x-www-form-urlencoded', ';', ''),
  headerValue,
);

const hugeNumber = fc.constantFrom(1e308, -1e308, 2 ** 64, Number.MAX_SAFE_INTEGER + 2, 0.5, -0, 1e-300);
const deepNesting = fc.integer({ min: 1, max: 20_000 }).map((n) => `${'['.repeat(n)}${']'.repeat(n)}`);
const jsonish = fc.oneof(fc.json(), fc.constant('null'), fc.constant('{}'), deepNesting);

/** A body: random text/bytes, or a valid envelope mutated. */
const body = fc.oneof(
  { weight: 2, arbitrary: fc.string() },
  { weight: 1, arbitrary: fc.uint8Array({ maxLength: 512 }) },
  { weight: 1, arbitrary: jsonish },
  {
    weight: 6,
    arbitrary: fc
      .record({
        t: fc.nat(),
        drop: fc.subarray(['v', 'id', 'to_did', 'encoding', 'ttl_seconds', 'epk', 'nonce', 'ciphertext', 'from_did', 'records', 'sig']),
        set: fc.dictionary(
          fc.constantFrom(
            'v',
            'id',
            'to_did',
            'encoding',
            'ttl_seconds',
            'epk',
            'nonce',
            'ciphertext',
            'from_did',
            'records',
            'sig',
            '__proto__',
            'extra',
          ),
          fc.oneof(fc.jsonValue(), hugeNumber, fc.constant(undefined)),
          { maxKeys: 3 },
        ),
        truncate: fc.option(fc.nat(), { nil: undefined }),
      })
      .map(({ t, drop, set, truncate }) => {
        const env: Record<string, unknown> = { ...templates[t % templates.length]! };
        for (const k of drop) delete env[k];
        Object.assign(env, set);
        const text = JSON.stringify(env);
        return truncate === undefined ? text : text.slice(0, truncate % (text.length + 1));
      }),
  },
);

describe('malformed input fuzz', () => {
  it('deposits: random and mutated bodies and content types', async () => {
    await fc.assert(
      fc.asyncProperty(
        body,
        contentType,
        fc.boolean(),
        fc.option(fc.oneof(headerValue, fc.stringMatching(/^[A-Za-z0-9_-]{20,45}$/)), { nil: undefined }),
        async (b, ct, otherMailbox, token) => {
          const did = otherMailbox ? 'did:key:z6MkfuzzFuzzFuzz' : bob.did;
          const headers: Record<string, string> = ct === '' ? {} : { 'content-type': ct };
          if (token !== undefined) headers['x-syncropel-deposit-token'] = token;
          const res = await fetch(relay.url + mailboxPath(did), {
            method: 'POST',
            headers,
            body: typeof b === 'string' ? b : Buffer.from(b),
          });
          await checkAnswer(res, [202]);
        },
      ),
      { numRuns: 2000, interruptAfterTimeLimit: 15_000 },
    );
  });

  it('receive and ack: bogus Authorization, queries and bodies', async () => {
    const route = fc.record({
      kind: fc.constantFrom('receive', 'ack', 'tokens', 'other'),
      did: fc.oneof(fc.constant(bob.did), fc.constant('did:sync:user:x'), fc.stringMatching(/^[A-Za-z0-9:%._~-]{1,60}$/)),
      query: fc.oneof(fc.constant(''), fc.stringMatching(/^[A-Za-z0-9=&%._~-]{0,40}$/)),
      auth: fc.oneof(
        fc.constant(undefined),
        headerValue,
        fc.tuple(fc.nat(), fc.stringMatching(/^[A-Za-z0-9_-]{86}$/)).map(([ts, sig]) => `Syncropel-Mailbox ts=${ts},sig=${sig}`),
        fc.stringMatching(/^[A-Za-z0-9_-]{86}$/).map((sig) => `Syncropel-Mailbox ts=${Date.now()},sig=${sig}`),
      ),
      body,
    });
    await fc.assert(
      fc.asyncProperty(route, contentType, async (r, ct) => {
        const path = r.kind === 'other' ? `/v1/${r.did}` : `/v1/mailbox/${r.did}/${r.kind}${r.query ? `?${r.query}` : ''}`;
        const headers: Record<string, string> = {};
        if (r.auth !== undefined) headers.authorization = r.auth;
        if (ct !== '') headers['content-type'] = ct;
        const withBody = { headers, body: typeof r.body === 'string' ? r.body : Buffer.from(r.body) };
        const init: RequestInit =
          r.kind === 'ack' ? { method: 'POST', ...withBody } : r.kind === 'tokens' ? { method: 'PUT', ...withBody } : { headers };
        await checkAnswer(await fetch(relay.url + path, init), []);
      }),
      { numRuns: 1500, interruptAfterTimeLimit: 15_000 },
    );
  });

  it('token lists signed by the owner: random and mutated bodies get 200 or 400 invalid_request', async () => {
    const tokenish = fc.oneof(
      fc.uint8Array({ minLength: 14, maxLength: 34 }).map((b) => Buffer.from(b).toString('base64url')),
      fc.stringMatching(/^[A-Za-z0-9_=+/-]{0,50}$/),
      fc.jsonValue(),
    );
    const tokensBody = fc.oneof(
      body,
      fc.array(tokenish, { maxLength: 120 }).map((tokens) => JSON.stringify({ tokens })),
      fc.array(tokenish, { maxLength: 3 }).map((tokens) => `{"tokens":${JSON.stringify(tokens)},"tokens":[]}`),
    );
    const path = `${mailboxPath(bob.did)}/tokens`;
    await fc.assert(
      fc.asyncProperty(tokensBody, async (b) => {
        const bytes = typeof b === 'string' ? Buffer.from(b) : Buffer.from(b);
        const auth = await signMailboxRequest({ method: 'PUT', host: hostOf(relay.url), pathAndQuery: path, body: bytes }, bob.signer);
        const res = await fetch(relay.url + path, {
          method: 'PUT',
          headers: { authorization: auth, 'content-type': 'application/json' },
          body: bytes,
        });
        await checkAnswer(res, [200]);
      }),
      { numRuns: 300, interruptAfterTimeLimit: 10_000 },
    );
    // Leave the mailbox without tokens, as the other properties expect.
    const empty = '{"tokens":[]}';
    const auth = await signMailboxRequest({ method: 'PUT', host: hostOf(relay.url), pathAndQuery: path, body: empty }, bob.signer);
    expect(
      (await fetch(relay.url + path, { method: 'PUT', headers: { authorization: auth, 'content-type': 'application/json' }, body: empty }))
        .status,
    ).toBe(200);
  });

  it('raw garbage on the socket gets a 400 or a hang-up, never a crash', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(
          fc.uint8Array({ minLength: 1, maxLength: 300 }),
          fc.string({ minLength: 1 }).map((s) => Buffer.from(`${s}\r\n\r\n`)),
        ),
        (bytes) =>
          new Promise<void>((resolve, reject) => {
            const u = new URL(relay.url);
            const sock = connect(Number(u.port), u.hostname, () => sock.end(Buffer.from(bytes)));
            let answer = '';
            sock.on('data', (c: Buffer) => (answer += c.toString('latin1')));
            sock.on('error', () => resolve()); // reset: acceptable for garbage
            sock.on('close', () => {
              if (answer && !/^HTTP\/1\.1 4\d\d /.test(answer)) reject(new Error(`unexpected answer: ${answer.slice(0, 100)}`));
              else resolve();
            });
          }),
      ),
      { numRuns: 200, interruptAfterTimeLimit: 10_000 },
    );
  });

  it('leaves the envelopes queued before intact', async () => {
    const health = await fetch(`${relay.url}/health`);
    expect(health.status).toBe(200);
    const got = (await (await signedReceive(relay.url, bob.did, bob.signer, { limit: 500 })).json()) as { envelopes: Envelope[] };
    for (const e of seeded) expect(got.envelopes.find((g) => g.id === e.id)).toEqual(e);
    // The seeded ones are still the oldest, in order.
    expect(got.envelopes.slice(0, seeded.length)).toEqual(seeded);
    // And the owner can still sign and be heard.
    const pathAndQuery = `${mailboxPath(bob.did)}/receive?limit=1`;
    const auth = await signMailboxRequest({ method: 'GET', host: hostOf(relay.url), pathAndQuery, body: '' }, bob.signer);
    expect((await fetch(relay.url + pathAndQuery, { headers: { authorization: auth } })).status).toBe(200);
  });
});
