/**
 * `spl serve` as a real process over real HTTP: the direct endpoint's answers (§7), CORS, the
 * daemon's pid/log files and --stop, and relay config applied without a restart.
 */
import { spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request as httpRequest } from 'node:http';
import { buildPlainEnvelope, recordId, sealEnvelope, verifyReceipt } from '../../src/core';
import { homePaths } from '../../src/cli/home';
import { deposit, startRelayProcess, waitFor, type RelayProcess } from '../../support/relay-process';
import { DEAD_URL, postRecords, remotePeer, removeHomes, spl, splProcess, startServe, tempHome, type ServeProcess } from './helpers';

let relay: RelayProcess;
const serving: ServeProcess[] = [];
beforeAll(async () => {
  relay = await startRelayProcess(['--no-rate-limit']);
});
afterAll(async () => {
  await Promise.all(serving.map((s) => s.stop()));
  await relay?.stop();
  await removeHomes();
});

async function serve(home: string, extra: string[] = []): Promise<ServeProcess> {
  const s = await startServe(home, extra);
  serving.push(s);
  return s;
}

async function didOf(home: string): Promise<string> {
  return (JSON.parse((await spl(home, 'identity', '--json')).stdout) as { did: string }).did;
}

describe('the direct endpoint (POST /v1/sync/records)', () => {
  let home: string;
  let server: ServeProcess;
  let remote: Awaited<ReturnType<typeof remotePeer>>;

  beforeAll(async () => {
    home = await tempHome();
    await spl(home, 'init', '--name', 'Headless');
    remote = await remotePeer({ threads: ['th_plans'], peerUrl: DEAD_URL });
    expect((await spl(home, 'pair', 'accept', remote.link)).code).toBe(0);
    server = await serve(home);
  });

  it('answers /health and CORS preflight for any origin', async () => {
    const health = await fetch(`${server.url}/health`);
    expect(health.status).toBe(200);
    expect(await health.json()).toEqual({ status: 'ok' });
    const pre = await fetch(`${server.url}/v1/sync/records`, {
      method: 'OPTIONS',
      headers: {
        origin: 'http://127.0.0.1:5555',
        'access-control-request-method': 'POST',
        'access-control-request-headers': 'content-type,x-syncropel-federation',
      },
    });
    expect(pre.status).toBe(204);
    expect(pre.headers.get('access-control-allow-origin')).toBe('*');
    expect(pre.headers.get('access-control-allow-headers')?.toLowerCase()).toContain('x-syncropel-federation');
    expect(pre.headers.get('access-control-allow-headers')?.toLowerCase()).toContain('content-type');
    expect((await fetch(`${server.url}/nope`)).status).toBe(404);
    expect((await fetch(`${server.url}/v1/sync/records`)).status).toBe(405);
  });

  it('200 with accepted, then duplicates for the same record; stored once with path direct', async () => {
    const rec = await remote.sign('hello direct', 0);
    const first = await postRecords(server.url, { records: [rec] });
    expect(first.status).toBe(200);
    expect(first.headers.get('access-control-allow-origin')).toBe('*');
    expect(await first.json()).toEqual({ accepted: [rec.id], duplicates: [], rejected: [] });
    const again = await postRecords(server.url, { records: [rec] });
    expect(await again.json()).toEqual({ accepted: [], duplicates: [rec.id], rejected: [] });
    const records = JSON.parse((await spl(home, 'records', '--thread', 'th_plans', '--json')).stdout) as { id: string; path: string }[];
    expect(records).toEqual([expect.objectContaining({ id: rec.id, path: 'direct' })]);
  });

  it('rejects a tampered record and an unpaired actor’s record with reasons, keeping the good one', async () => {
    const good = await remote.sign('good', 1);
    const original = await remote.sign('original', 2);
    const tampered = { ...original, record: { ...original.record, body: { kind: 'note', text: 'tampered' } } };
    // Re-hashed to the new content, but the signature is still the original's.
    const forgedRecord = { ...original.record, body: { kind: 'note', text: 'forged' } };
    const forged = { id: recordId(forgedRecord), record: forgedRecord, sig: original.sig };
    const stranger = await remotePeer({ threads: ['th_plans'] });
    const unpaired = await stranger.sign('who am I', 0);
    const res = await postRecords(server.url, { records: [good, tampered, forged, unpaired] });
    expect(res.status).toBe(200);
    const body = (await res.json()) as { accepted: string[]; rejected: { id: string; reason: string }[] };
    expect(body.accepted).toEqual([good.id]);
    expect(body.rejected).toEqual([
      { id: original.id, reason: expect.stringMatching(/^id_mismatch: /) as string },
      { id: forged.id, reason: expect.stringMatching(/^bad_signature: /) as string },
      { id: unpaired.id, reason: expect.stringMatching(/^unpaired: /) as string },
    ]);
    const texts = (
      JSON.parse((await spl(home, 'records', '--thread', 'th_plans', '--json')).stdout) as { record: { body: { text: string } } }[]
    ).map((r) => r.record.body.text);
    expect(texts).not.toContain('tampered');
    expect(texts).not.toContain('forged');
    expect(texts).not.toContain('who am I');
  });

  it('takes a sealed envelope from its pair and answers with a receipt by its own DID (§7); 421 for another DID', async () => {
    const rec = await remote.sign('sealed and receipted', 10);
    const me = await didOf(home);
    const envelope = sealEnvelope(await buildPlainEnvelope({ fromDid: remote.did, toDid: me, records: [rec] }, remote.signer));
    const res = await postRecords(server.url, { envelope });
    expect(res.status).toBe(200);
    const text = await res.text();
    expect(JSON.parse(text)).toEqual({ accepted: [rec.id], duplicates: [], rejected: [] });
    expect(res.headers.get('access-control-expose-headers')).toContain('Syncropel-Receipt');
    expect(await verifyReceipt(res.headers.get('syncropel-receipt'), envelope.id, text, me)).toBe(true);
    expect(await verifyReceipt(res.headers.get('syncropel-receipt'), envelope.id, text, remote.did)).toBe(false);
    const stranger = await remotePeer({ threads: [] });
    const elsewhere = sealEnvelope(await buildPlainEnvelope({ fromDid: remote.did, toDid: stranger.did, records: [rec] }, remote.signer));
    const wrong = await postRecords(server.url, { envelope: elsewhere });
    expect(wrong.status).toBe(421);
    expect(wrong.headers.get('syncropel-receipt')).toBeNull();
    expect(await wrong.json()).toMatchObject({ error: { code: 'wrong_recipient' } });
    const unpaired = sealEnvelope(
      await buildPlainEnvelope({ fromDid: stranger.did, toDid: me, records: [await stranger.sign('hi', 0)] }, stranger.signer),
    );
    const refused = await postRecords(server.url, { envelope: unpaired });
    expect(refused.status).toBe(403);
    expect(await refused.json()).toMatchObject({ error: { code: 'unpaired' } });
  });

  it('answers only to its own names: another Host is 403 unknown_host (no DNS rebinding)', async () => {
    const port = Number(new URL(server.url).port);
    const ask = (host: string) =>
      new Promise<{ status: number; body: string }>((resolve, reject) => {
        const req = httpRequest({ host: '127.0.0.1', port, path: '/health', headers: { host } }, (res) => {
          let body = '';
          res.on('data', (c: Buffer) => (body += c.toString()));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
        });
        req.on('error', reject);
        req.end();
      });
    expect((await ask(`127.0.0.1:${port}`)).status).toBe(200);
    expect((await ask(`localhost:${port}`)).status).toBe(200);
    const evil = await ask(`attacker.example:${port}`);
    expect(evil.status).toBe(403);
    expect(JSON.parse(evil.body)).toMatchObject({ error: { code: 'unknown_host' } });
  });

  it('422 unsigned, 400 malformed, 413 over 1 MiB, 415 not JSON', async () => {
    const rec = await remote.sign('unsigned', 3);
    const { sig: _sig, ...unsigned } = rec;
    const r422 = await postRecords(server.url, { records: [unsigned] });
    expect(r422.status).toBe(422);
    expect(await r422.json()).toMatchObject({ error: { code: 'unsigned_record' } });
    const bad = await postRecords(server.url, '{"records": [');
    expect(bad.status).toBe(400);
    expect(await bad.json()).toMatchObject({ error: { code: 'invalid_json' } });
    expect((await postRecords(server.url, { nope: true })).status).toBe(400);
    const big = await postRecords(server.url, { records: [], pad: 'x'.repeat(1_048_577) });
    expect(big.status).toBe(413);
    expect(await big.json()).toMatchObject({ error: { code: 'payload_too_large' } });
    const text = await postRecords(server.url, JSON.stringify({ records: [] }), { 'content-type': 'text/plain' });
    expect(text.status).toBe(415);
    expect(await text.json()).toMatchObject({ error: { code: 'unsupported_media_type' } });
  });

  it('identity advertises no direct URL without --public-url; a second serve on the home is refused', async () => {
    // §7: the address it merely listens on (loopback here) is never advertised.
    const id = JSON.parse((await spl(home, 'identity', '--json')).stdout) as { direct_url: string | null; serving: { url: string } };
    expect(id.direct_url).toBeNull();
    expect(id.serving.url).toBe(server.url);
    expect((await spl(home, 'identity')).stdout).toContain(
      `direct: not advertised: spl serve (pid ${server.proc.pid}) listens on ${server.url}`,
    );
    const second = await splProcess(['--home', home, 'serve', '--port', '0']);
    expect(second.code).toBe(1);
    expect(second.stderr).toMatch(/^error: spl serve is already running for .* \(pid \d+/);
  });

  it('SIGTERM stops it cleanly and removes its state files', async () => {
    const paths = homePaths(home);
    expect(existsSync(paths.pidFile)).toBe(true);
    expect(await server.stop()).toBe(0);
    expect(existsSync(paths.pidFile)).toBe(false);
    expect(existsSync(paths.stateFile)).toBe(false);
    expect(server.lines.at(-1)).toMatch(/stopped$/);
  });
});

describe('--public-url', () => {
  it('is what identity reports and what invites advertise for direct delivery', async () => {
    const home = await tempHome();
    await spl(home, 'init', '--name', 'Public');
    await serve(home, ['--public-url', 'https://peer.example.com/']);
    expect((JSON.parse((await spl(home, 'identity', '--json')).stdout) as { direct_url: string }).direct_url).toBe(
      'https://peer.example.com',
    );
    const { payload } = JSON.parse((await spl(home, 'pair', 'invite', '--json')).stdout) as { payload: string };
    const invite = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as { peer_url?: string; relays: string[] };
    expect(invite).toMatchObject({ peer_url: 'https://peer.example.com', relays: [] });
  });

  it('is repeatable: the first is advertised, every one is a name the endpoint answers to', async () => {
    const home = await tempHome();
    await spl(home, 'init', '--name', 'Two names');
    await spl(home, 'config', 'relay', 'set', relay.url, '--for-pair', 'all');
    const s = await serve(home, ['--public-url', 'https://peer.example.com', '--public-url', 'http://alias.test:8080']);
    const { payload } = JSON.parse((await spl(home, 'pair', 'invite', '--json')).stdout) as { payload: string };
    expect(JSON.parse(Buffer.from(payload, 'base64url').toString('utf8'))).toMatchObject({ peer_url: 'https://peer.example.com' });
    const port = Number(new URL(s.url).port);
    for (const [host, status] of [
      ['peer.example.com', 200],
      ['alias.test:8080', 200],
      ['alias.test', 403],
      ['peer.example.com:8080', 403],
    ] as const) {
      const got = await new Promise<number>((resolve, reject) => {
        const req = httpRequest({ host: '127.0.0.1', port, path: '/health', headers: { host } }, (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        });
        req.on('error', reject);
        req.end();
      });
      expect(got, host).toBe(status);
    }
  });

  it('without it, invites carry no direct URL (only the relays)', async () => {
    const home = await tempHome();
    await spl(home, 'init', '--name', 'Private');
    await spl(home, 'config', 'relay', 'set', relay.url, '--for-pair', 'all');
    await serve(home);
    const { payload } = JSON.parse((await spl(home, 'pair', 'invite', '--json')).stdout) as { payload: string };
    const invite = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as Record<string, unknown>;
    expect(invite).not.toHaveProperty('peer_url');
    expect(invite.relays).toEqual([relay.url]);
  });
});

describe('keys at rest', () => {
  it('the home is 0700 even when it existed looser (with a warning); the store and its WAL are 0600', async () => {
    const home = join(await tempHome(), 'made-by-hand');
    mkdirSync(home, { mode: 0o755 });
    chmodSync(home, 0o755); // whatever the umask did
    const init = await spl(home, 'init', '--name', 'Careful');
    expect(init.code, init.stderr).toBe(0);
    expect(init.stderr).toMatch(/warning: .*made-by-hand was readable by others \(mode 0755\).* now 0700/);
    expect(statSync(home).mode & 0o777).toBe(0o700);
    const s = await serve(home); // holds the store open: -wal and -shm exist
    await spl(home, 'emit', '--thread', 'th_keys', '--text', 'written while serving');
    const files = readdirSync(home).filter((f) => f.startsWith('peer.sqlite'));
    expect(files).toEqual(expect.arrayContaining(['peer.sqlite', 'peer.sqlite-wal', 'peer.sqlite-shm']));
    for (const f of files) expect(statSync(join(home, f)).mode & 0o777, f).toBe(0o600);
    // A later loosening (a copy, a restore) is tightened again on the next command, with a warning.
    chmodSync(home, 0o750);
    const again = await spl(home, 'identity');
    expect(again.stderr).toMatch(/was readable by others \(mode 0750\)/);
    expect(statSync(home).mode & 0o777).toBe(0o700);
    await s.stop();
  });
});

describe('spl serve --daemon / --stop', () => {
  it('detaches with a pid and a log file, and --stop stops it', async () => {
    const home = await tempHome();
    await spl(home, 'init', '--name', 'Bg');
    const started = await splProcess(['--home', home, 'serve', '--daemon', '--port', '0']);
    expect(started.code, started.stderr).toBe(0);
    const m = /running in the background \(pid (\d+)\) on (http:\/\/\S+)\n {2}log: (\S+)/.exec(started.stdout);
    expect(m, started.stdout).not.toBeNull();
    const [, pid, url, log] = m!;
    expect((await fetch(`${url}/health`)).status).toBe(200);
    expect(readFileSync(homePaths(home).pidFile, 'utf8').trim()).toBe(pid);
    expect(readFileSync(log!, 'utf8')).toContain(`listening on ${url}`);
    expect((JSON.parse((await spl(home, 'identity', '--json')).stdout) as { serving: { url: string } }).serving.url).toBe(url);

    const stopped = await splProcess(['--home', home, 'serve', '--stop']);
    expect(stopped.code, stopped.stderr).toBe(0);
    expect(stopped.stdout).toBe(`stopped spl serve (pid ${pid})\n`);
    await expect(fetch(`${url}/health`)).rejects.toThrow();
    const again = await spl(home, 'serve', '--stop');
    expect(again.code).toBe(0);
    expect(again.stdout).toMatch(/^spl serve is not running/);
  });

  it('ignores a stale pid file whose pid now belongs to an unrelated process (and never signals it)', async () => {
    const home = await tempHome();
    await spl(home, 'init', '--name', 'Stale');
    const unrelated = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' });
    try {
      const pid = unrelated.pid!;
      const paths = homePaths(home);
      writeFileSync(paths.pidFile, `${pid}\n`);
      writeFileSync(paths.stateFile, JSON.stringify({ pid, url: 'http://127.0.0.1:1', publicUrl: 'http://127.0.0.1:1', startedAt: 0 }));
      expect((await spl(home, 'identity')).stdout).toContain('direct: not serving');
      const stop = await spl(home, 'serve', '--stop');
      expect(stop.stdout).toMatch(/^spl serve is not running/);
      expect(unrelated.exitCode).toBeNull();
      expect(unrelated.signalCode).toBeNull();
      expect(existsSync(paths.pidFile)).toBe(false);
    } finally {
      unrelated.kill('SIGKILL');
    }
  });

  it('fails with the reason when the port is taken', async () => {
    const a = await tempHome();
    await spl(a, 'init', '--name', 'A');
    const s = await serve(a);
    const b = await tempHome();
    await spl(b, 'init', '--name', 'B');
    const port = new URL(s.url).port;
    const fg = await splProcess(['--home', b, 'serve', '--port', port]);
    expect(fg.code).toBe(1);
    expect(fg.stderr).toBe(`error: cannot listen on 127.0.0.1:${port}: the port is in use (try --port)\n`);
    const bg = await splProcess(['--home', b, 'serve', '--daemon', '--port', port]);
    expect(bg.code).toBe(1);
    expect(bg.stderr).toMatch(/^error: spl serve --daemon did not start: .*the port is in use/);
    await s.stop();
  });
});

describe('relay config applies without a restart', () => {
  // A relay of its own: daemons of the tests above long-poll the shared one, and this test counts long-polls.
  let relay: RelayProcess;
  beforeAll(async () => {
    relay = await startRelayProcess(['--no-rate-limit']);
  });
  afterAll(async () => {
    await relay?.stop();
  });

  it('a relay set by another spl process starts receiving within seconds; a record arriving both ways is stored once; clearing stops the loop', async () => {
    const home = await tempHome();
    await spl(home, 'init', '--name', 'Headless');
    const remote = await remotePeer({ threads: ['th_plans'], peerUrl: DEAD_URL });
    await spl(home, 'pair', 'accept', remote.link);
    const did = await didOf(home);
    const s = await serve(home);

    // Something already waits in the mailbox before the relay is configured.
    const queued = await remote.sign('waited at the relay', 0);
    expect(
      (
        await deposit(
          relay.url,
          did,
          sealEnvelope(await buildPlainEnvelope({ fromDid: remote.did, toDid: did, records: [queued] }, remote.signer)),
        )
      ).status,
    ).toBe(202);

    const setAt = Date.now();
    expect((await splProcess(['--home', home, 'config', 'relay', 'set', relay.url, '--for-pair', 'all'])).code).toBe(0);
    await s.waitForLog(new RegExp(`receiving from ${relay.url.replace(/\./g, '\\.')}`), 5_000);
    expect(Date.now() - setAt).toBeLessThan(3_000 + 1_000); // watch interval is 1 s; process start adds the rest
    await waitFor(
      async () => (await spl(home, 'records', '--thread', 'th_plans')).stdout.includes('waited at the relay'),
      10_000,
      'record received via the new relay',
    );
    expect((await spl(home, 'records', '--thread', 'th_plans')).stdout).toContain('[relay]');

    // A record deposited now arrives through the running long-poll.
    const live = await remote.sign('live over long-poll', 1);
    await deposit(
      relay.url,
      did,
      sealEnvelope(await buildPlainEnvelope({ fromDid: remote.did, toDid: did, records: [live] }, remote.signer)),
    );
    await waitFor(
      async () => (await spl(home, 'records', '--thread', 'th_plans')).stdout.includes('live over long-poll'),
      10_000,
      'record via long-poll',
    );

    // The same record both ways (direct, then in an envelope at the relay): stored once.
    const both = await remote.sign('sent both ways', 2);
    expect(await (await postRecords(s.url, { records: [both] })).json()).toEqual({ accepted: [both.id], duplicates: [], rejected: [] });
    const before = (
      JSON.parse((await spl(home, 'fleet', 'sync', 'status', '--json')).stdout) as { counters: { records_duplicate: number } }
    ).counters;
    const dupBefore = before.records_duplicate;
    await deposit(
      relay.url,
      did,
      sealEnvelope(await buildPlainEnvelope({ fromDid: remote.did, toDid: did, records: [both] }, remote.signer)),
    );
    const counters = await waitFor(
      async () => {
        const c = (JSON.parse((await spl(home, 'fleet', 'sync', 'status', '--json')).stdout) as { counters: { records_duplicate: number } })
          .counters;
        return c.records_duplicate > dupBefore ? c : undefined;
      },
      10_000,
      'the relay copy seen as a duplicate',
    );
    expect(counters.records_duplicate, JSON.stringify({ before, counters, log: s.lines })).toBe(dupBefore + 1);
    const stored = JSON.parse((await spl(home, 'records', '--thread', 'th_plans', '--json')).stdout) as { id: string; path: string }[];
    expect(stored.filter((r) => r.id === both.id)).toEqual([expect.objectContaining({ path: 'direct' })]);

    // Clearing the relay aborts the daemon's waiting long-poll (25 s) instead of letting it run out.
    const longPollsWaiting = async () =>
      (await (await fetch(`${relay.url}/metrics`)).text()).match(/^relay_long_polls_waiting (\d+)/m)?.[1];
    await waitFor(async () => (await longPollsWaiting()) === '1', 10_000, 'the daemon long-polls the relay');
    expect((await spl(home, 'config', 'relay', 'clear', '--for-pair', 'all')).code).toBe(0);
    await s.waitForLog(/no longer configured: receive loop stopped/, 5_000);
    await waitFor(async () => (await longPollsWaiting()) === '0', 5_000, 'the long-poll ended at the relay');
    expect(s.lines.join('\n')).not.toMatch(/receive from .* failed/);
    const status = JSON.parse((await spl(home, 'fleet', 'sync', 'status', '--json')).stdout) as { relays: unknown[] };
    expect(status.relays).toEqual([]);
    expect(await s.stop()).toBe(0);
  });
});
