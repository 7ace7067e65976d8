/**
 * Deposit tokens (PROTOCOL.md §5.1) against a real relay process with raw HTTP clients: a stranger
 * flooding a mailbox with sealed junk fills only the unsolicited quota; the owner's paired peers
 * (holding a token) still deposit, and a tokenless pairing reply gets in while there is room.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newPeer } from '../../support/fixtures';
import {
  deposit,
  junkSealed,
  signedAck,
  signedPutTokens,
  signedReceive,
  startRelayProcess,
  type RelayProcess,
} from '../../support/relay-process';

const FLOOD = 2000;
const CONCURRENCY = 50;
const token = (bytes = 32): string => randomBytes(bytes).toString('base64url');
const TOKEN_HEADER = 'x-syncropel-deposit-token';

interface ErrorBody {
  error: { code: string; message: string };
}

let relay: RelayProcess;
beforeAll(async () => {
  relay = await startRelayProcess(['--no-rate-limit']);
});
afterAll(async () => {
  expect(await relay.stop()).toBe(0);
});

async function receiveAll(did: string, signer: Parameters<typeof signedReceive>[2]): Promise<string[]> {
  const res = await signedReceive(relay.url, did, signer, { limit: 500 });
  expect(res.status).toBe(200);
  return ((await res.json()) as { envelopes: { id: string }[] }).envelopes.map((e) => e.id);
}

describe('deposit tokens (§5.1)', () => {
  it('a tokenless flood cannot stop a paired peer; a pairing reply gets in under the quota; the flood gets 429 unsolicited_quota', async () => {
    const bob = newPeer();
    const pairToken = token();
    const put = await signedPutTokens(relay.url, bob.did, bob.signer, [pairToken]);
    expect(put.status).toBe(200);
    expect(await put.json()).toEqual({ count: 1 });

    // A pairing reply travels without a token (§9): under the quota, it is queued.
    const reply = junkSealed(bob.did);
    expect((await deposit(relay.url, bob.did, reply)).status).toBe(202);

    // The flood: thousands of sealed junk envelopes, no token, 50 at a time.
    const statuses = new Map<number, number>();
    const codes = new Set<string>();
    for (let i = 0; i < FLOOD; i += CONCURRENCY) {
      await Promise.all(
        Array.from({ length: CONCURRENCY }, async () => {
          const res = await deposit(relay.url, bob.did, junkSealed(bob.did), { [TOKEN_HEADER]: i % 100 === 0 ? token() : '' }); // some with an unknown token
          statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
          if (res.status === 429) codes.add(((await res.json()) as ErrorBody).error.code);
          else await res.arrayBuffer();
        }),
      );
    }
    expect(statuses.get(202)).toBe(99); // the quota (100) less the pairing reply
    expect(statuses.get(429)).toBe(FLOOD - 99);
    expect([...codes]).toEqual(['unsolicited_quota']);

    // The paired peer deposits with its token: admitted against the cap, not the quota.
    const fromPeer = junkSealed(bob.did);
    expect((await deposit(relay.url, bob.did, fromPeer, { [TOKEN_HEADER]: pairToken })).status).toBe(202);
    // A re-deposit of a queued ID is a duplicate, token or not.
    const dup = await deposit(relay.url, bob.did, reply);
    expect(dup.status).toBe(202);
    expect(((await dup.json()) as { duplicate: boolean }).duplicate).toBe(true);

    const ids = await receiveAll(bob.did, bob.signer);
    expect(ids).toHaveLength(101);
    expect(ids).toContain(reply.id as string);
    expect(ids).toContain(fromPeer.id as string);

    // Draining unsolicited mail makes room again.
    expect((await signedAck(relay.url, bob.did, bob.signer, [reply.id as string])).status).toBe(200);
    expect((await deposit(relay.url, bob.did, junkSealed(bob.did))).status).toBe(202);
    const metrics = await (await fetch(`${relay.url}/metrics`)).text();
    expect(metrics).toMatch(new RegExp(`relay_rate_limit_hits_total\\{kind="unsolicited_quota"\\} ${FLOOD - 99}\\b`));
  });

  it('a mailbox without tokens takes every deposit against its cap', async () => {
    const carol = newPeer();
    for (let i = 0; i < 150; i += 50) {
      const res = await Promise.all(Array.from({ length: 50 }, () => deposit(relay.url, carol.did, junkSealed(carol.did))));
      expect(res.map((r) => r.status)).toEqual(Array.from({ length: 50 }, () => 202));
    }
  });

  it('replacing the token set retires the old token; an empty set lifts the quota', async () => {
    const dave = newPeer();
    const first = token(16);
    const second = token(24);
    expect(await (await signedPutTokens(relay.url, dave.did, dave.signer, [first, second, first])).json()).toEqual({ count: 2 });
    expect((await deposit(relay.url, dave.did, junkSealed(dave.did), { [TOKEN_HEADER]: first })).status).toBe(202);
    expect(await (await signedPutTokens(relay.url, dave.did, dave.signer, [second])).json()).toEqual({ count: 1 });
    // With a quota of 100: fill it using the retired token, which is now unknown.
    const retired = await Promise.all(
      Array.from({ length: 101 }, () => deposit(relay.url, dave.did, junkSealed(dave.did), { [TOKEN_HEADER]: first })),
    );
    expect(retired.filter((r) => r.status === 202)).toHaveLength(100);
    expect(retired.filter((r) => r.status === 429)).toHaveLength(1);
    expect((await deposit(relay.url, dave.did, junkSealed(dave.did), { [TOKEN_HEADER]: second })).status).toBe(202);
    expect(await (await signedPutTokens(relay.url, dave.did, dave.signer, [])).json()).toEqual({ count: 0 });
    expect((await deposit(relay.url, dave.did, junkSealed(dave.did))).status).toBe(202);
  });

  it('refuses malformed token lists (400 invalid_request) and anyone but the owner (401)', async () => {
    const erin = newPeer();
    const mallory = newPeer();
    const bad: string[] = [
      'nope',
      '{}',
      '{"tokens":"abc"}',
      JSON.stringify({ tokens: [token(15)] }), // too short
      JSON.stringify({ tokens: [token(33)] }), // too long
      JSON.stringify({ tokens: [`${token(16)}=`] }), // padded
      JSON.stringify({ tokens: ['!!!!!!!!!!!!!!!!!!!!!!!!'] }),
      JSON.stringify({ tokens: [1] }),
      JSON.stringify({ tokens: Array.from({ length: 101 }, () => token()) }),
      `{"tokens":["${token()}"],"tokens":[]}`, // duplicated key
    ];
    for (const body of bad) {
      const res = await signedPutTokens(relay.url, erin.did, erin.signer, body);
      expect(res.status, body).toBe(400);
      expect(((await res.json()) as ErrorBody).error.code).toBe('invalid_request');
    }
    expect(
      (
        await signedPutTokens(
          relay.url,
          erin.did,
          erin.signer,
          Array.from({ length: 100 }, () => token()),
        )
      ).status,
    ).toBe(200);
    const stranger = await signedPutTokens(relay.url, erin.did, mallory.signer, [token()]);
    expect(stranger.status).toBe(401);
    const unsigned = await fetch(`${relay.url}/v1/mailbox/${encodeURIComponent(erin.did)}/tokens`, {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ tokens: [token()] }),
    });
    expect(unsigned.status).toBe(401);
  });

  it('never logs a token', async () => {
    const frank = newPeer();
    const secret = token();
    expect((await signedPutTokens(relay.url, frank.did, frank.signer, [secret])).status).toBe(200);
    expect((await deposit(relay.url, frank.did, junkSealed(frank.did), { [TOKEN_HEADER]: secret })).status).toBe(202);
    await fetch(`${relay.url}/health`); // a later request, so the lines above are flushed
    expect(JSON.stringify(relay.logs)).not.toContain(secret);
  });
});
