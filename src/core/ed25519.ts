/**
 * Ed25519 (RFC 8032) signing, and verification by the one rule of PROTOCOL.md §2:
 * - the public key must be valid: a canonical encoding (y < p, not x = 0 with the sign bit
 *   set), not of small order, inside the prime-order subgroup ([L]A = identity);
 * - R must be canonically encoded and S < L;
 * - then accept iff encoding([S]B − [k]A) == R, k = SHA-512(R ‖ A ‖ M) mod L (cofactorless,
 *   as BoringSSL and OpenSSL check it).
 *
 * Two backends, which must agree on every input (published vectors: Wycheproof, speccheck):
 * - WebCrypto where the platform offers Ed25519 (~7x the pure-JS check: 7.1k against 1.0k
 *   verifications/s on Node 20, same few authors). Unwrapped it
 *   disagrees: OpenSSL (Node) and BoringSSL (Chromium) accept non-canonical and small-order
 *   keys (identity key + (R = identity, S = 0) verifies for every message). So the key, R and
 *   S are checked here first; what is left is exactly the cofactorless equation, which both
 *   libraries compute. A platform that computes something else (cofactored, or refusing a
 *   small-order R) is caught by the probes in `platform()` and not used for verification.
 * - otherwise the equation itself, on @noble/curves point arithmetic. @noble/ed25519's verify
 *   is cofactored (accepts an R with an 8-torsion component), so it only signs here.
 */
import { ed25519 } from '@noble/curves/ed25519.js';
import type { EdwardsPoint } from '@noble/curves/abstract/edwards.js';
import { bytesToNumberLE, equalBytes } from '@noble/curves/utils.js';
import * as noble from '@noble/ed25519';
import { sha512 } from '@noble/hashes/sha2.js';
import { bufferSource, concatBytes, fromHex, randomBytes, toHex } from './bytes';
import { platformCrypto, type PlatformKey, type PlatformSubtle } from './platform';

noble.hashes.sha512 = sha512;

const Point = ed25519.Point;
const P = Point.CURVE().p;
const L = Point.CURVE().n;
// PKCS#8 wrapper for a raw 32-byte Ed25519 seed (RFC 8410 §7).
const PKCS8_PREFIX = fromHex('302e020100300506032b657004220420')!;
const ALG = { name: 'Ed25519' } as const;

export type Ed25519Backend = 'webcrypto' | 'noble';

interface Platform {
  readonly subtle: PlatformSubtle;
  /** Whether its verify computes the §2 equation (after our pre-checks); else it only signs. */
  readonly verifiesByRule: boolean;
}

let platformPromise: Promise<Platform | undefined> | undefined;

/** The platform's SubtleCrypto if it really does Ed25519, checked once with known answers. */
function platform(): Promise<Platform | undefined> {
  platformPromise ??= (async () => {
    const subtle = platformCrypto()?.subtle;
    if (!subtle) return undefined;
    try {
      const key = await subtle.importKey('raw', bufferSource(PROBE_KEY), ALG, false, ['verify']);
      const verdicts = await Promise.all(
        PROBES.map((p) => subtle.verify(ALG, key, bufferSource(p.signature), bufferSource(PROBE_MESSAGE))),
      );
      if (!verdicts[0]) return undefined; // no working Ed25519 at all
      const verifiesByRule = verdicts.every((got, i) => got === PROBES[i]!.valid);
      return { subtle, verifiesByRule };
    } catch {
      return undefined;
    }
  })();
  return platformPromise;
}

interface RuleProbe {
  readonly signature: Uint8Array;
  /** The §2 answer. */
  readonly valid: boolean;
}

/**
 * Signatures over [1, 2, 3] by the seed 07…07 that separate the §2 rule from its look-alikes
 * once key, R and S have passed our pre-checks (test/core/ed25519.test.ts rebuilds them):
 * the RFC 8032 one; R plus an 8-torsion point with S fitted to it (a cofactored verifier
 * accepts, §2 rejects); R = identity with S = k·a (§2 accepts; a verifier that refuses
 * small-order R, as libsodium does, rejects). Constants, since building them costs the
 * base-point tables (~40 ms) that the WebCrypto path otherwise never needs.
 */
const PROBE_KEY = fromHex('ea4a6c63e29c520abef5507b132ec5f9954776aebebe7b92421eea691446d22c')!;
const PROBE_MESSAGE = new Uint8Array([1, 2, 3]);
const PROBES: readonly RuleProbe[] = [
  {
    signature: fromHex(
      '83998e719947612d0e82d427472c685a64b14d9aea67968cbcc39733f27376f3b8ea9858c24e061feb8bcdefce93aa921a6bc8ee1cab17f68d5d1ffc0dc2d800',
    )!,
    valid: true,
  },
  {
    signature: fromHex(
      '1aee9a8b7a80c26234d54458e96143cc5e5f189f5ac2a83ed350324a1aec9224bb9f5dd68d1c68afdae67c1f20e383b0f1354ad762bac3ffbd363b695eb2ec0f',
    )!,
    valid: false,
  },
  {
    signature: fromHex(
      '01000000000000000000000000000000000000000000000000000000000000009cec47435813c70a6c8f9e2fe0119474a3c30d8581c31a4afca25cd333c6020e',
    )!,
    valid: true,
  },
];

/** @internal for tests: the probe key, message and cases. */
export const ed25519RuleProbes = { publicKey: PROBE_KEY, message: PROBE_MESSAGE, cases: PROBES } as const;

/** Which implementation verifies here; for diagnostics and benchmarks. */
export async function ed25519Backend(): Promise<Ed25519Backend> {
  return (await platform())?.verifiesByRule ? 'webcrypto' : 'noble';
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
  let key: Promise<PlatformKey | undefined> | undefined;
  return {
    publicKey,
    async sign(message) {
      key ??= platform().then((p) => p?.subtle.importKey('pkcs8', bufferSource(concatBytes(PKCS8_PREFIX, seed)), ALG, false, ['sign']));
      const k = await key;
      const p = await platform();
      if (k && p) return new Uint8Array(await p.subtle.sign(ALG, k, bufferSource(message)));
      return noble.sign(message, seed);
    },
  };
}

interface KeyState {
  /** Why the key is invalid under §2; undefined when valid. */
  readonly problem: string | undefined;
  readonly point: EdwardsPoint | undefined;
  webKey?: Promise<PlatformKey | undefined>;
}

// The validity check costs a square root and a multiplication by L (~1 ms in pure JS); records
// come mostly from a few authors, so each key is checked once. Keys come from the network:
// bounded, least recently used evicted first.
let keyCacheMax = 4096;
const keyStates = new Map<string, KeyState>();

/** How many keys' states `keyState` remembers; did.ts `setKeyCacheSize` sets it. @internal */
export function setKeyStateCacheSize(max: number): void {
  keyCacheMax = max;
  while (keyStates.size > keyCacheMax) keyStates.delete(keyStates.keys().next().value!);
}

function keyState(publicKey: Uint8Array): KeyState {
  const id = toHex(publicKey);
  let state = keyStates.get(id);
  if (state) {
    keyStates.delete(id); // refresh its place in the eviction order
  } else {
    state = checkPublicKey(publicKey);
    if (keyStates.size >= keyCacheMax) keyStates.delete(keyStates.keys().next().value!);
  }
  keyStates.set(id, state);
  return state;
}

function checkPublicKey(publicKey: Uint8Array): KeyState {
  const invalid = (problem: string): KeyState => ({ problem, point: undefined });
  if (publicKey.length !== 32) return invalid(`is ${publicKey.length} bytes, not 32`);
  const encodingProblem = nonCanonical(publicKey);
  if (encodingProblem) return invalid(`is not canonically encoded (${encodingProblem})`);
  let point: EdwardsPoint;
  try {
    point = Point.fromBytes(publicKey);
  } catch {
    return invalid('is not a point on the curve');
  }
  if (point.isSmallOrder()) return invalid('is a point of small order');
  if (!point.isTorsionFree()) return invalid('lies outside the prime-order subgroup');
  return { problem: undefined, point };
}

/** Why 32 bytes are not the RFC 8032 §5.1.2 encoding of any y (whether or not on the curve). */
function nonCanonical(encoded: Uint8Array): string | undefined {
  const signBit = encoded[31]! >> 7;
  const y = bytesToNumberLE(encoded) & ((1n << 255n) - 1n);
  if (y >= P) return 'y ≥ p';
  // x = 0 only for y = ±1, and its sign bit is 0.
  if (signBit === 1 && (y === 1n || y === P - 1n)) return 'x = 0 with the sign bit set';
  return undefined;
}

/**
 * Why a public key is invalid under PROTOCOL.md §2 (non-canonical, small order, outside the
 * prime-order subgroup), or undefined when it is valid. Cached per key.
 */
export function ed25519PublicKeyProblem(publicKey: Uint8Array): string | undefined {
  return keyState(publicKey).problem;
}

/** True only for a valid signature under §2; any malformed input is simply false, never an exception. */
export async function verify(signature: Uint8Array, message: Uint8Array, publicKey: Uint8Array): Promise<boolean> {
  try {
    return await verifyWith(await ed25519Backend(), signature, message, publicKey);
  } catch {
    return false;
  }
}

/**
 * `verify` on a chosen backend, for tests that hold both to the same answers. The WebCrypto
 * backend is used even if the probes found it off the rule (so tests can see that), and throws
 * when the platform has no Ed25519 at all.
 * @internal
 */
export async function verifyWith(
  backend: Ed25519Backend,
  signature: Uint8Array,
  message: Uint8Array,
  publicKey: Uint8Array,
): Promise<boolean> {
  const subtle = backend === 'webcrypto' ? (await platform())?.subtle : undefined;
  if (backend === 'webcrypto' && !subtle) throw new Error('this platform has no WebCrypto Ed25519');
  if (!(signature instanceof Uint8Array && message instanceof Uint8Array && publicKey instanceof Uint8Array)) return false;
  if (signature.length !== 64 || publicKey.length !== 32) return false;
  const key = keyState(publicKey);
  if (!key.point) return false;
  const R = signature.subarray(0, 32);
  const S = bytesToNumberLE(signature.subarray(32));
  if (S >= L || nonCanonical(R)) return false;
  if (subtle) {
    key.webKey ??= subtle.importKey('raw', bufferSource(publicKey), ALG, false, ['verify']).catch(() => undefined);
    const webKey = await key.webKey;
    if (!webKey) return false;
    try {
      return await subtle.verify(ALG, webKey, bufferSource(signature), bufferSource(message));
    } catch {
      return false;
    }
  }
  const k = Point.Fn.create(bytesToNumberLE(sha512(concatBytes(R, publicKey, message))));
  const check = Point.BASE.multiplyUnsafe(S).subtract(key.point.multiplyUnsafe(k));
  return equalBytes(check.toBytes(), R);
}
