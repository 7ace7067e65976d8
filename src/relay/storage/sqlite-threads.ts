/**
 * Where SqliteMailboxStore's batches run: a writer thread for database files (fsync and statement
 * execution off the event loop), or inline on the main connection for `:memory:` (an in-memory
 * database cannot be shared between connections). A second thread, the checkpointer, moves the
 * WAL into the database file and runs the start-up `PRAGMA quick_check` (sqlite-writer-worker.ts).
 */
import type Database from 'better-sqlite3';
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { BatchBackend, BatchResult } from './group-commit';
import { createWriter, type StagingOptions, type StorageLimits, type WriteOp } from './sqlite-writer';
import type { IntegrityReport, WorkerData, WorkerRole, WriterMessage } from './sqlite-writer-worker';

export function inlineBackend(db: Database.Database, storage: StorageLimits, staging: StagingOptions): BatchBackend<WriteOp> {
  const writer = createWriter(db, ':memory:', storage, staging);
  return {
    run: (ops) => {
      const result = writer.runBatch(ops);
      writer.mergeStep();
      return Promise.resolve(result);
    },
    busy: () => undefined,
    close: () => Promise.resolve(),
  };
}

/**
 * A thread of the store. Compiled (dist/node, scripts/build-node.js) the worker is a JavaScript file
 * beside this chunk. From source, worker threads do not inherit the tsx loader the relay runs
 * under, so the thread registers tsx itself before importing the (TypeScript) worker module.
 */
function startWorker(data: WorkerData): Worker {
  if (import.meta.url.endsWith('.js')) {
    const compiled = new Worker(new URL('./sqlite-writer-worker.js', import.meta.url), { workerData: data });
    compiled.unref();
    return compiled;
  }
  const tsxApi = pathToFileURL(
    createRequire(import.meta.url)
      .resolve('tsx/esm/api')
      .replace(/\.cjs$/, '.mjs'),
  ).href;
  const entry = new URL('./sqlite-writer-worker.ts', import.meta.url).href;
  const boot = `import(${JSON.stringify(tsxApi)}).then((m) => { m.register(); return import(${JSON.stringify(entry)}); });`;
  const worker = new Worker(boot, { eval: true, workerData: data });
  worker.unref();
  return worker;
}

export interface WorkerBackendOptions {
  readonly storage: StorageLimits;
  readonly staging: StagingOptions;
  /** Run `PRAGMA quick_check` in the checkpointer before its first checkpoint; the report goes to `onIntegrity`. */
  readonly quickCheck: boolean;
  readonly onIntegrity: (report: IntegrityReport) => void;
}

/**
 * Two threads: the writer runs the batches; the checkpointer moves the WAL into the database file
 * beside it (measured: checkpoints inside the writer's commits cost ~30% of deposit throughput and
 * pushed p99 past 25 ms). Should the checkpointer die, the writer checkpoints by itself again.
 */
export function workerBackend(path: string, options: WorkerBackendOptions): BatchBackend<WriteOp> {
  const role = (r: WorkerRole): WorkerData => ({
    path,
    role: r,
    storage: options.storage,
    staging: options.staging,
    quickCheck: r === 'checkpointer' && options.quickCheck,
  });
  const worker = startWorker(role('writer'));
  const checkpointer = startWorker(role('checkpointer'));
  let closing = false;
  const checkpointerExited = new Promise<void>((resolve) => checkpointer.once('exit', () => resolve()));
  let checked = !options.quickCheck;
  const report = (r: IntegrityReport) => {
    if (checked) return;
    checked = true;
    checkpointer.unref();
    options.onIntegrity(r);
  };
  const checkpointerGone = (why: string) => {
    if (closing) return;
    // A thread that cannot even open the file has checked nothing: that is a failed check.
    report({ type: 'integrity', ok: false, message: `could not be checked (the checkpointer stopped: ${why})` });
    console.warn(`spl-relay: the WAL checkpointer stopped (${why}); the writer checkpoints by itself`);
    if (!failure) worker.postMessage({ type: 'autocheckpoint' } satisfies WriterMessage);
  };
  checkpointer.on('message', (m: IntegrityReport) => report(m));
  checkpointer.on('error', (e) => checkpointerGone(e.message));
  checkpointer.on('exit', (code) => checkpointerGone(`exit ${code}`));
  // The check keeps the process alive until it has answered.
  if (options.quickCheck) checkpointer.ref();

  let waiting: { resolve: (r: BatchResult) => void; reject: (e: Error) => void } | undefined;
  let failure: Error | undefined;
  const exited = new Promise<void>((resolve) => worker.once('exit', () => resolve()));
  const fail = (e: Error) => {
    failure ??= e;
    waiting?.reject(e);
    waiting = undefined;
  };
  worker.on('message', (r: BatchResult) => {
    const w = waiting;
    waiting = undefined;
    w?.resolve(r);
  });
  worker.on('error', (e) => fail(new Error(`sqlite writer failed: ${e.message}`)));
  worker.on('exit', (code) => fail(new Error(`sqlite writer exited (${code})`)));
  const send = (m: WriterMessage) => worker.postMessage(m);

  return {
    run(ops) {
      if (failure) return Promise.reject(failure);
      return new Promise<BatchResult>((resolve, reject) => {
        waiting = { resolve, reject };
        send({ type: 'batch', ops });
      });
    },
    busy(busy) {
      if (busy) worker.ref();
      else worker.unref();
    },
    async close() {
      closing = true;
      // Both threads keep the process alive until they are gone: an unreferenced thread would
      // let the event loop drain (and the process end, exit code 0) while close() awaits it.
      worker.ref();
      checkpointer.ref();
      if (!failure) send({ type: 'close' });
      checkpointer.postMessage({ type: 'close' } satisfies WriterMessage);
      await Promise.all([exited, checkpointerExited]);
    },
  };
}
