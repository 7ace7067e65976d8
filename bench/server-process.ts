/**
 * Servers the relay benchmarks spawn: a process whose stdout goes to a file (see spawnServer), and
 * the relay's arguments they share. Its own module because bench/relay.ts runs its benchmark when
 * imported.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

/** `spl-relay` on a loopback ephemeral port over `db`, without rate limits or a practical cap. */
export const relayArgs = (db: string): string[] => [
  join(ROOT, 'bin', 'spl-relay.js'),
  '--host',
  '127.0.0.1',
  '--port',
  '0',
  '--db',
  db,
  '--no-rate-limit',
  '--cap',
  '10000000',
];

export interface Server {
  url: string;
  proc: ChildProcess;
  stop(): Promise<void>;
}

/**
 * Spawns a server whose stdout (the listening line, then one log line per request) goes to a file,
 * not a pipe: the load generator in this process must not be charged for reading the server's logs.
 * The file is polled for the listening line.
 */
export async function spawnServer(args: string[]): Promise<Server> {
  const logDir = mkdtempSync(join(tmpdir(), 'relay-bench-log-'));
  const logPath = join(logDir, 'stdout.log');
  const out = openSync(logPath, 'w');
  // BENCH_NODE_ARGS, e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof": profiles every server this run spawns.
  const nodeArgs = (process.env.BENCH_NODE_ARGS ?? '').split(' ').filter(Boolean);
  const proc = spawn(process.execPath, [...nodeArgs, ...args], { cwd: ROOT, stdio: ['ignore', out, 'inherit'] });
  closeSync(out); // the child holds its own descriptor
  let exited: number | null | undefined;
  proc.once('exit', (code) => (exited = code));
  const cleanup = () => rmSync(logDir, { recursive: true, force: true });
  for (;;) {
    if (exited !== undefined) {
      cleanup();
      throw new Error(`server exited early (${exited})`);
    }
    const line = readFileSync(logPath, 'utf8')
      .split('\n')
      .find((l) => l.includes('"listening"'));
    if (line) {
      const { url } = JSON.parse(line) as { url: string };
      return {
        url,
        proc,
        stop: () =>
          new Promise<void>((done) => {
            const finish = () => {
              cleanup();
              done();
            };
            if (exited !== undefined) return finish();
            proc.once('exit', finish);
            proc.kill('SIGTERM');
          }),
      };
    }
    // Often: bench:scale times spawn → first 202, and a read of a one-line file costs nothing.
    await new Promise((r) => setTimeout(r, 5));
  }
}

let ticksPerSecond: number | undefined;

/** utime + stime of a /proc stat line, in clock ticks (fields 14 and 15; the name may hold spaces). */
const statTicks = (path: string): number => {
  const stat = readFileSync(path, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(fields[11]) + Number(fields[12]);
};

/**
 * CPU seconds process `pid` has used so far, all its threads and its main thread alone (Linux
 * /proc; undefined elsewhere). The benchmarks report them per round, so a figure says what bound
 * it: a load generator at 100% of its one thread, or a server thread at 100%, or neither (latency).
 */
export function processCpu(pid: number): { total: number; main: number } | undefined {
  try {
    ticksPerSecond ??= Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());
    return { total: statTicks(`/proc/${pid}/stat`) / ticksPerSecond, main: statTicks(`/proc/${pid}/task/${pid}/stat`) / ticksPerSecond };
  } catch {
    return undefined;
  }
}
