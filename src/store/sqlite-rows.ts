/** Rows of the peer database's tables (./sqlite-schema.ts) and their mapping to store values. */
import type { SignedRecord } from '../core';
import type { ArrivalPath, DeliveryPath, InviteRecord, OutboxEntry, ReceiveState, StoredRecord } from './types';

export interface IdentityRow {
  did: string;
  name: string;
  secret_key: Buffer;
  created_at: number;
}
export interface RecordRow {
  id: string;
  signed: string;
  thread: string;
  actor: string;
  clock: number;
  received_at: number;
  path: string;
  via: string | null;
}
export interface OutboxRow {
  id: string;
  to_did: string;
  record_ids: string;
  records: string;
  envelope: string;
  created_at: number;
  expires_at: number;
  path: string;
  attempts: number;
  next_attempt_at: number;
  last_error: string | null;
  delivered_to: string | null;
  delivered_at: number | null;
  rejected_reason: string | null;
}
export interface ReceiveStateRow {
  relay_url: string;
  last_receive_at: number | null;
  last_success_at: number | null;
  backlog: number;
  last_error: string | null;
  last_latency_ms: number | null;
}
export interface InviteRow {
  nonce: string;
  exp: number;
  threads: string;
  created_at: number;
  used_by: string | null;
}

// Rows come only from this module's own writes, so their JSON columns are trusted.
const parseJson = <T>(text: string): T => JSON.parse(text) as T;

/** Spreads `{ [key]: value }` only when the column is not NULL, so optional fields stay absent. */
const opt = <K extends string, V>(key: K, value: V | null): { [P in K]?: V } =>
  (value === null ? {} : { [key]: value }) as { [P in K]?: V };

export const toRecord = (r: RecordRow): StoredRecord => ({
  id: r.id,
  signed: parseJson<SignedRecord>(r.signed),
  thread: r.thread,
  actor: r.actor,
  clock: r.clock,
  receivedAt: r.received_at,
  path: r.path as ArrivalPath,
  ...opt('via', r.via),
});

export const toOutbox = (r: OutboxRow): OutboxEntry => ({
  id: r.id,
  toDid: r.to_did,
  recordIds: parseJson<string[]>(r.record_ids),
  records: parseJson<SignedRecord[]>(r.records),
  envelope: r.envelope,
  createdAt: r.created_at,
  expiresAt: r.expires_at,
  path: r.path as DeliveryPath,
  attempts: r.attempts,
  nextAttemptAt: r.next_attempt_at,
  ...opt('lastError', r.last_error),
  ...opt('deliveredTo', r.delivered_to),
  ...opt('deliveredAt', r.delivered_at),
  ...opt('rejectedReason', r.rejected_reason),
});

export const toReceiveState = (r: ReceiveStateRow): ReceiveState => ({
  relayUrl: r.relay_url,
  ...opt('lastReceiveAt', r.last_receive_at),
  ...opt('lastSuccessAt', r.last_success_at),
  backlog: r.backlog,
  ...opt('lastError', r.last_error),
  ...opt('lastLatencyMs', r.last_latency_ms),
});

export const toInvite = (r: InviteRow): InviteRecord => ({
  nonce: r.nonce,
  exp: r.exp,
  threads: parseJson<string[]>(r.threads),
  createdAt: r.created_at,
  ...opt('usedBy', r.used_by),
});
