/**
 * The headless peer's HTTP face (PROTOCOL.md §7): `POST /v1/sync/records` and `GET /health`.
 * The body is parsed once here (size, media type, JSON); everything after that is the engine's
 * `handleDirectDelivery`, the same admission and ingest path as the relay. CORS answers any
 * origin so a browser peer served from elsewhere can deliver directly.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { DirectResponse } from '../sync/types';

export const MAX_BODY_BYTES = 1_048_576; // 1 MiB, as the relay

export interface DirectServerOptions {
  readonly host: string;
  readonly port: number;
  readonly handle: (body: unknown) => Promise<DirectResponse>;
  /**
   * Extra `Host` values this endpoint answers to (the hosts of its public URLs, §7); its listen
   * address is always one. Anything else is `403 unknown_host`: no DNS rebinding.
   */
  readonly names?: readonly string[];
  /** Told about each answered delivery (the daemon flushes its outbox on a hit). */
  readonly onDelivery?: (res: DirectResponse) => void;
  readonly log?: (msg: string) => void;
}

export interface DirectServer {
  readonly url: string;
  close(): Promise<void>;
}

const CORS_HEADERS = {
  'access-control-allow-origin': '*',
  'access-control-allow-methods': 'GET, POST, OPTIONS',
  'access-control-allow-headers': 'Content-Type, x-syncropel-federation',
  // A browser sender must read the receipt to count a delivery (§7).
  'access-control-expose-headers': 'Syncropel-Receipt',
  'access-control-max-age': '600',
} as const;

function send(
  res: ServerResponse,
  status: number,
  body: unknown,
  extra: Readonly<Record<string, string>> = {},
  text = JSON.stringify(body),
): void {
  res.writeHead(status, {
    ...CORS_HEADERS,
    'content-type': 'application/json',
    'content-length': String(Buffer.byteLength(text)),
    ...extra,
  });
  res.end(text);
}

const fail = (res: ServerResponse, status: number, code: string, message: string, extra: Record<string, string> = {}): void =>
  send(res, status, { error: { code, message } }, extra);

type BodyResult = { ok: true; text: string } | { ok: false; tooLarge: true };

/** Reads the body, stopping at the limit (the rest is not buffered). */
function readBody(req: IncomingMessage, limit: number): Promise<BodyResult> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers['content-length']);
    if (Number.isFinite(declared) && declared > limit) {
      resolve({ ok: false, tooLarge: true });
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    let done = false;
    req.on('data', (c: Buffer) => {
      if (done) return;
      size += c.length;
      if (size > limit) {
        done = true;
        resolve({ ok: false, tooLarge: true });
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => {
      if (!done) resolve({ ok: true, text: Buffer.concat(chunks).toString('utf8') });
    });
    req.on('error', reject);
  });
}

const isJsonMediaType = (ct: string | undefined): boolean => (ct ?? '').split(';')[0]!.trim().toLowerCase() === 'application/json';

async function route(req: IncomingMessage, res: ServerResponse, opts: DirectServerOptions, names: ReadonlySet<string>): Promise<void> {
  const path = new URL(req.url ?? '/', 'http://peer').pathname;
  const host = req.headers.host?.toLowerCase();
  if (!host || !names.has(host)) {
    req.resume();
    return fail(res, 403, 'unknown_host', `this peer does not answer to Host "${(host ?? '').slice(0, 100)}"`);
  }
  if (req.method === 'OPTIONS') {
    // Preflight; also allow Chromium's Private Network Access check.
    const pna = req.headers['access-control-request-private-network'] === 'true' ? { 'access-control-allow-private-network': 'true' } : {};
    res.writeHead(204, { ...CORS_HEADERS, ...pna });
    res.end();
    return;
  }
  if (path === '/health') {
    if (req.method !== 'GET' && req.method !== 'HEAD') return fail(res, 405, 'method_not_allowed', 'use GET /health', { allow: 'GET' });
    return send(res, 200, { status: 'ok' });
  }
  if (path !== '/v1/sync/records') return fail(res, 404, 'not_found', `no route ${req.method ?? ''} ${path}`);
  if (req.method !== 'POST') return fail(res, 405, 'method_not_allowed', 'use POST /v1/sync/records', { allow: 'POST' });
  if (!isJsonMediaType(req.headers['content-type'])) {
    req.resume();
    return fail(res, 415, 'unsupported_media_type', 'the body must be application/json');
  }
  const body = await readBody(req, MAX_BODY_BYTES);
  if (!body.ok) {
    // Close the connection: the client may still be sending the oversized body.
    res.setHeader('connection', 'close');
    return fail(res, 413, 'payload_too_large', `the body exceeds ${MAX_BODY_BYTES} bytes`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(body.text);
  } catch {
    return fail(res, 400, 'invalid_json', 'the body is not valid JSON');
  }
  const answer = await opts.handle(parsed);
  send(res, answer.status, answer.body, answer.headers, answer.text); // the receipt signs exactly these bytes
  opts.onDelivery?.(answer);
}

/** The `Host` values a listener answers to: its address (and localhost names on loopback), with the port. */
export function listenNames(host: string, port: number): string[] {
  const h = host.includes(':') ? `[${host}]` : host;
  const loopback = host === '127.0.0.1' || host === '::1' || host === 'localhost';
  return [`${h}:${port}`, ...(loopback ? [`localhost:${port}`, `127.0.0.1:${port}`, `[::1]:${port}`] : [])].map((n) => n.toLowerCase());
}

/** `host[:port]` of a URL as a client writes it in `Host` (default ports omitted, as fetch does). */
export const urlHostName = (url: string): string => new URL(url).host.toLowerCase();

export async function startDirectServer(opts: DirectServerOptions): Promise<DirectServer> {
  const names = new Set<string>((opts.names ?? []).map((n) => n.toLowerCase()));
  const server: Server = createServer((req, res) => {
    route(req, res, opts, names).catch((e: unknown) => {
      opts.log?.(`direct delivery failed: ${e instanceof Error ? e.message : String(e)}`);
      if (!res.headersSent) fail(res, 500, 'internal_error', 'the peer could not process the request');
      else res.end();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  for (const n of listenNames(opts.host, port)) names.add(n);
  const host = opts.host.includes(':') ? `[${opts.host}]` : opts.host;
  return {
    url: `http://${host}:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
