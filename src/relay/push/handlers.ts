/**
 * HTTP edge of push wake (PROTOCOL.md §5.2): `GET /v1/push/vapid`, and owner-only (§6)
 * `PUT`/`DELETE /v1/mailbox/{did}/push`. The subscription JSON is parsed and checked here once.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { fromB64u, fromUtf8, isObject } from '../../core';
import { isJsonContentType, sendError, sendJson } from '../http';
import { authorizeOwner, readLimitedBody, type RelayContext } from '../mailbox-handlers';
import { parseJsonStrict } from '../strict-json';
import { checkEndpoint, parseEndpointUrl, type Resolver } from './address';
import type { PushService } from './service';
import type { PushSubscriptionData } from './subscriptions';

type Parsed<T> = { ok: true; value: T } | { ok: false; message: string };

function parseBody(bytes: Buffer): Parsed<Record<string, unknown>> {
  let text: string;
  try {
    text = fromUtf8(bytes);
  } catch {
    return { ok: false, message: 'the body is not valid UTF-8' };
  }
  const json = parseJsonStrict(text);
  if (!json.ok) return { ok: false, message: json.error.message };
  if (!isObject(json.value)) return { ok: false, message: 'the body must be a JSON object' };
  return { ok: true, value: json.value };
}

/** `{"endpoint", "keys": {"p256dh": b64u(65-byte P-256 point), "auth": b64u(16 bytes)}}`; other fields (expirationTime) ignored. */
export function parseSubscription(value: Record<string, unknown>): Parsed<PushSubscriptionData> {
  const { endpoint, keys } = value;
  if (typeof endpoint !== 'string')
    return { ok: false, message: 'the body must be a PushSubscription: {"endpoint", "keys": {"p256dh", "auth"}}' };
  if (!isObject(keys)) return { ok: false, message: 'the subscription needs "keys": {"p256dh", "auth"}' };
  const p256dh = typeof keys.p256dh === 'string' ? keys.p256dh : undefined;
  const auth = typeof keys.auth === 'string' ? keys.auth : undefined;
  const point = p256dh !== undefined && p256dh.length <= 100 ? fromB64u(p256dh) : undefined;
  if (!point || point.length !== 65 || point[0] !== 4)
    return { ok: false, message: 'keys.p256dh must be base64url of a 65-byte uncompressed P-256 point' };
  const secret = auth !== undefined && auth.length <= 32 ? fromB64u(auth) : undefined;
  if (!secret || secret.length !== 16) return { ok: false, message: 'keys.auth must be base64url of 16 bytes' };
  return { ok: true, value: { endpoint, p256dh: p256dh!, auth: auth! } };
}

/** A subscription is a few hundred bytes; anything near a deposit's size is not one. */
const MAX_SUBSCRIPTION_BODY = 8192;

export function handlePushVapid(push: PushService | undefined, req: IncomingMessage, res: ServerResponse): void {
  req.resume();
  if (!push) return sendError(res, 404, 'not_found', 'push is off on this relay');
  sendJson(res, 200, { public_key: push.publicKey });
}

async function readSmallJson(
  ctx: RelayContext,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<{ bytes: Buffer; value: Record<string, unknown> } | undefined> {
  const ct = req.headers['content-type'];
  if (ct !== undefined && !isJsonContentType(ct)) {
    req.resume();
    sendError(res, 415, 'unsupported_media_type', 'push subscriptions must be sent as Content-Type: application/json');
    return undefined;
  }
  const bytes = await readLimitedBody(ctx, req, res);
  if (!bytes) return undefined;
  if (bytes.length > MAX_SUBSCRIPTION_BODY) {
    sendError(res, 413, 'payload_too_large', `a push subscription is at most ${MAX_SUBSCRIPTION_BODY} bytes`);
    return undefined;
  }
  const body = parseBody(bytes);
  if (!body.ok) {
    sendError(res, 400, 'invalid_request', body.message);
    return undefined;
  }
  return { bytes, value: body.value };
}

/** `PUT /v1/mailbox/{did}/push`: registers the subscription (at most 5; a sixth replaces the oldest). */
export async function handlePushPut(
  ctx: RelayContext,
  push: PushService | undefined,
  allowEndpoint: string | undefined,
  resolve: Resolver,
  req: IncomingMessage,
  res: ServerResponse,
  did: string,
): Promise<void> {
  if (!push) {
    req.resume();
    return sendError(res, 404, 'not_found', 'push is off on this relay');
  }
  const body = await readSmallJson(ctx, req, res);
  if (!body) return;
  const sub = parseSubscription(body.value);
  if (!sub.ok) return sendError(res, 400, 'invalid_request', sub.message);
  // The cheap shape check before the signature, the DNS check only for the owner.
  const shape = parseEndpointUrl(sub.value.endpoint, allowEndpoint);
  if (!shape.ok) return sendError(res, 400, 'invalid_request', shape.message);
  if (!(await authorizeOwner(ctx, req, res, did, body.bytes))) return;
  const check = await checkEndpoint(sub.value.endpoint, allowEndpoint, resolve);
  if (!check.ok) return sendError(res, 400, 'invalid_request', check.message);
  const replaced = await push.register(did, sub.value, Date.now());
  sendJson(res, 200, { registered: true, replaced });
}

/** `DELETE /v1/mailbox/{did}/push` with `{"endpoint"}`: idempotent. */
export async function handlePushDelete(
  ctx: RelayContext,
  push: PushService | undefined,
  req: IncomingMessage,
  res: ServerResponse,
  did: string,
): Promise<void> {
  if (!push) {
    req.resume();
    return sendError(res, 404, 'not_found', 'push is off on this relay');
  }
  const body = await readSmallJson(ctx, req, res);
  if (!body) return;
  const endpoint = body.value.endpoint;
  if (typeof endpoint !== 'string' || endpoint.length === 0 || endpoint.length > 2048) {
    return sendError(res, 400, 'invalid_request', 'the body must be {"endpoint": <the subscription\'s endpoint>}');
  }
  if (!(await authorizeOwner(ctx, req, res, did, body.bytes))) return;
  const removed = await push.unregister(did, endpoint);
  sendJson(res, 200, { removed });
}
