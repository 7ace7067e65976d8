import { afterEach, describe, expect, it, vi } from 'vitest';
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
