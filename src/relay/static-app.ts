/**
 * `spl-relay --app <dir> [--app-path /syncropel/]`: serves the built PWA (npm run build → dist/app)
 * from the relay's own origin, so one process behind one TLS proxy is a complete deployment.
 *
 * Attack surface: the directory is read ONCE at startup into memory (regular files only; symlinks
 * and dotfiles skipped) and requests are answered by exact lookup of the decoded path in that map.
 * No request ever reaches the filesystem, so `..`, encoded or not, cannot escape the directory: it
 * is simply not a key. A rebuilt app needs a relay restart (the service worker then updates).
 */
import { createHash } from 'node:crypto';
import { lstatSync, readdirSync, readFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { extname, join } from 'node:path';

const TYPES: Readonly<Record<string, string>> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.map': 'application/json',
  '.webmanifest': 'application/manifest+json',
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
  '.svg': 'image/svg+xml',
  '.ico': 'image/x-icon',
  '.webp': 'image/webp',
  '.woff2': 'font/woff2',
  '.wasm': 'application/wasm',
  '.txt': 'text/plain; charset=utf-8',
};

/** A built app is a few MB; refuse to pin a wrong directory (say, `/`) in memory. */
export const MAX_APP_BYTES = 64 * 1024 * 1024;
const MAX_APP_FILES = 2000;

interface AppFile {
  readonly body: Buffer;
  readonly type: string;
  readonly etag: string;
  readonly cacheControl: string;
}

export interface StaticApp {
  /** The URL path the app lives under, with leading and trailing slash (e.g. `/syncropel/`). */
  readonly path: string;
  readonly files: number;
  readonly bytes: number;
  /** Answers `req` if its path is the app's; false (nothing written) otherwise. */
  handle(req: IncomingMessage, res: ServerResponse): boolean;
}

export class StaticAppError extends Error {
  override readonly name = 'StaticAppError';
}

/** `--app-path`: `/`, or `/a/b/` of URL-safe segments (leading and trailing slash added). */
export function normalizeAppPath(input: string): string {
  const trimmed = input.trim();
  const path = `/${trimmed.replace(/^\/+|\/+$/g, '')}/`.replace(/^\/\/$/, '/');
  const segments = path.split('/').filter(Boolean);
  if (segments.some((s) => s === '.' || s === '..' || !/^[A-Za-z0-9._~-]+$/.test(s))) {
    throw new StaticAppError(`--app-path must be / or a path of letters, digits and . _ ~ - segments (e.g. /syncropel/), not "${input}"`);
  }
  return path;
}

/**
 * Hashed build output (vite's `assets/name-HASH.ext`) never changes under its name: cache it for a
 * year. Everything else, index.html and sw.js above all, must be revalidated, or a phone keeps an
 * old shell and an old worker.
 */
const cacheControlFor = (rel: string): string => (rel.startsWith('assets/') ? 'public, max-age=31536000, immutable' : 'no-cache');

function readTree(root: string): Map<string, AppFile> {
  const files = new Map<string, AppFile>();
  let bytes = 0;
  const walk = (dir: string, prefix: string): void => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      if (entry.name.startsWith('.')) continue;
      const full = join(dir, entry.name);
      const rel = prefix + entry.name;
      if (entry.isDirectory()) walk(full, `${rel}/`);
      else if (entry.isFile() && lstatSync(full).isFile()) {
        const body = readFileSync(full);
        bytes += body.length;
        if (bytes > MAX_APP_BYTES || files.size >= MAX_APP_FILES) {
          throw new StaticAppError(
            `--app ${root} holds more than ${MAX_APP_FILES} files or ${MAX_APP_BYTES / 1048576} MiB: is it the built app (dist/app)?`,
          );
        }
        files.set(rel, {
          body,
          type: TYPES[extname(entry.name).toLowerCase()] ?? 'application/octet-stream',
          etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 27)}"`,
          cacheControl: cacheControlFor(rel),
        });
      }
      // Symlinks, sockets, devices: never served.
    }
  };
  walk(root, '');
  return files;
}

export function loadStaticApp(dir: string, appPath = '/'): StaticApp {
  const path = normalizeAppPath(appPath);
  let files: Map<string, AppFile>;
  try {
    if (!lstatSync(dir).isDirectory()) throw new StaticAppError(`--app ${dir} is not a directory`);
    files = readTree(dir);
  } catch (e) {
    if (e instanceof StaticAppError) throw e;
    throw new StaticAppError(`--app ${dir}: ${e instanceof Error ? e.message : String(e)}`);
  }
  if (!files.has('index.html'))
    throw new StaticAppError(`--app ${dir} has no index.html: build the app first (npm run build writes dist/app)`);
  let bytes = 0;
  for (const f of files.values()) bytes += f.body.length;

  const handle = (req: IncomingMessage, res: ServerResponse): boolean => {
    const target = req.url ?? '/';
    const q = target.indexOf('?');
    const rawPath = q < 0 ? target : target.slice(0, q);
    // `/syncropel` → `/syncropel/`: relative asset URLs (base './') resolve against the slash.
    if (path !== '/' && rawPath === path.slice(0, -1)) {
      res.writeHead(301, { Location: path + (q < 0 ? '' : target.slice(q)), 'Cache-Control': 'no-cache' }).end();
      return true;
    }
    if (!rawPath.startsWith(path)) return false;
    const method = req.method ?? 'GET';
    if (method !== 'GET' && method !== 'HEAD') {
      req.resume();
      res.writeHead(405, { Allow: 'GET, HEAD', 'Content-Type': 'text/plain; charset=utf-8' }).end('method not allowed\n');
      return true;
    }
    let rel: string;
    try {
      rel = decodeURIComponent(rawPath.slice(path.length));
    } catch {
      rel = '\0'; // malformed percent-encoding: no such file
    }
    if (rel === '' || rel.endsWith('/')) rel += 'index.html';
    const file = files.get(rel);
    if (!file) {
      res.writeHead(404, { 'Content-Type': 'text/plain; charset=utf-8', 'Cache-Control': 'no-cache' }).end('not found\n');
      return true;
    }
    const headers = {
      'Content-Type': file.type,
      'Cache-Control': file.cacheControl,
      ETag: file.etag,
      'X-Content-Type-Options': 'nosniff',
    };
    if (req.headers['if-none-match'] === file.etag) {
      res.writeHead(304, headers).end();
      return true;
    }
    res.writeHead(200, { ...headers, 'Content-Length': file.body.length });
    res.end(method === 'HEAD' ? undefined : file.body);
    return true;
  };

  return { path, files: files.size, bytes, handle };
}
