/** What every command gets: where to write, which home, and a way to open the peer in it. */
import { existsSync } from 'node:fs';
import type { NodePeer } from './node-peer';
import type { PeerEngine } from '../sync/engine';
import type { Identity } from '../store/types';
import { NoIdentityError } from './errors';
import { ensureHome, homePaths, type HomePaths } from './home';
import { resolveAppUrl } from './home-config';
import type { CliIo } from './io';
import { runningServer } from './serve-state';

export interface CliContext {
  readonly io: CliIo;
  readonly paths: HomePaths;
  /** The base of invite links given for this run (`--app-url`, else $SPL_APP_URL), validated. */
  readonly appUrl: string | undefined;
  /** Which of the two gave `appUrl`. */
  readonly appUrlFrom: 'flag' | 'env' | undefined;
}

export function makeContext(io: CliIo, homeDir: string, appUrl: { flag?: string; env?: string }): CliContext {
  const appUrlFrom = appUrl.flag ? 'flag' : appUrl.env ? 'env' : undefined;
  return { io, paths: homePaths(homeDir), appUrl: appUrl.flag ?? appUrl.env, appUrlFrom };
}

/** The app URL invite links use: given for this run, else configured in the home, else learnt from pairing. */
export const inviteAppUrl = (ctx: CliContext): ReturnType<typeof resolveAppUrl> =>
  resolveAppUrl(
    ctx.paths,
    ctx.appUrl === undefined ? {} : ctx.appUrlFrom === 'flag' ? { flag: ctx.appUrl } : ctx.appUrlFrom === 'env' ? { env: ctx.appUrl } : {},
  );

export interface OpenedPeer {
  readonly peer: PeerEngine;
  readonly node: NodePeer;
  readonly me: Identity;
}

/**
 * Opens the home's peer for one command and always closes it. Refuses (without creating anything)
 * when the home has no identity yet. The running server's URL, if any, is what invites advertise.
 */
export async function withPeer<T>(ctx: CliContext, fn: (p: OpenedPeer) => Promise<T>): Promise<T> {
  if (!existsSync(ctx.paths.db)) throw noIdentity(ctx);
  ensureHome(ctx.paths.dir, ctx.io.err);
  const serving = runningServer(ctx.paths);
  const appUrl = inviteAppUrl(ctx)?.url;
  const { openNodePeer } = await import('./node-peer'); // SQLite and crypto: only for commands that open the peer
  const node = await openNodePeer({
    dbPath: ctx.paths.db,
    ...(appUrl ? { appUrl } : {}),
    ...(serving?.publicUrl ? { peerUrl: serving.publicUrl } : {}),
  });
  try {
    const me = node.peer.identity();
    if (!me) throw noIdentity(ctx);
    return await fn({ peer: node.peer, node, me });
  } finally {
    await node.close();
  }
}

/** Opens (creating) the home's store whether or not it has an identity: for `spl init`. */
export async function withNewPeer<T>(ctx: CliContext, fn: (node: NodePeer) => Promise<T>): Promise<T> {
  ensureHome(ctx.paths.dir, ctx.io.err);
  const { openNodePeer } = await import('./node-peer');
  const node = await openNodePeer({ dbPath: ctx.paths.db });
  try {
    return await fn(node);
  } finally {
    await node.close();
  }
}

const noIdentity = (ctx: CliContext): NoIdentityError => new NoIdentityError(`no identity in ${ctx.paths.dir}: run "spl init" first`);
