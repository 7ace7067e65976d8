import { Buffer } from 'node:buffer';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
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
        if (bytes)
          expect(toB64u(bytes)).toBe(text); // one value, one encoding
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

describe('base64url through the platform decoder (Uint8Array.fromBase64, where present)', () => {
  type Ctor = { fromBase64?: unknown };
  let decode: typeof fromB64u;
  let nativeCalls = 0;
  // Node 20 has no Uint8Array.fromBase64: stand one in with the proposal's "loose" behaviour for
  // what reaches it (whitespace and padding are accepted, trailing bits ignored), then load the
  // module afresh so it picks the stand-in up.
  beforeAll(async () => {
    (Uint8Array as Ctor).fromBase64 = (text: string) => {
      nativeCalls++;
      return new Uint8Array(Buffer.from(text.replace(/[\s=]/g, ''), 'base64url'));
    };
    vi.resetModules();
    decode = (await import('../../src/core/bytes')).fromB64u;
  });
  afterAll(() => {
    delete (Uint8Array as Ctor).fromBase64;
    vi.resetModules();
  });

  it('decodes long strings exactly as the JS decoder does, and refuses the same ones', () => {
    const long = (n: number) => fc.uint8Array({ minLength: n, maxLength: n + 400 });
    fc.assert(
      fc.property(long(600), (bytes) => {
        expect(decode(toB64u(bytes))).toEqual(bytes);
      }),
      { numRuns: 200 },
    );
    expect(nativeCalls).toBeGreaterThanOrEqual(200); // the platform decoder did the work
    const text = toB64u(new Uint8Array(700).fill(7));
    for (const bad of [
      `${text}AAA`,
      `${text.slice(0, -1)}B`,
      `${text.slice(0, 400)} ${text.slice(400)}`,
      `${text}==`,
      `${text.slice(0, 10)}+${text.slice(11)}`,
    ]) {
      expect(bad.length).toBeGreaterThanOrEqual(512);
      expect(decode(bad), bad.slice(-8)).toBeUndefined();
      expect(fromB64u(bad)).toBeUndefined();
    }
  });
});
