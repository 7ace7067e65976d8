/**
 * Helpers for CLI tests: temp homes, `spl` in-process (fast: runCli with buffers) or as a real
 * process (bin/spl.js), and a foreground `spl serve` that is ready once it logs its URL.
 * Everything waits on conditions with deadlines; nothing sleeps.
 */
import { freePort } from '../../support/ports';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { createInvite, inviteLink, signRecord, type SignedRecord } from '../../src/core';
import { runCli } from '../../src/cli/program';
import { ROOT } from '../../support/paths';
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
export function splProcess(args: readonly string[], env: NodeJS.ProcessEnv = cleanEnv(), timeoutMs = 30_000, input?: string): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const proc = spawn(process.execPath, [SPL_BIN, ...args], { cwd: ROOT, env, stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] });
    if (input !== undefined) proc.stdin?.end(input);
    let stdout = '';
    let stderr = '';
    proc.stdout!.on('data', (c: Buffer) => (stdout += c.toString()));
    proc.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
    const timer = setTimeout(() => {
      proc.kill('SIGKILL');
      reject(new Error(`spl ${args.join(' ')} timed out: ${stderr}`));
    }, timeoutMs);
    proc.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code: code ?? -1, stdout, stderr });
    });
  });
}

export interface ServeProcess {
  readonly url: string;
  readonly proc: ChildProcess;
  readonly lines: readonly string[];
  /** Resolves with the first log line matching `re` (already seen or future). */
  waitForLog(re: RegExp, timeoutMs?: number): Promise<string>;
  /** SIGTERM, resolves the exit code. */
  stop(): Promise<number | null>;
}

/** `spl serve --port 0` in the foreground, ready once it logs "listening on <url>". */
export function startServe(home: string, extra: readonly string[] = []): Promise<ServeProcess> {
  const proc = spawn(process.execPath, [SPL_BIN, '--home', home, 'serve', '--port', '0', '--long-poll', '2', ...extra], {
    cwd: ROOT,
    env: cleanEnv(),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: string[] = [];
  const waiters: { re: RegExp; resolve: (l: string) => void }[] = [];
  let stderr = '';
  proc.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
  createInterface({ input: proc.stdout }).on('line', (line) => {
    lines.push(line);
    for (const w of [...waiters]) {
      if (w.re.test(line)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(line);
      }
    }
  });
  const waitForLog = (re: RegExp, timeoutMs = 15_000): Promise<string> => {
    const seen = lines.find((l) => re.test(l));
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no log line ${String(re)} within ${timeoutMs} ms; got:\n${lines.join('\n')}\n${stderr}`)), timeoutMs);
      waiters.push({
        re,
        resolve: (l) => {
          clearTimeout(timer);
          resolve(l);
        },
      });
    });
  };
  return Promise.race([
    waitForLog(/listening on (http:\/\/\S+)/, 20_000).then((line) => {
      const url = /listening on (http:\/\/\S+)/.exec(line)![1]!;
      return {
        url,
        proc,
        lines,
        waitForLog,
        stop: () => {
          if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM');
          return exited;
        },
      };
    }),
    exited.then((code) => {
      throw new Error(`spl serve exited (${code}) before listening: ${stderr}`);
    }),
  ]);
}

/**
 * A stand-in remote peer: its own key, and an invite the home under test can accept, so that
 * home pairs with it (PROTOCOL.md §9) without a second `spl`.
 */
export async function remotePeer(opts: { threads: string[]; peerUrl?: string; relays?: string[] }): Promise<TestPeer & { link: string; sign(text: string, clock: number, thread?: string): Promise<SignedRecord> }> {
  const p = newPeer();
  const invite = await createInvite(
    { did: p.did, name: 'Remote', relays: opts.relays ?? [], ...(opts.peerUrl ? { peer_url: opts.peerUrl } : {}), threads: opts.threads, exp: Date.now() + 3_600_000 },
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
