/**
 * Writer thread of SqliteMailboxStore: owns its own connection to the database file and runs each
 * batch it is sent as one transaction, so fsync and statement execution stay off the event loop.
 * Protocol: `{type: 'batch', ops}` → `BatchResult`; `{type: 'close'}` closes the connection and
 * ends the thread. Batches are answered in order.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { createWriter, openSqlite, type WriteOp } from './sqlite-writer';

export type WriterMessage =
  | { readonly type: 'batch'; readonly ops: readonly WriteOp[] }
  /** The checkpointer is gone: let the writer checkpoint on its own again (SQLite's default). */
  | { readonly type: 'autocheckpoint' }
  | { readonly type: 'close' };

export type WorkerRole = 'writer' | 'checkpointer';

/** How often the checkpointer moves committed WAL frames into the database file. */
const CHECKPOINT_EVERY_MS = 2000;

const port = parentPort;
if (!port) throw new Error('sqlite-writer-worker must run in a worker thread');
const { path, role } = workerData as { path: string; role: WorkerRole };
const db = openSqlite(path);

if (role === 'checkpointer') {
  // PASSIVE checkpoints copy committed frames without blocking the writer; done here, they keep
  // checkpoint I/O (and its fsync of the database file) out of the writer's commit path.
  const checkpoint = (): void => {
    try {
      db.pragma('wal_checkpoint(PASSIVE)');
    } catch {
      // busy (e.g. another checkpoint): the next tick tries again
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
  const writer = createWriter(db);
  port.on('message', (m: WriterMessage) => {
    if (m.type === 'batch') {
      port.postMessage(writer.runBatch(m.ops));
    } else if (m.type === 'autocheckpoint') {
      db.pragma('wal_autocheckpoint = 1000');
    } else {
      db.close();
      port.close();
    }
  });
}
