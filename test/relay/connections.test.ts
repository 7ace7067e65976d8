/**
 * PROTOCOL.md §5 "Connections" against a real relay process: one client holding thousands of
 * silent or malformed connections (from its own loopback address, 127.0.0.2) neither exhausts the
 * relay's file descriptors nor stops another client's /health, deposit and receive.
 * Counts stay far below `ulimit -n` (checked); every wait is on a condition.
 */
import { request } from 'node:http';
import { connect, type Socket } from 'node:net';
import { execSync } from 'node:child_process';
import { afterEach, describe, expect, it } from 'vitest';
import { signMailboxRequest } from '../../src/core';
import { newPeer, type TestPeer } from '../../support/fixtures';
import {
  deposit,
  hostOf,
  junkSealed,
  mailboxPath,
  openFds,
  signedReceive,
  startRelayProcess,
  waitFor,
  type RelayProcess,
} from '../../support/relay-process';

const ATTACKER = '127.0.0.2';
const SILENT_SOCKETS = 3000;

const fdLimit = Number(execSync('ulimit -n', { shell: '/bin/sh' }).toString().trim());

let relay: RelayProcess | undefined;
const held: Socket[] = [];
afterEach(async () => {
  for (const s of held.splice(0)) s.destroy();
  if (relay) expect(await relay.stop()).toBe(0);
  relay = undefined;
});

/** Opens `n` sockets from `localAddress`, each sending `first` and then never reading. */
async function holdSockets(url: string, n: number, localAddress: string, first: string): Promise<void> {
  const u = new URL(url);
  const BATCH = 250;
  for (let i = 0; i < n; i += BATCH) {
    await Promise.all(
      Array.from(
        { length: Math.min(BATCH, n - i) },
        () =>
          new Promise<void>((resolve) => {
            const s = connect({ host: u.hostname, port: Number(u.port), localAddress });
            held.push(s);
            s.pause(); // never read what the relay answers
            s.on('error', () => resolve());
            s.on('close', () => resolve());
            s.once('connect', () => {
              s.write(first);
              resolve();
            });
          }),
      ),
    );
  }
}

/** The victim's round: /health, a deposit and a signed receive, all from 127.0.0.1. */
async function victimRound(url: string, bob: TestPeer): Promise<void> {
  const health = await fetch(`${url}/health`);
  expect(health.status).toBe(200);
  const env = junkSealed(bob.did);
  expect((await deposit(url, bob.did, env)).status).toBe(202);
  const got = await signedReceive(url, bob.did, bob.signer, { limit: 500 });
  expect(got.status).toBe(200);
  expect(((await got.json()) as { envelopes: { id: string }[] }).envelopes.map((e) => e.id)).toContain(env.id);
}

describe('connections (§5)', () => {
  it('a client holding thousands of silent sockets neither holds the fds nor blocks others', async () => {
    expect(SILENT_SOCKETS * 2 + 500).toBeLessThan(fdLimit); // our ends and the relay's, with room
    relay = await startRelayProcess([
      '--no-rate-limit',
      '--headers-timeout',
      '2',
      '--max-connections-per-client',
      '100',
      '--max-connections',
      '1000',
    ]);
    const pid = relay.proc.pid!;
    const bob = newPeer();
    await victimRound(relay.url, bob);
    const baseline = openFds(pid);

    // Half-sent requests: a request line and one header, then silence.
    await holdSockets(relay.url, SILENT_SOCKETS, ATTACKER, 'POST /v1/mailbox/x HTTP/1.1\r\nHost: relay\r\n');
    // While the attacker still holds every socket open on its side, the victim is served.
    await victimRound(relay.url, bob);
    await victimRound(relay.url, bob);
    // The relay has let go of all of them: refused at accept beyond the per-client cap, cut at
    // the headers timeout otherwise; the attacker never read a byte or closed anything.
    await waitFor(() => openFds(pid) <= baseline + 10, 20_000, 'the relay to release the silent sockets');
    expect(held.every((s) => !s.destroyed)).toBe(true);
    const metrics = await (await fetch(`${relay.url}/metrics`)).text();
    expect(Number(/relay_rate_limit_hits_total\{kind="connections"\} (\d+)/.exec(metrics)?.[1])).toBeGreaterThanOrEqual(
      SILENT_SOCKETS - 100,
    );
    await victimRound(relay.url, bob);
  });

  it('a malformed request is answered and its socket destroyed even when the client never reads', async () => {
    relay = await startRelayProcess(['--no-rate-limit', '--max-connections-per-client', '500']);
    const pid = relay.proc.pid!;
    const baseline = openFds(pid);
    await holdSockets(relay.url, 400, ATTACKER, 'NOT HTTP AT ALL\r\n\r\n');
    await waitFor(() => openFds(pid) <= baseline + 10, 20_000, 'the relay to destroy the malformed connections');
    expect((await fetch(`${relay.url}/health`)).status).toBe(200);
  });

  it('a slow body is cut at --body-timeout with 408 and the socket is destroyed', async () => {
    relay = await startRelayProcess(['--no-rate-limit', '--headers-timeout', '1', '--body-timeout', '1']);
    const pid = relay.proc.pid!;
    const bob = newPeer();
    const baseline = openFds(pid);
    const u = new URL(relay.url);
    const answer = await new Promise<string>((resolve) => {
      const s = connect({ host: u.hostname, port: Number(u.port), localAddress: ATTACKER });
      held.push(s);
      let text = '';
      s.on('data', (c: Buffer) => (text += c.toString()));
      s.on('close', () => resolve(text));
      s.write(
        `POST ${mailboxPath(bob.did)} HTTP/1.1\r\nHost: ${u.host}\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n{"v":1,`,
      );
    });
    expect(answer).toMatch(/^HTTP\/1\.1 408 /);
    expect(answer).toContain('"request_timeout"');
    await waitFor(() => openFds(pid) <= baseline, 10_000, 'the relay to close the slow connection');
  });

  it('long-polls count as connections: the per-client cap refuses the next one, other clients are served', async () => {
    relay = await startRelayProcess(['--no-rate-limit', '--max-connections-per-client', '3']);
    const url = relay.url;
    const u = new URL(url);
    const peers = [newPeer(), newPeer(), newPeer()];
    const signed = await Promise.all(
      peers.map(async (p) => {
        const pathAndQuery = `${mailboxPath(p.did)}/receive?wait=20`;
        return { pathAndQuery, auth: await signMailboxRequest({ method: 'GET', host: hostOf(url), pathAndQuery, body: '' }, p.signer) };
      }),
    );
    const polls = signed.map(
      ({ pathAndQuery, auth }) =>
        new Promise<number>((resolve, reject) => {
          const req = request(
            { host: u.hostname, port: u.port, path: pathAndQuery, localAddress: '127.0.0.3', headers: { authorization: auth } },
            (res) => {
              res.resume();
              resolve(res.statusCode ?? 0);
            },
          );
          req.on('error', reject);
          req.end();
        }),
    );
    await waitFor(
      async () => /relay_long_polls_waiting 3\b/.test(await (await fetch(`${url}/metrics`)).text()),
      10_000,
      'three held long-polls',
    );
    const fourth = await new Promise<string>((resolve) => {
      const req = request({ host: u.hostname, port: u.port, path: '/health', localAddress: '127.0.0.3', agent: false }, (res) => {
        res.resume();
        resolve(`status ${res.statusCode}`);
      });
      req.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
      req.end();
    });
    expect(fourth).toMatch(/ECONNRESET|socket hang up|EPIPE/);
    expect((await fetch(`${url}/health`)).status).toBe(200); // another address
    // Mail wakes the long-polls; they answer normally.
    for (const p of peers) expect((await deposit(url, p.did, junkSealed(p.did))).status).toBe(202);
    expect(await Promise.all(polls)).toEqual([200, 200, 200]);
  });
});
