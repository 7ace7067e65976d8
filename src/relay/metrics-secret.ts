/**
 * The key of hashed DID labels (PROTOCOL.md §5 metrics): HMAC-SHA256 with a secret of the relay,
 * so a list of known DIDs cannot be hashed and matched against the labels (the unsalted SHA-256
 * labels used before were reversed from a list of 1,003 DIDs).
 */
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { RelayOptionError } from './options';

const SECRET_BYTES = 32;

/**
 * Reads the secret at `path`, creating it (32 random bytes, hex, mode 0600) on first start.
 * Without a path (an in-memory relay) the secret lives as long as the process.
 */
export function loadMetricsSecret(path: string | undefined): Buffer {
  if (path === undefined) return randomBytes(SECRET_BYTES);
  let text: string | undefined;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT')
      throw new RelayOptionError(`cannot read the metrics secret ${path}: ${(e as Error).message}`);
  }
  if (text === undefined) {
    const secret = randomBytes(SECRET_BYTES);
    mkdirSync(dirname(path), { recursive: true });
    try {
      writeFileSync(path, `${secret.toString('hex')}\n`, { mode: 0o600, flag: 'wx' });
      chmodSync(path, 0o600);
      return secret;
    } catch (e) {
      // Another relay on the same database created it first: use theirs.
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST')
        throw new RelayOptionError(`cannot create the metrics secret ${path}: ${(e as Error).message}`);
      text = readFileSync(path, 'utf8');
    }
  }
  const hex = text.trim();
  if (!/^[0-9a-f]{32,}$/.test(hex) || hex.length % 2 !== 0) {
    throw new RelayOptionError(`the metrics secret ${path} must hold at least 16 bytes as lowercase hex`);
  }
  return Buffer.from(hex, 'hex');
}

/** Where the secret lives by default: beside the database. */
export const defaultSecretPath = (db: string): string | undefined => (db === ':memory:' ? undefined : `${db}.metrics-secret`);
