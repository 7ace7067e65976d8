/**
 * Writer thread of SqliteMailboxStore: owns its own connection to the database file and runs each
 * batch it is sent as one transaction, so fsync and statement execution stay off the event loop.
 * Protocol: `{type: 'batch', ops}` → `BatchResult`; `{type: 'close'}` closes the connection and
 * ends the thread. Batches are answered in order.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { createWriter, openSqlite, type WriteOp } from './sqlite-writer';

export type WriterMessage = { readonly type: 'batch'; readonly ops: readonly WriteOp[] } | { readonly type: 'close' };

const port = parentPort;
if (!port) throw new Error('sqlite-writer-worker must run in a worker thread');
const db = openSqlite((workerData as { path: string }).path);
const writer = createWriter(db);

port.on('message', (m: WriterMessage) => {
  if (m.type === 'batch') {
    port.postMessage(writer.runBatch(m.ops));
    return;
  }
  db.close();
  port.close();
});
