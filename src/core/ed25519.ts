/**
 * Ed25519 (RFC 8032) signing, and verification by the one rule of PROTOCOL.md §2:
 * - the public key must be valid: a canonical encoding (y < p, not x = 0 with the sign bit
 *   set), not of small order, inside the prime-order subgroup ([L]A = identity);
 * - R must be canonically encoded and S < L;
 * - then accept iff encoding([S]B − [k]A) == R, k = SHA-512(R ‖ A ‖ M) mod L (cofactorless,
 *   as BoringSSL and OpenSSL check it).
 *
 * Two backends, which must agree on every input (published vectors: Wycheproof, speccheck):
 * - WebCrypto where the platform offers Ed25519 (~16x faster than pure JS). Unwrapped it
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

noble.hashes.sha512 = sha512;

const Point = ed25519.Point;
const P = Point.CURVE().p;
const L = Point.CURVE().n;
// PKCS#8 wrapper for a raw 32-byte Ed25519 seed (RFC 8410 §7).
const PKCS8_PREFIX = fromHex('302e020100300506032b657004220420')!;
const ALG = { name: 'Ed25519' } as const;

export type Ed25519Backend = 'webcrypto' | 'noble';

interface Platform {
  readonly subtle: SubtleCrypto;
  /** Whether its verify computes the §2 equation (after our pre-checks); else it only signs. */
  readonly verifiesByRule: boolean;
}

let platformPromise: Promise<Platform | undefined> | undefined;

/** The platform's SubtleCrypto if it really does Ed25519, checked once with known answers. */
function platform(): Promise<Platform | undefined> {
  platformPromise ??= (async () => {
    const subtle = globalThis.crypto?.subtle;
    if (!subtle) return undefined;
    try {
      const probes = ruleProbes();
      const key = await subtle.importKey('raw', bufferSource(probes.publicKey), ALG, false, ['verify']);
      const honest = probes.cases[0]!;
      if (!(await subtle.verify(ALG, key, bufferSource(honest.signature), bufferSource(honest.message)))) return undefined;
      let verifiesByRule = true;
      for (const probe of probes.cases) {
        const got = await subtle.verify(ALG, key, bufferSource(probe.signature), bufferSource(probe.message));
        if (got !== probe.valid) verifiesByRule = false;
      }
      return { subtle, verifiesByRule };
    } catch {
      return undefined;
    }
  })();
  return platformPromise;
}

interface RuleProbe {
  readonly message: Uint8Array;
  readonly signature: Uint8Array;
  /** The §2 answer. */
  readonly valid: boolean;
}

/**
 * Signatures under one valid key that separate the §2 rule from its look-alikes, once key, R
 * and S have passed our pre-checks: an honest one; R plus an 8-torsion point with S fitted to
 * it (a cofactored verifier accepts, §2 rejects); R = identity with S = k·a (§2 accepts, a
 * verifier that refuses small-order R, as libsodium does, rejects). Built with the secret
 * scalar of a fixed seed, as RFC 8032 §5.1.5–6 derive it.
 */
function ruleProbes(): { publicKey: Uint8Array; cases: RuleProbe[] } {
  const seed = new Uint8Array(32).fill(7);
  const h = sha512(seed);
  const head = h.slice(0, 32);
  head[0]! &= 248;
  head[31]! &= 127;
  head[31]! |= 64;
  const a = Point.Fn.create(bytesToNumberLE(head));
  const publicKey = Point.BASE.multiply(a).toBytes();
  const message = new Uint8Array([1, 2, 3]);
  const sign = (R: Uint8Array, r: bigint): Uint8Array => {
    const k = Point.Fn.create(bytesToNumberLE(sha512(concatBytes(R, publicKey, message))));
    return concatBytes(R, Point.Fn.toBytes(Point.Fn.add(r, Point.Fn.mul(k, a))));
  };
  const r = Point.Fn.create(bytesToNumberLE(sha512(concatBytes(h.slice(32), message))));
  const R = Point.BASE.multiply(r);
  const order8 = Point.fromBytes(fromHex('c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a')!);
  return {
    publicKey,
    cases: [
      { message, signature: sign(R.toBytes(), r), valid: true },
      { message, signature: sign(R.add(order8).toBytes(), r), valid: false },
      { message, signature: sign(Point.ZERO.toBytes(), 0n), valid: true },
    ],
  };
}

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
  let key: Promise<CryptoKey | undefined> | undefined;
  return {
    publicKey,
    async sign(message) {
      key ??= platform().then((p) =>
        p?.subtle.importKey('pkcs8', bufferSource(concatBytes(PKCS8_PREFIX, seed)), ALG, false, ['sign']),
      );
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
  webKey?: Promise<CryptoKey | undefined>;
}

// The validity check costs a square root and a multiplication by L (~1 ms in pure JS); records
// come mostly from a few authors, so each key is checked once. Keys come from the network:
// bounded, least recently used evicted first.
const KEY_CACHE_MAX = 4096;
const keyStates = new Map<string, KeyState>();

function keyState(publicKey: Uint8Array): KeyState {
  const id = toHex(publicKey);
  let state = keyStates.get(id);
  if (state) {
    keyStates.delete(id); // refresh its place in the eviction order
  } else {
    state = checkPublicKey(publicKey);
    if (keyStates.size >= KEY_CACHE_MAX) keyStates.delete(keyStates.keys().next().value!);
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
