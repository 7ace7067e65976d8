/**
 * A throwaway PostgreSQL cluster for tests: `initdb` in a temp directory, `pg_ctl start` on a free
 * loopback port (its Unix socket inside that directory), torn down by `destroy()` — and, should
 * the test process die first, by an exit hook. Nothing relies on a system service.
 *
 * PostgreSQL refuses to run as root: as root, the binaries run as the `postgres` user through
 * `runuser` (the directory is handed to that user). Default settings (fsync on, synchronous
 * commit): the durability tests depend on them.
 */
import { freePort } from './ports';
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';

export interface PostgresCluster {
  /** `postgres://…@127.0.0.1:port/relay` */
  readonly url: string;
  readonly port: number;
  readonly dataDir: string;
  /** `pg_ctl stop -m immediate`: a crash, no shutdown checkpoint. */
  stopImmediate(): void;
  /** `pg_ctl start` again on the same port and data. */
  start(): void;
  /** A fresh database on this cluster, its URL. */
  createDatabase(name: string): Promise<string>;
  /** Stops the server and deletes its directory. Idempotent. */
  destroy(): void;
}

/** The directory holding initdb/pg_ctl: PATH first, else the newest /usr/lib/postgresql/<ver>/bin. */
export function findPostgresBin(): string {
  const fromPath = spawnSync('sh', ['-c', 'command -v pg_ctl'], { encoding: 'utf8' }).stdout.trim();
  if (fromPath && existsSync(join(fromPath, '..', 'initdb'))) return join(fromPath, '..');
  const base = '/usr/lib/postgresql';
  const versions = existsSync(base)
    ? readdirSync(base)
        .filter((v) => /^\d+$/.test(v))
        .sort((a, b) => Number(b) - Number(a))
    : [];
  for (const v of versions) if (existsSync(join(base, v, 'bin', 'pg_ctl'))) return join(base, v, 'bin');
  throw new Error('PostgreSQL binaries (initdb, pg_ctl) not found: install the Debian package "postgresql" (.ci/run does)');
}

const asRoot = process.getuid?.() === 0;

/** Runs a PostgreSQL binary as a user it accepts (not root). */
function runPg(bin: string, args: readonly string[], timeoutMs = 60_000): void {
  const [cmd, argv] = asRoot ? ['runuser', ['-u', 'postgres', '--', bin, ...args]] : [bin, [...args]];
  execFileSync(cmd, argv, { stdio: ['ignore', 'pipe', 'pipe'], timeout: timeoutMs });
}

export async function startPostgres(): Promise<PostgresCluster> {
  const bin = findPostgresBin();
  const dir = mkdtempSync(join(tmpdir(), 'relay-pg-'));
  const dataDir = join(dir, 'data');
  if (asRoot) {
    const uid = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim());
    const gid = Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).trim());
    chownSync(dir, uid, gid);
  }
  chmodSync(dir, 0o700);
  // --no-sync: only initdb's own final flush of the template files is skipped; the server runs
  // with fsync on.
  runPg(join(bin, 'initdb'), ['-D', dataDir, '-U', 'postgres', '--auth=trust', '--no-sync', '-E', 'UTF8', '--locale=C']);
  const port = await freePort();
  const logFile = join(dir, 'server.log');
  const startArgs = [
    '-D',
    dataDir,
    '-l',
    logFile,
    '-w',
    '-t',
    '60',
    '-o',
    `-c listen_addresses=127.0.0.1 -c port=${port} -c unix_socket_directories=${dir} -c max_connections=200`,
    'start',
  ];
  const start = () => runPg(join(bin, 'pg_ctl'), startArgs);
  start();
  let destroyed = false;
  const stopImmediate = () => {
    try {
      runPg(join(bin, 'pg_ctl'), ['-D', dataDir, '-m', 'immediate', '-w', 'stop']);
    } catch {
      // already stopped
    }
  };
  const destroy = () => {
    if (destroyed) return;
    destroyed = true;
    process.off('exit', destroy);
    stopImmediate();
    rmSync(dir, { recursive: true, force: true });
  };
  process.once('exit', destroy);

  const urlFor = (db: string) => `postgres://postgres@127.0.0.1:${port}/${db}`;
  const createDatabase = async (name: string): Promise<string> => {
    const client = new pg.Client({ connectionString: urlFor('postgres') });
    await client.connect();
    try {
      await client.query(`CREATE DATABASE ${client.escapeIdentifier(name)}`);
    } finally {
      await client.end();
    }
    return urlFor(name);
  };
  try {
    await createDatabase('relay');
  } catch (e) {
    destroy();
    throw e;
  }
  return { url: urlFor('relay'), port, dataDir, stopImmediate, start, createDatabase, destroy };
}
