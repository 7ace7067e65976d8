/** HTTP plumbing for the relay: CORS, JSON answers in the §5 error shape, bounded body reading. */
import type { IncomingMessage, ServerResponse } from 'node:http';

/** Bytes we are willing to read and discard after a 413 so the client sees the answer; beyond, we hang up. */
const DRAIN_LIMIT = 8 * 1024 * 1024;

/**
 * CORS (PROTOCOL.md §5): every route answers any origin. No cookies are used (auth is a signed
 * header), so `*` is safe; Retry-After is exposed so browser peers can honour 429.
 */
export function setCorsHeaders(res: ServerResponse): void {
  res.setHeader('Access-Control-Allow-Origin', '*');
  res.setHeader('Access-Control-Expose-Headers', 'Retry-After');
}

export function sendPreflight(res: ServerResponse): void {
  res.writeHead(204, {
    'Access-Control-Allow-Methods': 'GET, POST, PUT, DELETE, OPTIONS',
    // X-Syncropel-Deposit-Token: a browser peer depositing with a token (PROTOCOL.md §5.1).
    'Access-Control-Allow-Headers': 'Authorization, Content-Type, X-Syncropel-Deposit-Token',
    'Access-Control-Max-Age': '86400',
    'Content-Length': '0',
  });
  res.end();
}

/** Sends pre-serialised JSON text (callers splice stored envelope bodies without re-serialising). */
export function sendJsonText(res: ServerResponse, status: number, text: string, headers: Record<string, string> = {}): void {
  if (res.headersSent || res.destroyed) return;
  res.writeHead(status, {
    'Content-Type': 'application/json; charset=utf-8',
    'Content-Length': String(Buffer.byteLength(text)),
    'Cache-Control': 'no-store',
    ...headers,
  });
  res.end(text);
}

export const sendJson = (res: ServerResponse, status: number, value: unknown, headers?: Record<string, string>): void =>
  sendJsonText(res, status, JSON.stringify(value), headers);

/** Every error is `{"error": {"code", "message"}}` (PROTOCOL.md §5). */
export const sendError = (res: ServerResponse, status: number, code: string, message: string, headers?: Record<string, string>): void =>
  sendJson(res, status, { error: { code, message } }, headers);

/** True for `application/json`, with or without parameters such as `; charset=utf-8`. */
export function isJsonContentType(header: string | undefined): boolean {
  if (header === undefined) return false;
  const mediaType = header.split(';', 1)[0]!.trim().toLowerCase();
  return mediaType === 'application/json';
}

/** The declared Content-Length, or undefined when absent (chunked) or malformed (Node rejects those first). */
export function declaredLength(req: IncomingMessage): number | undefined {
  const h = req.headers['content-length'];
  if (h === undefined) return undefined;
  const n = Number(h);
  return Number.isSafeInteger(n) && n >= 0 ? n : undefined;
}

export type BodyResult = { readonly kind: 'ok'; readonly body: Buffer } | { readonly kind: 'too_large' } | { readonly kind: 'aborted' };

/**
 * Reads the request body, keeping at most `maxBytes`. Once over the limit it stops buffering and
 * resolves `too_large`; the rest is read and discarded (up to DRAIN_LIMIT, then the socket is
 * dropped) so the client can still read the 413.
 */
export function readBody(req: IncomingMessage, maxBytes: number): Promise<BodyResult> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let settled = false;
    const settle = (r: BodyResult): void => {
      if (settled) return;
      settled = true;
      resolve(r);
    };
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > maxBytes) {
        chunks.length = 0;
        settle({ kind: 'too_large' });
        if (size > maxBytes + DRAIN_LIMIT) req.socket.destroy();
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => settle({ kind: 'ok', body: chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size) }));
    req.on('error', () => settle({ kind: 'aborted' }));
    req.on('close', () => settle({ kind: 'aborted' }));
  });
}

/** Answers 413 before reading a body whose Content-Length is already over the limit. */
export function refuseDeclaredBody(req: IncomingMessage, res: ServerResponse, declared: number, send: () => void): void {
  res.setHeader('Connection', 'close');
  send();
  if (declared > DRAIN_LIMIT) res.once('finish', () => req.socket.destroy());
  else req.resume();
}

/** The client address for rate limiting: the socket peer, or with a trusted proxy the address it saw. */
export function clientAddress(req: IncomingMessage, trustProxy: boolean): string {
  if (trustProxy) {
    const xff = req.headers['x-forwarded-for'];
    const value = Array.isArray(xff) ? xff.join(',') : xff;
    if (value) {
      // Rightmost entry: appended by our own proxy; entries left of it are client-controlled.
      const last = value.split(',').pop()!.trim();
      if (last) return last;
    }
  }
  return req.socket.remoteAddress ?? 'unknown';
}
