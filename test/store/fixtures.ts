/**
 * Really signed records and other store values for the contract suite. Browser-safe: only
 * src/core and the store types.
 */
import { signRecord, type SignedRecord, type SyncRecord } from '../../src/core';
import { newPeer, type TestPeer } from '../../support/fixtures';
import type { ArrivalPath, Identity, InviteRecord, OutboxEntry, StoredRecord } from '../../src/store/types';

export const T0 = 1_700_000_000_000;
export const DAY = 86_400_000;

export type TestActor = TestPeer;
export const newActor = newPeer;

export function identityOf(actor: TestActor, name = 'laptop'): Identity {
  return { did: actor.did, name, secretKey: actor.secretKey, createdAt: T0 };
}

export interface RecordSpec {
  readonly thread?: string;
  readonly clock?: number;
  readonly text?: string;
}

export function signNote(actor: TestActor, spec: RecordSpec = {}): Promise<SignedRecord> {
  const record: SyncRecord = {
    parents: [],
    thread: spec.thread ?? 'th_test',
    actor: actor.did,
    act: 'KNOW',
    body: { kind: 'note', text: spec.text ?? `note ${spec.clock ?? 0}` },
    clock: spec.clock ?? 0,
    data_type: 'SCALAR',
    judged_by: null,
  };
  return signRecord(record, actor.signer);
}

export interface ArrivalSpec {
  readonly receivedAt?: number;
  readonly path?: ArrivalPath;
  readonly via?: string;
}

/** The row a store keeps for `signed`: denormalised index fields plus arrival facts. */
export function toStored(signed: SignedRecord, arrival: ArrivalSpec = {}): StoredRecord {
  const path = arrival.path ?? 'relay';
  return {
    id: signed.id,
    signed,
    thread: signed.record.thread,
    actor: signed.record.actor,
    clock: signed.record.clock,
    receivedAt: arrival.receivedAt ?? T0,
    path,
    ...(path === 'relay' ? { via: arrival.via ?? 'https://relay.example' } : {}),
  };
}

export async function storedNote(actor: TestActor, spec: RecordSpec & ArrivalSpec = {}): Promise<StoredRecord> {
  return toStored(await signNote(actor, spec), spec);
}

/** `count` notes by `actor` on `thread` with clocks start, start+1, … */
export function storedNotes(actor: TestActor, count: number, thread = 'th_test', start = 0): Promise<StoredRecord[]> {
  return Promise.all(Array.from({ length: count }, (_, i) => storedNote(actor, { thread, clock: start + i, receivedAt: T0 + i })));
}

export async function outboxEntry(from: TestActor, to: TestActor, over: Partial<OutboxEntry> & { id: string }): Promise<OutboxEntry> {
  const record = await signNote(from, { text: over.id });
  return {
    toDid: to.did,
    recordIds: [record.id],
    records: [record],
    envelope: JSON.stringify({ v: 1, id: over.id, to_did: to.did, encoding: 'sealed' }),
    createdAt: T0,
    expiresAt: T0 + 7 * DAY,
    path: 'pending',
    attempts: 0,
    nextAttemptAt: T0,
    ...over,
  };
}

export function invite(nonce: string, over: Partial<InviteRecord> = {}): InviteRecord {
  return { nonce, exp: T0 + DAY, threads: ['th_shared', 'th_other'], createdAt: T0, ...over };
}
