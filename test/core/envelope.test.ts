import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  canonicalize,
  envelopeId,
  fromB64u,
  openEnvelope,
  parseEnvelope,
  parseEnvelopeBytes,
  sealEnvelope,
  toB64u,
  utf8,
  type Envelope,
} from '../../src/core';
import { newPeer, plainEnvelope } from '../../support/fixtures';

const alice = newPeer();
const bob = newPeer();
const asBob = { did: bob.did, secretKey: bob.secretKey };

async function openCode(env: unknown, me = asBob): Promise<string> {
  const r = await openEnvelope(env, me);
  return r.ok ? 'ok' : r.error.code;
}

describe('envelopes (§4)', () => {
  it('has a deterministic ID over sender, receiver and sorted record IDs', async () => {
    const a = await plainEnvelope(alice, bob, 3);
    const ids = a.records.map((r) => (r as { id: string }).id);
    expect(a.id).toBe(envelopeId(alice.did, bob.did, [...ids].reverse()));
    const again = await plainEnvelope(alice, bob, 3);
    expect(again.id).toBe(a.id);
  });

  it('opens plain and sealed envelopes and verifies every record', async () => {
    const plain = await plainEnvelope(alice, bob, 3);
    for (const env of [plain, sealEnvelope(plain)]) {
      const r = await openEnvelope(JSON.parse(canonicalize(env)), asBob);
      if (!r.ok) throw new Error(r.error.message);
      expect(r.value.from_did).toBe(alice.did);
      expect(r.value.encoding).toBe(env.encoding);
      expect(r.value.records.every((x) => x.ok)).toBe(true);
      expect(r.value.records).toHaveLength(3);
    }
  });

  it('sealed envelopes hide the sender and the records from the relay', async () => {
    const sealed = sealEnvelope(await plainEnvelope(alice, bob));
    const text = canonicalize(sealed);
    expect(text).not.toContain(alice.did);
    expect(text).not.toContain('note 0');
    expect(Object.keys(sealed).sort()).toEqual(['ciphertext', 'encoding', 'epk', 'id', 'nonce', 'to_did', 'ttl_seconds', 'v']);
  });

  it('seal/open round-trips for any note text (property)', async () => {
    await fc.assert(
      fc.asyncProperty(fc.string(), fc.integer({ min: 60, max: 2592000 }), async (text, ttl) => {
        const { buildPlainEnvelope, signRecord } = await import('../../src/core');
        const rec = await signRecord(
          { parents: [], thread: 'th_p', actor: alice.did, act: 'KNOW', body: { text }, clock: 0, data_type: 'SCALAR', judged_by: null },
          alice.signer,
        );
        const plain = await buildPlainEnvelope({ fromDid: alice.did, toDid: bob.did, records: [rec], ttlSeconds: ttl }, alice.signer);
        const r = await openEnvelope(JSON.parse(canonicalize(sealEnvelope(plain))), asBob);
        expect(r.ok && r.value.records[0]?.ok && r.value.records[0].value.record.body.text === text).toBe(true);
      }),
      { numRuns: 60 },
    );
  });

  it('detects a flipped byte anywhere in the ciphertext, nonce or epk', async () => {
    const sealed = sealEnvelope(await plainEnvelope(alice, bob));
    for (const field of ['ciphertext', 'nonce', 'epk'] as const) {
      const bytes = fromB64u(sealed[field])!;
      for (const i of [0, Math.floor(bytes.length / 2), bytes.length - 1]) {
        const copy = bytes.slice();
        copy[i]! ^= 0x01;
        expect(await openCode({ ...sealed, [field]: toB64u(copy) })).toBe('decryption_failed');
      }
    }
  });

  it('detects a changed outer header (id, to_did) through the AEAD binding', async () => {
    const sealed = sealEnvelope(await plainEnvelope(alice, bob));
    expect(await openCode({ ...sealed, id: 'f'.repeat(64) })).toBe('decryption_failed');
    expect(await openCode({ ...sealed, to_did: alice.did })).toBe('wrong_recipient');
    const carol = newPeer();
    expect(await openCode(sealed, { did: carol.did, secretKey: carol.secretKey })).toBe('wrong_recipient');
    expect(await openCode({ ...sealed, to_did: carol.did }, { did: carol.did, secretKey: carol.secretKey })).toBe('decryption_failed');
  });

  it('detects tampered records, signatures and headers in plain envelopes', async () => {
    const plain = await plainEnvelope(alice, bob, 2);
    const recs = plain.records as { id: string; record: { body: object }; sig: string }[];
    const tamperedRecord = { ...plain, records: [{ ...recs[0]!, record: { ...recs[0]!.record, body: { text: 'evil' } } }, recs[1]] };
    expect(await openCode(tamperedRecord)).toBe('bad_envelope_signature');
    const sigBytes = fromB64u(plain.sig)!;
    sigBytes[5]! ^= 0x80;
    expect(await openCode({ ...plain, sig: toB64u(sigBytes) })).toBe('bad_envelope_signature');
    expect(await openCode({ ...plain, ttl_seconds: 61 })).toBe('bad_envelope_signature');
    expect(await openCode({ ...plain, id: 'a'.repeat(64) })).toBe('envelope_id_mismatch');
    expect(await openCode({ ...plain, from_did: 'did:sync:user:mallory' })).toBe('envelope_id_mismatch');
    const mallory = newPeer();
    expect(
      await openCode({
        ...plain,
        from_did: mallory.did,
        id: envelopeId(
          mallory.did,
          bob.did,
          recs.map((r) => r.id),
        ),
      }),
    ).toBe('bad_envelope_signature');
  });

  it('reports a bad record inside a validly signed envelope on its own, keeping the rest', async () => {
    const { buildPlainEnvelope } = await import('../../src/core');
    const plain = await plainEnvelope(alice, bob, 2);
    const recs = plain.records as { id: string; record: object; sig: string }[];
    const broken = { ...recs[0]!, sig: recs[1]!.sig };
    const env = await buildPlainEnvelope({ fromDid: alice.did, toDid: bob.did, records: [broken, recs[1]] as never }, alice.signer);
    const r = await openEnvelope(env, asBob);
    if (!r.ok) throw new Error(r.error.message);
    expect(r.value.records.map((x) => (x.ok ? 'ok' : x.error.code))).toEqual(['bad_signature', 'ok']);
  });

  it('parse never throws on arbitrary bytes or JSON (property)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 512 }), (bytes) => {
        const r = parseEnvelopeBytes(bytes);
        expect(typeof r.ok).toBe('boolean');
      }),
      { numRuns: 2000 },
    );
    fc.assert(
      fc.property(fc.jsonValue(), (v) => {
        expect(parseEnvelope(v).ok).toBe(false);
        expect(parseEnvelopeBytes(utf8(JSON.stringify(v))).ok).toBe(false);
      }),
      { numRuns: 1000 },
    );
  });

  it('open never throws on mutated envelopes (property)', async () => {
    const sealed = sealEnvelope(await plainEnvelope(alice, bob));
    const plain = await plainEnvelope(alice, bob);
    const keys = [...new Set([...Object.keys(sealed), ...Object.keys(plain)])];
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom<Envelope>(sealed, plain),
        fc.constantFrom(...keys),
        fc.oneof(fc.jsonValue(), fc.constant(undefined), fc.string()),
        async (base, key, value) => {
          const mutated: Record<string, unknown> = { ...base, [key]: value };
          const r = await openEnvelope(mutated, asBob);
          expect(typeof r.ok).toBe('boolean');
        },
      ),
      { numRuns: 400 },
    );
  });

  it('structural parse names the field that is wrong', () => {
    const r = parseEnvelope({ v: 1, id: 'a'.repeat(64), to_did: bob.did, encoding: 'sealed', epk: 'x', nonce: 'y', ciphertext: 'z' });
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.error.message).toContain('epk');
  });
});
