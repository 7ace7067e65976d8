/** The relay's VAPID key pair (RFC 8292, PROTOCOL.md §5.2): generated on first start, kept beside the database (mode 0600). */
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import webpush from 'web-push';
import { fromB64u } from '../../core';
import { RelayOptionError } from '../options';

export interface VapidKeys {
  /** b64u of the 65-byte uncompressed P-256 point. */
  readonly publicKey: string;
  /** b64u of the 32-byte private scalar. */
  readonly privateKey: string;
}

function parseKeys(text: string, path: string): VapidKeys {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new RelayOptionError(`the VAPID key file ${path} is not JSON`);
  }
  const o = value as { public_key?: unknown; private_key?: unknown } | null;
  const pub = typeof o?.public_key === 'string' ? fromB64u(o.public_key) : undefined;
  const priv = typeof o?.private_key === 'string' ? fromB64u(o.private_key) : undefined;
  if (!pub || pub.length !== 65 || pub[0] !== 4 || !priv || priv.length !== 32) {
    throw new RelayOptionError(
      `the VAPID key file ${path} must hold {"public_key": b64u(65-byte P-256 point), "private_key": b64u(32 bytes)}`,
    );
  }
  return { publicKey: o!.public_key as string, privateKey: o!.private_key as string };
}

/** Reads the key pair at `path`, creating it on first start; without a path the pair lives as long as the process. */
export function loadVapidKeys(path: string | undefined): VapidKeys {
  if (path === undefined) return webpush.generateVAPIDKeys();
  let text: string | undefined;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT')
      throw new RelayOptionError(`cannot read the VAPID key file ${path}: ${(e as Error).message}`);
  }
  if (text === undefined) {
    const keys = webpush.generateVAPIDKeys();
    mkdirSync(dirname(path), { recursive: true });
    try {
      writeFileSync(path, `${JSON.stringify({ public_key: keys.publicKey, private_key: keys.privateKey })}\n`, { mode: 0o600, flag: 'wx' });
      chmodSync(path, 0o600);
      return keys;
    } catch (e) {
      // Another relay on the same database created it first: use theirs (subscriptions are bound to one key).
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST')
        throw new RelayOptionError(`cannot create the VAPID key file ${path}: ${(e as Error).message}`);
      text = readFileSync(path, 'utf8');
    }
  }
  return parseKeys(text, path);
}

export const defaultVapidKeyPath = (db: string): string | undefined => (db === ':memory:' ? undefined : `${db}.vapid.json`);
