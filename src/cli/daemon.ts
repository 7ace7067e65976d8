/**
 * `spl serve`: the direct endpoint, and the sync scheduler (src/sync/scheduler.ts): one receive
 * loop per relay, the outbox flushed when entries come due. Writes by other `spl` processes to the
 * same SQLite file (a relay set, a note emitted) are noticed within a second (./store-watch.ts), so
 * loops start or stop and new entries go out without a restart.
 */
import { openNodePeer, type NodePeer } from './node-peer';
import { CliError } from './errors';
import { ensureHome, type HomePaths } from './home';
import { startDirectServer, urlHostName, type DirectServer } from './direct-server';
import { clearServeState, runningServer, writeServeState } from './serve-state';
import { watchStore } from './store-watch';
import { isObject } from '../core';
import { SyncScheduler, type SchedulerEvent } from '../sync/scheduler';

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

export async function startDaemon(opts: DaemonOptions): Promise<RunningDaemon> {
  const { paths, log } = opts;
  const other = runningServer(paths);
  if (other && other.pid !== process.pid)
    throw new CliError(`spl serve is already running for ${paths.dir} (pid ${other.pid}, ${other.url}); stop it with spl serve --stop`);
  ensureHome(paths.dir, (m) => log(m.trim()));

  const node: NodePeer = await openNodePeer({
    dbPath: paths.db,
    ...(opts.appUrl ? { appUrl: opts.appUrl } : {}),
    ...(opts.publicUrls?.[0] ? { peerUrl: opts.publicUrls[0] } : {}),
    onIngest: (records) => log(`stored ${records.length} new record(s) from peers`),
  });
  const me = node.peer.identity();
  if (!me) {
    await node.close();
    throw new CliError(`no identity in ${paths.dir}: run "spl init" first`);
  }
  const { peer } = node;
  const scheduler = new SyncScheduler({ peer, ...(opts.longPollSeconds !== undefined ? { waitSeconds: opts.longPollSeconds } : {}) });
  scheduler.on(logLine(log));

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
          void scheduler.flush({ all: true }); // the sender is online: whatever waits for it may go now
        }
      },
    });
  } catch (e) {
    await node.close();
    const code = (e as NodeJS.ErrnoException).code;
    throw new CliError(
      code === 'EADDRINUSE'
        ? `cannot listen on ${opts.host}:${opts.port}: the port is in use (try --port)`
        : `cannot listen on ${opts.host}:${opts.port}: ${e instanceof Error ? e.message : String(e)}`,
    );
  }
  // §7: only a URL the owner configured is advertised, never the address we merely listen on.
  const publicUrl = opts.publicUrls?.[0];
  writeServeState(paths, { pid: process.pid, url: server.url, ...(publicUrl ? { publicUrl } : {}), startedAt: Date.now() });
  log(
    `listening on ${server.url} as ${me.name} (${me.did})${publicUrl ? `, advertised as ${publicUrl}` : ', no direct URL advertised (--public-url)'}`,
  );

  await scheduler.start();
  void scheduler.flush({ all: true }); // starting up is the network coming back (§10)
  let watch: ReturnType<typeof watchStore> | undefined;
  try {
    // Another process's write: follow the config, and send what it queued now (its entries are due
    // at once; waiting for the retry timer's 1 s floor doubled a CLI note's way to a peer).
    watch = watchStore(
      paths.db,
      () => {
        void scheduler.refresh();
        void scheduler.flush();
      },
      log,
    );
  } catch (e) {
    log(
      `cannot watch the store for other spl processes' changes (restart spl serve after changing relays): ${e instanceof Error ? e.message : String(e)}`,
    );
  }

  let stopped: Promise<void> | undefined;
  const stop = (): Promise<void> =>
    (stopped ??= (async () => {
      watch?.close();
      await server.close(); // first: a direct delivery must not start a flush once the scheduler stopped
      await scheduler.stop();
      await node.close();
      clearServeState(paths, process.pid); // last: `spl serve --stop` waits for these files to go
      log('stopped');
    })());

  return { url: server.url, ...(publicUrl ? { publicUrl } : {}), did: me.did, stop };
}

/** The daemon's log lines for what the scheduler does; a relay's repeated failure is said once. */
function logLine(log: (msg: string) => void): (e: SchedulerEvent) => void {
  const lastError = new Map<string, string>();
  return (e) => {
    switch (e.type) {
      case 'loop-started':
        return log(`receiving from ${e.relay}`);
      case 'loop-stopped':
        lastError.delete(e.relay);
        return e.reason === 'removed' ? log(`relay ${e.relay} no longer configured: receive loop stopped`) : undefined;
      case 'progress':
        // A backlog after a long absence: one progress line per page while the relay holds more.
        if (e.progress.remaining > 0)
          log(`catching up from ${e.progress.relay}: ${e.progress.envelopes} envelope(s) so far, ${e.progress.remaining} still queued`);
        return;
      case 'received': {
        const r = e.result;
        if (r.error !== undefined) {
          if (lastError.get(e.relay) !== r.error) log(`receive from ${e.relay} failed: ${r.error} (retrying with backoff)`);
          lastError.set(e.relay, r.error);
        } else if (r.envelopes > 0) {
          log(
            `received ${r.envelopes} envelope(s) from ${e.relay}: ${r.ingested} new record(s), ${r.duplicates} duplicate(s), ${r.dropped} dropped, ${r.acked} acked`,
          );
        }
        return;
      }
      case 'recovered':
        lastError.delete(e.relay);
        return log(`receive from ${e.relay} works again`);
      case 'flushed': {
        const r = e.report;
        if (r.attempted > 0)
          log(`outbox: attempted ${r.attempted}: ${r.direct} direct, ${r.relay} via relay, ${r.pending} pending, ${r.rejected} rejected`);
        return;
      }
      case 'flush-failed':
        return log(`outbox flush failed: ${e.error}`);
      case 'error':
        return log(`sync ${e.where}${e.relay ? ` for ${e.relay}` : ''} failed: ${e.error}`);
      default:
        return;
    }
  };
}
