/**
 * The mailbox routes of PROTOCOL.md §5: deposit, receive (with long-poll) and ack, with owner
 * authentication (§6) on receive and ack. Untrusted input is parsed once, here, at the edge.
 */
import { createHash } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { fromB64u, fromUtf8, isObject, MAX_CLOCK_SKEW_MS, verifyMailboxAuth } from '../core';
import { parseDepositedEnvelope } from './envelope-check';
import { parseJsonStrict } from './strict-json';
import { declaredLength, isJsonContentType, readBody, refuseDeclaredBody, sendError, sendJson, sendJsonText } from './http';
import type { RelayMetrics } from './metrics';
import type { MailboxNotifier } from './notifier';
import { effectiveTtlSeconds, type RelayOptions } from './options';
import type { RateLimiter } from './rate-limit';
import type { ReplayGuard } from './replay-guard';
import { parseReceiveQuery } from './routes';
import type { MailboxStore } from './storage/store';

export interface RelayContext {
  readonly options: RelayOptions;
  readonly store: MailboxStore;
  readonly metrics: RelayMetrics;
  readonly notifier: MailboxNotifier;
  readonly senderLimiter: RateLimiter | undefined;
  /** Single use of mailbox-auth signatures (replay-guard.ts). */
  readonly replay: ReplayGuard;
  /** Push wake (§5.2); undefined when push is off. */
  readonly push: PushHooks | undefined;
  /** True once shutdown started: long-polls answer at once. */
  isShuttingDown(): boolean;
  /** Whether `host` (a Host header) is one of the relay's origins (PROTOCOL.md §5 "Origins"). */
  isOrigin(host: string): boolean;
}

/** What the mailbox routes tell push wake (push/service.ts). */
export interface PushHooks {
  /** An envelope was committed to `did`'s queue; must not delay the 202. */
  onDeposit(did: string): void;
  /** An authorized receive of `did` starts: its owner is awake. Resolves once that is recorded (never rejects). */
  onReceive(did: string): Promise<void>;
}

export const MAX_ACK_IDS = 1000;
export const MAX_DEPOSIT_TOKENS = 100;
export const DEPOSIT_TOKEN_HEADER = 'x-syncropel-deposit-token';

/** A deposit token is b64u of 16–32 random bytes (PROTOCOL.md §5.1); the store sees only its SHA-256. */
function depositTokenBytes(text: string): Uint8Array | undefined {
  if (text.length < 22 || text.length > 43) return undefined;
  const bytes = fromB64u(text);
  return bytes && bytes.length >= 16 && bytes.length <= 32 ? bytes : undefined;
}
const tokenHash = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('hex');

/** The hash of the deposit token a depositor sent; null without one. A malformed token is an unknown one. */
function depositTokenHash(req: IncomingMessage): string | null {
  const header = req.headers[DEPOSIT_TOKEN_HEADER];
  if (typeof header !== 'string') return null;
  const bytes = depositTokenBytes(header.trim());
  return bytes ? tokenHash(bytes) : null;
}

/** Replay-cache entries outlive the skew window a little, so a signature is refused for as long as its ts is accepted. */
const REPLAY_MARGIN_MS = 5_000;

/** Reads a body under the size limit; answers 413 itself and resolves undefined when over it. */
export async function readLimitedBody(ctx: RelayContext, req: IncomingMessage, res: ServerResponse): Promise<Buffer | undefined> {
  const max = ctx.options.maxBody;
  const tooLarge = (): void => {
    ctx.metrics.limitHits.inc({ kind: 'payload_too_large' });
    sendError(res, 413, 'payload_too_large', `the body is larger than ${max} bytes`);
  };
  const declared = declaredLength(req);
  if (declared !== undefined && declared > max) {
    refuseDeclaredBody(req, res, declared, tooLarge);
    return undefined;
  }
  const body = await readBody(req, max);
  if (body.kind === 'ok') return body.body;
  if (body.kind === 'too_large') {
    res.setHeader('Connection', 'close');
    tooLarge();
  }
  return undefined; // aborted: the client is gone, nothing to answer
}

/** `POST /v1/mailbox/{did}`: 202 only after the store reports the envelope durable. */
export async function handleDeposit(ctx: RelayContext, req: IncomingMessage, res: ServerResponse, did: string): Promise<void> {
  if (!isJsonContentType(req.headers['content-type'])) {
    sendError(res, 415, 'unsupported_media_type', 'deposits must be sent as Content-Type: application/json');
    req.resume();
    return;
  }
  const bytes = await readLimitedBody(ctx, req, res);
  if (!bytes) return;

  let text: string;
  try {
    text = fromUtf8(bytes);
  } catch {
    return sendError(res, 400, 'invalid_envelope', 'the body is not valid UTF-8');
  }
  const json = parseJsonStrict(text);
  if (!json.ok) return sendError(res, 400, 'invalid_envelope', json.error.message);
  const parsed = parseDepositedEnvelope(json.value);
  if (!parsed.ok) return sendError(res, 400, 'invalid_envelope', parsed.error.message);
  const env = parsed.value;
  if (env.to_did !== did) {
    return sendError(res, 400, 'wrong_mailbox', "the envelope's to_did is not the mailbox it was posted to");
  }

  const fromDid = env.encoding === 'plain' ? env.from_did : null;
  const now = Date.now();
  if (fromDid !== null && ctx.senderLimiter) {
    const taken = ctx.senderLimiter.take(fromDid, now);
    if (!taken.ok) return rateLimited(ctx, res, taken.retryAfterSeconds, 'this sender');
  }

  const ttl = effectiveTtlSeconds(env.ttl_seconds, ctx.options);
  const outcome = await ctx.store.deposit(
    { id: env.id, toDid: did, fromDid, body: text, size: bytes.length, depositedAt: now, expiresAt: now + ttl * 1000 },
    depositTokenHash(req),
    { cap: ctx.options.cap, unsolicitedEnvelopes: ctx.options.unsolicitedEnvelopes, unsolicitedBytes: ctx.options.unsolicitedBytes },
  );
  if (outcome.kind === 'queue_full') {
    ctx.metrics.limitHits.inc({ kind: 'queue_full' });
    return sendError(res, 507, 'queue_full', `this mailbox already holds ${ctx.options.cap} envelopes`);
  }
  if (outcome.kind === 'unsolicited_quota') {
    ctx.metrics.limitHits.inc({ kind: 'unsolicited_quota' });
    return sendError(
      res,
      429,
      'unsolicited_quota',
      'this mailbox holds all the mail without a deposit token it accepts; its owner must receive first',
    );
  }
  if (outcome.kind === 'storage_full') {
    ctx.metrics.limitHits.inc({ kind: 'storage_full' });
    return sendError(res, 507, 'storage_full', 'the relay is at its storage limit and takes no new envelopes; try later');
  }
  ctx.metrics.deposits.inc();
  if (outcome.kind === 'stored') {
    // A waiting long-poll means the owner is awake: it gets the envelope now, no push needed.
    const ownerListening = ctx.notifier.isWaiting(did);
    ctx.notifier.notify(did);
    if (!ownerListening) ctx.push?.onDeposit(did);
  }
  sendJson(res, 202, { id: env.id, duplicate: outcome.kind === 'duplicate', expires_at: outcome.expiresAt });
}

export function rateLimited(ctx: RelayContext, res: ServerResponse, retryAfterSeconds: number, who: string): void {
  ctx.metrics.limitHits.inc({ kind: 'rate_limited' });
  sendError(res, 429, 'rate_limited', `${who} is over its request rate; retry after ${retryAfterSeconds} s`, {
    'Retry-After': String(retryAfterSeconds),
  });
}

/**
 * Owner authentication (PROTOCOL.md §6). The signed Host is the Host header and the
 * path-and-query is the request target exactly as sent. A verified signature is claimed in the
 * store's replay cache until its ts leaves the skew window; a second use is 401.
 * Answers the error itself and returns false when the request may not proceed.
 */
export async function authorizeOwner(
  ctx: RelayContext,
  req: IncomingMessage,
  res: ServerResponse,
  did: string,
  body: Buffer,
): Promise<boolean> {
  if (ctx.options.openMailboxes) return true;
  const host = req.headers.host ?? '';
  if (!ctx.isOrigin(host)) {
    // §5 "Origins": a signature made for another relay (or for no name of ours) is worthless here.
    sendError(res, 401, 'unauthorized', `this relay is not reached as "${host.slice(0, 100)}"; sign for one of its origins`);
    return false;
  }
  const now = Date.now();
  const auth = await verifyMailboxAuth(
    req.headers.authorization,
    did,
    { method: req.method ?? 'GET', host, pathAndQuery: req.url ?? '', body },
    now,
  );
  if (!auth.ok) {
    sendError(res, auth.error.code === 'unverifiable_did' ? 403 : 401, auth.error.code, auth.error.message);
    return false;
  }
  const claim = await ctx.replay.claim(auth.value.sig, auth.value.ts, auth.value.ts + MAX_CLOCK_SKEW_MS + REPLAY_MARGIN_MS, now);
  if (claim === 'used') {
    sendError(res, 401, 'unauthorized', 'this signature was already used; sign every request afresh');
    return false;
  }
  if (claim === 'before_floor') {
    sendError(res, 401, 'unauthorized', 'this request was signed before the relay restarted; sign it afresh');
    return false;
  }
  return true;
}

/** `GET /v1/mailbox/{did}/receive?limit&wait`: oldest first; with `wait`, a long-poll woken by a deposit. */
export async function handleReceive(
  ctx: RelayContext,
  req: IncomingMessage,
  res: ServerResponse,
  did: string,
  query: string,
): Promise<void> {
  const q = parseReceiveQuery(query);
  if (!q.ok) {
    req.resume();
    return sendError(res, 400, 'invalid_request', q.message);
  }
  const body = await readLimitedBody(ctx, req, res);
  if (!body) return;
  if (!(await authorizeOwner(ctx, req, res, did, body))) return;
  // Before the read: a deposit committed after this point wakes the owner again (§5.2).
  await ctx.push?.onReceive(did);

  const deadline = Date.now() + q.value.waitSeconds * 1000;
  let result = await ctx.store.receive(did, q.value.limit, Date.now());
  while (result.envelopes.length === 0 && !ctx.isShuttingDown()) {
    const left = deadline - Date.now();
    if (left <= 0) break;
    const still = await waitForDeposit(ctx, res, did, left);
    if (!still) return; // the client went away
    result = await ctx.store.receive(did, q.value.limit, Date.now());
  }
  ctx.metrics.receives.inc();
  // Stored bodies are validated JSON text: splice them rather than parse and re-serialise.
  const text = `{"envelopes":[${result.envelopes.map((e) => e.body).join(',')}],"remaining":${result.remaining}}`;
  sendJsonText(res, 200, text);
}

/** Resolves true at the next deposit for `did`, at shutdown or after `ms`; false if the client disconnected. */
function waitForDeposit(ctx: RelayContext, res: ServerResponse, did: string, ms: number): Promise<boolean> {
  return new Promise((resolve) => {
    const done = (stillThere: boolean): void => {
      clearTimeout(timer);
      unsubscribe();
      res.off('close', onClose);
      resolve(stillThere);
    };
    const onClose = (): void => done(false);
    const timer = setTimeout(() => done(true), ms);
    const unsubscribe = ctx.notifier.subscribe(did, () => done(true));
    res.once('close', onClose);
    if (ctx.isShuttingDown()) done(true);
  });
}

/** `POST /v1/mailbox/{did}/ack` with `{"ids": [...]}` (≤ 1000); unknown IDs are ignored. */
export async function handleAck(ctx: RelayContext, req: IncomingMessage, res: ServerResponse, did: string): Promise<void> {
  const ct = req.headers['content-type'];
  if (ct !== undefined && !isJsonContentType(ct)) {
    req.resume();
    return sendError(res, 415, 'unsupported_media_type', 'acks must be sent as Content-Type: application/json');
  }
  const bytes = await readLimitedBody(ctx, req, res);
  if (!bytes) return;
  const ids = parseAckBody(bytes);
  if (!ids.ok) return sendError(res, 400, 'invalid_request', ids.message);
  if (!(await authorizeOwner(ctx, req, res, did, bytes))) return;
  const removed = await ctx.store.ack(did, ids.value);
  ctx.metrics.acks.inc();
  sendJson(res, 200, { removed });
}

/** `PUT /v1/mailbox/{did}/tokens` with `{"tokens": [b64u(16–32 bytes), …]}` (≤ 100): replaces the set (§5.1). */
export async function handleTokens(ctx: RelayContext, req: IncomingMessage, res: ServerResponse, did: string): Promise<void> {
  const ct = req.headers['content-type'];
  if (ct !== undefined && !isJsonContentType(ct)) {
    req.resume();
    return sendError(res, 415, 'unsupported_media_type', 'token lists must be sent as Content-Type: application/json');
  }
  const bytes = await readLimitedBody(ctx, req, res);
  if (!bytes) return;
  const tokens = parseTokensBody(bytes);
  if (!tokens.ok) return sendError(res, 400, 'invalid_request', tokens.message);
  if (!(await authorizeOwner(ctx, req, res, did, bytes))) return;
  const count = await ctx.store.setDepositTokens(did, tokens.value.map(tokenHash));
  sendJson(res, 200, { count });
}

type Parsed<T> = { ok: true; value: T } | { ok: false; message: string };

function parseJsonBody(bytes: Buffer): Parsed<unknown> {
  let text: string;
  try {
    text = fromUtf8(bytes);
  } catch {
    return { ok: false, message: 'the body is not valid UTF-8' };
  }
  const json = parseJsonStrict(text);
  return json.ok ? { ok: true, value: json.value } : { ok: false, message: json.error.message };
}

function parseTokensBody(bytes: Buffer): Parsed<Uint8Array[]> {
  const json = parseJsonBody(bytes);
  if (!json.ok) return json;
  const list = isObject(json.value) ? json.value.tokens : undefined;
  if (!Array.isArray(list)) return { ok: false, message: 'the body must be {"tokens": [base64url tokens]}' };
  if (list.length > MAX_DEPOSIT_TOKENS) return { ok: false, message: `at most ${MAX_DEPOSIT_TOKENS} deposit tokens per mailbox` };
  const out: Uint8Array[] = [];
  for (const [i, t] of list.entries()) {
    const bytes = typeof t === 'string' ? depositTokenBytes(t) : undefined;
    if (!bytes) return { ok: false, message: `tokens[${i}] must be base64url (no padding) of 16 to 32 random bytes` };
    out.push(bytes);
  }
  return { ok: true, value: out };
}

function parseAckBody(bytes: Buffer): Parsed<string[]> {
  const json = parseJsonBody(bytes);
  if (!json.ok) return json;
  const ids = isObject(json.value) ? json.value.ids : undefined;
  if (!Array.isArray(ids) || !ids.every((id) => typeof id === 'string')) {
    return { ok: false, message: 'the body must be {"ids": [envelope IDs]}' };
  }
  if (ids.length > MAX_ACK_IDS) return { ok: false, message: `at most ${MAX_ACK_IDS} IDs per ack` };
  return { ok: true, value: ids };
}
