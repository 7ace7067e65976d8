/**
 * The relay (PROTOCOL.md §5–§6) on node:http. `startRelay` is the embeddable entry point; the CLI
 * (`spl-relay`) wraps it.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';
import pino, { type Logger } from 'pino';
import { publicKeyFromDid, setKeyCacheSize } from '../core';
import { guardConnections } from './connections';
import { clientAddress, sendError, sendJson, sendPreflight, setCorsHeaders } from './http';
import { handleAck, handleDeposit, handleReceive, handleTokens, rateLimited, type RelayContext } from './mailbox-handlers';
import { defaultSecretPath, loadMetricsSecret } from './metrics-secret';
import { didLabeler, RelayMetrics } from './metrics';
import { listen, startMetricsListener } from './metrics-listener';
import { MailboxNotifier } from './notifier';
import { hostHeaderCount, hostPort, isUnspecifiedAddress, resolveOrigins } from './origins';
import { parseListenAddress, RelayOptionError, relayOptions, type RelayOptions } from './options';
import { RateLimiter } from './rate-limit';
import { ReplayGuard } from './replay-guard';
import { RequestLogSampler } from './request-log';
import { answerFailedRequest } from './request-errors';
import { startSweeps } from './sweep';
import { matchRoute, type Route } from './routes';
import { PgMailboxStore } from './storage/pg-store';
import { createPushService, handlePushDelete, handlePushPut, handlePushVapid, systemResolver, type Resolver } from './push';
import type { StaticApp } from './static-app';
import { openStore } from './storage/store-open';
import type { MailboxStore } from './storage/store';

export interface StartRelayOptions extends Partial<RelayOptions> {
  /** A store to use instead of opening `db` (e.g. MemoryMailboxStore); closed by `close()`. */
  readonly store?: MailboxStore;
  /** Where request logs go; by default pino JSON on stdout at `logLevel`. */
  readonly logger?: Logger;
  /** The built app, served on paths no relay route takes (`spl-relay --app`, static-app.ts). */
  readonly app?: StaticApp;
  /** DNS for push endpoint checks (PROTOCOL.md §5.2); tests inject answers. */
  readonly pushResolver?: Resolver;
}

export interface RelayHandle {
  /** `http://host:port`, with the bound port. */
  readonly url: string;
  readonly port: number;
  /** `http://host:port` of the private metrics listener, when `metricsListen` is set. */
  readonly metricsUrl: string | undefined;
  readonly options: RelayOptions;
  /**
   * Resolves if the store refuses its database after start (the SQLite store's background
   * `PRAGMA quick_check` failed): every request that needs the store then answers 503, and
   * `spl-relay` closes and exits 3. Never resolves otherwise.
   */
  readonly refused: Promise<Error>;
  /**
   * Graceful shutdown: stop accepting, answer pending long-polls now (empty), let in-flight
   * requests finish, then close the store. Idempotent.
   */
  close(): Promise<void>;
}

/** Connections still open this long after shutdown began are cut. */
const SHUTDOWN_GRACE_MS = 10_000;

export function createRelayLogger(level: RelayOptions['logLevel']): Logger {
  return pino({ level, base: null }, pino.destination({ dest: 1, sync: false }));
}

/**
 * Keys the relay remembers as checked (core keeps 1,024 DIDs and 4,096 key states for a peer).
 * Measured: a key decoded, checked and used to verify costs ~1.8 ms cold and ~0.2 ms remembered,
 * and ~1.2 KB while remembered (the point and the platform key), so at most ~20 MB here.
 */
const RELAY_KEY_CACHE = 16_384;

/** A relay that listens on every address must be told its origins before anything is opened. */
export async function startRelay(input: StartRelayOptions = {}): Promise<RelayHandle> {
  const { store: givenStore, logger: givenLogger, app, pushResolver, ...rest } = input;
  const options = relayOptions(rest);
  // Fails early when the origins must be named (an unspecified address) and are not.
  if (options.origins.length === 0 && isUnspecifiedAddress(options.host)) resolveOrigins([], options.host, options.port);
  const metricsAddress = options.metricsListen === undefined ? undefined : parseListenAddress(options.metricsListen, '--metrics-listen');
  const logger = givenLogger ?? createRelayLogger(options.logLevel);
  const store = givenStore ?? (await openStore(options, logger));
  // Mailbox routes (§5: valid did:key only) and owner signatures (§6) both decode and check a
  // DID's key: remember as many as a relay has active receivers.
  setKeyCacheSize(RELAY_KEY_CACHE);
  const notifier = new MailboxNotifier();
  let secret: Buffer;
  try {
    // Relays sharing a PostgreSQL database share the label key too, kept in the database.
    secret =
      options.metricsSecretFile === undefined && store instanceof PgMailboxStore
        ? await store.metricsSecret()
        : loadMetricsSecret(options.metricsSecretFile ?? defaultSecretPath(options.db));
    // Deposits on other relay processes wake long-polls here too; after a listener reconnection
    // every waiting long-poll looks at the store again (a notification may have been missed).
    if (store instanceof PgMailboxStore)
      await store.listen(
        (did) => notifier.notify(did),
        () => notifier.wakeAll(),
      );
  } catch (e) {
    await store.close().catch(() => undefined);
    throw e;
  }
  const refused = new Promise<Error>((resolve) =>
    store.onRefused?.((e) => {
      logger.fatal({ err: { message: e.message } }, 'the database failed its integrity check: the relay answers 503 and takes no deposits');
      resolve(e);
    }),
  );
  const label = didLabeler(options.metricsDidLabels, secret);
  const clientLimiter = options.rateLimitPerClient ? new RateLimiter(options.rateLimitPerClient) : undefined;
  const senderLimiter = options.rateLimitPerSender ? new RateLimiter(options.rateLimitPerSender) : undefined;
  let shuttingDown = false;
  /** Responses not yet finished: told to close their connection once shutdown starts. */
  const inFlight = new Set<ServerResponse>();
  /** Set once the port is bound (the default origins name it). */
  let origins: ReadonlySet<string> = new Set();
  let openConnections = (): number => 0;
  const metrics = new RelayMetrics(
    store,
    label,
    options.metricsTopQueues,
    {
      waitingLongPolls: () => notifier.size,
      openConnections: () => openConnections(),
      integrityCheckRunning: () => store.integrityCheckRunning?.() ?? false,
    },
    options.metricsDidLabels !== 'off',
  );
  const logSampler = new RequestLogSampler();
  const replay = new ReplayGuard(store, (err: unknown) => logger.error({ err }, 'recording a used signature failed'));
  const resolver = pushResolver ?? systemResolver;
  let push: Awaited<ReturnType<typeof createPushService>>;
  try {
    push = await createPushService({
      options: options.push,
      db: options.db,
      firstOrigin: () => [...origins][0] ?? 'localhost',
      countQueued: async (did) => {
        const r = await store.receive(did, 1, Date.now());
        return r.envelopes.length + r.remaining;
      },
      registry: metrics.registry,
      logger,
      resolve: resolver,
    });
  } catch (e) {
    await store.close().catch(() => undefined);
    throw e;
  }
  const ctx: RelayContext = {
    options,
    store,
    metrics,
    notifier,
    senderLimiter,
    replay,
    push,
    isShuttingDown: () => shuttingDown,
    isOrigin: (host) => origins.has(host.toLowerCase()),
  };

  async function renderMetrics(res: ServerResponse): Promise<void> {
    const text = await metrics.render(Date.now());
    res.writeHead(200, { 'Content-Type': metrics.contentType, 'Cache-Control': 'no-store' });
    res.end(text);
  }

  async function dispatch(req: IncomingMessage, res: ServerResponse, route: Route): Promise<void> {
    switch (route.kind) {
      case 'health': {
        // §5 "Storage pressure": the writer's state; 503 when it cannot commit.
        const health = await store.health();
        if (health.ok) return sendJson(res, 200, { status: 'ok' });
        return sendJson(res, 503, { status: 'unavailable', error: { code: 'store_unavailable', message: health.message } });
      }
      case 'metrics':
        if (metricsAddress) return sendError(res, 404, 'not_found', "metrics are served on the relay's private metrics listener");
        return renderMetrics(res);
      case 'deposit':
        return handleDeposit(ctx, req, res, route.did);
      case 'receive':
        return handleReceive(ctx, req, res, route.did, route.query);
      case 'ack':
        return handleAck(ctx, req, res, route.did);
      case 'tokens':
        return handleTokens(ctx, req, res, route.did);
      case 'push_vapid':
        return handlePushVapid(push, req, res);
      case 'push':
        return req.method === 'DELETE'
          ? handlePushDelete(ctx, push, req, res, route.did)
          : handlePushPut(ctx, push, options.push.allowEndpoint, resolver, req, res, route.did);
    }
  }

  async function onRequest(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const started = performance.now();
    const method = req.method ?? 'GET';
    const match = matchRoute(req.url ?? '/');
    const isApp = !match.ok && match.code === 'not_found' && app !== undefined && req.method !== 'OPTIONS';
    const logRoute = match.ok ? match.template : isApp ? 'app' : 'unmatched';
    const logDid = match.ok && 'did' in match.route ? didForLog(match.route.did) : undefined;
    inFlight.add(res);
    res.once('close', () => {
      inFlight.delete(res);
      // One line per request (sampled under load, request-log.ts); never headers or bodies
      // (Authorization is a credential).
      const ended = performance.now();
      const sample = logSampler.admit(res.statusCode, ended);
      if (sample === 0) return;
      logger.info({
        method,
        route: logRoute,
        did: logDid,
        status: res.statusCode,
        ms: Math.round((ended - started) * 100) / 100,
        aborted: !res.writableFinished || undefined,
        sample: sample > 1 ? sample : undefined,
      });
    });
    setCorsHeaders(res);
    if (shuttingDown) res.setHeader('Connection', 'close');

    if (isApp && app.handle(req, res)) return;
    if (method === 'OPTIONS') {
      req.resume();
      return sendPreflight(res);
    }
    if (!match.ok) {
      req.resume();
      return sendError(res, match.code === 'not_found' ? 404 : 400, match.code, match.message);
    }
    if (method !== match.method && method !== match.alsoMethod) {
      const allowed = match.alsoMethod ? `${match.method}, ${match.alsoMethod}` : match.method;
      req.resume();
      return sendError(res, 405, 'method_not_allowed', `${match.template} accepts ${allowed} (and OPTIONS)`, {
        Allow: `${allowed}, OPTIONS`,
      });
    }
    if (hostHeaderCount(req) > 1) {
      req.resume();
      return sendError(res, 400, 'invalid_request', 'the request carries more than one Host header');
    }
    // §5: mailboxes exist only for valid did:key DIDs (the key must decode to a curve point).
    if ('did' in match.route && !options.openMailboxes) {
      const key = publicKeyFromDid(match.route.did);
      if (!key.ok) {
        req.resume();
        return sendError(res, 403, 'unverifiable_did', `no mailbox for ${match.route.did.slice(0, 80)}: ${key.error.message}`);
      }
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

  /** A DID as request logs show it: shortened, key-hashed, or not at all (`--metrics-did-labels`). */
  function didForLog(did: string): string | undefined {
    if (options.metricsDidLabels !== 'plain') return label(did);
    return did.length > 28 ? `${did.slice(0, 16)}…${did.slice(-6)}` : did;
  }

  const headersMs = options.headersTimeout * 1000;
  const server = createServer(
    {
      headersTimeout: headersMs,
      // Node's requestTimeout covers headers and body together.
      requestTimeout: headersMs + options.bodyTimeout * 1000,
      keepAliveTimeout: options.idleTimeout * 1000,
      // Node checks these timeouts on this period (default 30 s): a 2 s limit would otherwise hold for 30.
      connectionsCheckingInterval: Math.max(250, Math.min(1000, headersMs / 4)),
    },
    (req, res) => {
      onRequest(req, res).catch((err: unknown) => answerFailedRequest(err, req, res, logger));
    },
  );
  // A connection that stalls mid-response (a client that stops reading) is cut too; the longest
  // legitimate silence is a long-poll (30 s).
  server.setTimeout(Math.max(options.idleTimeout, 30 + 15) * 1000);
  const guard = guardConnections(
    server,
    { maxConnections: options.maxConnections, maxConnectionsPerClient: options.trustProxy ? 0 : options.maxConnectionsPerClient },
    () => metrics.limitHits.inc({ kind: 'connections' }),
  );
  openConnections = guard.open;

  try {
    const unmarked = await replay.start(Date.now());
    if (unmarked)
      logger.warn(
        { err: unmarked },
        'could not mark this run in the database: every signature is recorded durably before its request proceeds',
      );
    await listen(server, options.port, options.host);
  } catch (e) {
    await push?.close().catch(() => undefined);
    await store.close().catch(() => undefined);
    throw e;
  }
  const address = server.address() as AddressInfo;
  origins = resolveOrigins(options.origins, options.host, address.port);

  let metricsServer: Server | undefined;
  let metricsUrl: string | undefined;
  if (metricsAddress) {
    try {
      ({ server: metricsServer, url: metricsUrl } = await startMetricsListener(metricsAddress, renderMetrics, logger));
    } catch (e) {
      server.close();
      await push?.close().catch(() => undefined);
      await store.close().catch(() => undefined);
      throw new RelayOptionError(`--metrics-listen ${options.metricsListen}: ${e instanceof Error ? e.message : String(e)}`);
    }
  }

  // The writer's state at start: a database that cannot commit is reported now, not at the first deposit.
  void store.health().then((h) => {
    if (!h.ok) logger.error({ writer: h.message }, 'the store cannot commit: deposits, receives and acks will fail; /health answers 503');
  });

  const sweepTimer = startSweeps({
    intervalSeconds: options.sweepInterval,
    refusedConnections: guard.refused,
    limiters: [clientLimiter, senderLimiter, replay],
    store,
    expired: (n) => metrics.expired.inc(n),
    logger,
  });

  const url = `http://${hostPort(address.address, address.port)}`;

  let closing: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closing ??= (async () => {
      shuttingDown = true;
      clearInterval(sweepTimer);
      for (const res of inFlight) if (!res.headersSent) res.setHeader('Connection', 'close');
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      metricsServer?.close();
      metricsServer?.closeAllConnections();
      notifier.wakeAll();
      server.closeIdleConnections();
      const force = setTimeout(() => server.closeAllConnections(), SHUTDOWN_GRACE_MS);
      force.unref();
      await closed;
      clearTimeout(force);
      await push?.close();
      await store.close();
      if (!givenLogger) logger.flush();
    })();
    return closing;
  };

  return { url, port: address.port, metricsUrl, options, refused, close };
}
