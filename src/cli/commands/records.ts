/** `spl emit` and `spl records`. */
import { readFileSync } from 'node:fs';
import type { CliContext } from '../context';
import { withPeer } from '../context';
import { UsageError } from '../errors';
import { json } from '../format';
import { parseThread } from '../parse';
import { runningServer } from '../serve-state';
import { inTimeOrder, ownTime, recordText, writtenLabel } from '../thread-view';
import type { StoredRecord } from '../../store/types';
import type { PeerEngine } from '../../sync/engine';
import type { Identity } from '../../store/types';
import type { RecordDelivery } from '../../sync/types';

import { MAX_NOTE_BYTES } from '../../sync/types';

export { MAX_NOTE_BYTES };

export interface EmitOptions {
  readonly thread: string;
  readonly text?: string;
  readonly file?: string;
  readonly send: boolean;
}

/** The note's text from `--text` (`-` = stdin) or `--file`; exactly one of them. */
async function noteText(ctx: CliContext, opts: EmitOptions): Promise<string> {
  if ((opts.text === undefined) === (opts.file === undefined))
    throw new UsageError('give the note with either --text <note> ("-" reads stdin) or --file <path>');
  let text: string;
  if (opts.file !== undefined) {
    try {
      text = readFileSync(opts.file, 'utf8');
    } catch (e) {
      throw new UsageError(`cannot read --file ${opts.file}: ${e instanceof Error ? e.message : String(e)}`);
    }
  } else if (opts.text === '-') {
    if (!ctx.io.readStdin) throw new UsageError('--text - reads stdin, which this run has not got');
    text = await ctx.io.readStdin();
  } else {
    text = opts.text ?? '';
  }
  text = text.replace(/(\r?\n)+$/, ''); // `echo note | spl emit --text -` means "note"
  if (!text.trim())
    throw new UsageError(`the note is empty${opts.file !== undefined ? ` (${opts.file})` : opts.text === '-' ? ' (stdin)' : ''}`);
  if (Buffer.byteLength(text) > MAX_NOTE_BYTES)
    throw new UsageError(`the note is ${Buffer.byteLength(text)} bytes; at most ${MAX_NOTE_BYTES} fit in one record`);
  return text;
}

export async function emitCommand(ctx: CliContext, opts: EmitOptions): Promise<void> {
  const thread = parseThread(opts.thread);
  const text = await noteText(ctx, opts);
  await withPeer(ctx, async ({ peer }) => {
    // `at`: the written time the app shows too (the protocol record carries no timestamp).
    const rec = await peer.emit({ thread, body: { kind: 'note', text, at: Date.now() } });
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

/** One record per line: written, arrived, author, arrival path, text. */
export async function printRecords(ctx: CliContext, peer: PeerEngine, me: Identity, records: readonly StoredRecord[]): Promise<void> {
  const names = new Map((await peer.pairs()).map((p) => [p.peerDid, p.name]));
  names.set(me.did, `${me.name} (me)`);
  const delivery = records.length ? await peer.deliveryStates(records[0]!.thread) : new Map<string, RecordDelivery[]>();
  const lines = inTimeOrder(records).map((r) => {
    const who = names.get(r.actor) ?? `${r.actor.slice(0, 20)}…`;
    const states = delivery.get(r.id) ?? [];
    // §11: where each own record stands at each peer granted the thread.
    const at = states.length ? `  {${states.map((d) => `${d.name}: ${d.state === 'relay' ? 'at relay' : d.state}`).join(', ')}}` : '';
    return `${writtenLabel(r)}  arrived ${new Date(r.receivedAt).toISOString()}  ${who}  [${r.path}]${at}  ${recordText(r)}\n`;
  });
  ctx.io.out(lines.join(''));
}

export const recordJson = (r: StoredRecord): Record<string, unknown> => ({
  id: r.id,
  record: r.signed.record,
  sig: r.signed.sig,
  path: r.path,
  via: r.via ?? null,
  written_at: ownTime(r) ?? null,
  received_at: r.receivedAt,
});

export async function recordsCommand(ctx: CliContext, opts: { thread: string; json?: boolean }): Promise<void> {
  const thread = parseThread(opts.thread);
  await withPeer(ctx, async ({ peer, me }) => {
    const records = await peer.records(thread);
    if (opts.json) {
      const delivery = await peer.deliveryStates(thread);
      ctx.io.out(
        json(
          inTimeOrder(records).map((r) => ({
            ...recordJson(r),
            delivery: (delivery.get(r.id) ?? []).map((d) => ({
              peer: d.peerDid,
              name: d.name,
              state: d.state,
              ...(d.at ? { at: d.at } : {}),
            })),
          })),
        ),
      );
      return;
    }
    if (records.length === 0) {
      ctx.io.out(`no records on ${thread}\n`);
      return;
    }
    await printRecords(ctx, peer, me, records);
  });
}
