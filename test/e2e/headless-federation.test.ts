/**
 * The guide's four cases ("Pair with synchronous federation") between two headless peers — two
 * `spl` homes, each with its own `spl serve` process — and a real relay process. Direct first,
 * relay as the backup path; each case builds on the previous one, so they run in order.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRelayProcess, waitFor, type RelayProcess } from '../../support/relay-process';
import { relayQueueSize } from '../../support/browser-harness';
import { postRecords, removeHomes, spl, startAdvertisedServe, tempHome, type ServeProcess } from '../cli/helpers';

const THREAD = 'th_shared';
let relayDir: string;
let relay: RelayProcess;
let relayPort: string;
let laptop: string; // A, the sender
let server: string; // B, the receiver
let serverDid: string;
let laptopServe: ServeProcess | undefined;
let serverServe: ServeProcess | undefined;
let serverPort: string;

async function metric(name: string): Promise<number> {
  const text = await (await fetch(`${relay.url}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name} `) || l.startsWith(`${name}{`));
  return line ? Number(line.slice(line.lastIndexOf(' ') + 1)) : 0;
}

const startRelay = (): Promise<RelayProcess> =>
  startRelayProcess(['--no-rate-limit', '--db', join(relayDir, 'relay.sqlite'), ...(relayPort ? ['--port', relayPort] : [])]);

/** Where the laptop's own record with this text stands at the server (§11 receipts). */
async function deliveredState(text: string): Promise<string | undefined> {
  const r = await spl(laptop, 'records', '--thread', THREAD, '--json');
  const rec = (JSON.parse(r.stdout) as { record: { body: { text?: string } }; delivery: { state: string }[] }[]).find(
    (x) => x.record.body.text === text,
  );
  return rec?.delivery[0]?.state;
}

async function texts(home: string): Promise<{ text: string; path: string }[]> {
  const r = await spl(home, 'records', '--thread', THREAD, '--json');
  return (JSON.parse(r.stdout) as { record: { body: { text?: string } }; path: string }[]).map((x) => ({
    text: x.record.body.text ?? '',
    path: x.path,
  }));
}

const did = async (home: string): Promise<string> => (JSON.parse((await spl(home, 'identity', '--json')).stdout) as { did: string }).did;

beforeAll(async () => {
  relayDir = await mkdtemp(join(tmpdir(), 'spl-e2e-relay-'));
  relay = await startRelay();
  relayPort = new URL(relay.url).port;
  laptop = await tempHome();
  server = await tempHome();
  await spl(laptop, 'init', '--name', 'Laptop');
  await spl(server, 'init', '--name', 'Server');
  serverDid = await did(server);
  for (const h of [laptop, server]) expect((await spl(h, 'config', 'relay', 'set', relay.url, '--for-pair', 'all')).code).toBe(0);
  laptopServe = await startAdvertisedServe(laptop);
  serverServe = await startAdvertisedServe(server);
  serverPort = new URL(serverServe.url).port;

  // Pair: the laptop invites (advertising its direct URL), the server accepts. The reply goes
  // through the relay (a direct endpoint takes envelopes from paired peers only, §7); the
  // confirmation comes back direct, to the URL the server advertised in its reply.
  const invite = JSON.parse((await spl(laptop, 'pair', 'invite', '--thread', THREAD, '--json')).stdout) as { link: string };
  const deposits = await metric('relay_deposits_total');
  const accepted = await spl(server, 'pair', 'accept', invite.link);
  expect(accepted.stdout).toMatch(/reply: {3}(deposited at|queued; spl serve)/); // the CLI or the server's daemon sends it
  await waitFor(async () => (await spl(laptop, 'pair', 'list')).stdout.includes(serverDid), 10_000, 'laptop paired with server');
  await waitFor(async () => /: paired\n/.test((await spl(server, 'pair', 'list')).stdout), 10_000, 'server got the confirmation');
  expect(await metric('relay_deposits_total')).toBe(deposits + 1); // the reply only
}, 60_000);

afterAll(async () => {
  await laptopServe?.stop();
  await serverServe?.stop();
  await relay?.stop();
  await removeHomes();
  await rm(relayDir, { recursive: true, force: true });
});

describe.sequential('headless ↔ headless: the four cases', () => {
  it('1. both online: records go direct and the relay is untouched', async () => {
    const deposits = await metric('relay_deposits_total');
    const emitted = await spl(laptop, 'emit', '--thread', THREAD, '--text', 'both online');
    expect(emitted.stdout).toContain('queued for Server'); // the laptop's daemon sends it
    await waitFor(async () => (await texts(server)).some((r) => r.text === 'both online'), 10_000, 'server has the record');
    expect((await texts(server)).find((r) => r.text === 'both online')?.path).toBe('direct');
    // A direct delivery's signed answer is its receipt: delivered at once.
    await waitFor(async () => (await deliveredState('both online')) === 'delivered', 10_000, 'delivered per the receipt');
    // And back: the server replies on the shared thread, also direct.
    await spl(server, 'emit', '--thread', THREAD, '--text', 'reply from server');
    await waitFor(async () => (await texts(laptop)).some((r) => r.text === 'reply from server'), 10_000, 'laptop has the reply');
    expect(await metric('relay_deposits_total')).toBe(deposits);
    const status = await spl(laptop, 'fleet', 'sync', 'status');
    expect(status.stdout).toMatch(/delivery: direct \(outbox: 0 pending/);
  });

  it('2. only the sender online: deposited at the relay; the receiver’s daemon drains it later and acks', async () => {
    expect(await serverServe!.stop()).toBe(0);
    serverServe = undefined;
    const deposits = await metric('relay_deposits_total');
    await spl(laptop, 'emit', '--thread', THREAD, '--text', 'while you were away');
    await waitFor(async () => (await relayQueueSize(relay.url, serverDid)) === 1, 10_000, 'envelope queued for the server');
    expect(await metric('relay_deposits_total')).toBe(deposits + 1);
    // The daemon records the outcome right after the relay's 202.
    await waitFor(
      async () => /delivery: relay/.test((await spl(laptop, 'fleet', 'sync', 'status')).stdout),
      5_000,
      'status shows the relay path',
    );
    expect(await deliveredState('while you were away')).toBe('relay');

    serverServe = await startAdvertisedServe(server, Number(serverPort));
    await waitFor(async () => (await texts(server)).some((r) => r.text === 'while you were away'), 15_000, 'server drained its mailbox');
    expect((await texts(server)).find((r) => r.text === 'while you were away')?.path).toBe('relay');
    await waitFor(async () => (await relayQueueSize(relay.url, serverDid)) === 0, 10_000, 'acked');
    expect(await metric('relay_acks_total')).toBeGreaterThanOrEqual(1);
    // The server's batched receipt comes back (directly, the laptop being online): delivered.
    await waitFor(async () => (await deliveredState('while you were away')) === 'delivered', 15_000, 'the receipt reached the laptop');
    expect((await spl(laptop, 'fleet', 'sync', 'status')).stdout).toMatch(/records: 2 delivered, 0 at the relay, 0 queued/);
  });

  it('3. only the receiver online: it polls, receives nothing, and nothing breaks', async () => {
    expect(await laptopServe!.stop()).toBe(0);
    laptopServe = undefined;
    const before = (await texts(server)).length;
    const receives = await metric('relay_receives_total');
    await waitFor(async () => (await metric('relay_receives_total')) > receives, 40_000, 'the server polled again');
    expect((await texts(server)).length).toBe(before);
    const doctor = await spl(server, 'doctor', '--json');
    expect(doctor.code, doctor.stdout).toBe(0);
    const status = JSON.parse((await spl(server, 'fleet', 'sync', 'status', '--json')).stdout) as {
      relays: { lastError?: string; lastReceiveAt?: number }[];
    };
    expect(status.relays).toHaveLength(1);
    expect(status.relays[0]!.lastError).toBeUndefined();
    // Its direct endpoint still guards its door while it waits.
    const bad = await postRecords(serverServe!.url, { records: [{ id: 'x', record: {} }] });
    expect(bad.status).toBe(422);
  });

  it('4. neither online: the sender keeps the envelope (with its next retry) and delivers when it comes back', async () => {
    expect(await serverServe!.stop()).toBe(0);
    serverServe = undefined;
    await relay.stop(); // the laptop has no network: neither the peer nor the relay answers
    const emitted = await spl(laptop, 'emit', '--thread', THREAD, '--text', 'written offline');
    expect(emitted.stdout).toContain('0 direct, 0 via relay; 1 pending');
    const status = await spl(laptop, 'fleet', 'sync', 'status');
    expect(status.stdout).toMatch(/delivery: pending, next retry in \d+ s \(outbox: 1 pending/);
    expect(status.stdout).toMatch(/last error: direct: network error.*; relay: network error/);

    // doctor: the relay is unreachable (fail) and, after more failed tries, the outbox is stuck.
    for (let i = 0; i < 4; i++) await spl(laptop, 'fleet', 'sync', 'flush');
    const doctor = await spl(laptop, 'doctor', '--json');
    expect(doctor.code).toBe(2);
    const checks = (JSON.parse(doctor.stdout) as { checks: { id: string; status: string }[] }).checks;
    expect(checks).toContainEqual({ id: 'relay_reachable', status: 'fail', message: expect.any(String) as string });
    expect(checks).toContainEqual({ id: 'outbox_stuck', status: 'warn', message: expect.any(String) as string });

    // The laptop comes back (relay reachable again, daemon started): the relay path activates.
    relay = await startRelay();
    laptopServe = await startAdvertisedServe(laptop);
    await waitFor(async () => (await relayQueueSize(relay.url, serverDid)) === 1, 15_000, 'deposited on return');
    // Later the server comes back and drains it.
    serverServe = await startAdvertisedServe(server, Number(serverPort));
    await waitFor(async () => (await texts(server)).some((r) => r.text === 'written offline'), 15_000, 'server got it');
    await waitFor(async () => (await relayQueueSize(relay.url, serverDid)) === 0, 10_000, 'acked');
    const all = await texts(server);
    expect(all.filter((r) => r.text === 'written offline')).toHaveLength(1);
    const healthy = await spl(laptop, 'doctor', '--json');
    expect(healthy.code, healthy.stdout).toBe(0);
  });
});
