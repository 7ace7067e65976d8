/**
 * The deposit edge's shortcuts agree with the reference code they stand in for: the text check of
 * a sealed ciphertext with core's strict decoder, `parseDepositedEnvelope` with `parseEnvelope`
 * (result and error message), and the request-log sampler keeps every error line.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { fromB64u, parseEnvelope, publicKeyFromDid, setKeyCacheSize, toB64u } from '../../src/core';
import { isStrictB64uOfAtLeast, parseDepositedEnvelope } from '../../src/relay/envelope-check';
import { RequestLogSampler } from '../../src/relay/request-log';
import { newPeer } from '../../support/fixtures';

const b64uChars = fc.constantFrom(...'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_=+/ .'.split(''));
/** Mostly base64url text of varied lengths, some with a stray character or padding. */
const b64uLike = fc.oneof(
  fc.uint8Array({ maxLength: 64 }).map((b) => toB64u(b)),
  fc.array(b64uChars, { maxLength: 40 }).map((c) => c.join('')),
  fc.tuple(fc.uint8Array({ minLength: 10, maxLength: 40 }), fc.nat(60), b64uChars).map(([b, i, c]) => {
    const s = toB64u(b);
    const at = i % (s.length + 1);
    return s.slice(0, at) + c + s.slice(at + 1);
  }),
);

describe('sealed ciphertext checked without decoding', () => {
  it('isStrictB64uOfAtLeast(s, n) is exactly "fromB64u(s) decodes to at least n bytes"', () => {
    fc.assert(
      fc.property(b64uLike, fc.integer({ min: 0, max: 40 }), (s, n) => {
        expect(isStrictB64uOfAtLeast(s, n)).toBe((fromB64u(s)?.length ?? -1) >= n);
      }),
      { numRuns: 3000 },
    );
  });

  it('parseDepositedEnvelope answers as parseEnvelope does, error messages included', () => {
    const base = {
      v: 1,
      id: 'a'.repeat(64),
      to_did: 'did:key:z6MkExample',
      encoding: 'sealed',
      ttl_seconds: 60,
      epk: toB64u(new Uint8Array(32)),
      nonce: toB64u(new Uint8Array(24)),
    };
    const field = fc.oneof(b64uLike, fc.constant(undefined), fc.integer(), fc.constant(null));
    fc.assert(
      fc.property(
        b64uLike,
        field,
        fc.constantFrom('sealed', 'plain', 'other'),
        fc.constantFrom(1, 2),
        field,
        (ciphertext, epk, encoding, v, nonce) => {
          const input = {
            ...base,
            ciphertext,
            encoding,
            v,
            ...(epk === undefined ? {} : { epk }),
            ...(nonce === undefined ? {} : { nonce }),
          };
          expect(parseDepositedEnvelope(input)).toEqual(parseEnvelope(input));
        },
      ),
      { numRuns: 2000 },
    );
  });
});

describe('request-log sampling', () => {
  it('logs everything while quiet; under load one success in 50, and every status ≥ 400', () => {
    const sampler = new RequestLogSampler(200, 50);
    // Quiet second: 100 requests, all logged.
    expect(Array.from({ length: 100 }, (_, i) => sampler.admit(202, i)).every((s) => s === 1)).toBe(true);
    // A loaded second (1000 requests)…
    for (let i = 0; i < 1000; i++) sampler.admit(202, 1000 + i / 2);
    // …so the next second samples successes and keeps every error.
    const next = Array.from({ length: 1000 }, (_, i) => sampler.admit(i % 10 === 0 ? 507 : 202, 2000 + i / 2));
    expect(next.filter((_, i) => i % 10 === 0).every((s) => s === 1)).toBe(true);
    const successes = next.filter((_, i) => i % 10 !== 0);
    expect(successes.filter((s) => s === 50)).toHaveLength(Math.floor(900 / 50));
    expect(successes.filter((s) => s !== 0 && s !== 50)).toHaveLength(0);
    // After an idle gap, everything is logged again.
    expect(sampler.admit(202, 10_000)).toBe(1);
  });
});

describe('DID keys remembered (core cache, sized by the relay)', () => {
  it('answers the same after eviction, refuses a size that is not a positive integer', () => {
    const peers = Array.from({ length: 5 }, newPeer);
    try {
      setKeyCacheSize(3);
      const first = peers.map((p) => publicKeyFromDid(p.did));
      // Evicted answers are decoded again, to the same key.
      expect(peers.map((p) => publicKeyFromDid(p.did))).toEqual(first);
      for (const [i, p] of peers.entries()) expect(first[i]).toEqual({ ok: true, value: p.signer.publicKey });
      const bad = 'did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doX'; // one character changed: not a valid key
      expect(publicKeyFromDid(bad).ok).toBe(false);
      expect(publicKeyFromDid(bad)).toEqual(publicKeyFromDid(bad));
      for (const size of [0, -1, 1.5, Number.NaN]) expect(() => setKeyCacheSize(size), String(size)).toThrow(RangeError);
    } finally {
      setKeyCacheSize(1024);
    }
  });
});
