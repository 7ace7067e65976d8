import { Buffer } from 'node:buffer';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { fromB64u, toB64u } from '../../src/core';

// Node's decoder is the reference for what the bytes are; ours must also refuse what is not canonical.
const nodeB64u = (b: Uint8Array) => Buffer.from(b).toString('base64url');
const B64U = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

describe('base64url (RFC 4648 §5, unpadded, canonical)', () => {
  it('encodes as Node does and decodes back to the same bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
        const text = toB64u(bytes);
        expect(text).toBe(nodeB64u(bytes));
        expect(fromB64u(text)).toEqual(bytes);
      }),
      { numRuns: 1000 },
    );
  });

  it('decodes any string either to the bytes that encode back to it, or not at all', () => {
    const alphabetish = fc.string({ unit: fc.constantFrom(...B64U, '=', ' ', '+', '/', '\u00e9', '\u{1F600}'), maxLength: 40 });
    fc.assert(
      fc.property(fc.oneof(alphabetish, fc.string({ maxLength: 40 })), (text) => {
        const bytes = fromB64u(text);
        if (bytes) expect(toB64u(bytes)).toBe(text); // one value, one encoding
        else expect(text.length % 4 === 1 || /[^A-Za-z0-9_-]/.test(text) || nodeB64u(Buffer.from(text, 'base64url')) !== text).toBe(true);
      }),
      { numRuns: 3000 },
    );
  });

  it.each([
    ['A', 'a length of 4n+1'],
    ['AB', 'non-zero trailing bits (2 chars)'],
    ['AAB', 'non-zero trailing bits (3 chars)'],
    ['AA==', 'padding'],
    ['AA AA', 'whitespace'],
    ['AA+/', 'the standard alphabet'],
    ['AA\u00c0A', 'a non-ASCII character'],
  ])('refuses %j (%s)', (text) => {
    expect(fromB64u(text)).toBeUndefined();
  });
});
