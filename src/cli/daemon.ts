/**
 * `spl serve`: the direct endpoint, one receive loop per relay, and the outbox flusher. Config is
 * re-read every second from the store, so relays set by another `spl` process (same SQLite file)
 * start or stop their receive loops without a restart.
 */
import { openNodePeer, type NodePeer } from '../platform/node';
import { CliError } from './errors';
import { ensureHome, type HomePaths } from './home';
import { startDirectServer, urlHostName, type DirectServer } from './direct-server';
import { ReceiveLoop } from './receive-loop';
import { clearServeState, runningServer, writeServeState } from './serve-state';
import { isObject } from '../core';

/** How often config and the outbox are re-read. */
export const WATCH_INTERVAL_MS = 1_000;

export interface DaemonOptions {
  readonly paths: HomePaths;
  readonly host: string;
  readonly port: number;
  /** §7: the URLs this peer is reachable at; the first is advertised, all are the endpoint's names. */
  readonly publicUrls?: readonly string[];
  readonly appUrl?: string;
  /** Long-poll `wait` per receive request (§5: 0–30 s). */
  readonly longPollSeconds?: number;
  readonly log: (msg: string) => void;
}

export interface RunningDaemon {
  readonly url: string;
  /** The advertised direct URL, when one was configured. */
  readonly publicUrl?: string;
  readonly did: string;
  stop(): Promise<void>;
}

/** A fetch that lets a receive loop abort its own in-flight long-poll (and nothing else). */
function abortableFetch(loops: ReadonlyMap<string, ReceiveLoop>, receivePrefix: (relay: string) => string): typeof fetch {
  return (input, init) => {
    const url = typeof input === 'string' ? input : input instanceof URL ? input.href : input.url;
    for (const [relay, loop] of loops) {
      if (url.startsWith(receivePrefix(relay))) {
        const signal = init?.signal ? AbortSignal.any([init.signal, loop.signal]) : loop.signal;
        return fetch(input, { ...init, signal });
      }
    }
    return fetch(input, init);
  };
}

export async function startDaemon(opts: DaemonOptions): Promise<RunningDaemon> {
  const { paths, log } = opts;
  const other = runningServer(paths);
  if (other && other.pid !== process.pid) throw new CliError(`spl serve is already running for ${paths.dir} (pid ${other.pid}, ${other.url}); stop it with spl serve --stop`);
  ensureHome(paths.dir, (m) => log(m.trim()));

  const loops = new Map<string, ReceiveLoop>();
  let did = '';
  const receivePrefix = (relay: string) => `${new URL(relay).origin}${new URL(relay).pathname.replace(/\/+$/, '')}/v1/mailbox/${encodeURIComponent(did)}/receive`;
  const node: NodePeer = await openNodePeer({
    dbPath: paths.db,
    ...(opts.appUrl ? { appUrl: opts.appUrl } : {}),
    ...(opts.publicUrls?.[0] ? { peerUrl: opts.publicUrls[0] } : {}),
    fetch: abortableFetch(loops, receivePrefix),
    onIngest: (records) => log(`stored ${records.length} new record(s) from peers`),
  });
  const me = node.peer.identity();
  if (!me) {
    await node.close();
    throw new CliError(`no identity in ${paths.dir}: run "spl init" first`);
  }
  did = me.did;
  const { peer, store } = node;

  // ---- outbox: single-flight; a request during a flush runs one more afterwards ----
  let flushing: Promise<void> | undefined;
  let again: { all: boolean } | undefined;
  let stopping = false;
  const flush = (all: boolean): Promise<void> => {
    if (flushing) {
      again = { all: all || (again?.all ?? false) };
      return flushing;
    }
    flushing = (async () => {
      let next: { all: boolean } | undefined = { all };
      while (next && !stopping) {
        again = undefined;
        try {
          const r = await peer.flushOutbox({ all: next.all });
          if (r.attempted > 0) log(`outbox: attempted ${r.attempted}: ${r.direct} direct, ${r.relay} via relay, ${r.pending} pending, ${r.rejected} rejected`);
        } catch (e) {
          log(`outbox flush failed: ${e instanceof Error ? e.message : String(e)}`);
        }
        next = again;
      }
    })().finally(() => (flushing = undefined));
    return flushing;
  };

  // ---- receive loops follow the config ----
  const reconcile = async (): Promise<void> => {
    const wanted = new Set(await peer.receiveRelays());
    for (const [url, loop] of loops) {
      if (!wanted.has(url)) {
        loops.delete(url);
        log(`relay ${url} no longer configured: receive loop stopped`);
        await loop.stop();
      }
    }
    for (const url of wanted) {
      if (!loops.has(url) && !stopping) {
        log(`receiving from ${url}`);
        loops.set(url, new ReceiveLoop(url, peer, store, { log, onProgress: () => void flush(true) }, opts.longPollSeconds));
      }
    }
  };

  let server: DirectServer;
  try {
    server = await startDirectServer({
      host: opts.host,
      port: opts.port,
      handle: (body) => peer.handleDirectDelivery(body),
      names: (opts.publicUrls ?? []).map(urlHostName),
      log,
      onDelivery: (res) => {
        const accepted = isObject(res.body) && Array.isArray(res.body.accepted) ? res.body.accepted.length : 0;
        if (res.status === 200 && accepted > 0) {
          log(`direct delivery: ${accepted} new record(s)`);
          void flush(true); // the sender is online: whatever waits for it may go now
        }
      },
    });
  } catch (e) {
    await node.close();
    const code = (e as NodeJS.ErrnoException).code;
    throw new CliError(code === 'EADDRINUSE' ? `cannot listen on ${opts.host}:${opts.port}: the port is in use (try --port)` : `cannot listen on ${opts.host}:${opts.port}: ${e instanceof Error ? e.message : String(e)}`);
  }
  // §7: only a URL the owner configured is advertised, never the address we merely listen on.
  const publicUrl = opts.publicUrls?.[0];
  writeServeState(paths, { pid: process.pid, url: server.url, ...(publicUrl ? { publicUrl } : {}), startedAt: Date.now() });
  log(`listening on ${server.url} as ${me.name} (${me.did})${publicUrl ? `, advertised as ${publicUrl}` : ', no direct URL advertised (--public-url)'}`);

  await reconcile();
  void flush(true); // starting up is the network coming back

  let timer: NodeJS.Timeout | undefined;
  let ticking: Promise<void> | undefined;
  const tick = async (): Promise<void> => {
    try {
      await reconcile();
      if ((await store.dueOutbox(Date.now())).length > 0) await flush(false);
    } catch (e) {
      log(`watch failed: ${e instanceof Error ? e.message : String(e)}`);
    }
  };
  const schedule = () => {
    timer = setTimeout(() => {
      ticking = tick().finally(() => {
        ticking = undefined;
        if (!stopping) schedule();
      });
    }, WATCH_INTERVAL_MS);
  };
  schedule();

  let stopped: Promise<void> | undefined;
  const stop = (): Promise<void> =>
    (stopped ??= (async () => {
      stopping = true;
      clearTimeout(timer);
      await ticking;
      await Promise.all([...loops.values()].map((l) => l.stop()));
      loops.clear();
      await flushing;
      await server.close();
      await node.close();
      clearServeState(paths, process.pid); // last: `spl serve --stop` waits for these files to go
      log('stopped');
    })());

  return { url: server.url, ...(publicUrl ? { publicUrl } : {}), did: me.did, stop };
}
