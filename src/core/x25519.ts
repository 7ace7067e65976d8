/**
 * X25519 key agreement (RFC 7748 §5) for sealed envelopes (PROTOCOL.md §4). WebCrypto where the
 * platform offers X25519 (an order of magnitude faster than pure JS, and the receiver runs one per
 * envelope), @noble/curves otherwise. Both give the same bytes; a platform that disagrees with
 * noble on a known answer is not used.
 */
import { x25519 } from '@noble/curves/ed25519.js';
import { bufferSource, bytesEqual, concatBytes, fromHex, toHex } from './bytes';
import { platformCrypto, type PlatformKey, type PlatformSubtle } from './platform';

const ALG = { name: 'X25519' } as const;
// PKCS#8 wrapper for a raw 32-byte X25519 private key (RFC 8410 §7, OID 1.3.101.110).
const PKCS8_PREFIX = fromHex('302e020100300506032b656e04220420')!;

let subtlePromise: Promise<PlatformSubtle | undefined> | undefined;

function webCrypto(): Promise<PlatformSubtle | undefined> {
  subtlePromise ??= (async () => {
    const subtle = platformCrypto()?.subtle;
    if (!subtle) return undefined;
    try {
      const a = new Uint8Array(32).fill(3);
      const b = x25519.getPublicKey(new Uint8Array(32).fill(5));
      const got = await derive(subtle, await importSecret(subtle, a), b);
      return bytesEqual(got, x25519.getSharedSecret(a, b)) ? subtle : undefined;
    } catch {
      return undefined;
    }
  })();
  return subtlePromise;
}

const importSecret = (subtle: PlatformSubtle, secret: Uint8Array) =>
  subtle.importKey('pkcs8', bufferSource(concatBytes(PKCS8_PREFIX, secret)), ALG, false, ['deriveBits']);

async function derive(subtle: PlatformSubtle, secret: PlatformKey, publicKey: Uint8Array): Promise<Uint8Array> {
  const pub = await subtle.importKey('raw', bufferSource(publicKey), ALG, false, []);
  return new Uint8Array(await subtle.deriveBits({ name: 'X25519', public: pub }, secret, 256));
}

// A receiver opens many envelopes with one key: keep its imported form (one entry is enough).
let cached: { id: string; key: Promise<PlatformKey> } | undefined;

/** The X25519 shared secret of `secret` and `publicKey`. Throws for a malformed or low-order public key. */
export async function x25519SharedSecret(secret: Uint8Array, publicKey: Uint8Array): Promise<Uint8Array> {
  const subtle = await webCrypto();
  if (subtle && publicKey.length === 32) {
    const id = toHex(secret);
    if (cached?.id !== id) cached = { id, key: importSecret(subtle, secret) };
    try {
      return await derive(subtle, await cached.key, publicKey);
    } catch {
      // Refused (e.g. a low-order key): noble decides, so both platforms fail alike.
    }
  }
  return x25519.getSharedSecret(secret, publicKey);
}
