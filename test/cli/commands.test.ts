/**
 * `spl` commands in-process (runCli with captured output): output formats, exit codes, bad input,
 * `--home` isolation. Network-facing checks use a real relay process and a dead port.
 */
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRelayProcess, type RelayProcess } from '../../support/relay-process';
import { resolveHome } from '../../src/cli/home';
import { cleanEnv, DEAD_URL, remotePeer, removeHomes, spl, splProcess, tempHome } from './helpers';

let relay: RelayProcess;
beforeAll(async () => {
  relay = await startRelayProcess(['--no-rate-limit']);
});
afterAll(async () => {
  await relay?.stop();
  await removeHomes();
});

async function initHome(name = 'laptop'): Promise<string> {
  const home = await tempHome();
  const r = await spl(home, 'init', '--name', name);
  expect(r.code, r.stderr).toBe(0);
  return home;
}

describe('init and identity', () => {
  it('creates an identity once and reports it', async () => {
    const home = await tempHome();
    const init = await spl(home, 'init', '--name', 'Laptop');
    expect(init.code).toBe(0);
    expect(init.stdout).toMatch(/Created identity "Laptop"\n {2}did: {2}did:key:z\w+/);
    const again = await spl(home, 'init', '--name', 'Other');
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/^error: .* already has an identity \(Laptop, did:key:z\w+\)\n$/);

    const text = await spl(home, 'identity');
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(/^did: {4}did:key:z\w+\nname: {3}Laptop\nrelays: none/);
    expect(text.stdout).toContain('direct: not serving');
    const json = JSON.parse((await spl(home, 'identity', '--json')).stdout) as {
      did: string;
      name: string;
      relays: unknown[];
      direct_url: string | null;
    };
    expect(json).toMatchObject({ name: 'Laptop', relays: [], direct_url: null });
    expect(json.did).toMatch(/^did:key:z/);
  });

  it('exports the identity encrypted and restores it in another home', async () => {
    const home = await initHome('laptop');
    const did = (JSON.parse((await spl(home, 'identity', '--json')).stdout) as { did: string }).did;
    expect((await spl(home, 'config', 'relay', 'set', 'http://127.0.0.1:9/backed-up', '--for-pair', 'all')).code).toBe(0);
    const file = join(await tempHome(), 'backup.json');
    const noPass = await spl(home, 'identity', '--export', file);
    expect(noPass.code).toBe(2);
    expect(noPass.stderr).toContain('SPL_PASSPHRASE');
    const env = cleanEnv({ SPL_PASSPHRASE: 'a long enough passphrase' });
    const exported = await splProcess(['--home', home, 'identity', '--export', file], env);
    expect(exported.code, exported.stderr).toBe(0);
    expect(readFileSync(file, 'utf8')).toContain(did);
    expect(statSync(file).mode & 0o077).toBe(0); // readable by the owner only
    expect((await splProcess(['--home', home, 'identity', '--export', file], env)).code).not.toBe(0); // never overwrites
    const other = await tempHome();
    const wrong = await splProcess(['--home', other, 'init', '--import', file], cleanEnv({ SPL_PASSPHRASE: 'wrong passphrase!!' }));
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toMatch(/passphrase is wrong/);
    const restored = await splProcess(['--home', other, 'init', '--import', file], env);
    expect(restored.code, restored.stderr).toBe(0);
    expect((JSON.parse((await spl(other, 'identity', '--json')).stdout) as { did: string }).did).toBe(did);
    expect((await spl(other, 'config', 'relay', 'show')).stdout).toContain('http://127.0.0.1:9/backed-up'); // settings came along
  });

  it('refuses commands on a home without identity, and creates nothing', async () => {
    const home = await tempHome();
    for (const args of [['identity'], ['config', 'relay', 'show'], ['records', '--thread', 'th_x'], ['thread', 'list']]) {
      const r = await spl(home, ...args);
      expect(r.code, args.join(' ')).toBe(1);
      expect(r.stderr).toBe(`error: no identity in ${home}: run "spl init" first\n`);
    }
    // Nothing can sync without an identity: doctor fails (2), not warns (1).
    const doctor = await spl(home, 'doctor');
    expect(doctor.code).toBe(2);
    expect(doctor.stdout).toBe(`✗ identity: no identity in ${home}: run "spl init" first\ndoctor: fail (1 fail, 0 warn, 0 pass)\n`);
    const doctorJson = await splProcess(['--home', home, 'doctor', '--json']);
    expect(doctorJson.code).toBe(2);
    expect(JSON.parse(doctorJson.stdout)).toEqual({
      status: 'fail',
      checks: [{ id: 'identity', status: 'fail', message: `no identity in ${home}: run "spl init" first` }],
    });
  });

  it('keeps homes isolated (--home, SPL_HOME, XDG_DATA_HOME)', async () => {
    const a = await initHome('A');
    const b = await initHome('B');
    const didA = (JSON.parse((await spl(a, 'identity', '--json')).stdout) as { did: string }).did;
    const didB = (JSON.parse((await spl(b, 'identity', '--json')).stdout) as { did: string }).did;
    expect(didA).not.toBe(didB);
    await spl(a, 'config', 'relay', 'set', relay.url, '--for-pair', 'all');
    expect((await spl(b, 'config', 'relay', 'show')).stdout).toContain('no relay configured');

    // SPL_HOME selects the home when --home is absent (a real process, real environment).
    const viaEnv = await splProcess(['identity', '--json'], cleanEnv({ SPL_HOME: b }));
    expect(viaEnv.code, viaEnv.stderr).toBe(0);
    expect((JSON.parse(viaEnv.stdout) as { did: string }).did).toBe(didB);
    expect(resolveHome(undefined, { XDG_DATA_HOME: '/x/data', HOME: '/h' })).toBe('/x/data/syncropel');
    expect(resolveHome(undefined, { HOME: '/h' })).toBe('/h/.syncropel');
    expect(resolveHome('/explicit', { SPL_HOME: '/env' })).toBe('/explicit');
  });
});

describe('usage errors and help', () => {
  it('exits 2 with one line naming the problem', async () => {
    const home = await initHome();
    const cases: [string[], RegExp][] = [
      [['bogus'], /unknown command 'bogus'/],
      [['emit', '--thread', 'th_a'], /give the note with either --text <note> \("-" reads stdin\) or --file <path>/],
      [['emit', '--thread', 'th_a', '--text', 'x', '--file', '/etc/hostname'], /give the note with either/],
      [['emit', '--thread', 'th_a', '--file', '/nonexistent/note.txt'], /cannot read --file \/nonexistent\/note.txt: ENOENT/],
      [['emit', '--thread', 'th_a', '--text', '   '], /the note is empty/],
      [['--app-url', 'ftp://x.example/', 'pair', 'invite'], /--app-url must be an http\(s\) URL/],
      [['config', 'app-url', 'set', 'nope'], /the app URL must be the http\(s\) URL of a Syncropel app, not "nope"/],
      [['thread', 'show', 'nope'], /"nope" is not a thread ID/],
      [['emit', '--thread', 'nope', '--text', 'hi'], /"nope" is not a thread ID/],
      [['records'], /required option '--thread <id>' not specified/],
      [['config', 'relay', 'set', 'not a url'], /"not a url" is not a URL/],
      [['config', 'relay', 'set', 'ftp://x.example'], /not an http\(s\) URL/],
      [['config', 'relay', 'set', relay.url, '--for-pair', 'bob'], /--for-pair must be "all" or a DID, not "bob"/],
      [['config', 'relay', 'clear'], /required option '--for-pair <scope>' not specified/],
      [['serve', '--port', 'abc'], /--port must be an integer in 0..65535, not "abc"/],
      [['serve', '--port', '70000'], /--port must be an integer/],
      [['pair', 'invite', '--thread', 'bad thread'], /"bad thread" is not a thread ID/],
      [['pair', 'accept'], /missing required argument 'link'/],
      [['identity', 'extra'], /too many arguments/],
    ];
    for (const [args, re] of cases) {
      const r = await spl(home, ...args);
      expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(2);
      expect(r.stderr, args.join(' ')).toMatch(re);
      expect(r.stderr.trim().split('\n'), args.join(' ')).toHaveLength(1);
    }
  });

  it('has --help on every command', async () => {
    const commands = [
      [],
      ['init'],
      ['identity'],
      ['serve'],
      ['config'],
      ['config', 'relay'],
      ['config', 'relay', 'set'],
      ['config', 'relay', 'show'],
      ['config', 'relay', 'status'],
      ['config', 'relay', 'clear'],
      ['pair'],
      ['pair', 'invite'],
      ['pair', 'accept'],
      ['emit'],
      ['records'],
      ['fleet', 'sync', 'status'],
      ['doctor'],
      ['thread'],
      ['thread', 'list'],
      ['thread', 'show'],
      ['config', 'app-url', 'set'],
    ];
    for (const c of commands) {
      const r = await spl(undefined, ...c, '--help');
      expect(r.code, c.join(' ')).toBe(0);
      expect(r.stdout, c.join(' ')).toMatch(/^Usage: spl/);
    }
  });

  it('the bin runs: exit codes reach the shell', async () => {
    const home = await initHome();
    expect((await splProcess(['--home', home, 'records', '--thread', 'th_none'])).code).toBe(0);
    const bad = await splProcess(['--home', home, 'emit', '--thread', 'th_x']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/^error: give the note with either --text/);
  });
});

describe('config relay', () => {
  it('set, show, clear in the guide’s format', async () => {
    const home = await initHome();
    const set = await spl(home, 'config', 'relay', 'set', `${relay.url}/`, '--for-pair', 'all');
    expect(set.code, set.stderr).toBe(0);
    expect(set.stdout).toBe(`catch-all: ${relay.url} (enabled)\n`);
    expect((await spl(home, 'config', 'relay', 'set', 'https://private-relay.example.com', '--for-pair', 'did:sync:user:alice')).code).toBe(
      0,
    );
    expect((await spl(home, 'config', 'relay', 'show')).stdout).toBe(
      `catch-all: ${relay.url} (enabled)\ndid:sync:user:alice: https://private-relay.example.com (enabled)\n`,
    );
    const clear = await spl(home, 'config', 'relay', 'clear', '--for-pair', 'did:sync:user:alice');
    expect(clear.code).toBe(0);
    expect((await spl(home, 'config', 'relay', 'show')).stdout).toContain(
      'did:sync:user:alice: https://private-relay.example.com (disabled)',
    );
    const none = await spl(home, 'config', 'relay', 'clear', '--for-pair', 'did:sync:user:bob');
    expect(none.code).toBe(1);
    expect(none.stderr).toBe('error: no relay is configured for did:sync:user:bob\n');
  });

  it('status probes /health and prints the latency; an unreachable relay exits 1', async () => {
    const home = await initHome();
    await spl(home, 'config', 'relay', 'set', relay.url, '--for-pair', 'all');
    const ok = await spl(home, 'config', 'relay', 'status');
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stdout).toMatch(new RegExp(`^${new URL(relay.url).host.replace('.', '\\.')} → /health 200 ok \\(\\d+ms\\)\n$`));

    await spl(home, 'config', 'relay', 'set', DEAD_URL, '--for-pair', 'all');
    const down = await spl(home, 'config', 'relay', 'status');
    expect(down.code).toBe(1);
    expect(down.stdout).toMatch(/^127\.0\.0\.1:9 → \/health failed: network error/);
    expect(down.stderr).toBe('error: 1 relay(s) unreachable: 127.0.0.1:9\n');
  });
});

describe('records, pairing and status', () => {
  it('emit stores a note and records lists it (text and JSON)', async () => {
    const home = await initHome('Laptop');
    const before = Date.now();
    const emit = await spl(home, 'emit', '--thread', 'th_notes', '--text', 'hello world');
    expect(emit.code, emit.stderr).toBe(0);
    const [id, hint] = emit.stdout.trim().split('\n');
    expect(id).toMatch(/^[0-9a-f]{64}$/);
    expect(hint).toBe('stored locally: no pair shares th_notes yet');
    const text = await spl(home, 'records', '--thread', 'th_notes');
    expect(text.stdout).toMatch(/^\S+Z {2}arrived \S+Z {2}Laptop \(me\) {2}\[local\] {2}hello world\n$/);
    const json = JSON.parse((await spl(home, 'records', '--thread', 'th_notes', '--json')).stdout) as {
      id: string;
      record: { body: { text: string; at: number }; clock: number };
      path: string;
      written_at: number;
      received_at: number;
    }[];
    expect(json).toHaveLength(1);
    expect(json[0]).toMatchObject({ id, path: 'local', record: { body: { kind: 'note', text: 'hello world' } } });
    // The first clock on a thread is the time it was written at (emit.ts: the time is a floor).
    expect(json[0]!.record.clock).toBeGreaterThanOrEqual(before);
    expect(json[0]!.record.clock).toBeLessThanOrEqual(json[0]!.received_at);
    expect(json[0]!.written_at).toBe(json[0]!.record.body.at);
    expect(json[0]!.received_at).toBeGreaterThanOrEqual(json[0]!.written_at);
    expect((await spl(home, 'records', '--thread', 'th_empty')).stdout).toBe('no records on th_empty\n');
  });

  it('pair invite prints the link and a terminal QR code; it needs a relay or a direct URL', async () => {
    const home = await initHome();
    const refused = await spl(home, 'pair', 'invite');
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/^error: set a relay first/);
    await spl(home, 'config', 'relay', 'set', relay.url, '--for-pair', 'all');
    const inv = await spl(home, '--app-url', 'http://127.0.0.1:5173/', 'pair', 'invite', '--thread', 'th_plans');
    expect(inv.code, inv.stderr).toBe(0);
    expect(inv.stdout).toMatch(/^Invite link \(valid until .+\):\nhttp:\/\/127\.0\.0\.1:5173\/#pair=[A-Za-z0-9_-]+\n/);
    expect(inv.stdout).toMatch(/[▀▄█]/); // the QR code, in half blocks
    const json = JSON.parse((await spl(home, 'pair', 'invite', '--json')).stdout) as { link: string; payload: string };
    expect(json.link.endsWith(`#pair=${json.payload}`)).toBe(true);
  });

  it('pair accept pairs and queues the reply when the inviter is unreachable; bad links are refused', async () => {
    const home = await initHome('Phone');
    const remote = await remotePeer({ threads: ['th_plans'], peerUrl: DEAD_URL });
    const acc = await spl(home, 'pair', 'accept', remote.link);
    expect(acc.code, acc.stderr).toBe(0);
    expect(acc.stdout).toContain(`Paired with Remote (${remote.did})`);
    expect(acc.stdout).toContain('threads: th_plans');
    // §7: a pairing reply goes through the inviter's relay (direct endpoints take paired peers only).
    expect(acc.stdout).toMatch(
      /reply: {3}queued \(no route: no relay configured for did:key:\S+ \(a pairing reply travels through a relay\)\)/,
    );

    const status = await spl(home, 'fleet', 'sync', 'status');
    expect(status.code).toBe(0);
    expect(status.stdout).toContain(`Remote (${remote.did})`);
    expect(status.stdout).toMatch(/delivery: pending, next retry in \d+ s \(outbox: 1 pending, 0 direct, 0 via relay, 0 rejected\)/);
    expect(status.stdout).toMatch(/last error: no route: no relay configured/);
    expect(status.stdout).toContain('relays:\n  none');

    const bad = await spl(home, 'pair', 'accept', 'https://app.example/#pair=AAAA');
    expect(bad.code).toBe(1);
    expect(bad.stderr.split('\n')).toHaveLength(2);
    expect((await spl(home, 'pair', 'accept', 'not a link!')).code).toBe(2);
  });
});

describe('doctor', () => {
  it('flags an unreachable relay: fail, exit 2', async () => {
    const home = await initHome();
    await spl(home, 'config', 'relay', 'set', DEAD_URL, '--for-pair', 'all');
    const r = await spl(home, 'doctor', '--json');
    expect(r.code).toBe(2);
    const report = JSON.parse(r.stdout) as { status: string; checks: { id: string; status: string; message: string }[] };
    expect(report.status).toBe('fail');
    expect(report.checks).toContainEqual(expect.objectContaining({ id: 'relay_reachable', status: 'fail' }));
    const text = await spl(home, 'doctor');
    expect(text.stdout).toMatch(/✗ relay_reachable: http:\/\/127\.0\.0\.1:9 is not reachable/);
    expect(text.stdout).toMatch(/doctor: fail \(1 fail, \d+ warn, \d+ pass\)\n$/);
  });

  it('flags a stuck outbox: warn, exit 1', async () => {
    const home = await initHome();
    const remote = await remotePeer({ threads: ['th_plans'], peerUrl: DEAD_URL });
    expect((await spl(home, 'pair', 'accept', remote.link)).code).toBe(0); // attempt 1
    for (let i = 0; i < 4; i++) expect((await spl(home, 'fleet', 'sync', 'flush')).stdout).toMatch(/attempted 1: .*1 still pending/);
    const r = await spl(home, 'doctor', '--json');
    expect(r.code).toBe(1);
    const report = JSON.parse(r.stdout) as { status: string; checks: { id: string; status: string; message: string }[] };
    expect(report.status).toBe('warn');
    expect(report.checks).toContainEqual(
      expect.objectContaining({ id: 'outbox_stuck', status: 'warn', message: expect.stringContaining(remote.did) as string }),
    );
    expect(report.checks.some((c) => c.status === 'fail')).toBe(false);
  });

  it('passes with a reachable relay and nothing pending, except that the daemon is not running', async () => {
    const home = await initHome();
    await spl(home, 'config', 'relay', 'set', relay.url, '--for-pair', 'all');
    const r = await spl(home, 'doctor', '--json');
    const report = JSON.parse(r.stdout) as { checks: { id: string; status: string }[] };
    expect(
      report.checks
        .filter((c) => c.status !== 'pass')
        .map((c) => c.id)
        .sort(),
    ).toEqual(['daemon', 'receive_task']);
    expect(r.code).toBe(1);
  });
});
