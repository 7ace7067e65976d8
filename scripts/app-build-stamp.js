// The inputs of the app build (`vite build` → dist/app), hashed: `npm start` rebuilds only when
// this stamp differs from the one saved beside the last build (a full build takes ~6 s).
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';

/** Everything the built app depends on (src/browser: the page's and the service worker's wiring). */
export const APP_BUILD_INPUTS = [
  'src/ui',
  'src/sw',
  'src/core',
  'src/sync',
  'src/store',
  'src/browser',
  'public',
  'index.html',
  'vite.config.ts',
  'svelte.config.js',
  'tsconfig.json',
  'package-lock.json',
];

/** The file name of the stamp inside the build directory. */
export const STAMP_FILE = '.build-stamp';

/**
 * Files under `path` (a file or directory), sorted, as paths relative to `root`; missing ones are skipped.
 * @param {string} root
 * @param {string} path
 * @returns {string[]}
 */
function listFiles(root, path) {
  const full = join(root, path);
  let st;
  try {
    st = statSync(full);
  } catch {
    return [];
  }
  if (st.isFile()) return [path];
  if (!st.isDirectory()) return [];
  return readdirSync(full, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => relative(root, join(e.parentPath, e.name)))
    .sort();
}

/**
 * sha256 over each input file's path and content, and over the build-time settings that end up in
 * the app (SPL_DEFAULT_RELAY). Content, not mtimes: a checkout or `touch` does not force a rebuild.
 * @param {string} root
 * @param {{ defaultRelay: string, inputs?: readonly string[] }} settings
 * @returns {string}
 */
export function appBuildStamp(root, settings) {
  const hash = createHash('sha256');
  hash.update(`SPL_DEFAULT_RELAY=${settings.defaultRelay}\n`);
  for (const input of settings.inputs ?? APP_BUILD_INPUTS) {
    for (const file of listFiles(root, input)) {
      hash.update(`${file}\n`);
      hash.update(
        createHash('sha256')
          .update(readFileSync(join(root, file)))
          .digest('hex'),
      );
      hash.update('\n');
    }
  }
  return hash.digest('hex');
}
