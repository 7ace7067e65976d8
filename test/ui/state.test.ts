/**
 * The UI's pure state modules (src/ui/state): each test here failed before the fix it names
 * (issue 15), because the behaviour did not exist or was wrong.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { checkName, cleanName, displayName, MAX_NAME_LENGTH } from '../../src/ui/state/names';
import { MAX_NOTE_BYTES, noteBytes, noteProblem } from '../../src/ui/state/notes';
import { checkSetup } from '../../src/ui/state/setup';
import { flashAfterNavigation, makeFlash } from '../../src/ui/state/flash';
import { LocalLists, type KeyValue } from '../../src/ui/state/local-lists';
import { acceptProblem, checkWords, counterWords, expiryWords, inviteProblem, OWN_INVITE } from '../../src/ui/state/words';
import { canRename, threadTitle } from '../../src/ui/state/threads';
import { COUNTER_NAMES, type StoredRecord } from '../../src/store/types';

const DAY = 86_400_000;

describe('names (bug 5: bidi overrides and endless names)', () => {
  it('removes bidi overrides, isolates, marks and control characters', () => {
    expect(cleanName('Ada\u202Egnp.exe')).toBe('Adagnp.exe');
    expect(cleanName('\u2066Bob\u2069\u200E\u200F\u061C')).toBe('Bob');
    expect(cleanName('Eve\u0000\u0007\u001B[31m\u007F\u0085')).toBe('Eve[31m');
    expect(cleanName(' two\n\tlines\u2028here ')).toBe('two lines here');
  });

  it('never lets a bidi control or control character through, whatever the input', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 300 }), (s) => {
        const shown = displayName(s);
        // eslint-disable-next-line no-control-regex
        expect(shown).not.toMatch(/[\u0000-\u001F\u007F-\u009F\u061C\u200E\u200F\u202A-\u202E\u2066-\u2069\u2028\u2029]/);
        expect(Array.from(shown).length).toBeLessThanOrEqual(MAX_NAME_LENGTH);
      }),
    );
  });

  it('shortens a 300-character name visibly and refuses it as input', () => {
    const long = 'x'.repeat(300);
    expect(displayName(long)).toBe(`${'x'.repeat(MAX_NAME_LENGTH - 1)}…`);
    expect(checkName(long, 'Your name')).toEqual({
      ok: false,
      message: `Your name can have at most ${MAX_NAME_LENGTH} characters (this one has 300).`,
    });
    expect(checkName('\u202E  ', 'Your name')).toEqual({ ok: false, message: 'Your name cannot be empty.' });
    expect(checkName(' Ada\u202E ')).toEqual({ ok: true, name: 'Ada' });
  });
});

describe('note size (bug 3: a 1 MB paste was silently cut to 10,000 characters)', () => {
  it('allows exactly the CLI limit and refuses one byte more, with a message', () => {
    expect(MAX_NOTE_BYTES).toBe(131_071);
    expect(noteProblem('a'.repeat(MAX_NOTE_BYTES))).toBeUndefined();
    expect(noteProblem('a'.repeat(MAX_NOTE_BYTES + 1))).toMatch(/at most 128 KB/);
    expect(noteProblem('a'.repeat(1_000_000))).toMatch(/^This note is 977 KB; a note can be at most 128 KB/);
  });

  it('counts UTF-8 bytes, as the command line does', () => {
    expect(noteBytes('é')).toBe(2);
    expect(noteBytes('😀')).toBe(4);
    expect(noteProblem('😀'.repeat(Math.floor(MAX_NOTE_BYTES / 4) + 1))).toMatch(/at most/);
    expect(noteProblem('  \n')).toBe('Write something first.');
  });
});

describe('setup (bug 1: a bad relay URL after the identity was created trapped the form)', () => {
  it('finds a non-http relay before anything is created', () => {
    expect(checkSetup({ name: 'Ada', relay: 'ftp://127.0.0.1:8787' })).toEqual({
      ok: false,
      field: 'relay',
      message: '“ftp://127.0.0.1:8787” is not a web address starting with https:// (or http://).',
    });
    expect(checkSetup({ name: 'Ada', relay: 'not a url' })).toMatchObject({ ok: false, field: 'relay' });
    expect(checkSetup({ name: '', relay: 'ftp://x' })).toMatchObject({ ok: false, field: 'name' });
  });

  it('accepts an http(s) relay (normalised) or none', () => {
    expect(checkSetup({ name: ' Ada ', relay: ' http://127.0.0.1:8787/ ' })).toEqual({
      ok: true,
      name: 'Ada',
      relay: 'http://127.0.0.1:8787',
    });
    expect(checkSetup({ name: 'Ada', relay: '   ' })).toEqual({ ok: true, name: 'Ada', relay: undefined });
  });
});

describe('flash messages (bug 4: they outlived their screen)', () => {
  it('belongs to the screen it was said on and goes on navigation', () => {
    const saved = makeFlash('Note saved.', 'ok', { screen: 'thread', thread: 'th_a' });
    expect(flashAfterNavigation(saved, { screen: 'sync' })).toBeUndefined();
    expect(flashAfterNavigation(saved, { screen: 'thread', thread: 'th_b' })).toBeUndefined();
    expect(flashAfterNavigation(saved, { screen: 'thread', thread: 'th_a' })).toBe(saved);
    expect(flashAfterNavigation(makeFlash('Doctor finished', 'info', { screen: 'doctor' }), { screen: 'me' })).toBeUndefined();
  });
});

describe('local lists (archive, delete here)', () => {
  const memory = (): KeyValue & { data: Map<string, string> } => {
    const data = new Map<string, string>();
    return { data, getItem: (k) => data.get(k) ?? null, setItem: (k, v) => void data.set(k, v) };
  };

  it('adds and removes, and survives a damaged entry', () => {
    const kv = memory();
    const lists = new LocalLists(kv);
    lists.set('archived-threads', 'th_a', true);
    lists.set('archived-threads', 'th_b', true);
    lists.set('archived-threads', 'th_a', false);
    expect([...new LocalLists(kv).get('archived-threads')]).toEqual(['th_b']);
    kv.data.set('spl-ui:hidden-notes', '{not json');
    expect(lists.get('hidden-notes').size).toBe(0);
    kv.data.set('spl-ui:hidden-notes', '["r1", 5, null]');
    expect([...lists.get('hidden-notes')]).toEqual(['r1']);
    expect(new LocalLists(undefined).get('deleted-threads').size).toBe(0);
  });
});

describe('words a person knows (bug 7 and the screens)', () => {
  it('explains invite problems without developer terms', () => {
    for (const code of ['invalid_invite', 'bad_invite_signature', 'expired_invite'] as const) {
      const text = inviteProblem(code, Date.now() - 2 * DAY);
      expect(text).not.toMatch(/base64|payload|JSON|UTF-8|signature does not verify|did:/i);
      expect(text).toMatch(/\.$/);
    }
    expect(inviteProblem('expired_invite', 1_000_000 - 2 * DAY, 1_000_000)).toBe(
      'This invite has expired (2 days ago). Ask the other device for a new one.',
    );
    expect(acceptProblem('this invite is your own: open it on the other device')).toBe(OWN_INVITE);
  });

  it('shows expiry as local relative time', () => {
    const now = Date.UTC(2026, 0, 1);
    expect(expiryWords(now + 6 * DAY + 1000, now)).toBe('Expires in 6 days');
    expect(expiryWords(now + 3 * 3600_000, now)).toBe('Expires in 3 hours');
    expect(expiryWords(now - DAY, now)).toBe('Expired yesterday');
  });

  it('names every counter in words, and no check shows its ID or protocol terms', () => {
    for (const name of COUNTER_NAMES) expect(counterWords[name]).toMatch(/^[A-Z][a-z]/);
    const checks = [
      { id: 'dropped_unpaired', status: 'warn' as const, message: '1 record(s) from unpaired actors were dropped' },
      { id: 'rejected_content', status: 'warn' as const, message: '2 envelope(s) and 0 record(s) failed verification and were dropped' },
      {
        id: 'periodic_sync',
        status: 'warn' as const,
        message: 'periodic background sync is prompt: install the app to let it receive in the background',
      },
      { id: 'outbox_stuck', status: 'warn' as const, message: '3 envelope(s) undelivered for a while (e.g. to did:key:z6: x)' },
      { id: 'receive_task', status: 'pass' as const, message: 'the receive task last ran 5 s ago' },
    ];
    for (const c of checks) {
      const w = checkWords(c);
      expect(`${w.title} ${w.summary} ${w.fix ?? ''}`).not.toMatch(/record|envelope|unpaired actors|LEARN|_/i);
      if (c.status !== 'pass') expect(w.fix).toBeTruthy();
    }
    expect(checkWords(checks[0]!).summary).toBe('1 note from devices you have not paired with was ignored.');
    expect(checkWords(checks[2]!).fixAt).toEqual({ label: 'Install', href: '#/me' });
  });
});

describe('thread titles (PROTOCOL.md §11 "Titles")', () => {
  const rec = (id: string, actor: string, clock: number, text: string, parents: string[] = []): StoredRecord =>
    ({
      id,
      thread: 'th_t',
      actor,
      clock,
      receivedAt: clock,
      path: 'local',
      signed: {
        record: {
          parents,
          thread: 'th_t',
          actor,
          act: 'INTEND',
          body: { kind: 'thread', text },
          clock,
          data_type: 'SCALAR',
          judged_by: null,
        },
      },
    }) as unknown as StoredRecord;

  it("a rename by the root's author wins by highest clock; anyone else's is ignored", () => {
    const root = rec('r0', 'did:a', 1, 'Plans');
    const rename = rec('r1', 'did:a', 3, 'Trip plans', ['r0']);
    const intruder = rec('r2', 'did:b', 9, 'Hijacked', ['r1']);
    expect(threadTitle([root])).toBe('Plans');
    expect(threadTitle([intruder, rename, root])).toBe('Trip plans');
    expect(canRename([root, intruder], 'did:a')).toBe(true);
    expect(canRename([root, intruder], 'did:b')).toBe(false);
  });
});

describe('doctor wording of relay checks', () => {
  it('names the relay without capitalising its URL', () => {
    expect(checkWords({ id: 'relay_reachable', status: 'pass', message: 'http://127.0.0.1:1 → /health 200 ok (8 ms)' }).summary).toBe(
      'The relay at http://127.0.0.1:1 answers (8 ms).',
    );
    expect(
      checkWords({
        id: 'relay_reachable',
        status: 'fail',
        message: 'http://127.0.0.1:1 is not reachable: fetch failed; you will not receive anything through it',
      }).summary,
    ).toBe('The relay at http://127.0.0.1:1 cannot be reached (fetch failed), so nothing arrives through it.');
  });
});
