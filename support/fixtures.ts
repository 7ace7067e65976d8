import {
  buildPlainEnvelope,
  createSigner,
  didFromPublicKey,
  generateSecretKey,
  signRecord,
  type PlainEnvelope,
  type SignedRecord,
  type Signer,
  type SyncRecord,
} from '../src/core/index';

export interface TestPeer {
  readonly did: string;
  readonly secretKey: Uint8Array;
  readonly signer: Signer;
}

export function newPeer(): TestPeer {
  const secretKey = generateSecretKey();
  const signer = createSigner(secretKey);
  return { did: didFromPublicKey(signer.publicKey), secretKey, signer };
}

export function note(actor: string, text: string, clock = 0, thread = 'th_test'): SyncRecord {
  return { parents: [], thread, actor, act: 'KNOW', body: { kind: 'note', text }, clock, data_type: 'SCALAR', judged_by: null };
}

export async function signedNotes(peer: TestPeer, n: number, thread = 'th_test'): Promise<SignedRecord[]> {
  return Promise.all(Array.from({ length: n }, (_, i) => signRecord(note(peer.did, `note ${i}`, i, thread), peer.signer)));
}

export async function plainEnvelope(from: TestPeer, to: TestPeer, n = 2): Promise<PlainEnvelope> {
  return buildPlainEnvelope({ fromDid: from.did, toDid: to.did, records: await signedNotes(from, n) }, from.signer);
}
