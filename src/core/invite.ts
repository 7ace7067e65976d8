/**
 * Pairing invites (PROTOCOL.md §9): `<app URL>#pair=<b64u(JCS(invite))>`, signed by the inviter
 * over JCS of the invite without `sig`.
 */
import { fromB64u, fromUtf8, randomBytes, toB64u, utf8 } from './bytes';
import { canonicalBytes, canonicalize } from './canonical';
import { publicKeyFromDid } from './did';
import { verify, type Signer } from './ed25519';
import { isObject, parseJsonText } from './json';
import { THREAD_RE } from './record';
import { fail, ok, type Result } from './result';

export interface Invite {
  readonly v: 1;
  readonly did: string;
  readonly name: string;
  readonly relays: readonly string[];
  readonly peer_url?: string;
  /** The inviter's deposit token (§5.1): the reply is deposited with it rather than as unsolicited mail. */
  readonly deposit_token?: string;
  readonly threads: readonly string[];
  readonly nonce: string;
  readonly exp: number;
  readonly sig: string;
}

export type InviteErrorCode = 'invalid_invite' | 'expired_invite' | 'bad_invite_signature';

export const isHttpUrl = (s: unknown): s is string => {
  if (typeof s !== 'string' || s.length > 2048) return false;
  try {
    const u = new URL(s);
    return (u.protocol === 'https:' || u.protocol === 'http:') && u.username === '' && u.password === '';
  } catch {
    return false;
  }
};

export async function createInvite(fields: Omit<Invite, 'v' | 'nonce' | 'sig'> & { nonce?: string }, signer: Signer): Promise<Invite> {
  const unsigned = {
    v: 1 as const,
    did: fields.did,
    name: fields.name,
    relays: [...fields.relays],
    ...(fields.peer_url ? { peer_url: fields.peer_url } : {}),
    ...(fields.deposit_token ? { deposit_token: fields.deposit_token } : {}),
    threads: [...fields.threads],
    nonce: fields.nonce ?? toB64u(randomBytes(16)),
    exp: fields.exp,
  };
  return { ...unsigned, sig: toB64u(await signer.sign(canonicalBytes(unsigned))) };
}

/** The part after `#pair=`. */
export const encodeInvite = (invite: Invite): string => toB64u(utf8(canonicalize(invite)));

export const inviteLink = (appUrl: string, invite: Invite): string => `${appUrl.replace(/#.*$/, '')}#pair=${encodeInvite(invite)}`;

/** §5.1: a deposit token is b64u of 16–32 random bytes. */
export const isDepositToken = (t: unknown): t is string => {
  if (typeof t !== 'string' || !/^[A-Za-z0-9_-]{22,43}$/.test(t)) return false;
  const n = fromB64u(t)?.length ?? 0;
  return n >= 16 && n <= 32;
};

const bad = (why: string) => fail('invalid_invite' as const, `invite ${why}`);

/** Accepts a full link or the bare payload; checks every field, the signature and expiry. */
export async function parseInvite(linkOrPayload: string, now: number): Promise<Result<Invite, InviteErrorCode>> {
  const trimmed = linkOrPayload.trim();
  const at = trimmed.indexOf('#pair=');
  const payload = at >= 0 ? trimmed.slice(at + 6) : trimmed;
  const bytes = fromB64u(payload);
  if (!bytes) return bad('is not a pairing link or base64url payload');
  let text: string;
  try {
    text = fromUtf8(bytes);
  } catch {
    return bad('payload is not UTF-8');
  }
  const json = parseJsonText(text);
  if (!json.ok || !isObject(json.value)) return bad('payload is not a JSON object');
  const v = json.value;
  if (v.v !== 1) return bad('version must be 1');
  if (typeof v.did !== 'string') return bad('has no inviter DID');
  const key = publicKeyFromDid(v.did);
  if (!key.ok) return bad(`inviter: ${key.error.message}`);
  if (typeof v.name !== 'string' || v.name.length > 200) return bad('name must be a string of at most 200 characters');
  if (!Array.isArray(v.relays) || v.relays.length > 16 || !v.relays.every(isHttpUrl)) return bad('relays must be a list of http(s) URLs');
  if (v.peer_url !== undefined && !isHttpUrl(v.peer_url)) return bad('peer_url must be an http(s) URL');
  if (v.deposit_token !== undefined && !isDepositToken(v.deposit_token)) return bad('deposit_token must be 16–32 random bytes, base64url');
  if (!Array.isArray(v.threads) || v.threads.length > 256 || !v.threads.every((t) => typeof t === 'string' && THREAD_RE.test(t))) {
    return bad('threads must be a list of thread IDs');
  }
  if (typeof v.nonce !== 'string' || fromB64u(v.nonce)?.length !== 16) return bad('nonce must be 16 bytes, base64url');
  if (typeof v.exp !== 'number' || !Number.isSafeInteger(v.exp)) return bad('exp must be a unix time in ms');
  if (typeof v.sig !== 'string') return bad('is not signed');
  const { sig, ...unsigned } = v;
  const sigBytes = fromB64u(sig);
  let signedBytes: Uint8Array;
  try {
    signedBytes = canonicalBytes(unsigned);
  } catch {
    return bad('cannot be canonicalised');
  }
  if (!sigBytes || !(await verify(sigBytes, signedBytes, key.value))) {
    return fail('bad_invite_signature', `invite signature does not verify against ${v.did}`);
  }
  if (v.exp < now) return fail('expired_invite', `invite expired at ${new Date(v.exp).toISOString()}`);
  return ok(v as unknown as Invite);
}
