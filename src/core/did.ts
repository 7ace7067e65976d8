/**
 * did:key for Ed25519 (PROTOCOL.md §2; W3C did:key): `did:key:z` + base58btc(0xed 0x01 ‖ key),
 * and the X25519 key-agreement key it implies (RFC 7748 birational map), used for sealing.
 */
import { ed25519 } from '@noble/curves/ed25519.js';
import { base58Decode, base58Encode } from './base58';
import { concatBytes } from './bytes';
import { ed25519PublicKeyProblem, setKeyStateCacheSize } from './ed25519';
import { fail, ok, type Result } from './result';

const ED25519_PUB = new Uint8Array([0xed, 0x01]);
const X25519_PUB = new Uint8Array([0xec, 0x01]);
const PREFIX = 'did:key:z';

export type Did = string;
export type DidErrorCode = 'not_a_did' | 'unsupported_did_method' | 'invalid_did_key';

export const didFromPublicKey = (publicKey: Uint8Array): Did => PREFIX + base58Encode(concatBytes(ED25519_PUB, publicKey));

// Decoding checks the key is valid under §2 (a square root and a multiplication by L: ~1 ms in
// pure JS). A batch of records mostly shares a handful of actors, so remember the answers;
// DIDs come from the network, so the memory is bounded (least recently used evicted first).
let keyCacheMax = 1024;
const keyCache = new Map<string, Result<Uint8Array, DidErrorCode>>();

/**
 * How many keys core remembers as checked: DIDs decoded by `publicKeyFromDid`, and keys' states
 * for `verify` (the point, the platform key). Defaults 1,024 and 4,096 suit a peer; a relay serves
 * far more receivers: measured with deposits and receives spread over 10,000 of them (`npm run
 * bench:scale`), those sizes held a relay to ~500 deposits/s and made each receive of a mailbox
 * not seen for a while decode and check its owner's key again (~1 ms each).
 */
export function setKeyCacheSize(max: number): void {
  if (!Number.isSafeInteger(max) || max < 1) throw new RangeError(`key cache size must be a positive integer, not ${max}`);
  keyCacheMax = max;
  while (keyCache.size > keyCacheMax) keyCache.delete(keyCache.keys().next().value!);
  setKeyStateCacheSize(max);
}

export function publicKeyFromDid(did: string): Result<Uint8Array, DidErrorCode> {
  let r = keyCache.get(did);
  if (r) {
    keyCache.delete(did); // refresh its place in the eviction order
  } else {
    r = decodeDidKey(did);
    if (keyCache.size >= keyCacheMax) keyCache.delete(keyCache.keys().next().value!);
  }
  keyCache.set(did, r);
  return r.ok ? ok(r.value.slice()) : r;
}

function decodeDidKey(did: string): Result<Uint8Array, DidErrorCode> {
  if (!/^did:[a-z0-9]+:\S+$/.test(did)) return fail('not_a_did', `"${clip(did)}" is not a DID`);
  if (!did.startsWith(PREFIX)) {
    return fail('unsupported_did_method', `${clip(did)} is not a did:key and carries no verification key`);
  }
  const raw = base58Decode(did.slice(PREFIX.length));
  if (!raw || raw.length !== 34 || raw[0] !== 0xed || raw[1] !== 0x01) {
    return fail('invalid_did_key', `${clip(did)} is not an Ed25519 did:key`);
  }
  const key = raw.slice(2);
  const problem = ed25519PublicKeyProblem(key);
  if (problem) return fail('invalid_did_key', `${clip(did)} carries an invalid Ed25519 public key: it ${problem}`);
  return ok(key);
}

export const isDidKey = (did: string): boolean => publicKeyFromDid(did).ok;

/** The receiver's X25519 public key for sealing (PROTOCOL.md §4). */
export function x25519PublicKeyFromDid(did: string): Result<Uint8Array, DidErrorCode> {
  const pub = publicKeyFromDid(did);
  return pub.ok ? ok(ed25519.utils.toMontgomery(pub.value)) : pub;
}

export const x25519SecretKeyFromEd25519 = (secretKey: Uint8Array): Uint8Array => ed25519.utils.toMontgomerySecret(secretKey);

/** The multibase `z6LS…` form of an X25519 key, as did:key documents name key-agreement keys. */
export const x25519Multibase = (x25519PublicKey: Uint8Array): string => 'z' + base58Encode(concatBytes(X25519_PUB, x25519PublicKey));

const clip = (s: string): string => (s.length > 80 ? s.slice(0, 77) + '...' : s);
