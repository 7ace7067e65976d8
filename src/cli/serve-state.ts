/**
 * The running `spl serve` of a home: a pid file (for `--stop`) and a state file saying where it
 * listens (for `spl identity` and `spl pair invite`). Both are removed on a clean exit; a stale
 * pair left by a crash is recognised because its process is gone.
 */
import { readFileSync, rmSync, writeFileSync, renameSync } from 'node:fs';
import type { HomePaths } from './home';

export interface ServeState {
  readonly pid: number;
  /** The URL the server is bound to, e.g. http://127.0.0.1:9100. */
  readonly url: string;
  /** The URL advertised to peers for direct delivery (the first --public-url), if any. */
  readonly publicUrl?: string;
  readonly startedAt: number;
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    // EPERM: it exists but belongs to someone else.
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * A live `spl serve` with this pid: guards against a stale pid file whose pid was reused by an
 * unrelated process (we would SIGTERM it). Where /proc exists, the command line must be a serve;
 * a zombie's is empty, so it counts as gone.
 */
export function isServeProcess(pid: number): boolean {
  if (!isAlive(pid)) return false;
  let cmdline: string;
  try {
    cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
  } catch {
    return true; // no /proc (macOS): trust the pid file
  }
  return cmdline.split('\0').includes('serve');
}

function writeAtomic(path: string, text: string): void {
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, text, { mode: 0o600 });
  renameSync(tmp, path);
}

export function writeServeState(paths: HomePaths, state: ServeState): void {
  writeAtomic(paths.stateFile, `${JSON.stringify(state)}\n`);
  writeAtomic(paths.pidFile, `${state.pid}\n`);
}

/** Removes the files, but only if they still describe this process. */
export function clearServeState(paths: HomePaths, pid: number): void {
  if (readPid(paths) === pid) {
    rmSync(paths.pidFile, { force: true });
    rmSync(paths.stateFile, { force: true });
  }
}

export function readPid(paths: HomePaths): number | undefined {
  try {
    const n = Number(readFileSync(paths.pidFile, 'utf8').trim());
    return Number.isSafeInteger(n) && n > 0 ? n : undefined;
  } catch {
    return undefined;
  }
}

function parseState(text: string): ServeState | undefined {
  try {
    const v: unknown = JSON.parse(text);
    if (typeof v !== 'object' || v === null) return undefined;
    const o = v as Record<string, unknown>;
    if (typeof o.pid !== 'number' || typeof o.url !== 'string' || typeof o.startedAt !== 'number') return undefined;
    return { pid: o.pid, url: o.url, ...(typeof o.publicUrl === 'string' ? { publicUrl: o.publicUrl } : {}), startedAt: o.startedAt };
  } catch {
    return undefined;
  }
}

/** The live server of this home, or undefined when none runs (stale files are ignored). */
export function runningServer(paths: HomePaths): ServeState | undefined {
  let text: string;
  try {
    text = readFileSync(paths.stateFile, 'utf8');
  } catch {
    return undefined;
  }
  const state = parseState(text);
  return state && isServeProcess(state.pid) ? state : undefined;
}
