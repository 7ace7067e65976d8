/**
 * A real relay process for tests: `node bin/spl-relay.js --host 127.0.0.1 --port 0 …`, ready once
 * it prints its listening line (no sleeps; spawning and stopping: ./process.ts). Plus signed receive/ack helpers (PROTOCOL.md §6),
 * reusable by browser e2e tests.
 */
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { signMailboxRequest, type Signer } from '../src/core/index';
import { ROOT } from './paths';
import { runToExit, startProcess } from './process';

export interface RelayProcess {
  readonly url: string;
  readonly proc: ChildProcess;
  /** Log lines (stdout) seen so far, parsed when JSON. */
  readonly logs: readonly Record<string, unknown>[];
  /** SIGTERM and wait for exit (SIGKILL past the bound, ./process.ts); resolves the exit code. */
  stop(): Promise<number | null>;
  /** SIGKILL (crash) and wait for exit. */
  kill9(): Promise<void>;
  /** Resolves once the process has exited, with its code. */
  readonly exited: Promise<number | null>;
}

const STARTUP_TIMEOUT_MS = 20_000;

const parseLogLine = (line: string): Record<string, unknown> => {
  try {
    const value: unknown = JSON.parse(line);
    return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : { raw: line };
  } catch {
    return { raw: line };
  }
};

/** Starts a relay; `args` are extra CLI options (e.g. `['--db', ':memory:', '--cap', '3']`). */
export async function startRelayProcess(args: readonly string[] = []): Promise<RelayProcess> {
  const hasDb = args.includes('--db');
  const logs: Record<string, unknown>[] = [];
  const { process: relay, line } = await startProcess(
    {
      name: 'spl-relay',
      args: [join(ROOT, 'bin', 'spl-relay.js'), '--host', '127.0.0.1', '--port', '0', ...(hasDb ? [] : ['--db', ':memory:']), ...args],
      onLine: (l) => logs.push(parseLogLine(l)),
    },
    (l) => {
      const entry = parseLogLine(l);
      return entry.msg === 'listening' && typeof entry.url === 'string';
    },
    STARTUP_TIMEOUT_MS,
  );
  return {
    url: parseLogLine(line).url as string,
    proc: relay.proc,
    logs,
    exited: relay.exited,
    stop: () => relay.stop(),
    kill9: () => relay.kill(),
  };
}

/** The Host header fetch will send for `url` (what the relay puts in the signed string). */
export const hostOf = (url: string): string => new URL(url).host;

export const mailboxPath = (did: string): string => `/v1/mailbox/${encodeURIComponent(did)}`;

/** GET receive, signed by `signer` (the mailbox owner) unless `auth: null`. */
export async function signedReceive(
  relayUrl: string,
  did: string,
  signer: Signer,
  opts: { limit?: number; wait?: number; ts?: number; auth?: string | null } = {},
): Promise<Response> {
  const params = new URLSearchParams();
  if (opts.limit !== undefined) params.set('limit', String(opts.limit));
  if (opts.wait !== undefined) params.set('wait', String(opts.wait));
  const qs = params.toString();
  const pathAndQuery = `${mailboxPath(did)}/receive${qs ? `?${qs}` : ''}`;
  const auth =
    opts.auth !== undefined
      ? opts.auth
      : await signMailboxRequest({ method: 'GET', host: hostOf(relayUrl), pathAndQuery, body: '' }, signer, opts.ts);
  return fetch(relayUrl + pathAndQuery, { headers: auth === null ? {} : { authorization: auth } });
}

/** POST ack `{"ids": ids}`, signed by `signer`. */
export async function signedAck(
  relayUrl: string,
  did: string,
  signer: Signer,
  ids: readonly string[],
  opts: { ts?: number } = {},
): Promise<Response> {
  const pathAndQuery = `${mailboxPath(did)}/ack`;
  const body = JSON.stringify({ ids });
  const auth = await signMailboxRequest({ method: 'POST', host: hostOf(relayUrl), pathAndQuery, body }, signer, opts.ts);
  return fetch(relayUrl + pathAndQuery, { method: 'POST', headers: { authorization: auth, 'content-type': 'application/json' }, body });
}

/** POST an envelope (object or raw text) to `did`'s mailbox. */
export function deposit(relayUrl: string, did: string, envelope: unknown, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(relayUrl + mailboxPath(did), {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: typeof envelope === 'string' ? envelope : JSON.stringify(envelope),
  });
}

/** Polls `check` until it is truthy (condition wait, not a sleep), failing after `timeoutMs`. */
export async function waitFor<T>(check: () => Promise<T> | T, timeoutMs = 10_000, what = 'condition'): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** PUT the deposit tokens of `did`'s mailbox (PROTOCOL.md §5.1), signed by its owner. */
export async function signedPutTokens(
  relayUrl: string,
  did: string,
  signer: Signer,
  tokens: readonly string[] | string,
): Promise<Response> {
  const pathAndQuery = `${mailboxPath(did)}/tokens`;
  const body = typeof tokens === 'string' ? tokens : JSON.stringify({ tokens });
  const auth = await signMailboxRequest({ method: 'PUT', host: hostOf(relayUrl), pathAndQuery, body }, signer);
  return fetch(relayUrl + pathAndQuery, { method: 'PUT', headers: { authorization: auth, 'content-type': 'application/json' }, body });
}

/**
 * A sealed-shaped envelope for `toDid` with random content: what a stranger flooding a mailbox
 * sends (the relay never opens sealed envelopes, so it cannot tell it from real mail).
 */
export function junkSealed(toDid: string, ciphertextBytes = 256): Record<string, unknown> {
  return {
    v: 1,
    id: randomBytes(32).toString('hex'),
    to_did: toDid,
    encoding: 'sealed',
    epk: randomBytes(32).toString('base64url'),
    nonce: randomBytes(24).toString('base64url'),
    ciphertext: randomBytes(ciphertextBytes).toString('base64url'),
  };
}

/** Runs `spl-relay` with `args` expecting it to exit before listening; resolves its code and stderr. */
export function runRelayToExit(
  args: readonly string[],
  timeoutMs = 20_000,
): Promise<{ code: number | null; stderr: string; stdout: string }> {
  return runToExit({ name: 'spl-relay', args: [join(ROOT, 'bin', 'spl-relay.js'), ...args] }, timeoutMs);
}

/** Open file descriptors of a process (Linux /proc). */
export const openFds = (pid: number): number => readdirSync(`/proc/${pid}/fd`).length;
