/**
 * The app's thread conventions (src/ui/state/threads.ts) on really signed records: which record
 * is a thread's root, which title shows (PROTOCOL.md §11 "Titles"), what text a record shows.
 */
import { describe, expect, it } from 'vitest';
import { signRecord, type JsonObject, type SyncRecord } from '../../src/core';
import type { StoredRecord } from '../../src/store/types';
import { canRename, isTitleRecord, newThreadId, recordText, SYSTEM_THREADS, threadRoot, threadTitle } from '../../src/ui/state/threads';
import { newPeer, type TestPeer } from '../../support/fixtures';
import { toStored } from '../store/fixtures';

const THREAD = 'th_trip';

async function record(author: TestPeer, clock: number, body: JsonObject, over: Partial<SyncRecord> = {}): Promise<StoredRecord> {
  const r: SyncRecord = {
    parents: [],
    thread: THREAD,
    actor: author.did,
    act: 'INTEND',
    body,
    clock,
    data_type: 'SCALAR',
    judged_by: null,
    ...over,
  };
  return toStored(await signRecord(r, author.signer), { path: 'local' });
}
const title = (author: TestPeer, clock: number, text: string, parents: string[] = []) =>
  record(author, clock, { kind: 'thread', text }, { parents });
const noteBy = (author: TestPeer, clock: number, text: string, parents: string[] = []) =>
  record(author, clock, { kind: 'note', text }, { act: 'KNOW', parents });

const ada = newPeer();
const bob = newPeer();

describe('threadRoot', () => {
  it('is the title record without parents, wherever it sits in the list', async () => {
    const root = await title(ada, 4, 'Plans');
    const later = await title(ada, 1, 'Renamed', [root.id]); // a lower clock, but it has a parent
    const n = await noteBy(bob, 0, 'hi', [root.id]);
    expect(threadRoot([n, later, root])?.id).toBe(root.id);
  });

  it('without a parentless title, the title with the lowest clock; without any title, none', async () => {
    const root = await title(ada, 0, 'Plans');
    const t2 = await title(ada, 2, 'Two', [root.id]);
    const t5 = await title(ada, 5, 'Five', [root.id]);
    expect(threadRoot([t5, t2])?.id).toBe(t2.id);
    expect(threadRoot([await noteBy(ada, 0, 'just a note')])).toBeUndefined();
    expect(threadRoot([])).toBeUndefined();
  });

  it('a record whose body says "thread" but has no text is not a title', async () => {
    const fake = await record(bob, 0, { kind: 'thread', text: 42 });
    const real = await title(ada, 3, 'Plans', ['x'.repeat(64)]);
    expect(threadRoot([fake, real])?.id).toBe(real.id);
    expect(threadTitle([fake])).toBeUndefined();
  });
});

describe('threadTitle and canRename (§11: only the root author renames; the highest clock wins)', () => {
  it('shows the root author’s latest title; others’ titles and notes change nothing', async () => {
    const root = await title(ada, 0, 'Plans');
    const rename1 = await title(ada, 2, 'Trip plans', [root.id]);
    const rename2 = await title(ada, 7, 'Trip plans (June)', [rename1.id]);
    const intruder = await title(bob, 99, 'Hijacked', [rename2.id]);
    const chatter = await noteBy(ada, 100, 'not a title', [rename2.id]);
    expect(threadTitle([root])).toBe('Plans');
    expect(threadTitle([rename2, intruder, chatter, root, rename1])).toBe('Trip plans (June)');
    expect(canRename([root, intruder], ada.did)).toBe(true);
    expect(canRename([root, intruder], bob.did)).toBe(false);
    expect(canRename([root], undefined)).toBe(false);
    expect(canRename([chatter], ada.did)).toBe(false); // no root, nobody renames
  });
});

describe('recordText and isTitleRecord', () => {
  it('shows text when there is text, else the topic, else the act', async () => {
    expect(recordText(await noteBy(ada, 0, 'hello'))).toBe('hello');
    expect(recordText(await record(ada, 1, { topic: 'pair.confirm' }))).toBe('(pair.confirm)');
    expect(recordText(await record(ada, 2, { kind: 'something', n: 1 }, { act: 'DO' }))).toBe('(DO record)');
    expect(recordText(await record(ada, 3, { text: 5, topic: 'x' }))).toBe('(x)'); // text that is not a string is not shown
  });

  it('a title record is one whose body kind is "thread"', async () => {
    expect(isTitleRecord(await title(ada, 0, 'Plans'))).toBe(true);
    expect(isTitleRecord(await noteBy(ada, 1, 'Plans'))).toBe(false);
  });
});

describe('thread IDs', () => {
  it('new IDs are th_ + 32 hex digits and do not repeat', () => {
    const ids = Array.from({ length: 200 }, newThreadId);
    for (const id of ids) expect(id).toMatch(/^th_[0-9a-f]{32}$/);
    expect(new Set(ids).size).toBe(ids.length);
  });

  it('the protocol’s own threads are not conversations, and a new ID is never one of them', () => {
    expect([...SYSTEM_THREADS].sort()).toEqual(['th_engine_config', 'th_federation_pairs']);
    expect(SYSTEM_THREADS.has(newThreadId())).toBe(false);
  });
});
