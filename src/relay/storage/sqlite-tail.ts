/**
 * The staged index of the relay's SQLite store (schema version 5, issue 14): why and how.
 *
 * Why: with an index ordered by receiver, every deposit dirties random pages of it, and each dirty
 * page is a whole 4 KiB WAL frame in its commit. Measured at 1,000,000 envelopes over 10,000
 * receivers (version 4: an ID index, a mailbox index and per-row counter triggers): 20.5 KB of WAL
 * and 5.2 KB of checkpoint per 1 KiB deposit, and deposits at 0.75× an empty relay's rate.
 *
 * How: envelopes are appended by a sequence number that never repeats (`meta.next_seq`). Only
 * *merged* rows are indexed on disk: `envelope_keys (mailbox, id_hash, seq)` and the per-mailbox
 * counters in `mailboxes`. The newer rows, the *tail*, are indexed in memory by every connection
 * (the writer, the reader, each process sharing the file), which catches its copy up at the start
 * of every transaction from what is on disk:
 * - rows with `seq > lastSeq` (a rowid range);
 * - deletions of tail rows, from the append-only `envelope_deletions` log (`n > lastDeletion`);
 * - the merge state in `meta`: `merged_upto` (every row at or below it is merged or gone) and,
 *   while a merge runs, `merge_end` and the key it has reached (`merge_mailbox`, `merge_hash`,
 *   `merge_seq`).
 * A merge takes the tail rows up to `merge_end`, sorts their keys and inserts them in chunks, each
 * chunk (with its per-mailbox counts) in its own transaction between two deposit batches. Chunks in
 * key order touch each page of the key table about once per merge; one chunk is a few ms where one
 * merge of 16k keys took 95 ms (`npm run bench:staged-index` before this change). A tail row is
 * merged once `seq <= merged_upto`, or `seq <= merge_end` and its key is at or below the merge's
 * progress: every connection applies that one rule, so all of them agree which rows the counters
 * in `mailboxes` include. Limits are still decided inside the writer's transaction, on merged
 * counters plus tail counts, both exact there.
 */
import type Database from 'better-sqlite3';

/** One unmerged envelope as the tail keeps it (no body). */
export interface TailEntry {
  readonly seq: number;
  readonly mailbox: number;
  readonly id: string;
  /** The ID hashed with the database's own key (sqlite-schema.ts `idHasher`). */
  readonly hash: number;
  readonly size: number;
  readonly unsolicited: 0 | 1;
}

/** Per-mailbox counts of tail rows (expired ones included, as the merged counters do). */
export interface TailCounts {
  readonly queued: number;
  readonly unsolicited: number;
  readonly unsolicitedBytes: number;
}

/** (mailbox, hash, seq): the key table's order, and so the merge's. */
export type MergeKey = readonly [mailbox: number, hash: number, seq: number];

export const compareKeys = (a: MergeKey, b: MergeKey): number => a[0] - b[0] || a[1] - b[1] || a[2] - b[2];
export const keyOf = (e: TailEntry): MergeKey => [e.mailbox, e.hash, e.seq];

/** No key yet: a merge that has inserted nothing. */
export const NO_KEY: MergeKey = [-1, -1, -1];

export interface MergeState {
  /** 0: no merge running. */
  readonly end: number;
  readonly progress: MergeKey;
}

interface MailboxTail {
  readonly ids: Map<string, TailEntry>;
  queued: number;
  unsolicited: number;
  unsolicitedBytes: number;
}

const ZERO: TailCounts = { queued: 0, unsolicited: 0, unsolicitedBytes: 0 };

interface RowOfTail {
  seq: number;
  mailbox: number;
  id: string;
  size: number;
  unsolicited: number;
}

/**
 * One connection's in-memory index of the tail. Not thread-safe, not shared: each connection has
 * its own, and `catchUp` must run inside a transaction (so it reads one snapshot).
 */
export class EnvelopeTail {
  private readonly bySeq = new Map<number, TailEntry>();
  private readonly byMailbox = new Map<number, MailboxTail>();
  private isLoaded = false;
  private lastSeqSeen = 0;
  private lastDeletion = 0;
  private mergedUpto = 0;
  /** The merge this connection follows: its rows in key order, and how far it has got. */
  private merge: { end: number; progress: MergeKey; keys: TailEntry[]; pos: number } | undefined;
  private readonly stmt;

  constructor(
    db: Database.Database,
    private readonly hashId: (id: string) => number,
  ) {
    // Plans: rows "SEARCH envelopes USING INTEGER PRIMARY KEY (rowid>?)"; deletions "SEARCH
    // envelope_deletions USING INTEGER PRIMARY KEY (rowid>?)"; meta by primary key.
    this.stmt = {
      meta: db.prepare<[], { k: string; v: number }>(
        "SELECT k, v FROM meta WHERE k IN ('merged_upto', 'merge_end', 'merge_mailbox', 'merge_hash', 'merge_seq')",
      ),
      rows: db.prepare<[number], RowOfTail>('SELECT seq, mailbox, id, size, unsolicited FROM envelopes WHERE seq > ? ORDER BY seq'),
      deletions: db.prepare<[number], { n: number; seq: number }>('SELECT n, seq FROM envelope_deletions WHERE n > ? ORDER BY n'),
      lastDeletion: db.prepare<[], { n: number | null }>('SELECT max(n) AS n FROM envelope_deletions'),
    };
  }

  /** Whether a transaction has loaded this copy (until then `size` and `merging` say nothing). */
  get loaded(): boolean {
    return this.isLoaded;
  }

  /** Rows in the tail. */
  get size(): number {
    return this.bySeq.size;
  }

  /** The largest seq this connection has seen (rows, or the merged bound). */
  get lastSeq(): number {
    return this.lastSeqSeen;
  }

  get merging(): MergeState | undefined {
    return this.merge && { end: this.merge.end, progress: this.merge.progress };
  }

  /** Forgets everything: the next `catchUp` reloads the tail (after a rolled-back transaction). */
  reset(): void {
    this.bySeq.clear();
    this.byMailbox.clear();
    this.isLoaded = false;
    this.merge = undefined;
  }

  /** Brings this copy up to the transaction's snapshot. */
  catchUp(): void {
    const meta = new Map(this.stmt.meta.all().map((r) => [r.k, r.v]));
    const mergedUpto = meta.get('merged_upto') ?? 0;
    const mergeEnd = meta.get('merge_end') ?? 0;
    const progress: MergeKey = [meta.get('merge_mailbox') ?? -1, meta.get('merge_hash') ?? -1, meta.get('merge_seq') ?? -1];
    if (!this.isLoaded) {
      // Deletions already happened to the rows read below: start after the log's last entry.
      this.lastDeletion = this.stmt.lastDeletion.get()?.n ?? 0;
      this.lastSeqSeen = mergedUpto;
      this.mergedUpto = mergedUpto;
      this.isLoaded = true;
    }
    if (mergedUpto > this.mergedUpto) {
      // Entries are added in seq order, and a Map iterates in insertion order: stop at the first above.
      for (const [seq, e] of this.bySeq) {
        if (seq > mergedUpto) break;
        this.drop(e);
      }
      this.mergedUpto = mergedUpto;
      this.lastSeqSeen = Math.max(this.lastSeqSeen, mergedUpto);
    }
    for (const r of this.stmt.rows.iterate(this.lastSeqSeen)) {
      this.add({ seq: r.seq, mailbox: r.mailbox, id: r.id, hash: this.hashId(r.id), size: r.size, unsolicited: r.unsolicited ? 1 : 0 });
    }
    for (const d of this.stmt.deletions.iterate(this.lastDeletion)) {
      const e = this.bySeq.get(d.seq);
      if (e) this.drop(e);
      this.lastDeletion = d.n;
    }
    if (mergeEnd === 0) {
      this.merge = undefined;
      return;
    }
    if (this.merge?.end !== mergeEnd) this.follow(mergeEnd);
    this.advance(progress);
  }

  /** Whether `seq` is a tail row (unmerged, not deleted). */
  has(seq: number): boolean {
    return this.bySeq.has(seq);
  }

  find(mailbox: number, id: string): TailEntry | undefined {
    return this.byMailbox.get(mailbox)?.ids.get(id);
  }

  counts(mailbox: number): TailCounts {
    return this.byMailbox.get(mailbox) ?? ZERO;
  }

  /** The mailbox's tail rows, oldest first. */
  entriesOf(mailbox: number): TailEntry[] {
    const t = this.byMailbox.get(mailbox);
    return t ? [...t.ids.values()].sort((a, b) => a.seq - b.seq) : [];
  }

  /** Mailboxes with tail rows, and their counts. */
  mailboxes(): IterableIterator<[number, TailCounts]> {
    return this.byMailbox.entries();
  }

  /** The writer stored a row (after its INSERT). */
  add(e: TailEntry): void {
    if (this.bySeq.has(e.seq)) return;
    this.bySeq.set(e.seq, e);
    let t = this.byMailbox.get(e.mailbox);
    if (!t) this.byMailbox.set(e.mailbox, (t = { ids: new Map(), queued: 0, unsolicited: 0, unsolicitedBytes: 0 }));
    t.ids.set(e.id, e);
    t.queued += 1;
    t.unsolicited += e.unsolicited;
    t.unsolicitedBytes += e.unsolicited * e.size;
    if (e.seq > this.lastSeqSeen) this.lastSeqSeen = e.seq;
  }

  /** The writer deleted a tail row (and logged it). */
  remove(seq: number): void {
    const e = this.bySeq.get(seq);
    if (e) this.drop(e);
  }

  /** Writer: starts following a merge it has just recorded (`merge_end = end`, no progress). */
  beginMerge(end: number): void {
    this.follow(end);
  }

  /** Writer: the next `n` rows of the running merge, in key order (tail rows only). */
  nextMergeChunk(n: number): TailEntry[] {
    const m = this.merge;
    if (!m) return [];
    const out: TailEntry[] = [];
    for (let i = m.pos; i < m.keys.length && out.length < n; i++) {
      const e = m.keys[i]!;
      if (this.bySeq.get(e.seq) === e) out.push(e);
    }
    return out;
  }

  /** Writer: its chunk up to `progress` committed. */
  advanceMerge(progress: MergeKey): void {
    this.advance(progress);
  }

  /** Writer: the running merge has no rows left after its progress. */
  mergeDone(): boolean {
    return this.nextMergeChunk(1).length === 0;
  }

  /** Writer: the merge committed its last chunk and `merged_upto = end`. */
  finishMerge(end: number): void {
    this.advance([Infinity, Infinity, Infinity]);
    this.merge = undefined;
    this.mergedUpto = end;
    this.lastSeqSeen = Math.max(this.lastSeqSeen, end);
  }

  private follow(end: number): void {
    const keys: TailEntry[] = [];
    for (const [seq, e] of this.bySeq) {
      if (seq > end) break;
      keys.push(e);
    }
    keys.sort((a, b) => compareKeys(keyOf(a), keyOf(b)));
    this.merge = { end, progress: NO_KEY, keys, pos: 0 };
  }

  /** Drops the followed merge's rows at or below `progress`: they are in the key table now. */
  private advance(progress: MergeKey): void {
    const m = this.merge;
    if (!m) return;
    while (m.pos < m.keys.length && compareKeys(keyOf(m.keys[m.pos]!), progress) <= 0) {
      const e = m.keys[m.pos++]!;
      if (this.bySeq.get(e.seq) === e) this.drop(e);
    }
    if (compareKeys(progress, m.progress) > 0) m.progress = progress;
  }

  private drop(e: TailEntry): void {
    this.bySeq.delete(e.seq);
    const t = this.byMailbox.get(e.mailbox);
    if (!t) return;
    t.ids.delete(e.id);
    t.queued -= 1;
    t.unsolicited -= e.unsolicited;
    t.unsolicitedBytes -= e.unsolicited * e.size;
    if (t.ids.size === 0) this.byMailbox.delete(e.mailbox);
  }
}
