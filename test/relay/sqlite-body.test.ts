/** Packed envelope bodies (src/relay/storage/sqlite-body.ts): every text comes back exactly as it went in. */
import { randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { packBody, unpackBody } from '../../src/relay/storage/sqlite-body';

const sealedText = (ciphertext: string, pad = ''): string =>
  `{"v":1,"id":"${'a'.repeat(64)}",${pad}"to_did":"did:key:z6Mk","encoding":"sealed","epk":"x","nonce":"y","ciphertext":"${ciphertext}"${pad}}`;

describe('packed envelope bodies', () => {
  it('packs a canonical base64url ciphertext into fewer bytes and unpacks the identical text', () => {
    const text = sealedText(randomBytes(700).toString('base64url'), ' \n\t');
    const packed = packBody(text);
    expect(Buffer.isBuffer(packed)).toBe(true);
    expect((packed as Buffer).length).toBeLessThan(Buffer.byteLength(text) - 200);
    expect(unpackBody(packed)).toBe(text);
  });

  it('keeps as text what would not come back exactly: padding, +/, escapes, whitespace, non-canonical tail bits, short values, no ciphertext', () => {
    const b64 = randomBytes(100).toString('base64url');
    for (const ct of [
      `${randomBytes(100).toString('base64')}==`,
      b64.replace(/./, '+'),
      `\\u0041${b64}`,
      `${b64.slice(0, 40)} ${b64.slice(40)}`,
      `${b64.slice(0, -1)}B`,
      'QUJD',
    ]) {
      const text = sealedText(ct);
      if (ct === `${b64.slice(0, -1)}B` && Buffer.from(ct, 'base64url').toString('base64url') === ct) continue; // happened to be canonical
      expect(packBody(text)).toBe(text);
    }
    const lone = sealedText(b64).replace('"v":1', '"v":"\ud800"');
    expect(packBody(lone)).toBe(lone);
    expect(packBody(sealedText(b64).replace('"v":1', '"v":"\ud83d\ude00"'))).toBeInstanceOf(Buffer); // a pair is fine
    const plain = '{"v":1,"encoding":"plain","records":[]}';
    expect(packBody(plain)).toBe(plain);
    expect(packBody('{"ciphertext":"unterminated')).toBe('{"ciphertext":"unterminated');
  });

  it('round-trips any text, with or without a ciphertext-shaped span (fast-check)', () => {
    const b64 = fc.uint8Array({ minLength: 0, maxLength: 400 }).map((b) => Buffer.from(b).toString('base64url'));
    const text = fc.oneof(
      fc.string({ unit: 'binary', maxLength: 300 }),
      fc
        .tuple(fc.string({ unit: 'binary', maxLength: 40 }), b64, fc.string({ unit: 'binary', maxLength: 40 }))
        .map(([a, c, z]) => `${a}"ciphertext":"${c}"${z}`),
      fc.tuple(b64, fc.string({ unit: 'binary', maxLength: 10 }), b64).map(([c, mid, d]) => sealedText(c + mid + d, mid)),
    );
    fc.assert(
      fc.property(text, (t) => {
        expect(unpackBody(packBody(t))).toBe(t);
      }),
      { numRuns: 2000 },
    );
  });

  it('refuses a stored BLOB of an unknown format or cut short, naming the problem', () => {
    expect(() => unpackBody(Buffer.from([7, 0, 0, 0, 0, 0, 0, 0, 0]))).toThrow(/unknown format \(7\)/);
    const packed = packBody(sealedText(randomBytes(300).toString('base64url'))) as Buffer;
    expect(() => unpackBody(packed.subarray(0, 40))).toThrow(/truncated/);
  });
});
