/** `spl emit` and `spl records`. */
import type { CliContext } from '../context';
import { withPeer } from '../context';
import { runningServer } from '../serve-state';
import { json } from '../format';
import type { StoredRecord } from '../../store/types';
import { parseThread } from './pair';

export async function emitCommand(ctx: CliContext, opts: { thread: string; text: string; send: boolean }): Promise<void> {
  const thread = parseThread(opts.thread);
  await withPeer(ctx, async ({ peer }) => {
    const rec = await peer.emit({ thread, text: opts.text });
    ctx.io.out(`${rec.id}\n`);
    const sharedWith = (await peer.pairs()).filter((p) => p.enabled && p.threads.includes(thread));
    if (sharedWith.length === 0) {
      ctx.io.out(`stored locally: no pair shares ${thread} yet\n`);
      return;
    }
    // A running daemon delivers within a second; otherwise try once now and leave the rest to retries.
    if (!opts.send || runningServer(ctx.paths)) {
      ctx.io.out(`queued for ${sharedWith.map((p) => p.name).join(', ')}\n`);
      return;
    }
    const r = await peer.flushOutbox();
    ctx.io.out(`delivered: ${r.direct} direct, ${r.relay} via relay; ${r.pending} pending, ${r.rejected} rejected\n`);
  });
}

function recordText(r: StoredRecord): string {
  const b = r.signed.record.body;
  if (typeof b.text === 'string') return b.text;
  return JSON.stringify(b);
}

export async function recordsCommand(ctx: CliContext, opts: { thread: string; json?: boolean }): Promise<void> {
  const thread = parseThread(opts.thread);
  await withPeer(ctx, async ({ peer, me }) => {
    const records = await peer.records(thread);
    if (opts.json) {
      ctx.io.out(json(records.map((r) => ({ id: r.id, record: r.signed.record, sig: r.signed.sig, path: r.path, via: r.via ?? null, received_at: r.receivedAt }))));
      return;
    }
    if (records.length === 0) {
      ctx.io.out(`no records on ${thread}\n`);
      return;
    }
    const names = new Map((await peer.pairs()).map((p) => [p.peerDid, p.name]));
    names.set(me.did, `${me.name} (me)`);
    for (const r of records) {
      const who = names.get(r.actor) ?? `${r.actor.slice(0, 20)}…`;
      ctx.io.out(`${new Date(r.receivedAt).toISOString()}  ${who}  [${r.path}]  ${recordText(r)}\n`);
    }
  });
}
