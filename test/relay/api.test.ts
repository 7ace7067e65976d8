/**
 * The relay HTTP API (PROTOCOL.md §5–§6) against a real relay process over real HTTP.
 */
import { request } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signMailboxRequest, type Envelope } from '../../src/core';
import { uniquePlain, uniqueSealed } from './fixtures';
import { newPeer } from '../../support/fixtures';
import {
  deposit,
  hostOf,
  mailboxPath,
  runRelayToExit,
  signedAck,
  signedReceive,
  startRelayProcess,
  waitFor,
  type RelayProcess,
} from '../../support/relay-process';

interface ReceiveBody {
  envelopes: Envelope[];
  remaining: number;
}
interface ErrorBody {
  error: { code: string; message: string };
}

async function expectError(res: Response, status: number, code: string): Promise<void> {
  expect(res.status).toBe(status);
  expect(res.headers.get('content-type')).toMatch(/^application\/json/);
  const body = (await res.json()) as ErrorBody;
  expect(body.error.code).toBe(code);
  expect(typeof body.error.message).toBe('string');
  expect(body.error.message.length).toBeGreaterThan(0);
}

const sealedFor = uniqueSealed;

async function metricsText(url: string): Promise<string> {
  return (await fetch(`${url}/metrics`)).text();
}

const metricValue = (text: string, prefix: string): number | undefined => {
  const line = text.split('\n').find((l) => l.startsWith(prefix));
  return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(' ') + 1));
};

describe('relay API (default options)', () => {
  let relay: RelayProcess;
  beforeAll(async () => {
    relay = await startRelayProcess([]);
  });
  afterAll(async () => {
    expect(await relay.stop()).toBe(0);
  });

  it('answers /health', async () => {
    const res = await fetch(`${relay.url}/health`);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ status: 'ok' });
    expect(res.headers.get('access-control-allow-origin')).toBe('*');
  });

  it('runs a full deposit → receive → ack cycle for sealed and plain envelopes', async () => {
    const alice = newPeer();
    const bob = newPeer();
    const sealed = await sealedFor(alice, bob, 2);
    const plain = await uniquePlain(alice, bob, 3);
    const before = Date.now();
    const r1 = await deposit(relay.url, bob.did, sealed);
    expect(r1.status).toBe(202);
    const b1 = (await r1.json()) as { id: string; duplicate: boolean; expires_at: number };
    expect(b1).toMatchObject({ id: sealed.id, duplicate: false });
    // No ttl clamping needed: 30 days is the default and the maximum.
    expect(b1.expires_at).toBeGreaterThanOrEqual(before + 2_592_000_000);
    expect(b1.expires_at).toBeLessThanOrEqual(Date.now() + 2_592_000_000);
    expect((await deposit(relay.url, bob.did, plain)).status).toBe(202);

    const got = await signedReceive(relay.url, bob.did, bob.signer, { limit: 1 });
    expect(got.status).toBe(200);
    expect(got.headers.get('access-control-allow-origin')).toBe('*');
    const first = (await got.json()) as ReceiveBody;
    expect(first.envelopes).toEqual([sealed]); // served exactly as deposited
    expect(first.remaining).toBe(1);

    const all = (await (await signedReceive(relay.url, bob.did, bob.signer)).json()) as ReceiveBody;
    expect(all.envelopes).toEqual([sealed, plain]); // oldest first
    expect(all.remaining).toBe(0);

    const ack = await signedAck(relay.url, bob.did, bob.signer, [sealed.id, plain.id, 'f'.repeat(64)]);
    expect(ack.status).toBe(200);
    expect(await ack.json()).toEqual({ removed: 2 });
    const again = await signedAck(relay.url, bob.did, bob.signer, [sealed.id]);
    expect(await again.json()).toEqual({ removed: 0 });
    const empty = (await (await signedReceive(relay.url, bob.did, bob.signer)).json()) as ReceiveBody;
    expect(empty).toEqual({ envelopes: [], remaining: 0 });
  });

  it('keeps one copy of a re-deposited envelope (202 duplicate: true)', async () => {
    const alice = newPeer();
    const bob = newPeer();
    const env = await sealedFor(alice, bob);
    const first = (await (await deposit(relay.url, bob.did, env)).json()) as { expires_at: number; duplicate: boolean };
    const res = await deposit(relay.url, bob.did, env);
    expect(res.status).toBe(202);
    expect(await res.json()).toEqual({ id: env.id, duplicate: true, expires_at: first.expires_at });
    const got = (await (await signedReceive(relay.url, bob.did, bob.signer)).json()) as ReceiveBody;
    expect(got.envelopes).toHaveLength(1);
  });

  it('accepts the mailbox DID raw or percent-encoded in the path', async () => {
    const alice = newPeer();
    const bob = newPeer();
    const env = await sealedFor(alice, bob);
    const res = await fetch(`${relay.url}/v1/mailbox/${bob.did}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json; charset=utf-8' },
      body: JSON.stringify(env),
    });
    expect(res.status).toBe(202);
    const pathAndQuery = `/v1/mailbox/${bob.did}/receive`;
    const auth = await signMailboxRequest({ method: 'GET', host: hostOf(relay.url), pathAndQuery, body: '' }, bob.signer);
    const got = await fetch(relay.url + pathAndQuery, { headers: { authorization: auth } });
    expect(got.status).toBe(200);
    expect(((await got.json()) as ReceiveBody).envelopes.map((e) => e.id)).toEqual([env.id]);
  });

  it('refuses an envelope for another mailbox (400 wrong_mailbox)', async () => {
    const alice = newPeer();
    const bob = newPeer();
    const env = await sealedFor(alice, bob);
    await expectError(await deposit(relay.url, alice.did, env), 400, 'wrong_mailbox');
  });

  it('refuses malformed envelopes (400 invalid_envelope)', async () => {
    const alice = newPeer();
    const bob = newPeer();
    const env = await sealedFor(alice, bob);
    const { epk: _epk, ...noEpk } = env;
    const cases: string[] = [
      'not json',
      '',
      '[]',
      'null',
      JSON.stringify(noEpk),
      JSON.stringify({ ...env, v: 2 }),
      JSON.stringify({ ...env, id: 'xyz' }),
      JSON.stringify({ ...env, ttl_seconds: '60' }),
      JSON.stringify({ ...env, ttl_seconds: -5 }),
      JSON.stringify({ ...env, encoding: 'zip' }),
      JSON.stringify({ ...(await uniquePlain(alice, bob)), records: [] }),
      JSON.stringify(env).slice(0, -3),
    ];
    for (const body of cases) await expectError(await deposit(relay.url, bob.did, body), 400, 'invalid_envelope');
    const bad = Buffer.from([0x7b, 0xff, 0xfe, 0x7d]); // not UTF-8
    await expectError(
      await fetch(relay.url + mailboxPath(bob.did), { method: 'POST', headers: { 'content-type': 'application/json' }, body: bad }),
      400,
      'invalid_envelope',
    );
  });

  it('refuses bodies that are not application/json (415)', async () => {
    const alice = newPeer();
    const bob = newPeer();
    const body = JSON.stringify(await sealedFor(alice, bob));
    for (const ct of ['text/plain', 'application/x-www-form-urlencoded', 'application/jsonp', 'multipart/form-data; boundary=x']) {
      await expectError(await deposit(relay.url, bob.did, body, { 'content-type': ct }), 415, 'unsupported_media_type');
    }
    const noType = await fetch(relay.url + mailboxPath(bob.did), { method: 'POST', body: new Blob([body]) });
    await expectError(noType, 415, 'unsupported_media_type');
    expect((await deposit(relay.url, bob.did, body, { 'content-type': 'Application/JSON; charset=UTF-8' })).status).toBe(202);
  });

  it('refuses bodies over 1 MiB (413), by Content-Length and while streaming', async () => {
    const bob = newPeer();
    const big = `{"pad":"${'x'.repeat(1_048_576)}"}`;
    await expectError(await deposit(relay.url, bob.did, big), 413, 'payload_too_large');
    // Chunked: no Content-Length, the relay stops reading once over the limit.
    const { status, body } = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const u = new URL(relay.url + mailboxPath(bob.did));
      const req = request(
        { host: u.hostname, port: u.port, path: u.pathname, method: 'POST', headers: { 'content-type': 'application/json' } },
        (res) => {
          let text = '';
          res.on('data', (c: Buffer) => (text += c.toString()));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
        },
      );
      req.on('error', reject);
      const chunk = 'y'.repeat(64 * 1024);
      for (let i = 0; i < 20; i++) req.write(chunk);
      req.end();
    });
    expect(status).toBe(413);
    expect((JSON.parse(body) as ErrorBody).error.code).toBe('payload_too_large');
    expect(metricValue(await metricsText(relay.url), 'relay_rate_limit_hits_total{kind="payload_too_large"}')).toBeGreaterThanOrEqual(2);
  });

  it('answers unknown routes 404 and wrong methods 405 in the error shape', async () => {
    await expectError(await fetch(`${relay.url}/nope`), 404, 'not_found');
    await expectError(await fetch(`${relay.url}/v1/mailbox/did:key:zX/other`), 404, 'not_found');
    await expectError(await fetch(`${relay.url}/v1/mailbox/did:key:zX`), 405, 'method_not_allowed');
    await expectError(await fetch(`${relay.url}/v1/mailbox/did:key:zX/receive`, { method: 'POST' }), 405, 'method_not_allowed');
    await expectError(await fetch(`${relay.url}/v1/mailbox/did:key:zX/ack`), 405, 'method_not_allowed');
    await expectError(await fetch(`${relay.url}/health`, { method: 'DELETE' }), 405, 'method_not_allowed');
    await expectError(await fetch(`${relay.url}/v1/mailbox/%E0%A4%A/receive`), 400, 'invalid_request');
  });

  it('validates receive limit and wait (400 invalid_request)', async () => {
    const bob = newPeer();
    for (const q of ['limit=0', 'limit=501', 'limit=abc', 'limit=1.5', 'wait=31', 'wait=-1', 'wait=x', 'limit=5&limit=6']) {
      const pathAndQuery = `${mailboxPath(bob.did)}/receive?${q}`;
      const auth = await signMailboxRequest({ method: 'GET', host: hostOf(relay.url), pathAndQuery, body: '' }, bob.signer);
      await expectError(await fetch(relay.url + pathAndQuery, { headers: { authorization: auth } }), 400, 'invalid_request');
    }
    expect((await signedReceive(relay.url, bob.did, bob.signer, { limit: 500, wait: 0 })).status).toBe(200);
  });

  it('validates ack bodies', async () => {
    const bob = newPeer();
    const post = async (body: string) => {
      const pathAndQuery = `${mailboxPath(bob.did)}/ack`;
      const auth = await signMailboxRequest({ method: 'POST', host: hostOf(relay.url), pathAndQuery, body }, bob.signer);
      return fetch(relay.url + pathAndQuery, {
        method: 'POST',
        headers: { authorization: auth, 'content-type': 'application/json' },
        body,
      });
    };
    for (const body of ['nope', '{}', '{"ids":"x"}', '{"ids":[1]}', JSON.stringify({ ids: Array.from({ length: 1001 }, () => 'a') })]) {
      await expectError(await post(body), 400, 'invalid_request');
    }
    expect(await (await post(JSON.stringify({ ids: Array.from({ length: 1000 }, () => 'a') }))).json()).toEqual({ removed: 0 });
  });

  describe('owner authentication (§6)', () => {
    it('refuses a missing header', async () => {
      const bob = newPeer();
      await expectError(await signedReceive(relay.url, bob.did, bob.signer, { auth: null }), 401, 'unauthorized');
      await expectError(await signedReceive(relay.url, bob.did, bob.signer, { auth: 'Bearer abc' }), 401, 'unauthorized');
    });

    it('refuses a signature by another key', async () => {
      const bob = newPeer();
      const mallory = newPeer();
      await expectError(await signedReceive(relay.url, bob.did, mallory.signer), 401, 'unauthorized');
      await expectError(await signedAck(relay.url, bob.did, mallory.signer, []), 401, 'unauthorized');
    });

    it('refuses a ts more than 120 s away', async () => {
      const bob = newPeer();
      await expectError(await signedReceive(relay.url, bob.did, bob.signer, { ts: Date.now() - 121_000 }), 401, 'unauthorized');
      await expectError(await signedReceive(relay.url, bob.did, bob.signer, { ts: Date.now() + 121_000 }), 401, 'unauthorized');
      expect((await signedReceive(relay.url, bob.did, bob.signer, { ts: Date.now() - 100_000 })).status).toBe(200);
    });

    it('refuses a replayed signature', async () => {
      const bob = newPeer();
      const pathAndQuery = `${mailboxPath(bob.did)}/receive`;
      const auth = await signMailboxRequest({ method: 'GET', host: hostOf(relay.url), pathAndQuery, body: '' }, bob.signer);
      expect((await fetch(relay.url + pathAndQuery, { headers: { authorization: auth } })).status).toBe(200);
      await expectError(await fetch(relay.url + pathAndQuery, { headers: { authorization: auth } }), 401, 'unauthorized');
    });

    it('refuses a signature over another host, path or body', async () => {
      const bob = newPeer();
      const pathAndQuery = `${mailboxPath(bob.did)}/receive?limit=5`;
      const otherHost = await signMailboxRequest({ method: 'GET', host: 'evil.example', pathAndQuery, body: '' }, bob.signer);
      await expectError(await fetch(relay.url + pathAndQuery, { headers: { authorization: otherHost } }), 401, 'unauthorized');
      const otherQuery = await signMailboxRequest(
        { method: 'GET', host: hostOf(relay.url), pathAndQuery: `${mailboxPath(bob.did)}/receive`, body: '' },
        bob.signer,
      );
      await expectError(await fetch(relay.url + pathAndQuery, { headers: { authorization: otherQuery } }), 401, 'unauthorized');
      const ackPath = `${mailboxPath(bob.did)}/ack`;
      const otherBody = await signMailboxRequest(
        { method: 'POST', host: hostOf(relay.url), pathAndQuery: ackPath, body: '{"ids":[]}' },
        bob.signer,
      );
      await expectError(
        await fetch(relay.url + ackPath, {
          method: 'POST',
          headers: { authorization: otherBody, 'content-type': 'application/json' },
          body: '{"ids":["x"]}',
        }),
        401,
        'unauthorized',
      );
    });

    it('answers 403 unverifiable_did for a mailbox that is not a did:key', async () => {
      const bob = newPeer();
      const label = 'did:sync:user:alice';
      await expectError(await signedReceive(relay.url, label, bob.signer), 403, 'unverifiable_did');
      await expectError(await signedAck(relay.url, label, bob.signer, []), 403, 'unverifiable_did');
    });
  });

  it('answers CORS preflight on every route', async () => {
    for (const path of ['/v1/mailbox/did:key:zX', '/v1/mailbox/did:key:zX/receive', '/v1/mailbox/did:key:zX/ack', '/health', '/metrics']) {
      const res = await fetch(relay.url + path, {
        method: 'OPTIONS',
        headers: {
          origin: 'https://peer.example',
          'access-control-request-method': 'POST',
          'access-control-request-headers': 'authorization, content-type',
        },
      });
      expect(res.status).toBe(204);
      expect(res.headers.get('access-control-allow-origin')).toBe('*');
      expect(res.headers.get('access-control-allow-methods')).toBe('GET, POST, PUT, DELETE, OPTIONS');
      expect(res.headers.get('access-control-allow-headers')).toBe('Authorization, Content-Type, X-Syncropel-Deposit-Token');
      expect(Number(res.headers.get('access-control-max-age'))).toBeGreaterThan(0);
    }
    const err = await fetch(`${relay.url}/nope`, { headers: { origin: 'https://peer.example' } });
    expect(err.headers.get('access-control-allow-origin')).toBe('*');
    expect(err.headers.get('access-control-expose-headers')).toContain('Retry-After');
  });

  it('long-poll: answers as soon as an envelope lands, with the envelope', async () => {
    const alice = newPeer();
    const bob = newPeer();
    const env = await sealedFor(alice, bob);
    const started = Date.now();
    const polling = signedReceive(relay.url, bob.did, bob.signer, { wait: 20 });
    // Deposit once the relay holds the waiting request.
    await waitFor(async () => metricValue(await metricsText(relay.url), 'relay_long_polls_waiting') === 1, 5000, 'the long-poll to wait');
    const depositedAt = Date.now();
    expect((await deposit(relay.url, bob.did, env)).status).toBe(202);
    const res = await polling;
    const elapsed = Date.now() - depositedAt;
    expect(res.status).toBe(200);
    expect(((await res.json()) as ReceiveBody).envelopes).toEqual([env]);
    expect(elapsed).toBeLessThan(2_000); // at once, far below the 20 s wait
    expect(Date.now() - started).toBeLessThan(10_000);
  });

  it('long-poll: times out with an empty list after wait', async () => {
    const bob = newPeer();
    const started = Date.now();
    const res = await signedReceive(relay.url, bob.did, bob.signer, { wait: 1 });
    const elapsed = Date.now() - started;
    expect(await res.json()).toEqual({ envelopes: [], remaining: 0 });
    expect(elapsed).toBeGreaterThanOrEqual(950);
    expect(elapsed).toBeLessThan(5_000);
  });

  it('exposes every metric by name, with plain DID labels by default', async () => {
    const alice = newPeer();
    const bob = newPeer();
    await deposit(relay.url, bob.did, await uniquePlain(alice, bob));
    const res = await fetch(`${relay.url}/metrics`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/plain/);
    const text = await res.text();
    for (const name of [
      'relay_deposits_total',
      'relay_receives_total',
      'relay_acks_total',
      'relay_rate_limit_hits_total{kind="queue_full"}',
      'relay_rate_limit_hits_total{kind="payload_too_large"}',
      'relay_rate_limit_hits_total{kind="rate_limited"}',
      'relay_envelopes_expired_total',
      `relay_queue_size{did="${bob.did}"} 1`,
      `relay_oldest_envelope_seconds{did="${bob.did}"}`,
      'relay_unique_senders',
      'relay_unique_receivers',
    ]) {
      expect(text).toContain(name);
    }
    expect(metricValue(text, 'relay_unique_senders ')).toBeGreaterThanOrEqual(1);
  });

  it('logs one JSON line per request without credentials or bodies', async () => {
    const bob = newPeer();
    const res = await signedReceive(relay.url, bob.did, bob.signer);
    await res.arrayBuffer();
    const line = await waitFor(() => relay.logs.find((l) => l.route === '/v1/mailbox/:did/receive' && l.status === 200));
    expect(line).toMatchObject({ method: 'GET', status: 200 });
    expect(typeof line.ms).toBe('number');
    const all = JSON.stringify(relay.logs);
    expect(all).not.toContain('Syncropel-Mailbox');
    expect(all).not.toContain('ciphertext');
    expect(all).not.toContain(bob.did); // shortened
  });
});

describe('relay limits and modes', () => {
  const started: RelayProcess[] = [];
  const start = async (args: string[]) => {
    const r = await startRelayProcess(args);
    started.push(r);
    return r;
  };
  afterAll(async () => {
    await Promise.all(started.map((r) => r.stop()));
  });

  it('answers 507 queue_full at the cap (--cap 3)', async () => {
    const relay = await start(['--cap', '3']);
    const alice = newPeer();
    const bob = newPeer();
    const envs = await Promise.all(Array.from({ length: 4 }, () => sealedFor(alice, bob)));
    for (const e of envs.slice(0, 3)) expect((await deposit(relay.url, bob.did, e)).status).toBe(202);
    await expectError(await deposit(relay.url, bob.did, envs[3]), 507, 'queue_full');
    expect((await deposit(relay.url, bob.did, envs[0])).status).toBe(202); // duplicate, even when full
    expect(metricValue(await metricsText(relay.url), 'relay_rate_limit_hits_total{kind="queue_full"}')).toBe(1);
  });

  it('--open-mailboxes: receive and ack trust the path alone', async () => {
    const relay = await start(['--open-mailboxes']);
    const alice = newPeer();
    const label = 'did:sync:user:bob';
    const env = { ...(await sealedFor(alice, newPeer())), to_did: label };
    expect((await deposit(relay.url, label, env)).status).toBe(202);
    const got = await fetch(`${relay.url}${mailboxPath(label)}/receive`);
    expect(got.status).toBe(200);
    expect(((await got.json()) as ReceiveBody).envelopes.map((e) => e.id)).toEqual([env.id]);
    const ack = await fetch(`${relay.url}${mailboxPath(label)}/ack`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ ids: [env.id] }),
    });
    expect(await ack.json()).toEqual({ removed: 1 });
  });

  it('expires envelopes after ttl_seconds (clamped into [min, max]) and counts them', async () => {
    const relay = await start(['--min-ttl', '1', '--max-ttl', '3600', '--default-ttl', '600', '--sweep-interval', '0.2']);
    const alice = newPeer();
    const bob = newPeer();
    const short = { ...(await sealedFor(alice, bob)), ttl_seconds: 1 };
    const long = { ...(await sealedFor(alice, bob)), ttl_seconds: 10 ** 9 };
    const { ttl_seconds: _t, ...noTtl } = await sealedFor(alice, bob);
    const t0 = Date.now();
    const s = (await (await deposit(relay.url, bob.did, short)).json()) as { expires_at: number };
    const l = (await (await deposit(relay.url, bob.did, long)).json()) as { expires_at: number };
    const n = (await (await deposit(relay.url, bob.did, noTtl)).json()) as { expires_at: number };
    expect(s.expires_at - t0).toBeGreaterThanOrEqual(900);
    expect(s.expires_at - t0).toBeLessThan(3_000);
    expect(l.expires_at - t0).toBeLessThanOrEqual(3_600_000 + 2_000); // clamped to --max-ttl
    expect(l.expires_at - t0).toBeGreaterThan(3_590_000);
    expect(n.expires_at - t0).toBeGreaterThan(590_000); // --default-ttl
    expect(n.expires_at - t0).toBeLessThanOrEqual(602_000);
    await waitFor(
      async () => {
        const got = (await (await signedReceive(relay.url, bob.did, bob.signer)).json()) as ReceiveBody;
        return !got.envelopes.some((e) => e.id === short.id);
      },
      10_000,
      'the short envelope to expire',
    );
    await waitFor(async () => (metricValue(await metricsText(relay.url), 'relay_envelopes_expired_total') ?? 0) >= 1, 10_000, 'the sweep');
    const left = (await (await signedReceive(relay.url, bob.did, bob.signer)).json()) as ReceiveBody;
    expect(left.envelopes.map((e) => e.id).sort()).toEqual([long.id, noTtl.id].sort());
  });

  it('clamps a too-small ttl_seconds up to --min-ttl', async () => {
    const relay = await start([]);
    const alice = newPeer();
    const bob = newPeer();
    const t0 = Date.now();
    const res = (await (await deposit(relay.url, bob.did, { ...(await sealedFor(alice, bob)), ttl_seconds: 1 })).json()) as {
      expires_at: number;
    };
    expect(res.expires_at - t0).toBeGreaterThanOrEqual(59_000);
    expect(res.expires_at - t0).toBeLessThan(62_000);
  });

  it('rate limits a client address (429 + Retry-After)', async () => {
    const relay = await start(['--rate-limit-per-client', '0.5:2']);
    const bob = newPeer();
    const alice = newPeer();
    const statuses: number[] = [];
    let limited: Response | undefined;
    for (let i = 0; i < 3; i++) {
      const res = await deposit(relay.url, bob.did, await sealedFor(alice, bob));
      statuses.push(res.status);
      if (res.status === 429) limited = res;
      else await res.arrayBuffer();
    }
    expect(statuses).toEqual([202, 202, 429]);
    expect(Number(limited!.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    await expectError(limited!, 429, 'rate_limited');
    expect((await fetch(`${relay.url}/health`)).status).toBe(200); // health and metrics are not limited
    expect(metricValue(await metricsText(relay.url), 'relay_rate_limit_hits_total{kind="rate_limited"}')).toBe(1);
  });

  it('rate limits a sender DID of plain envelopes', async () => {
    const relay = await start(['--rate-limit-per-sender', '0.1:1']);
    const alice = newPeer();
    const bob = newPeer();
    const carol = newPeer();
    expect((await deposit(relay.url, bob.did, await uniquePlain(alice, bob, 1))).status).toBe(202);
    const res = await deposit(relay.url, carol.did, await uniquePlain(alice, carol, 2));
    expect(res.headers.get('retry-after')).toBe('10');
    await expectError(res, 429, 'rate_limited');
    expect((await deposit(relay.url, bob.did, await uniquePlain(carol, bob, 1))).status).toBe(202); // another sender
    expect((await deposit(relay.url, bob.did, await sealedFor(alice, bob))).status).toBe(202); // sealed hides the sender
  });

  it('--metrics-did-labels hash and off', async () => {
    const [hashed, off] = await Promise.all([start(['--metrics-did-labels', 'hash']), start(['--metrics-did-labels', 'off'])]);
    const alice = newPeer();
    const bob = newPeer();
    for (const r of [hashed, off]) expect((await deposit(r.url, bob.did, await sealedFor(alice, bob))).status).toBe(202);
    const h = await metricsText(hashed.url);
    expect(h).not.toContain(bob.did);
    expect(h).toMatch(/relay_queue_size\{did="[0-9a-f]{16}"\} 1/);
    expect(h).toMatch(/relay_oldest_envelope_seconds\{did="[0-9a-f]{16}"\}/);
    const o = await metricsText(off.url);
    expect(o).not.toContain(bob.did);
    expect(o).not.toContain('relay_queue_size');
    expect(o).not.toContain('relay_oldest_envelope_seconds');
    expect(o).toContain('relay_unique_receivers 1');
    await waitFor(() =>
      hashed.logs.some((l) => l.route === '/v1/mailbox/:did' && typeof l.did === 'string' && /^[0-9a-f]{16}$/.test(l.did)),
    );
  });

  it('exits 2 with a clear message on invalid options', async () => {
    await expect(startRelayProcess(['--cap', 'lots'])).rejects.toThrow(/exited \(2\).*--cap/s);
    await expect(startRelayProcess(['--min-ttl', '100', '--default-ttl', '50'])).rejects.toThrow(/exited \(2\).*--default-ttl/s);
    await expect(startRelayProcess(['--metrics-did-labels', 'maybe'])).rejects.toThrow(/exited \(2\)/);
    const cases = [
      ['--headers-timeout', '0', /--headers-timeout/],
      ['--body-timeout', 'soon', /--body-timeout/],
      ['--idle-timeout', '-1', /--idle-timeout/],
      ['--max-connections', '0', /--max-connections must/],
      ['--max-connections-per-client', 'x', /--max-connections-per-client/],
      ['--unsolicited-envelopes', '1.5', /--unsolicited-envelopes/],
      ['--unsolicited-bytes', '-3', /--unsolicited-bytes/],
      ['--max-db-bytes', '1e9', /--max-db-bytes/],
      ['--min-free-disk-bytes', 'lots', /--min-free-disk-bytes/],
      ['--metrics-top-queues', '100000', /--metrics-top-queues/],
      ['--metrics-listen', 'nowhere', /--metrics-listen must be host:port/],
      ['--origin', 'a b', /--origin must be host\[:port\]/],
    ] as const;
    const runs = await Promise.all(cases.map(([flag, value]) => runRelayToExit(['--port', '0', '--db', ':memory:', flag, value])));
    for (const [i, [flag, value, message]] of cases.entries()) {
      expect(runs[i]!.code, `${flag} ${value}`).toBe(2);
      expect(runs[i]!.stderr, `${flag} ${value}`).toMatch(message);
    }
  });

  it('--help lists every option', async () => {
    const { stdout, code } = await runRelayToExit(['--help']);
    expect(code).toBe(0);
    for (const flag of [
      '--host',
      '--port',
      '--db',
      '--origin',
      '--cap',
      '--unsolicited-envelopes',
      '--unsolicited-bytes',
      '--max-ttl',
      '--default-ttl',
      '--min-ttl',
      '--max-body',
      '--rate-limit-per-client',
      '--rate-limit-per-sender',
      '--no-rate-limit',
      '--headers-timeout',
      '--body-timeout',
      '--idle-timeout',
      '--max-connections',
      '--max-connections-per-client',
      '--max-db-bytes',
      '--min-free-disk-bytes',
      '--sweep-interval',
      '--open-mailboxes',
      '--metrics-did-labels',
      '--metrics-top-queues',
      '--metrics-listen',
      '--metrics-secret-file',
      '--log-level',
      '--trust-proxy',
    ]) {
      expect(stdout).toContain(flag);
    }
  });
});

describe('graceful shutdown', () => {
  it('answers a pending long-poll at once on SIGTERM and exits 0', async () => {
    const relay = await startRelayProcess([]);
    const bob = newPeer();
    const started = Date.now();
    const polling = signedReceive(relay.url, bob.did, bob.signer, { wait: 30 });
    await waitFor(async () => metricValue(await metricsText(relay.url), 'relay_long_polls_waiting') === 1, 5000, 'the long-poll to wait');
    const stopping = Date.now();
    expect(await relay.stop()).toBe(0);
    const res = await polling;
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ envelopes: [], remaining: 0 });
    expect(Date.now() - stopping).toBeLessThan(5_000); // at once, not after the 30 s wait
    expect(Date.now() - started).toBeLessThan(10_000);
  });
});
