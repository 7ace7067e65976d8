import { describe, expect, it } from 'vitest';
import { parseRecord, recordId, signRecord, verifySignedRecord, toB64u } from '../../src/core';
import { newPeer, note } from '../../support/fixtures';

describe('records (§3)', () => {
  it('signs and verifies; the ID is the hash of the seven hashed fields', async () => {
    const alice = newPeer();
    const s = await signRecord(note(alice.did, 'hello'), alice.signer);
    expect(s.id).toBe(recordId(s.record));
    const v = await verifySignedRecord(JSON.parse(JSON.stringify(s)));
    expect(v.ok).toBe(true);
  });

  it('does not hash judged_by', () => {
    const alice = newPeer();
    const r = note(alice.did, 'x');
    expect(recordId({ ...r, judged_by: 'a'.repeat(64) })).toBe(recordId(r));
  });

  it('names what failed: tampered body, wrong ID, missing sig, foreign key, label DID', async () => {
    const alice = newPeer();
    const bob = newPeer();
    const s = await signRecord(note(alice.did, 'hello'), alice.signer);
    const tampered = { ...s, record: { ...s.record, body: { kind: 'note', text: 'hellO' } } };
    expect(await code(tampered)).toBe('id_mismatch');
    const reId = { ...tampered, id: recordId(tampered.record) };
    expect(await code(reId)).toBe('bad_signature');
    expect(await code({ id: s.id, record: s.record })).toBe('missing_signature');
    const bobSig = await signRecord(note(alice.did, 'hello'), bob.signer);
    expect(await code(bobSig)).toBe('bad_signature');
    const label = await signRecord(note('did:sync:user:alice', 'hi'), alice.signer);
    expect(await code(label)).toBe('unverifiable_actor');
    expect(await code({ ...s, sig: toB64u(new Uint8Array(10)) })).toBe('bad_signature');
    expect(await code(null)).toBe('invalid_record');
    expect(await code({ ...s, extra: 1 })).toBe('invalid_record');
  });

  it('reports what cannot be canonicalised as a failure, never by throwing', async () => {
    const alice = newPeer();
    const s = await signRecord(note(alice.did, 'hello'), alice.signer);
    const loneInBody = { ...s, record: { ...s.record, body: { kind: 'note', text: 'a\uD800b' } } };
    const loneInActor = { ...s, record: { ...s.record, actor: `${alice.did}\uDC00` } }; // DID syntax allows it
    for (const [input, where] of [
      [loneInBody, '$.body.text'],
      [loneInActor, '$.actor'],
    ] as const) {
      const v = await verifySignedRecord(input);
      expect(v.ok).toBe(false);
      if (!v.ok) {
        expect(v.error.code).toBe('invalid_record');
        expect(v.error.message).toContain(`lone UTF-16 surrogate at ${where}`);
      }
    }
  });

  it.each([
    ['parents unsorted', { parents: ['b'.repeat(64), 'a'.repeat(64)] }],
    ['parents duplicate', { parents: ['a'.repeat(64), 'a'.repeat(64)] }],
    ['parents not IDs', { parents: ['xyz'] }],
    ['thread without prefix', { thread: 'test' }],
    ['thread too long', { thread: 'th_' + 'a'.repeat(129) }],
    ['unknown act', { act: 'SHOUT' }],
    ['body not an object', { body: [1] }],
    ['negative clock', { clock: -1 }],
    ['fractional clock', { clock: 1.5 }],
    ['unknown data_type', { data_type: 'BLOB' }],
    ['judged_by not an ID', { judged_by: 'nope' }],
    ['actor not a DID', { actor: 'alice' }],
  ])('rejects a record with %s', (_name, patch) => {
    const r = parseRecord({ ...note('did:sync:user:alice', 'x'), ...patch });
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.error.code).toBe('invalid_record');
  });
});

async function code(input: unknown): Promise<string> {
  const r = await verifySignedRecord(input);
  return r.ok ? 'ok' : r.error.code;
}
