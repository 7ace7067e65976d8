/** Envelopes for relay tests: each call yields a distinct envelope ID (fresh record content). */
import { randomUUID } from 'node:crypto';
import { buildPlainEnvelope, sealEnvelope, signRecord, type PlainEnvelope, type SealedEnvelope } from '../../src/core';
import { note, type TestPeer } from '../../support/fixtures';

export async function uniquePlain(from: TestPeer, to: TestPeer, n = 1): Promise<PlainEnvelope> {
  const tag = randomUUID();
  const records = await Promise.all(Array.from({ length: n }, (_, i) => signRecord(note(from.did, `${tag} ${i}`, i), from.signer)));
  return buildPlainEnvelope({ fromDid: from.did, toDid: to.did, records }, from.signer);
}

export async function uniqueSealed(from: TestPeer, to: TestPeer, n = 1): Promise<SealedEnvelope> {
  return sealEnvelope(await uniquePlain(from, to, n));
}
