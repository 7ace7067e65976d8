/**
 * Thread conventions of this app on top of the protocol: a thread starts with a record whose body
 * is `{kind: "thread", text: <title>}`; notes are `{kind: "note", text}`. The protocol's own
 * threads (config, pairing) are not shown as conversations.
 */
import type { StoredRecord } from '../../sync/store-types';
import { randomBytes, toHex } from '../../core';

export const SYSTEM_THREADS: ReadonlySet<string> = new Set(['th_engine_config', 'th_federation_pairs']);

export const newThreadId = (): string => `th_${toHex(randomBytes(16))}`;

const isThreadBody = (r: StoredRecord): boolean => r.signed.record.body.kind === 'thread' && typeof r.signed.record.body.text === 'string';

/** The thread's root: its first title record (no parents; else the lowest clock). */
export function threadRoot(records: readonly StoredRecord[]): StoredRecord | undefined {
  const titles = records.filter(isThreadBody);
  return titles.find((r) => r.signed.record.parents.length === 0) ?? [...titles].sort((a, b) => a.clock - b.clock)[0];
}

/**
 * PROTOCOL.md §11 "Titles": a rename is a later title record by the root's author, and its
 * highest clock wins; title records by anyone else are ignored.
 */
export function threadTitle(records: readonly StoredRecord[]): string | undefined {
  const root = threadRoot(records);
  if (!root) return undefined;
  let best = root;
  for (const r of records) if (isThreadBody(r) && r.actor === root.actor && r.clock > best.clock) best = r;
  return best.signed.record.body.text as string;
}

/** Whether `did` may rename the thread (§11: only the root's author). */
export const canRename = (records: readonly StoredRecord[], did: string | undefined): boolean => threadRoot(records)?.actor === did;

/** The human text of a record, or a short description of what it carries. */
export function recordText(r: StoredRecord): string {
  const b = r.signed.record.body;
  if (typeof b.text === 'string') return b.text;
  if (typeof b.topic === 'string') return `(${b.topic})`;
  return `(${r.signed.record.act} record)`;
}

export const isTitleRecord = (r: StoredRecord): boolean => r.signed.record.body.kind === 'thread';
