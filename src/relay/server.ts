/**
 * The relay (PROTOCOL.md §5–§6) on node:http. `startRelay` is the embeddable entry point; the CLI
 * (`spl-relay`) wraps it.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';
import pino, { type Logger } from 'pino';
import { clientAddress, sendError, sendJson, sendPreflight, setCorsHeaders } from './http';
import { handleAck, handleDeposit, handleReceive, rateLimited, type RelayContext } from './mailbox-handlers';
import { hashDid, RelayMetrics } from './metrics';
import { MailboxNotifier } from './notifier';
import { DEFAULT_OPTIONS, validateOptions, type DidLabelMode, type RelayOptions } from './options';
import { RateLimiter } from './rate-limit';
import { matchRoute, type Route } from './routes';
import { PgMailboxStore } from './pg-store';
import { openStore } from './store-open';
import { isStoreUnavailable } from './store-errors';
import type { MailboxStore } from './store';

export interface StartRelayOptions extends Partial<RelayOptions> {
  /** A store to use instead of opening `db` (e.g. MemoryMailboxStore); closed by `close()`. */
  readonly store?: MailboxStore;
  /** Where request logs go; by default pino JSON on stdout at `logLevel`. */
  readonly logger?: Logger;
}

export interface RelayHandle {
  /** `http://host:port`, with the bound port. */
  readonly url: string;
  readonly port: number;
  readonly options: RelayOptions;
  /**
   * Graceful shutdown: stop accepting, answer pending long-polls now (empty), let in-flight
   * requests finish, then close the store. Idempotent.
   */
  close(): Promise<void>;
}

/** Connections still open this long after shutdown began are cut. */
const SHUTDOWN_GRACE_MS = 10_000;

export function createRelayLogger(level: RelayOptions['logLevel']): Logger {
  return pino({ level, base: undefined }, pino.destination({ dest: 1, sync: false }));
}

/** A DID as request logs show it: shortened, hashed, or not at all (`--metrics-did-labels`). */
function didForLog(did: string, mode: DidLabelMode): string | undefined {
  if (mode === 'off') return undefined;
  if (mode === 'hash') return hashDid(did);
  return did.length > 28 ? `${did.slice(0, 16)}…${did.slice(-6)}` : did;
}

export async function startRelay(input: StartRelayOptions = {}): Promise<RelayHandle> {
  const { store: givenStore, logger: givenLogger, ...rest } = input;
  const options = validateOptions({ ...DEFAULT_OPTIONS, ...dropUndefined(rest) });
  const logger = givenLogger ?? createRelayLogger(options.logLevel);
  const store = givenStore ?? (await openStore(options.db, options.dbPoolSize, logger));
  const notifier = new MailboxNotifier();
  // Deposits on other relay processes wake long-polls here too; after a listener reconnection
  // every waiting long-poll looks at the store again (a notification may have been missed).
  if (store instanceof PgMailboxStore) {
    try {
      await store.listen((did) => notifier.notify(did), () => notifier.wakeAll());
    } catch (e) {
      await store.close().catch(() => undefined);
      throw e;
    }
  }
  const metrics = new RelayMetrics(store, options.metricsDidLabels, () => notifier.size);
  const clientLimiter = options.rateLimitPerClient ? new RateLimiter(options.rateLimitPerClient) : undefined;
  const senderLimiter = options.rateLimitPerSender ? new RateLimiter(options.rateLimitPerSender) : undefined;
  let shuttingDown = false;
  /** Responses not yet finished: told to close their connection once shutdown starts. */
  const inFlight = new Set<ServerResponse>();
  const ctx: RelayContext = { options, store, metrics, notifier, senderLimiter, isShuttingDown: () => shuttingDown };

  async function dispatch(req: IncomingMessage, res: ServerResponse, route: Route): Promise<void> {
    switch (route.kind) {
      case 'health':
        return sendJson(res, 200, { status: 'ok' });
      case 'metrics': {
        const text = await metrics.render(Date.now());
        res.writeHead(200, { 'Content-Type': metrics.contentType, 'Cache-Control': 'no-store' });
        res.end(text);
        return;
      }
      case 'deposit':
        return handleDeposit(ctx, req, res, route.did);
      case 'receive':
        return handleReceive(ctx, req, res, route.did, route.query);
      case 'ack':
        return handleAck(ctx, req, res, route.did);
    }
  }

  async function onRequest(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const started = performance.now();
    const method = req.method ?? 'GET';
    const match = matchRoute(req.url ?? '/');
    const logRoute = match.ok ? match.template : 'unmatched';
    const logDid = match.ok && 'did' in match.route ? didForLog(match.route.did, options.metricsDidLabels) : undefined;
    inFlight.add(res);
    res.once('close', () => {
      inFlight.delete(res);
      // One line per request; never headers or bodies (Authorization is a credential).
      logger.info({ method, route: logRoute, did: logDid, status: res.statusCode, ms: Math.round((performance.now() - started) * 100) / 100, aborted: !res.writableFinished || undefined });
    });
    setCorsHeaders(res);
    if (shuttingDown) res.setHeader('Connection', 'close');

    if (method === 'OPTIONS') {
      req.resume();
      return sendPreflight(res);
    }
    if (!match.ok) {
      req.resume();
      return sendError(res, match.code === 'not_found' ? 404 : 400, match.code, match.message);
    }
    if (method !== match.method) {
      req.resume();
      return sendError(res, 405, 'method_not_allowed', `${match.template} accepts ${match.method} (and OPTIONS)`, {
        Allow: `${match.method}, OPTIONS`,
      });
    }
    if (clientLimiter && match.route.kind !== 'health' && match.route.kind !== 'metrics') {
      const taken = clientLimiter.take(clientAddress(req, options.trustProxy), Date.now());
      if (!taken.ok) {
        req.resume();
        return rateLimited(ctx, res, taken.retryAfterSeconds, 'this client address');
      }
    }
    await dispatch(req, res, match.route);
  }

  const server = createServer({ requestTimeout: 60_000, headersTimeout: 30_000, keepAliveTimeout: 10_000 }, (req, res) => {
    onRequest(req, res).catch((err: unknown) => {
      if (isStoreUnavailable(err)) {
        // The database is down or restarting: nothing was committed, the client retries later.
        logger.warn({ err: { message: err.message }, method: req.method }, 'store unavailable');
        if (!res.headersSent) sendError(res, 503, 'unavailable', 'the relay cannot reach its database; retry later', { 'Retry-After': '1' });
        else res.destroy();
        return;
      }
      logger.error({ err, method: req.method }, 'request failed');
      if (!res.headersSent) sendError(res, 500, 'internal_error', 'the relay failed to handle this request');
      else res.destroy();
    });
  });
  server.on('clientError', (_err, socket) => {
    // Malformed HTTP: answer 400 in the JSON error shape when the socket is still usable.
    if (socket.writable) {
      const body = JSON.stringify({ error: { code: 'invalid_request', message: 'malformed HTTP request' } });
      socket.end(`HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
    } else {
      socket.destroy();
    }
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => {
      server.off('error', reject);
      resolve();
    });
  });

  const sweepTimer = setInterval(() => {
    const now = Date.now();
    clientLimiter?.prune(now);
    senderLimiter?.prune(now);
    store.sweepExpired(now).then(
      (n) => metrics.expired.inc(n),
      (err: unknown) => logger.error({ err }, 'expiry sweep failed'),
    );
  }, options.sweepInterval * 1000);
  sweepTimer.unref();

  const address = server.address() as AddressInfo;
  const hostForUrl = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  const url = `http://${hostForUrl}:${address.port}`;

  let closing: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closing ??= (async () => {
      shuttingDown = true;
      clearInterval(sweepTimer);
      for (const res of inFlight) if (!res.headersSent) res.setHeader('Connection', 'close');
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      notifier.wakeAll();
      server.closeIdleConnections();
      const force = setTimeout(() => server.closeAllConnections(), SHUTDOWN_GRACE_MS);
      force.unref();
      await closed;
      clearTimeout(force);
      await store.close();
      if (!givenLogger) logger.flush();
    })();
    return closing;
  };

  return { url, port: address.port, options, close };
}

function dropUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
