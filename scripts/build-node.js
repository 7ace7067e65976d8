#!/usr/bin/env node
// `npm run build:node` (and `prepare`, so `npm install` / `npm ci` run it): compiles the `spl` CLI
// and the `spl-relay` server to plain JavaScript in dist/node, so the bins start without compiling
// TypeScript at run time (tsx took 3–6 s per `spl` call). Dependencies stay external (node_modules);
// dynamic imports become their own chunks, so `spl --help` loads none of the heavy modules.
import { build } from 'esbuild';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
export const OUT_DIR = join(ROOT, 'dist', 'node');

const started = Date.now();
rmSync(OUT_DIR, { recursive: true, force: true }); // no stale chunks from an earlier build
await build({
  absWorkingDir: ROOT,
  entryPoints: {
    spl: 'src/cli/main.ts',
    'spl-relay': 'src/relay/cli.ts',
    // A worker thread of the relay's SQLite store: loaded by URL beside the chunk that starts it.
    'sqlite-writer-worker': 'src/relay/storage/sqlite-writer-worker.ts',
  },
  outdir: OUT_DIR,
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  packages: 'external',
  sourcemap: 'linked',
  // Chunks beside the entries: the relay finds its worker at ./sqlite-writer-worker.js from any of them.
  chunkNames: '[name]-[hash]',
  logLevel: 'warning',
});
mkdirSync(OUT_DIR, { recursive: true });
// ESM regardless of any package.json type lookup above this directory.
writeFileSync(join(OUT_DIR, 'package.json'), '{"type":"module"}\n');
if (!process.argv.includes('--quiet')) console.log(`build:node: dist/node in ${Date.now() - started} ms`);
