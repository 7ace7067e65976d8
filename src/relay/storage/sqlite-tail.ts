/**
 * The staged index of the relay's SQLite store (schema version 5, issue 14): why and how.
 *
 * Why: with an index ordered by receiver, every deposit dirties random pages of it, and each dirty
 * page is a whole 4 KiB WAL frame in its commit. Measured at 1,000,000 envelopes over 10,000
 * receivers (version 4: an ID index, a mailbox index and per-row counter triggers): 20.5 KB of WAL
 * and 5.2 KB of checkpoint per 1 KiB deposit, 19.2 KB per deposit at the block device under load,
 * and deposits at 0.75× an empty relay's rate.
 *
 * How: envelopes are appended by a sequence number that never repeats (`meta.next_seq`). Only
 * *merged* rows are indexed on disk: `envelope_keys (mailbox, id_hash, seq)` and the per-mailbox
 * counters in `mailboxes`. The newer rows, the *tail*, are indexed in memory by every connection
 * (the writer, the reader, each process sharing the file), which catches its copy up at the start
 * of every transaction from what is on disk:
 * - rows with `seq > lastSeq` (a rowid range);
 * - rows that left the tail since, from the append-only `tail_exits` log (`n > lastExit`): deleted
 *   (acked, swept, replaced) or merged, in the same transaction as the change itself;
 * - `meta.merged_upto`: every row at or below it is merged or gone (the log is pruned below it).
 * A merge takes the tail rows up to `meta.merge_end`, sorts their keys and inserts them in chunks,
 * each chunk (with its per-mailbox counts and exit entries) in its own transaction between two
 * deposit batches. Chunks in key order touch each page of the key table about once per merge; one
 * chunk of 1,024 keys is a few ms where one merge of 16k keys took 95 ms. Any writer can carry on a
 * merge another process began: the rows left up to `merge_end` are what remains of it. Limits are
 * still decided inside the writer's transaction, on merged counters plus tail counts, both exact
 * there. Readers never need the ID hash: only writers compute it (HMAC, ~3 µs).
 */
import type Database from 'better-sqlite3';

/** One unmerged envelope as the tail keeps it (no body). */
export interface TailEntry {
  readonly seq: number;
  readonly mailbox: number;
  readonly id: string;
  /** The ID hashed with the database's key (sqlite-schema.ts `idHasher`); writers fill it in when they need it. */
  hash?: number;
  readonly size: number;
  readonly unsolicited: 0 | 1;
}

/** Per-mailbox counts of tail rows (expired ones included, as the merged counters do). */
export interface TailCounts {
  readonly queued: number;
  readonly unsolicited: number;
  readonly unsolicitedBytes: number;
}

interface MailboxTail {
  /** Insertion order is seq order: rows are added in seq order and never re-added. */
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
 * One connection's in-memory index of the tail. Not shared: each connection has its own, and
 * `catchUp` must run inside a transaction (so it reads one snapshot).
 */
export class EnvelopeTail {
  /** Insertion order is seq order (see MailboxTail). */
  private readonly bySeq = new Map<number, TailEntry>();
  private readonly byMailbox = new Map<number, MailboxTail>();
  private isLoaded = false;
  private lastSeqSeen = 0;
  private lastExit = 0;
  private mergedUpto = 0;
  private mergeEnd = 0;
  /** Writers: the running merge's rows in key order, and how far this writer has taken them. */
  private mergeKeys: { end: number; rows: TailEntry[]; pos: number } | undefined;
  private readonly stmt;

  constructor(db: Database.Database) {
    // Plans: rows "SEARCH envelopes USING INTEGER PRIMARY KEY (rowid>?)"; exits "SEARCH tail_exits
    // USING INTEGER PRIMARY KEY (rowid>?)"; meta by primary key.
    this.stmt = {
      meta: db.prepare<[], { k: string; v: number }>("SELECT k, v FROM meta WHERE k IN ('merged_upto', 'merge_end')"),
      rows: db.prepare<[number], RowOfTail>('SELECT seq, mailbox, id, size, unsolicited FROM envelopes WHERE seq > ? ORDER BY seq'),
      exits: db.prepare<[number], { n: number; seq: number }>('SELECT n, seq FROM tail_exits WHERE n > ? ORDER BY n'),
    };
  }

  /** Whether a transaction has loaded this copy (until then `size` and `mergeEnd` say nothing). */
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

  /** The running merge's last row; 0 when no merge runs. */
  get merging(): number {
    return this.mergeEnd;
  }

  /** Forgets everything: the next `catchUp` reloads the tail (after a rolled-back transaction). */
  reset(): void {
    this.bySeq.clear();
    this.byMailbox.clear();
    this.isLoaded = false;
    this.mergeKeys = undefined;
  }

  /** Brings this copy up to the transaction's snapshot. */
  catchUp(): void {
    const meta = new Map(this.stmt.meta.all().map((r) => [r.k, r.v]));
    const mergedUpto = meta.get('merged_upto') ?? 0;
    if (!this.isLoaded) {
      // The whole log: rows above merged_upto that a running merge has taken are still in the
      // envelope table, and only their exits say so.
      this.lastExit = 0;
      this.lastSeqSeen = mergedUpto;
      this.mergedUpto = mergedUpto;
      this.isLoaded = true;
    }
    this.mergedUpTo(mergedUpto);
    // Exits first, kept to skip the new rows they name: a row this copy never saw may have been
    // merged since (it is still in the envelope table). An ID deposited again after its row left
    // then comes back as a new row, after the old one is gone.
    const exited = new Set<number>();
    for (const x of this.stmt.exits.iterate(this.lastExit)) {
      exited.add(x.seq);
      this.remove(x.seq);
      this.lastExit = x.n;
    }
    for (const r of this.stmt.rows.iterate(this.lastSeqSeen)) {
      if (exited.has(r.seq)) this.lastSeqSeen = r.seq;
      else this.add({ seq: r.seq, mailbox: r.mailbox, id: r.id, size: r.size, unsolicited: r.unsolicited ? 1 : 0 });
    }
    this.mergeEnd = meta.get('merge_end') ?? 0;
    if (this.mergeKeys && this.mergeKeys.end !== this.mergeEnd) this.mergeKeys = undefined;
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

  /** The seqs of the mailbox's oldest `n` tail rows, oldest first. */
  oldestOf(mailbox: number, n: number): number[] {
    const out: number[] = [];
    const t = this.byMailbox.get(mailbox);
    if (!t) return out;
    for (const e of t.ids.values()) {
      if (out.length >= n) break;
      out.push(e.seq);
    }
    return out;
  }

  /** Mailboxes with tail rows, and their counts. */
  mailboxes(): IterableIterator<[number, TailCounts]> {
    return this.byMailbox.entries();
  }

  /** The writer stored a row (after its INSERT; seqs only grow). */
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

  /** A row left the tail (the writer deleted or merged it, and logged that in `tail_exits`). */
  remove(seq: number): void {
    const e = this.bySeq.get(seq);
    if (e) this.drop(e);
  }

  /**
   * Writers: the next `n` rows of the running merge (`merging` > 0), in key order (mailbox, ID
   * hash, seq), hashing them with `hashId` where this writer has not yet. Empty: nothing is left.
   */
  nextMergeChunk(n: number, hashId: (id: string) => number): TailEntry[] {
    const end = this.mergeEnd;
    if (end === 0) return [];
    if (!this.mergeKeys) {
      const rows: TailEntry[] = [];
      for (const [seq, e] of this.bySeq) {
        if (seq > end) break;
        e.hash ??= hashId(e.id);
        rows.push(e);
      }
      rows.sort((a, b) => a.mailbox - b.mailbox || a.hash! - b.hash! || a.seq - b.seq);
      this.mergeKeys = { end, rows, pos: 0 };
    }
    const m = this.mergeKeys;
    const out: TailEntry[] = [];
    while (m.pos < m.rows.length && out.length < n) {
      const e = m.rows[m.pos++]!;
      if (this.bySeq.get(e.seq) === e) out.push(e);
    }
    return out;
  }

  /** Writers: a merge was recorded (`merge_end`) or finished (`merged_upto`) in this transaction. */
  setMerge(end: number, mergedUpto: number): void {
    this.mergeEnd = end;
    this.mergeKeys = undefined;
    this.mergedUpTo(mergedUpto);
  }

  /** Every row at or below `mergedUpto` is merged or gone: drops them. */
  private mergedUpTo(mergedUpto: number): void {
    if (mergedUpto <= this.mergedUpto) return;
    // bySeq iterates in seq order: stop at the first row above.
    for (const [seq, e] of this.bySeq) {
      if (seq > mergedUpto) break;
      this.drop(e);
    }
    this.mergedUpto = mergedUpto;
    this.lastSeqSeen = Math.max(this.lastSeqSeen, mergedUpto);
  }

  private drop(e: TailEntry): void {
    this.bySeq.delete(e.seq);
    const t = this.byMailbox.get(e.mailbox);
    if (!t) return;
    if (t.ids.get(e.id) === e) t.ids.delete(e.id);
    t.queued -= 1;
    t.unsolicited -= e.unsolicited;
    t.unsolicitedBytes -= e.unsolicited * e.size;
    if (t.ids.size === 0) this.byMailbox.delete(e.mailbox);
  }
}
