/**
 * Parsers of command-line values. Kept apart from the commands (and light: no store, no crypto)
 * so that building the command tree for `spl --help` loads none of the heavy modules.
 */
import { THREAD_RE } from '../core/thread-id';
import { UsageError } from './errors';

export function parseThread(value: string): string {
  if (!THREAD_RE.test(value)) throw new UsageError(`"${value}" is not a thread ID (th_ followed by 1-128 of A-Z a-z 0-9 _)`);
  return value;
}

export function parseTtlDays(value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0 || n > 30) throw new UsageError(`--ttl-days must be a number of days in (0, 30], not "${value}"`);
  return n;
}

export function parsePort(value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || n > 65535) throw new UsageError(`--port must be an integer in 0..65535, not "${value}"`);
  return n;
}

export function parseLongPoll(value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || n < 1 || n > 30)
    throw new UsageError(`--long-poll must be an integer number of seconds in 1..30, not "${value}"`);
  return n;
}

export function parsePublicUrl(value: string): string {
  try {
    const u = new URL(value);
    if (u.protocol === 'http:' || u.protocol === 'https:') return value.replace(/\/+$/, '');
  } catch {
    // fall through
  }
  throw new UsageError(`--public-url must be an http(s) URL, not "${value}"`);
}

/** `--for-pair` is "all" or a DID (the guide also shows labels such as did:sync:user:alice). */
export function parseForPair(value: string): string {
  const v = value.trim();
  if (v === 'all' || /^did:[a-z0-9]+:\S+$/.test(v)) return v;
  throw new UsageError(`--for-pair must be "all" or a DID, not "${value}"`);
}

export function parseRelayUrl(value: string): string {
  let u: URL;
  try {
    u = new URL(value);
  } catch {
    throw new UsageError(`"${value}" is not a URL (expected e.g. https://relay.syncropel.com)`);
  }
  if (u.protocol !== 'https:' && u.protocol !== 'http:') throw new UsageError(`"${value}" is not an http(s) URL`);
  return value;
}

/**
 * The base of invite links: an http(s) URL without credentials, query or fragment (the link
 * appends `#pair=…`). A path is kept: the app may live under one (e.g. /syncropel/).
 */
export function parseAppUrl(value: string, what = '--app-url'): string {
  let u: URL;
  try {
    u = new URL(value.trim());
  } catch {
    throw new UsageError(`${what} must be the http(s) URL of a Syncropel app, not "${value}"`);
  }
  if (u.protocol !== 'https:' && u.protocol !== 'http:') throw new UsageError(`${what} must be an http(s) URL, not "${value}"`);
  if (u.username || u.password) throw new UsageError(`${what} must not carry a user name or password`);
  u.hash = '';
  u.search = '';
  return u.href;
}
