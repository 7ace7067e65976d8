import { x25519 } from '@noble/curves/ed25519.js';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { fromHex, toHex } from '../../src/core';
import { x25519SharedSecret } from '../../src/core/x25519';

describe('X25519 key agreement (RFC 7748)', () => {
  it('gives the RFC 7748 §6.1 shared secret', async () => {
    const alice = fromHex('77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a')!;
    const bobPublic = fromHex('de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f')!;
    expect(toHex(await x25519SharedSecret(alice, bobPublic))).toBe('4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742');
  });

  it('agrees with @noble/curves on random keys, with one secret reused as a receiver does', async () => {
    const mine = x25519.utils.randomSecretKey();
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ minLength: 32, maxLength: 32 }), fc.boolean(), async (other, reuse) => {
        const secret = reuse ? mine : other;
        const pub = x25519.getPublicKey(reuse ? other : mine);
        expect(toHex(await x25519SharedSecret(secret, pub))).toBe(toHex(x25519.getSharedSecret(secret, pub)));
      }),
      { numRuns: 50 },
    );
  });

  it('refuses a low-order public key instead of agreeing on zero', async () => {
    await expect(x25519SharedSecret(x25519.utils.randomSecretKey(), new Uint8Array(32))).rejects.toThrow();
  });
});
