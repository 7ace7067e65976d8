/**
 * `spl thread share | unshare | shares | accept` (PROTOCOL.md §8): threads are granted to pairs by
 * their owner, never taken by writing on them.
 */
import type { CliContext } from '../context';
import { withPeer } from '../context';
import { UsageError } from '../errors';
import { json } from '../format';
import { findPair } from './pair';

export async function threadShareCommand(ctx: CliContext, thread: string, opts: { with: string }): Promise<void> {
  await withPeer(ctx, async ({ peer }) => {
    const pair = findPair(await peer.pairs(), opts.with);
    if (pair.threads.includes(thread)) {
      ctx.io.out(`${thread} is already shared with ${pair.name}\n`);
      return;
    }
    await peer.shareThread(thread, pair.peerDid);
    await peer.flushOutbox().catch(() => undefined);
    ctx.io.out(
      `Shared ${thread} with ${pair.name}: it gets the thread's history and your new notes there, and its notes there are accepted.\n`,
    );
  });
}

export async function threadUnshareCommand(ctx: CliContext, thread: string, opts: { with: string }): Promise<void> {
  await withPeer(ctx, async ({ peer }) => {
    const pair = findPair(await peer.pairs(), opts.with);
    if (!pair.threads.includes(thread)) throw new UsageError(`${thread} is not shared with ${pair.name}`);
    await peer.unshareThread(thread, pair.peerDid);
    ctx.io.out(`${thread} is no longer shared with ${pair.name}: nothing more is sent to it there, and its notes there are dropped.\n`);
  });
}

export async function threadSharesCommand(ctx: CliContext, opts: { json?: boolean }): Promise<void> {
  await withPeer(ctx, async ({ peer }) => {
    const shares = await peer.pendingShares();
    if (opts.json) {
      ctx.io.out(json(shares.map((s) => ({ thread: s.thread, title: s.title ?? null, from_did: s.fromDid, from: s.fromName }))));
      return;
    }
    if (shares.length === 0) ctx.io.out('no shares waiting for you\n');
    for (const s of shares)
      ctx.io.out(`${s.thread}${s.title ? ` "${s.title}"` : ''} offered by ${s.fromName} (${s.fromDid}): spl thread accept ${s.thread}\n`);
  });
}

export async function threadAcceptCommand(ctx: CliContext, thread: string): Promise<void> {
  await withPeer(ctx, async ({ peer }) => {
    const offers = (await peer.pendingShares()).filter((s) => s.thread === thread);
    if (offers.length === 0) throw new UsageError(`no pending share of ${thread} (spl thread shares lists them)`);
    await peer.acceptShare(thread);
    await peer.flushOutbox().catch(() => undefined);
    ctx.io.out(`Accepted ${thread} from ${offers.map((o) => o.fromName).join(', ')}: its history is on the way.\n`);
  });
}
