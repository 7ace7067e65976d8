/**
 * `spl` as people use it: output piped into a slow reader, notes from stdin or a file, invite
 * links that open an app the peer knows (never a made-up host), and threads with their titles.
 */
import { spawn, spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signRecord, type SyncRecord } from '../../src/core';
import { openNodePeer } from '../../src/cli/node-peer';
import { homePaths } from '../../src/cli/home';
import { ROOT } from '../../support/paths';
import { startRelayProcess, type RelayProcess } from '../../support/relay-process';
import { cleanEnv, remotePeer, removeHomes, spl, SPL_BIN, splProcess, tempHome } from './helpers';

let relay: RelayProcess;
beforeAll(async () => {
  relay = await startRelayProcess(['--no-rate-limit']);
});
afterAll(async () => {
  await relay?.stop();
  await removeHomes();
});

async function initHome(name: string): Promise<string> {
  const home = await tempHome();
  const r = await spl(home, 'init', '--name', name);
  expect(r.code, r.stderr).toBe(0);
  return home;
}

/** Runs `spl args…` with stdout into a pipe this test drains one chunk at a time, slowly. */
function splIntoSlowReader(args: readonly string[]): Promise<{ code: number | null; stdout: string; stderr: string; chunks: number }> {
  return new Promise((resolve, reject) => {
    const proc = spawn(process.execPath, [SPL_BIN, ...args], { cwd: ROOT, env: cleanEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    proc.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const exited = new Promise<number | null>((r) => proc.once('exit', (code) => r(code)));
    void (async () => {
      const chunks: Buffer[] = [];
      // A slow consumer (a pager, a program busy with each chunk): the pipe fills and the writer
      // must wait for it. The pauses shape the load; the result waits on end of stream and exit.
      for await (const chunk of proc.stdout) {
        chunks.push(chunk as Buffer);
        await new Promise((r) => setTimeout(r, 15));
      }
      resolve({ code: await exited, stdout: Buffer.concat(chunks).toString('utf8'), stderr, chunks: chunks.length });
    })().catch(reject);
  });
}

describe('output', () => {
  it('spl records --json into a slow pipe: every byte arrives, valid JSON', async () => {
    const home = await initHome('Writer');
    const notes = 5;
    for (let i = 0; i < notes; i++) {
      const r = await spl(home, 'emit', '--thread', 'th_big', '--text', `${i} `.padEnd(60_000, String.fromCharCode(97 + i)));
      expect(r.code, r.stderr).toBe(0);
    }
    const out = await splIntoSlowReader(['--home', home, 'records', '--thread', 'th_big', '--json']);
    expect(out.code, out.stderr).toBe(0);
    expect(Buffer.byteLength(out.stdout)).toBeGreaterThan(200 * 1024);
    expect(out.chunks).toBeGreaterThan(1); // it did go through the pipe in pieces
    const parsed = JSON.parse(out.stdout) as { record: { body: { text: string } } }[];
    expect(parsed.map((r) => r.record.body.text.slice(0, 2))).toEqual(['0 ', '1 ', '2 ', '3 ', '4 ']);
    expect(parsed.every((r) => r.record.body.text.length === 60_000)).toBe(true);
  });

  it('a reader that leaves early (| head) ends spl quietly', async () => {
    const home = await initHome('Writer');
    for (let i = 0; i < 3; i++) await spl(home, 'emit', '--thread', 'th_big', '--text', 'x'.repeat(100_000));
    const proc = spawn(process.execPath, [SPL_BIN, '--home', home, 'records', '--thread', 'th_big', '--json'], {
      cwd: ROOT,
      env: cleanEnv(),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    proc.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const exited = new Promise<number | null>((r) => proc.once('exit', (code) => r(code)));
    await new Promise<void>((r) => proc.stdout.once('data', () => r()));
    proc.stdout.destroy(); // what head does after its lines
    expect(await exited).toBe(0);
    expect(stderr).toBe('');
  });
});

describe('compiled bins', () => {
  it('say how to build when dist/node is missing', async () => {
    const copy = await tempHome(); // a package without dist/: only the bins
    mkdirSync(join(copy, 'bin'));
    for (const bin of ['spl.js', 'spl-relay.js']) copyFileSync(join(ROOT, 'bin', bin), join(copy, 'bin', bin));
    writeFileSync(join(copy, 'package.json'), '{"type":"module"}');
    for (const [bin, name] of [
      ['spl.js', 'spl'],
      ['spl-relay.js', 'spl-relay'],
    ] as const) {
      const r = spawnSync(process.execPath, [join(copy, 'bin', bin), '--help'], { encoding: 'utf8' });
      expect(r.status, bin).toBe(1);
      expect(r.stderr).toBe(
        `${name}: the compiled ${name === 'spl' ? 'CLI' : 'relay'} is missing (dist/node/${bin}): run npm run build:node\n`,
      );
    }
  });
});

describe('spl emit: the note from --text, stdin or a file', () => {
  it('--text - reads stdin; --file reads the file; a literal "-" is never sent', async () => {
    const home = await initHome('Writer');
    const piped = await splProcess(
      ['--home', home, 'emit', '--thread', 'th_in', '--text', '-'],
      cleanEnv(),
      30_000,
      'line one\nline two\n',
    );
    expect(piped.code, piped.stderr).toBe(0);
    const file = join(await tempHome(), 'note.md');
    writeFileSync(file, '# From a file\n\nwith – unicode ✓\n');
    const fromFile = await spl(home, 'emit', '--thread', 'th_in', '--file', file);
    expect(fromFile.code, fromFile.stderr).toBe(0);
    const texts = (
      JSON.parse((await spl(home, 'records', '--thread', 'th_in', '--json')).stdout) as { record: { body: { text: string } } }[]
    ).map((r) => r.record.body.text);
    expect(texts).toEqual(['line one\nline two', '# From a file\n\nwith – unicode ✓']);

    const empty = await splProcess(['--home', home, 'emit', '--thread', 'th_in', '--text', '-'], cleanEnv(), 30_000, '\n');
    expect(empty.code).toBe(2);
    expect(empty.stderr).toBe('error: the note is empty (stdin)\n');
    const huge = await splProcess(['--home', home, 'emit', '--thread', 'th_in', '--text', '-'], cleanEnv(), 30_000, 'y'.repeat(300_000));
    expect(huge.code).toBe(2);
    expect(huge.stderr).toMatch(/^error: the note is 300000 bytes; at most 131071 fit in one record\n$/);
    expect(JSON.parse((await spl(home, 'records', '--thread', 'th_in', '--json')).stdout)).toHaveLength(2); // nothing stored for the refused ones
  });
});

describe('invite links open an app the peer knows', () => {
  const linkOf = (stdout: string): string => (JSON.parse(stdout) as { link: string }).link;

  it('without any app URL: a bare syncropel: link and a note on how to set one, never a made-up host', async () => {
    const home = await initHome('Laptop');
    await spl(home, 'config', 'relay', 'set', relay.url, '--for-pair', 'all');
    const text = await spl(home, 'pair', 'invite', '--no-qr');
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout).toMatch(/\nsyncropel:#pair=[A-Za-z0-9_-]+\n/);
    expect(text.stdout).toContain('No app URL is set');
    expect(text.stdout).toContain('spl config app-url set https://');
    expect(text.stdout.replace('https://<where your Syncropel app is served>/', '')).not.toMatch(/https?:\/\/|syncropel\.local/);
    const json = await spl(home, 'pair', 'invite', '--json');
    expect(JSON.parse(json.stdout)).toMatchObject({ app_url: null });
    expect(linkOf(json.stdout)).toMatch(/^syncropel:#pair=/);
    expect(json.stderr).toContain('No app URL is set');
    expect((await spl(home, 'config', 'app-url', 'show')).stdout).toMatch(/^no app URL/);
  });

  it('uses --app-url, else $SPL_APP_URL, else the configured one', async () => {
    const home = await initHome('Laptop');
    await spl(home, 'config', 'relay', 'set', relay.url, '--for-pair', 'all');
    const set = await spl(home, 'config', 'app-url', 'set', 'https://notes.example.org/syncropel/');
    expect(set.code, set.stderr).toBe(0);
    expect(linkOf((await spl(home, 'pair', 'invite', '--json')).stdout)).toMatch(/^https:\/\/notes\.example\.org\/syncropel\/#pair=/);
    expect(JSON.parse((await spl(home, 'config', 'app-url', 'show', '--json')).stdout)).toEqual({
      url: 'https://notes.example.org/syncropel/',
      source: 'config',
    });

    const viaEnv = await splProcess(['--home', home, 'pair', 'invite', '--json'], cleanEnv({ SPL_APP_URL: 'https://env.example/' }));
    expect(viaEnv.code, viaEnv.stderr).toBe(0);
    expect(linkOf(viaEnv.stdout)).toMatch(/^https:\/\/env\.example\/#pair=/);
    const badEnv = await splProcess(['--home', home, 'pair', 'invite'], cleanEnv({ SPL_APP_URL: 'javascript:alert(1)' }));
    expect(badEnv.code).toBe(2);
    expect(badEnv.stderr).toMatch(/^error: SPL_APP_URL must be an http\(s\) URL/);
    const viaFlag = await spl(home, '--app-url', 'http://127.0.0.1:5173/', 'pair', 'invite', '--json');
    expect(linkOf(viaFlag.stdout)).toMatch(/^http:\/\/127\.0\.0\.1:5173\/#pair=/);

    expect((await spl(home, 'config', 'app-url', 'clear')).code).toBe(0);
    expect(linkOf((await spl(home, 'pair', 'invite', '--json')).stdout)).toMatch(/^syncropel:#pair=/);
  });

  it('after accepting an invite link, its own invites open the same app', async () => {
    const inviter = await initHome('Laptop');
    await spl(inviter, 'config', 'relay', 'set', relay.url, '--for-pair', 'all');
    await spl(inviter, 'config', 'app-url', 'set', 'https://relay.example.net/syncropel/');
    const link = linkOf((await spl(inviter, 'pair', 'invite', '--json')).stdout);

    const phone = await initHome('Phone');
    const acc = await spl(phone, 'pair', 'accept', link);
    expect(acc.code, acc.stderr).toBe(0);
    expect(JSON.parse((await spl(phone, 'config', 'app-url', 'show', '--json')).stdout)).toEqual({
      url: 'https://relay.example.net/syncropel/',
      source: 'paired',
    });
    expect(linkOf((await spl(phone, 'pair', 'invite', '--json')).stdout)).toMatch(/^https:\/\/relay\.example\.net\/syncropel\/#pair=/);

    // A bare payload names no app: nothing is learnt from it.
    const tablet = await initHome('Tablet');
    const payload = link.slice(link.indexOf('#pair=') + 6);
    expect((await spl(tablet, 'pair', 'accept', payload)).code).toBe(0);
    expect(JSON.parse((await spl(tablet, 'config', 'app-url', 'show', '--json')).stdout)).toEqual({ url: null, source: null });
  });
});

describe('spl thread list | show', () => {
  const titleRecord = (actor: string, text: string, clock: number, thread: string, parents: string[] = []): SyncRecord => ({
    parents,
    thread,
    actor,
    act: 'INTEND',
    body: { kind: 'thread', text },
    clock,
    data_type: 'SCALAR',
    judged_by: null,
  });

  it('titles by §11 (root, renames by its author only), counts, last note, shared with', async () => {
    const home = await initHome('Phone');
    const remote = await remotePeer({ threads: ['th_trip'] });
    expect((await spl(home, 'pair', 'accept', remote.link)).code).toBe(0);
    const root = await signRecord(titleRecord(remote.did, 'Trip', 0, 'th_trip'), remote.signer);
    const noteAt = Date.UTC(2026, 0, 2, 3, 4, 5);
    const note = await signRecord(
      { ...titleRecord(remote.did, '', 1, 'th_trip', [root.id]), act: 'KNOW', body: { kind: 'note', text: 'Book the train', at: noteAt } },
      remote.signer,
    );
    const rename = await signRecord(titleRecord(remote.did, 'Trip to Lyon', 2, 'th_trip', [note.id]), remote.signer);
    const node = await openNodePeer({ dbPath: homePaths(home).db });
    try {
      const res = await node.peer.handleDirectDelivery({ records: [rename, note, root] });
      expect(res.status).toBe(200);
      // A rename by someone other than the root's author does not count (§11).
      await node.peer.emit({ thread: 'th_trip', act: 'INTEND', body: { kind: 'thread', text: 'Hijacked' } });
    } finally {
      await node.close();
    }
    expect((await spl(home, 'emit', '--thread', 'th_solo', '--text', 'only here')).code).toBe(0);

    const list = await spl(home, 'thread', 'list', '--json');
    expect(list.code, list.stderr).toBe(0);
    const rows = JSON.parse(list.stdout) as {
      thread: string;
      title: string | null;
      records: number;
      last_note_at: number | null;
      shared_with: { did: string; name: string }[];
    }[];
    expect(rows.map((r) => r.thread)).toEqual(['th_solo', 'th_trip']); // most recent note first
    expect(rows[1]).toEqual({
      thread: 'th_trip',
      title: 'Trip to Lyon',
      records: 4,
      last_note_at: noteAt,
      shared_with: [{ did: remote.did, name: 'Remote' }],
    });
    expect(rows[0]).toMatchObject({ thread: 'th_solo', title: null, records: 1, shared_with: [] });

    const text = await spl(home, 'thread', 'list');
    expect(text.stdout).toContain(
      `th_trip  Trip to Lyon\n  4 record(s), last note ${new Date(noteAt).toISOString()}, shared with: Remote\n`,
    );
    expect(text.stdout).toContain('th_solo  (untitled)\n  1 record(s), last note ');
    expect(text.stdout).not.toContain('th_federation_pairs');
    expect((await spl(home, 'thread', 'list', '--all')).stdout).toContain('th_federation_pairs');

    const show = await spl(home, 'thread', 'show', 'th_trip');
    expect(show.code, show.stderr).toBe(0);
    const lines = show.stdout.split('\n');
    expect(lines.slice(0, 4)).toEqual([
      'Trip to Lyon',
      '  thread:      th_trip',
      `  shared with: Remote (${remote.did})`,
      '  records:     4',
    ]);
    // Time order: the records without their own time (written = clock) by arrival, the note by its own time.
    expect(show.stdout).toContain(`${new Date(noteAt).toISOString()}  arrived `);
    expect(show.stdout).toMatch(/clock 0 {2}arrived \S+Z {2}Remote {2}\[direct\] {2}Trip\n/);
    const json = JSON.parse((await spl(home, 'thread', 'show', 'th_trip', '--json')).stdout) as {
      title: string;
      root: { id: string };
      records: { id: string }[];
    };
    expect(json.title).toBe('Trip to Lyon');
    expect(json.root.id).toBe(root.id);
    expect(json.records[0]!.id).toBe(note.id); // written 2026-01-02, before everything that has no own time and arrived now

    const missing = await spl(home, 'thread', 'show', 'th_nothing');
    expect(missing.code).toBe(1);
    expect(missing.stderr).toBe('error: no thread th_nothing here (no records, not shared with any pair)\n');
  });
});
