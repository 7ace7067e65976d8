/**
 * Helpers for CLI tests: temp homes, `spl` in-process (fast: runCli with buffers) or as a real
 * process (bin/spl.js), and a foreground `spl serve` that is ready once it logs its URL
 * (spawning, waiting and stopping: support/process.ts).
 * Everything waits on conditions with deadlines; nothing sleeps.
 */
import { freePort } from '../../support/ports';
import type { ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInvite, inviteLink, signRecord, type SignedRecord } from '../../src/core';
import { runCli } from '../../src/cli/program';
import { ROOT } from '../../support/paths';
import { runToExit, startProcess } from '../../support/process';
import { newPeer, note, type TestPeer } from '../../support/fixtures';

export const SPL_BIN = join(ROOT, 'bin', 'spl.js');

export interface CliResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

const homes: string[] = [];

export async function tempHome(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'spl-home-'));
  homes.push(dir);
  return dir;
}

export async function removeHomes(): Promise<void> {
  await Promise.all(homes.splice(0).map((d) => rm(d, { recursive: true, force: true })));
}

/** A clean environment: no SPL_HOME/XDG leaking in from the developer's shell. */
export function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const { SPL_HOME: _h, XDG_DATA_HOME: _x, SPL_APP_URL: _a, ...rest } = process.env;
  return { ...rest, ...extra };
}

/** `spl --home <home> ...args` in this process. */
export async function spl(home: string | undefined, ...args: string[]): Promise<CliResult> {
  let stdout = '';
  let stderr = '';
  const code = await runCli(home === undefined ? args : ['--home', home, ...args], {
    out: (t) => (stdout += t),
    err: (t) => (stderr += t),
    env: cleanEnv(),
  });
  return { code, stdout, stderr };
}

/** `node bin/spl.js ...args` as a real process; `input` is written to its stdin (else stdin is empty). */
export async function splProcess(
  args: readonly string[],
  env: NodeJS.ProcessEnv = cleanEnv(),
  timeoutMs = 30_000,
  input?: string,
): Promise<CliResult> {
  const { code, stdout, stderr } = await runToExit(
    { name: `spl ${args.join(' ')}`, args: [SPL_BIN, ...args], env, ...(input === undefined ? {} : { input }) },
    timeoutMs,
  );
  return { code: code ?? -1, stdout, stderr };
}

export interface ServeProcess {
  readonly url: string;
  readonly proc: ChildProcess;
  readonly lines: readonly string[];
  /** Resolves with the first log line matching `re` (already seen or future). */
  waitForLog(re: RegExp, timeoutMs?: number): Promise<string>;
  /** SIGTERM (SIGKILL past the bound, support/process.ts), resolves the exit code. */
  stop(): Promise<number | null>;
}

const LISTENING = /listening on (http:\/\/\S+)/;

/** `spl serve --port 0` in the foreground, ready once it logs "listening on <url>". */
export async function startServe(home: string, extra: readonly string[] = []): Promise<ServeProcess> {
  const { process: serve, line } = await startProcess(
    { name: 'spl serve', args: [SPL_BIN, '--home', home, 'serve', '--port', '0', '--long-poll', '2', ...extra], env: cleanEnv() },
    LISTENING,
    20_000,
  );
  return {
    url: LISTENING.exec(line)![1]!,
    proc: serve.proc,
    lines: serve.lines,
    waitForLog: (re, timeoutMs = 15_000) => serve.waitForLine(re, timeoutMs),
    stop: () => serve.stop(),
  };
}

/**
 * A stand-in remote peer: its own key, and an invite the home under test can accept, so that
 * home pairs with it (PROTOCOL.md §9) without a second `spl`.
 */
export async function remotePeer(opts: {
  threads: string[];
  peerUrl?: string;
  relays?: string[];
}): Promise<TestPeer & { link: string; sign(text: string, clock: number, thread?: string): Promise<SignedRecord> }> {
  const p = newPeer();
  const invite = await createInvite(
    {
      did: p.did,
      name: 'Remote',
      relays: opts.relays ?? [],
      ...(opts.peerUrl ? { peer_url: opts.peerUrl } : {}),
      threads: opts.threads,
      exp: Date.now() + 3_600_000,
    },
    p.signer,
  );
  return {
    ...p,
    link: inviteLink('https://app.example/', invite),
    sign: (text, clock, thread = opts.threads[0] ?? 'th_test') => signRecord(note(p.did, text, clock, thread), p.signer),
  };
}

export const postRecords = (url: string, body: unknown, headers: Record<string, string> = {}): Promise<Response> =>
  fetch(`${url}/v1/sync/records`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-syncropel-federation': '1', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });

/** A port nothing listens on (connection refused at once). */
export const DEAD_URL = 'http://127.0.0.1:9';

export { freePort };

/** `spl serve` on a fixed loopback port, advertising that URL (--public-url) for direct delivery. */
export async function startAdvertisedServe(home: string, port?: number): Promise<ServeProcess> {
  const p = port ?? (await freePort());
  return startServe(home, ['--port', String(p), '--public-url', `http://127.0.0.1:${p}`]);
}
