/**
 * Settings of this home that are not peer state (so not config records, PROTOCOL.md §8): the app
 * URL invite links open. Kept in `<home>/config.json`:
 *   { "app_url": <set by `spl config app-url set`>, "paired_app_url": <learnt by `spl pair accept`> }
 * The file is read as untrusted input: a value that is not an http(s) URL is ignored.
 */
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ensureHome, type HomePaths } from './home';

export interface HomeConfig {
  /** Set by the person (`spl config app-url set`). */
  readonly appUrl?: string | undefined;
  /** The app (origin and path) of the last invite link this home accepted. */
  readonly pairedAppUrl?: string | undefined;
}

export const homeConfigFile = (paths: HomePaths): string => join(paths.dir, 'config.json');

const httpUrl = (v: unknown): string | undefined => {
  if (typeof v !== 'string') return undefined;
  try {
    const u = new URL(v);
    return (u.protocol === 'https:' || u.protocol === 'http:') && !u.username && !u.password ? u.href : undefined;
  } catch {
    return undefined;
  }
};

export function readHomeConfig(paths: HomePaths): HomeConfig {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(homeConfigFile(paths), 'utf8'));
  } catch {
    return {}; // absent or unreadable: nothing configured
  }
  if (typeof raw !== 'object' || raw === null) return {};
  const o = raw as Record<string, unknown>;
  const appUrl = httpUrl(o.app_url);
  const pairedAppUrl = httpUrl(o.paired_app_url);
  return { ...(appUrl ? { appUrl } : {}), ...(pairedAppUrl ? { pairedAppUrl } : {}) };
}

/** Replaces the file atomically (write, then rename) with `change` applied; `undefined` removes a key. */
export function updateHomeConfig(paths: HomePaths, change: { appUrl?: string | undefined; pairedAppUrl?: string | undefined }): HomeConfig {
  const next: HomeConfig = { ...readHomeConfig(paths), ...change };
  ensureHome(paths.dir);
  const file = homeConfigFile(paths);
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, `${JSON.stringify({ app_url: next.appUrl, paired_app_url: next.pairedAppUrl }, null, 2)}\n`, { mode: 0o600 });
  renameSync(tmp, file);
  return readHomeConfig(paths);
}

/** Where invite links point, and why: the first of flag/env, configured, learnt from pairing. */
export type AppUrlSource = 'flag' | 'env' | 'config' | 'paired';

export function resolveAppUrl(paths: HomePaths, given: { flag?: string; env?: string }): { url: string; source: AppUrlSource } | undefined {
  if (given.flag) return { url: given.flag, source: 'flag' };
  if (given.env) return { url: given.env, source: 'env' };
  const cfg = readHomeConfig(paths);
  if (cfg.appUrl) return { url: cfg.appUrl, source: 'config' };
  if (cfg.pairedAppUrl) return { url: cfg.pairedAppUrl, source: 'paired' };
  return undefined;
}

/** The app an accepted link came from (origin and path, no query or fragment); none for a bare payload. */
export function appUrlOfLink(link: string): string | undefined {
  const at = link.indexOf('#pair=');
  if (at < 0) return undefined;
  const url = httpUrl(link.slice(0, at).trim());
  if (!url) return undefined;
  const u = new URL(url);
  u.search = '';
  u.hash = '';
  return u.href;
}
