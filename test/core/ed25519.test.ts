import { afterEach, describe, expect, it, vi } from 'vitest';
import { ed25519 } from '@noble/curves/ed25519.js';
import { bytesToNumberLE } from '@noble/curves/utils.js';
import * as noble from '@noble/ed25519';
import { sha512 } from '@noble/hashes/sha2.js';
import * as core from '../../src/core';

// RFC 8032 §7.1, TEST 2 (one-byte message).
const SEED = '4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb';
const PUB = '3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c';
const SIG =
  '92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00';

describe('Ed25519 backends', () => {
  afterEach(() => {
    vi.unstubAllGlobals();
    vi.resetModules();
  });

  it('uses WebCrypto where the platform has it, and reproduces RFC 8032 test 2', async () => {
    expect(await core.ed25519Backend()).toBe('webcrypto');
    const signer = core.createSigner(core.fromHex(SEED)!);
    expect(core.toHex(signer.publicKey)).toBe(PUB);
    const sig = await signer.sign(new Uint8Array([0x72]));
    expect(core.toHex(sig)).toBe(SIG);
    expect(await core.verify(sig, new Uint8Array([0x72]), signer.publicKey)).toBe(true);
    expect(await core.verify(sig, new Uint8Array([0x73]), signer.publicKey)).toBe(false);
  });

  it('falls back to @noble/ed25519 without WebCrypto, with identical results', async () => {
    vi.stubGlobal('crypto', { getRandomValues: <T extends ArrayBufferView>(a: T) => globalThis.crypto.getRandomValues(a) });
    vi.resetModules();
    const fresh = await import('../../src/core');
    expect(await fresh.ed25519Backend()).toBe('noble');
    const signer = fresh.createSigner(fresh.fromHex(SEED)!);
    const sig = await signer.sign(new Uint8Array([0x72]));
    expect(fresh.toHex(sig)).toBe(SIG);
    expect(await fresh.verify(sig, new Uint8Array([0x72]), signer.publicKey)).toBe(true);
    const bad = sig.slice();
    bad[0]! ^= 1;
    expect(await fresh.verify(bad, new Uint8Array([0x72]), signer.publicKey)).toBe(false);
    expect(await fresh.verify(new Uint8Array(3), new Uint8Array([0x72]), signer.publicKey)).toBe(false);
  });
});

/** A platform crypto whose Ed25519 verify is replaced, to see how the backend choice reacts. */
function platformWithVerify(verify: (sig: Uint8Array, msg: Uint8Array, pub: Uint8Array) => boolean): Crypto {
  const real = globalThis.crypto.subtle;
  const subtle = {
    importKey: (...args: Parameters<SubtleCrypto['importKey']>) => real.importKey(...args),
    exportKey: (format: 'raw', key: CryptoKey) => real.exportKey(format, key),
    sign: (...args: Parameters<SubtleCrypto['sign']>) => real.sign(...args),
    async verify(_alg: AlgorithmIdentifier, key: CryptoKey, sig: BufferSource, msg: BufferSource) {
      const pub = new Uint8Array(await real.exportKey('raw', key));
      return verify(new Uint8Array(sig as ArrayBuffer), new Uint8Array(msg as ArrayBuffer), pub);
    },
  };
  return { getRandomValues: <T extends ArrayBufferView>(a: T) => globalThis.crypto.getRandomValues(a), subtle } as unknown as Crypto;
}

const IDENTITY = core.fromHex('0100000000000000000000000000000000000000000000000000000000000000')!;
const ORDER_8 = core.fromHex('c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a')!;

describe('Ed25519 verification rule (PROTOCOL.md §2)', () => {
  afterEach(() => {
    vi.unstubAllGlobals();
    vi.resetModules();
  });

  it('refuses the identity-key forgery that bare WebCrypto accepts for any message', async () => {
    const forged = core.concatBytes(IDENTITY, new Uint8Array(32)); // R = identity, S = 0
    const key = await crypto.subtle.importKey('raw', core.bufferSource(IDENTITY), { name: 'Ed25519' }, false, ['verify']);
    for (const text of ['pay mallory', 'anything at all']) {
      const msg = core.utf8(text);
      expect(
        await crypto.subtle.verify({ name: 'Ed25519' }, key, core.bufferSource(forged), core.bufferSource(msg)),
        `bare WebCrypto on "${text}"`,
      ).toBe(true);
      expect(await core.verify(forged, msg, IDENTITY), `verify on "${text}"`).toBe(false);
      for (const backend of ['webcrypto', 'noble'] as const) expect(await core.verifyWith(backend, forged, msg, IDENTITY)).toBe(false);
    }
    expect(core.ed25519PublicKeyProblem(IDENTITY)).toMatch(/small order/);
  });

  it('does not verify on a platform whose Ed25519 is cofactored, but on the exact rule', async () => {
    // @noble/ed25519's verify is cofactored: it accepts R with an 8-torsion component.
    vi.stubGlobal(
      'crypto',
      platformWithVerify((sig, msg, pub) => noble.verify(sig, msg, pub, { zip215: false })),
    );
    vi.resetModules();
    const fresh = await import('../../src/core');
    expect(await fresh.ed25519Backend()).toBe('noble');
    const signer = fresh.createSigner(fresh.fromHex(SEED)!);
    const msg = new Uint8Array([0x72]);
    const sig = await signer.sign(msg);
    expect(fresh.toHex(sig)).toBe(SIG); // it still signs with the platform
    expect(await fresh.verify(sig, msg, signer.publicKey)).toBe(true);
  });

  it('does not verify on a platform that refuses a small-order R the rule accepts', async () => {
    // libsodium's rule: R of small order is refused even when the equation holds.
    vi.stubGlobal(
      'crypto',
      platformWithVerify(
        (sig, msg, pub) => !core.bytesEqual(sig.subarray(0, 32), IDENTITY) && noble.verify(sig, msg, pub, { zip215: false }),
      ),
    );
    vi.resetModules();
    const fresh = await import('../../src/core');
    expect(await fresh.ed25519Backend()).toBe('noble');
  });

  it('probes platforms with the signatures it claims: honest, torsion-added R, R = identity', async () => {
    // Rebuilt here from the seed 07…07 with the secret scalar (RFC 8032 §5.1.5).
    const Point = ed25519.Point;
    const Fn = Point.Fn;
    const seed = new Uint8Array(32).fill(7);
    const h = sha512(seed);
    const head = h.slice(0, 32);
    head[0]! &= 248;
    head[31]! &= 127;
    head[31]! |= 64;
    const a = Fn.create(bytesToNumberLE(head));
    const { publicKey, message, cases } = core.ed25519RuleProbes;
    expect(core.toHex(publicKey)).toBe(core.toHex(Point.BASE.multiply(a).toBytes()));
    const fit = (R: Uint8Array, r: bigint) => {
      const k = Fn.create(bytesToNumberLE(sha512(core.concatBytes(R, publicKey, message))));
      return core.toHex(core.concatBytes(R, Fn.toBytes(Fn.add(r, Fn.mul(k, a)))));
    };
    const r = Fn.create(bytesToNumberLE(sha512(core.concatBytes(h.slice(32), message))));
    const R = Point.BASE.multiply(r);
    expect(cases.map((c) => core.toHex(c.signature))).toEqual([
      core.toHex(ed25519.sign(message, seed)),
      fit(R.add(Point.fromBytes(ORDER_8)).toBytes(), r),
      fit(IDENTITY, 0n),
    ]);
    expect(cases.map((c) => c.valid)).toEqual([true, false, true]);
    for (const c of cases) {
      expect(await core.verifyWith('noble', c.signature, message, publicKey)).toBe(c.valid);
      expect(await core.verifyWith('webcrypto', c.signature, message, publicKey)).toBe(c.valid);
    }
    // The torsion probe does discriminate: a cofactored verifier accepts it.
    expect(noble.verify(cases[1]!.signature, message, publicKey, { zip215: false })).toBe(true);
  });

  it('returns false, never throws, on malformed input', async () => {
    const signer = core.createSigner(core.fromHex(SEED)!);
    const msg = new Uint8Array([0x72]);
    const sig = await signer.sign(msg);
    const junk: unknown[] = [
      undefined,
      null,
      'sig',
      42,
      {},
      [1, 2],
      new Uint8Array(0),
      new Uint8Array(63),
      new Uint8Array(65),
      new Uint8Array(64),
    ];
    for (const backend of ['webcrypto', 'noble'] as const) {
      for (const [i, j] of junk.entries()) {
        const bad = j as Uint8Array;
        const label = `${backend}: junk #${i}`;
        expect(await core.verifyWith(backend, bad, msg, signer.publicKey), `${label} as signature`).toBe(false);
        expect(await core.verifyWith(backend, sig, bad, signer.publicKey), `${label} as message`).toBe(false);
        expect(await core.verifyWith(backend, sig, msg, bad), `${label} as key`).toBe(false);
      }
    }
    expect(await core.verify(null as unknown as Uint8Array, msg, signer.publicKey)).toBe(false);
    expect(await core.verify(sig, msg, new Uint8Array(33))).toBe(false);
    expect(await core.verify(sig, msg, ORDER_8)).toBe(false);
  });
});
