/**
 * `spl thread list | show` (more subcommands attach to the same group in program.ts). A thread's
 * title follows PROTOCOL.md §11 "Titles"; "shared with" is the pairs whose grant lists it (§8).
 */
import type { CliContext } from '../context';
import { withPeer } from '../context';
import { CliError } from '../errors';
import { json } from '../format';
import { inTimeOrder, lastNoteAt, threadTitle } from '../thread-view';
import { printRecords, recordJson } from './records';
import type { Pair } from '../../sync/types';

/** The protocol's own threads (§8, §9): listed only with --all. */
const SYSTEM_THREADS: ReadonlySet<string> = new Set(['th_engine_config', 'th_federation_pairs']);

const sharedWith = (pairs: readonly Pair[], thread: string): Pair[] => pairs.filter((p) => p.enabled && p.threads.includes(thread));

export async function threadListCommand(ctx: CliContext, opts: { all?: boolean; json?: boolean }): Promise<void> {
  await withPeer(ctx, async ({ peer }) => {
    const pairs = await peer.pairs();
    const known = new Set((await peer.threads()).map((t) => t.thread));
    // A thread granted to a pair but with no record here yet is still one of ours.
    for (const p of pairs) for (const t of p.threads) known.add(t);
    const rows = [];
    for (const thread of [...known].filter((t) => opts.all || !SYSTEM_THREADS.has(t))) {
      const records = await peer.records(thread);
      const title = threadTitle(records);
      rows.push({
        thread,
        title: title?.text ?? null,
        records: records.length,
        lastNoteAt: lastNoteAt(records),
        shared: sharedWith(pairs, thread),
      });
    }
    // Most recently active first; threads without notes after them, by ID.
    rows.sort((a, b) => (b.lastNoteAt ?? -1) - (a.lastNoteAt ?? -1) || (a.thread < b.thread ? -1 : 1));
    if (opts.json) {
      ctx.io.out(
        json(
          rows.map((r) => ({
            thread: r.thread,
            title: r.title,
            records: r.records,
            last_note_at: r.lastNoteAt ?? null,
            shared_with: r.shared.map((p) => ({ did: p.peerDid, name: p.name })),
          })),
        ),
      );
      return;
    }
    if (rows.length === 0) {
      ctx.io.out('no threads yet (spl emit --thread th_… --text …, or pair with a device that shares one)\n');
      return;
    }
    for (const r of rows) {
      const last = r.lastNoteAt !== undefined ? new Date(r.lastNoteAt).toISOString() : 'no notes';
      const shared = r.shared.length ? r.shared.map((p) => p.name).join(', ') : 'not shared';
      ctx.io.out(`${r.thread}  ${r.title ?? '(untitled)'}\n  ${r.records} record(s), last note ${last}, shared with: ${shared}\n`);
    }
  });
}

export async function threadShowCommand(ctx: CliContext, thread: string, opts: { json?: boolean }): Promise<void> {
  await withPeer(ctx, async ({ peer, me }) => {
    const [records, pairs] = await Promise.all([peer.records(thread), peer.pairs()]);
    const shared = sharedWith(pairs, thread);
    if (records.length === 0 && shared.length === 0) throw new CliError(`no thread ${thread} here (no records, not shared with any pair)`);
    const title = threadTitle(records);
    if (opts.json) {
      ctx.io.out(
        json({
          thread,
          title: title?.text ?? null,
          root: title ? { id: title.root.id, actor: title.root.actor } : null,
          shared_with: shared.map((p) => ({ did: p.peerDid, name: p.name })),
          records: inTimeOrder(records).map(recordJson),
        }),
      );
      return;
    }
    ctx.io.out(
      `${title?.text ?? '(untitled)'}\n` +
        `  thread:      ${thread}\n` +
        `  shared with: ${shared.length ? shared.map((p) => `${p.name} (${p.peerDid})`).join(', ') : 'nobody'}\n` +
        `  records:     ${records.length}\n\n`,
    );
    await printRecords(ctx, peer, me, records);
  });
}
