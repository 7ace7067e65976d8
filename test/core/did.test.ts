/**
 * did:key validity (PROTOCOL.md §2): a key that is non-canonical, of small order or outside the
 * prime-order subgroup makes the DID invalid, and nothing signed under it is accepted, whatever
 * carries it: records, envelopes, invites, mailbox requests.
 */
import { ed25519, ED25519_TORSION_SUBGROUP } from '@noble/curves/ed25519.js';
import { bytesToNumberLE, numberToBytesLE } from '@noble/curves/utils.js';
import { describe, expect, it } from 'vitest';
import {
  buildPlainEnvelope,
  concatBytes,
  createInvite,
  didFromPublicKey,
  encodeInvite,
  fromHex,
  isDidKey,
  openEnvelope,
  parseInvite,
  publicKeyFromDid,
  sealEnvelope,
  signMailboxRequest,
  signRecord,
  verifyMailboxAuth,
  verifySignedRecord,
  x25519PublicKeyFromDid,
  type Signer,
} from '../../src/core';
import { newPeer, note, signedNotes } from '../../support/fixtures';

const Point = ed25519.Point;
const P = Point.CURVE().p;
const TORSION = ED25519_TORSION_SUBGROUP.map((h) => fromHex(h)!);
const IDENTITY = TORSION[0]!;

/** The first y whose encoding has no point behind it. */
function notOnCurve(): Uint8Array {
  for (let y = 2n; ; y++) {
    const b = numberToBytesLE(y, 32);
    try {
      Point.fromBytes(b);
    } catch {
      return b;
    }
  }
}

const honest = newPeer();
const mixedOrder = Point.fromBytes(publicKeyFromDidOrThrow(honest.did)).add(Point.fromBytes(TORSION[1]!)).toBytes();

function publicKeyFromDidOrThrow(did: string): Uint8Array {
  const r = publicKeyFromDid(did);
  if (!r.ok) throw new Error(r.error.message);
  return r.value;
}

const INVALID_KEYS: readonly { name: string; key: Uint8Array; why: RegExp }[] = [
  ...TORSION.map((key, i) => ({ name: `torsion point ${i}`, key, why: /is a point of small order/ })),
  { name: 'identity as y = 1 + p', key: numberToBytesLE(1n + P, 32), why: /not canonically encoded \(y ≥ p\)/ },
  { name: 'y = p (zero + p)', key: numberToBytesLE(P, 32), why: /not canonically encoded \(y ≥ p\)/ },
  { name: 'y = 2^255 − 1', key: numberToBytesLE((1n << 255n) - 1n, 32), why: /not canonically encoded \(y ≥ p\)/ },
  {
    name: '(0, 1) with the sign bit',
    key: numberToBytesLE(1n | (1n << 255n), 32),
    why: /not canonically encoded \(x = 0 with the sign bit set\)/,
  },
  {
    name: '(0, −1) with the sign bit',
    key: numberToBytesLE(P - 1n + (1n << 255n), 32),
    why: /not canonically encoded \(x = 0 with the sign bit set\)/,
  },
  { name: 'an honest key plus an 8-torsion point', key: mixedOrder, why: /lies outside the prime-order subgroup/ },
  { name: 'a y with no point', key: notOnCurve(), why: /is not a point on the curve/ },
];

describe('did:key validity (§2)', () => {
  it('accepts an honest key and hands out copies', () => {
    const key = publicKeyFromDidOrThrow(honest.did);
    expect(didFromPublicKey(key)).toBe(honest.did);
    key.fill(0);
    expect(didFromPublicKey(publicKeyFromDidOrThrow(honest.did))).toBe(honest.did);
    expect(isDidKey(honest.did)).toBe(true);
    expect(x25519PublicKeyFromDid(honest.did).ok).toBe(true);
  });

  for (const { name, key, why } of INVALID_KEYS) {
    it(`refuses ${name}, saying why, from every accessor (and again from the cache)`, () => {
      const did = didFromPublicKey(key);
      for (let attempt = 0; attempt < 2; attempt++) {
        const r = publicKeyFromDid(did);
        expect(r.ok).toBe(false);
        if (r.ok) return;
        expect(r.error.code).toBe('invalid_did_key');
        expect(r.error.message).toMatch(why);
        expect(r.error.message).toContain(did.slice(0, 20));
        expect(isDidKey(did)).toBe(false);
        const x = x25519PublicKeyFromDid(did);
        expect(x.ok ? 'ok' : x.error.code).toBe('invalid_did_key');
      }
    });
  }

  it('keeps answering correctly past the cache bound', () => {
    // 1500 distinct DIDs: more than the cache holds, so early entries are evicted and recomputed.
    const dids = Array.from({ length: 1500 }, (_, i) => didFromPublicKey(Point.BASE.multiply(BigInt(i + 1)).toBytes()));
    for (const did of dids) expect(isDidKey(did)).toBe(true);
    expect(isDidKey(dids[0]!)).toBe(true);
    expect(isDidKey(didFromPublicKey(IDENTITY))).toBe(false);
    expect(bytesToNumberLE(publicKeyFromDidOrThrow(dids[0]!))).toBe(bytesToNumberLE(Point.BASE.toBytes()));
  });
});

/**
 * The universal forgery on the identity key: R = identity, S = 0 satisfies the cofactorless
 * equation for every message, and bare WebCrypto accepts it (test/core/ed25519.test.ts).
 */
const forger: Signer = {
  publicKey: IDENTITY,
  sign: () => Promise.resolve(concatBytes(IDENTITY, new Uint8Array(32))),
};
const forgedDid = didFromPublicKey(IDENTITY);
const SMALL_ORDER = /small order/;

describe('nothing signed under a small-order DID is accepted', () => {
  const bob = newPeer();
  const asBob = { did: bob.did, secretKey: bob.secretKey };

  it('records', async () => {
    const r = await verifySignedRecord(await signRecord(note(forgedDid, 'forged'), forger));
    expect(r.ok ? 'ok' : r.error.code).toBe('unverifiable_actor');
    expect(r.ok ? '' : r.error.message).toMatch(SMALL_ORDER);
  });

  it('envelopes, plain and sealed, and the forged records inside an honest one', async () => {
    const forgedEnvelope = await buildPlainEnvelope({ fromDid: forgedDid, toDid: bob.did, records: await signedNotes(honest, 1) }, forger);
    for (const env of [forgedEnvelope, sealEnvelope(forgedEnvelope)]) {
      const r = await openEnvelope(JSON.parse(JSON.stringify(env)), asBob);
      expect(r.ok ? 'ok' : r.error.code, env.encoding).toBe('unverifiable_sender');
      expect(r.ok ? '' : r.error.message).toMatch(SMALL_ORDER);
    }
    const carrier = await buildPlainEnvelope(
      {
        fromDid: honest.did,
        toDid: bob.did,
        records: [await signRecord(note(forgedDid, 'forged'), forger), ...(await signedNotes(honest, 1))],
      },
      honest.signer,
    );
    const opened = await openEnvelope(JSON.parse(JSON.stringify(carrier)), asBob);
    if (!opened.ok) throw new Error(opened.error.message);
    expect(opened.value.records.map((o) => (o.ok ? 'ok' : o.error.code))).toEqual(['unverifiable_actor', 'ok']);
    // Nor can anything be sealed for such a DID: it has no valid key-agreement key.
    const toForged = await buildPlainEnvelope(
      { fromDid: honest.did, toDid: forgedDid, records: await signedNotes(honest, 1) },
      honest.signer,
    );
    expect(() => sealEnvelope(toForged)).toThrow(SMALL_ORDER);
  });

  it('invites', async () => {
    const now = 1_700_000_000_000;
    const invite = await createInvite(
      { did: forgedDid, name: 'Mallory', relays: ['https://relay.example'], threads: ['th_x'], exp: now + 60_000 },
      forger,
    );
    const r = await parseInvite(encodeInvite(invite), now);
    expect(r.ok ? 'ok' : r.error.code).toBe('invalid_invite');
    expect(r.ok ? '' : r.error.message).toMatch(SMALL_ORDER);
  });

  it('mailbox requests', async () => {
    const now = 1_700_000_000_000;
    const req = { method: 'GET', host: '127.0.0.1:8787', pathAndQuery: `/v1/mailbox/${encodeURIComponent(forgedDid)}/receive`, body: '' };
    const r = await verifyMailboxAuth(await signMailboxRequest(req, forger, now), forgedDid, req, now);
    expect(r.ok ? 'ok' : r.error.code).toBe('unverifiable_did');
    expect(r.ok ? '' : r.error.message).toMatch(SMALL_ORDER);
  });
});
