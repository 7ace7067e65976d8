/**
 * Direct delivery between two hosts, not loopback (PROTOCOL.md §7). The swallowed-delivery bug
 * passed every loopback test: here each `spl serve` runs in its own network namespace, on an
 * address of a private test subnet that exists only inside the namespaces this test creates
 * (a bridge in the relay's namespace joins them), and a relay is reachable from both.
 *
 * 1. both online → direct, counted only on a verified receipt;
 * 2. B's address moves and the sender's own daemon now answers at B's stale `peer_url` → 421,
 *    the relay path, and the records arrive;
 * 3. an impostor takes over that address → its 200 counts for nothing, the relay path again, and
 *    what it captured is a sealed envelope it cannot open.
 *
 * Needs root (CI runs as root): creating namespaces fails loudly otherwise. Everything it creates
 * is removed in afterAll, whether the tests passed or not.
 */
import { execFile, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateSecretKey, createSigner, didFromPublicKey, openEnvelope } from '../../src/core';
import { waitFor } from '../../support/relay-process';
import { ROOT } from '../../support/paths';
import { startProcess, type RunningProcess } from '../../support/process';
import { cleanEnv, removeHomes, SPL_BIN, tempHome } from '../cli/helpers';

const run = promisify(execFile);
const TAG = `spl${process.pid % 100000}`;
const NS = { a: `${TAG}-a`, b: `${TAG}-b`, r: `${TAG}-r`, m: `${TAG}-m` } as const;
const NET = '10.213.7';
const ADDR = { a: `${NET}.1`, b: `${NET}.2`, r: `${NET}.3`, bMoved: `${NET}.4` } as const;
const PORT = 9100;
const RELAY = `http://${ADDR.r}:8787`;
const THREAD = 'th_across';

const ip = (...args: string[]) => run('ip', args);
const procs = new Set<RunningProcess>();
let workDir: string;
let laptop: string; // A
let phone: string; // B
let phoneDid: string;

/** A long-running process inside a namespace, ready when a stdout line matches `ready`. */
async function startIn(ns: string, argv: string[], ready: RegExp): Promise<{ proc: ChildProcess; stop: () => Promise<void> }> {
  const { process: running } = await startProcess(
    { name: `${argv.join(' ')} in ${ns}`, command: 'ip', args: ['netns', 'exec', ns, process.execPath, ...argv], env: cleanEnv() },
    ready,
    20_000,
  );
  procs.add(running);
  const stop = async () => {
    await running.stop();
    procs.delete(running);
  };
  return { proc: running.proc, stop };
}

/** `spl` as a real process on the host a namespace stands for. */
async function splIn(ns: string, home: string, ...args: string[]): Promise<string> {
  const { stdout } = await run('ip', ['netns', 'exec', ns, process.execPath, SPL_BIN, '--home', home, ...args], {
    cwd: ROOT,
    env: cleanEnv(),
    timeout: 30_000,
  });
  return stdout;
}

const serveIn = (ns: string, home: string, publicUrls: string[]) =>
  startIn(
    ns,
    [
      SPL_BIN,
      '--home',
      home,
      'serve',
      '--host',
      '0.0.0.0',
      '--port',
      String(PORT),
      '--long-poll',
      '2',
      ...publicUrls.flatMap((u) => ['--public-url', u]),
    ],
    /listening on/,
  );

async function records(home: string): Promise<{ text: string; path: string }[]> {
  const out = await splIn(NS.a, home, 'records', '--thread', THREAD, '--json');
  return (JSON.parse(out) as { record: { body: { text?: string } }; path: string }[]).map((r) => ({
    text: r.record.body.text ?? '',
    path: r.path,
  }));
}

async function peerStatus(home: string): Promise<{ lastPath?: string; outbox: Record<string, number>; lastError?: string }> {
  const out = await splIn(NS.a, home, 'fleet', 'sync', 'status', '--json');
  return (JSON.parse(out) as { peers: { lastPath?: string; outbox: Record<string, number>; lastError?: string }[] }).peers[0]!;
}

/** A veth pair: `inside` in `ns` with `addr`, the other end on the bridge in the relay's namespace. */
async function cable(ns: string, name: string, addr?: string): Promise<void> {
  await ip('link', 'add', `${name}0`, 'netns', ns, 'type', 'veth', 'peer', 'name', `${name}1`, 'netns', NS.r);
  await ip('-n', NS.r, 'link', 'set', `${name}1`, 'master', 'br0', 'up');
  await ip('-n', ns, 'link', 'set', 'lo', 'up');
  if (addr) await ip('-n', ns, 'addr', 'add', `${addr}/24`, 'dev', `${name}0`);
  await ip('-n', ns, 'link', 'set', `${name}0`, 'up');
}

beforeAll(async () => {
  for (const ns of Object.values(NS)) await ip('netns', 'add', ns);
  await ip('-n', NS.r, 'link', 'add', 'br0', 'type', 'bridge');
  await ip('-n', NS.r, 'addr', 'add', `${ADDR.r}/24`, 'dev', 'br0');
  await ip('-n', NS.r, 'link', 'set', 'br0', 'up');
  await ip('-n', NS.r, 'link', 'set', 'lo', 'up');
  await cable(NS.a, 'va', ADDR.a);
  await cable(NS.b, 'vb', ADDR.b);
  await cable(NS.m, 'vm');

  workDir = await mkdtemp(join(tmpdir(), 'spl-netns-'));
  await startIn(
    NS.r,
    [join(ROOT, 'bin', 'spl-relay.js'), '--host', ADDR.r, '--port', '8787', '--db', ':memory:', '--no-rate-limit'],
    /listening/,
  );
  laptop = await tempHome();
  phone = await tempHome();
  await splIn(NS.a, laptop, 'init', '--name', 'Laptop');
  await splIn(NS.b, phone, 'init', '--name', 'Phone');
  await splIn(NS.a, laptop, 'config', 'relay', 'set', RELAY, '--for-pair', 'all');
  await splIn(NS.b, phone, 'config', 'relay', 'set', RELAY, '--for-pair', 'all');
  phoneDid = (JSON.parse(await splIn(NS.b, phone, 'identity', '--json')) as { did: string }).did;
}, 90_000);

afterAll(async () => {
  await Promise.all([...procs].map((p) => p.kill()));
  for (const ns of Object.values(NS)) await ip('netns', 'del', ns).catch(() => undefined);
  const left = (await ip('netns', 'list')).stdout;
  expect(left).not.toContain(TAG);
  await removeHomes();
  if (workDir) await rm(workDir, { recursive: true, force: true });
});

describe.sequential('direct delivery across two hosts (network namespaces)', () => {
  let laptopServe: Awaited<ReturnType<typeof serveIn>>;
  let phoneServe: Awaited<ReturnType<typeof serveIn>>;

  it('1. both online: direct, counted only on a verified receipt', async () => {
    laptopServe = await serveIn(NS.a, laptop, [`http://${ADDR.a}:${PORT}`]);
    phoneServe = await serveIn(NS.b, phone, [`http://${ADDR.b}:${PORT}`]);
    const invite = JSON.parse(await splIn(NS.a, laptop, 'pair', 'invite', '--thread', THREAD, '--json')) as { link: string };
    await splIn(NS.b, phone, 'pair', 'accept', invite.link);
    await waitFor(async () => /: paired\n/.test(await splIn(NS.b, phone, 'pair', 'list')), 20_000, 'phone confirmed by the laptop');
    await splIn(NS.a, laptop, 'emit', '--thread', THREAD, '--text', 'across the wire');
    await waitFor(async () => (await records(phone)).some((r) => r.text === 'across the wire'), 15_000, 'phone has it');
    expect((await records(phone)).find((r) => r.text === 'across the wire')?.path).toBe('direct');
    await waitFor(async () => (await peerStatus(laptop)).lastPath === 'direct', 10_000, 'laptop counts it delivered direct');
  });

  it('2. a stale peer_url where the sender’s own daemon now answers: not swallowed, the relay delivers', async () => {
    // The phone moves to another address; the laptop takes over the phone's old one.
    await phoneServe.stop();
    await ip('-n', NS.b, 'addr', 'del', `${ADDR.b}/24`, 'dev', 'vb0');
    await ip('-n', NS.b, 'addr', 'add', `${ADDR.bMoved}/24`, 'dev', 'vb0');
    phoneServe = await serveIn(NS.b, phone, [`http://${ADDR.bMoved}:${PORT}`]);
    await ip('-n', NS.a, 'addr', 'add', `${ADDR.b}/24`, 'dev', 'va0');
    await laptopServe.stop();
    laptopServe = await serveIn(NS.a, laptop, [`http://${ADDR.a}:${PORT}`, `http://${ADDR.b}:${PORT}`]);
    const directBefore = (await peerStatus(laptop)).outbox.direct;
    await splIn(NS.a, laptop, 'emit', '--thread', THREAD, '--text', 'to the stale address');
    await waitFor(
      async () => (await records(phone)).some((r) => r.text === 'to the stale address'),
      20_000,
      'phone has it through the relay',
    );
    expect((await records(phone)).find((r) => r.text === 'to the stale address')?.path).toBe('relay');
    // The laptop's own copy came from itself, and it never counted the stale answer as delivered.
    const st = await peerStatus(laptop);
    expect(st.lastPath).toBe('relay');
    expect(st.outbox.direct).toBe(directBefore);
  });

  it('3. an impostor at the peer_url: the relay path, and it cannot open what it captured', async () => {
    await ip('-n', NS.a, 'addr', 'del', `${ADDR.b}/24`, 'dev', 'va0');
    await ip('-n', NS.m, 'addr', 'add', `${ADDR.b}/24`, 'dev', 'vm0');
    // The impostor announces itself; here, the laptop simply forgets where the address was, and
    // restarts (its HTTP client would otherwise reuse a kept-alive connection to its own server).
    await ip('-n', NS.a, 'neigh', 'flush', 'all');
    await laptopServe.stop();
    laptopServe = await serveIn(NS.a, laptop, [`http://${ADDR.a}:${PORT}`]);
    const captured = join(workDir, 'captured.jsonl');
    const mallory = generateSecretKey();
    const malloryDid = didFromPublicKey(createSigner(mallory).publicKey);
    const impostorScript = `
      const http = require('node:http'); const fs = require('node:fs');
      http.createServer((req, res) => { let b = ''; req.on('data', (c) => (b += c)); req.on('end', () => {
        fs.appendFileSync(${JSON.stringify(captured)}, b + '\\n');
        res.writeHead(200, { 'content-type': 'application/json', 'syncropel-receipt': 'ts=1,sig=' + 'A'.repeat(86) });
        res.end('{"accepted":[],"duplicates":[],"rejected":[]}'); }); })
        .listen(${PORT}, ${JSON.stringify(ADDR.b)}, () => console.log('impostor listening'));`;
    await startIn(NS.m, ['-e', impostorScript], /impostor listening/);
    await splIn(NS.a, laptop, 'emit', '--thread', THREAD, '--text', 'for the phone only');
    await waitFor(
      async () => (await records(phone)).some((r) => r.text === 'for the phone only'),
      20_000,
      'phone has it through the relay',
    );
    expect((await records(phone)).find((r) => r.text === 'for the phone only')?.path).toBe('relay');
    const bodies = readFileSync(captured, 'utf8').trim().split('\n');
    expect(bodies.length).toBeGreaterThan(0);
    for (const body of bodies) {
      expect(body).not.toContain('for the phone only');
      const env = (JSON.parse(body) as { envelope: { encoding: string; to_did: string } }).envelope;
      expect(env).toMatchObject({ encoding: 'sealed', to_did: phoneDid });
      expect((await openEnvelope(env, { did: malloryDid, secretKey: mallory })).ok).toBe(false);
    }
    expect((await peerStatus(laptop)).lastPath).toBe('relay');
  });
});
