/** `spl serve` in the foreground, `--daemon` (detached, pid + log file in the home), `--stop`. */
import { spawn } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import type { CliContext } from '../context';
import { startDaemon } from '../daemon';
import { CliError, UsageError } from '../errors';
import { splBin } from '../bin-path';
import { ensureHome } from '../home';
import { clearServeState, isServeProcess, readPid, runningServer } from '../serve-state';

const START_TIMEOUT_MS = 20_000;
const STOP_TIMEOUT_MS = 20_000;

export interface ServeOptions {
  readonly port: number;
  readonly host: string;
  readonly publicUrl?: readonly string[];
  readonly longPoll: number;
  readonly daemon?: boolean;
  readonly stop?: boolean;
}

const until = async (cond: () => boolean, timeoutMs: number): Promise<boolean> => {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, 50));
  }
  return true;
};

export async function serveCommand(ctx: CliContext, opts: ServeOptions): Promise<void> {
  if (opts.stop && opts.daemon) throw new UsageError('use either --daemon or --stop, not both');
  if (opts.stop) return stopServe(ctx);
  if (opts.daemon) return startBackground(ctx, opts);
  const log = (msg: string) => ctx.io.out(`${new Date().toISOString()} ${msg}\n`);
  const daemon = await startDaemon({
    paths: ctx.paths,
    host: opts.host,
    port: opts.port,
    longPollSeconds: opts.longPoll,
    ...(opts.publicUrl?.length ? { publicUrls: opts.publicUrl } : {}),
    ...(ctx.appUrl ? { appUrl: ctx.appUrl } : {}),
    log,
  });
  const signal = await new Promise<NodeJS.Signals>((resolve) => {
    process.once('SIGTERM', () => resolve('SIGTERM'));
    process.once('SIGINT', () => resolve('SIGINT'));
  });
  log(`${signal}: shutting down`);
  await daemon.stop();
}

async function startBackground(ctx: CliContext, opts: ServeOptions): Promise<void> {
  const { paths } = ctx;
  const other = runningServer(paths);
  if (other) throw new CliError(`spl serve is already running for ${paths.dir} (pid ${other.pid}, ${other.url})`);
  ensureHome(paths.dir, ctx.io.err);
  const args = [
    splBin(),
    '--home',
    paths.dir,
    ...(ctx.appUrl ? ['--app-url', ctx.appUrl] : []),
    'serve',
    '--port',
    String(opts.port),
    '--host',
    opts.host,
    '--long-poll',
    String(opts.longPoll),
  ];
  for (const u of opts.publicUrl ?? []) args.push('--public-url', u);
  const logFd = openSync(paths.logFile, 'a', 0o600);
  const child = spawn(process.execPath, args, { detached: true, stdio: ['ignore', logFd, logFd], env: ctx.io.env });
  closeSync(logFd);
  let exitCode: number | null | undefined;
  child.once('exit', (code) => (exitCode = code ?? -1));
  const ready = await until(() => exitCode !== undefined || runningServer(paths)?.pid === child.pid, START_TIMEOUT_MS);
  const state = runningServer(paths);
  if (!ready || exitCode !== undefined || !state) {
    if (exitCode === undefined) child.kill('SIGTERM');
    throw new CliError(`spl serve --daemon did not start: ${lastLogLine(paths.logFile) ?? 'no output'} (log: ${paths.logFile})`);
  }
  child.unref();
  ctx.io.out(`spl serve running in the background (pid ${state.pid}) on ${state.url}\n  log: ${paths.logFile}\n`);
}

function lastLogLine(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8').trim().split('\n').at(-1);
  } catch {
    return undefined;
  }
}

async function stopServe(ctx: CliContext): Promise<void> {
  const { paths } = ctx;
  const pid = readPid(paths);
  if (pid === undefined || !isServeProcess(pid)) {
    if (pid !== undefined) clearServeState(paths, pid); // left by a crash
    ctx.io.out(`spl serve is not running for ${paths.dir}\n`);
    return;
  }
  process.kill(pid, 'SIGTERM');
  // The server removes its pid file as its very last step; a reaped process is gone too.
  const gone = await until(() => !isServeProcess(pid) || readPid(paths) !== pid, STOP_TIMEOUT_MS);
  if (!gone) throw new CliError(`spl serve (pid ${pid}) did not stop within ${STOP_TIMEOUT_MS / 1000} s`);
  ctx.io.out(`stopped spl serve (pid ${pid})\n`);
}
