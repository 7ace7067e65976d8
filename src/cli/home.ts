/**
 * The per-user data directory: `--home`, else `SPL_HOME`, else `$XDG_DATA_HOME/syncropel`, else
 * `~/.syncropel`. Everything a peer keeps lives in it, so two homes are two independent peers.
 */
import { chmodSync, mkdirSync, statSync } from 'node:fs';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';

export interface HomePaths {
  readonly dir: string;
  /** The SQLite peer store (identity, records, config, outbox). */
  readonly db: string;
  /** PID of the running `spl serve`, present while it serves. */
  readonly pidFile: string;
  /** What the running `spl serve` listens on (ServeState JSON). */
  readonly stateFile: string;
  /** stdout/stderr of a `spl serve --daemon`. */
  readonly logFile: string;
}

export function resolveHome(flag: string | undefined, env: NodeJS.ProcessEnv): string {
  if (flag !== undefined && flag.trim() !== '') return resolve(flag);
  if (env.SPL_HOME) return resolve(env.SPL_HOME);
  if (env.XDG_DATA_HOME) return join(resolve(env.XDG_DATA_HOME), 'syncropel');
  return join(env.HOME ?? homedir(), '.syncropel');
}

export function homePaths(dir: string): HomePaths {
  return {
    dir,
    db: join(dir, 'peer.sqlite'),
    pidFile: join(dir, 'serve.pid'),
    stateFile: join(dir, 'serve.json'),
    logFile: join(dir, 'serve.log'),
  };
}

/**
 * Creates the home directory owner-only (it holds the secret key), and tightens one that already
 * exists with looser permissions, saying so through `warn`: mkdir's mode does nothing to an
 * existing directory, and a home made by hand or by another tool is often 0755.
 */
export function ensureHome(dir: string, warn?: (message: string) => void): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const mode = statSync(dir).mode & 0o777;
  if ((mode & 0o077) !== 0) {
    chmodSync(dir, 0o700);
    warn?.(
      `warning: ${dir} was readable by others (mode ${mode.toString(8).padStart(4, '0')}); it holds your secret key, so it is now 0700\n`,
    );
  }
}
