/**
 * PROTOCOL.md §2: the WebCrypto and the @noble/curves backends give the same answer on every
 * input, in particular on the classes where Ed25519 implementations are known to differ
 * (torsion in R or A, small-order and non-canonical encodings, S ≥ L). Where §2 fixes the
 * answer for a mutation, that answer is asserted too.
 */
import { ed25519, ED25519_TORSION_SUBGROUP } from '@noble/curves/ed25519.js';
import { bytesToNumberLE, numberToBytesLE } from '@noble/curves/utils.js';
import { sha512 } from '@noble/hashes/sha2.js';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { concatBytes, createSigner, fromHex, verifyWith } from '../../src/core';

const Point = ed25519.Point;
const Fn = Point.Fn;
const L = Point.CURVE().n;
const P = Point.CURVE().p;
const TORSION = ED25519_TORSION_SUBGROUP.map((h) => fromHex(h)!);
const IDENTITY = TORSION[0]!;

/** Small-order points in encodings §2 calls non-canonical: y + p where that fits, x = 0 with the sign bit. */
const NON_CANONICAL: Uint8Array[] = [
  ...TORSION.map((t) => bytesToNumberLE(t) & ((1n << 255n) - 1n))
    .filter((y) => y + P < 1n << 255n)
    .flatMap((y) => [numberToBytesLE(y + P, 32), numberToBytesLE(y + P + (1n << 255n), 32)]),
  numberToBytesLE(1n + (1n << 255n), 32), // (0, 1) with the sign bit
  numberToBytesLE(P - 1n + (1n << 255n), 32), // (0, −1) with the sign bit
  // an ordinary key's y + p would not fit in 255 bits; these are y ≥ p with no point behind
  ...Array.from({ length: 19 }, (_, i) => numberToBytesLE(P + BigInt(i), 32)),
];

interface Author {
  readonly seed: Uint8Array;
  readonly a: bigint; // secret scalar (RFC 8032 §5.1.5)
  readonly A: Uint8Array;
  readonly sign: (m: Uint8Array) => Promise<Uint8Array>;
}

function author(i: number): Author {
  const seed = sha512(Uint8Array.of(i)).slice(0, 32);
  const head = sha512(seed).slice(0, 32);
  head[0]! &= 248;
  head[31]! &= 127;
  head[31]! |= 64;
  const signer = createSigner(seed);
  return { seed, a: Fn.create(bytesToNumberLE(head)), A: signer.publicKey, sign: (m) => signer.sign(m) };
}
const AUTHORS = Array.from({ length: 4 }, (_, i) => author(i));

const challenge = (R: Uint8Array, A: Uint8Array, M: Uint8Array): bigint => Fn.create(bytesToNumberLE(sha512(concatBytes(R, A, M))));
const S_of = (sig: Uint8Array): bigint => bytesToNumberLE(sig.subarray(32));
const withS = (sig: Uint8Array, S: bigint): Uint8Array => concatBytes(sig.subarray(0, 32), numberToBytesLE(S, 32));

interface Case {
  readonly sig: Uint8Array;
  readonly msg: Uint8Array;
  readonly key: Uint8Array;
  /** What §2 says, where the mutation decides it. */
  readonly expected?: boolean | undefined;
}

type Mutation = (base: Case, who: Author) => Case;
interface Named {
  readonly name: string;
  readonly apply: Mutation;
}
/** A mutation that fast-check reports by its name in a counterexample. */
const named = (name: string, apply: Mutation): Named => Object.assign({ name, apply }, { [fc.toStringMethod]: () => name });

const flipBit =
  (where: 'sig' | 'key' | 'msg', bit: number): Mutation =>
  (c) => {
    const target = c[where];
    if (target.length === 0) return c;
    const copy = target.slice();
    const i = bit % (copy.length * 8);
    copy[i >> 3]! ^= 1 << (i & 7);
    return { ...c, [where]: copy, expected: false };
  };

const mutations: fc.Arbitrary<Named> = fc.oneof(
  fc.constant(named('none', (c) => ({ ...c, expected: true }))),
  fc
    .tuple(fc.constantFrom<'sig' | 'key' | 'msg'>('sig', 'key', 'msg'), fc.nat())
    .map(([where, bit]) => named(`flip ${where} bit ${bit}`, flipBit(where, bit))),
  // S + k·L: the same S modulo L, in an encoding that still fits 32 bytes (k ≤ 15).
  fc.integer({ min: 1, max: 15 }).map((k) =>
    named(`S + ${k}·L`, (c) => {
      const S = S_of(c.sig) + BigInt(k) * L;
      return S < 1n << 256n ? { ...c, sig: withS(c.sig, S), expected: false } : c;
    }),
  ),
  // R replaced by a small-order point (canonical or not); S kept or zeroed.
  fc.tuple(fc.constantFrom(...TORSION, ...NON_CANONICAL), fc.boolean()).map(([R, zeroS]) =>
    named(`R = small-order ${Buffer.from(R).toString('hex').slice(0, 8)}…${zeroS ? ', S = 0' : ''}`, (c) => ({
      ...c,
      sig: concatBytes(R, zeroS ? new Uint8Array(32) : c.sig.subarray(32)),
      expected: false,
    })),
  ),
  // R + T for a torsion point T, S refitted to the new R: a cofactored verifier accepts this.
  fc.integer({ min: 1, max: 7 }).map((t) =>
    named(`R + torsion point ${t}, S refitted`, (c, who) => {
      const R = Point.fromBytes(c.sig.subarray(0, 32));
      const r = Fn.sub(S_of(c.sig), Fn.mul(challenge(c.sig.subarray(0, 32), c.key, c.msg), who.a));
      const R2 = R.add(Point.fromBytes(TORSION[t]!)).toBytes();
      const S2 = Fn.add(r, Fn.mul(challenge(R2, c.key, c.msg), who.a));
      return { ...c, sig: concatBytes(R2, numberToBytesLE(S2, 32)), expected: false };
    }),
  ),
  // R = identity, S = k·a: a small-order R that §2 accepts (libsodium would refuse it).
  fc.constant(
    named('R = identity, S = k·a', (c, who) => {
      const S = Fn.mul(challenge(IDENTITY, c.key, c.msg), who.a);
      return { ...c, sig: concatBytes(IDENTITY, numberToBytesLE(S, 32)), expected: true };
    }),
  ),
  // Key replaced by a small-order or non-canonical encoding; the identity forgery (R = identity, S = 0).
  fc.tuple(fc.constantFrom(...TORSION, ...NON_CANONICAL), fc.boolean()).map(([key, forge]) =>
    named(`key = ${Buffer.from(key).toString('hex').slice(0, 8)}…${forge ? ' with (R = identity, S = 0)' : ''}`, (c) => ({
      ...c,
      key,
      sig: forge ? concatBytes(IDENTITY, new Uint8Array(32)) : c.sig,
      expected: false,
    })),
  ),
  // Key A + T (outside the prime-order subgroup), signature refitted to it: verifies cofactorless
  // on an unchecked key whenever k·T = identity.
  fc.integer({ min: 1, max: 7 }).map((t) =>
    named(`key A + torsion point ${t}, signature refitted`, (c, who) => {
      const key = Point.fromBytes(c.key).add(Point.fromBytes(TORSION[t]!)).toBytes();
      const R = c.sig.subarray(0, 32);
      const r = Fn.sub(S_of(c.sig), Fn.mul(challenge(R, c.key, c.msg), who.a));
      const S = Fn.add(r, Fn.mul(challenge(R, key, c.msg), who.a));
      return { ...c, key, sig: concatBytes(R, numberToBytesLE(S, 32)), expected: false };
    }),
  ),
  // Wrong lengths.
  fc.tuple(fc.constantFrom<'sig' | 'key'>('sig', 'key'), fc.integer({ min: 0, max: 96 })).map(([where, n]) =>
    named(`${where} of ${n} bytes`, (c) => {
      const b = new Uint8Array(n);
      b.set(c[where].subarray(0, n));
      return { ...c, [where]: b, expected: n === c[where].length ? undefined : false };
    }),
  ),
);

describe('Ed25519 backends agree (PROTOCOL.md §2)', () => {
  it('on mutated signatures, keys and messages', { timeout: 60_000 }, async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 0, max: AUTHORS.length - 1 }),
        fc.uint8Array({ minLength: 0, maxLength: 64 }),
        fc.array(mutations, { minLength: 1, maxLength: 2 }),
        async (who, msg, chain) => {
          const author = AUTHORS[who]!;
          let c: Case = { sig: await author.sign(msg), msg, key: author.A };
          const names: string[] = [];
          for (const m of chain) {
            const { expected: _previous, ...rest } = c;
            try {
              c = m.apply(rest, author);
              names.push(m.name);
            } catch {
              // A refit needs R or A to decode, which an earlier mutation may have broken.
              c = rest;
              names.push(`${m.name} (not applicable)`);
            }
          }
          const web = await verifyWith('webcrypto', c.sig, c.msg, c.key);
          const exact = await verifyWith('noble', c.sig, c.msg, c.key);
          const label = names.join(' then ');
          expect(web, `${label}: WebCrypto and noble disagree`).toBe(exact);
          // Only a single mutation's verdict is fixed; a second may undo the first (flip a bit twice).
          if (chain.length === 1 && c.expected !== undefined) expect(exact, `${label}: §2 verdict`).toBe(c.expected);
        },
      ),
      { numRuns: 5000 },
    );
  });
});
