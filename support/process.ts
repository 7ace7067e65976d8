/**
 * The one way tests and benchmarks run a program: spawn it, wait for a line it prints (its
 * "listening" line) as a condition with a deadline, keep what it printed for failure messages, and
 * stop it: SIGTERM, then SIGKILL if it has not exited within a bound. A child left running when
 * this process exits (a test timeout, Ctrl-C) is killed.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { ROOT } from './paths';

export interface ProcessSpec {
  /** What the messages call it, e.g. `spl-relay`. */
  readonly name: string;
  /** The arguments to `command` (for node: the script first). */
  readonly args: readonly string[];
  /** Default: this node binary. */
  readonly command?: string;
  readonly cwd?: string;
  readonly env?: NodeJS.ProcessEnv;
  /** Written to stdin, which is then closed; without it stdin is empty. */
  readonly input?: string;
  /** Called with each stdout line as it arrives (e.g. to parse JSON logs). */
  readonly onLine?: (line: string) => void;
}

export interface RunningProcess {
  readonly name: string;
  readonly proc: ChildProcess;
  /** stdout, line by line, so far. */
  readonly lines: readonly string[];
  /** stdout so far, as printed. */
  stdout(): string;
  /** stderr so far. */
  stderr(): string;
  /** What it printed so far (stdout lines, then stderr), for a failure message. */
  output(): string;
  /** Resolves with the exit code (null when ended by a signal) once it has exited. */
  readonly exited: Promise<number | null>;
  /** Resolves once it has exited and its stdout and stderr have ended (all output is in). */
  readonly closed: Promise<number | null>;
  readonly running: boolean;
  /**
   * Resolves with the first stdout line `match` accepts (already printed or still to come);
   * rejects if it exits first or after `timeoutMs`, quoting its output.
   */
  waitForLine(match: RegExp | ((line: string) => boolean), timeoutMs?: number): Promise<string>;
  /** SIGTERM; SIGKILL if still running after `graceMs`. Resolves the exit code. */
  stop(graceMs?: number): Promise<number | null>;
  /** SIGKILL (a crash) and wait for the exit. */
  kill(): Promise<void>;
}

const DEFAULT_WAIT_MS = 20_000;
// Longer than the relay's own shutdown grace (10 s, src/relay/server.ts): a graceful stop is never
// cut short by the helper, only a hung one.
const DEFAULT_GRACE_MS = 20_000;

export function spawnProcess(spec: ProcessSpec): RunningProcess {
  const proc = spawn(spec.command ?? process.execPath, [...spec.args], {
    cwd: spec.cwd ?? ROOT,
    env: spec.env ?? process.env,
    stdio: [spec.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
  });
  if (spec.input !== undefined) proc.stdin?.end(spec.input);
  const lines: string[] = [];
  let stdout = '';
  let stderr = '';
  const listeners = new Set<(line: string) => void>();
  proc.stdout!.on('data', (c: Buffer) => (stdout += c.toString()));
  proc.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
  createInterface({ input: proc.stdout! }).on('line', (line) => {
    lines.push(line);
    spec.onLine?.(line);
    for (const l of [...listeners]) l(line);
  });
  const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
  // After 'exit' the pipes may still hold output; 'close' comes once they have ended.
  const closed = new Promise<number | null>((resolve) => proc.once('close', (code) => resolve(code)));
  const running = () => proc.exitCode === null && proc.signalCode === null;
  const reap = (): void => {
    if (running()) proc.kill('SIGKILL');
  };
  process.once('exit', reap);
  void exited.then(() => process.off('exit', reap));

  const output = () => [...lines, stderr.trimEnd()].filter(Boolean).join('\n');

  const waitForLine = (match: RegExp | ((line: string) => boolean), timeoutMs = DEFAULT_WAIT_MS): Promise<string> => {
    const accepts = typeof match === 'function' ? match : (line: string) => match.test(line);
    const seen = lines.find(accepts);
    if (seen !== undefined) return Promise.resolve(seen);
    const what = typeof match === 'function' ? 'the line it waits for' : `a line matching ${String(match)}`;
    return new Promise((resolve, reject) => {
      const done = (settle: () => void) => {
        clearTimeout(timer);
        listeners.delete(listener);
        settle();
      };
      const listener = (line: string) => {
        if (accepts(line)) done(() => resolve(line));
      };
      const timer = setTimeout(
        () => done(() => reject(new Error(`${spec.name} did not print ${what} within ${timeoutMs} ms; output:\n${output()}`))),
        timeoutMs,
      );
      listeners.add(listener);
      // On exit, its last words (often the reason) may still be in the pipes: quote them once in.
      void closed.then((code) =>
        done(() => reject(new Error(`${spec.name} exited (${code}) before printing ${what}; output:\n${output()}`))),
      );
    });
  };

  const stop = async (graceMs = DEFAULT_GRACE_MS): Promise<number | null> => {
    if (running()) proc.kill('SIGTERM');
    let timer: ReturnType<typeof setTimeout> | undefined;
    const bound = new Promise<void>((resolve) => {
      timer = setTimeout(() => {
        if (running()) proc.kill('SIGKILL');
        resolve();
      }, graceMs);
    });
    try {
      await Promise.race([exited, bound]);
      return await exited;
    } finally {
      clearTimeout(timer);
    }
  };

  return {
    name: spec.name,
    proc,
    lines,
    stdout: () => stdout,
    stderr: () => stderr,
    output,
    exited,
    closed,
    get running() {
      return running();
    },
    waitForLine,
    stop,
    kill: async () => {
      if (running()) proc.kill('SIGKILL');
      await exited;
    },
  };
}

/**
 * Spawns `spec` and resolves once a stdout line satisfies `ready`, with that line; if it exits
 * first or `timeoutMs` passes, it is killed and the promise rejects with its output.
 */
export async function startProcess(
  spec: ProcessSpec,
  ready: RegExp | ((line: string) => boolean),
  timeoutMs = DEFAULT_WAIT_MS,
): Promise<{ process: RunningProcess; line: string }> {
  const running = spawnProcess(spec);
  try {
    return { process: running, line: await running.waitForLine(ready, timeoutMs) };
  } catch (e) {
    await running.kill();
    throw e;
  }
}

export interface Finished {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs `spec` to its exit; killed and rejected (with its output) after `timeoutMs`. */
export async function runToExit(spec: ProcessSpec, timeoutMs = 30_000): Promise<Finished> {
  const running = spawnProcess(spec);
  let timer: ReturnType<typeof setTimeout> | undefined;
  const overdue = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      void running.kill();
      reject(new Error(`${spec.name} did not exit within ${timeoutMs} ms; output:\n${running.output()}`));
    }, timeoutMs);
  });
  try {
    const code = await Promise.race([running.closed, overdue]);
    return { code, stdout: running.stdout(), stderr: running.stderr() };
  } finally {
    clearTimeout(timer);
  }
}
