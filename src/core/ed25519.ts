/**
 * Ed25519 (RFC 8032) signing and verification. WebCrypto where the platform offers Ed25519
 * (browsers, workers and Node 20: ~16x faster than pure JS), @noble/ed25519 otherwise.
 * Both backends verify strictly (RFC 8032, not ZIP-215), so they accept the same signatures.
 */
import * as noble from '@noble/ed25519';
import { sha512 } from '@noble/hashes/sha2.js';
import { bufferSource, concatBytes, fromHex, randomBytes, toHex } from './bytes';

noble.hashes.sha512 = sha512;

const NOBLE_OPTS = { zip215: false } as const;
// PKCS#8 wrapper for a raw 32-byte Ed25519 seed (RFC 8410 §7).
const PKCS8_PREFIX = fromHex('302e020100300506032b657004220420')!;
const ALG = { name: 'Ed25519' } as const;

type Subtle = SubtleCrypto;


let subtlePromise: Promise<Subtle | undefined> | undefined;

/** The platform's SubtleCrypto if it really does Ed25519, checked once with a known answer. */
function webCrypto(): Promise<Subtle | undefined> {
  subtlePromise ??= (async () => {
    const subtle = globalThis.crypto?.subtle;
    if (!subtle) return undefined;
    try {
      const seed = new Uint8Array(32).fill(7);
      const pub = noble.getPublicKey(seed);
      const msg = new Uint8Array([1, 2, 3]);
      const sig = noble.sign(msg, seed);
      const key = await subtle.importKey('raw', pub, ALG, false, ['verify']);
      return (await subtle.verify(ALG, key, sig, msg)) ? subtle : undefined;
    } catch {
      return undefined;
    }
  })();
  return subtlePromise;
}

/** Which implementation verifies here; for diagnostics and benchmarks. */
export async function ed25519Backend(): Promise<'webcrypto' | 'noble'> {
  return (await webCrypto()) ? 'webcrypto' : 'noble';
}

export const generateSecretKey = (): Uint8Array => randomBytes(32);

export const publicKeyOf = (secretKey: Uint8Array): Uint8Array => noble.getPublicKey(secretKey);

export interface Signer {
  readonly publicKey: Uint8Array;
  sign(message: Uint8Array): Promise<Uint8Array>;
}

/** A signer over a 32-byte seed; the platform key is imported once, on first use. */
export function createSigner(secretKey: Uint8Array): Signer {
  if (secretKey.length !== 32) throw new RangeError('an Ed25519 secret key is 32 bytes');
  const seed = secretKey.slice();
  const publicKey = noble.getPublicKey(seed);
  let key: Promise<CryptoKey | undefined> | undefined;
  return {
    publicKey,
    async sign(message) {
      key ??= webCrypto().then((subtle) =>
        subtle?.importKey('pkcs8', bufferSource(concatBytes(PKCS8_PREFIX, seed)), ALG, false, ['sign']),
      );
      const k = await key;
      const subtle = await webCrypto();
      if (k && subtle) return new Uint8Array(await subtle.sign(ALG, k, bufferSource(message)));
      return noble.sign(message, seed);
    },
  };
}

const KEY_CACHE_MAX = 4096;
const verifyKeys = new Map<string, Promise<CryptoKey | undefined>>();

function verifyKey(subtle: Subtle, publicKey: Uint8Array): Promise<CryptoKey | undefined> {
  const id = toHex(publicKey);
  let k = verifyKeys.get(id);
  if (!k) {
    if (verifyKeys.size >= KEY_CACHE_MAX) verifyKeys.clear();
    k = subtle.importKey('raw', bufferSource(publicKey), ALG, false, ['verify']).catch(() => undefined);
    verifyKeys.set(id, k);
  }
  return k;
}

/** True only for a valid signature; any malformed input is simply false, never an exception. */
export async function verify(signature: Uint8Array, message: Uint8Array, publicKey: Uint8Array): Promise<boolean> {
  if (signature.length !== 64 || publicKey.length !== 32) return false;
  const subtle = await webCrypto();
  if (subtle) {
    const key = await verifyKey(subtle, publicKey);
    if (!key) return false;
    try {
      return await subtle.verify(ALG, key, bufferSource(signature), bufferSource(message));
    } catch {
      return false;
    }
  }
  try {
    return noble.verify(signature, message, publicKey, NOBLE_OPTS);
  } catch {
    return false;
  }
}
