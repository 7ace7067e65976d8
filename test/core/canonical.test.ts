import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CanonicalJsonError, canonicalize, parseRecord } from '../../src/core';
import { note } from '../../support/fixtures';

describe('canonical JSON (RFC 8785)', () => {
  it('round-trips: parsing the canonical text and canonicalising again gives the same text', () => {
    fc.assert(
      fc.property(fc.jsonValue(), (v) => {
        const text = canonicalize(v);
        expect(canonicalize(JSON.parse(text))).toBe(text);
      }),
      { numRuns: 500 },
    );
  });

  it('is independent of key order and whitespace', () => {
    fc.assert(
      fc.property(fc.dictionary(fc.string(), fc.jsonValue({ maxDepth: 2 })), (obj) => {
        const reversed = Object.fromEntries(Object.entries(obj).reverse());
        expect(canonicalize(reversed)).toBe(canonicalize(obj));
        expect(canonicalize(JSON.parse(JSON.stringify(obj, null, 2)))).toBe(canonicalize(obj));
      }),
      { numRuns: 300 },
    );
  });

  it('sorts keys by UTF-16 code units, not code points', () => {
    // U+FB01 (one unit, 0xFB01) sorts after U+1F600 (surrogates 0xD83D…) in UTF-16 order.
    expect(canonicalize({ '\uFB01': 1, '\u{1F600}': 2 })).toBe('{"\u{1F600}":2,"\uFB01":1}');
  });

  it('writes numbers in ECMAScript shortest form', () => {
    expect(canonicalize([1e21, 1e-7, -0, 0.1 + 0.2, 333333333.3333333])).toBe('[1e+21,1e-7,0,0.30000000000000004,333333333.3333333]');
  });

  it.each([
    [NaN, 'non_finite_number'],
    [Infinity, 'non_finite_number'],
    ['a\uD800b', 'lone_surrogate'],
    [{ ['\uDC00']: 1 }, 'lone_surrogate'],
    [10n, 'unsupported_value'],
    [new Date(0), 'unsupported_value'],
  ])('rejects %s with a typed error', (value, code) => {
    try {
      canonicalize(value);
      expect.unreachable('canonicalize should have thrown');
    } catch (e) {
      expect(e).toBeInstanceOf(CanonicalJsonError);
      expect((e as CanonicalJsonError).code).toBe(code);
    }
  });

  it('bounds nesting depth instead of overflowing the stack', () => {
    let deep: unknown = 1;
    for (let i = 0; i < 10_000; i++) deep = [deep];
    expect(() => canonicalize(deep)).toThrow(CanonicalJsonError);
  });

  it('rejects integers beyond ±(2^53-1) in records', () => {
    const r = { ...note('did:sync:user:alice', 'x'), body: { n: 2 ** 53 } };
    const parsed = parseRecord(r);
    expect(parsed.ok).toBe(false);
    if (!parsed.ok) expect(parsed.error.message).toContain('2^53');
    expect(parseRecord({ ...r, body: { n: 2 ** 53 - 1 } }).ok).toBe(true);
  });
});
