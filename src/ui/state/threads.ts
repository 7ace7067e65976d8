/**
 * Thread conventions of this app on top of the protocol: a thread starts with a record whose body
 * is `{kind: "thread", text: <title>}`; notes are `{kind: "note", text}`. The protocol's own
 * threads (config, pairing) are not shown as conversations.
 */
import type { StoredRecord } from '../../store/types';
import { randomBytes, toHex } from '../../core';

export const SYSTEM_THREADS: ReadonlySet<string> = new Set(['th_engine_config', 'th_federation_pairs']);

export const newThreadId = (): string => `th_${toHex(randomBytes(16))}`;

export function threadTitle(records: readonly StoredRecord[]): string | undefined {
  for (const r of records) {
    const b = r.signed.record.body;
    if (b.kind === 'thread' && typeof b.text === 'string') return b.text;
  }
  return undefined;
}

/** The human text of a record, or a short description of what it carries. */
export function recordText(r: StoredRecord): string {
  const b = r.signed.record.body;
  if (typeof b.text === 'string') return b.text;
  if (typeof b.topic === 'string') return `(${b.topic})`;
  return `(${r.signed.record.act} record)`;
}

export const isTitleRecord = (r: StoredRecord): boolean => r.signed.record.body.kind === 'thread';
