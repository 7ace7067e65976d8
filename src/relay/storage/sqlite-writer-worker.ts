/**
 * Writer thread of SqliteMailboxStore: owns its own connection to the database file and runs each
 * batch it is sent as one transaction, so fsync and statement execution stay off the event loop.
 * Protocol: `{type: 'batch', ops}` → `BatchResult`; `{type: 'close'}` closes the connection and
 * ends the thread. Batches are answered in order.
 */
import { statSync } from 'node:fs';
import { parentPort, workerData } from 'node:worker_threads';
import { openSqlite } from './sqlite-schema';
import { createWriter, type StagingOptions, type StorageLimits, type WriteOp } from './sqlite-writer';

export type WriterMessage =
  | { readonly type: 'batch'; readonly ops: readonly WriteOp[] }
  /** The checkpointer is gone: let the writer checkpoint on its own again (SQLite's default). */
  | { readonly type: 'autocheckpoint' }
  | { readonly type: 'close' };

export type WorkerRole = 'writer' | 'checkpointer';

export interface WorkerData {
  readonly path: string;
  readonly role: WorkerRole;
  readonly storage: StorageLimits;
  readonly staging: StagingOptions;
  /** Checkpointer only: run `PRAGMA quick_check` first and post an IntegrityReport. */
  readonly quickCheck: boolean;
}

/** The checkpointer's answer to its start-up `PRAGMA quick_check`. */
export type IntegrityReport =
  | { readonly type: 'integrity'; readonly ok: true; readonly ms: number }
  | { readonly type: 'integrity'; readonly ok: false; readonly message: string };

/** WAL size past which the writer checkpoints by itself between batches. */
const WAL_RESTART_BYTES = 16 * 1024 * 1024;

/** How often the checkpointer moves committed WAL frames into the database file. */
const CHECKPOINT_EVERY_MS = 2000;

const port = parentPort;
if (!port) throw new Error('sqlite-writer-worker must run in a worker thread');
const { path, role, storage, staging, quickCheck } = workerData as WorkerData;
const db = openSqlite(path);

const walSize = (): number => {
  try {
    return statSync(`${path}-wal`).size;
  } catch {
    return 0;
  }
};

/**
 * `PRAGMA quick_check` of the whole file (1.1 s at 1,000,000 envelopes, measured): run here, after
 * the relay started serving, instead of on its start path (sqlite-store.ts says what a failure does).
 */
function integrityCheck(): IntegrityReport {
  const started = performance.now();
  try {
    const problems = db.pragma('quick_check', { simple: false }) as { quick_check: string }[];
    if (problems.length === 1 && problems[0]!.quick_check === 'ok')
      return { type: 'integrity', ok: true, ms: Math.round(performance.now() - started) };
    return {
      type: 'integrity',
      ok: false,
      message: `fails PRAGMA quick_check: ${problems
        .slice(0, 5)
        .map((p) => p.quick_check)
        .join('; ')}`,
    };
  } catch (e) {
    return { type: 'integrity', ok: false, message: `is damaged: ${e instanceof Error ? e.message : String(e)}` };
  }
}

if (role === 'checkpointer') {
  if (quickCheck) port.postMessage(integrityCheck());
  // PASSIVE checkpoints copy committed frames without blocking the writer; done here, they keep
  // checkpoint I/O (and its fsync of the database file) out of the writer's commit path.
  // When the WAL has not grown for a whole tick (the relay is idle), a TRUNCATE checkpoint empties
  // the file: a burst must not leave megabytes of WAL beside a small database (§5 "Storage
  // pressure"). It waits at most 100 ms for the writer and otherwise tries again next tick.
  db.pragma('busy_timeout = 100');
  let lastWal = -1;
  const checkpoint = (): void => {
    try {
      const size = walSize();
      if (size > 0 && size === lastWal) db.pragma('wal_checkpoint(TRUNCATE)');
      else db.pragma('wal_checkpoint(PASSIVE)');
      lastWal = walSize();
    } catch {
      // busy (e.g. another checkpoint) or an I/O error: the next tick tries again
    }
  };
  const timer = setInterval(checkpoint, CHECKPOINT_EVERY_MS);
  port.on('message', () => {
    clearInterval(timer);
    checkpoint();
    db.close();
    port.close();
  });
} else {
  db.pragma('wal_autocheckpoint = 0'); // the checkpointer thread does it
  const writer = createWriter(db, path, storage, staging);
  // Merge chunks (sqlite-tail.ts) run one per turn of this thread's event loop, so a batch that
  // arrives meanwhile waits for at most one chunk (a few ms), and an idle writer finishes a merge.
  let mergeScheduled = false;
  const scheduleMerge = (): void => {
    if (mergeScheduled) return;
    mergeScheduled = true;
    setImmediate(() => {
      mergeScheduled = false;
      if (writer.mergeStep()) scheduleMerge();
    });
  };
  port.on('message', (m: WriterMessage) => {
    if (m.type === 'batch') {
      port.postMessage(writer.runBatch(m.ops));
      scheduleMerge();
      // Under sustained writes the checkpointer never catches up with the end of the WAL (the
      // writer appends while it copies), so the WAL never restarts: measured, it grew to 190 MB
      // in 6 s of deposits. Past WAL_RESTART_BYTES the writer checkpoints itself between two
      // batches (mostly frames the checkpointer already copied), and the next commit restarts
      // the WAL at its start (journal_size_limit then truncates it).
      if (walSize() > WAL_RESTART_BYTES) {
        try {
          db.pragma('wal_checkpoint(PASSIVE)');
        } catch {
          // busy: the next batch tries again
        }
      }
    } else if (m.type === 'autocheckpoint') {
      db.pragma('wal_autocheckpoint = 1000');
    } else {
      db.close();
      port.close();
    }
  });
}
