/**
 * Mailbox owner authentication (PROTOCOL.md §6):
 * `Authorization: Syncropel-Mailbox ts=<unix ms>,sig=<b64u>`, an Ed25519 signature by the
 * mailbox DID's key over the request's method, host, path-and-query, time and body hash.
 */
import { fromB64u, toB64u, utf8 } from './bytes';
import { publicKeyFromDid } from './did';
import { verify, type Signer } from './ed25519';
import { sha256Hex } from './hash';
import { fail, ok, type Result } from './result';

export const MAILBOX_AUTH_SCHEME = 'Syncropel-Mailbox';
export const MAX_CLOCK_SKEW_MS = 120_000;

export interface MailboxRequest {
  readonly method: string;
  /** The Host header as sent (host[:port]). */
  readonly host: string;
  /** The request target exactly as sent, e.g. `/v1/mailbox/did%3Akey%3Az6Mk.../receive?limit=10`. */
  readonly pathAndQuery: string;
  readonly body: Uint8Array | string;
}

export function mailboxAuthMessage(req: MailboxRequest, ts: number): Uint8Array {
  const body = typeof req.body === 'string' ? utf8(req.body) : req.body;
  return utf8(`syncropel-mailbox-v1\n${req.method.toUpperCase()}\n${req.host}\n${req.pathAndQuery}\n${ts}\n${sha256Hex(body)}`);
}

/** The Authorization header value for `req`, signed now (or at `ts`). */
export async function signMailboxRequest(req: MailboxRequest, signer: Signer, ts: number = Date.now()): Promise<string> {
  const sig = await signer.sign(mailboxAuthMessage(req, ts));
  return `${MAILBOX_AUTH_SCHEME} ts=${ts},sig=${toB64u(sig)}`;
}

export interface MailboxAuth {
  readonly ts: number;
  readonly sig: string;
}

export type MailboxAuthErrorCode = 'unauthorized' | 'unverifiable_did';

export function parseMailboxAuthHeader(header: string | undefined): Result<MailboxAuth, 'unauthorized'> {
  if (!header) return fail('unauthorized', `missing Authorization header (${MAILBOX_AUTH_SCHEME} ts=…,sig=…)`);
  const m = /^Syncropel-Mailbox\s+ts=(\d{1,16}),\s*sig=([A-Za-z0-9_-]{86})$/.exec(header.trim());
  if (!m) return fail('unauthorized', `Authorization header is not "${MAILBOX_AUTH_SCHEME} ts=<unix ms>,sig=<b64u>"`);
  return ok({ ts: Number(m[1]), sig: m[2]! });
}

/**
 * Verifies the owner of `did` signed `req`. Stateless: the caller rejects replays of `sig`
 * within the skew window (a relay keeps the signatures it has seen).
 */
export async function verifyMailboxAuth(
  header: string | undefined,
  did: string,
  req: MailboxRequest,
  now: number,
  maxSkewMs: number = MAX_CLOCK_SKEW_MS,
): Promise<Result<MailboxAuth, MailboxAuthErrorCode>> {
  const key = publicKeyFromDid(did);
  if (!key.ok) return fail('unverifiable_did', `mailbox owner cannot be verified: ${key.error.message}`);
  const auth = parseMailboxAuthHeader(header);
  if (!auth.ok) return auth;
  if (Math.abs(now - auth.value.ts) > maxSkewMs) {
    return fail('unauthorized', `request time ${auth.value.ts} is more than ${maxSkewMs / 1000} s from the relay clock`);
  }
  const sig = fromB64u(auth.value.sig);
  if (!sig || !(await verify(sig, mailboxAuthMessage(req, auth.value.ts), key.value))) {
    return fail('unauthorized', `signature does not verify against ${did.slice(0, 80)}`);
  }
  return ok(auth.value);
}
