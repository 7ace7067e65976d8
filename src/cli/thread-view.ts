/** How the CLI reads a thread: its title (PROTOCOL.md §11 "Titles"), record times and order. */
import type { StoredRecord } from '../store/types';

const titleText = (r: StoredRecord): string | undefined => {
  const b = r.signed.record.body;
  return b.kind === 'thread' && typeof b.text === 'string' ? b.text : undefined;
};

/**
 * §11: title records have body `{"kind": "thread", "text"}`; the first is the thread's root (a
 * root has no parents, §3; among several, the lowest clock, then ID, so every peer picks the
 * same); a rename is a later title record by the root's author, and its highest clock wins.
 */
export function threadTitle(records: readonly StoredRecord[]): { text: string; root: StoredRecord; by: StoredRecord } | undefined {
  const titles = records.filter((r) => titleText(r) !== undefined);
  const rank = (r: StoredRecord): [number, number, string] => [r.signed.record.parents.length === 0 ? 0 : 1, r.clock, r.id];
  const root = titles.reduce<StoredRecord | undefined>((best, r) => {
    if (!best) return r;
    const [a, b] = [rank(r), rank(best)];
    return a[0] < b[0] || (a[0] === b[0] && (a[1] < b[1] || (a[1] === b[1] && a[2] < b[2]))) ? r : best;
  }, undefined);
  if (!root) return undefined;
  const by = titles.filter((r) => r.actor === root.actor).reduce((best, r) => (r.clock > best.clock ? r : best), root);
  return { text: titleText(by) ?? '', root, by };
}

/** The record's own time (`body.at`, unix ms, set by the app and `spl emit`); the protocol record has none. */
export function ownTime(r: StoredRecord): number | undefined {
  const at = r.signed.record.body.at;
  return typeof at === 'number' && Number.isSafeInteger(at) && at > 0 ? at : undefined;
}

/** Time order: the record's own time, else its arrival here; ties by clock, then ID. */
export function inTimeOrder(records: readonly StoredRecord[]): StoredRecord[] {
  const key = (r: StoredRecord): number => ownTime(r) ?? r.receivedAt;
  return [...records].sort((a, b) => key(a) - key(b) || a.clock - b.clock || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
}

/** "Written": the record's own time as ISO 8601, else its clock. */
export const writtenLabel = (r: StoredRecord): string => {
  const at = ownTime(r);
  return at !== undefined ? new Date(at).toISOString() : `clock ${r.clock}`;
};

export function recordText(r: StoredRecord): string {
  const b = r.signed.record.body;
  if (typeof b.text === 'string') return b.text;
  return JSON.stringify(b);
}

/** The latest note's time (own time, else arrival), if the thread has a note. */
export function lastNoteAt(records: readonly StoredRecord[]): number | undefined {
  let last: number | undefined;
  for (const r of records) {
    if (r.signed.record.body.kind !== 'note') continue;
    const t = ownTime(r) ?? r.receivedAt;
    if (last === undefined || t > last) last = t;
  }
  return last;
}
