import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  canonicalize,
  createSigner,
  didFromPublicKey,
  fromHex,
  parseRecord,
  publicKeyFromDid,
  recordId,
  canonicalBytes,
  hashedFields,
  x25519Multibase,
  x25519PublicKeyFromDid,
  x25519SecretKeyFromEd25519,
  base58Decode,
  fromB64u,
} from '../../src/core';
import { VECTORS } from '../../support/paths';

describe('RFC 8785 vectors (shared/vectors/jcs)', () => {
  const dir = join(VECTORS, 'jcs');
  for (const name of readdirSync(join(dir, 'input'))) {
    it(`canonicalises ${name} byte for byte`, () => {
      const input: unknown = JSON.parse(readFileSync(join(dir, 'input', name), 'utf8'));
      const expected = readFileSync(join(dir, 'output', name));
      expect(Buffer.from(canonicalBytes(input)).equals(expected)).toBe(true);
    });
  }
});

interface RecordVector {
  record: unknown;
  canonical: string;
  id: string;
}

describe('record ID vectors (shared/vectors/records.json)', () => {
  const { vectors } = JSON.parse(readFileSync(join(VECTORS, 'records.json'), 'utf8')) as { vectors: RecordVector[] };
  it('has vectors', () => expect(vectors.length).toBeGreaterThan(0));
  vectors.forEach((v, i) => {
    it(`reproduces vector ${i}: ${v.id.slice(0, 12)}`, () => {
      const r = parseRecord(v.record);
      if (!r.ok) throw new Error(r.error.message);
      expect(canonicalize(hashedFields(r.value))).toBe(v.canonical);
      expect(recordId(r.value)).toBe(v.id);
    });
  });
});

interface KeyPair {
  id: string;
  publicKeyBase58?: string;
  privateKeyBase58?: string;
  publicKeyJwk?: { x: string };
  privateKeyJwk?: { d: string };
}
interface DidVector {
  seed: string;
  verificationKeyPair: KeyPair;
  keyAgreementKeyPair: KeyPair;
}

/** The vectors give keys either as base58 or as JWK (base64url). */
const publicKeyOfPair = (k: KeyPair): Uint8Array =>
  (k.publicKeyBase58 !== undefined ? base58Decode(k.publicKeyBase58) : fromB64u(k.publicKeyJwk?.x ?? ''))!;
const privateKeyOfPair = (k: KeyPair): Uint8Array | undefined =>
  k.privateKeyBase58 !== undefined ? base58Decode(k.privateKeyBase58) : k.privateKeyJwk ? fromB64u(k.privateKeyJwk.d) : undefined;

describe('did:key vectors (shared/vectors/did-key)', () => {
  const vectors = JSON.parse(readFileSync(join(VECTORS, 'did-key', 'ed25519-x25519.json'), 'utf8')) as Record<string, DidVector>;
  for (const [did, v] of Object.entries(vectors)) {
    it(`derives ${did.slice(0, 24)}… and its X25519 key from the seed`, () => {
      const signer = createSigner(fromHex(v.seed)!);
      expect(didFromPublicKey(signer.publicKey)).toBe(did);
      const pub = publicKeyFromDid(did);
      expect(pub.ok && Buffer.from(pub.value).equals(Buffer.from(signer.publicKey))).toBe(true);
      expect(Buffer.from(signer.publicKey).equals(Buffer.from(publicKeyOfPair(v.verificationKeyPair)))).toBe(true);
      const x = x25519PublicKeyFromDid(did);
      if (!x.ok) throw new Error(x.error.message);
      expect(Buffer.from(x.value).equals(Buffer.from(publicKeyOfPair(v.keyAgreementKeyPair)))).toBe(true);
      expect(v.keyAgreementKeyPair.id.endsWith(`#${x25519Multibase(x.value)}`)).toBe(true);
      const xPrivate = privateKeyOfPair(v.keyAgreementKeyPair);
      if (xPrivate) {
        expect(Buffer.from(x25519SecretKeyFromEd25519(fromHex(v.seed)!)).equals(Buffer.from(xPrivate))).toBe(true);
      }
    });
  }
});
